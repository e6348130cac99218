//! Drift detection: the derived drift incidents of `decide`.
//!
//! A version live in an environment drifts when a later eval scores below
//! what it scored at its deployment there, or when a feedback window's
//! negative rate rises above the baseline, by more than the tolerance of the
//! policy in force. One incident per episode: while the environment has an
//! active episode (started by applying the drift incident, ended by resolving
//! it or by a new deployment) nothing more is derived.

use super::{
    EntryMeta,
    apply::negative_rate,
    decide::{bounded, fresh_incident_id, incident},
    state::{EnvironmentState, LiveDeployment, State},
};
use crate::proto::v1::{
    Direction, EvalRecorded, Event, FeedbackRecorded, IncidentCategory, IncidentOpened, PolicySet,
    Severity,
};

/// Drift incidents an eval of `e.version` derives: one per environment where
/// that version is live, has an eval baseline for the suite, and dropped.
pub(super) fn on_eval(state: &State, meta: &EntryMeta, e: &EvalRecorded) -> Vec<Event> {
    let mut derived = Vec::new();
    let Some(subject) = state.subject(&e.subject) else {
        return derived;
    };
    for (environment, env) in subject.environments() {
        let Some((live, policy)) = watched(state, &e.subject, &e.version, environment, env) else {
            continue;
        };
        let tolerance = policy.max_eval_score_drop;
        if tolerance <= 0.0 {
            continue;
        }
        let Some(baseline) = live.eval_baseline.get(&e.suite) else {
            continue;
        };
        let findings: Vec<String> = e
            .metrics
            .iter()
            .filter_map(|metric| {
                let base = baseline.metrics.get(&metric.name)?;
                // The new result's direction, else the baseline's: a result
                // that does not say which way is better cannot have dropped.
                let direction = match Direction::try_from(metric.direction) {
                    Ok(Direction::Unspecified) | Err(_) => base.direction,
                    Ok(d) => d,
                };
                let drop = match direction {
                    Direction::HigherIsBetter => base.value - metric.value,
                    Direction::LowerIsBetter => metric.value - base.value,
                    Direction::Unspecified => return None,
                };
                (drop > tolerance).then(|| {
                    format!(
                        "{} {} -> {} (drop {drop} > tolerance {tolerance})",
                        metric.name, base.value, metric.value
                    )
                })
            })
            .collect();
        if findings.is_empty() {
            continue;
        }
        let description = format!(
            "eval drift of version {} in {environment}: suite {} scored below its result at \
             deployment (eval entry {}, deployment entry {}): {}",
            e.version,
            e.suite,
            baseline.sequence,
            live.sequence,
            findings.join("; ")
        );
        let id = drift_id(state, meta, &derived);
        derived.push(drift_incident(
            id,
            meta,
            &e.subject,
            &e.version,
            environment,
            description,
        ));
    }
    derived
}

/// The drift incident a feedback window derives, if its negative rate rose
/// above the baseline by more than the tolerance.
pub(super) fn on_feedback(state: &State, meta: &EntryMeta, e: &FeedbackRecorded) -> Vec<Event> {
    let Some(env) = state
        .subject(&e.subject)
        .and_then(|s| s.environment(&e.environment))
    else {
        return Vec::new();
    };
    let Some((live, policy)) = watched(state, &e.subject, &e.version, &e.environment, env) else {
        return Vec::new();
    };
    let tolerance = policy.max_negative_feedback_rate_rise;
    if tolerance <= 0.0 {
        return Vec::new();
    }
    let Some(rate) = negative_rate(e) else {
        return Vec::new();
    };
    let (baseline, source) = if policy.baseline_negative_feedback_rate > 0.0 {
        (
            policy.baseline_negative_feedback_rate,
            "the policy's baseline".to_owned(),
        )
    } else if let Some(first) = &live.feedback_baseline {
        (
            first.negative_rate,
            format!(
                "the first window after deployment (entry {})",
                first.sequence
            ),
        )
    } else {
        // This window is the first: applying it makes it the baseline.
        return Vec::new();
    };
    let rise = rate - baseline;
    if rise <= tolerance {
        return Vec::new();
    }
    let description = format!(
        "feedback drift of version {} in {}: negative rate {rate} ({} of {}) rose by {rise} \
         above {baseline}, {source}; tolerance {tolerance}",
        e.version, e.environment, e.thumbs_down, e.total
    );
    let id = drift_id(state, meta, &[]);
    vec![drift_incident(
        id,
        meta,
        &e.subject,
        &e.version,
        &e.environment,
        description,
    )]
}

/// The live deployment and policy to check, when `version` is what is live in
/// the environment, a policy is in force, and no episode is active.
fn watched<'a>(
    state: &'a State,
    subject: &str,
    version: &str,
    environment: &str,
    env: &'a EnvironmentState,
) -> Option<(&'a LiveDeployment, &'a PolicySet)> {
    let live = env.live.as_ref().filter(|l| l.version == version)?;
    if env.drift.is_some() {
        return None;
    }
    let (_, policy) = state.policy(subject, environment)?;
    Some((live, policy))
}

/// `drift-<sequence>`; `.2`, `.3`... when one eval drifts in several
/// environments (or a client took the id).
fn drift_id(state: &State, meta: &EntryMeta, derived: &[Event]) -> String {
    fresh_incident_id(state, &format!("drift-{}", meta.sequence), derived)
}

fn drift_incident(
    incident_id: String,
    meta: &EntryMeta,
    subject: &str,
    version: &str,
    environment: &str,
    description: String,
) -> Event {
    incident(IncidentOpened {
        incident_id,
        subject: subject.to_owned(),
        version: version.to_owned(),
        environment: environment.to_owned(),
        severity: Severity::Medium as i32,
        category: IncidentCategory::Drift as i32,
        description: bounded(description),
        related_sequence: meta.sequence,
    })
}
