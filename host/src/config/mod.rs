//! smtpd.conf(5): lexer, parser (modern and 5.x grammar), model.
pub mod model;
pub use model::*;
