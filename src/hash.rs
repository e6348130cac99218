//! Hash-chain primitives.
//!
//! An entry's hash is `BLAKE3(ENTRY_HASH_DOMAIN || header)`, where `header` is
//! the entry's stored header bytes (docs/FORMAT.md). The header holds the
//! sequence number, the previous entry's hash and the BLAKE3 digest of the
//! payload, so changing any stored byte of any entry breaks verification from
//! that entry on. The payload is covered through its digest, not its bytes, so
//! a payload can later be erased while every hash still verifies.

use std::fmt;

/// Domain-separation prefix of the entry hash. Distinct from any other use of
/// BLAKE3 in the system (payload digests are plain BLAKE3 of the payload), so an
/// entry hash can never be confused with a digest of some other input.
pub const ENTRY_HASH_DOMAIN: &[u8] = b"govledger/v1/entry\x00";

/// Length in bytes of every hash and digest in the ledger.
pub const HASH_LEN: usize = 32;

/// The hash of an entry: what the next entry's `prev_hash` must equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EntryHash(pub [u8; HASH_LEN]);

/// BLAKE3 of an event payload's stored bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PayloadDigest(pub [u8; HASH_LEN]);

impl EntryHash {
    /// The `prev_hash` of entry 1.
    pub const GENESIS: EntryHash = EntryHash([0; HASH_LEN]);

    /// Hashes an entry's stored header bytes.
    pub fn of_header(header: &[u8]) -> EntryHash {
        let mut hasher = blake3::Hasher::new();
        hasher.update(ENTRY_HASH_DOMAIN);
        hasher.update(header);
        EntryHash(*hasher.finalize().as_bytes())
    }
}

impl PayloadDigest {
    pub fn of(payload: &[u8]) -> PayloadDigest {
        PayloadDigest(*blake3::hash(payload).as_bytes())
    }
}

/// Parses exactly 32 bytes, or returns `None`.
pub fn hash_bytes(bytes: &[u8]) -> Option<[u8; HASH_LEN]> {
    bytes.try_into().ok()
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Display for EntryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for EntryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryHash({self})")
    }
}

impl fmt::Display for PayloadDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for PayloadDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayloadDigest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answer from the BLAKE3 reference test vectors
    /// (github.com/BLAKE3-team/BLAKE3, test_vectors/test_vectors.json, input_len 0):
    /// our payload digest is plain, unkeyed BLAKE3.
    #[test]
    fn payload_digest_is_plain_blake3() {
        assert_eq!(
            PayloadDigest::of(b"").to_string(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn entry_hash_is_domain_separated() {
        let header = b"some header bytes";
        assert_ne!(EntryHash::of_header(header).0, PayloadDigest::of(header).0);
        let mut prefixed = ENTRY_HASH_DOMAIN.to_vec();
        prefixed.extend_from_slice(header);
        assert_eq!(
            EntryHash::of_header(header).0,
            *blake3::hash(&prefixed).as_bytes()
        );
    }
}
