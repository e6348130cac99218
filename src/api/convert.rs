//! Wire messages to domain values and back.

use prost::Message;

use crate::{
    LedgerError,
    domain::{EventKind, IdempotencyKey},
    journal::StoredEntry,
    ledger::Head,
    proto::v1,
};

pub fn entry(stored: StoredEntry) -> v1::Entry {
    let event = stored
        .payload
        .as_deref()
        .and_then(|p| v1::Event::decode(p).ok());
    entry_with(stored, event)
}

/// An entry whose event is already decoded (fresh from an append).
pub fn entry_with(stored: StoredEntry, event: Option<v1::Event>) -> v1::Entry {
    let e = stored.envelope;
    v1::Entry {
        sequence: e.sequence,
        event_id: uuid::Uuid::from_bytes(e.event_id).to_string(),
        recorded_at: Some(timestamp(e.recorded_at_us)),
        actor: e.actor,
        idempotency_key: e.idempotency_key,
        prev_hash: e.prev_hash.0.to_vec(),
        hash: stored.hash.0.to_vec(),
        payload_digest: e.payload_digest.0.to_vec(),
        kind: i32::from(e.kind),
        subject: e.subject,
        ends_atomic_group: e.flags & crate::journal::format::FLAG_ENDS_GROUP != 0,
        payload: stored.payload.unwrap_or_default(),
        event,
    }
}

pub fn head(head: Head) -> v1::Head {
    v1::Head {
        sequence: head.sequence,
        hash: head.hash.0.to_vec(),
        recorded_at: (head.sequence > 0).then(|| timestamp(head.recorded_at_us)),
    }
}

pub fn timestamp(us: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// A wire timestamp as microseconds, rounding up so `>= since` keeps its meaning.
pub fn micros(ts: &prost_types::Timestamp, field: &str) -> Result<i64, LedgerError> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(LedgerError::invalid(field, "nanos must be in 0..1e9"));
    }
    ts.seconds
        .checked_mul(1_000_000)
        .and_then(|s| s.checked_add((i64::from(ts.nanos) + 999) / 1000))
        .ok_or_else(|| LedgerError::invalid(field, "is out of range"))
}

pub fn idempotency_key(key: &str, field: &str) -> Result<Option<IdempotencyKey>, LedgerError> {
    if key.is_empty() {
        return Ok(None);
    }
    IdempotencyKey::parse(key)
        .map(Some)
        .map_err(|rule| LedgerError::invalid(field, rule))
}

/// An event-kind filter: 0 = any.
pub fn kind_filter(kind: i32, field: &str) -> Result<Option<u8>, LedgerError> {
    if kind == 0 {
        return Ok(None);
    }
    u8::try_from(kind)
        .ok()
        .and_then(EventKind::from_u8)
        .map(|k| Some(k.as_u8()))
        .ok_or_else(|| LedgerError::invalid(field, format!("unknown event kind {kind}")))
}
