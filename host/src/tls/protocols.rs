//! A listener's `protocols` option, in libtls's grammar
//! (tls_config_parse_protocols): words separated by `,` or `:`, each
//! `all`, `default`, `secure`, `legacy` or `tlsv1.N`, `!` removing one.
//! rustls speaks only TLS 1.2 and 1.3, so older versions asked for are
//! simply not available.

use rustls::SupportedProtocolVersion;

const V10: u8 = 1;
const V11: u8 = 2;
const V12: u8 = 4;
const V13: u8 = 8;
const ALL: u8 = V10 | V11 | V12 | V13;
const SECURE: u8 = V12 | V13;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolsError {
    #[error("protocols: unknown protocol \"{0}\"")]
    Unknown(String),
    #[error(
        "protocols \"{0}\": none of TLSv1.2 or TLSv1.3 is left, and older ones are not supported"
    )]
    NoneLeft(String),
}

/// The TLS versions `spec` allows, among those rustls has.
pub fn parse(spec: &str) -> Result<Vec<&'static SupportedProtocolVersion>, ProtocolsError> {
    let mut set = 0u8;
    for word in spec
        .split([',', ':'])
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        let (negate, name) = match word.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, word),
        };
        let bits = match name.to_ascii_lowercase().as_str() {
            "all" | "legacy" => ALL,
            "default" | "secure" => SECURE,
            "tlsv1" => V10 | V11 | V12 | V13,
            "tlsv1.0" => V10,
            "tlsv1.1" => V11,
            "tlsv1.2" => V12,
            "tlsv1.3" => V13,
            _ => return Err(ProtocolsError::Unknown(word.to_string())),
        };
        if negate {
            set &= !bits;
        } else {
            set |= bits;
        }
    }
    let mut versions = Vec::new();
    if set & V13 != 0 {
        versions.push(&rustls::version::TLS13);
    }
    if set & V12 != 0 {
        versions.push(&rustls::version::TLS12);
    }
    if versions.is_empty() {
        return Err(ProtocolsError::NoneLeft(spec.to_string()));
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> Vec<String> {
        parse(spec)
            .unwrap()
            .iter()
            .map(|v| format!("{:?}", v.version))
            .collect()
    }

    #[test]
    fn libtls_words_select_versions() {
        assert_eq!(names("secure"), ["TLSv1_3", "TLSv1_2"]);
        assert_eq!(names("tlsv1.3"), ["TLSv1_3"]);
        assert_eq!(names("all:!tlsv1.3"), ["TLSv1_2"]);
        assert_eq!(names("tlsv1.2,tlsv1.3"), ["TLSv1_3", "TLSv1_2"]);
    }

    #[test]
    fn unknown_words_and_only_old_versions_are_errors() {
        assert_eq!(
            parse("sslv3").unwrap_err(),
            ProtocolsError::Unknown("sslv3".into())
        );
        assert!(matches!(parse("tlsv1.0"), Err(ProtocolsError::NoneLeft(_))));
    }
}
