//! Chain verification over runs of stored records.
//!
//! Each record is checked on its own (header well-formed, payload digest,
//! entry hash) in parallel; then, in order, each is linked to the one before
//! it (sequence + 1, `prev_hash` = previous hash, time not going back). The
//! first fault in sequence order is reported, whatever thread found it.

use std::thread;

use crate::{
    hash::{EntryHash, PayloadDigest},
    journal::format::{HeaderFields, PAYLOAD_ERASED, PAYLOAD_PRESENT, RecordRef, header_fields},
};

/// Below this many records a run is verified on the calling thread.
const PARALLEL_THRESHOLD: usize = 512;

/// Where verification stands: what the next record must link to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainCursor {
    /// The sequence the next record must have.
    pub next_sequence: u64,
    /// The hash the next record's `prev_hash` must equal.
    pub prev_hash: EntryHash,
    /// The next record's time may not be before this.
    pub last_recorded_at_us: i64,
}

impl ChainCursor {
    /// The cursor before entry 1.
    pub fn genesis() -> ChainCursor {
        ChainCursor {
            next_sequence: 1,
            prev_hash: EntryHash::GENESIS,
            last_recorded_at_us: i64::MIN,
        }
    }

    /// The sequence of the last verified entry (0 before any).
    pub fn last_sequence(&self) -> u64 {
        self.next_sequence - 1
    }
}

/// The first bad entry and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("entry {sequence}: {reason}")]
pub struct ChainFault {
    pub sequence: u64,
    pub reason: String,
}

/// What one record proved on its own.
struct Checked {
    fields: HeaderFields,
    hash: EntryHash,
}

fn check_record(record: &RecordRef<'_>) -> Result<Checked, String> {
    let fields = header_fields(record.header).map_err(|e| format!("malformed header: {e}"))?;
    match record.payload_state {
        PAYLOAD_PRESENT => {
            if record.payload.len() != fields.payload_len as usize {
                return Err(format!(
                    "payload is {} bytes but the header says {}",
                    record.payload.len(),
                    fields.payload_len
                ));
            }
            let digest = PayloadDigest::of(record.payload);
            if digest.0 != fields.payload_digest {
                return Err(format!(
                    "payload digest mismatch: the header says {}, the stored payload hashes to {digest}",
                    PayloadDigest(fields.payload_digest)
                ));
            }
        }
        PAYLOAD_ERASED if record.payload.is_empty() => {}
        PAYLOAD_ERASED => return Err("an erased payload still has stored bytes".into()),
        other => return Err(format!("unknown payload state {other}")),
    }
    let hash = EntryHash::of_header(record.header);
    if hash.0 != record.stored_hash {
        return Err(format!(
            "hash mismatch: stored {}, computed {hash}",
            EntryHash(record.stored_hash)
        ));
    }
    Ok(Checked { fields, hash })
}

fn check_all(records: &[RecordRef<'_>]) -> Vec<Result<Checked, String>> {
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || records.len() < PARALLEL_THRESHOLD {
        return records.iter().map(check_record).collect();
    }
    let chunk = records.len().div_ceil(threads);
    thread::scope(|s| {
        let handles: Vec<_> = records
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(check_record).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("verification thread panicked"))
            .collect()
    })
}

/// Verifies `records`, which must directly follow `cursor`, and advances it.
/// Also returns the flags of each record (for atomic-group tracking).
pub fn verify_run(records: &[RecordRef<'_>], cursor: &mut ChainCursor) -> Result<(), ChainFault> {
    for checked in check_all(records) {
        let sequence = cursor.next_sequence;
        let Checked { fields, hash } = checked.map_err(|reason| ChainFault { sequence, reason })?;
        link(&fields, cursor)?;
        cursor.next_sequence += 1;
        cursor.prev_hash = hash;
        cursor.last_recorded_at_us = fields.recorded_at_us;
    }
    Ok(())
}

fn link(fields: &HeaderFields, cursor: &ChainCursor) -> Result<(), ChainFault> {
    let sequence = cursor.next_sequence;
    let fault = |reason: String| Err(ChainFault { sequence, reason });
    if fields.sequence != sequence {
        return fault(format!(
            "holds sequence {} where {sequence} was expected",
            fields.sequence
        ));
    }
    if fields.prev_hash != cursor.prev_hash.0 {
        return fault(format!(
            "prev_hash {} does not match the hash of entry {} ({})",
            EntryHash(fields.prev_hash),
            sequence - 1,
            cursor.prev_hash
        ));
    }
    if fields.recorded_at_us < cursor.last_recorded_at_us {
        return fault(format!(
            "recorded_at {} µs is before the previous entry's {} µs",
            fields.recorded_at_us, cursor.last_recorded_at_us
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::format::{Envelope, FLAG_ENDS_GROUP, Frame, encode_record, parse_frame};

    /// A chain of `n` records in one buffer.
    fn chain(n: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut prev = EntryHash::GENESIS;
        for sequence in 1..=n {
            let payload = format!("payload {sequence}");
            let envelope = Envelope {
                sequence,
                prev_hash: prev,
                recorded_at_us: 1_000 + sequence as i64,
                event_id: [0; 16],
                kind: 1,
                flags: FLAG_ENDS_GROUP,
                subject: "s".into(),
                actor: "a".into(),
                idempotency_key: String::new(),
                payload_digest: PayloadDigest::of(payload.as_bytes()),
                payload_len: payload.len() as u32,
            };
            prev = encode_record(&envelope, payload.as_bytes(), &mut buf);
        }
        buf
    }

    fn split(buf: &[u8]) -> (Vec<RecordRef<'_>>, Vec<usize>) {
        let (mut records, mut offsets, mut at) = (Vec::new(), Vec::new(), 0);
        while at < buf.len() {
            let Frame::Record(r) = parse_frame(&buf[at..]) else {
                panic!("bad frame")
            };
            offsets.push(at);
            at += r.len;
            records.push(r);
        }
        (records, offsets)
    }

    #[test]
    fn an_intact_chain_verifies_serially_and_in_parallel() {
        for n in [1, 10, 3000] {
            let buf = chain(n);
            let (records, _) = split(&buf);
            let mut cursor = ChainCursor::genesis();
            verify_run(&records, &mut cursor).unwrap();
            assert_eq!(cursor.last_sequence(), n);
        }
    }

    /// Flipping any single byte of any record is caught, and blamed on that
    /// record or (for a byte of the length prefix) no later one.
    #[test]
    fn every_flipped_byte_is_caught_at_its_entry() {
        let buf = chain(3);
        let (_, offsets) = split(&buf);
        for at in 0..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x40;
            let owner = offsets.iter().rposition(|&o| o <= at).unwrap() as u64 + 1;
            let mut pos = 0;
            let mut records = Vec::new();
            let mut framing_fault = None;
            while pos < bad.len() {
                match parse_frame(&bad[pos..]) {
                    Frame::Record(r) => {
                        pos += r.len;
                        records.push(r);
                    }
                    _ => {
                        framing_fault = Some(records.len() as u64 + 1);
                        break;
                    }
                }
            }
            let mut cursor = ChainCursor::genesis();
            let blamed = match verify_run(&records, &mut cursor) {
                Err(fault) => fault.sequence,
                Ok(()) => framing_fault.unwrap_or_else(|| panic!("byte {at} flipped unnoticed")),
            };
            assert!(
                blamed <= owner,
                "byte {at} of entry {owner} blamed on entry {blamed}"
            );
            if framing_fault.is_none() {
                assert_eq!(blamed, owner, "byte {at}");
            }
        }
    }
}
