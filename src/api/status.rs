//! The one place where library errors become gRPC statuses.

use tonic::{Code, Status};

use crate::LedgerError;

impl From<LedgerError> for Status {
    fn from(error: LedgerError) -> Status {
        let code = match &error {
            LedgerError::Invalid { .. } => Code::InvalidArgument,
            LedgerError::NotFound(_) => Code::NotFound,
            LedgerError::IdempotencyConflict { .. } | LedgerError::PartialReplay { .. } => {
                Code::AlreadyExists
            }
            LedgerError::ExpectationFailed { .. } => Code::FailedPrecondition,
            LedgerError::ShuttingDown | LedgerError::WriterFailed(_) => Code::Unavailable,
            LedgerError::Corrupt { .. } => Code::DataLoss,
            LedgerError::Locked { .. } | LedgerError::Io { .. } => Code::Internal,
        };
        if code == Code::Internal || code == Code::DataLoss {
            tracing::error!(error = %error, "request failed");
        }
        Status::new(code, error.to_string())
    }
}
