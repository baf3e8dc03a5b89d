//! smtpctl(8) output formats.
