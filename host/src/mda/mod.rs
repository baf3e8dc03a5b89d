//! Local delivery methods (OpenSMTPD's mda): maildir, mbox, LMTP and
//! piping to a command, plus running them as the recipient's user.
//!
//! Every method reports an [`Outcome`], the only thing the scheduler acts
//! on: remove the envelope, retry it later, or bounce it.

pub mod command;
pub mod dirsync;
mod error;
pub mod lmtp;
mod lock;
pub mod maildir;
pub mod mbox;
pub mod pool;
pub mod privsep;
mod reply;
pub mod split;

pub use command::deliver_command;
pub use dirsync::DirSyncer;
pub use error::MdaError;
pub use lmtp::deliver_lmtp;
pub use maildir::{deliver_maildir, deliver_maildir_with};
pub use mbox::deliver_mbox;
pub use pool::{worker_main, LocalRunner, WorkerPool};
pub use privsep::{child_main, run_local_job, JobMethod, LocalJob};
pub use split::split_command;

use serde::{Deserialize, Serialize};

/// The result of one delivery attempt for one recipient. The string is a
/// short human-readable detail for logs and bounces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Ok(String),
    TempFail(String),
    PermFail(String),
}

impl Outcome {
    /// Maps an error to the outcome the scheduler should act on.
    pub fn from_error(err: &MdaError) -> Outcome {
        if err.is_temporary() {
            Outcome::TempFail(err.to_string())
        } else {
            Outcome::PermFail(err.to_string())
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    pub fn detail(&self) -> &str {
        match self {
            Outcome::Ok(s) | Outcome::TempFail(s) | Outcome::PermFail(s) => s,
        }
    }
}
