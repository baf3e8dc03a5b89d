//! Format specifiers in action paths and commands (`%{rcpt.user}`, …), as
//! smtpd.conf(5) defines them.
//!
//! Expanded values come from the envelope, i.e. from the network. Unless a
//! specifier carries `:raw`, every character that is not a letter, digit or
//! one of `. _ @ + - =` becomes `_`, and a leading `.` or `-` is replaced
//! too. This is stricter than OpenSMTPD (which maps only its
//! MAILADDR_ESCAPE set to `:`): a value can never form a path component
//! such as `..`, contain `/`, start like a command-line option, or carry
//! shell syntax (CVE-2020-7247 was exactly this kind of injection).
//! `%{user.directory}` and `%{mda}` are not envelope data and are used as
//! they are, as in OpenSMTPD.

use crate::mailaddr::MailAddr;

/// Longest expansion accepted, like OpenSMTPD's EXPAND_BUFFER.
const MAX_EXPANSION: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("unterminated %{{ specifier")]
    Unterminated,
    #[error("unknown specifier %{{{0}}}")]
    UnknownSpecifier(String),
    #[error("unknown modifier \"{0}\"")]
    UnknownModifier(String),
    #[error("invalid substring \"[{0}]\"")]
    BadSlice(String),
    #[error("substring [{0}] is out of range for the value")]
    OutOfRange(String),
    #[error("expansion is too long")]
    TooLong,
}

/// What a delivery knows when it expands a template.
#[derive(Clone, Debug)]
pub struct FormatContext {
    /// None for the null sender `<>`.
    pub sender: Option<MailAddr>,
    /// The original recipient.
    pub rcpt: MailAddr,
    /// The final destination after alias/virtual expansion.
    pub dest: MailAddr,
    pub user_username: String,
    pub user_directory: String,
    /// The MDA command, for `%{mda}` inside `mda wrapper` commands.
    pub mda: String,
    /// `smtp sub-addr-delim`, used by `:strip`.
    pub sub_addr_delim: char,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Sender,
    SenderUser,
    SenderDomain,
    Rcpt,
    RcptUser,
    RcptDomain,
    Dest,
    DestUser,
    DestDomain,
    UserName,
    UserDirectory,
    MboxFrom,
    Mda,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name.to_ascii_lowercase().as_str() {
            "sender" => Field::Sender,
            "sender.user" => Field::SenderUser,
            "sender.domain" => Field::SenderDomain,
            "rcpt" => Field::Rcpt,
            "rcpt.user" => Field::RcptUser,
            "rcpt.domain" => Field::RcptDomain,
            "dest" => Field::Dest,
            "dest.user" => Field::DestUser,
            "dest.domain" => Field::DestDomain,
            "user.username" => Field::UserName,
            "user.directory" => Field::UserDirectory,
            "mbox.from" => Field::MboxFrom,
            "mda" => Field::Mda,
            _ => return None,
        })
    }

    /// Values that come from the user database or the operator's own
    /// configuration rather than the envelope; OpenSMTPD does not escape
    /// them either (a home directory needs its slashes).
    fn trusted(self) -> bool {
        matches!(self, Field::UserDirectory | Field::Mda)
    }

    fn value(self, ctx: &FormatContext) -> String {
        let sender = ctx.sender.as_ref();
        match self {
            Field::Sender => sender.map(|a| a.to_string()).unwrap_or_default(),
            Field::SenderUser => sender.map(|a| a.local.clone()).unwrap_or_default(),
            Field::SenderDomain => sender.map(|a| a.domain.clone()).unwrap_or_default(),
            Field::Rcpt => ctx.rcpt.to_string(),
            Field::RcptUser => ctx.rcpt.local.clone(),
            Field::RcptDomain => ctx.rcpt.domain.clone(),
            Field::Dest => ctx.dest.to_string(),
            Field::DestUser => ctx.dest.local.clone(),
            Field::DestDomain => ctx.dest.domain.clone(),
            Field::UserName => ctx.user_username.clone(),
            Field::UserDirectory => ctx.user_directory.clone(),
            Field::MboxFrom => sender
                .map(|a| a.to_string())
                .unwrap_or_else(|| "MAILER-DAEMON".into()),
            Field::Mda => ctx.mda.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Modifier {
    Lowercase,
    Uppercase,
    Strip,
    Raw,
}

/// `[n]`, `[n:]`, `[:m]`, `[n:m]`: offsets in characters, end inclusive,
/// negative counting from the end (OpenSMTPD's mda_expand_token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slice {
    begin: i64,
    end: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Spec {
    field: Field,
    slice: Option<Slice>,
    text: String,
    modifiers: Vec<Modifier>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Spec(Spec),
    /// A leading `~`: the user's home directory.
    Home,
}

fn parse(template: &str) -> Result<Vec<Piece>, FormatError> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = template;
    // Only a leading `~/` means the home directory, as in OpenSMTPD.
    if let Some(after) = rest.strip_prefix("~/") {
        pieces.push(Piece::Home);
        rest = after;
    }
    while let Some(pos) = rest.find('%') {
        lit.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(r) = after.strip_prefix('%') {
            lit.push('%');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let close = r.find('}').ok_or(FormatError::Unterminated)?;
            if !lit.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Spec(parse_spec(&r[..close])?));
            rest = &r[close + 1..];
        } else {
            // A lone `%` is literal, as in OpenSMTPD.
            lit.push('%');
            rest = after;
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        pieces.push(Piece::Literal(lit));
    }
    Ok(pieces)
}

fn parse_spec(text: &str) -> Result<Spec, FormatError> {
    let unknown = || FormatError::UnknownSpecifier(text.to_string());
    let (head, mods) = match (text.find('['), text.find(']')) {
        (Some(l), Some(r)) if l < r => {
            let slice = parse_slice(&text[l + 1..r])?;
            let field = Field::parse(&text[..l]).ok_or_else(unknown)?;
            let after = &text[r + 1..];
            let mods = match after.strip_prefix(':') {
                Some(m) => m,
                None if after.is_empty() => "",
                None => return Err(unknown()),
            };
            ((field, Some(slice)), mods)
        }
        (None, None) => {
            let (name, mods) = text.split_once(':').unwrap_or((text, ""));
            ((Field::parse(name).ok_or_else(unknown)?, None), mods)
        }
        _ => return Err(unknown()),
    };
    let mut modifiers = Vec::new();
    // OpenSMTPD separates modifiers with `|`; `:` is accepted as well.
    for m in mods.split(['|', ':']).filter(|m| !m.is_empty()) {
        modifiers.push(match m.to_ascii_lowercase().as_str() {
            "lowercase" => Modifier::Lowercase,
            "uppercase" => Modifier::Uppercase,
            "strip" => Modifier::Strip,
            "raw" => Modifier::Raw,
            _ => return Err(FormatError::UnknownModifier(m.to_string())),
        });
    }
    Ok(Spec {
        field: head.0,
        slice: head.1,
        text: text.to_string(),
        modifiers,
    })
}

fn parse_slice(s: &str) -> Result<Slice, FormatError> {
    let bad = || FormatError::BadSlice(s.to_string());
    let num = |t: &str| t.trim().parse::<i64>().map_err(|_| bad());
    if s.is_empty() {
        return Err(bad());
    }
    match s.split_once(':') {
        None => {
            let n = num(s)?;
            Ok(Slice {
                begin: n,
                end: Some(n),
            })
        }
        Some((b, e)) => Ok(Slice {
            begin: if b.is_empty() { 0 } else { num(b)? },
            end: if e.is_empty() { None } else { Some(num(e)?) },
        }),
    }
}

fn apply_slice(value: &str, slice: Slice, text: &str) -> Result<String, FormatError> {
    let chars: Vec<char> = value.chars().collect();
    let len = chars.len() as i64;
    if len == 0 {
        return Ok(String::new());
    }
    let out_of_range = || FormatError::OutOfRange(text.to_string());
    let mut begin = slice.begin;
    if begin >= len {
        return Err(out_of_range());
    }
    let mut end = slice.end.unwrap_or(len - 1).min(len - 1);
    if begin < 0 {
        begin += len;
    }
    if end < 0 {
        end += len - 1;
    }
    if begin < 0 || end < 0 || end < begin {
        return Err(out_of_range());
    }
    Ok(chars[begin as usize..=end as usize].iter().collect())
}

fn strip_subaddress(value: &str, delim: char) -> String {
    match value.find(delim) {
        Some(tag) => match value[tag..].find('@') {
            Some(at) => format!("{}{}", &value[..tag], &value[tag + at..]),
            None => value[..tag].to_string(),
        },
        None => value.to_string(),
    }
}

/// Makes an envelope-derived value safe to place in a path or a command.
pub fn sanitize(value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| {
            let safe = c.is_ascii_alphanumeric()
                || matches!(c, '.' | '_' | '@' | '+' | '-' | '=')
                || (!c.is_ascii() && c.is_alphanumeric());
            if safe {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(['.', '-']) {
        out.replace_range(..1, "_");
    }
    out
}

fn expand_spec(spec: &Spec, ctx: &FormatContext) -> Result<String, FormatError> {
    let mut value = spec.field.value(ctx);
    let mut raw = false;
    for m in &spec.modifiers {
        match m {
            Modifier::Lowercase => value = value.to_lowercase(),
            Modifier::Uppercase => value = value.to_uppercase(),
            Modifier::Strip => value = strip_subaddress(&value, ctx.sub_addr_delim),
            Modifier::Raw => raw = true,
        }
    }
    if let Some(slice) = spec.slice {
        value = apply_slice(&value, slice, &spec.text)?;
    }
    Ok(if raw || spec.field.trusted() {
        value
    } else {
        sanitize(&value)
    })
}

/// Checks a template's syntax (known specifiers, modifiers and slices)
/// without expanding it; the config parser calls this at load time.
pub fn validate(template: &str) -> Result<(), FormatError> {
    parse(template).map(|_| ())
}

/// Expands every specifier of `template` with values from `ctx`.
pub fn expand(template: &str, ctx: &FormatContext) -> Result<String, FormatError> {
    let mut out = String::new();
    for piece in parse(template)? {
        match piece {
            Piece::Literal(s) => out.push_str(&s),
            // The home directory comes from the user database, not from
            // the envelope, so it is used as is.
            Piece::Home => {
                out.push_str(&ctx.user_directory);
                out.push('/');
            }
            Piece::Spec(spec) => out.push_str(&expand_spec(&spec, ctx)?),
        }
        if out.len() > MAX_EXPANSION {
            return Err(FormatError::TooLong);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> FormatContext {
        FormatContext {
            sender: Some(MailAddr::new("Alice", "Sender.org")),
            rcpt: MailAddr::new("Bob+lists", "Example.org"),
            dest: MailAddr::new("bob", "example.org"),
            user_username: "bob".into(),
            user_directory: "/home/bob".into(),
            mda: "/usr/bin/procmail".into(),
            sub_addr_delim: '+',
        }
    }

    fn x(t: &str) -> String {
        expand(t, &ctx()).unwrap()
    }

    #[test]
    fn every_specifier() {
        assert_eq!(x("%{sender}"), "Alice@Sender.org");
        assert_eq!(x("%{sender.user}/%{sender.domain}"), "Alice/Sender.org");
        assert_eq!(
            x("%{rcpt}|%{rcpt.user}|%{rcpt.domain}"),
            "Bob+lists@Example.org|Bob+lists|Example.org"
        );
        assert_eq!(
            x("%{dest} %{dest.user} %{dest.domain}"),
            "bob@example.org bob example.org"
        );
        assert_eq!(x("%{user.username}:%{user.directory}"), "bob:/home/bob");
        assert_eq!(x("%{user.directory}/Maildir"), "/home/bob/Maildir");
        assert_eq!(x("From %{mbox.from}"), "From Alice@Sender.org");
        assert_eq!(x("%{mda} -d bob"), "/usr/bin/procmail -d bob");
        assert_eq!(x("100%% %x"), "100% %x");
        assert_eq!(x("%{RCPT.USER}"), "Bob+lists");
    }

    #[test]
    fn null_sender() {
        let mut c = ctx();
        c.sender = None;
        assert_eq!(
            expand("[%{sender}] %{mbox.from}", &c).unwrap(),
            "[] MAILER-DAEMON"
        );
    }

    #[test]
    fn home_prefix() {
        assert_eq!(x("~/Maildir"), "/home/bob/Maildir");
        assert_eq!(x("a~b"), "a~b");
        assert_eq!(x("~bob"), "~bob");
    }

    #[test]
    fn modifiers() {
        assert_eq!(x("%{rcpt.user:lowercase}"), "bob+lists");
        assert_eq!(x("%{rcpt.domain:uppercase}"), "EXAMPLE.ORG");
        assert_eq!(x("%{rcpt.user:strip}"), "Bob");
        assert_eq!(x("%{rcpt:strip}"), "Bob@Example.org");
        assert_eq!(x("%{rcpt:strip|lowercase}"), "bob@example.org");
        assert_eq!(x("%{rcpt.user:strip:lowercase}"), "bob");
    }

    #[test]
    fn slices_like_opensmtpd() {
        // The examples of smtpd.conf(5), with recipient domain example.org.
        let mut c = ctx();
        c.rcpt = MailAddr::new("user", "example.org");
        let e = |t: &str| expand(t, &c).unwrap();
        assert_eq!(e("%{rcpt.domain[0]}"), "e");
        assert_eq!(e("%{rcpt.domain[1]}"), "x");
        assert_eq!(e("%{rcpt.domain[8:]}"), "org");
        assert_eq!(e("%{rcpt.domain[-3:]}"), "org");
        assert_eq!(e("%{rcpt.domain[0:6]}"), "example");
        assert_eq!(e("%{rcpt.domain[:1]}"), "ex");
        assert_eq!(e("%{rcpt.domain[0:-1]}"), "example.or");
        assert_eq!(e("%{rcpt.domain[0:100]}"), "example.org");
        assert_eq!(e("%{rcpt.user[2:]:uppercase}"), "ER");
        assert!(matches!(
            expand("%{rcpt.user[9]}", &c),
            Err(FormatError::OutOfRange(_))
        ));
        assert!(matches!(
            expand("%{rcpt.user[3:1]}", &c),
            Err(FormatError::OutOfRange(_))
        ));
    }

    #[test]
    fn sanitises_path_traversal_and_shell_syntax() {
        let mut c = ctx();
        c.rcpt = MailAddr::new("../../etc/passwd", "x.org");
        let p = expand("/var/mail/%{rcpt.user}/Maildir", &c).unwrap();
        assert_eq!(p, "/var/mail/_._.._etc_passwd/Maildir");
        assert!(!p.contains("../"));

        c.rcpt = MailAddr::new("..", "x.org");
        assert_eq!(
            expand("/var/mail/%{rcpt.user}", &c).unwrap(),
            "/var/mail/_."
        );

        c.sender = Some(MailAddr::new("\";rm -rf /;\"", "evil.org"));
        let cmd = expand("/usr/bin/deliver -f %{sender}", &c).unwrap();
        assert_eq!(cmd, "/usr/bin/deliver -f __rm_-rf____@evil.org");
        for bad in [';', ' ', '/', '"', '$', '`', '|', '&'] {
            assert!(!cmd["/usr/bin/deliver -f ".len()..].contains(bad), "{bad}");
        }

        c.sender = Some(MailAddr::new("-oQ/tmp", "evil.org"));
        assert_eq!(expand("%{sender.user}", &c).unwrap(), "_oQ_tmp");
        // A slice cannot reintroduce a leading dot either.
        c.rcpt = MailAddr::new("a..", "x.org");
        assert_eq!(expand("%{rcpt.user[1:]}", &c).unwrap(), "_.");
        // :raw opts out, for values the operator trusts.
        assert_eq!(expand("%{rcpt.user:raw}", &c).unwrap(), "a..");
    }

    #[test]
    fn validate_reports_errors() {
        assert!(validate("/var/mail/%{rcpt.user:lowercase|strip}/%{dest.domain[0:2]}").is_ok());
        assert_eq!(
            validate("%{nope}"),
            Err(FormatError::UnknownSpecifier("nope".into()))
        );
        assert_eq!(
            validate("%{rcpt:loud}"),
            Err(FormatError::UnknownModifier("loud".into()))
        );
        assert_eq!(
            validate("%{rcpt[a:b]}"),
            Err(FormatError::BadSlice("a:b".into()))
        );
        assert_eq!(validate("%{rcpt[]}"), Err(FormatError::BadSlice("".into())));
        assert_eq!(validate("%{rcpt"), Err(FormatError::Unterminated));
    }
}
