//! The [`Ledger`] handle: opening and recovering a data directory, appends
//! through the single writer thread, and reads.

mod checkpoint;
mod projection;
mod query;
mod rebuild;
mod writer;

use std::{
    fs::{self, File, TryLockError},
    ops::ControlFlow,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, SyncSender},
    },
    thread,
    time::Instant,
};

use prost::Message;
use tokio::sync::{mpsc, oneshot, watch};

pub use query::{Query, QueryIter};
pub use writer::{Appended, now_us};

use self::{
    checkpoint::{Checkpoints, Marker},
    projection::{CheckpointRequest, Projection},
    rebuild::Rebuild,
    writer::{Append, Command, Writer},
};
use crate::{
    LedgerError,
    domain::{ActorName, AppendItem},
    error::IoContext,
    governance::{State, state::DEFAULT_POLICY_SUBJECT},
    hash::EntryHash,
    index::{Catalog, Postings},
    journal::{self, JournalReader, JournalWriter, RecordPos, StoredEntry},
    proto::v1::Event,
    verify::{ChainCursor, ChainFault, verify_run},
};

/// How a ledger is opened.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    pub data_dir: PathBuf,
    /// A segment file is closed and a new one started past this size.
    pub max_segment_bytes: u64,
}

impl LedgerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> LedgerConfig {
        LedgerConfig {
            data_dir: data_dir.into(),
            max_segment_bytes: 64 << 20,
        }
    }
}

/// The last entry of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// 0 for an empty log.
    pub sequence: u64,
    pub hash: EntryHash,
    /// `i64::MIN` for an empty log.
    pub recorded_at_us: i64,
}

impl From<ChainCursor> for Head {
    fn from(c: ChainCursor) -> Head {
        Head {
            sequence: c.last_sequence(),
            hash: c.prev_hash,
            recorded_at_us: c.last_recorded_at_us,
        }
    }
}

/// The outcome of verifying a range of the chain.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    pub from: u64,
    pub to: u64,
    pub checked: u64,
    pub fault: Option<ChainFault>,
    /// Hash of entry `to` (when valid).
    pub head_hash: EntryHash,
}

/// A handle on an open ledger. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    reader: Arc<JournalReader>,
    /// Indexes over every acknowledged entry; extended by the writer.
    catalog: Arc<RwLock<Catalog>>,
    /// The projected governance state, published by the writer.
    projection: Arc<Projection>,
    /// Appends go to the writer thread through this queue, in order.
    commands: mpsc::Sender<Command>,
    /// The acknowledged head: published by the writer after an append is
    /// durable and indexed, so whatever it names is readable.
    head: watch::Receiver<Head>,
    /// Why the writer stopped, if it failed (fail-stop).
    failure: Arc<Mutex<Option<String>>>,
    writer: Mutex<Option<thread::JoinHandle<()>>>,
    /// Saves the projected state (a checkpoint file) now and then, and at close.
    checkpointer: Mutex<Option<(SyncSender<CheckpointRequest>, thread::JoinHandle<()>)>>,
    /// Tells background work (the history rebuild) to stop.
    closing: Arc<AtomicBool>,
    /// Held (with an exclusive lock) until the ledger is closed, so no other
    /// process writes the same journal.
    lock: Mutex<Option<File>>,
}

/// How many append commands may wait for the writer before appends wait.
const QUEUE_DEPTH: usize = 16 * 1024;

impl Ledger {
    /// Opens the ledger in `config.data_dir`, creating it if needed: locks the
    /// directory, verifies the whole journal (cutting a torn tail, refusing
    /// damage), brings the indexes up to date, and starts the writer.
    pub fn open(config: LedgerConfig) -> Result<Ledger, LedgerError> {
        let started = Instant::now();
        let data_dir = config.data_dir.clone();
        fs::create_dir_all(&data_dir)
            .context(|| format!("creating data directory {}", data_dir.display()))?;
        let lock = lock_data_dir(&data_dir)?;

        let checkpoints = Checkpoints::open(&data_dir)?;
        let mut rebuild = Rebuild::resuming(checkpoints.load());
        let recovery = journal::recover(&data_dir, true, |records, positions| {
            rebuild.add(records, positions)
        })?;
        if let Some(error) = rebuild.error.take() {
            return Err(error);
        }
        let head_sequence = recovery.cursor.last_sequence();
        let resumed = rebuild.resumed_from();
        if let Some(marker) = resumed
            && !(rebuild.resume_confirmed && marker.sequence <= head_sequence)
        {
            tracing::warn!(
                checkpoint = marker.sequence,
                head = head_sequence,
                "the state checkpoint does not match the journal; rebuilding the state from entry 1"
            );
            rebuild = rebuild::replay(&data_dir, head_sequence)?;
        }
        let history_to_rebuild = rebuild.resumed_from().map_or(0, |m| m.sequence);
        let checkpoint_digest = rebuild
            .checkpoint_digest()
            .filter(|_| history_to_rebuild > 0);
        let Rebuild {
            catalog,
            state,
            snapshots,
            ..
        } = rebuild;
        if let Some(d) = &recovery.dropped {
            tracing::warn!(
                segment = %d.segment.display(),
                offset = d.offset,
                bytes = d.bytes,
                unfinished_group_entries = d.whole_entries,
                head = recovery.cursor.last_sequence(),
                "journal had a torn tail (a write that was never acknowledged); cut it off"
            );
        }
        let reader = Arc::new(JournalReader::new(&data_dir));
        let catalog = Arc::new(RwLock::new(catalog));
        let projection = Arc::new(Projection::new(state.clone(), snapshots.snapshots));

        let head = Head::from(recovery.cursor);
        let (head_tx, head_rx) = watch::channel(head);
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let failure = Arc::new(Mutex::new(None));
        let journal = JournalWriter::open(&data_dir, &recovery, config.max_segment_bytes)?;
        let (checkpoint_tx, checkpoint_rx) = std::sync::mpsc::sync_channel(1);
        let checkpointer = thread::Builder::new()
            .name("govledger-checkpoint".into())
            .spawn(move || run_checkpointer(checkpoints, checkpoint_rx))
            .context(|| "starting the checkpoint thread".into())?;
        let writer = Writer {
            checkpointed: state.sequence(),
            journal,
            catalog: catalog.clone(),
            reader: reader.clone(),
            cursor: recovery.cursor,
            head: head_tx,
            failure: failure.clone(),
            state,
            projection: projection.clone(),
            checkpoints: checkpoint_tx.clone(),
        };
        let handle = thread::Builder::new()
            .name("govledger-writer".into())
            .spawn(move || writer.run(rx))
            .context(|| "starting the writer thread".into())?;
        tracing::info!(
            data_dir = %data_dir.display(),
            head = head.sequence,
            resumed_from_checkpoint = history_to_rebuild,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ledger open"
        );
        let closing = Arc::new(AtomicBool::new(false));
        if history_to_rebuild > 0 {
            spawn_history_rebuild(
                &data_dir,
                history_to_rebuild,
                checkpoint_digest,
                projection.clone(),
                closing.clone(),
            )?;
        }
        Ok(Ledger {
            inner: Arc::new(Inner {
                data_dir,
                reader,
                catalog,
                projection,
                commands: tx,
                head: head_rx,
                failure,
                writer: Mutex::new(Some(handle)),
                checkpointer: Mutex::new(Some((checkpoint_tx, checkpointer))),
                closing,
                lock: Mutex::new(Some(lock)),
            }),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Appends `items` as one atomic group, as `actor`. Returns once the
    /// entries are durable and visible to every later read. `batch` only
    /// shapes field paths in errors (`items[3].…`).
    pub async fn append(
        &self,
        actor: ActorName,
        items: Vec<AppendItem>,
        expected_head: Option<u64>,
        batch: bool,
    ) -> Result<Appended, LedgerError> {
        let (reply, response) = oneshot::channel();
        let command = Command::Append(Append {
            actor,
            items,
            expected_head,
            batch,
            reply,
        });
        if self.inner.commands.send(command).await.is_err() {
            return Err(self.stopped_error());
        }
        response.await.unwrap_or_else(|_| Err(self.stopped_error()))
    }

    fn stopped_error(&self) -> LedgerError {
        match self.inner.failure.lock().expect("failure lock").clone() {
            Some(reason) => LedgerError::WriterFailed(reason),
            None => LedgerError::ShuttingDown,
        }
    }

    /// The acknowledged head.
    pub fn head(&self) -> Head {
        *self.inner.head.borrow()
    }

    /// A receiver that sees every change of the acknowledged head.
    pub fn watch_head(&self) -> watch::Receiver<Head> {
        self.inner.head.clone()
    }

    /// One acknowledged entry. Blocking (a positional read).
    pub fn entry(&self, sequence: u64) -> Result<StoredEntry, LedgerError> {
        let head = self.head().sequence;
        if sequence == 0 || sequence > head {
            return Err(LedgerError::NotFound(format!(
                "entry {sequence} does not exist (the head is {head})"
            )));
        }
        let pos = self.position(sequence)?;
        self.inner.reader.read(sequence, pos)
    }

    fn position(&self, sequence: u64) -> Result<RecordPos, LedgerError> {
        self.inner
            .catalog
            .read()
            .expect("catalog lock")
            .position(sequence)
            .ok_or_else(|| LedgerError::Corrupt {
                sequence,
                reason: "acknowledged but missing from the index".into(),
            })
    }

    /// Entries matching `query` among the first `up_to`, ascending. Blocking.
    pub fn query(&self, query: Query, up_to: u64) -> Result<QueryIter, LedgerError> {
        Ok(QueryIter::new(
            self.inner.catalog.clone(),
            self.inner.reader.clone(),
            query,
            up_to,
        ))
    }

    /// The projected state after the last acknowledged entry.
    pub fn state(&self) -> State {
        self.inner.projection.current()
    }

    /// Runs `f` on the access part of the current state (principals, roles,
    /// tokens) without taking a snapshot: keep `f` short, it holds a read lock.
    pub fn with_access<T>(
        &self,
        f: impl FnOnce(&crate::governance::access::AccessState) -> T,
    ) -> T {
        self.inner
            .projection
            .with_current(|state| f(state.access()))
    }

    /// The last entry recorded at or before `us` (0 = none).
    pub fn sequence_at(&self, us: i64) -> u64 {
        self.inner
            .catalog
            .read()
            .expect("catalog lock")
            .last_before(us.saturating_add(1))
    }

    /// When entry `sequence` was recorded.
    pub fn recorded_at(&self, sequence: u64) -> Option<i64> {
        self.inner
            .catalog
            .read()
            .expect("catalog lock")
            .recorded_at(sequence)
    }

    /// The state as it was after entry `sequence`, exact for `subject` and for
    /// the policies (other subjects may be older). Starts from the nearest
    /// snapshot and replays only the entries of `subject` and of the default
    /// policy subject `*` since, so it reads at most a snapshot interval of
    /// entries. Blocking.
    pub fn state_as_of(&self, subject: &str, sequence: u64) -> Result<State, LedgerError> {
        let current = self.state();
        if sequence >= current.sequence() {
            return Ok(current);
        }
        let mut state = self.inner.projection.snapshot_at_or_before(sequence);
        let from = state.sequence() + 1;
        let replay: Vec<u64> = {
            let catalog = self.inner.catalog.read().expect("catalog lock");
            let window = |list: &[u64]| -> Vec<u64> {
                let lo = list.partition_point(|&s| s < from);
                let hi = list.partition_point(|&s| s <= sequence);
                list[lo..hi].to_vec()
            };
            let mut seqs = window(catalog.postings(&Postings::Subject(subject.to_owned())));
            if subject != DEFAULT_POLICY_SUBJECT {
                seqs.extend(window(
                    catalog.postings(&Postings::Subject(DEFAULT_POLICY_SUBJECT.to_owned())),
                ));
                seqs.sort_unstable();
            }
            seqs
        };
        for s in replay {
            let entry = self.entry(s)?;
            let Some(payload) = &entry.payload else {
                continue;
            };
            let event = Event::decode(payload.as_slice()).map_err(|e| LedgerError::Corrupt {
                sequence: s,
                reason: format!("payload is not a govledger.v1.Event: {e}"),
            })?;
            state.apply(&rebuild::entry_meta(&entry.envelope), &event);
        }
        Ok(state)
    }

    /// Verifies entries `from..=to` (0 = 1 / the head) from the journal files
    /// on disk. Blocking.
    pub fn verify(&self, from: u64, to: u64) -> Result<VerifyReport, LedgerError> {
        let head = self.head();
        let from = from.max(1);
        let to = if to == 0 { head.sequence } else { to };
        if to > head.sequence {
            return Err(LedgerError::invalid(
                "to_sequence",
                format!("must be at most the head sequence {}", head.sequence),
            ));
        }
        if to == 0 {
            return Ok(VerifyReport {
                from,
                to,
                checked: 0,
                fault: None,
                head_hash: EntryHash::GENESIS,
            });
        }
        if from > to {
            return Err(LedgerError::invalid(
                "from_sequence",
                format!("must be at most to_sequence {to}"),
            ));
        }
        let mut cursor = if from == 1 {
            ChainCursor::genesis()
        } else {
            // The range is anchored on the stored hash of the entry before it.
            let before = self.entry(from - 1)?;
            ChainCursor {
                next_sequence: from,
                prev_hash: before.hash,
                last_recorded_at_us: before.envelope.recorded_at_us,
            }
        };
        let start = self.position(from)?;
        let mut fault = None;
        let tail = journal::scan_from(
            &self.inner.data_dir,
            start.segment,
            start.offset,
            from,
            |records, _, _| {
                let wanted = (to + 1 - cursor.next_sequence).min(records.len() as u64) as usize;
                if let Err(f) = verify_run(&records[..wanted], &mut cursor) {
                    fault = Some(f);
                    return Ok(ControlFlow::Break(()));
                }
                Ok(if cursor.next_sequence > to {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            },
        )?;
        if fault.is_none() && cursor.next_sequence <= to {
            fault = Some(ChainFault {
                sequence: cursor.next_sequence,
                reason: match tail {
                    journal::Tail::Malformed { reason, .. } => {
                        format!("malformed record: {reason}")
                    }
                    journal::Tail::Partial { bytes, .. } => {
                        format!("the journal ends {bytes} bytes into this entry")
                    }
                    _ => "missing from the journal".into(),
                },
            });
        }
        Ok(VerifyReport {
            from,
            to,
            checked: cursor.next_sequence - from,
            head_hash: if fault.is_none() {
                cursor.prev_hash
            } else {
                EntryHash::GENESIS
            },
            fault,
        })
    }

    /// Stops the writer after every queued append is done. Appends after
    /// this fail with `ShuttingDown`.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Close { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        let handle = self.inner.writer.lock().expect("writer handle lock").take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        self.inner.closing.store(true, Ordering::Relaxed);
        let checkpointer = self
            .inner
            .checkpointer
            .lock()
            .expect("checkpointer lock")
            .take();
        if let Some((tx, handle)) = checkpointer {
            let head = self.head();
            let marker = Marker {
                sequence: head.sequence,
                hash: head.hash,
            };
            let state = self.state();
            if state.sequence() == head.sequence {
                let _ = tx.send(CheckpointRequest::Final(marker, state));
            }
            drop(tx);
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        // The writer is gone: nothing more is written, so the directory can go
        // to the next process even while stray handles still read.
        self.inner.lock.lock().expect("lock slot").take();
    }
}

/// Saves checkpoints as they are offered; the final one at close, then stops
/// (dropping the sled store, so the directory can be reopened).
fn run_checkpointer(checkpoints: Checkpoints, requests: Receiver<CheckpointRequest>) {
    for request in requests {
        let (marker, state, last) = match request {
            CheckpointRequest::Save(marker, state) => (marker, state, false),
            CheckpointRequest::Final(marker, state) => (marker, state, true),
        };
        let started = Instant::now();
        match checkpoints.save(marker, &state) {
            Ok(()) => tracing::info!(
                sequence = marker.sequence,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "state checkpoint saved"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "saving the state checkpoint failed; the next start replays more of the journal")
            }
        }
        if last {
            break;
        }
    }
}

/// After a start from a checkpoint, the snapshots "as of" answers start from
/// cover only what was folded since. This rebuilds the older ones from the
/// journal in the background, and checks on the way that a replay reaches
/// the checkpointed state. Until it is done, old "as of" answers replay more.
fn spawn_history_rebuild(
    data_dir: &Path,
    through: u64,
    checkpoint_digest: Option<[u8; 32]>,
    projection: Arc<Projection>,
    closing: Arc<AtomicBool>,
) -> Result<(), LedgerError> {
    let data_dir = data_dir.to_path_buf();
    thread::Builder::new()
        .name("govledger-history".into())
        .spawn(move || {
            let started = Instant::now();
            match rebuild::replay_until(&data_dir, through, &closing) {
                Ok(Some(replayed)) => {
                    if checkpoint_digest.is_some_and(|d| d != replayed.state.digest()) {
                        tracing::error!(
                            through,
                            "the state checkpoint differs from a replay of the journal: the live state may be wrong; stop the server and run `govledger rebuild`"
                        );
                    }
                    projection.install_history(replayed.snapshots.snapshots);
                    tracing::info!(through, elapsed_ms = started.elapsed().as_millis() as u64, "history snapshots rebuilt");
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "rebuilding history snapshots failed; old \"as of\" answers replay more"),
            }
        })
        .context(|| "starting the history thread".into())?;
    Ok(())
}

fn lock_data_dir(data_dir: &Path) -> Result<File, LedgerError> {
    let path = data_dir.join("LOCK");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .context(|| format!("opening lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(LedgerError::Locked {
            path: data_dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => {
            Err(LedgerError::io(format!("locking {}", path.display()), e))
        }
    }
}

/// Verifies the journal of a stopped ledger without changing it. Fails with
/// `Locked` while a server holds the directory, and with `Corrupt` naming
/// the first damaged entry.
pub fn verify_offline(data_dir: &Path) -> Result<journal::Recovery, LedgerError> {
    let _lock = lock_data_dir(data_dir)?;
    journal::recover(data_dir, false, |_, _| {})
}

/// What `govledger rebuild` found.
#[derive(Debug)]
pub struct RebuildReport {
    pub head: u64,
    /// Digest of the state rebuilt from entry 1.
    pub rebuilt: [u8; 32],
    /// The checkpointed (live) state it was compared with: its sequence and digest.
    pub checkpoint: Option<(u64, [u8; 32])>,
}

impl RebuildReport {
    /// `Some(true)`: the live state equals the rebuilt one; `None`: there was
    /// no checkpoint at the head to compare with.
    pub fn identical(&self) -> Option<bool> {
        self.checkpoint
            .filter(|(seq, _)| *seq == self.head)
            .map(|(_, digest)| digest == self.rebuilt)
    }
}

/// Rebuilds the projected state of a stopped ledger from entry 1 (verifying
/// the journal on the way), compares its digest with the state the server
/// left (its checkpoint), and stores the rebuilt state as the checkpoint.
pub fn rebuild_offline(data_dir: &Path) -> Result<RebuildReport, LedgerError> {
    let _lock = lock_data_dir(data_dir)?;
    let mut rebuild = Rebuild::default();
    let recovery = journal::recover(data_dir, false, |records, positions| {
        rebuild.add(records, positions)
    })?;
    if let Some(error) = rebuild.error.take() {
        return Err(error);
    }
    let head = recovery.cursor.last_sequence();
    let checkpoints = Checkpoints::open(data_dir)?;
    let checkpoint = checkpoints
        .load()
        .map(|(marker, state)| (marker.sequence, state.digest()));
    let report = RebuildReport {
        head,
        rebuilt: rebuild.state.digest(),
        checkpoint,
    };
    checkpoints.save(
        Marker {
            sequence: head,
            hash: recovery.cursor.prev_hash,
        },
        &rebuild.state,
    )?;
    Ok(report)
}
