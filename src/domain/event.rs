use prost::Message;

use super::{
    kind::EventKind,
    names::{IdempotencyKey, SubjectName},
    validate,
};
use crate::{LedgerError, hash::PayloadDigest, proto::v1::Event};

/// Largest encoded event.
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Most events in one atomic batch.
pub const MAX_BATCH_ITEMS: usize = 1000;
/// Largest sum of encoded events in one atomic batch.
pub const MAX_BATCH_BYTES: usize = 16 << 20;

/// An event that passed every rule, with the bytes that will be stored.
#[derive(Clone, Debug)]
pub struct ValidEvent {
    event: Event,
    kind: EventKind,
    subject: SubjectName,
    /// The protobuf encoding of `event` as the server produced it: the stored
    /// payload. Encoded once here, so the digest and the stored bytes agree.
    payload: Vec<u8>,
    digest: PayloadDigest,
}

impl ValidEvent {
    /// Validates `event`; `path` is its field path in the request (`event`,
    /// `items[3].event`), used in error messages.
    pub fn parse(event: Option<Event>, path: &str) -> Result<ValidEvent, LedgerError> {
        let event = event.ok_or_else(|| LedgerError::invalid(path, "is required"))?;
        let Some(variant) = event.kind.as_ref() else {
            return Err(LedgerError::invalid(
                path,
                "must set exactly one event kind (version_registered, eval_recorded, ...)",
            ));
        };
        let kind = EventKind::of(variant);
        let size = event.encoded_len();
        if size > MAX_EVENT_BYTES {
            return Err(LedgerError::invalid(
                path,
                format!(
                    "encoded size {size} bytes exceeds the limit of {MAX_EVENT_BYTES} bytes (1 MiB)"
                ),
            ));
        }
        let subject = validate::event(variant, &format!("{path}.{}", kind.field_name()))?;
        let payload = event.encode_to_vec();
        let digest = PayloadDigest::of(&payload);
        Ok(ValidEvent {
            event,
            kind,
            subject,
            payload,
            digest,
        })
    }

    pub fn event(&self) -> &Event {
        &self.event
    }

    pub fn kind(&self) -> EventKind {
        self.kind
    }

    pub fn subject(&self) -> &SubjectName {
        &self.subject
    }

    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    pub fn digest(&self) -> PayloadDigest {
        self.digest
    }

    /// The event and its stored bytes.
    pub fn into_parts(self) -> (Event, Vec<u8>) {
        (self.event, self.payload)
    }
}

/// One event to append, with its retry and concurrency conditions.
#[derive(Clone, Debug)]
pub struct AppendItem {
    pub event: ValidEvent,
    pub idempotency_key: Option<IdempotencyKey>,
    /// The sequence the subject's last entry must have (0 = none yet).
    pub expected_subject_sequence: Option<u64>,
}
