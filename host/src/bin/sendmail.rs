//! `sendmail` (and, by the name it is invoked as, `mailq` and
//! `newaliases`): enqueues a message through the running wasmtpd. See
//! `wasmtpd::enqueue`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut argv = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let program = argv.next().unwrap_or_else(|| "sendmail".to_string());
    let args: Vec<String> = argv.collect();
    ExitCode::from(wasmtpd::enqueue::main(&program, &args))
}
