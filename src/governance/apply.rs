//! The fold: [`State::apply`]. Pure, total, deterministic.
//!
//! Every rule lives in `decide`; the fold only records. It cannot fail, as
//! the log is data and rebuilding must reproduce whatever is in it. An event
//! whose *target* (subject, version, incident) is missing, or already exists
//! where it must be new (a version label, an incident id), or is already
//! resolved, or that sets no kind or no usable decision, is not placed: its
//! sequence goes to [`State::unplaced`] and nothing else changes. Other
//! references (a parent version, a fixing version) are recorded as given.

use super::{
    EntryMeta,
    shared::Shared,
    state::{
        Approval, Deployment, DriftEpisode, EnvironmentState, FeedbackBaseline, IncidentState,
        LiveDeployment, MetricResult, PolicyEntry, Resolution, Stage, State, SubjectState,
        SuiteResult, VersionState, meets,
    },
};
use crate::proto::v1::{
    ApprovalRecorded, Decision, DeploymentRecorded, Direction, EvalRecorded, Event,
    FeedbackRecorded, IncidentCategory, IncidentOpened, IncidentResolved, Metric, PolicySet,
    Severity, SubjectKind, VersionRegistered, event::Kind,
};

impl State {
    /// Folds one entry into the state. Never fails, never panics.
    pub fn apply(&mut self, meta: &EntryMeta, event: &Event) {
        self.sequence = meta.sequence;
        self.recorded_at_us = meta.recorded_at_us;
        let placed = match &event.kind {
            None => false,
            Some(Kind::VersionRegistered(e)) => self.register(meta, e),
            Some(Kind::EvalRecorded(e)) => self.eval(meta, e),
            Some(Kind::ApprovalRecorded(e)) => self.approval(meta, e),
            Some(Kind::DeploymentRecorded(e)) => self.deployment(meta, e),
            Some(Kind::IncidentOpened(e)) => self.incident_opened(meta, e),
            Some(Kind::IncidentResolved(e)) => self.incident_resolved(meta, e),
            Some(Kind::FeedbackRecorded(e)) => self.feedback(meta, e),
            Some(Kind::PolicySet(e)) => self.policy_set(meta, e),
            Some(Kind::PrincipalRolesSet(e)) => self.access.make_mut().roles_set(meta, e),
            Some(Kind::TokenIssued(e)) => self.access.make_mut().token_issued(meta, e),
            Some(Kind::TokenRevoked(e)) => self.access.make_mut().token_revoked(meta, e),
        };
        if !placed {
            self.unplaced.make_mut().push(meta.sequence);
        }
    }

    /// Runs `change` on the subject, if it exists. Checks before touching, so
    /// an unplaceable event copies nothing shared with a snapshot.
    fn change_subject(
        &mut self,
        name: &str,
        meta: &EntryMeta,
        change: impl FnOnce(&mut SubjectState) -> bool,
    ) -> bool {
        if !self.subjects.contains_key(name) {
            return false;
        }
        let Some(subject) = self.subjects.make_mut().get_mut(name) else {
            return false;
        };
        let subject = subject.make_mut();
        let placed = change(subject);
        if placed {
            subject.last_sequence = meta.sequence;
        }
        placed
    }

    /// Runs `change` on the version, if both it and its subject exist.
    fn change_version(
        &mut self,
        subject: &str,
        version: &str,
        meta: &EntryMeta,
        change: impl FnOnce(&mut VersionState),
    ) -> bool {
        if self.version(subject, version).is_none() {
            return false;
        }
        self.change_subject(subject, meta, |s| match s.versions.get_mut(version) {
            Some(v) => {
                change(v.make_mut());
                true
            }
            None => false,
        })
    }

    fn register(&mut self, meta: &EntryMeta, e: &VersionRegistered) -> bool {
        if self.version(&e.subject, &e.version).is_some() {
            return false;
        }
        let subject = self
            .subjects
            .make_mut()
            .entry(e.subject.clone())
            .or_insert_with(|| {
                Shared::new(SubjectState {
                    kind: SubjectKind::try_from(e.subject_kind).unwrap_or_default(),
                    created_sequence: meta.sequence,
                    created_at_us: meta.recorded_at_us,
                    last_sequence: meta.sequence,
                    versions: Default::default(),
                    environments: Default::default(),
                    incidents: Default::default(),
                    open_incidents: Default::default(),
                })
            })
            .make_mut();
        // A different kind (rejected by decide) keeps the subject's first one.
        subject.last_sequence = meta.sequence;
        let version = VersionState {
            created_sequence: meta.sequence,
            created_at_us: meta.recorded_at_us,
            content_digest: super::codec::hex(&e.content_digest),
            author: e.author.clone(),
            registered_by: meta.actor.clone(),
            parent: non_empty(&e.parent_version),
            stage: Stage::Registered,
            evals: Default::default(),
            approvals: Default::default(),
            feedback: Default::default(),
            incidents: Default::default(),
        };
        subject
            .versions
            .insert(e.version.clone(), Shared::new(version));
        true
    }

    fn eval(&mut self, meta: &EntryMeta, e: &EvalRecorded) -> bool {
        let result = suite_result(meta, &e.metrics);
        self.change_version(&e.subject, &e.version, meta, |v| {
            v.evals.insert(e.suite.clone(), result);
            if v.stage == Stage::Registered {
                v.stage = Stage::Evaluated;
            }
        })
    }

    fn approval(&mut self, meta: &EntryMeta, e: &ApprovalRecorded) -> bool {
        let decision = match Decision::try_from(e.decision) {
            Ok(d @ (Decision::Approve | Decision::Reject)) => d,
            _ => return false,
        };
        self.change_version(&e.subject, &e.version, meta, |v| {
            v.approvals
                .entry(e.environment.clone())
                .or_default()
                .push(Approval {
                    approver: meta.actor.clone(),
                    decision,
                    sequence: meta.sequence,
                    recorded_at_us: meta.recorded_at_us,
                });
            if decision == Decision::Approve && v.stage < Stage::Approved {
                v.stage = Stage::Approved;
            }
        })
    }

    fn deployment(&mut self, meta: &EntryMeta, e: &DeploymentRecorded) -> bool {
        if self.version(&e.subject, &e.version).is_none() {
            return false;
        }
        self.change_subject(&e.subject, meta, |s| deploy(s, meta, e))
    }

    fn incident_opened(&mut self, meta: &EntryMeta, e: &IncidentOpened) -> bool {
        let version = non_empty(&e.version);
        let placeable = self.incidents.get(&e.incident_id).is_none()
            && match &version {
                Some(v) => self.version(&e.subject, v).is_some(),
                None => self.subject(&e.subject).is_some(),
            };
        if !placeable {
            return false;
        }
        let incident = IncidentState {
            id: e.incident_id.clone(),
            subject: e.subject.clone(),
            version: version.clone(),
            environment: non_empty(&e.environment),
            severity: Severity::try_from(e.severity).unwrap_or_default(),
            category: IncidentCategory::try_from(e.category).unwrap_or_default(),
            description: e.description.clone(),
            related_sequence: (e.related_sequence != 0).then_some(e.related_sequence),
            opened_sequence: meta.sequence,
            opened_at_us: meta.recorded_at_us,
            opened_by: meta.actor.clone(),
            resolution: None,
        };
        let drift = incident.category == IncidentCategory::Drift;
        let placed = self.change_subject(&e.subject, meta, |s| {
            s.incidents.insert(e.incident_id.clone());
            s.open_incidents.insert(e.incident_id.clone());
            if let Some(v) = version.as_ref().and_then(|v| s.versions.get_mut(v)) {
                v.make_mut().incidents.insert(e.incident_id.clone());
            }
            // A drift incident starts the environment's drift episode, which
            // is what keeps `decide` from deriving another one per entry.
            if drift && let Some(env) = s.environments.get_mut(&e.environment) {
                let env = env.make_mut();
                if env.drift.is_none() {
                    env.drift = Some(DriftEpisode {
                        since_sequence: meta.sequence,
                        incident_id: e.incident_id.clone(),
                        finding: e.description.clone(),
                    });
                }
            }
            true
        });
        if placed {
            self.incidents
                .make_mut()
                .insert(e.incident_id.clone(), Shared::new(incident));
        }
        placed
    }

    fn incident_resolved(&mut self, meta: &EntryMeta, e: &IncidentResolved) -> bool {
        let placeable = self
            .incident(&e.incident_id)
            .is_some_and(|i| i.is_open() && i.subject == e.subject);
        if !placeable {
            return false;
        }
        let placed = self.change_subject(&e.subject, meta, |s| {
            s.open_incidents.remove(&e.incident_id);
            for env in s.environments.values_mut() {
                if env
                    .drift
                    .as_ref()
                    .is_some_and(|d| d.incident_id == e.incident_id)
                {
                    env.make_mut().drift = None;
                }
            }
            true
        });
        // The subject exists whenever its incident does; checked anyway so
        // the incident and its subject never disagree about being open.
        if placed && let Some(incident) = self.incidents.make_mut().get_mut(&e.incident_id) {
            incident.make_mut().resolution = Some(Resolution {
                sequence: meta.sequence,
                recorded_at_us: meta.recorded_at_us,
                resolved_by: meta.actor.clone(),
                resolution: e.resolution.clone(),
                fixing_version: non_empty(&e.fixing_version),
            });
        }
        placed
    }

    fn feedback(&mut self, meta: &EntryMeta, e: &FeedbackRecorded) -> bool {
        if self.version(&e.subject, &e.version).is_none() {
            return false;
        }
        self.change_subject(&e.subject, meta, |s| {
            if let Some(v) = s.versions.get_mut(&e.version) {
                let totals = v
                    .make_mut()
                    .feedback
                    .entry(e.environment.clone())
                    .or_default();
                totals.windows = totals.windows.saturating_add(1);
                totals.thumbs_up = totals.thumbs_up.saturating_add(e.thumbs_up);
                totals.thumbs_down = totals.thumbs_down.saturating_add(e.thumbs_down);
                totals.rewrites = totals.rewrites.saturating_add(e.rewrites);
                totals.total = totals.total.saturating_add(e.total);
                totals.last_sequence = meta.sequence;
            }
            // The first non-empty window after a deployment is the baseline
            // the feedback drift check compares later windows with.
            if let Some(env) = s.environments.get_mut(&e.environment)
                && env
                    .live
                    .as_ref()
                    .is_some_and(|l| l.version == e.version && l.feedback_baseline.is_none())
                && let Some(rate) = negative_rate(e)
                && let Some(live) = env.make_mut().live.as_mut()
            {
                live.feedback_baseline = Some(FeedbackBaseline {
                    negative_rate: rate,
                    sequence: meta.sequence,
                });
            }
            true
        })
    }

    fn policy_set(&mut self, meta: &EntryMeta, e: &PolicySet) -> bool {
        self.policies
            .make_mut()
            .entry(e.subject.clone())
            .or_default()
            .insert(
                e.environment.clone(),
                PolicyEntry {
                    sequence: meta.sequence,
                    recorded_at_us: meta.recorded_at_us,
                    actor: meta.actor.clone(),
                    policy: e.clone(),
                },
            );
        true
    }
}

/// Records a deployment of a known version in `subject`.
fn deploy(subject: &mut SubjectState, meta: &EntryMeta, e: &DeploymentRecorded) -> bool {
    let Some(version) = subject.versions.get(&e.version) else {
        return false;
    };
    let created = version.created_sequence;
    let eval_baseline = version.evals.clone();
    let previous = subject
        .environments
        .get(&e.environment)
        .and_then(|env| env.live.as_ref())
        .map(|live| live.version.clone())
        .filter(|v| *v != e.version);
    // "Newer" means registered later, whatever the labels say.
    let is_rollback = previous
        .as_ref()
        .and_then(|p| subject.versions.get(p))
        .is_some_and(|p| p.created_sequence > created);

    let env = subject
        .environments
        .entry(e.environment.clone())
        .or_insert_with(|| Shared::new(EnvironmentState::default()))
        .make_mut();
    env.history.push(Deployment {
        version: e.version.clone(),
        sequence: meta.sequence,
        recorded_at_us: meta.recorded_at_us,
        actor: meta.actor.clone(),
        override_justification: non_empty(&e.override_justification),
        replaced: previous.clone(),
        is_rollback,
    });
    env.live = Some(LiveDeployment {
        version: e.version.clone(),
        sequence: meta.sequence,
        eval_baseline,
        feedback_baseline: None,
    });
    // A new deployment ends the drift episode: what drifted is no longer live
    // as it was, and the new baselines start from here.
    env.drift = None;

    if let Some(v) = subject.versions.get_mut(&e.version) {
        v.make_mut().stage = Stage::Deployed;
    }
    if let Some(previous) = previous {
        let still_live = subject.live_environments(&previous).next().is_some();
        if !still_live && let Some(v) = subject.versions.get_mut(&previous) {
            v.make_mut().stage = if is_rollback {
                Stage::RolledBack
            } else {
                Stage::Superseded
            };
        }
    }
    true
}

/// Pass/fail of one suite run, computed from its metrics and their thresholds.
fn suite_result(meta: &EntryMeta, metrics: &[Metric]) -> SuiteResult {
    let metrics: std::collections::BTreeMap<String, MetricResult> = metrics
        .iter()
        .map(|m| {
            let direction = Direction::try_from(m.direction).unwrap_or_default();
            let result = MetricResult {
                value: m.value,
                threshold: m.threshold,
                direction,
                passed: meets(m.value, m.threshold, direction),
            };
            (m.name.clone(), result)
        })
        .collect();
    SuiteResult {
        sequence: meta.sequence,
        recorded_at_us: meta.recorded_at_us,
        // A run without metrics demonstrates nothing, so it does not pass.
        passed: !metrics.is_empty() && metrics.values().all(|m| m.passed),
        metrics,
    }
}

/// thumbs_down / total, or `None` for an empty window.
pub(super) fn negative_rate(e: &FeedbackRecorded) -> Option<f64> {
    (e.total > 0).then(|| e.thumbs_down as f64 / e.total as f64)
}

/// Proto3 strings are empty when unset.
fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}
