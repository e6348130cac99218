//! The journal: the durable record of the ledger.
//!
//! Segment files under `<data-dir>/journal/` hold length-prefixed records
//! (docs/FORMAT.md). One writer appends whole atomic groups and syncs
//! (fdatasync) before anything is acknowledged; readers use positional reads
//! of bytes that are already durable. Storage never interprets payloads.

pub mod format;
mod recover;
mod scan;
mod segment;

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::Write,
    ops::ControlFlow,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

pub use recover::{DroppedTail, Recovery, recover};
pub use scan::{Tail, scan_segment};
pub use segment::{list_segments, segment_path};

use self::format::{
    Envelope, Frame, PAYLOAD_PRESENT, SEGMENT_HEADER_LEN, parse_frame, parse_header,
};
use crate::{LedgerError, error::IoContext, hash::EntryHash};

/// The journal directory inside a data directory.
pub fn journal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("journal")
}

/// Where a record lies: its segment (by first sequence), offset and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordPos {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

impl RecordPos {
    pub const ENCODED_LEN: usize = 20;

    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0; Self::ENCODED_LEN];
        out[..8].copy_from_slice(&self.segment.to_be_bytes());
        out[8..16].copy_from_slice(&self.offset.to_be_bytes());
        out[16..].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<RecordPos> {
        let bytes: &[u8; Self::ENCODED_LEN] = bytes.try_into().ok()?;
        Some(RecordPos {
            segment: u64::from_be_bytes(bytes[..8].try_into().ok()?),
            offset: u64::from_be_bytes(bytes[8..16].try_into().ok()?),
            len: u32::from_be_bytes(bytes[16..].try_into().ok()?),
        })
    }
}

/// An entry as stored: envelope, hash and payload bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    pub envelope: Envelope,
    pub hash: EntryHash,
    /// `None` once the payload has been erased.
    pub payload: Option<Vec<u8>>,
}

impl StoredEntry {
    /// Parses one whole record.
    pub fn from_record(bytes: &[u8]) -> Result<StoredEntry, String> {
        let Frame::Record(record) = parse_frame(bytes) else {
            return Err("not a whole record".into());
        };
        let envelope = parse_header(record.header)?;
        Ok(StoredEntry {
            envelope,
            hash: EntryHash(record.stored_hash),
            payload: (record.payload_state == PAYLOAD_PRESENT).then(|| record.payload.to_vec()),
        })
    }
}

/// Appends atomic groups to the last segment, rolling to a new one when full.
/// Owned by the single writer thread.
pub struct JournalWriter {
    dir: PathBuf,
    file: File,
    /// First sequence of the segment being written.
    segment: u64,
    /// Bytes in that segment so far.
    len: u64,
    /// Roll to a new segment once a group would take the current one past this.
    max_segment_bytes: u64,
}

impl JournalWriter {
    /// Continues the journal where `recovery` left it.
    pub fn open(
        data_dir: &Path,
        recovery: &Recovery,
        max_segment_bytes: u64,
    ) -> Result<Self, LedgerError> {
        let dir = journal_dir(data_dir);
        let (segment, len, file) = match recovery.append_at {
            Some((segment, len)) => {
                let path = segment_path(&dir, segment);
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .context(|| format!("opening segment {} for appending", path.display()))?;
                (segment, len, file)
            }
            None => {
                let first = recovery.cursor.next_sequence;
                (
                    first,
                    SEGMENT_HEADER_LEN,
                    segment::create_segment(&dir, first)?,
                )
            }
        };
        Ok(JournalWriter {
            dir,
            file,
            segment,
            len,
            max_segment_bytes,
        })
    }

    /// Writes one atomic group whose first entry is `first_sequence`; returns
    /// the segment and offset it starts at. Not durable until [`Self::sync`].
    pub fn write_group(
        &mut self,
        first_sequence: u64,
        group: &[u8],
    ) -> Result<(u64, u64), LedgerError> {
        if self.len > SEGMENT_HEADER_LEN && self.len + group.len() as u64 > self.max_segment_bytes {
            // The full segment was synced with its last group; groups never span segments.
            self.file = segment::create_segment(&self.dir, first_sequence)?;
            self.segment = first_sequence;
            self.len = SEGMENT_HEADER_LEN;
        }
        let at = self.len;
        self.file.write_all(group).context(|| {
            format!(
                "writing to segment {}",
                segment_path(&self.dir, self.segment).display()
            )
        })?;
        self.len += group.len() as u64;
        Ok((self.segment, at))
    }

    /// fdatasync: everything written so far is durable when this returns Ok.
    pub fn sync(&mut self) -> Result<(), LedgerError> {
        self.file.sync_data().context(|| {
            format!(
                "syncing segment {}",
                segment_path(&self.dir, self.segment).display()
            )
        })
    }
}

/// Positional reads of durable records. Cheap to share between threads.
pub struct JournalReader {
    dir: PathBuf,
    files: RwLock<HashMap<u64, Arc<File>>>,
}

impl JournalReader {
    pub fn new(data_dir: &Path) -> JournalReader {
        JournalReader {
            dir: journal_dir(data_dir),
            files: RwLock::new(HashMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, segment: u64) -> Result<Arc<File>, LedgerError> {
        if let Some(file) = self.files.read().expect("reader lock").get(&segment) {
            return Ok(file.clone());
        }
        let path = segment_path(&self.dir, segment);
        let file =
            Arc::new(File::open(&path).context(|| format!("opening segment {}", path.display()))?);
        self.files
            .write()
            .expect("reader lock")
            .insert(segment, file.clone());
        Ok(file)
    }

    /// Reads entry `sequence`, which the catalog says lies at `pos`. Damage
    /// is reported at `sequence`, so an auditor learns which entry it hit.
    pub fn read(&self, sequence: u64, pos: RecordPos) -> Result<StoredEntry, LedgerError> {
        let corrupt = |reason: String| LedgerError::Corrupt {
            sequence,
            reason: format!(
                "record at segment {} offset {}: {reason}",
                pos.segment, pos.offset
            ),
        };
        let mut buf = vec![0; pos.len as usize];
        match self.file(pos.segment)?.read_exact_at(&mut buf, pos.offset) {
            Ok(()) => {}
            // The segment is shorter than an acknowledged entry needs: it
            // was cut after the fact, which is damage, not an I/O hiccup.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(corrupt(format!(
                    "the segment ends inside it (truncated; {} bytes expected)",
                    pos.len
                )));
            }
            Err(e) => {
                return Err(LedgerError::io(
                    format!(
                        "reading entry {sequence} at segment {} offset {}",
                        pos.segment, pos.offset
                    ),
                    e,
                ));
            }
        }
        let entry = StoredEntry::from_record(&buf).map_err(corrupt)?;
        if entry.envelope.sequence != sequence {
            return Err(corrupt(format!(
                "holds entry {} where entry {sequence} should be",
                entry.envelope.sequence
            )));
        }
        Ok(entry)
    }
}

/// Where one whole record lies in the journal files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordLocation {
    pub sequence: u64,
    pub segment: PathBuf,
    pub offset: u64,
    pub len: u64,
}

/// Lists every whole record of a journal, in order, without verifying it.
/// For inspection and tests; works on a stopped ledger.
pub fn locate_records(data_dir: &Path) -> Result<Vec<RecordLocation>, LedgerError> {
    let mut found = Vec::new();
    for (first, path) in list_segments(&journal_dir(data_dir))? {
        let mut sequence = first;
        scan_segment::<LedgerError>(&path, SEGMENT_HEADER_LEN, |records, offsets| {
            for (record, &offset) in records.iter().zip(offsets) {
                found.push(RecordLocation {
                    sequence,
                    segment: path.clone(),
                    offset,
                    len: record.len as u64,
                });
                sequence += 1;
            }
            Ok(ControlFlow::Continue(()))
        })?;
    }
    Ok(found)
}

/// Calls `visit` with runs of whole records, starting at `offset` of segment
/// `segment` (whose record there is entry `first_sequence`) and going on
/// through later segments, until `visit` breaks or the journal ends. Each run
/// comes with the position of each record and the sequence of its first.
/// Returns how the last segment read ended (a torn or malformed stretch in
/// an earlier segment ends the scan there).
pub fn scan_from(
    data_dir: &Path,
    segment: u64,
    offset: u64,
    first_sequence: u64,
    mut visit: impl FnMut(
        &[format::RecordRef<'_>],
        &[RecordPos],
        u64,
    ) -> Result<ControlFlow<()>, LedgerError>,
) -> Result<Tail, LedgerError> {
    let mut sequence = first_sequence;
    let mut tail = Tail::Clean;
    for (first, path) in list_segments(&journal_dir(data_dir))? {
        if first < segment {
            continue;
        }
        let start = if first == segment {
            offset
        } else {
            SEGMENT_HEADER_LEN
        };
        tail = scan_segment::<LedgerError>(&path, start, |records, offsets| {
            let positions: Vec<RecordPos> = records
                .iter()
                .zip(offsets)
                .map(|(r, &offset)| RecordPos {
                    segment: first,
                    offset,
                    len: r.len as u32,
                })
                .collect();
            let flow = visit(records, &positions, sequence)?;
            sequence += records.len() as u64;
            Ok(flow)
        })?;
        if tail != Tail::Clean {
            break;
        }
    }
    Ok(tail)
}
