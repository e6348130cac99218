//! The projected state persisted, so a restart need not decode and fold
//! every event again.
//!
//! A checkpoint is not the record: it is trusted only when the journal
//! holds, at the checkpoint's sequence, an entry with the checkpoint's hash;
//! otherwise (missing, unreadable, from another history, or ahead of a cut
//! journal) the state is rebuilt from entry 1. The marker and the state are
//! one file, written to a temporary name, synced and renamed into place, so
//! a crash leaves either the old checkpoint or the new one.
//!
//! Why a file and not sled: sled 0.34's `flush` is not a durability guarantee
//! (sled issue #1452), and in our test suite it hung inside `flush` (waiting
//! on `StabilityIntervals`) when many stores were opened and closed
//! concurrently. One atomically replaced file needs none of sled's machinery.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use crate::{
    LedgerError,
    error::IoContext,
    governance::State,
    hash::{EntryHash, HASH_LEN},
};

/// Bumped whenever the serialized state's shape changes: an older
/// checkpoint is then ignored and the state rebuilt.
/// 2: the state gained `access`. An older checkpoint is ignored (the state
/// is rebuilt from the journal).
const CHECKPOINT_VERSION: u8 = 2;

/// Which entry a checkpointed state is the state after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub sequence: u64,
    pub hash: EntryHash,
}

pub struct Checkpoints {
    dir: PathBuf,
}

const FILE: &str = "checkpoint";
const TEMP_FILE: &str = "checkpoint.tmp";

impl Checkpoints {
    /// The store under `<data-dir>/state`.
    pub fn open(data_dir: &Path) -> Result<Checkpoints, LedgerError> {
        let dir = data_dir.join("state");
        fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        Ok(Checkpoints { dir })
    }

    /// The stored checkpoint, if there is a readable one.
    pub fn load(&self) -> Option<(Marker, State)> {
        let value = match fs::read(self.dir.join(FILE)) {
            Ok(value) => value,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(error = %e, "reading the state checkpoint failed; rebuilding the state");
                return None;
            }
        };
        let (&version, rest) = value.split_first()?;
        if version != CHECKPOINT_VERSION || rest.len() < 8 + HASH_LEN {
            return None;
        }
        let sequence = u64::from_le_bytes(rest[..8].try_into().ok()?);
        let hash = EntryHash(rest[8..8 + HASH_LEN].try_into().ok()?);
        match serde_json::from_slice::<State>(&rest[8 + HASH_LEN..]) {
            Ok(state) if state.sequence() == sequence => Some((Marker { sequence, hash }, state)),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the state checkpoint does not decode; rebuilding the state");
                None
            }
        }
    }

    /// Stores `state` (the state after `marker`), atomically and durably.
    pub fn save(&self, marker: Marker, state: &State) -> Result<(), LedgerError> {
        let json = serde_json::to_vec(state)
            .map_err(|e| LedgerError::io("serializing the state", std::io::Error::other(e)))?;
        let mut value = Vec::with_capacity(1 + 8 + HASH_LEN + json.len());
        value.push(CHECKPOINT_VERSION);
        value.extend_from_slice(&marker.sequence.to_le_bytes());
        value.extend_from_slice(&marker.hash.0);
        value.extend_from_slice(&json);
        let temp = self.dir.join(TEMP_FILE);
        let mut file =
            fs::File::create(&temp).context(|| format!("creating {}", temp.display()))?;
        file.write_all(&value)
            .context(|| format!("writing {}", temp.display()))?;
        file.sync_data()
            .context(|| format!("syncing {}", temp.display()))?;
        fs::rename(&temp, self.dir.join(FILE))
            .context(|| format!("renaming {}", temp.display()))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .context(|| format!("syncing {}", self.dir.display()))?;
        Ok(())
    }
}
