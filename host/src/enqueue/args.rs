//! sendmail's command line, as mailwrapper(8) programs call it: getopt
//! style single-letter flags that may be grouped (`-ti`) and take their
//! argument glued or as the next word (`-fjoe`, `-f joe`), the `-b` mode
//! and `-o` option families, and the many Sendmail flags that Postfix
//! and OpenSMTPD accept and ignore, so that no caller breaks on them.
//!
//! Parsing stops at `--` or at the first word that is not a flag; every
//! word after that is a recipient.

use std::path::PathBuf;

use thiserror::Error;

/// What the invocation asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `-bm` (the default): read a message and enqueue it.
    Deliver,
    /// `-bs`: an SMTP session on stdin/stdout.
    Smtp,
    /// `-bp`, or invoked as `mailq`: list the queue.
    ListQueue,
    /// `-bi`, `-I`, or invoked as `newaliases`.
    RebuildAliases,
}

/// The parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    /// `-f` / `-r`: the envelope sender.
    pub sender: Option<String>,
    /// `-F`: the full name for an added From header.
    pub full_name: Option<String>,
    /// `-t`: recipients from the To, Cc and Bcc headers too.
    pub extract: bool,
    /// `-i` / `-oi`: a line with a single dot does not end the message.
    pub ignore_dots: bool,
    /// `-v`: the SMTP dialogue on stderr.
    pub verbose: bool,
    /// `--control PATH` (hidden, for tests): the daemon's control socket.
    pub control: Option<PathBuf>,
    pub recipients: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            mode: Mode::Deliver,
            sender: None,
            full_name: None,
            extract: false,
            ignore_dots: false,
            verbose: false,
            control: None,
            recipients: Vec::new(),
        }
    }
}

/// A command line sendmail cannot honour (exit EX_USAGE).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UsageError {
    #[error("option -{0} requires an argument")]
    MissingArgument(char),
    #[error("unknown option -{0}")]
    Unknown(char),
    #[error("unknown option {0}")]
    UnknownLong(String),
    #[error("-b{0}: mode not supported by wasmtpd's sendmail")]
    Mode(String),
    #[error("-q: queue runs are the daemon's; use `wasmtpctl schedule all`")]
    QueueRun,
}

/// Flags whose argument is the rest of the word or the next word.
const WITH_ARGUMENT: &str = "BCFLNORVXbfhopr";
/// Flags accepted and ignored without an argument (Postfix's list).
const IGNORED: &str = "GUmnx";

/// Parses `args` (without the program name). `program` is the name the
/// binary was invoked as: `mailq` and `newaliases` pick their mode.
pub fn parse(program: &str, args: &[String]) -> Result<Options, UsageError> {
    let mut opts = Options::default();
    match program_name(program) {
        "mailq" => opts.mode = Mode::ListQueue,
        "newaliases" => opts.mode = Mode::RebuildAliases,
        _ => {}
    }
    let mut words = args.iter().peekable();
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        if let Some(long) = word.strip_prefix("--") {
            match long.split_once('=') {
                Some(("control", path)) => opts.control = Some(path.into()),
                None if long == "control" => {
                    let path = words
                        .next()
                        .ok_or_else(|| UsageError::UnknownLong(word.clone()))?;
                    opts.control = Some(path.into());
                }
                _ => return Err(UsageError::UnknownLong(word.clone())),
            }
            continue;
        }
        let Some(flags) = word.strip_prefix('-').filter(|f| !f.is_empty()) else {
            // The first recipient: everything from here on is one.
            opts.recipients.push(word.clone());
            break;
        };
        for (i, flag) in flags.char_indices() {
            if flag == 'q' {
                return Err(UsageError::QueueRun);
            }
            if WITH_ARGUMENT.contains(flag) {
                let glued = &flags[i + flag.len_utf8()..];
                let value = if glued.is_empty() {
                    words
                        .next()
                        .cloned()
                        .ok_or(UsageError::MissingArgument(flag))?
                } else {
                    glued.to_string()
                };
                apply(&mut opts, flag, value)?;
                break;
            }
            match flag {
                't' => opts.extract = true,
                'i' => opts.ignore_dots = true,
                'v' => opts.verbose = true,
                'I' => opts.mode = Mode::RebuildAliases,
                f if IGNORED.contains(f) => {}
                other => return Err(UsageError::Unknown(other)),
            }
        }
    }
    opts.recipients.extend(words.cloned());
    Ok(opts)
}

fn apply(opts: &mut Options, flag: char, value: String) -> Result<(), UsageError> {
    match flag {
        'f' | 'r' => opts.sender = Some(value),
        'F' => opts.full_name = Some(value),
        'b' => {
            opts.mode = match value.as_str() {
                "m" => Mode::Deliver,
                "s" => Mode::Smtp,
                "p" => Mode::ListQueue,
                "i" => Mode::RebuildAliases,
                _ => return Err(UsageError::Mode(value)),
            }
        }
        // `-oi` and `-o i`; every other Sendmail option (-oem, -odb,
        // -odi, -oee, -om…) is ignored, as Postfix does.
        'o' if value == "i" => opts.ignore_dots = true,
        // -B type, -C config, -h hops, -L label, -N dsn, -O opt=val,
        // -p protocol, -R ret, -V envid, -X log: ignored.
        _ => {}
    }
    Ok(())
}

/// `/usr/sbin/mailq` → `mailq`.
fn program_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Options, UsageError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse("/usr/sbin/sendmail", &args)
    }

    #[test]
    fn php_mutt_and_cron_command_lines() {
        let php = p(&["-t", "-i"]).unwrap();
        assert!(php.extract && php.ignore_dots);
        assert_eq!(php.mode, Mode::Deliver);
        let mutt = p(&["-oem", "-oi", "--", "bob@example.org", "ann"]).unwrap();
        assert!(mutt.ignore_dots);
        assert_eq!(mutt.recipients, ["bob@example.org", "ann"]);
        let cron = p(&["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"]).unwrap();
        assert_eq!(cron.full_name.as_deref(), Some("CronDaemon"));
        assert_eq!(cron.recipients, ["root"]);
    }

    #[test]
    fn glued_grouped_and_separate_arguments() {
        let o = p(&["-tif", "joe@example.org", "-F", "Joe Q. Public", "x"]).unwrap();
        assert!(o.extract && o.ignore_dots);
        assert_eq!(o.sender.as_deref(), Some("joe@example.org"));
        assert_eq!(o.full_name.as_deref(), Some("Joe Q. Public"));
        assert_eq!(o.recipients, ["x"]);
        let o = p(&["-fjoe", "-odb", "-v", "a", "-t"]).unwrap();
        assert_eq!(o.sender.as_deref(), Some("joe"));
        assert!(
            o.verbose && !o.extract,
            "flags after a recipient are recipients"
        );
        assert_eq!(o.recipients, ["a", "-t"]);
    }

    #[test]
    fn modes_and_program_names() {
        assert_eq!(p(&["-bs"]).unwrap().mode, Mode::Smtp);
        assert_eq!(p(&["-bp"]).unwrap().mode, Mode::ListQueue);
        assert_eq!(p(&["-bm", "x"]).unwrap().mode, Mode::Deliver);
        assert_eq!(parse("mailq", &[]).unwrap().mode, Mode::ListQueue);
        assert_eq!(
            parse("/usr/bin/newaliases", &[]).unwrap().mode,
            Mode::RebuildAliases
        );
        assert_eq!(p(&["-bd"]), Err(UsageError::Mode("d".into())));
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        assert_eq!(p(&["-f"]), Err(UsageError::MissingArgument('f')));
        assert_eq!(p(&["-k"]), Err(UsageError::Unknown('k')));
        assert_eq!(p(&["-q"]), Err(UsageError::QueueRun));
        assert!(matches!(
            p(&["--frobnicate"]),
            Err(UsageError::UnknownLong(_))
        ));
    }

    #[test]
    fn hidden_control_flag() {
        let o = p(&["--control", "/tmp/s.sock", "-t"]).unwrap();
        assert_eq!(o.control, Some(PathBuf::from("/tmp/s.sock")));
        assert!(o.extract);
        let o = p(&["--control=/x", "bob"]).unwrap();
        assert_eq!(o.control, Some(PathBuf::from("/x")));
    }
}
