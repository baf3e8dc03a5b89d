//! smtpd.conf(5): lexer, parser (modern and 5.x grammar), model.
//!
//! [`load`] and [`parse_str`] return either a complete [`Config`] or every
//! error found, each rendered as `file:line: what is wrong`.

mod action;
mod checks;
mod cursor;
pub mod error;
mod filter;
pub mod format;
mod legacy;
pub mod lexer;
mod listen;
mod matching;
pub mod model;
mod parser;
pub mod units;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors, ErrorKind};
pub use filter::BUNDLED_FILTERS;
pub use format::{FormatContext, FormatError};
pub use model::*;

/// Reads `path`; `include "file"` and relative table, certificate and key
/// paths are resolved against the directory of the file that names them.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut p = parser::Parser::new();
    p.parse_file(path, None);
    p.finish()
}

/// Parses configuration text; `origin_name` names it in error messages.
/// Relative paths (includes, table files) are relative to the current
/// directory.
pub fn parse_str(text: &str, origin_name: &Path) -> Result<Config, ConfigErrors> {
    let mut p = parser::Parser::new();
    let ctx = parser::FileCtx {
        file: origin_name.to_path_buf(),
        base: None,
    };
    p.parse_text(text, &ctx);
    p.finish()
}

#[cfg(test)]
mod tests;
