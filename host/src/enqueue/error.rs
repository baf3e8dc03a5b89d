//! Why an enqueue failed, and the sysexits(3) code each reason gives:
//! callers such as cron and PHP tell "try again later" (75) from "this
//! message or address is wrong" (65, 67) by it.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::enqueue::dialogue::{Reply, Stage};

pub const EX_OK: u8 = 0;
pub const EX_USAGE: u8 = 64;
pub const EX_DATAERR: u8 = 65;
pub const EX_NOUSER: u8 = 67;
pub const EX_UNAVAILABLE: u8 = 69;
pub const EX_SOFTWARE: u8 = 70;
pub const EX_IOERR: u8 = 74;
pub const EX_NOPERM: u8 = 77;
pub const EX_TEMPFAIL: u8 = 75;
pub const EX_PROTOCOL: u8 = 76;

#[derive(Debug, Error)]
pub enum EnqueueError {
    #[error("cannot reach wasmtpd at {}: {source}; nothing was sent", path.display())]
    Unreachable { path: PathBuf, source: io::Error },
    #[error("wasmtpd at {} refused the enqueue: {reason}; nothing was sent", path.display())]
    Refused { path: PathBuf, reason: String },
    #[error("wasmtpd answered {stage}: {reply}; nothing was sent")]
    Rejected { stage: Stage, reply: Reply },
    #[error("wasmtpd refused recipient <{rcpt}>: {reply}; nothing was sent")]
    Recipient { rcpt: String, reply: Reply },
    #[error("connection to wasmtpd lost {stage}: {source}; {}", lost_outcome(*stage))]
    Lost { stage: Stage, source: io::Error },
    #[error("wasmtpd did not speak SMTP {stage}: {line:?}; {}", lost_outcome(*stage))]
    Protocol { stage: Stage, line: String },
    #[error("cannot read the message: {0}")]
    Input(io::Error),
    #[error("no recipients given (on the command line, or with -t in To, Cc or Bcc)")]
    NoRecipients,
    #[error("bad address {0:?}")]
    BadAddress(String),
}

/// What the user must assume after a failure at `stage`.
fn lost_outcome(stage: Stage) -> &'static str {
    match stage {
        Stage::EndOfData => "the message may or may not have been queued",
        _ => "nothing was sent",
    }
}

impl EnqueueError {
    /// The exit code: temporary failures 75, refused addresses 67,
    /// refused messages 65.
    pub fn exit_code(&self) -> u8 {
        match self {
            EnqueueError::Unreachable { .. } | EnqueueError::Refused { .. } => EX_TEMPFAIL,
            EnqueueError::Lost { .. } => EX_TEMPFAIL,
            EnqueueError::Protocol { .. } => EX_PROTOCOL,
            EnqueueError::Recipient { reply, .. } if reply.code < 500 => EX_TEMPFAIL,
            EnqueueError::Recipient { .. } => EX_NOUSER,
            EnqueueError::Rejected { reply, .. } if reply.code < 500 => EX_TEMPFAIL,
            EnqueueError::Rejected { stage, .. } => match stage {
                Stage::Greeting | Stage::Ehlo => EX_UNAVAILABLE,
                _ => EX_DATAERR,
            },
            EnqueueError::Input(_) => EX_IOERR,
            EnqueueError::NoRecipients => EX_USAGE,
            EnqueueError::BadAddress(_) => EX_DATAERR,
        }
    }
}
