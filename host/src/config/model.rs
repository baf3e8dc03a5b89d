//! The configuration model: what smtpd.conf says, after parsing, macro
//! expansion and includes. Both the modern grammar and the 5.x `accept`
//! rules map onto these types.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Where a directive came from, for error messages and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Config {
    pub tables: BTreeMap<String, TableDef>,
    pub pki: BTreeMap<String, Pki>,
    pub ca: BTreeMap<String, Ca>,
    pub listeners: Vec<Listener>,
    pub actions: BTreeMap<String, Action>,
    /// In file order; first match wins.
    pub matches: Vec<MatchRule>,
    pub filters: BTreeMap<String, FilterDef>,
    pub queue: QueueOptions,
    pub smtp: SmtpOptions,
    /// `bounce warn-interval`: when to send delay warnings.
    pub bounce_warn_interval: Vec<Duration>,
    pub mda_wrappers: BTreeMap<String, String>,
    /// Hostname announced by default (system hostname if unset).
    pub hostname: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDef {
    pub name: String,
    pub source: TableSource,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableSource {
    /// `table NAME file:/path` or `table NAME /path` (also `db:` is read as
    /// its source text file when one exists next to it).
    File { backend: String, path: PathBuf },
    /// `table NAME { a, b }`
    InlineList(Vec<String>),
    /// `table NAME { k = v, … }`
    InlineMap(Vec<(String, String)>),
    /// `table NAME getpwnam:` or other `backend:config` forms kept as-is.
    Backend { backend: String, config: String },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pki {
    pub name: String,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub dhe: Option<String>,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ca {
    pub name: String,
    pub cert: PathBuf,
    pub origin: Origin,
}

/// A reference to a table, written `<name>` in the config.
pub type TableRef = String;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenTarget {
    /// An interface name (`lo0`, `eth0`), `localhost`, `any`, or a group; resolved at startup.
    Interface(String),
    /// A literal address.
    Addr(std::net::IpAddr),
    /// A host name to resolve.
    Host(String),
    /// `listen on socket`: the local enqueue socket.
    Socket,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AddressFamily {
    #[default]
    Any,
    Inet4,
    Inet6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TlsMode {
    #[default]
    None,
    /// `tls`: STARTTLS offered.
    StartTls,
    /// `tls-require`: STARTTLS required before MAIL.
    StartTlsRequire,
    /// `smtps`: implicit TLS.
    Smtps,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMode {
    None,
    Required(Option<TableRef>),
    Optional(Option<TableRef>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub target: ListenTarget,
    pub family: AddressFamily,
    /// Default 25 (465 for smtps) when absent.
    pub port: Option<u16>,
    pub tls: TlsMode,
    /// `verify` after tls-require/smtps: client certificate required.
    pub tls_verify: bool,
    pub pki: Vec<String>,
    pub ca: Option<String>,
    pub auth: AuthMode,
    pub tag: Option<String>,
    pub hostname: Option<String>,
    pub hostnames: Option<TableRef>,
    pub filter: Option<String>,
    pub mask_src: bool,
    pub no_dsn: bool,
    pub proxy_v2: bool,
    pub received_auth: bool,
    pub senders: Option<TableRef>,
    pub masquerade: bool,
    pub protocols: Option<String>,
    pub ciphers: Option<String>,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub name: String,
    pub method: Method,
    /// `alias <t>` (local recipients expanded through an aliases table).
    pub alias: Option<TableRef>,
    /// `virtual <t>`.
    pub virtual_: Option<TableRef>,
    /// `userbase <t>` (user → uid:gid:home).
    pub userbase: Option<TableRef>,
    /// `user U`: deliver as this user whatever the recipient.
    pub user: Option<String>,
    pub wrapper: Option<String>,
    pub ttl: Option<Duration>,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// Deliver to the user's mbox (`/var/mail/USER` by default).
    Mbox,
    /// `maildir [PATH] [junk]`; PATH may hold format specifiers. Default `~/Maildir`.
    Maildir {
        path: Option<String>,
        junk: bool,
    },
    /// `lmtp DEST [rcpt-to]`: DEST is `/path/to/socket` or `host:port`.
    Lmtp {
        dest: String,
        rcpt_to: bool,
    },
    /// `mda COMMAND`: run with the message on stdin.
    Mda {
        command: String,
    },
    ForwardOnly,
    ExpandOnly,
    Relay(Box<RelayOptions>),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayOptions {
    pub backup: bool,
    pub backup_mx: Option<String>,
    pub helo: Option<String>,
    pub helo_src: Option<TableRef>,
    pub domain: Option<TableRef>,
    /// `host URL`, e.g. `smtp://127.0.0.1:10024`, `smtp+tls://label@host:587`.
    pub host: Option<String>,
    pub tls: Option<RelayTls>,
    pub auth: Option<TableRef>,
    pub mail_from: Option<String>,
    /// `src ADDR|<t>`
    pub src: Option<String>,
    pub pki: Option<String>,
    pub ca: Option<String>,
    pub srs: bool,
    pub protocols: Option<String>,
    pub ciphers: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayTls {
    Verify,
    NoVerify,
}

/// A value tested by a match condition: a literal, a table, or a regex
/// (`regex` keyword before the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    Literal(String),
    Table(TableRef),
    Regex(String),
    /// A regex applied to each entry of a table (`regex <t>`).
    RegexTable(TableRef),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromCond {
    Any,
    Local,
    Socket,
    /// `from auth [<t>]`
    Auth(Option<Pattern>),
    /// `from mail-from X`
    MailFrom(Pattern),
    /// `from rdns [X]`
    Rdns(Option<Pattern>),
    /// `from src X` (addresses or networks)
    Src(Pattern),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForCond {
    Any,
    Local,
    Domain(Pattern),
    RcptTo(Pattern),
}

/// One match condition, possibly negated with `!`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    From(FromCond),
    For(ForCond),
    /// `auth [<t>]` (without `from`)
    Auth(Option<Pattern>),
    Helo(Pattern),
    MailFrom(Pattern),
    RcptTo(Pattern),
    Tag(Pattern),
    Tls,
    /// `fcrdns` (builtin filters): the client's rDNS name resolves back to
    /// its address.
    Fcrdns,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub negated: bool,
    pub cond: Cond,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Action(String),
    Reject,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchRule {
    pub conditions: Vec<Condition>,
    pub verdict: Verdict,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterDef {
    pub name: String,
    pub kind: FilterKind,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterKind {
    /// `filter NAME chain { a, b }`
    Chain(Vec<String>),
    /// `filter NAME wasm "/path/f.wasm" [options] [key value …]`, or a
    /// bundled component: `filter NAME dnsbl|regex|spamscore …`.
    Wasm(Box<WasmFilter>),
    /// OpenSMTPD's builtin filter: `filter NAME phase P match [!]COND…
    /// DECISION`, run by the host itself.
    Builtin(Box<BuiltinFilter>),
    /// `filter NAME proc NAME` / `proc-exec "cmd"` and anything else:
    /// the words after the name, kept for the filter engine.
    Other(Vec<String>),
}

/// A builtin filter: in `phase`, when every condition holds, `decision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltinFilter {
    /// connect, helo, ehlo, auth, mail-from, rcpt-to, data or commit.
    pub phase: String,
    pub conditions: Vec<Condition>,
    pub decision: BuiltinDecision,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuiltinDecision {
    Bypass,
    Junk,
    /// `reject "550 message"`
    Reject(String),
    /// `disconnect "421 message"`
    Disconnect(String),
    Rewrite(String),
    Report(String),
}

/// Where a wasm filter's component comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WasmSource {
    Path(PathBuf),
    /// One of the components built into wasmtpd (`dnsbl`, `regex`,
    /// `spamscore`).
    Bundled(String),
}

/// What a filter that traps or runs out of budget costs the session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnError {
    /// 421 4.7.0 and the session ends: the client retries later.
    #[default]
    Tempfail,
    /// 554 5.7.0 for the command; the session goes on.
    Reject,
    /// As if the filter had said proceed (fail open).
    Proceed,
}

/// A wasm filter's definition. Limits left out take the engine's
/// defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmFilter {
    pub source: WasmSource,
    /// Fuel for one call (one phase, one batch of lines).
    pub fuel: Option<u64>,
    /// Fuel for the whole session.
    pub session_fuel: Option<u64>,
    /// Cap on the instance's linear memory, bytes.
    pub memory: Option<u64>,
    /// Wall-clock deadline for one call.
    pub timeout: Option<Duration>,
    pub on_error: OnError,
    /// `allow dns`: the `host-dns` import answers.
    pub allow_dns: bool,
    /// `allow kv`: the `host-kv` import answers.
    pub allow_kv: bool,
    /// DNS queries per session (`dns-queries N`).
    pub dns_queries: Option<u32>,
    /// Sessions one instance may serve, one after another (`max-use N`,
    /// Postfix's max_use); 1: a fresh instance for every session.
    pub max_use: Option<u32>,
    /// The remaining `key value` pairs, in order: the filter's own
    /// configuration (`host-config`).
    pub params: Vec<(String, String)>,
}

impl WasmFilter {
    pub fn new(source: WasmSource) -> WasmFilter {
        WasmFilter {
            source,
            fuel: None,
            session_fuel: None,
            memory: None,
            timeout: None,
            on_error: OnError::default(),
            allow_dns: false,
            allow_kv: false,
            dns_queries: None,
            max_use: None,
            params: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueOptions {
    pub compression: bool,
    /// `queue encryption [KEY]`: Some(None) means "encryption on, key from stdin".
    pub encryption: Option<Option<String>>,
    /// `queue ttl` (OpenSMTPD's name for expire); default 4 days.
    pub ttl: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpOptions {
    pub max_message_size: u64,
    pub max_rcpt: usize,
    pub max_mails: usize,
    pub max_sessions: usize,
    pub max_commands: usize,
    pub sub_addr_delim: char,
    pub ciphers: Option<String>,
}

impl Default for SmtpOptions {
    fn default() -> Self {
        SmtpOptions {
            // OpenSMTPD's default.
            max_message_size: 35 * 1024 * 1024,
            // RFC 5321 §4.5.3.1.8 requires at least 100.
            max_rcpt: 1000,
            max_mails: 100,
            max_sessions: 1000,
            max_commands: 10_000,
            sub_addr_delim: '+',
            ciphers: None,
        }
    }
}
