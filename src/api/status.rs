//! The one place where library errors become gRPC statuses.

use tonic::{Code, Status};

use crate::LedgerError;

impl From<LedgerError> for Status {
    fn from(error: LedgerError) -> Status {
        let code = match &error {
            LedgerError::Invalid { .. } => Code::InvalidArgument,
            LedgerError::NotFound(_) => Code::NotFound,
            LedgerError::Unauthenticated(_) => Code::Unauthenticated,
            LedgerError::PermissionDenied(_) => Code::PermissionDenied,
            LedgerError::IdempotencyConflict { .. } | LedgerError::PartialReplay { .. } => {
                Code::AlreadyExists
            }
            LedgerError::ExpectationFailed { .. } | LedgerError::Rejected { .. } => {
                Code::FailedPrecondition
            }
            LedgerError::ShuttingDown | LedgerError::WriterFailed(_) => Code::Unavailable,
            LedgerError::Corrupt { .. } => Code::DataLoss,
            LedgerError::Locked { .. } | LedgerError::Io { .. } => Code::Internal,
        };
        if code == Code::Internal || code == Code::DataLoss {
            tracing::error!(error = %error, "request failed");
        }
        let message = error.to_string();
        match error {
            // A denied gate travels as a structured GateDecision in the
            // status details too, so clients need not parse the message.
            LedgerError::Rejected { reasons, .. } if !reasons.is_empty() => {
                let decision = crate::proto::v1::GateDecision {
                    allow: false,
                    reasons: reasons
                        .into_iter()
                        .map(super::governance::gate_reason)
                        .collect(),
                    ..Default::default()
                };
                Status::with_details(
                    code,
                    message,
                    prost::Message::encode_to_vec(&decision).into(),
                )
            }
            _ => Status::new(code, message),
        }
    }
}
