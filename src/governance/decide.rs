//! Deciding: every rule that needs the state. May reject; may derive events.
//!
//! Input rules (names, sizes, enums) were checked by `domain` before this
//! runs; these are the rules that depend on what the log already says.

use std::collections::BTreeSet;

use super::{
    EntryMeta, Rejection, access, drift,
    gate::{GateReason, check_gate},
    state::{State, SubjectState, VersionState},
};
use crate::proto::v1::{
    ApprovalRecorded, Decision, DeploymentRecorded, Event, IncidentCategory, IncidentOpened,
    IncidentResolved, Severity, SubjectKind, VersionRegistered, event::Kind,
};

/// Longest description of a derived incident: the domain's limit on free
/// text, so derived events pass the same validation as any other.
pub(super) const MAX_DESCRIPTION_BYTES: usize = 4096;

/// Decides whether `event`, about to become the entry `meta`, is accepted.
///
/// `Ok(derived)`: accepted; the ledger appends `derived` right after it, in
/// the same atomic group, with actor [`SYSTEM_ACTOR`](super::SYSTEM_ACTOR),
/// applying each entry before the next. `state` must have every earlier
/// entry applied (in a batch: the batch's earlier items and their derived
/// events too).
pub fn decide(state: &State, meta: &EntryMeta, event: &Event) -> Result<Vec<Event>, Rejection> {
    let Some(kind) = &event.kind else {
        return Err(Rejection::new("the event sets no kind"));
    };
    match kind {
        Kind::VersionRegistered(e) => register(state, e).map(|()| Vec::new()),
        Kind::EvalRecorded(e) => {
            known_version(state, &e.subject, &e.version)?;
            Ok(drift::on_eval(state, meta, e))
        }
        Kind::ApprovalRecorded(e) => approval(state, meta, e).map(|()| Vec::new()),
        Kind::DeploymentRecorded(e) => deployment(state, meta, e),
        Kind::IncidentOpened(e) => incident_opened(state, e).map(|()| Vec::new()),
        Kind::IncidentResolved(e) => incident_resolved(state, e).map(|()| Vec::new()),
        Kind::FeedbackRecorded(e) => {
            known_version(state, &e.subject, &e.version)?;
            Ok(drift::on_feedback(state, meta, e))
        }
        // Policies may precede the subjects they govern (and `*` is none).
        Kind::PolicySet(_) => Ok(Vec::new()),
        Kind::PrincipalRolesSet(e) => access::decide_roles_set(state, e).map(|()| Vec::new()),
        Kind::TokenIssued(e) => access::decide_token_issued(state, e).map(|()| Vec::new()),
        Kind::TokenRevoked(e) => access::decide_token_revoked(state, e).map(|()| Vec::new()),
    }
}

fn known_subject<'a>(state: &'a State, subject: &str) -> Result<&'a SubjectState, Rejection> {
    state
        .subject(subject)
        .ok_or_else(|| Rejection::new(format!("subject {subject} is not registered")))
}

fn known_version<'a>(
    state: &'a State,
    subject: &str,
    version: &str,
) -> Result<&'a VersionState, Rejection> {
    known_subject(state, subject)?
        .version(version)
        .ok_or_else(|| Rejection::new(format!("version {version} of {subject} is not registered")))
}

fn register(state: &State, e: &VersionRegistered) -> Result<(), Rejection> {
    let parent_missing = || {
        Rejection::new(format!(
            "parent version {} of {} is not registered",
            e.parent_version, e.subject
        ))
    };
    let Some(subject) = state.subject(&e.subject) else {
        // A subject's first version has nothing to descend from.
        return if e.parent_version.is_empty() {
            Ok(())
        } else {
            Err(parent_missing())
        };
    };
    if let Some(existing) = subject.version(&e.version) {
        return Err(Rejection::new(format!(
            "version {} of {} is already registered (entry {})",
            e.version, e.subject, existing.created_sequence
        )));
    }
    if e.subject_kind != subject.kind() as i32 {
        let kind = SubjectKind::try_from(e.subject_kind)
            .map(|k| k.as_str_name())
            .unwrap_or("an unknown kind");
        return Err(Rejection::new(format!(
            "subject {} is of kind {}, not {kind}",
            e.subject,
            subject.kind().as_str_name()
        )));
    }
    if !e.parent_version.is_empty() && subject.version(&e.parent_version).is_none() {
        return Err(parent_missing());
    }
    Ok(())
}

fn approval(state: &State, meta: &EntryMeta, e: &ApprovalRecorded) -> Result<(), Rejection> {
    let version = known_version(state, &e.subject, &e.version)?;
    match Decision::try_from(e.decision) {
        Ok(Decision::Approve) => {}
        // Rejections are never refused: anyone, the author included, may
        // object to a version.
        Ok(Decision::Reject) => return Ok(()),
        _ => return Err(Rejection::new("decision must be APPROVE or REJECT")),
    }
    // "Twice" means while the first approval stands: an approver who
    // rejected after approving may approve again.
    let latest = version.latest_decisions(&e.environment);
    if let Some(previous) = latest.get(meta.actor.as_str())
        && previous.decision == Decision::Approve
    {
        return Err(Rejection::new(format!(
            "{} already approved version {} of {} for {} (entry {})",
            meta.actor, e.version, e.subject, e.environment, previous.sequence
        )));
    }
    // Separation of duties is on unless the policy in force turns it off,
    // so it also holds before any policy exists.
    let allowed = state
        .policy(&e.subject, &e.environment)
        .is_some_and(|(_, p)| p.allow_self_approval);
    if !allowed && version.is_own(&meta.actor) {
        let role = if meta.actor == version.registered_by {
            "registered"
        } else {
            "authored"
        };
        return Err(Rejection::new(format!(
            "{} {role} version {} of {} and may not approve it for {} (separation of duties; \
             the policy in force does not set allow_self_approval)",
            meta.actor, e.version, e.subject, e.environment
        )));
    }
    Ok(())
}

fn deployment(
    state: &State,
    meta: &EntryMeta,
    e: &DeploymentRecorded,
) -> Result<Vec<Event>, Rejection> {
    known_version(state, &e.subject, &e.version)?;
    let gate = check_gate(
        state,
        &e.subject,
        &e.version,
        &e.environment,
        &meta.actor,
        meta.recorded_at_us,
    );
    if gate.allow {
        // An override of an open gate overrides nothing: no incident.
        return Ok(Vec::new());
    }
    let policy = gate
        .policy_sequence
        .map_or_else(String::new, |s| format!(" (entry {s})"));
    let unmet = list(&gate.reasons);
    if e.override_justification.is_empty() {
        return Err(Rejection {
            message: format!(
                "deployment of version {} of {} to {} is denied by the policy in force{policy}: \
                 {unmet}. Set override_justification to deploy anyway (recorded as an override, \
                 with a policy-violation incident)",
                e.version, e.subject, e.environment
            ),
            reasons: gate.reasons,
        });
    }
    let id = fresh_incident_id(state, &format!("override-{}", meta.sequence), &[]);
    let description = format!(
        "deployment of version {} to {} overrode the policy gate{policy} by {}: \
         justification {:?}; unmet: {unmet}",
        e.version, e.environment, meta.actor, e.override_justification
    );
    Ok(vec![incident(IncidentOpened {
        incident_id: id,
        subject: e.subject.clone(),
        version: e.version.clone(),
        environment: e.environment.clone(),
        severity: Severity::High as i32,
        category: IncidentCategory::PolicyViolation as i32,
        description: bounded(description),
        related_sequence: meta.sequence,
    })])
}

fn incident_opened(state: &State, e: &IncidentOpened) -> Result<(), Rejection> {
    if let Some(existing) = state.incident(&e.incident_id) {
        return Err(Rejection::new(format!(
            "incident id {} is already used (entry {})",
            e.incident_id, existing.opened_sequence
        )));
    }
    if e.version.is_empty() {
        known_subject(state, &e.subject)?;
    } else {
        known_version(state, &e.subject, &e.version)?;
    }
    Ok(())
}

fn incident_resolved(state: &State, e: &IncidentResolved) -> Result<(), Rejection> {
    let incident = state
        .incident(&e.incident_id)
        .ok_or_else(|| Rejection::new(format!("incident {} does not exist", e.incident_id)))?;
    if incident.subject != e.subject {
        return Err(Rejection::new(format!(
            "incident {} belongs to subject {}, not {}",
            e.incident_id, incident.subject, e.subject
        )));
    }
    if let Some(resolution) = &incident.resolution {
        return Err(Rejection::new(format!(
            "incident {} is already resolved (entry {})",
            e.incident_id, resolution.sequence
        )));
    }
    if !e.fixing_version.is_empty() {
        known_version(state, &e.subject, &e.fixing_version).map_err(|_| {
            Rejection::new(format!(
                "fixing version {} of {} is not registered",
                e.fixing_version, e.subject
            ))
        })?;
    }
    Ok(())
}

pub(super) fn incident(e: IncidentOpened) -> Event {
    Event {
        kind: Some(Kind::IncidentOpened(e)),
    }
}

/// `base`, or `base.2`, `base.3`... — the first id neither in the state nor
/// among `derived`. Clients choose incident ids too, and may have taken
/// `override-42` before entry 42 existed; the derived id must still be new.
pub(super) fn fresh_incident_id(state: &State, base: &str, derived: &[Event]) -> String {
    let taken: BTreeSet<&str> = derived
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::IncidentOpened(i)) => Some(i.incident_id.as_str()),
            _ => None,
        })
        .collect();
    let free = |id: &str| state.incident(id).is_none() && !taken.contains(id);
    if free(base) {
        return base.to_owned();
    }
    // Terminates: each candidate is distinct and only finitely many are taken.
    (2u64..)
        .map(|n| format!("{base}.{n}"))
        .find(|id| free(id))
        .unwrap_or_else(|| base.to_owned())
}

/// "rule: expected ..., actual ...; rule: ..."
fn list(reasons: &[GateReason]) -> String {
    reasons
        .iter()
        .map(GateReason::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Cuts `text` to [`MAX_DESCRIPTION_BYTES`] on a character boundary.
pub(super) fn bounded(mut text: String) -> String {
    if text.len() > MAX_DESCRIPTION_BYTES {
        let mut end = MAX_DESCRIPTION_BYTES - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}
