//! Filtered reads served from the indexes.
//!
//! Time filters become a sequence range (recorded time never decreases along
//! the chain, so the entries of a time window are one contiguous run). The
//! most selective remaining filter picks the index to walk (subject, then
//! actor, then kind); the others are checked on each entry's envelope.

use std::{
    ops::RangeInclusive,
    sync::{Arc, RwLock},
};

use crate::{
    LedgerError,
    index::{Catalog, Postings},
    journal::{JournalReader, StoredEntry},
};

/// What to read. Every filter given must match.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// First sequence to consider (0 and 1 both mean the start).
    pub from: u64,
    pub subject: Option<String>,
    pub kind: Option<u8>,
    pub actor: Option<String>,
    /// recorded_at >= since
    pub since_us: Option<i64>,
    /// recorded_at < until
    pub until_us: Option<i64>,
}

enum Walk {
    Empty,
    /// Walk a posting list from index `next`, up to sequence `hi`.
    Postings {
        list: Postings,
        next: usize,
        hi: u64,
    },
    Range(RangeInclusive<u64>),
}

/// Matching entries, ascending by sequence.
pub struct QueryIter {
    walk: Walk,
    catalog: Arc<RwLock<Catalog>>,
    reader: Arc<JournalReader>,
    query: Query,
}

impl QueryIter {
    pub(super) fn new(
        catalog: Arc<RwLock<Catalog>>,
        reader: Arc<JournalReader>,
        query: Query,
        up_to: u64,
    ) -> QueryIter {
        let walk = {
            let c = catalog.read().expect("catalog lock");
            let mut lo = query.from.max(1);
            let mut hi = up_to.min(c.len());
            if let Some(since) = query.since_us {
                lo = lo.max(c.first_at_or_after(since).unwrap_or(u64::MAX));
            }
            if let Some(until) = query.until_us {
                hi = hi.min(c.last_before(until));
            }
            let list = if let Some(subject) = &query.subject {
                Some(Postings::Subject(subject.clone()))
            } else if let Some(actor) = &query.actor {
                Some(Postings::Actor(actor.clone()))
            } else {
                query.kind.map(Postings::Kind)
            };
            match list {
                _ if lo > hi => Walk::Empty,
                Some(list) => {
                    let next = c.postings(&list).partition_point(|&s| s < lo);
                    Walk::Postings { list, next, hi }
                }
                None => Walk::Range(lo..=hi),
            }
        };
        QueryIter {
            walk,
            catalog,
            reader,
            query,
        }
    }

    fn matches(&self, entry: &StoredEntry) -> bool {
        let e = &entry.envelope;
        self.query.subject.as_ref().is_none_or(|s| *s == e.subject)
            && self.query.actor.as_ref().is_none_or(|a| *a == e.actor)
            && self.query.kind.is_none_or(|k| k == e.kind)
    }

    fn next_sequence(&mut self) -> Option<u64> {
        match &mut self.walk {
            Walk::Empty => None,
            Walk::Range(range) => range.next(),
            Walk::Postings { list, next, hi } => {
                let c = self.catalog.read().expect("catalog lock");
                let sequence = *c.postings(list).get(*next).filter(|&&s| s <= *hi)?;
                *next += 1;
                Some(sequence)
            }
        }
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
}

impl Iterator for QueryIter {
    type Item = Result<StoredEntry, LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let sequence = self.next_sequence()?;
            match self.read(sequence) {
                Ok(entry) if self.matches(&entry) => return Some(Ok(entry)),
                Ok(_) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
