//! Command-line framing. A command line ends only at CRLF (RFC 5321
//! §2.3.8); a bare LF or CR makes the line bad instead of ending a good
//! one, so no client can get two commands parsed differently by us and by
//! the hop in front of us. Lines are capped at [`MAX_LINE`] octets; a
//! longer one is discarded through its CRLF without being buffered.

/// Longest command line, CRLF excluded (Postfix's `line_length_limit`).
pub const MAX_LINE: usize = 2048;

/// Why a line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    TooLong,
    BareLf,
    BareCr,
}

/// What [`LineReader::next`] found at the start of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineStatus {
    /// No complete line yet; `consumed` octets (of an over-long line) may
    /// be dropped already.
    Incomplete { consumed: usize },
    /// `input[..len]` is a line; `consumed` includes its CRLF.
    Line { len: usize, consumed: usize },
    /// A bad line ended after `consumed` octets.
    Bad { error: LineError, consumed: usize },
}

/// Framing state carried between calls, so a line arriving in pieces is
/// scanned only once.
#[derive(Debug, Default)]
pub struct LineReader {
    /// Octets at the start of the input known to hold no CR or LF.
    scanned: usize,
    /// Inside an over-long line, looking for its CRLF.
    discarding: bool,
    /// While discarding: the last octet dropped was a CR.
    prev_cr: bool,
}

impl LineReader {
    /// Forgets any partial line (after STARTTLS).
    pub fn reset(&mut self) {
        *self = LineReader::default();
    }

    /// Looks for the next line at the start of `input`, which must begin
    /// where the previous call's `consumed` ended.
    pub fn next(&mut self, input: &[u8]) -> LineStatus {
        if self.discarding {
            return self.discard(input);
        }
        let Some(rel) = memchr::memchr2(b'\r', b'\n', &input[self.scanned..]) else {
            if input.len() > MAX_LINE {
                self.discarding = true;
                self.scanned = 0;
                return self.discard(input);
            }
            self.scanned = input.len();
            return LineStatus::Incomplete { consumed: 0 };
        };
        let i = self.scanned + rel;
        if i > MAX_LINE {
            self.discarding = true;
            self.scanned = 0;
            return self.discard(input);
        }
        if input[i] == b'\n' {
            self.scanned = 0;
            return LineStatus::Bad {
                error: LineError::BareLf,
                consumed: i + 1,
            };
        }
        match input.get(i + 1) {
            None => {
                // The CR may be the first half of a CRLF still in flight.
                self.scanned = i;
                LineStatus::Incomplete { consumed: 0 }
            }
            Some(b'\n') => {
                self.scanned = 0;
                LineStatus::Line {
                    len: i,
                    consumed: i + 2,
                }
            }
            Some(_) => {
                self.scanned = 0;
                LineStatus::Bad {
                    error: LineError::BareCr,
                    consumed: i + 1,
                }
            }
        }
    }

    /// Drops octets through the next CRLF.
    fn discard(&mut self, input: &[u8]) -> LineStatus {
        let mut from = 0;
        while let Some(rel) = memchr::memchr(b'\n', &input[from..]) {
            let j = from + rel;
            let after_cr = if j == 0 {
                self.prev_cr
            } else {
                input[j - 1] == b'\r'
            };
            if after_cr {
                self.discarding = false;
                self.prev_cr = false;
                return LineStatus::Bad {
                    error: LineError::TooLong,
                    consumed: j + 1,
                };
            }
            from = j + 1;
        }
        if let Some(&last) = input.last() {
            self.prev_cr = last == b'\r';
        }
        LineStatus::Incomplete {
            consumed: input.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` octets, like a socket would,
    /// returning the lines (as strings) and errors seen.
    fn frame(input: &[u8], step: usize) -> Vec<Result<String, LineError>> {
        let mut reader = LineReader::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match reader.next(&buf) {
                    LineStatus::Incomplete { consumed } => {
                        buf.drain(..consumed);
                        break;
                    }
                    LineStatus::Line { len, consumed } => {
                        out.push(Ok(String::from_utf8_lossy(&buf[..len]).into_owned()));
                        buf.drain(..consumed);
                    }
                    LineStatus::Bad { error, consumed } => {
                        out.push(Err(error));
                        buf.drain(..consumed);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn crlf_lines_any_fragmentation() {
        let input = b"EHLO a\r\nNOOP\r\n\r\nQUIT\r\n";
        let want = vec![
            Ok("EHLO a".to_string()),
            Ok("NOOP".into()),
            Ok("".into()),
            Ok("QUIT".into()),
        ];
        for step in 1..input.len() {
            assert_eq!(frame(input, step), want, "step {step}");
        }
    }

    #[test]
    fn bare_lf_and_cr_end_a_bad_line() {
        for step in [1, 3, 100] {
            assert_eq!(
                frame(b"NOOP\nQUIT\r\n", step),
                vec![Err(LineError::BareLf), Ok("QUIT".into())]
            );
            assert_eq!(
                frame(b"NOOP\rQUIT\r\n", step),
                vec![Err(LineError::BareCr), Ok("QUIT".into())]
            );
            assert_eq!(
                frame(b"NOOP\r\r\n", step),
                vec![Err(LineError::BareCr), Ok("".into())]
            );
        }
    }

    #[test]
    fn long_lines_are_discarded_through_crlf() {
        let mut input = vec![b'A'; MAX_LINE];
        input.extend_from_slice(b"\r\n");
        let mut long = vec![b'B'; MAX_LINE + 1];
        long.extend_from_slice(b"\n\rstill the same line\r\nNOOP\r\n");
        input.extend_from_slice(&long);
        for step in [1, 7, 2048, 5000] {
            let got = frame(&input, step);
            assert_eq!(got.len(), 3, "step {step}");
            assert_eq!(got[0].as_ref().map(String::len), Ok(MAX_LINE));
            assert_eq!(got[1], Err(LineError::TooLong));
            assert_eq!(got[2], Ok("NOOP".into()));
        }
    }

    #[test]
    fn long_line_not_buffered() {
        let mut reader = LineReader::default();
        let chunk = vec![b'x'; 4096];
        assert_eq!(
            reader.next(&chunk),
            LineStatus::Incomplete { consumed: 4096 }
        );
        assert_eq!(
            reader.next(&chunk),
            LineStatus::Incomplete { consumed: 4096 }
        );
        assert_eq!(reader.next(b"\r"), LineStatus::Incomplete { consumed: 1 });
        assert_eq!(
            reader.next(b"\nNOOP"),
            LineStatus::Bad {
                error: LineError::TooLong,
                consumed: 1
            }
        );
    }
}
