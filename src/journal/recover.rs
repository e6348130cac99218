//! Start-up recovery: verify the whole journal, cut a torn tail, refuse damage.
//!
//! What a crash can leave behind, and what happens to it:
//! - a record cut short at the end of the last segment (the file ends inside
//!   it), or zeros where it should be: a write that never completed. It was
//!   never synced, so never acknowledged: cut off, with a log line.
//! - whole records after the last one flagged `FLAG_ENDS_GROUP`: part of an
//!   atomic group (a batch) whose write was torn. Never acknowledged: cut off,
//!   so the batch is all-or-none across crashes too.
//! - a last segment without a complete header: a roll that never completed:
//!   removed.
//!
//! Anything else that fails verification, anywhere, is damage to acknowledged
//! entries: recovery stops with [`LedgerError::Corrupt`] naming the sequence.

use std::{
    fs,
    ops::ControlFlow,
    path::{Path, PathBuf},
};

use super::{
    RecordPos,
    format::{FLAG_ENDS_GROUP, RecordRef, SEGMENT_HEADER_LEN, header_fields},
    journal_dir,
    scan::{Tail, scan_segment},
    segment::{SegmentHeader, list_segments, read_segment_header, sync_dir},
};
use crate::{
    LedgerError,
    error::IoContext,
    hash::EntryHash,
    verify::{ChainCursor, verify_run},
};

/// The state of a verified journal.
#[derive(Debug)]
pub struct Recovery {
    /// After the last whole atomic group: the head of the ledger.
    pub cursor: ChainCursor,
    /// The segment appends continue in, and its length; `None` when no
    /// segment exists yet.
    pub append_at: Option<(u64, u64)>,
    /// What was cut (or, without repair, would be cut) from the tail.
    pub dropped: Option<DroppedTail>,
}

/// A torn tail: bytes after the last whole atomic group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedTail {
    pub segment: PathBuf,
    pub offset: u64,
    pub bytes: u64,
    /// Whole records of an unfinished atomic group among the dropped bytes.
    pub whole_entries: u64,
    /// A segment file that held no complete header and was (or would be) removed.
    pub removed_segment: Option<PathBuf>,
}

/// The end of the last whole atomic group found so far.
#[derive(Clone, Copy)]
struct GroupEnd {
    cursor: ChainCursor,
    segment: u64,
    offset: u64,
}

/// Verifies every entry of the journal in `data_dir`, handing each verified
/// run of records to `on_run`. With `repair`, cuts a torn tail (durably) and
/// creates the journal directory if missing. Records of an unfinished atomic
/// group are handed to `on_run` too, before it is known that they will be
/// cut: the caller truncates to `Recovery::cursor`.
pub fn recover(
    data_dir: &Path,
    repair: bool,
    mut on_run: impl FnMut(&[RecordRef<'_>], &[RecordPos]),
) -> Result<Recovery, LedgerError> {
    let dir = journal_dir(data_dir);
    if repair {
        fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    } else if !dir.exists() {
        return Ok(Recovery {
            cursor: ChainCursor::genesis(),
            append_at: None,
            dropped: None,
        });
    }
    let segments = list_segments(&dir)?;
    let mut cursor = ChainCursor::genesis();
    let mut group_end: Option<GroupEnd> = None;
    let mut torn: Option<(u64, PathBuf, u64)> = None; // segment, path, offset of the torn bytes
    let mut removed_segment = None;
    let mut last_segment = None;

    for (i, (first, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        match read_segment_header(path, *first)? {
            SegmentHeader::Valid => {}
            SegmentHeader::Unwritten if is_last => {
                removed_segment = Some(path.clone());
                break;
            }
            SegmentHeader::Unwritten => {
                return Err(corrupt(
                    *first,
                    format!("segment {} has no header", path.display()),
                ));
            }
            SegmentHeader::Invalid(reason) => {
                return Err(corrupt(
                    *first,
                    format!("segment {}: {reason}", path.display()),
                ));
            }
        }
        if *first != cursor.next_sequence {
            return Err(corrupt(
                cursor.next_sequence,
                format!(
                    "segment {} starts at entry {first}, but entry {} comes next",
                    path.display(),
                    cursor.next_sequence
                ),
            ));
        }
        last_segment = Some(*first);
        if group_end.is_none() {
            group_end = Some(GroupEnd {
                cursor,
                segment: *first,
                offset: SEGMENT_HEADER_LEN,
            });
        }
        let tail = scan_segment::<LedgerError>(path, SEGMENT_HEADER_LEN, |records, offsets| {
            let run_start = cursor;
            verify_run(records, &mut cursor).map_err(|f| corrupt(f.sequence, f.reason))?;
            let positions: Vec<RecordPos> = records
                .iter()
                .zip(offsets)
                .map(|(r, &offset)| RecordPos {
                    segment: *first,
                    offset,
                    len: r.len as u32,
                })
                .collect();
            on_run(records, &positions);
            if let Some(last) = records
                .iter()
                .rposition(|r| r.header[1] & FLAG_ENDS_GROUP != 0)
            {
                let fields = header_fields(records[last].header).expect("verified header");
                group_end = Some(GroupEnd {
                    cursor: ChainCursor {
                        next_sequence: run_start.next_sequence + last as u64 + 1,
                        prev_hash: EntryHash(records[last].stored_hash),
                        last_recorded_at_us: fields.recorded_at_us,
                    },
                    segment: *first,
                    offset: offsets[last] + records[last].len as u64,
                });
            }
            Ok(ControlFlow::Continue(()))
        })?;
        match tail {
            Tail::Clean | Tail::Stopped => {}
            Tail::Partial { offset, .. } if is_last => torn = Some((*first, path.clone(), offset)),
            Tail::Malformed {
                offset,
                rest_zero: true,
                ..
            } if is_last => {
                torn = Some((*first, path.clone(), offset));
            }
            Tail::Partial { bytes, .. } => {
                return Err(corrupt(
                    cursor.next_sequence,
                    format!(
                        "segment {} ends inside a record ({bytes} bytes), but later segments exist",
                        path.display()
                    ),
                ));
            }
            Tail::Malformed { reason, .. } => return Err(corrupt(cursor.next_sequence, reason)),
        }
    }

    let Some(last) = last_segment else {
        // No segment with a header: an empty ledger.
        let dropped = removed_segment.map(|path| DroppedTail {
            segment: path.clone(),
            offset: 0,
            bytes: fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            whole_entries: 0,
            removed_segment: Some(path),
        });
        if repair {
            remove_unwritten(&dir, dropped.as_ref())?;
        }
        return Ok(Recovery {
            cursor,
            append_at: None,
            dropped,
        });
    };
    let end = group_end.expect("a valid segment sets a group end");
    let last_path = super::segment_path(&dir, last);
    let file_len = fs::metadata(&last_path)
        .context(|| format!("reading {}", last_path.display()))?
        .len();
    // Groups never span segments, so the cut is always inside the last one.
    let cut_offset = if end.segment == last {
        end.offset
    } else {
        SEGMENT_HEADER_LEN
    };
    let whole_entries = cursor.next_sequence - end.cursor.next_sequence;
    let dropped = (cut_offset < file_len || removed_segment.is_some()).then(|| DroppedTail {
        segment: torn.map(|(_, p, _)| p).unwrap_or_else(|| last_path.clone()),
        offset: cut_offset,
        bytes: file_len - cut_offset,
        whole_entries,
        removed_segment: removed_segment.clone(),
    });
    if repair && let Some(d) = &dropped {
        if cut_offset < file_len {
            let file = fs::OpenOptions::new()
                .write(true)
                .open(&last_path)
                .context(|| format!("opening {}", last_path.display()))?;
            file.set_len(cut_offset)
                .context(|| format!("truncating {}", last_path.display()))?;
            file.sync_all()
                .context(|| format!("syncing {}", last_path.display()))?;
        }
        remove_unwritten(&dir, Some(d))?;
    }
    Ok(Recovery {
        cursor: end.cursor,
        append_at: Some((last, cut_offset)),
        dropped,
    })
}

fn remove_unwritten(dir: &Path, dropped: Option<&DroppedTail>) -> Result<(), LedgerError> {
    if let Some(path) = dropped.and_then(|d| d.removed_segment.as_ref()) {
        fs::remove_file(path)
            .context(|| format!("removing unwritten segment {}", path.display()))?;
        sync_dir(dir)?;
    }
    Ok(())
}

fn corrupt(sequence: u64, reason: String) -> LedgerError {
    LedgerError::Corrupt { sequence, reason }
}
