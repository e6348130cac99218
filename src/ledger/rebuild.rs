//! Rebuilding the catalog and the projected state from the journal at
//! start-up, during the verification pass.

use prost::Message;

use std::{
    ops::ControlFlow,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
};

use super::{checkpoint::Marker, projection::SnapshotTaker};
use crate::{
    LedgerError,
    governance::{EntryMeta, State},
    hash::EntryHash,
    index::{Catalog, CatalogEntry},
    journal::{
        self, RecordPos,
        format::{Envelope, PAYLOAD_PRESENT, RecordRef, SEGMENT_HEADER_LEN, parse_header},
    },
    proto::v1::Event,
};

/// The governance metadata of a stored entry.
pub fn entry_meta(envelope: &Envelope) -> EntryMeta {
    EntryMeta {
        sequence: envelope.sequence,
        recorded_at_us: envelope.recorded_at_us,
        actor: envelope.actor.clone(),
    }
}

/// Folds verified records into the catalog and the state one whole atomic
/// group at a time: the records of a torn group (which recovery then cuts)
/// are never applied.
#[derive(Default)]
pub struct Rebuild {
    pub catalog: Catalog,
    pub state: State,
    pub snapshots: SnapshotTaker,
    /// The records of the group being read, not yet known to be whole.
    pending: Vec<(Envelope, RecordPos, Option<Event>)>,
    /// The first record that verified but could not be read as an entry.
    pub error: Option<LedgerError>,
    /// Resuming from a checkpoint: entries up to its marker are only
    /// catalogued, not folded (`state` starts as the checkpointed state).
    resume: Option<Marker>,
    /// Whether the journal holds the marker's entry with the marker's hash.
    pub resume_confirmed: bool,
    resume_digest: Option<[u8; 32]>,
}

impl Rebuild {
    /// A rebuild that trusts `checkpoint` for the entries up to its marker,
    /// provided the journal confirms the marker ([`Self::resume_confirmed`]).
    pub fn resuming(checkpoint: Option<(Marker, State)>) -> Rebuild {
        match checkpoint {
            Some((marker, state)) => Rebuild {
                resume_digest: Some(state.digest()),
                state,
                resume: Some(marker),
                ..Rebuild::default()
            },
            None => Rebuild::default(),
        }
    }

    pub fn resumed_from(&self) -> Option<Marker> {
        self.resume
    }

    /// The digest of the checkpointed state this rebuild resumed from.
    pub fn checkpoint_digest(&self) -> Option<[u8; 32]> {
        self.resume_digest
    }

    pub fn add(&mut self, records: &[RecordRef<'_>], positions: &[RecordPos]) {
        for (record, &pos) in records.iter().zip(positions) {
            if self.error.is_some() {
                return;
            }
            let sequence = self.catalog.len() + self.pending.len() as u64 + 1;
            let corrupt = |reason: String| Some(LedgerError::Corrupt { sequence, reason });
            let envelope = match parse_header(record.header) {
                Ok(envelope) => envelope,
                Err(reason) => {
                    self.error = corrupt(reason);
                    return;
                }
            };
            if let Some(marker) = self.resume
                && sequence <= marker.sequence
            {
                // Folded already: the checkpoint was taken at a group boundary.
                if sequence == marker.sequence {
                    self.resume_confirmed = EntryHash(record.stored_hash) == marker.hash;
                }
                self.catalog.push(&CatalogEntry::of(&envelope, pos));
                continue;
            }
            let event = if record.payload_state == PAYLOAD_PRESENT {
                match Event::decode(record.payload) {
                    Ok(event) => Some(event),
                    Err(e) => {
                        self.error = corrupt(format!("payload is not a govledger.v1.Event: {e}"));
                        return;
                    }
                }
            } else {
                None
            };
            let ends_group = envelope.ends_group();
            self.pending.push((envelope, pos, event));
            if ends_group {
                self.commit_group();
            }
        }
    }

    fn commit_group(&mut self) {
        for (envelope, pos, event) in self.pending.drain(..) {
            self.catalog.push(&CatalogEntry::of(&envelope, pos));
            if let Some(event) = event {
                self.state.apply(&entry_meta(&envelope), &event);
            }
            self.snapshots.offer(&self.state);
        }
    }
}

/// Folds entries `1..=head` of a (verified) journal from scratch: the state
/// a rebuild from entry 1 gives, with its snapshots.
pub fn replay(data_dir: &Path, head: u64) -> Result<Rebuild, LedgerError> {
    let never = AtomicBool::new(false);
    Ok(replay_until(data_dir, head, &never)?.expect("not cancelled"))
}

/// [`replay`], giving up (`None`) once `cancel` is set.
pub fn replay_until(
    data_dir: &Path,
    head: u64,
    cancel: &AtomicBool,
) -> Result<Option<Rebuild>, LedgerError> {
    let mut rebuild = Rebuild::default();
    if head == 0 {
        return Ok(Some(rebuild));
    }
    let first_segment = journal::list_segments(&journal::journal_dir(data_dir))?
        .first()
        .map_or(1, |(first, _)| *first);
    journal::scan_from(
        data_dir,
        first_segment,
        SEGMENT_HEADER_LEN,
        1,
        |records, positions, first| {
            let wanted = (head + 1).saturating_sub(first).min(records.len() as u64) as usize;
            rebuild.add(&records[..wanted], &positions[..wanted]);
            let done = first + wanted as u64 > head
                || rebuild.error.is_some()
                || cancel.load(Ordering::Relaxed);
            Ok(if done {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    if cancel.load(Ordering::Relaxed) {
        return Ok(None);
    }
    match rebuild.error.take() {
        Some(error) => Err(error),
        None => Ok(Some(rebuild)),
    }
}
