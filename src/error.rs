//! The library's error type. Conversion to `tonic::Status` lives in
//! `api::status`, and nowhere else.

use std::{io, path::PathBuf};

/// Everything that can go wrong in the ledger, from a rejected request to a
/// damaged journal.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A request field broke a rule. `field` is the path inside the request
    /// (`items[2].event.eval_recorded.metrics[0].value`).
    #[error("{field}: {rule}")]
    Invalid { field: String, rule: String },

    #[error("{0}")]
    NotFound(String),

    /// No credentials, or credentials that name no active principal. The
    /// message never contains the presented token.
    #[error("{0}")]
    Unauthenticated(String),

    /// The caller is known but lacks the role (or scope) the call needs.
    #[error("{0}")]
    PermissionDenied(String),

    /// An idempotency key was reused with different content.
    #[error(
        "{field}: idempotency key {key:?} was already used by entry {sequence} with different content"
    )]
    IdempotencyConflict {
        field: String,
        key: String,
        sequence: u64,
    },

    /// Some items of a batch reuse idempotency keys and others do not: a batch
    /// is replayed only as a whole.
    #[error(
        "{field}: idempotency key {key:?} was already used by entry {sequence}, but other items of this batch are new; a batch is replayed only as a whole"
    )]
    PartialReplay {
        field: String,
        key: String,
        sequence: u64,
    },

    /// A governance rule rejected the event: an unknown reference, a denied
    /// gate, a separation-of-duties breach. `reasons` are the gate's findings.
    #[error("{field}: {message}")]
    Rejected {
        field: String,
        message: String,
        reasons: Vec<crate::governance::GateReason>,
    },

    /// An optimistic-concurrency expectation did not hold.
    #[error("{field}: expected {expected}, but it is {actual}")]
    ExpectationFailed {
        field: String,
        expected: u64,
        actual: u64,
    },

    #[error("the ledger is shutting down; retry against the restarted server")]
    ShuttingDown,

    /// The writer stopped after a storage failure (fail-stop): nothing after
    /// the failure was acknowledged, and nothing more will be until a restart.
    #[error(
        "the ledger writer stopped after a storage failure ({0}); nothing more is accepted until the server restarts"
    )]
    WriterFailed(String),

    #[error("data directory {} is locked by another govledger process", path.display())]
    Locked { path: PathBuf },

    /// The journal is damaged before its tail: never served.
    #[error("journal damaged at entry {sequence}: {reason}")]
    Corrupt { sequence: u64, reason: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl LedgerError {
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        LedgerError::Invalid {
            field: field.into(),
            rule: rule.into(),
        }
    }

    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        LedgerError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Attaches a human context to an `io::Result`.
pub trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, LedgerError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, LedgerError> {
        self.map_err(|source| LedgerError::io(context(), source))
    }
}
