//! Configuration errors: every problem found while loading smtpd.conf,
//! each tied to the file and line it comes from.

use std::fmt;
use std::path::PathBuf;

use super::format::FormatError;
use super::model::Origin;

/// What is wrong, without the location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("cannot read file: {0}")]
    Io(String),
    #[error("syntax error near \"{0}\"")]
    SyntaxNear(String),
    #[error("syntax error at end of line (expected {0})")]
    UnexpectedEnd(&'static str),
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    #[error("invalid table reference (expected <name>)")]
    BadTableRef,
    #[error("macro \"{0}\" is not defined")]
    UndefinedMacro(String),
    #[error("include nested too deeply or looping on \"{0}\"")]
    IncludeLoop(String),
    #[error("invalid size \"{0}\"")]
    BadSize(String),
    #[error("invalid duration \"{0}\"")]
    BadDuration(String),
    #[error("invalid number \"{0}\"")]
    BadNumber(String),
    #[error("invalid port \"{0}\"")]
    BadPort(String),
    #[error("invalid {what} \"{value}\"")]
    BadValue { what: &'static str, value: String },
    #[error("unknown action \"{0}\"")]
    UnknownAction(String),
    #[error("unknown delivery method \"{0}\"")]
    UnknownMethod(String),
    #[error("table \"{0}\" is not defined")]
    UndefinedTable(String),
    #[error("pki \"{0}\" is not defined")]
    UndefinedPki(String),
    #[error("ca \"{0}\" is not defined")]
    UndefinedCa(String),
    #[error("filter \"{0}\" is not defined")]
    UndefinedFilter(String),
    #[error("mda wrapper \"{0}\" is not defined")]
    UndefinedWrapper(String),
    #[error("{what} \"{name}\" is already defined at {previous}")]
    Duplicate {
        what: &'static str,
        name: String,
        previous: String,
    },
    #[error("pki \"{0}\" already has a {1}")]
    DuplicatePkiPart(String, &'static str),
    #[error("pki \"{0}\" has no {1}")]
    IncompletePki(String, &'static str),
    #[error("auth needs a credentials table here (auth <table>): wasmtpd does not read the system password database")]
    AuthWithoutTable,
    #[error("action \"{action}\": {why}")]
    BadRelay { action: String, why: String },
    #[error("option \"{0}\" is only valid for relay actions")]
    RelayOnlyOption(String),
    #[error("option \"{0}\" is not valid for relay actions")]
    LocalOnlyOption(String),
    #[error("option \"{0}\" given twice")]
    RepeatedOption(String),
    #[error("filter \"{name}\": \"{what}\" filters (external processes) are not supported; wasmtpd runs wasm components (filter NAME wasm \"/path/filter.wasm\") and builtin phase filters")]
    UnsupportedFilter { name: String, what: String },
    #[error("filter chain \"{chain}\" refers to unknown filter \"{member}\"")]
    ChainUnknownFilter { chain: String, member: String },
    #[error("filter chain \"{chain}\" cannot contain the chain \"{member}\"")]
    ChainNested { chain: String, member: String },
    #[error("filter \"{member}\" appears twice in chain \"{chain}\"")]
    ChainRepeat { chain: String, member: String },
    #[error("invalid format \"{template}\": {error}")]
    Format {
        template: String,
        error: FormatError,
    },
    #[error("table \"{0}\" mixes list values and key = value pairs")]
    MixedTable(String),
}

/// One error, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: Origin,
    pub kind: ErrorKind,
}

impl ConfigError {
    pub fn new(origin: Origin, kind: ErrorKind) -> Self {
        ConfigError { origin, kind }
    }

    pub fn at(file: impl Into<PathBuf>, line: usize, kind: ErrorKind) -> Self {
        ConfigError::new(
            Origin {
                file: file.into(),
                line,
            },
            kind,
        )
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0 means "the file as a whole" (e.g. it cannot be opened).
        if self.origin.line == 0 {
            write!(f, "{}: {}", self.origin.file.display(), self.kind)
        } else {
            write!(f, "{}: {}", self.origin, self.kind)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every error found in a configuration, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_message_one_per_line() {
        let errs = ConfigErrors(vec![
            ConfigError::at("etc/x.conf", 12, ErrorKind::UnknownAction("deliver".into())),
            ConfigError::at(
                "etc/x.conf",
                14,
                ErrorKind::UndefinedTable("aliases".into()),
            ),
            ConfigError::at("etc/y.conf", 0, ErrorKind::Io("No such file".into())),
        ]);
        assert_eq!(
            errs.to_string(),
            "etc/x.conf:12: unknown action \"deliver\"\n\
             etc/x.conf:14: table \"aliases\" is not defined\n\
             etc/y.conf: cannot read file: No such file"
        );
    }
}
