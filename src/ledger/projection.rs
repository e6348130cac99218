//! The projected state as readers see it: the latest published state, and
//! snapshots for "as of" answers.

use std::sync::RwLock;

use super::checkpoint::Marker;
use crate::governance::State;

/// A snapshot is kept every this many entries. An "as of" answer starts from
/// the nearest snapshot at or before its point and replays only the
/// subject's (and the default policy's) entries since, so it reads at most
/// this many entries however long the log is.
pub const SNAPSHOT_INTERVAL: u64 = 4096;

pub struct Projection {
    /// The state after the last acknowledged group. Cloning it is O(1): the
    /// state is copy-on-write.
    current: RwLock<State>,
    /// States after entries at roughly every `SNAPSHOT_INTERVAL`, ascending;
    /// they share all unchanged parts with each other and with `current`.
    snapshots: RwLock<Vec<State>>,
}

/// Sent to the checkpointer thread.
pub enum CheckpointRequest {
    /// Save this state if the thread is free (periodic).
    Save(Marker, State),
    /// Save this state, then stop (shutdown).
    Final(Marker, State),
}

/// A checkpoint is offered to the checkpointer every this many entries.
pub const CHECKPOINT_EVERY: u64 = 250_000;

impl Projection {
    pub fn new(state: State, snapshots: Vec<State>) -> Projection {
        Projection {
            current: RwLock::new(state),
            snapshots: RwLock::new(snapshots),
        }
    }

    pub fn current(&self) -> State {
        self.current.read().expect("projection lock").clone()
    }

    /// Runs `f` on the current state without cloning it: for the per-request
    /// access check, which needs one lookup, not a snapshot.
    pub fn with_current<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.current.read().expect("projection lock"))
    }

    /// Makes `state` the one readers see (after its group is durable).
    pub(super) fn publish(&self, state: &State) {
        *self.current.write().expect("projection lock") = state.clone();
        let mut snapshots = self.snapshots.write().expect("projection lock");
        let last = snapshots.last().map_or(0, State::sequence);
        if state.sequence() >= last + SNAPSHOT_INTERVAL {
            snapshots.push(state.clone());
        }
    }

    /// Adds snapshots of the history before the first one held (rebuilt in
    /// the background after a start from a checkpoint).
    pub(super) fn install_history(&self, older: Vec<State>) {
        let mut snapshots = self.snapshots.write().expect("projection lock");
        let first = snapshots.first().map_or(u64::MAX, State::sequence);
        let mut merged: Vec<State> = older.into_iter().filter(|s| s.sequence() < first).collect();
        merged.append(&mut snapshots);
        *snapshots = merged;
    }

    /// The latest snapshot taken at or before `sequence` (an empty state when none).
    pub fn snapshot_at_or_before(&self, sequence: u64) -> State {
        let snapshots = self.snapshots.read().expect("projection lock");
        let i = snapshots.partition_point(|s| s.sequence() <= sequence);
        if i == 0 {
            State::default()
        } else {
            snapshots[i - 1].clone()
        }
    }
}

/// Collects snapshots while the state is rebuilt at start-up.
#[derive(Default)]
pub struct SnapshotTaker {
    pub snapshots: Vec<State>,
}

impl SnapshotTaker {
    pub fn offer(&mut self, state: &State) {
        let last = self.snapshots.last().map_or(0, State::sequence);
        if state.sequence() >= last + SNAPSHOT_INTERVAL {
            self.snapshots.push(state.clone());
        }
    }
}
