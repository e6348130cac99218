//! Reading a segment front to back in large chunks, handing whole records to
//! a visitor in runs (so verification can hash a run in parallel).

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    ops::ControlFlow,
    path::Path,
};

use super::format::{Frame, RecordRef, parse_frame};
use crate::{LedgerError, error::IoContext};

/// How much of a segment is read at a time.
const CHUNK_BYTES: usize = 4 << 20;

/// How a segment ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// The last record ends exactly at the end of the file.
    Clean,
    /// The visitor asked to stop.
    Stopped,
    /// The file ends inside a record that starts at `offset`.
    Partial { offset: u64, bytes: u64 },
    /// The bytes at `offset` are not a record. `rest_zero`: every byte from
    /// there to the end of the file is zero (space the file system allocated
    /// for a write that never landed).
    Malformed {
        offset: u64,
        reason: String,
        rest_zero: bool,
    },
}

/// Calls `visit` with each run of whole records from `start_offset` on, and
/// the file offset of each.
pub fn scan_segment<E: From<LedgerError>>(
    path: &Path,
    start_offset: u64,
    mut visit: impl FnMut(&[RecordRef<'_>], &[u64]) -> Result<ControlFlow<()>, E>,
) -> Result<Tail, E> {
    let context = || format!("reading segment {}", path.display());
    let mut file = File::open(path).context(context)?;
    file.seek(SeekFrom::Start(start_offset)).context(context)?;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_offset = start_offset;
    let mut eof = false;
    let mut want = CHUNK_BYTES;
    loop {
        while !eof && buf.len() < want {
            let filled = buf.len();
            buf.resize(want, 0);
            let n = file.read(&mut buf[filled..]).context(context)?;
            buf.truncate(filled + n);
            eof = n == 0;
        }
        let mut at = 0;
        let mut malformed = None;
        {
            let mut records = Vec::new();
            let mut offsets = Vec::new();
            loop {
                match parse_frame(&buf[at..]) {
                    Frame::Record(record) => {
                        offsets.push(buf_offset + at as u64);
                        at += record.len;
                        records.push(record);
                    }
                    Frame::Incomplete => break,
                    Frame::Malformed(reason) => {
                        malformed = Some(reason);
                        break;
                    }
                }
            }
            if !records.is_empty() && visit(&records, &offsets)?.is_break() {
                return Ok(Tail::Stopped);
            }
        }
        let offset = buf_offset + at as u64;
        if let Some(reason) = malformed {
            let rest_zero = buf[at..].iter().all(|&b| b == 0) && rest_is_zero(&mut file)?;
            return Ok(Tail::Malformed {
                offset,
                reason,
                rest_zero,
            });
        }
        if eof {
            return Ok(if at == buf.len() {
                Tail::Clean
            } else {
                Tail::Partial {
                    offset,
                    bytes: (buf.len() - at) as u64,
                }
            });
        }
        buf.drain(..at);
        buf_offset = offset;
        // A record larger than what is buffered: read until it fits.
        want = if at == 0 {
            buf.len() + CHUNK_BYTES
        } else {
            CHUNK_BYTES
        };
    }
}

fn rest_is_zero(file: &mut File) -> Result<bool, LedgerError> {
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut chunk)
            .context(|| "reading segment tail".into())?;
        if n == 0 {
            return Ok(true);
        }
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}
