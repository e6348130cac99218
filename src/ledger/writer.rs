//! The single writer: group commit.
//!
//! One thread owns the journal's write end. It takes every append queued
//! since its last pass, decides each against the log (idempotency keys,
//! expected sequences), encodes the accepted ones into one buffer, writes it,
//! syncs once (fdatasync), adds them to the catalog, publishes the new head,
//! and only then acknowledges. Many appends, one sync: durable throughput is bounded by
//! sync latency per group, not per append.
//!
//! A failed write or sync is fatal to the writer (fail-stop):
//! nothing after it is acknowledged, and every later append fails until a
//! restart recovers from the journal.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{SystemTime, UNIX_EPOCH},
};

use tokio::sync::{mpsc, oneshot, watch};

use super::{
    Head,
    checkpoint::Marker,
    projection::{CHECKPOINT_EVERY, CheckpointRequest, Projection},
};
use crate::{
    LedgerError,
    domain::{ActorName, AppendItem, ValidEvent},
    governance::{self, EntryMeta, State},
    hash::{EntryHash, PayloadDigest},
    index::{Catalog, CatalogEntry},
    journal::{
        JournalReader, JournalWriter, RecordPos, StoredEntry,
        format::{Envelope, FLAG_ENDS_GROUP, encode_record},
    },
    proto::v1::Event,
    verify::ChainCursor,
};

/// Most appends decided, written and synced together.
const MAX_GROUP_COMMANDS: usize = 4096;
/// Most bytes written in one group (a batch alone may be 16 MiB).
const MAX_GROUP_BYTES: usize = 32 << 20;

/// One append waiting for the writer.
pub(super) struct Append {
    pub actor: ActorName,
    pub items: Vec<AppendItem>,
    pub expected_head: Option<u64>,
    /// Only shapes field paths in errors (`items[3].…`).
    pub batch: bool,
    pub reply: oneshot::Sender<Result<Appended, LedgerError>>,
}

pub(super) enum Command {
    Append(Append),
    /// Finish everything queued before this, then stop.
    Close {
        reply: oneshot::Sender<()>,
    },
}

impl Command {
    fn payload_bytes(&self) -> usize {
        match self {
            Command::Append(a) => a.items.iter().map(|i| i.event.payload().len()).sum(),
            Command::Close { .. } => 0,
        }
    }
}

/// What an append produced.
#[derive(Debug)]
pub struct Appended {
    pub entries: Vec<StoredEntry>,
    /// The events of new entries, as validated (so answers need not decode
    /// payloads); empty for a replay.
    pub events: Vec<Event>,
    /// The entries were appended earlier with the same idempotency keys.
    pub deduplicated: bool,
}

pub(super) struct Writer {
    pub(super) journal: JournalWriter,
    pub(super) catalog: Arc<RwLock<Catalog>>,
    pub(super) reader: Arc<JournalReader>,
    /// The chain as written so far, including the group being built.
    pub(super) cursor: ChainCursor,
    pub(super) head: watch::Sender<Head>,
    pub(super) failure: Arc<Mutex<Option<String>>>,
    /// The projected state as written so far, including the group being
    /// built; readers see it through `projection` once the group is durable.
    pub(super) state: State,
    pub(super) projection: Arc<Projection>,
    /// Offers the state to the checkpointer thread now and then.
    pub(super) checkpoints: std::sync::mpsc::SyncSender<CheckpointRequest>,
    /// The sequence of the last state offered.
    pub(super) checkpointed: u64,
}

/// What the group being built has claimed but not yet committed, so that
/// decisions later in the same group see earlier ones.
#[derive(Default)]
struct Pending {
    keys: HashMap<String, (u64, PayloadDigest)>,
    subject_last: HashMap<String, u64>,
}

enum Outcome {
    New((Vec<StoredEntry>, Vec<Event>)),
    Duplicate(Vec<u64>),
}

type Reply = oneshot::Sender<Result<Appended, LedgerError>>;

impl Writer {
    pub(super) fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut close = None;
        while close.is_none() {
            let Some(first) = commands.blocking_recv() else {
                break;
            };
            let mut bytes = first.payload_bytes();
            let mut group = vec![first];
            while group.len() < MAX_GROUP_COMMANDS && bytes < MAX_GROUP_BYTES {
                match commands.try_recv() {
                    Ok(command) => {
                        bytes += command.payload_bytes();
                        group.push(command);
                    }
                    Err(_) => break,
                }
            }
            let mut appends = Vec::with_capacity(group.len());
            for command in group {
                match command {
                    Command::Append(append) => appends.push(append),
                    // Everything queued before Close is in `appends`; later
                    // commands are refused when the receiver drops.
                    Command::Close { reply } => {
                        close = Some(reply);
                        break;
                    }
                }
            }
            if let Err(e) = self.commit(appends) {
                let reason = e.to_string();
                tracing::error!(error = %reason, "writer failed; no further appends will be acknowledged");
                *self.failure.lock().expect("failure lock") = Some(reason.clone());
                commands.close();
                while let Ok(command) = commands.try_recv() {
                    if let Command::Append(Append { reply, .. }) = command {
                        let _ = reply.send(Err(LedgerError::WriterFailed(reason.clone())));
                    }
                }
                break;
            }
        }
        if let Some(reply) = close {
            let _ = reply.send(());
        }
    }

    /// Decides, writes, syncs, catalogs and acknowledges one group. `Err` is a
    /// storage failure: every append of the group has been told so.
    fn commit(&mut self, appends: Vec<Append>) -> Result<(), LedgerError> {
        let group_start = self.cursor;
        let mut pending = Pending::default();
        let mut buf = Vec::new();
        let mut records: Vec<(Envelope, EntryHash, usize, u32)> = Vec::new(); // offset in buf, len
        let mut accepted: Vec<(Reply, Outcome)> = Vec::new();
        for Append {
            actor,
            items,
            expected_head,
            batch,
            reply,
        } in appends
        {
            match self.decide(&items, expected_head, batch, &pending) {
                Err(rejection) => {
                    let _ = reply.send(Err(rejection));
                }
                Ok(Some(duplicates)) => accepted.push((reply, Outcome::Duplicate(duplicates))),
                Ok(None) => {
                    // Recorded time never goes backwards along the chain,
                    // even when the wall clock does.
                    let recorded_at_us = now_us().max(self.cursor.last_recorded_at_us);
                    match self.govern(&actor, items, batch, recorded_at_us) {
                        Err(rejection) => {
                            let _ = reply.send(Err(rejection));
                        }
                        Ok(planned) => {
                            let entries = self.encode(
                                planned,
                                recorded_at_us,
                                &mut pending,
                                &mut buf,
                                &mut records,
                            );
                            accepted.push((reply, Outcome::New(entries)));
                        }
                    }
                }
            }
        }
        if !records.is_empty() {
            let written = self
                .journal
                .write_group(group_start.next_sequence, &buf)
                .and_then(|at| self.journal.sync().map(|()| at));
            let (segment, base) = match written {
                Ok(at) => at,
                Err(e) => {
                    fail_all(accepted, &e);
                    return Err(e);
                }
            };
            let mut catalog = self.catalog.write().expect("catalog lock");
            for (envelope, _, offset, len) in &records {
                let pos = RecordPos {
                    segment,
                    offset: base + *offset as u64,
                    len: *len,
                };
                catalog.push(&CatalogEntry::of(envelope, pos));
            }
            drop(catalog);
            self.projection.publish(&self.state);
            if self.state.sequence() >= self.checkpointed + CHECKPOINT_EVERY {
                let marker = Marker {
                    sequence: self.state.sequence(),
                    hash: self.cursor.prev_hash,
                };
                // A busy checkpointer skips this one; the next offer comes soon.
                if self
                    .checkpoints
                    .try_send(CheckpointRequest::Save(marker, self.state.clone()))
                    .is_ok()
                {
                    self.checkpointed = self.state.sequence();
                }
            }
            self.head.send_replace(Head::from(self.cursor));
        }
        for (reply, outcome) in accepted {
            let result = match outcome {
                Outcome::New((entries, events)) => Ok(Appended {
                    entries,
                    events,
                    deduplicated: false,
                }),
                Outcome::Duplicate(sequences) => {
                    self.read_all(&sequences).map(|entries| Appended {
                        entries,
                        events: Vec::new(),
                        deduplicated: true,
                    })
                }
            };
            let _ = reply.send(result);
        }
        Ok(())
    }

    /// Every rule that needs the log: idempotency keys and expected
    /// sequences. `Ok(Some(_))`: a replay of earlier appends.
    fn decide(
        &self,
        items: &[AppendItem],
        expected_head: Option<u64>,
        batch: bool,
        pending: &Pending,
    ) -> Result<Option<Vec<u64>>, LedgerError> {
        let prefix = |i: usize| {
            if batch {
                format!("items[{i}].")
            } else {
                String::new()
            }
        };
        let mut used = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(key) = &item.idempotency_key else {
                continue;
            };
            let found = match pending.keys.get(key.as_str()) {
                Some(&hit) => Some(hit),
                None => self.committed_key(key.as_str())?,
            };
            if let Some((sequence, digest)) = found {
                if digest != item.event.digest() {
                    return Err(LedgerError::IdempotencyConflict {
                        field: format!("{}idempotency_key", prefix(i)),
                        key: key.to_string(),
                        sequence,
                    });
                }
                used.push((i, key, sequence));
            }
        }
        if !used.is_empty() {
            if used.len() == items.len() {
                return Ok(Some(used.into_iter().map(|(_, _, s)| s).collect()));
            }
            let (i, key, sequence) = used[0];
            return Err(LedgerError::PartialReplay {
                field: format!("{}idempotency_key", prefix(i)),
                key: key.to_string(),
                sequence,
            });
        }
        let head = self.cursor.last_sequence();
        if let Some(expected) = expected_head
            && expected != head
        {
            return Err(LedgerError::ExpectationFailed {
                field: "expected_head_sequence".into(),
                expected,
                actual: head,
            });
        }
        for (i, item) in items.iter().enumerate() {
            let Some(expected) = item.expected_subject_sequence else {
                continue;
            };
            let subject = item.event.subject().as_str();
            let actual = match pending.subject_last.get(subject) {
                Some(&s) => s,
                None => self
                    .catalog
                    .read()
                    .expect("catalog lock")
                    .last_of_subject(subject)
                    .unwrap_or(0),
            };
            if expected != actual {
                return Err(LedgerError::ExpectationFailed {
                    field: format!("{}expected_subject_sequence (subject {subject})", prefix(i)),
                    expected,
                    actual,
                });
            }
        }
        Ok(None)
    }

    /// Decides every item against the projected state (referential rules,
    /// policy gates, drift), planning the events the rules derive (actor
    /// `system`) right after the item that caused them, so they share its
    /// atomic group. On success the working state has everything applied; on
    /// rejection it is unchanged (the trial is a cheap copy-on-write clone).
    fn govern(
        &mut self,
        actor: &ActorName,
        items: Vec<AppendItem>,
        batch: bool,
        recorded_at_us: i64,
    ) -> Result<Vec<(ActorName, AppendItem)>, LedgerError> {
        let mut trial = self.state.clone();
        let mut sequence = self.cursor.next_sequence;
        let mut planned = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let meta = EntryMeta {
                sequence,
                recorded_at_us,
                actor: actor.to_string(),
            };
            let derived = governance::decide(&trial, &meta, item.event.event()).map_err(|r| {
                LedgerError::Rejected {
                    field: if batch {
                        format!("items[{i}].event")
                    } else {
                        "event".into()
                    },
                    message: r.message,
                    reasons: r.reasons,
                }
            })?;
            trial.apply(&meta, item.event.event());
            sequence += 1;
            planned.push((actor.clone(), item));
            for event in derived {
                let event = ValidEvent::parse(Some(event), "derived event")?;
                let meta = EntryMeta {
                    sequence,
                    recorded_at_us,
                    actor: ActorName::system().to_string(),
                };
                trial.apply(&meta, event.event());
                sequence += 1;
                planned.push((
                    ActorName::system(),
                    AppendItem {
                        event,
                        idempotency_key: None,
                        expected_subject_sequence: None,
                    },
                ));
            }
        }
        self.state = trial;
        Ok(planned)
    }

    /// Assigns sequences and hashes; appends the records to `buf`.
    fn encode(
        &mut self,
        planned: Vec<(ActorName, AppendItem)>,
        recorded_at_us: i64,
        pending: &mut Pending,
        buf: &mut Vec<u8>,
        records: &mut Vec<(Envelope, EntryHash, usize, u32)>,
    ) -> (Vec<StoredEntry>, Vec<Event>) {
        let count = planned.len();
        let mut entries = Vec::with_capacity(count);
        let mut events = Vec::with_capacity(count);
        for (i, (actor, item)) in planned.into_iter().enumerate() {
            let sequence = self.cursor.next_sequence;
            let envelope = Envelope {
                sequence,
                prev_hash: self.cursor.prev_hash,
                recorded_at_us,
                event_id: event_id(recorded_at_us),
                kind: item.event.kind().as_u8(),
                flags: if i + 1 == count { FLAG_ENDS_GROUP } else { 0 },
                subject: item.event.subject().to_string(),
                actor: actor.to_string(),
                idempotency_key: item
                    .idempotency_key
                    .as_ref()
                    .map(|k| k.to_string())
                    .unwrap_or_default(),
                payload_digest: item.event.digest(),
                payload_len: item.event.payload().len() as u32,
            };
            let offset = buf.len();
            let hash = encode_record(&envelope, item.event.payload(), buf);
            records.push((envelope.clone(), hash, offset, (buf.len() - offset) as u32));
            if let Some(key) = &item.idempotency_key {
                pending
                    .keys
                    .insert(key.to_string(), (sequence, envelope.payload_digest));
            }
            pending
                .subject_last
                .insert(envelope.subject.clone(), sequence);
            self.cursor = ChainCursor {
                next_sequence: sequence + 1,
                prev_hash: hash,
                last_recorded_at_us: recorded_at_us,
            };
            let (event, payload) = item.event.into_parts();
            events.push(event);
            entries.push(StoredEntry {
                envelope,
                hash,
                payload: Some(payload),
            });
        }
        (entries, events)
    }

    /// The committed entry that used `key`. The catalog indexes keys by a
    /// 128-bit hash; a hit is confirmed against the stored key.
    fn committed_key(&self, key: &str) -> Result<Option<(u64, PayloadDigest)>, LedgerError> {
        let Some((sequence, digest)) = self.catalog.read().expect("catalog lock").idempotency(key)
        else {
            return Ok(None);
        };
        let stored = self.read(sequence)?;
        Ok((stored.envelope.idempotency_key == key).then_some((sequence, digest)))
    }

    fn read(&self, sequence: u64) -> Result<StoredEntry, LedgerError> {
        let pos = self
            .catalog
            .read()
            .expect("catalog lock")
            .position(sequence)
            .ok_or_else(|| LedgerError::Corrupt {
                sequence,
                reason: "acknowledged but missing from the catalog".into(),
            })?;
        self.reader.read(sequence, pos)
    }

    fn read_all(&self, sequences: &[u64]) -> Result<Vec<StoredEntry>, LedgerError> {
        sequences
            .iter()
            .map(|&sequence| self.read(sequence))
            .collect()
    }
}

fn fail_all(accepted: Vec<(Reply, Outcome)>, error: &LedgerError) {
    for (reply, _) in accepted {
        let _ = reply.send(Err(LedgerError::WriterFailed(error.to_string())));
    }
}

/// The wall clock, in microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn event_id(recorded_at_us: i64) -> [u8; 16] {
    let us = recorded_at_us.max(0) as u64;
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        us / 1_000_000,
        ((us % 1_000_000) * 1000) as u32,
    );
    *uuid::Uuid::new_v7(ts).as_bytes()
}
