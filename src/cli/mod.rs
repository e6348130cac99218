//! The binary's commands, one file per area; `main.rs` only parses and
//! dispatches. Exit codes are decided here, from the error's cause.

pub mod access;
pub mod audit;
pub mod record;

use anyhow::Context;
use govledger::{LedgerError, connect::ClientArgs};

/// A gate denied, or verification found damage (or a rebuild differs).
pub const EXIT_DENIED_OR_DAMAGED: u8 = 1;
/// The command line was wrong (clap uses 2 as well).
pub const EXIT_USAGE: u8 = 2;
/// The server could not be reached.
pub const EXIT_UNREACHABLE: u8 = 3;
/// The server refused the request (its reason is printed).
pub const EXIT_REJECTED: u8 = 4;
/// A local failure: data directory locked or unreadable, I/O.
pub const EXIT_LOCAL_FAILURE: u8 = 5;

/// Text shown under `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 ok; 1 gate denied, verification failed, or a rebuilt state differs; 2 usage error; 3 server unreachable; 4 rejected by the server (its reason is printed); 5 local failure (data directory locked or unreadable, I/O).";

/// A usage error found after parsing (e.g. an unsafe flag combination).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// How to print results.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// One JSON object per line instead of tables.
    pub json: bool,
}

impl Output {
    pub fn line(&self, value: &serde_json::Value) {
        say_line(format_args!("{value}"));
    }
}

/// Prints a line of a command's report (see the `say!` macro). A closed standard output (`| head`)
/// is not a failure: the work is done, and the reader wanted no more.
/// Output that must not be lost (a new token) uses a checked write instead.
pub fn say_line(line: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}")
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("govledger: writing to standard output: {e}");
    }
}

/// `println!` for command reports, through [`say_line`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::say_line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// Lowercase hex, as digests and hashes are printed.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn timestamp_text(t: &prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// The exit code for a failed command, from the first cause that tells.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(status) = cause.downcast_ref::<tonic::Status>() {
            return match status.code() {
                tonic::Code::Unavailable if is_transport(status) => EXIT_UNREACHABLE,
                _ => EXIT_REJECTED,
            };
        }
        if cause.downcast_ref::<tonic::transport::Error>().is_some() {
            return EXIT_UNREACHABLE;
        }
        if cause.downcast_ref::<UsageError>().is_some()
            || cause
                .downcast_ref::<govledger::connect::ConfigError>()
                .is_some()
        {
            return EXIT_USAGE;
        }
        match cause.downcast_ref::<LedgerError>() {
            Some(LedgerError::Corrupt { .. }) => return EXIT_DENIED_OR_DAMAGED,
            // Offline access changes are checked like the API's.
            Some(
                LedgerError::Invalid { .. }
                | LedgerError::Rejected { .. }
                | LedgerError::NotFound(_),
            ) => return EXIT_REJECTED,
            _ => {}
        }
    }
    EXIT_LOCAL_FAILURE
}

/// The error as one line for stderr: each layer of context, then the cause.
/// A server's status reads as "permission denied: <its message>", not as
/// tonic's debug-like rendering, so the server's reason is what one reads.
pub fn describe(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let part = match cause.downcast_ref::<tonic::Status>() {
            Some(status) => {
                let text = format!("{}: {}", code_words(status.code()), status.message());
                // Nothing beneath a status adds to what it says.
                parts.push(text);
                break;
            }
            None => cause.to_string(),
        };
        // Some errors repeat their source in their own message.
        if !parts.last().is_some_and(|last| last.ends_with(&part)) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

/// `PermissionDenied` → "permission denied".
fn code_words(code: tonic::Code) -> String {
    let name = format!("{code:?}");
    let mut words = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            words.push(' ');
        }
        words.push(c.to_ascii_lowercase());
    }
    words
}

/// An Unavailable status made by the client's transport (no connection),
/// rather than one the server sent (e.g. shutting down).
fn is_transport(status: &tonic::Status) -> bool {
    use std::error::Error;
    status
        .source()
        .is_some_and(|s| s.downcast_ref::<tonic::transport::Error>().is_some())
        || status.message().contains("connect")
        || status.message().contains("transport")
}

/// A runtime for one client command (a single thread is plenty).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Connects with the client flags and runs `f` on the connection.
pub fn online<T, F, Fut>(client: &ClientArgs, f: F) -> anyhow::Result<T>
where
    F: FnOnce(govledger::connect::Connection) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    runtime()?.block_on(async {
        let conn = client.config()?.connect().await?;
        f(conn).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_status_reads_as_its_code_in_words_and_its_message() {
        let error = anyhow::Error::new(tonic::Status::permission_denied(
            "bob may not append deployment_recorded: it needs the deployer role",
        ))
        .context("recording the deployment");
        assert_eq!(
            describe(&error),
            "recording the deployment: permission denied: bob may not append \
             deployment_recorded: it needs the deployer role"
        );
        assert_eq!(exit_code(&error), EXIT_REJECTED);
        let error = anyhow::Error::new(tonic::Status::failed_precondition("gate denied"));
        assert_eq!(describe(&error), "failed precondition: gate denied");
    }
}
