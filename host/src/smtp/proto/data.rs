//! The message body readers: DATA (dot-stuffed, ended by CRLF.CRLF,
//! RFC 5321 §4.1.1.4 and §4.5.2) and BDAT chunks (raw octets, RFC 3030).
//!
//! Only CRLF "." CRLF ends DATA. A bare CR or LF never ends nor splits
//! the message, whatever dots surround it: it is kept as content and the
//! whole message is refused at its real end, which is what defeats SMTP
//! smuggling (a `<LF>.<LF>` that another hop takes for the end of the
//! message is, here, just bad content). Content is scanned with
//! memchr and copied a slice at a time, never byte by byte; once a
//! message is doomed (too big, bare newline) nothing more is buffered.

/// How a message body ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    /// A well-formed message: CRLF lines, dots unstuffed.
    Complete(Vec<u8>),
    /// A CR or LF not part of a CRLF pair was seen.
    BareNewline,
    /// More than the configured maximum.
    TooBig,
}

/// Accumulates content under a size cap and tracks bare CR/LF.
#[derive(Debug)]
struct Sink {
    content: Vec<u8>,
    /// Octets of content seen, buffered or not.
    size: u64,
    /// 0 = unlimited.
    max: u64,
    bare: bool,
}

impl Sink {
    fn new(max: u64) -> Sink {
        Sink {
            content: Vec::new(),
            size: 0,
            max,
            bare: false,
        }
    }

    fn too_big(&self) -> bool {
        self.max != 0 && self.size > self.max
    }

    fn push(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.too_big() || self.bare {
            // The message will be refused: stop holding memory for it.
            self.content = Vec::new();
        } else {
            self.content.extend_from_slice(bytes);
        }
    }

    fn mark_bare(&mut self) {
        self.bare = true;
        self.content = Vec::new();
    }

    fn finish(self) -> Body {
        if self.bare {
            Body::BareNewline
        } else if self.too_big() {
            Body::TooBig
        } else {
            Body::Complete(self.content)
        }
    }
}

/// Where the DATA reader stands relative to line boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataState {
    /// Just after a CRLF (or the DATA command's CRLF).
    LineStart,
    /// CRLF "." seen.
    Dot,
    /// CRLF "." CR seen: one LF away from the end.
    DotCr,
    /// Inside a line.
    Mid,
    /// Inside a line, just after a CR.
    Cr,
}

/// Reads a DATA body up to and including CRLF.CRLF.
#[derive(Debug)]
pub struct DataReader {
    state: DataState,
    sink: Sink,
    done: bool,
}

impl DataReader {
    /// `max` is the size cap in octets (0 = unlimited).
    pub fn new(max: u64) -> DataReader {
        DataReader {
            state: DataState::LineStart,
            sink: Sink::new(max),
            done: false,
        }
    }

    /// Consumes octets from `input`; returns how many. Stops right after
    /// the terminating CRLF.CRLF: what follows are the next commands.
    pub fn read(&mut self, input: &[u8]) -> usize {
        let mut i = 0;
        while i < input.len() && !self.done {
            let b = input[i];
            match self.state {
                DataState::LineStart => {
                    if b == b'.' {
                        self.state = DataState::Dot;
                        i += 1;
                    } else {
                        self.state = DataState::Mid;
                    }
                }
                DataState::Dot => {
                    if b == b'\r' {
                        self.state = DataState::DotCr;
                        i += 1;
                    } else {
                        // Leading dot of a non-terminator line: unstuff.
                        self.state = DataState::Mid;
                    }
                }
                DataState::DotCr => {
                    if b == b'\n' {
                        self.done = true;
                        i += 1;
                    } else {
                        // ".<CR>x": the dot is stuffing, the CR is bare.
                        self.sink.mark_bare();
                        self.sink.push(b"\r");
                        self.state = DataState::Mid;
                    }
                }
                DataState::Mid => match memchr::memchr2(b'\r', b'\n', &input[i..]) {
                    None => {
                        self.sink.push(&input[i..]);
                        i = input.len();
                    }
                    Some(rel) => {
                        let j = i + rel;
                        self.sink.push(&input[i..j]);
                        if input[j] == b'\r' {
                            self.state = DataState::Cr;
                        } else {
                            // A bare LF never starts a new line.
                            self.sink.mark_bare();
                            self.sink.push(b"\n");
                        }
                        i = j + 1;
                    }
                },
                DataState::Cr => {
                    if b == b'\n' {
                        self.sink.push(b"\r\n");
                        self.state = DataState::LineStart;
                        i += 1;
                    } else {
                        self.sink.mark_bare();
                        self.sink.push(b"\r");
                        self.state = DataState::Mid;
                    }
                }
            }
        }
        i
    }

    /// True once CRLF.CRLF has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn finish(self) -> Body {
        self.sink.finish()
    }
}

/// Collects the chunks of a BDAT transaction.
#[derive(Debug)]
pub struct BdatBody {
    sink: Sink,
    /// The previous chunk ended with a CR whose LF may open the next one.
    pending_cr: bool,
}

impl BdatBody {
    pub fn new(max: u64) -> BdatBody {
        BdatBody {
            sink: Sink::new(max),
            pending_cr: false,
        }
    }

    /// Octets received so far.
    pub fn size(&self) -> u64 {
        self.sink.size
    }

    /// Would `more` octets exceed the cap?
    pub fn would_exceed(&self, more: u64) -> bool {
        self.sink.max != 0 && self.sink.size.saturating_add(more) > self.sink.max
    }

    /// Appends raw chunk octets, checking every CR and LF is paired.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if !self.sink.bare {
            let mut expect_lf = self.pending_cr;
            let mut from = 0;
            if expect_lf {
                if bytes[0] != b'\n' {
                    self.sink.mark_bare();
                }
                expect_lf = false;
                from = 1;
            }
            while !self.sink.bare {
                let Some(rel) = memchr::memchr2(b'\r', b'\n', &bytes[from..]) else {
                    break;
                };
                let j = from + rel;
                if bytes[j] == b'\n' {
                    self.sink.mark_bare();
                    break;
                }
                match bytes.get(j + 1) {
                    Some(b'\n') => from = j + 2,
                    Some(_) => self.sink.mark_bare(),
                    None => {
                        expect_lf = true;
                        break;
                    }
                }
            }
            self.pending_cr = expect_lf;
        }
        self.sink.push(bytes);
    }

    /// The message, once the LAST chunk is in. A final line without CRLF
    /// gets one, so the queue always stores CRLF-terminated lines.
    pub fn finish(mut self) -> Body {
        if self.pending_cr {
            self.sink.mark_bare();
        }
        if !self.sink.content.is_empty() && !self.sink.content.ends_with(b"\r\n") && !self.sink.bare
        {
            self.sink.content.extend_from_slice(b"\r\n");
        }
        self.sink.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a DATA body fed `step` octets at a time; returns the outcome
    /// and what is left over after the terminator.
    fn data(input: &[u8], step: usize, max: u64) -> (Option<Body>, Vec<u8>) {
        let mut r = DataReader::new(max);
        let mut rest = Vec::new();
        for piece in input.chunks(step) {
            if r.is_done() {
                rest.extend_from_slice(piece);
                continue;
            }
            let n = r.read(piece);
            rest.extend_from_slice(&piece[n..]);
        }
        if r.is_done() {
            (Some(r.finish()), rest)
        } else {
            (None, rest)
        }
    }

    fn all_steps(input: &[u8], max: u64) -> (Option<Body>, Vec<u8>) {
        let first = data(input, input.len().max(1), max);
        for step in 1..input.len() {
            assert_eq!(data(input, step, max), first, "step {step}");
        }
        first
    }

    #[test]
    fn simple_message_and_unstuffing() {
        let (body, rest) = all_steps(
            b"Subject: x\r\n\r\n..dot\r\n.single\r\nend\r\n.\r\nQUIT\r\n",
            0,
        );
        assert_eq!(
            body,
            Some(Body::Complete(
                b"Subject: x\r\n\r\n.dot\r\nsingle\r\nend\r\n".to_vec()
            ))
        );
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn empty_message() {
        assert_eq!(
            all_steps(b".\r\n", 0),
            (Some(Body::Complete(Vec::new())), Vec::new())
        );
    }

    #[test]
    fn bare_newline_variants_never_end_the_message() {
        for smuggle in [
            &b"\n.\n"[..],
            b"\r.\r",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\r\n",
            b"\n.\r",
            b".\n",
            b"\r\n.\r",
        ] {
            let mut input = b"a\r\n".to_vec();
            input.extend_from_slice(smuggle);
            input.extend_from_slice(b"MAIL FROM:<x@y>\r\n");
            let (body, rest) = all_steps(&input, 0);
            assert_eq!(body, None, "{smuggle:?} ended the message");
            assert!(rest.is_empty());
            input.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
            let (body, rest) = all_steps(&input, 0);
            assert_eq!(body, Some(Body::BareNewline), "{smuggle:?}");
            assert_eq!(rest, b"NOOP\r\n");
        }
    }

    #[test]
    fn real_terminator_after_bare_lf_ends_a_refused_message() {
        let (body, rest) = all_steps(b"a\n\r\n.\r\nNOOP\r\n", 0);
        assert_eq!(body, Some(Body::BareNewline));
        assert_eq!(rest, b"NOOP\r\n");
    }

    #[test]
    fn dot_crlf_only_at_line_start() {
        let (body, _) = all_steps(b"x.\r\n.\r\n", 0);
        assert_eq!(body, Some(Body::Complete(b"x.\r\n".to_vec())));
    }

    #[test]
    fn size_cap_counts_unstuffed_octets() {
        let (body, rest) = all_steps(b"12345678\r\n.\r\nX", 10);
        assert_eq!(body, Some(Body::Complete(b"12345678\r\n".to_vec())));
        assert_eq!(rest, b"X");
        let (body, _) = all_steps(b"123456789\r\n.\r\n", 10);
        assert_eq!(body, Some(Body::TooBig));
    }

    #[test]
    fn big_message_is_not_buffered_beyond_cap() {
        let mut r = DataReader::new(1000);
        let line = [b'x'; 998];
        for _ in 0..1000 {
            r.read(&line);
            r.read(b"\r\n");
        }
        assert!(r.sink.content.is_empty());
        r.read(b".\r\n");
        assert_eq!(r.finish(), Body::TooBig);
    }

    fn bdat(chunks: &[&[u8]]) -> Body {
        let mut b = BdatBody::new(0);
        for c in chunks {
            b.push(c);
        }
        b.finish()
    }

    #[test]
    fn bdat_raw_content() {
        assert_eq!(
            bdat(&[b"a\r\n..b\r\n.\r\n"]),
            Body::Complete(b"a\r\n..b\r\n.\r\n".to_vec())
        );
        assert_eq!(
            bdat(&[b"a\r", b"\nb"]),
            Body::Complete(b"a\r\nb\r\n".to_vec())
        );
        assert_eq!(bdat(&[]), Body::Complete(Vec::new()));
    }

    #[test]
    fn bdat_bare_newlines() {
        assert_eq!(bdat(&[b"a\nb\r\n"]), Body::BareNewline);
        assert_eq!(bdat(&[b"a\rb\r\n"]), Body::BareNewline);
        assert_eq!(bdat(&[b"a\r", b"b\r\n"]), Body::BareNewline);
        assert_eq!(bdat(&[b"a\r"]), Body::BareNewline);
        assert_eq!(bdat(&[b"a\r\r\n"]), Body::BareNewline);
    }

    #[test]
    fn bdat_cap() {
        let mut b = BdatBody::new(5);
        assert!(!b.would_exceed(5));
        b.push(b"abc");
        assert!(b.would_exceed(3));
        assert_eq!(b.size(), 3);
    }
}
