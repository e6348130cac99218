//! Segment files: naming, listing, creating.

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
};

use super::format::{SEGMENT_HEADER_LEN, SEGMENT_MAGIC};
use crate::{LedgerError, error::IoContext};

/// A segment is named by the first sequence it holds, zero-padded so that
/// lexical order is sequence order.
pub fn segment_path(dir: &Path, first_sequence: u64) -> PathBuf {
    dir.join(format!("{first_sequence:020}.seg"))
}

/// The segments in `dir`, by first sequence.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LedgerError> {
    let mut segments = Vec::new();
    for entry in
        fs::read_dir(dir).context(|| format!("reading journal directory {}", dir.display()))?
    {
        let entry = entry.context(|| format!("reading journal directory {}", dir.display()))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        let Ok(first) = stem.parse::<u64>() else {
            continue;
        };
        segments.push((first, entry.path()));
    }
    segments.sort();
    Ok(segments)
}

/// Creates a segment holding no records yet, durably (file and directory synced).
pub fn create_segment(dir: &Path, first_sequence: u64) -> Result<File, LedgerError> {
    let path = segment_path(dir, first_sequence);
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .open(&path)
        .context(|| format!("creating segment {}", path.display()))?;
    let mut header = Vec::with_capacity(SEGMENT_HEADER_LEN as usize);
    header.extend_from_slice(SEGMENT_MAGIC);
    header.extend_from_slice(&first_sequence.to_le_bytes());
    file.write_all(&header)
        .context(|| format!("writing segment header {}", path.display()))?;
    file.sync_all()
        .context(|| format!("syncing {}", path.display()))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Makes a directory entry change (a created or removed file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("syncing directory {}", dir.display()))
}

/// What the first bytes of a segment file say.
pub enum SegmentHeader {
    Valid,
    /// Shorter than a header, or all zeros: a roll that crashed before its
    /// header was durable.
    Unwritten,
    Invalid(String),
}

pub fn read_segment_header(path: &Path, expected_first: u64) -> Result<SegmentHeader, LedgerError> {
    let mut file = File::open(path).context(|| format!("opening segment {}", path.display()))?;
    let mut header = Vec::with_capacity(SEGMENT_HEADER_LEN as usize);
    (&mut file)
        .take(SEGMENT_HEADER_LEN)
        .read_to_end(&mut header)
        .context(|| format!("reading segment {}", path.display()))?;
    if header.len() < SEGMENT_HEADER_LEN as usize || header.iter().all(|&b| b == 0) {
        return Ok(SegmentHeader::Unwritten);
    }
    if &header[..8] != SEGMENT_MAGIC {
        return Ok(SegmentHeader::Invalid(
            "not a govledger segment (bad magic)".into(),
        ));
    }
    let first = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if first != expected_first {
        return Ok(SegmentHeader::Invalid(format!(
            "header says the segment starts at entry {first}, its name says {expected_first}"
        )));
    }
    Ok(SegmentHeader::Valid)
}
