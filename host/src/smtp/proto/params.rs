//! ESMTP parameters of MAIL FROM and RCPT TO (RFC 5321 §4.1.2
//! `esmtp-param`): SIZE (RFC 1870), BODY (RFC 6152/3030), SMTPUTF8
//! (RFC 6531), RET/ENVID/NOTIFY/ORCPT (DSN, RFC 3461) and AUTH (RFC 4954).
//!
//! Parsing is syntax only; whether a parameter is allowed on this listener
//! (DSN disabled, size cap, AUTH not advertised) is the session's call.

use crate::envelope::DsnParams;

use super::reply::Reply;

/// `BODY=` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// Parameters given with MAIL FROM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<BodyType>,
    pub smtputf8: bool,
    /// `FULL` or `HDRS`, uppercased.
    pub ret: Option<String>,
    /// xtext as given.
    pub envid: Option<String>,
    /// `AUTH=` mailbox as given (xtext), `<>` included.
    pub auth: Option<String>,
}

/// Parameters given with RCPT TO.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// `NEVER` or a comma list of `SUCCESS,FAILURE,DELAY`, uppercased.
    pub notify: Option<String>,
    /// `addr-type;xtext` as given.
    pub orcpt: Option<String>,
}

impl MailParams {
    /// True when a DSN parameter (RET, ENVID) was given.
    pub fn has_dsn(&self) -> bool {
        self.ret.is_some() || self.envid.is_some()
    }

    /// The DSN parameters the queue stores for one recipient.
    pub fn dsn(&self, rcpt: &RcptParams) -> DsnParams {
        DsnParams {
            ret: self.ret.clone(),
            envid: self.envid.clone(),
            notify: rcpt.notify.clone(),
            orcpt: rcpt.orcpt.clone(),
        }
    }
}

impl RcptParams {
    /// True when a DSN parameter (NOTIFY, ORCPT) was given.
    pub fn has_dsn(&self) -> bool {
        self.notify.is_some() || self.orcpt.is_some()
    }
}

/// ENVID is at most 100 characters (RFC 3461 §4.4).
const MAX_ENVID: usize = 100;
/// ORCPT is at most 500 characters (RFC 3461 §4.2).
const MAX_ORCPT: usize = 500;

fn bad(text: &str) -> Reply {
    Reply::new(501, "5.5.4", text)
}

fn unsupported(key: &str) -> Reply {
    Reply::new(555, "5.5.4", format!("Unsupported parameter {key}"))
}

/// Splits `KEY[=VALUE] KEY[=VALUE] …` into pairs, checking the shared
/// syntax (keyword characters, no control characters, no duplicates).
fn split_params(s: &str) -> Result<Vec<(String, Option<&str>)>, Reply> {
    let mut out: Vec<(String, Option<&str>)> = Vec::new();
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(bad("Syntax error in parameters"));
        }
        if let Some(v) = value {
            if v.is_empty() || v.chars().any(|c| c.is_control() || c == '=') {
                return Err(bad(&format!("Bad value for parameter {key}")));
            }
        }
        let key = key.to_ascii_uppercase();
        if out.iter().any(|(k, _)| *k == key) {
            return Err(bad(&format!("Duplicate parameter {key}")));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn xtext_ok(v: &str) -> bool {
    v.bytes().all(|b| (33..=126).contains(&b))
}

/// Parses the parameters after `MAIL FROM:<…>`.
pub fn parse_mail_params(s: &str) -> Result<MailParams, Reply> {
    let mut p = MailParams::default();
    for (key, value) in split_params(s)? {
        match (key.as_str(), value) {
            ("SIZE", Some(v)) => {
                if v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("Bad SIZE value"));
                }
                p.size = Some(v.parse().map_err(|_| bad("Bad SIZE value"))?);
            }
            ("BODY", Some(v)) => {
                p.body = Some(match v.to_ascii_uppercase().as_str() {
                    "7BIT" => BodyType::SevenBit,
                    "8BITMIME" => BodyType::EightBitMime,
                    "BINARYMIME" => BodyType::BinaryMime,
                    _ => return Err(bad("Bad BODY value")),
                });
            }
            ("SMTPUTF8", None) => p.smtputf8 = true,
            ("SMTPUTF8", Some(_)) => return Err(bad("SMTPUTF8 takes no value")),
            ("RET", Some(v)) => {
                let v = v.to_ascii_uppercase();
                if v != "FULL" && v != "HDRS" {
                    return Err(bad("Bad RET value"));
                }
                p.ret = Some(v);
            }
            ("ENVID", Some(v)) => {
                if v.len() > MAX_ENVID || !xtext_ok(v) {
                    return Err(bad("Bad ENVID value"));
                }
                p.envid = Some(v.to_string());
            }
            ("AUTH", Some(v)) => p.auth = Some(v.to_string()),
            ("SIZE" | "BODY" | "RET" | "ENVID" | "AUTH", None) => {
                return Err(bad(&format!("Parameter {key} needs a value")));
            }
            _ => return Err(unsupported(&key)),
        }
    }
    Ok(p)
}

/// Parses the parameters after `RCPT TO:<…>`.
pub fn parse_rcpt_params(s: &str) -> Result<RcptParams, Reply> {
    let mut p = RcptParams::default();
    for (key, value) in split_params(s)? {
        match (key.as_str(), value) {
            ("NOTIFY", Some(v)) => {
                let v = v.to_ascii_uppercase();
                let items: Vec<&str> = v.split(',').collect();
                let ok = if items.contains(&"NEVER") {
                    items.len() == 1
                } else {
                    items
                        .iter()
                        .all(|i| matches!(*i, "SUCCESS" | "FAILURE" | "DELAY"))
                };
                if !ok {
                    return Err(bad("Bad NOTIFY value"));
                }
                p.notify = Some(v);
            }
            ("ORCPT", Some(v)) => {
                let well_formed = match v.split_once(';') {
                    Some((ty, addr)) => {
                        !ty.is_empty()
                            && ty.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                            && !addr.is_empty()
                    }
                    None => false,
                };
                if v.len() > MAX_ORCPT || !well_formed {
                    return Err(bad("Bad ORCPT value"));
                }
                p.orcpt = Some(v.to_string());
            }
            ("NOTIFY" | "ORCPT", None) => {
                return Err(bad(&format!("Parameter {key} needs a value")));
            }
            _ => return Err(unsupported(&key)),
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_params_parse() {
        let p =
            parse_mail_params("SIZE=1000 body=8bitmime SMTPUTF8 RET=hdrs ENVID=abc+2B").unwrap();
        assert_eq!(p.size, Some(1000));
        assert_eq!(p.body, Some(BodyType::EightBitMime));
        assert!(p.smtputf8);
        assert_eq!(p.ret.as_deref(), Some("HDRS"));
        assert_eq!(p.envid.as_deref(), Some("abc+2B"));
        assert_eq!(parse_mail_params("").unwrap(), MailParams::default());
        assert_eq!(parse_mail_params("  ").unwrap(), MailParams::default());
    }

    #[test]
    fn mail_params_errors() {
        assert_eq!(parse_mail_params("FOO=1").unwrap_err().code, 555);
        assert_eq!(parse_mail_params("XFORWARD").unwrap_err().code, 555);
        assert_eq!(parse_mail_params("SIZE=abc").unwrap_err().code, 501);
        assert_eq!(
            parse_mail_params("SIZE=99999999999999999999999")
                .unwrap_err()
                .code,
            501
        );
        assert_eq!(parse_mail_params("SIZE").unwrap_err().code, 501);
        assert_eq!(parse_mail_params("SIZE=1 SIZE=2").unwrap_err().code, 501);
        assert_eq!(parse_mail_params("BODY=9BIT").unwrap_err().code, 501);
        assert_eq!(parse_mail_params("RET=ALL").unwrap_err().code, 501);
        assert_eq!(parse_mail_params("SMTPUTF8=yes").unwrap_err().code, 501);
        assert_eq!(parse_mail_params("SI_ZE=1").unwrap_err().code, 501);
        assert_eq!(parse_mail_params("ENVID=a\tb").unwrap_err().code, 501);
    }

    #[test]
    fn rcpt_params_parse() {
        let p = parse_rcpt_params("NOTIFY=success,failure ORCPT=rfc822;a@b.org").unwrap();
        assert_eq!(p.notify.as_deref(), Some("SUCCESS,FAILURE"));
        assert_eq!(p.orcpt.as_deref(), Some("rfc822;a@b.org"));
        assert_eq!(
            parse_rcpt_params("NOTIFY=NEVER").unwrap().notify.as_deref(),
            Some("NEVER")
        );
        assert_eq!(
            parse_rcpt_params("NOTIFY=NEVER,DELAY").unwrap_err().code,
            501
        );
        assert_eq!(parse_rcpt_params("NOTIFY=SOMETIMES").unwrap_err().code, 501);
        assert_eq!(parse_rcpt_params("ORCPT=a@b.org").unwrap_err().code, 501);
        assert_eq!(parse_rcpt_params("SIZE=10").unwrap_err().code, 555);
    }

    #[test]
    fn dsn_params_combined() {
        let m = parse_mail_params("RET=FULL ENVID=x").unwrap();
        let r = parse_rcpt_params("NOTIFY=DELAY").unwrap();
        let d = m.dsn(&r);
        assert_eq!(d.ret.as_deref(), Some("FULL"));
        assert_eq!(d.notify.as_deref(), Some("DELAY"));
        assert!(m.has_dsn() && r.has_dsn());
    }
}
