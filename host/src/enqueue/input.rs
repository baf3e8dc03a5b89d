//! The message as sendmail reads it from stdin: lines ended by LF or
//! CRLF, made CRLF (stray CRs dropped); without `-i`, a line holding a single dot ends it
//! (what mail(1) and old scripts send); and its wire form, dot-stuffed
//! for DATA.

use std::io::{self, BufRead};

/// Reads the message up to the end of input or, unless `ignore_dots`, to
/// a line with a single `.`. Every line ends with CRLF, the last one too.
pub fn read_message(mut input: impl BufRead, ignore_dots: bool) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(out);
        }
        let text = strip_eol(&line);
        if !ignore_dots && text == b"." {
            return Ok(out);
        }
        // A CR that ends no line (`\r\r\n` from some scripts) would get
        // the message refused as a bare CR: it is dropped.
        out.extend(text.iter().filter(|&&b| b != b'\r'));
        out.extend_from_slice(b"\r\n");
    }
}

/// `line` without its LF or CRLF.
fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// DATA's content: `content` (CRLF lines) with each line that starts
/// with a dot given a second one (RFC 5321 §4.5.2), and the final
/// `.` line.
pub fn dot_stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 64 + 8);
    for line in content.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &str, ignore_dots: bool) -> String {
        String::from_utf8(read_message(input.as_bytes(), ignore_dots).unwrap()).unwrap()
    }

    #[test]
    fn line_ends_become_crlf() {
        assert_eq!(read("a\nb\r\nc", false), "a\r\nb\r\nc\r\n");
        assert_eq!(read("", false), "");
    }

    #[test]
    fn stray_carriage_returns_are_dropped() {
        assert_eq!(read("a\r\r\nb\rc\n", false), "a\r\nbc\r\n");
    }

    #[test]
    fn a_lone_dot_ends_the_message_unless_i() {
        let input = "Subject: x\n\nbody\n.\nafter\n";
        assert_eq!(read(input, false), "Subject: x\r\n\r\nbody\r\n");
        assert_eq!(
            read(input, true),
            "Subject: x\r\n\r\nbody\r\n.\r\nafter\r\n"
        );
        assert_eq!(read("a\r\n.\r\nb\r\n", false), "a\r\n");
        assert_eq!(read("a\n..\n.x\n", false), "a\r\n..\r\n.x\r\n");
    }

    #[test]
    fn dots_are_stuffed_on_the_wire() {
        assert_eq!(
            dot_stuff(b"a\r\n.\r\n..b\r\nc.\r\n"),
            b"a\r\n..\r\n...b\r\nc.\r\n.\r\n".to_vec()
        );
        assert_eq!(dot_stuff(b""), b".\r\n".to_vec());
    }
}
