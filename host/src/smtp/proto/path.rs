//! Reverse- and forward-paths of MAIL FROM / RCPT TO (RFC 5321 §4.1.2):
//! angle brackets, quoted local parts that may hide a `>`, the obsolete
//! source route `<@a,@b:user@d>` (stripped, §C), the null path `<>` and
//! the bare `<postmaster>`.

/// What a path names, before the session maps `postmaster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawPath<'a> {
    /// `<>`
    Null,
    /// Anything else, source route removed, not yet validated.
    Addr(&'a str),
}

/// Splits `<path> params…` into the path and the parameter text.
///
/// Leniencies, as Postfix without `strict_rfc821_envelopes`: spaces
/// before the path and a path without angle brackets.
pub fn split_path(s: &str) -> Option<(RawPath<'_>, &str)> {
    let s = s.trim_start_matches(' ');
    let (inner, rest) = if let Some(body) = s.strip_prefix('<') {
        let end = closing_bracket(body)?;
        (&body[..end], &body[end + 1..])
    } else {
        let end = s.find(' ').unwrap_or(s.len());
        let token = &s[..end];
        if token.is_empty() || token.contains(['<', '>']) {
            return None;
        }
        (token, &s[end..])
    };
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let inner = strip_source_route(inner)?;
    if inner.is_empty() {
        return Some((RawPath::Null, rest));
    }
    Some((RawPath::Addr(inner), rest))
}

/// Index of the `>` closing the path, skipping quoted strings.
fn closing_bracket(body: &str) -> Option<usize> {
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '>' if !in_quote => return Some(i),
            _ => {}
        }
    }
    None
}

/// `@a,@b:user@d` → `user@d`; a path without a route is returned as is.
fn strip_source_route(inner: &str) -> Option<&str> {
    if !inner.starts_with('@') {
        return Some(inner);
    }
    // The route ends at the first ':' outside an address literal.
    let mut depth = 0usize;
    let mut colon = None;
    for (i, c) in inner.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let colon = colon?;
    let route = &inner[..colon];
    let well_formed = route
        .split(',')
        .all(|hop| hop.len() > 1 && hop.starts_with('@') && !hop[1..].contains(['@', ' ']));
    let rest = &inner[colon + 1..];
    if !well_formed || rest.is_empty() {
        return None;
    }
    Some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_null_and_params() {
        assert_eq!(
            split_path("<a@b.org>"),
            Some((RawPath::Addr("a@b.org"), ""))
        );
        assert_eq!(split_path("<> SIZE=10"), Some((RawPath::Null, " SIZE=10")));
        assert_eq!(
            split_path(" <a@b.org>"),
            Some((RawPath::Addr("a@b.org"), ""))
        );
        assert_eq!(
            split_path("a@b.org SIZE=1"),
            Some((RawPath::Addr("a@b.org"), " SIZE=1"))
        );
    }

    #[test]
    fn quoted_local_part_may_hide_bracket() {
        assert_eq!(
            split_path("<\"a>b\"@c.org>"),
            Some((RawPath::Addr("\"a>b\"@c.org"), ""))
        );
        assert_eq!(
            split_path("<\"a\\\"b\"@c.org>"),
            Some((RawPath::Addr("\"a\\\"b\"@c.org"), ""))
        );
    }

    #[test]
    fn source_route_stripped() {
        assert_eq!(
            split_path("<@a.org,@b.org:u@d.org>"),
            Some((RawPath::Addr("u@d.org"), ""))
        );
        assert_eq!(
            split_path("<@[IPv6:::1]:u@d.org>"),
            Some((RawPath::Addr("u@d.org"), ""))
        );
        assert_eq!(split_path("<@a.org>"), None);
        assert_eq!(split_path("<@a.org,b.org:u@d>"), None);
    }

    #[test]
    fn malformed() {
        assert_eq!(split_path("<a@b.org"), None);
        assert_eq!(split_path("<a@b.org>SIZE=1"), None);
        assert_eq!(split_path(""), None);
        assert_eq!(split_path("a<b@c"), None);
    }
}
