//! The stored record format, byte by byte (see docs/FORMAT.md, which is the
//! normative description; this file must agree with it).
//!
//! ```text
//! segment  := SEGMENT_MAGIC (8) | first_sequence u64 | record*
//! record   := record_len u32 | header_len u16 | header | payload_state u8
//!             | stored_len u32 | payload (stored_len) | hash (32)
//! header   := version u8 | flags u8 | sequence u64 | prev_hash (32)
//!             | recorded_at_us i64 | event_id (16) | kind u8
//!             | subject_len u16 | subject | actor_len u16 | actor
//!             | key_len u16 | idempotency_key | payload_digest (32) | payload_len u32
//! hash     := BLAKE3(ENTRY_HASH_DOMAIN || header)
//! ```
//! All integers are little-endian. `record_len` counts the bytes after itself.

use crate::hash::{EntryHash, HASH_LEN, PayloadDigest};

/// First bytes of every segment file; the trailing digits are the format version.
pub const SEGMENT_MAGIC: &[u8; 8] = b"GLJRNL01";
/// Segment file header: magic and the first sequence the segment holds.
pub const SEGMENT_HEADER_LEN: u64 = 16;
/// `version` byte of every header this code writes.
pub const HEADER_VERSION: u8 = 1;
/// `flags` bit: this entry is the last of the atomic group it was written
/// with. Recovery cuts a trailing group that lacks it (a batch torn mid-write).
pub const FLAG_ENDS_GROUP: u8 = 0x01;
/// `payload_state`: the payload bytes follow.
pub const PAYLOAD_PRESENT: u8 = 0;
/// `payload_state`: the payload was erased; `stored_len` is 0 and the digest
/// in the header still covers the original bytes.
pub const PAYLOAD_ERASED: u8 = 1;
/// Largest `record_len` this code accepts: an event is at most 1 MiB, and
/// the strings in a header at most 3 × 64 KiB.
pub const MAX_RECORD_LEN: u32 = 2 << 20;

const FIXED_HEADER_LEN: usize = 1 + 1 + 8 + HASH_LEN + 8 + 16 + 1 + 2 + 2 + 2 + HASH_LEN + 4;
/// Bytes of a record that are not header or payload.
const FRAME_OVERHEAD: usize = 4 + 2 + 1 + 4 + HASH_LEN;

/// The envelope of an entry: everything but the payload bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub sequence: u64,
    pub prev_hash: EntryHash,
    /// Microseconds since the Unix epoch (UTC), from the server's clock,
    /// never less than the previous entry's.
    pub recorded_at_us: i64,
    /// UUID v7 bytes.
    pub event_id: [u8; 16],
    /// The event kind byte; storage does not interpret it.
    pub kind: u8,
    pub flags: u8,
    pub subject: String,
    pub actor: String,
    /// Empty when the append had no key.
    pub idempotency_key: String,
    pub payload_digest: PayloadDigest,
    pub payload_len: u32,
}

impl Envelope {
    pub fn ends_group(&self) -> bool {
        self.flags & FLAG_ENDS_GROUP != 0
    }
}

/// Appends the record for `envelope` and `payload` to `out`; returns the
/// entry hash.
pub fn encode_record(envelope: &Envelope, payload: &[u8], out: &mut Vec<u8>) -> EntryHash {
    let start = out.len();
    out.extend_from_slice(&[0; 4]); // record_len, patched below
    let header_len_at = out.len();
    out.extend_from_slice(&[0; 2]); // header_len, patched below
    let header_start = out.len();
    out.push(HEADER_VERSION);
    out.push(envelope.flags);
    out.extend_from_slice(&envelope.sequence.to_le_bytes());
    out.extend_from_slice(&envelope.prev_hash.0);
    out.extend_from_slice(&envelope.recorded_at_us.to_le_bytes());
    out.extend_from_slice(&envelope.event_id);
    out.push(envelope.kind);
    for s in [
        &envelope.subject,
        &envelope.actor,
        &envelope.idempotency_key,
    ] {
        out.extend_from_slice(&(s.len() as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&envelope.payload_digest.0);
    out.extend_from_slice(&envelope.payload_len.to_le_bytes());
    let header_len = out.len() - header_start;
    let hash = EntryHash::of_header(&out[header_start..]);
    out[header_len_at..header_start].copy_from_slice(&(header_len as u16).to_le_bytes());
    out.push(PAYLOAD_PRESENT);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&hash.0);
    let record_len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&record_len.to_le_bytes());
    hash
}

/// A record inside a buffer, split into its parts but not yet checked.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    pub header: &'a [u8],
    pub payload_state: u8,
    pub payload: &'a [u8],
    pub stored_hash: [u8; HASH_LEN],
    /// Total bytes of the record, length prefix included.
    pub len: usize,
}

/// What lies at the start of a buffer.
#[derive(Debug)]
pub enum Frame<'a> {
    Record(RecordRef<'a>),
    /// The buffer ends before the record does.
    Incomplete,
    /// The bytes cannot be a record of this format.
    Malformed(String),
}

/// Splits the record at the start of `buf`.
pub fn parse_frame(buf: &[u8]) -> Frame<'_> {
    if buf.len() < 4 {
        return Frame::Incomplete;
    }
    let record_len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes"));
    if (record_len as usize) < FRAME_OVERHEAD - 4 + FIXED_HEADER_LEN || record_len > MAX_RECORD_LEN
    {
        return Frame::Malformed(format!("record length {record_len} is out of range"));
    }
    let total = 4 + record_len as usize;
    if buf.len() < total {
        return Frame::Incomplete;
    }
    let rec = &buf[4..total];
    let header_len = u16::from_le_bytes([rec[0], rec[1]]) as usize;
    let Some(after_header) = 2usize
        .checked_add(header_len)
        .filter(|&n| n + 5 + HASH_LEN <= rec.len())
    else {
        return Frame::Malformed(format!(
            "header length {header_len} does not fit the record"
        ));
    };
    let header = &rec[2..after_header];
    let payload_state = rec[after_header];
    let stored_len = u32::from_le_bytes(
        rec[after_header + 1..after_header + 5]
            .try_into()
            .expect("4 bytes"),
    ) as usize;
    let payload_start = after_header + 5;
    if payload_start + stored_len + HASH_LEN != rec.len() {
        return Frame::Malformed(format!(
            "stored payload length {stored_len} does not fit the record length {record_len}"
        ));
    }
    let payload = &rec[payload_start..payload_start + stored_len];
    let stored_hash = rec[payload_start + stored_len..]
        .try_into()
        .expect("32 bytes");
    Frame::Record(RecordRef {
        header,
        payload_state,
        payload,
        stored_hash,
        len: total,
    })
}

/// The fixed-size fields of a header, parsed without allocating.
#[derive(Clone, Copy, Debug)]
pub struct HeaderFields {
    pub flags: u8,
    pub sequence: u64,
    pub prev_hash: [u8; HASH_LEN],
    pub recorded_at_us: i64,
    pub payload_digest: [u8; HASH_LEN],
    pub payload_len: u32,
}

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("header ends after {} bytes, inside a field", self.buf.len()))?;
        let bytes = &self.buf[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn string(&mut self, what: &str) -> Result<&'a str, String> {
        let len = u16::from_le_bytes(self.array()?) as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| format!("{what} is not UTF-8"))
    }
}

/// A header parsed without copying its strings.
#[derive(Clone, Copy, Debug)]
pub struct HeaderView<'a> {
    pub fields: HeaderFields,
    pub event_id: [u8; 16],
    pub kind: u8,
    pub subject: &'a str,
    pub actor: &'a str,
    pub idempotency_key: &'a str,
}

/// Parses a header in full; `Err` says why the bytes are not a header.
pub fn parse_header_view(header: &[u8]) -> Result<HeaderView<'_>, String> {
    let fields = header_fields(header)?;
    let mut c = Cursor {
        buf: header,
        at: 1 + 1 + 8 + HASH_LEN + 8,
    };
    let event_id = c.array::<16>()?;
    let kind = c.array::<1>()?[0];
    let subject = c.string("subject")?;
    let actor = c.string("actor")?;
    let idempotency_key = c.string("idempotency key")?;
    Ok(HeaderView {
        fields,
        event_id,
        kind,
        subject,
        actor,
        idempotency_key,
    })
}

/// Parses a header into an owned [`Envelope`].
pub fn parse_header(header: &[u8]) -> Result<Envelope, String> {
    let v = parse_header_view(header)?;
    Ok(Envelope {
        sequence: v.fields.sequence,
        prev_hash: EntryHash(v.fields.prev_hash),
        recorded_at_us: v.fields.recorded_at_us,
        event_id: v.event_id,
        kind: v.kind,
        flags: v.fields.flags,
        subject: v.subject.to_owned(),
        actor: v.actor.to_owned(),
        idempotency_key: v.idempotency_key.to_owned(),
        payload_digest: PayloadDigest(v.fields.payload_digest),
        payload_len: v.fields.payload_len,
    })
}

/// Parses what chain verification needs from a header.
pub fn header_fields(header: &[u8]) -> Result<HeaderFields, String> {
    let mut c = Cursor { buf: header, at: 0 };
    let version = c.array::<1>()?[0];
    if version != HEADER_VERSION {
        return Err(format!("unknown header version {version}"));
    }
    let flags = c.array::<1>()?[0];
    let sequence = u64::from_le_bytes(c.array()?);
    let prev_hash = c.array()?;
    let recorded_at_us = i64::from_le_bytes(c.array()?);
    c.take(16 + 1)?; // event id, kind
    for _ in 0..3 {
        let len = u16::from_le_bytes(c.array()?) as usize;
        c.take(len)?;
    }
    let payload_digest = c.array()?;
    let payload_len = u32::from_le_bytes(c.array()?);
    if c.at != header.len() {
        return Err(format!(
            "header has {} bytes after its last field",
            header.len() - c.at
        ));
    }
    Ok(HeaderFields {
        flags,
        sequence,
        prev_hash,
        recorded_at_us,
        payload_digest,
        payload_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            sequence: 7,
            prev_hash: EntryHash([3; 32]),
            recorded_at_us: 1_764_806_400_000_000,
            event_id: [9; 16],
            kind: 2,
            flags: FLAG_ENDS_GROUP,
            subject: "support-bot/triage-prompt".into(),
            actor: "ci-main".into(),
            idempotency_key: "run-1".into(),
            payload_digest: PayloadDigest::of(b"payload"),
            payload_len: 7,
        }
    }

    #[test]
    fn a_record_round_trips() {
        let mut buf = Vec::new();
        let hash = encode_record(&envelope(), b"payload", &mut buf);
        let Frame::Record(rec) = parse_frame(&buf) else {
            panic!("not a record")
        };
        assert_eq!(rec.len, buf.len());
        assert_eq!(rec.payload, b"payload");
        assert_eq!(rec.stored_hash, hash.0);
        assert_eq!(EntryHash::of_header(rec.header), hash);
        let parsed = parse_header(rec.header).unwrap();
        assert_eq!(parsed, envelope());
    }

    #[test]
    fn every_proper_prefix_is_incomplete() {
        let mut buf = Vec::new();
        encode_record(&envelope(), b"payload", &mut buf);
        for cut in 0..buf.len() {
            assert!(
                matches!(parse_frame(&buf[..cut]), Frame::Incomplete),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn zeroes_are_malformed_not_a_record() {
        assert!(matches!(parse_frame(&[0; 64]), Frame::Malformed(_)));
    }

    /// The layout documented in docs/FORMAT.md, checked field by field.
    #[test]
    fn header_layout_matches_the_documented_offsets() {
        let mut buf = Vec::new();
        encode_record(&envelope(), b"payload", &mut buf);
        let header_len = u16::from_le_bytes([buf[4], buf[5]]) as usize;
        let h = &buf[6..6 + header_len];
        assert_eq!(h[0], HEADER_VERSION);
        assert_eq!(h[1], FLAG_ENDS_GROUP);
        assert_eq!(u64::from_le_bytes(h[2..10].try_into().unwrap()), 7);
        assert_eq!(&h[10..42], &[3; 32]);
        assert_eq!(
            i64::from_le_bytes(h[42..50].try_into().unwrap()),
            1_764_806_400_000_000
        );
        assert_eq!(&h[50..66], &[9; 16]);
        assert_eq!(h[66], 2);
        assert_eq!(u16::from_le_bytes([h[67], h[68]]), 25);
        assert_eq!(&h[69..94], b"support-bot/triage-prompt");
        assert_eq!(header_len, FIXED_HEADER_LEN + 25 + 7 + 5);
    }
}
