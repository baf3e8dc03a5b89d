//! `sendmail`, `mailq` and `newaliases` as mailwrapper(8) expects them:
//! the enqueue client that cron, mail(1) and PHP's mail() call.
//!
//! Like OpenSMTPD's `smtpctl enqueue`, it holds no privilege and writes
//! no queue file: it connects to the daemon's control socket, asks for
//! an SMTP session (`{"verb":"enqueue"}`), and submits the message over
//! it. The daemon knows the caller's uid from the socket, treats the
//! session as `from local` and logs who it was; the envelope sender is
//! whatever `-f` says, as sendmail has always allowed.
//!
//! When the daemon cannot be reached nothing is queued: sendmail exits
//! 75 (EX_TEMPFAIL) and says so on stderr, and the caller keeps the
//! message (cron and PHP report the failure).
//!
//! The pieces: [`args`] (the command line), [`input`] (reading stdin,
//! dot handling), [`compose`] (headers, `-t`), [`prepare`] (envelope),
//! [`dialogue`] (SMTP), [`error`] (exit codes), [`relay`] (`-bs`).

pub mod args;
pub mod compose;
pub mod dialogue;
pub mod error;
mod identity;
pub mod input;
pub mod prepare;
pub mod relay;
mod socket;

use std::io::{self, BufRead, Write};
use std::path::Path;

pub use args::{Mode, Options, UsageError};
pub use error::EnqueueError;

use dialogue::{submit, Reply, Submission};
use error::{EX_OK, EX_UNAVAILABLE, EX_USAGE};

/// Runs the command as invoked (`program` is argv[0]) with the real
/// stdin, stdout and stderr; returns the exit code.
pub fn main(program: &str, args: &[String]) -> u8 {
    let name = program.rsplit('/').next().unwrap_or("sendmail");
    let opts = match args::parse(program, args) {
        Ok(o) => o,
        Err(err) => {
            eprintln!("{name}: {err}");
            eprintln!(
                "usage: {name} [-tiv] [-f sender] [-F name] [-bs | -bp] [--] [recipient ...]"
            );
            return EX_USAGE;
        }
    };
    let socket = opts.control.clone().unwrap_or_else(socket::default_socket);
    match opts.mode {
        Mode::ListQueue => list_queue(name, &socket),
        Mode::RebuildAliases => {
            eprintln!(
                "{name}: wasmtpd reads its aliases tables itself when it starts or reloads; nothing to rebuild"
            );
            EX_OK
        }
        Mode::Smtp => match socket::open(&socket) {
            Ok((reader, writer)) => relay::relay(reader, writer),
            Err(err) => fail(name, &err),
        },
        Mode::Deliver => {
            let stdin = io::stdin().lock();
            let mut stderr = io::stderr();
            let trace = opts.verbose.then_some(&mut stderr as &mut dyn Write);
            match enqueue(&opts, stdin, &socket, trace) {
                Ok(_) => EX_OK,
                Err(err) => fail(name, &err),
            }
        }
    }
}

/// `mailq` / `sendmail -bp`: the queue as `wasmtpctl show queue` prints
/// it. Like that verb it is for root and the daemon's user or group.
fn list_queue(name: &str, socket: &std::path::Path) -> u8 {
    use crate::control::client::{Client, ClientError};
    use crate::control::Request;
    let answer = Client::connect(socket).and_then(|mut c| c.request(&Request::ShowQueue));
    let data = match answer {
        Ok(data) => data,
        Err(ClientError::Refused(why)) => {
            eprintln!("{name}: {why}");
            return error::EX_NOPERM;
        }
        Err(err) => {
            eprintln!("{name}: {err}");
            return EX_UNAVAILABLE;
        }
    };
    match crate::control::render::render(&Request::ShowQueue, data, false) {
        Ok(text) => {
            let mut out = io::stdout().lock();
            if out.write_all(&text).and_then(|()| out.flush()).is_err() {
                return error::EX_IOERR;
            }
            EX_OK
        }
        Err(err) => {
            eprintln!("{name}: {err}");
            EX_UNAVAILABLE
        }
    }
}

fn fail(name: &str, err: &EnqueueError) -> u8 {
    eprintln!("{name}: {err}");
    err.exit_code()
}

/// Reads the message from `input`, prepares it and submits it to the
/// daemon at `socket`; returns the reply that accepted it.
pub fn enqueue(
    opts: &Options,
    input: impl BufRead,
    socket: &Path,
    trace: Option<&mut dyn Write>,
) -> Result<Reply, EnqueueError> {
    let raw = input::read_message(input, opts.ignore_dots).map_err(EnqueueError::Input)?;
    let me = identity::current_user();
    let mail_name = identity::mail_name();
    let name_env = std::env::var("NAME").ok().filter(|n| !n.trim().is_empty());
    let date = chrono::Local::now().to_rfc2822();
    let message_id = format!(
        "<{}.{:016x}@{mail_name}>",
        chrono::Utc::now().timestamp(),
        rand::random::<u64>()
    );
    let ctx = prepare::Context {
        login: &me.login,
        full_name: name_env.as_deref().or(me.full_name.as_deref()),
        mail_name: &mail_name,
        date: &date,
        message_id: &message_id,
    };
    let prepared = prepare::prepare(opts, &raw, &ctx)?;
    let (mut reader, mut writer) = socket::open(socket)?;
    submit(
        &mut reader,
        &mut writer,
        &Submission {
            sender: prepared.sender.as_deref(),
            recipients: &prepared.recipients,
            content: &prepared.content,
        },
        trace,
    )
}

#[cfg(test)]
mod tests;
