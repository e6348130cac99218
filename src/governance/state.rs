//! The projected governance state: the log folded into what is true now.
//!
//! Only [`State::apply`](super::apply) changes it; everything here reads.
//!
//! # Cost of a clone
//!
//! The writer clones the state once per commit group to publish a snapshot,
//! so a clone must not grow with the log:
//!
//! - `State::clone` is O(1): four reference-count increments. Subjects,
//!   policies, incidents and the unplaced list each sit behind one [`Shared`].
//! - The first write after a clone copies only the path it changes: the
//!   subject map (O(subjects) pointer copies plus key strings), then the one
//!   subject touched (O(its versions + environments + incident ids), shallow:
//!   each version and environment is itself `Shared`), then the one version or
//!   environment touched (its approvals, eval results or deployment history).
//!   Policies and incidents are copied only by a group that changes them.
//!
//! A persistent map (e.g. the `imbl` crate) would make the subject-map copy
//! O(log subjects); not needed at the sizes of the quality bars.
//!
//! # Canonical form
//!
//! Every map is a `BTreeMap` and every list is in log order, so the serde
//! form is canonical and [`State::digest`] is a function of the content.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{access::AccessState, shared::Shared};
use crate::proto::v1::{Decision, Direction, IncidentCategory, PolicySet, Severity, SubjectKind};

/// The subject of a default policy: applies to subjects without their own.
pub const DEFAULT_POLICY_SUBJECT: &str = "*";

/// Domain-separation prefix of [`State::digest`].
pub const STATE_DIGEST_DOMAIN: &[u8] = b"govledger/v1/state\x00";

/// Everything the log says, folded. See the module doc for the clone cost.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The last entry applied (0 = none).
    pub(super) sequence: u64,
    pub(super) recorded_at_us: i64,
    pub(super) subjects: Shared<BTreeMap<String, Shared<SubjectState>>>,
    /// subject (or `*`) → environment → the latest policy.
    pub(super) policies: Shared<BTreeMap<String, BTreeMap<String, PolicyEntry>>>,
    pub(super) incidents: Shared<BTreeMap<String, Shared<IncidentState>>>,
    /// Entries the fold could not place (their subject, version or incident
    /// does not exist, or already does). Empty for any log written through
    /// `decide`; kept so a log that bypassed it still folds, visibly.
    pub(super) unplaced: Shared<Vec<u64>>,
    /// Principals, roles and tokens.
    pub(super) access: Shared<AccessState>,
}

/// One governed asset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubjectState {
    #[serde(with = "crate::governance::codec::proto_enum")]
    pub(super) kind: SubjectKind,
    pub(super) created_sequence: u64,
    pub(super) created_at_us: i64,
    /// The last entry about this subject (derived entries included).
    pub(super) last_sequence: u64,
    pub(super) versions: BTreeMap<String, Shared<VersionState>>,
    /// Only environments something was deployed to.
    pub(super) environments: BTreeMap<String, Shared<EnvironmentState>>,
    pub(super) incidents: BTreeSet<String>,
    pub(super) open_incidents: BTreeSet<String>,
}

/// Where a version is in its life. Moves forward only, except that a
/// superseded or rolled-back version becomes `Deployed` again when redeployed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Registered,
    Evaluated,
    Approved,
    /// Live in at least one environment.
    Deployed,
    /// Replaced everywhere it was live, last by a newer version.
    Superseded,
    /// Replaced everywhere it was live, last by an older version (a rollback).
    RolledBack,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Registered => "registered",
            Stage::Evaluated => "evaluated",
            Stage::Approved => "approved",
            Stage::Deployed => "deployed",
            Stage::Superseded => "superseded",
            Stage::RolledBack => "rolled_back",
        }
    }
}

/// One registered version of a subject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionState {
    pub created_sequence: u64,
    pub created_at_us: i64,
    /// Hex of the BLAKE3 content digest.
    pub content_digest: String,
    /// Who wrote the change (the event's `author`; may be empty).
    pub author: String,
    /// Who registered it (the entry's authenticated actor).
    pub registered_by: String,
    pub parent: Option<String>,
    pub stage: Stage,
    /// suite → its latest result.
    pub evals: BTreeMap<String, SuiteResult>,
    /// environment → every decision, in log order.
    pub approvals: BTreeMap<String, Vec<Approval>>,
    /// environment → totals of every feedback window.
    pub feedback: BTreeMap<String, FeedbackTotals>,
    pub incidents: BTreeSet<String>,
}

impl VersionState {
    /// Whether `actor` wrote or registered this version: separation of duties
    /// holds against both, as either could be the one vouching for it.
    pub fn is_own(&self, actor: &str) -> bool {
        actor == self.registered_by || (!self.author.is_empty() && actor == self.author)
    }

    /// Each approver's latest decision for `environment`, by approver name.
    pub fn latest_decisions(&self, environment: &str) -> BTreeMap<&str, &Approval> {
        let mut latest = BTreeMap::new();
        for approval in self.approvals.get(environment).into_iter().flatten() {
            latest.insert(approval.approver.as_str(), approval);
        }
        latest
    }
}

/// The latest run of one eval suite against a version, with pass/fail
/// computed here from the metrics, never taken from the client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuiteResult {
    pub sequence: u64,
    pub recorded_at_us: i64,
    /// Every metric met its threshold (and there was at least one).
    pub passed: bool,
    pub metrics: BTreeMap<String, MetricResult>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricResult {
    #[serde(with = "crate::governance::codec::exact_f64")]
    pub value: f64,
    #[serde(with = "crate::governance::codec::exact_f64")]
    pub threshold: f64,
    #[serde(with = "crate::governance::codec::proto_enum")]
    pub direction: Direction,
    pub passed: bool,
}

/// Whether `value` meets `threshold` in `direction`. An unspecified direction
/// never passes: there is no way to tell good from bad.
pub fn meets(value: f64, threshold: f64, direction: Direction) -> bool {
    match direction {
        Direction::HigherIsBetter => value >= threshold,
        Direction::LowerIsBetter => value <= threshold,
        Direction::Unspecified => false,
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// The entry's actor: approvers cannot be named by the client.
    pub approver: String,
    #[serde(with = "crate::governance::codec::proto_enum")]
    pub decision: Decision,
    pub sequence: u64,
    pub recorded_at_us: i64,
}

/// Sums over every feedback window of a version in one environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackTotals {
    pub windows: u64,
    pub thumbs_up: u64,
    pub thumbs_down: u64,
    pub rewrites: u64,
    pub total: u64,
    pub last_sequence: u64,
}

/// One environment of a subject.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentState {
    pub live: Option<LiveDeployment>,
    /// Every deployment, in log order.
    pub history: Vec<Deployment>,
    /// The active drift episode, if any.
    pub drift: Option<DriftEpisode>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub version: String,
    pub sequence: u64,
    pub recorded_at_us: i64,
    pub actor: String,
    /// Set = the deployment was recorded as an override of the gate.
    pub override_justification: Option<String>,
    /// The version it replaced (none when the first, or a redeploy of the same).
    pub replaced: Option<String>,
    /// It replaced a version registered after it.
    pub is_rollback: bool,
}

/// What is live in an environment, with the baselines drift is measured from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveDeployment {
    pub version: String,
    /// The deployment's entry.
    pub sequence: u64,
    /// The version's latest result of each suite when it was deployed: later
    /// evals are compared with these, not with whatever was recorded since.
    pub eval_baseline: BTreeMap<String, SuiteResult>,
    /// The first non-empty feedback window after the deployment.
    pub feedback_baseline: Option<FeedbackBaseline>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedbackBaseline {
    #[serde(with = "crate::governance::codec::exact_f64")]
    pub negative_rate: f64,
    pub sequence: u64,
}

/// A drift episode: from its incident's opening until that incident is
/// resolved or something is deployed to the environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftEpisode {
    /// The drift incident's entry.
    pub since_sequence: u64,
    pub incident_id: String,
    /// What drifted (the incident's description).
    pub finding: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentState {
    pub id: String,
    pub subject: String,
    pub version: Option<String>,
    pub environment: Option<String>,
    #[serde(with = "crate::governance::codec::proto_enum")]
    pub severity: Severity,
    #[serde(with = "crate::governance::codec::proto_enum")]
    pub category: IncidentCategory,
    pub description: String,
    /// The entry the incident is about (an override deployment, a drifting eval).
    pub related_sequence: Option<u64>,
    pub opened_sequence: u64,
    pub opened_at_us: i64,
    pub opened_by: String,
    pub resolution: Option<Resolution>,
}

impl IncidentState {
    pub fn is_open(&self) -> bool {
        self.resolution.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub sequence: u64,
    pub recorded_at_us: i64,
    pub resolved_by: String,
    pub resolution: String,
    pub fixing_version: Option<String>,
}

/// A policy with the entry that set it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyEntry {
    pub sequence: u64,
    pub recorded_at_us: i64,
    pub actor: String,
    #[serde(with = "crate::governance::codec::proto_message")]
    pub policy: PolicySet,
}

impl State {
    /// The last entry applied (0 for the empty log).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    pub fn recorded_at_us(&self) -> i64 {
        self.recorded_at_us
    }

    /// Principals, roles and tokens.
    pub fn access(&self) -> &AccessState {
        &self.access
    }

    pub fn subject(&self, name: &str) -> Option<&SubjectState> {
        self.subjects.get(name).map(|s| &**s)
    }

    /// Every subject, in name order.
    pub fn subjects(&self) -> impl Iterator<Item = (&str, &SubjectState)> {
        self.subjects.iter().map(|(name, s)| (name.as_str(), &**s))
    }

    pub fn version(&self, subject: &str, version: &str) -> Option<&VersionState> {
        self.subject(subject)?.version(version)
    }

    pub fn incident(&self, id: &str) -> Option<&IncidentState> {
        self.incidents.get(id).map(|i| &**i)
    }

    /// Every incident, open or resolved, in id order.
    pub fn incidents(&self) -> impl Iterator<Item = &IncidentState> {
        self.incidents.values().map(|i| &**i)
    }

    /// The policy in force for (`subject`, `environment`) — the subject's own
    /// latest, else the latest default (`*`) — with the sequence of its entry.
    pub fn policy(&self, subject: &str, environment: &str) -> Option<(u64, &PolicySet)> {
        self.policy_entry(subject, environment)
            .map(|entry| (entry.sequence, &entry.policy))
    }

    pub fn policy_entry(&self, subject: &str, environment: &str) -> Option<&PolicyEntry> {
        let set = |s: &str| self.policies.get(s)?.get(environment);
        set(subject).or_else(|| set(DEFAULT_POLICY_SUBJECT))
    }

    /// Every latest policy as (subject or `*`, environment, entry), in order.
    pub fn policies(&self) -> impl Iterator<Item = (&str, &str, &PolicyEntry)> {
        self.policies.iter().flat_map(|(subject, by_env)| {
            by_env
                .iter()
                .map(move |(env, entry)| (subject.as_str(), env.as_str(), entry))
        })
    }

    /// Entries the fold could not place; empty for a log written through `decide`.
    pub fn unplaced(&self) -> &[u64] {
        &self.unplaced
    }

    /// BLAKE3 over the canonical serialization (serde JSON; every map is a
    /// `BTreeMap`, every float an exact string), behind a domain prefix.
    /// Equal states have equal digests; a state and its serde round trip too.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(STATE_DIGEST_DOMAIN);
        // Cannot fail: every map key is a string and no value refuses to
        // serialize. Should that ever change, the digest stays a total,
        // deterministic function rather than a panic on a data path.
        if let Err(error) = serde_json::to_writer(&mut hasher, self) {
            hasher.update(b"\x00unserializable:");
            hasher.update(error.to_string().as_bytes());
        }
        *hasher.finalize().as_bytes()
    }
}

impl SubjectState {
    pub fn kind(&self) -> SubjectKind {
        self.kind
    }

    pub fn created_sequence(&self) -> u64 {
        self.created_sequence
    }

    pub fn created_at_us(&self) -> i64 {
        self.created_at_us
    }

    /// The last entry about this subject: an as-of reader can tell whether a
    /// snapshot of this subject is still current.
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    pub fn version(&self, label: &str) -> Option<&VersionState> {
        self.versions.get(label).map(|v| &**v)
    }

    /// Every version in label order; sort by `created_sequence` for history.
    pub fn versions(&self) -> impl Iterator<Item = (&str, &VersionState)> {
        self.versions
            .iter()
            .map(|(label, v)| (label.as_str(), &**v))
    }

    pub fn environment(&self, name: &str) -> Option<&EnvironmentState> {
        self.environments.get(name).map(|e| &**e)
    }

    /// Every environment something was deployed to, in name order.
    pub fn environments(&self) -> impl Iterator<Item = (&str, &EnvironmentState)> {
        self.environments
            .iter()
            .map(|(name, e)| (name.as_str(), &**e))
    }

    pub fn live_version(&self, environment: &str) -> Option<&str> {
        let live = self.environment(environment)?.live.as_ref()?;
        Some(live.version.as_str())
    }

    /// The environments where `version` is live.
    pub fn live_environments<'a>(&'a self, version: &'a str) -> impl Iterator<Item = &'a str> {
        self.environments()
            .filter(move |(_, env)| env.live.as_ref().is_some_and(|l| l.version == version))
            .map(|(name, _)| name)
    }

    pub fn drift(&self, environment: &str) -> Option<&DriftEpisode> {
        self.environment(environment)?.drift.as_ref()
    }

    /// Every incident id of the subject, in id order.
    pub fn incident_ids(&self) -> impl Iterator<Item = &str> {
        self.incidents.iter().map(String::as_str)
    }

    pub fn open_incident_ids(&self) -> impl Iterator<Item = &str> {
        self.open_incidents.iter().map(String::as_str)
    }
}
