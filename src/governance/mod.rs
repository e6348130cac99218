//! The governance core: lifecycle projection, policy gates and drift, as pure
//! functions of the log. No I/O, no async, no gRPC.
//!
//! Deciding is kept apart from applying (cqrs-es style):
//!
//! - [`decide`] holds every rule that needs the state. It may reject an event
//!   (a [`Rejection`]: nothing is appended, nothing changes) and may derive
//!   events the ledger appends right after it, atomically, as [`SYSTEM_ACTOR`]
//!   (the incident of an override, the incident of a drift).
//! - [`State::apply`] is the fold. It cannot fail: the state is a pure
//!   function of the log, so rebuilding from entry 1 gives the live state.
//!
//! # Layout
//!
//! - [`state`]: the projected [`State`] and its parts, the read accessors,
//!   [`State::digest`], and the cost of cloning it.
//! - `apply`: [`State::apply`], the total fold.
//! - `decide`: [`decide`], the referential, approval and deployment rules.
//! - `gate`: [`check_gate`], the policy gate shared by deployments and the
//!   `CheckGate` read.
//! - `drift`: the drift checks `decide` derives incidents from.
//! - [`access`]: principals, roles and tokens, folded from the access entries.
//! - `shared`, `codec`: copy-on-write sharing and exact serde adapters.

pub mod access;
mod apply;
mod codec;
mod decide;
mod drift;
mod gate;
mod shared;
pub mod state;

#[cfg(test)]
mod tests;

pub use decide::decide;
pub use gate::{GateDecision, GateReason, check_gate};
pub use state::{
    Approval, Deployment, DriftEpisode, EnvironmentState, FeedbackBaseline, FeedbackTotals,
    IncidentState, LiveDeployment, MetricResult, PolicyEntry, Resolution, Stage, State,
    SubjectState, SuiteResult, VersionState,
};

/// The actor of derived entries: the ledger itself, never a caller.
pub const SYSTEM_ACTOR: &str = "system";

/// What the log says about an entry, besides its event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    pub sequence: u64,
    pub recorded_at_us: i64,
    /// The authenticated caller (or [`SYSTEM_ACTOR`]).
    pub actor: String,
}

/// Why `decide` refused an event. `message` names what is missing or wrong;
/// `reasons` carries the gate's unmet rules when a deployment was denied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub message: String,
    pub reasons: Vec<GateReason>,
}

impl Rejection {
    pub fn new(message: impl Into<String>) -> Rejection {
        Rejection {
            message: message.into(),
            reasons: Vec::new(),
        }
    }
}
