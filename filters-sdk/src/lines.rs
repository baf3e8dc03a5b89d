//! Message lines as `on-data-lines` carries them: one buffer per batch,
//! every line ending with CRLF.
//!
//! One buffer rather than a list of lines because crossing the component
//! boundary costs per allocation: a list of a thousand lines is a
//! thousand allocations in the guest on the way in and a thousand on the
//! host on the way out, one buffer is one copy. [`Lines`] reads and
//! builds such buffers; [`LinesOut`] is what a filter answers.

pub use crate::bindings::wasmtpd::filter::types::LinesOut;

/// A batch of message lines: bytes, each line followed by CRLF.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    bytes: Vec<u8>,
}

impl Lines {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lines already in the batch format, as the host passes them.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Lines { bytes }
    }

    /// The batch as one buffer, CRLFs included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Whether there is no line at all (an empty line is still a line).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Bytes in the batch, CRLFs included.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The lines, without their CRLF.
    pub fn iter(&self) -> Iter<'_> {
        iter(&self.bytes)
    }

    /// Appends one line; `line` must hold no CR or LF (the host refuses
    /// the answer otherwise).
    pub fn push(&mut self, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.bytes.extend_from_slice(b"\r\n");
    }

    /// Appends lines already in the batch format (a part of another
    /// batch, say).
    pub fn push_lines(&mut self, lines: &[u8]) {
        self.bytes.extend_from_slice(lines);
    }
}

impl From<Lines> for LinesOut {
    /// Replaces the batch with these lines.
    fn from(lines: Lines) -> LinesOut {
        LinesOut::Replace(lines.bytes)
    }
}

impl<'a> IntoIterator for &'a Lines {
    type Item = &'a [u8];
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The lines of `bytes` (in the batch format) without their CRLF; a
/// last line without one is yielded as it is.
pub fn iter(bytes: &[u8]) -> Iter<'_> {
    Iter { rest: bytes }
}

/// See [`iter`]. [`Iter::rest`] is what is left, still in the batch
/// format, for handing a tail of the batch on in one piece.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    rest: &'a [u8],
}

impl<'a> Iter<'a> {
    /// The lines not yielded yet, as one buffer.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &self.rest[self.rest.len()..]),
        };
        self.rest = rest;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_without_their_crlf() {
        let batch = Lines::from_bytes(b"Subject: x\r\n\r\nbody\r\n".to_vec());
        let lines: Vec<&[u8]> = batch.iter().collect();
        assert_eq!(lines, [&b"Subject: x"[..], b"", b"body"]);
        assert_eq!(iter(b"").count(), 0);
        assert_eq!(iter(b"no end").collect::<Vec<_>>(), [b"no end"]);
    }

    #[test]
    fn the_rest_is_what_was_not_read() {
        let mut it = iter(b"a\r\nb\r\nc\r\n");
        it.next();
        assert_eq!(it.rest(), b"b\r\nc\r\n");
    }

    #[test]
    fn pushed_lines_get_their_crlf() {
        let mut out = Lines::new();
        out.push(b"X-Added: yes");
        out.push_lines(b"a\r\n");
        assert_eq!(out.as_bytes(), b"X-Added: yes\r\na\r\n");
        assert_eq!(
            LinesOut::from(out.clone()),
            LinesOut::Replace(out.into_bytes())
        );
    }
}
