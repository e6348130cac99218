//! Given-events / when-command / then-expect tests of the governance core.
//!
//! [`Log`] plays the ledger's part: it numbers entries, advances the clock
//! one second per entry, runs `decide`, and applies an accepted event and its
//! derived events (as `system`) in order, as the writer does.

mod drift;
mod gate;
mod lifecycle;
mod props;
mod rules;

use super::{EntryMeta, Rejection, SYSTEM_ACTOR, State, decide};
use crate::proto::v1::{
    ApprovalRecorded, Decision, DeploymentRecorded, Direction, EvalKind, EvalRecorded, Event,
    FeedbackRecorded, IncidentCategory, IncidentOpened, IncidentResolved, Metric, PolicySet,
    RequiredSuite, Severity, SubjectKind, VersionRegistered, event::Kind,
};

/// Recorded time of entry 0; each entry is one second later than the last.
pub(super) const T0_US: i64 = 1_767_225_600_000_000;
pub(super) const SECOND_US: i64 = 1_000_000;

pub(super) const S: &str = "support-bot/triage-prompt";

/// A ledger in miniature: the state and the clock.
pub(super) struct Log {
    pub state: State,
    pub now_us: i64,
}

/// The state after `history`, applied without deciding (it is the past).
pub(super) fn given(history: &[(&str, Event)]) -> Log {
    let mut log = Log {
        state: State::default(),
        now_us: T0_US,
    };
    for (actor, event) in history {
        let meta = log.next_meta(actor);
        log.state.apply(&meta, event);
        log.now_us = meta.recorded_at_us;
    }
    log
}

impl Log {
    /// The entry the next event would become.
    pub fn next_meta(&self, actor: &str) -> EntryMeta {
        EntryMeta {
            sequence: self.state.sequence() + 1,
            recorded_at_us: self.now_us + SECOND_US,
            actor: actor.to_owned(),
        }
    }

    /// What `decide` says about `event` by `actor` now; changes nothing.
    pub fn when(&self, actor: &str, event: Event) -> Result<Vec<Event>, Rejection> {
        decide(&self.state, &self.next_meta(actor), &event)
    }

    /// Decides, then appends the event and its derived events.
    pub fn append(&mut self, actor: &str, event: Event) -> Result<Vec<Event>, Rejection> {
        let meta = self.next_meta(actor);
        let derived = decide(&self.state, &meta, &event)?;
        self.state.apply(&meta, &event);
        self.now_us = meta.recorded_at_us;
        for extra in &derived {
            let meta = EntryMeta {
                sequence: self.state.sequence() + 1,
                recorded_at_us: self.now_us,
                actor: SYSTEM_ACTOR.to_owned(),
            };
            self.state.apply(&meta, extra);
        }
        Ok(derived)
    }

    /// [`Log::append`] that must be accepted; returns the derived events.
    #[track_caller]
    pub fn ok(&mut self, actor: &str, event: Event) -> Vec<Event> {
        match self.append(actor, event) {
            Ok(derived) => derived,
            Err(rejection) => panic!("unexpected rejection: {rejection}"),
        }
    }

    /// [`Log::append`] that must be rejected; returns the message.
    #[track_caller]
    pub fn rejected(&mut self, actor: &str, event: Event) -> Rejection {
        let before = self.state.clone();
        match self.append(actor, event) {
            Ok(derived) => panic!("unexpectedly accepted, derived {derived:?}"),
            Err(rejection) => {
                assert_eq!(self.state, before, "a rejection must change nothing");
                rejection
            }
        }
    }

    pub fn advance(&mut self, seconds: i64) {
        self.now_us += seconds * SECOND_US;
    }

    /// The last entry's sequence.
    pub fn last(&self) -> u64 {
        self.state.sequence()
    }
}

/// The id of a derived IncidentOpened.
#[track_caller]
pub(super) fn incident_of(event: &Event) -> &IncidentOpened {
    match &event.kind {
        Some(Kind::IncidentOpened(i)) => i,
        other => panic!("expected an IncidentOpened, got {other:?}"),
    }
}

// ----- event builders -----

pub(super) fn event(kind: Kind) -> Event {
    Event { kind: Some(kind) }
}

pub(super) fn register(subject: &str, version: &str, author: &str) -> Event {
    register_with(subject, version, author, "", SubjectKind::Prompt)
}

pub(super) fn register_with(
    subject: &str,
    version: &str,
    author: &str,
    parent: &str,
    kind: SubjectKind,
) -> Event {
    event(Kind::VersionRegistered(VersionRegistered {
        subject: subject.into(),
        subject_kind: kind as i32,
        version: version.into(),
        content_digest: blake3::hash(version.as_bytes()).as_bytes().to_vec(),
        parent_version: parent.into(),
        author: author.into(),
        ..Default::default()
    }))
}

pub(super) fn higher(name: &str, value: f64, threshold: f64) -> Metric {
    Metric {
        name: name.into(),
        value,
        threshold,
        direction: Direction::HigherIsBetter as i32,
    }
}

pub(super) fn lower(name: &str, value: f64, threshold: f64) -> Metric {
    Metric {
        name: name.into(),
        value,
        threshold,
        direction: Direction::LowerIsBetter as i32,
    }
}

pub(super) fn eval(subject: &str, version: &str, suite: &str, metrics: Vec<Metric>) -> Event {
    event(Kind::EvalRecorded(EvalRecorded {
        subject: subject.into(),
        version: version.into(),
        suite: suite.into(),
        eval_kind: EvalKind::Deterministic as i32,
        metrics,
        ..Default::default()
    }))
}

/// An eval of suite `regression` with one metric, `accuracy` (threshold 0.85).
pub(super) fn accuracy(subject: &str, version: &str, value: f64) -> Event {
    eval(
        subject,
        version,
        "regression",
        vec![higher("accuracy", value, 0.85)],
    )
}

fn decision(subject: &str, version: &str, env: &str, decision: Decision) -> Event {
    event(Kind::ApprovalRecorded(ApprovalRecorded {
        subject: subject.into(),
        version: version.into(),
        environment: env.into(),
        decision: decision as i32,
        comment: String::new(),
    }))
}

pub(super) fn approve(subject: &str, version: &str, env: &str) -> Event {
    decision(subject, version, env, Decision::Approve)
}

pub(super) fn reject(subject: &str, version: &str, env: &str) -> Event {
    decision(subject, version, env, Decision::Reject)
}

pub(super) fn deploy(subject: &str, version: &str, env: &str) -> Event {
    deploy_override(subject, version, env, "")
}

pub(super) fn deploy_override(subject: &str, version: &str, env: &str, why: &str) -> Event {
    event(Kind::DeploymentRecorded(DeploymentRecorded {
        subject: subject.into(),
        version: version.into(),
        environment: env.into(),
        override_justification: why.into(),
        source: None,
    }))
}

pub(super) fn open(id: &str, subject: &str, version: &str, severity: Severity) -> Event {
    open_in(
        id,
        subject,
        version,
        "",
        severity,
        IncidentCategory::Hallucination,
    )
}

pub(super) fn open_in(
    id: &str,
    subject: &str,
    version: &str,
    env: &str,
    severity: Severity,
    category: IncidentCategory,
) -> Event {
    event(Kind::IncidentOpened(IncidentOpened {
        incident_id: id.into(),
        subject: subject.into(),
        version: version.into(),
        environment: env.into(),
        severity: severity as i32,
        category: category as i32,
        description: format!("incident {id}"),
        related_sequence: 0,
    }))
}

pub(super) fn resolve(id: &str, subject: &str, fixing: &str) -> Event {
    event(Kind::IncidentResolved(IncidentResolved {
        incident_id: id.into(),
        subject: subject.into(),
        resolution: "fixed".into(),
        fixing_version: fixing.into(),
    }))
}

pub(super) fn feedback(subject: &str, version: &str, env: &str, down: u64, total: u64) -> Event {
    event(Kind::FeedbackRecorded(FeedbackRecorded {
        subject: subject.into(),
        version: version.into(),
        environment: env.into(),
        window_start: Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        }),
        window_end: Some(prost_types::Timestamp {
            seconds: 2,
            nanos: 0,
        }),
        thumbs_up: total.saturating_sub(down),
        thumbs_down: down,
        rewrites: 0,
        total,
    }))
}

pub(super) fn policy(p: PolicySet) -> Event {
    event(Kind::PolicySet(p))
}

/// A policy for `subject` in `env` with nothing required; set fields on it.
pub(super) fn rules(subject: &str, env: &str) -> PolicySet {
    PolicySet {
        subject: subject.into(),
        environment: env.into(),
        ..Default::default()
    }
}

/// Requires suite `regression` with `accuracy >= threshold`.
pub(super) fn accuracy_at_least(threshold: f64) -> RequiredSuite {
    RequiredSuite {
        suite: "regression".into(),
        thresholds: vec![higher("accuracy", 0.0, threshold)],
    }
}

/// The rules that fired, in order.
pub(super) fn rules_of(reasons: &[super::GateReason]) -> Vec<&str> {
    reasons.iter().map(|r| r.rule.as_str()).collect()
}
