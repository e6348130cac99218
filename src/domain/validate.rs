//! The rules every event must meet before it can be appended.
//!
//! Each check names the field (a path inside the request) and the rule it
//! broke, so a client can fix its request without reading our code.

use std::collections::BTreeSet;

use super::names::{
    IDENTITY_RULE, LABEL_RULE, SUBJECT_RULE, SubjectName, is_identity, is_label, is_subject,
};
use crate::{
    LedgerError,
    hash::HASH_LEN,
    proto::v1::{
        ApprovalRecorded, Decision, DeploymentRecorded, Direction, EvalKind, EvalRecorded,
        FeedbackRecorded, Grant, IncidentCategory, IncidentOpened, IncidentResolved, Metric,
        PolicySet, PrincipalRolesSet, Role, Severity, Source, SubjectKind, TokenIssued,
        TokenRevoked, VersionRegistered, event::Kind,
    },
};

type Result<T> = std::result::Result<T, LedgerError>;

/// Longest free text (summaries, comments, descriptions, justifications).
pub const MAX_TEXT_BYTES: usize = 4096;
/// Longest reference (URLs, branches, run ids).
pub const MAX_REF_BYTES: usize = 2048;
/// Most metrics in one eval, parameters in one version, suites in one policy.
pub const MAX_LIST_LEN: usize = 64;
const MAX_PARAM_VALUE_BYTES: usize = 1024;

/// The field path `path.name` (or `path` alone when `name` is empty). Built
/// only when a rule is broken: validation runs on every append.
fn at(path: &str, name: &str) -> String {
    if name.is_empty() {
        path.to_owned()
    } else if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Validates one event variant; returns its subject. `path` ends in the
/// variant's field name (`event.eval_recorded`).
pub(super) fn event(kind: &Kind, path: &str) -> Result<SubjectName> {
    match kind {
        Kind::VersionRegistered(e) => version_registered(e, path),
        Kind::EvalRecorded(e) => eval_recorded(e, path),
        Kind::ApprovalRecorded(e) => approval_recorded(e, path),
        Kind::DeploymentRecorded(e) => deployment_recorded(e, path),
        Kind::IncidentOpened(e) => incident_opened(e, path),
        Kind::IncidentResolved(e) => incident_resolved(e, path),
        Kind::FeedbackRecorded(e) => feedback_recorded(e, path),
        Kind::PolicySet(e) => policy_set(e, path),
        Kind::PrincipalRolesSet(e) => principal_roles_set(e, path),
        Kind::TokenIssued(e) => token_issued(e, path),
        Kind::TokenRevoked(e) => token_revoked(e, path),
    }
}

/// Rule text for token ids.
pub const TOKEN_ID_RULE: &str = "must be 16 lowercase hex digits";
/// Rule text for grant scopes.
pub const SCOPE_RULE: &str = "must be empty (every subject), a subject name, or a subject prefix ending in \"/*\" (e.g. \"team-a/*\")";

pub fn is_token_id(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn is_scope(s: &str) -> bool {
    s.is_empty() || is_subject(s.strip_suffix("/*").unwrap_or(s))
}

/// A principal's name: an identity, never the ledger's own.
pub fn principal(value: &str, path: &str, name: &str) -> Result<()> {
    if !is_identity(value) {
        return Err(LedgerError::invalid(at(path, name), IDENTITY_RULE));
    }
    if value == crate::governance::SYSTEM_ACTOR {
        return Err(LedgerError::invalid(
            at(path, name),
            "\"system\" is reserved for entries the ledger derives",
        ));
    }
    Ok(())
}

pub fn grants(grants: &[Grant], path: &str) -> Result<()> {
    if grants.len() > MAX_LIST_LEN {
        return Err(LedgerError::invalid(
            at(path, "grants"),
            format!("must have at most {MAX_LIST_LEN} grants"),
        ));
    }
    for (i, grant) in grants.iter().enumerate() {
        let item = || format!("{}[{i}]", at(path, "grants"));
        known_enum::<Role>(grant.role, &item(), "role")?;
        if !is_scope(&grant.scope) {
            return Err(LedgerError::invalid(
                format!("{}.scope", item()),
                SCOPE_RULE,
            ));
        }
    }
    Ok(())
}

fn token_id(value: &str, path: &str) -> Result<()> {
    if is_token_id(value) {
        Ok(())
    } else {
        Err(LedgerError::invalid(at(path, "token_id"), TOKEN_ID_RULE))
    }
}

fn principal_roles_set(e: &PrincipalRolesSet, path: &str) -> Result<SubjectName> {
    principal(&e.principal, path, "principal")?;
    grants(&e.grants, path)?;
    Ok(SubjectName::access())
}

fn token_issued(e: &TokenIssued, path: &str) -> Result<SubjectName> {
    principal(&e.principal, path, "principal")?;
    token_id(&e.token_id, path)?;
    digest(&e.secret_hash, path, "secret_hash")?;
    text(&e.description, MAX_TEXT_BYTES, path, "description")?;
    Ok(SubjectName::access())
}

fn token_revoked(e: &TokenRevoked, path: &str) -> Result<SubjectName> {
    principal(&e.principal, path, "principal")?;
    token_id(&e.token_id, path)?;
    text(&e.reason, MAX_TEXT_BYTES, path, "reason")?;
    Ok(SubjectName::access())
}

fn version_registered(e: &VersionRegistered, path: &str) -> Result<SubjectName> {
    let subject = subject(&e.subject, path)?;
    known_enum::<SubjectKind>(e.subject_kind, path, "subject_kind")?;
    label(&e.version, path, "version")?;
    digest(&e.content_digest, path, "content_digest")?;
    optional_label(&e.parent_version, path, "parent_version")?;
    if e.parent_version == e.version {
        return Err(LedgerError::invalid(
            format!("{path}.parent_version"),
            "must differ from version",
        ));
    }
    optional_identity(&e.author, path, "author")?;
    optional_identity(&e.model, path, "model")?;
    if e.parameters.len() > MAX_LIST_LEN {
        return Err(LedgerError::invalid(
            format!("{path}.parameters"),
            format!("must have at most {MAX_LIST_LEN} entries"),
        ));
    }
    for (key, value) in &e.parameters {
        let field = format!("{path}.parameters[{key:?}]");
        if !is_label(key) {
            return Err(LedgerError::invalid(field, format!("key {LABEL_RULE}")));
        }
        text(value, MAX_PARAM_VALUE_BYTES, &field, "")?;
    }
    source(e.source.as_ref(), &at(path, "source"))?;
    text(&e.summary, MAX_TEXT_BYTES, path, "summary")?;
    if !e.content.is_empty() && blake3::hash(&e.content).as_bytes()[..] != e.content_digest[..] {
        return Err(LedgerError::invalid(
            format!("{path}.content"),
            "BLAKE3 of content must equal content_digest",
        ));
    }
    Ok(subject)
}

fn eval_recorded(e: &EvalRecorded, path: &str) -> Result<SubjectName> {
    let subject = subject(&e.subject, path)?;
    label(&e.version, path, "version")?;
    label(&e.suite, path, "suite")?;
    known_enum::<EvalKind>(e.eval_kind, path, "eval_kind")?;
    metrics(&e.metrics, path, "metrics", true)?;
    if !e.dataset_digest.is_empty() {
        digest(&e.dataset_digest, path, "dataset_digest")?;
    }
    optional_identity(&e.grader_model, path, "grader_model")?;
    reference(&e.run_ref, path, "run_ref")?;
    source(e.source.as_ref(), &at(path, "source"))?;
    Ok(subject)
}

fn approval_recorded(e: &ApprovalRecorded, path: &str) -> Result<SubjectName> {
    let subject = subject(&e.subject, path)?;
    label(&e.version, path, "version")?;
    label(&e.environment, path, "environment")?;
    known_enum::<Decision>(e.decision, path, "decision")?;
    text(&e.comment, MAX_TEXT_BYTES, path, "comment")?;
    Ok(subject)
}

fn deployment_recorded(e: &DeploymentRecorded, path: &str) -> Result<SubjectName> {
    let subject = subject(&e.subject, path)?;
    label(&e.version, path, "version")?;
    label(&e.environment, path, "environment")?;
    let field = format!("{path}.override_justification");
    text(
        &e.override_justification,
        MAX_TEXT_BYTES,
        path,
        "override_justification",
    )?;
    if !e.override_justification.is_empty() && e.override_justification.trim().is_empty() {
        return Err(LedgerError::invalid(field, "must not be blank when set"));
    }
    source(e.source.as_ref(), &at(path, "source"))?;
    Ok(subject)
}

fn incident_opened(e: &IncidentOpened, path: &str) -> Result<SubjectName> {
    label(&e.incident_id, path, "incident_id")?;
    let subject = subject(&e.subject, path)?;
    optional_label(&e.version, path, "version")?;
    optional_label(&e.environment, path, "environment")?;
    known_enum::<Severity>(e.severity, path, "severity")?;
    known_enum::<IncidentCategory>(e.category, path, "category")?;
    required_text(&e.description, path, "description")?;
    Ok(subject)
}

fn incident_resolved(e: &IncidentResolved, path: &str) -> Result<SubjectName> {
    label(&e.incident_id, path, "incident_id")?;
    let subject = subject(&e.subject, path)?;
    required_text(&e.resolution, path, "resolution")?;
    optional_label(&e.fixing_version, path, "fixing_version")?;
    Ok(subject)
}

fn feedback_recorded(e: &FeedbackRecorded, path: &str) -> Result<SubjectName> {
    let subject = subject(&e.subject, path)?;
    label(&e.version, path, "version")?;
    label(&e.environment, path, "environment")?;
    let start = timestamp(e.window_start.as_ref(), path, "window_start")?;
    let end = timestamp(e.window_end.as_ref(), path, "window_end")?;
    if end <= start {
        return Err(LedgerError::invalid(
            format!("{path}.window_end"),
            "must be after window_start",
        ));
    }
    let thumbs = e.thumbs_up.checked_add(e.thumbs_down);
    if thumbs.is_none_or(|t| t > e.total) {
        return Err(LedgerError::invalid(
            format!("{path}.total"),
            "must be at least thumbs_up + thumbs_down",
        ));
    }
    if e.rewrites > e.total {
        return Err(LedgerError::invalid(
            format!("{path}.total"),
            "must be at least rewrites",
        ));
    }
    Ok(subject)
}

fn policy_set(e: &PolicySet, path: &str) -> Result<SubjectName> {
    let subject = SubjectName::parse(&e.subject).map_err(|rule| {
        LedgerError::invalid(
            format!("{path}.subject"),
            format!("{rule}, or \"*\" for every subject"),
        )
    })?;
    label(&e.environment, path, "environment")?;
    let field = format!("{path}.required_suites");
    if e.required_suites.len() > MAX_LIST_LEN {
        return Err(LedgerError::invalid(
            field,
            format!("must have at most {MAX_LIST_LEN} suites"),
        ));
    }
    let mut suites = BTreeSet::new();
    for (i, required) in e.required_suites.iter().enumerate() {
        let item = format!("{field}[{i}]");
        label(&required.suite, &item, "suite")?;
        if !suites.insert(required.suite.as_str()) {
            return Err(LedgerError::invalid(
                format!("{item}.suite"),
                "must be unique in the policy",
            ));
        }
        if !required.thresholds.is_empty() {
            metrics(&required.thresholds, &item, "thresholds", false)?;
        }
    }
    if e.max_evidence_age_seconds > 100 * 365 * 24 * 3600 {
        return Err(LedgerError::invalid(
            format!("{path}.max_evidence_age_seconds"),
            "must be at most 100 years (0 = no limit)",
        ));
    }
    if e.min_approvals > 100 {
        return Err(LedgerError::invalid(
            format!("{path}.min_approvals"),
            "must be at most 100",
        ));
    }
    if e.block_on_open_incident_severity != 0 {
        known_enum::<Severity>(
            e.block_on_open_incident_severity,
            path,
            "block_on_open_incident_severity",
        )?;
    }
    for (value, name) in [
        (e.max_eval_score_drop, "max_eval_score_drop"),
        (
            e.max_negative_feedback_rate_rise,
            "max_negative_feedback_rate_rise",
        ),
        (
            e.baseline_negative_feedback_rate,
            "baseline_negative_feedback_rate",
        ),
    ] {
        if !value.is_finite() || value < 0.0 {
            return Err(LedgerError::invalid(
                format!("{path}.{name}"),
                "must be a finite number >= 0",
            ));
        }
    }
    if e.baseline_negative_feedback_rate > 1.0 {
        return Err(LedgerError::invalid(
            format!("{path}.baseline_negative_feedback_rate"),
            "must be a rate between 0 and 1",
        ));
    }
    Ok(subject)
}

/// `with_values`: eval results carry measured values; policy thresholds do not.
fn metrics(metrics: &[Metric], path: &str, name: &str, with_values: bool) -> Result<()> {
    if metrics.is_empty() || metrics.len() > MAX_LIST_LEN {
        return Err(LedgerError::invalid(
            at(path, name),
            format!("must have 1-{MAX_LIST_LEN} metrics"),
        ));
    }
    let mut names = BTreeSet::new();
    for (i, metric) in metrics.iter().enumerate() {
        let item = format!("{}[{i}]", at(path, name));
        label(&metric.name, &item, "name")?;
        if !names.insert(metric.name.as_str()) {
            return Err(LedgerError::invalid(
                format!("{item}.name"),
                "must be unique",
            ));
        }
        if with_values && !metric.value.is_finite() {
            return Err(LedgerError::invalid(
                format!("{item}.value"),
                "must be a finite number",
            ));
        }
        if !metric.threshold.is_finite() {
            return Err(LedgerError::invalid(
                format!("{item}.threshold"),
                "must be a finite number",
            ));
        }
        known_enum::<Direction>(metric.direction, &item, "direction")?;
    }
    Ok(())
}

fn subject(value: &str, path: &str) -> Result<SubjectName> {
    if is_subject(value) {
        SubjectName::parse(value)
            .map_err(|rule| LedgerError::invalid(format!("{path}.subject"), rule))
    } else {
        Err(LedgerError::invalid(
            format!("{path}.subject"),
            SUBJECT_RULE,
        ))
    }
}

fn label(value: &str, path: &str, name: &str) -> Result<()> {
    if is_label(value) {
        Ok(())
    } else {
        Err(LedgerError::invalid(at(path, name), LABEL_RULE))
    }
}

fn optional_label(value: &str, path: &str, name: &str) -> Result<()> {
    if value.is_empty() {
        Ok(())
    } else {
        label(value, path, name)
    }
}

fn optional_identity(value: &str, path: &str, name: &str) -> Result<()> {
    if value.is_empty() || is_identity(value) {
        Ok(())
    } else {
        Err(LedgerError::invalid(
            at(path, name),
            format!("{IDENTITY_RULE}, when set"),
        ))
    }
}

fn digest(value: &[u8], path: &str, name: &str) -> Result<()> {
    if value.len() == HASH_LEN {
        Ok(())
    } else {
        Err(LedgerError::invalid(
            at(path, name),
            format!(
                "must be a BLAKE3 digest of exactly {HASH_LEN} bytes (got {})",
                value.len()
            ),
        ))
    }
}

/// Free text: bounded, and no control characters but tab and newlines, so a
/// report or a terminal shows exactly what was recorded.
fn text(value: &str, max: usize, path: &str, name: &str) -> Result<()> {
    if value.len() > max {
        return Err(LedgerError::invalid(
            at(path, name),
            format!("must be at most {max} bytes"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(LedgerError::invalid(
            at(path, name),
            "must not contain control characters other than tab and newline",
        ));
    }
    Ok(())
}

fn required_text(value: &str, path: &str, name: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(LedgerError::invalid(
            at(path, name),
            "is required and must not be blank",
        ));
    }
    text(value, MAX_TEXT_BYTES, path, name)
}

fn reference(value: &str, path: &str, name: &str) -> Result<()> {
    if value.chars().any(char::is_control) {
        return Err(LedgerError::invalid(
            at(path, name),
            "must not contain control characters",
        ));
    }
    if value.len() > MAX_REF_BYTES {
        return Err(LedgerError::invalid(
            at(path, name),
            format!("must be at most {MAX_REF_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn source(source: Option<&Source>, path: &str) -> Result<()> {
    let Some(s) = source else { return Ok(()) };
    for (value, name) in [
        (&s.repository, "repository"),
        (&s.branch, "branch"),
        (&s.run_url, "run_url"),
        (&s.pipeline_id, "pipeline_id"),
        (&s.system, "system"),
    ] {
        reference(value, path, name)?;
    }
    let commit_ok =
        (4..=64).contains(&s.commit.len()) && s.commit.bytes().all(|b| b.is_ascii_hexdigit());
    if !(s.commit.is_empty() || commit_ok) {
        return Err(LedgerError::invalid(
            format!("{path}.commit"),
            "must be 4-64 hexadecimal characters, when set",
        ));
    }
    let url_ok = s.run_url.starts_with("https://") || s.run_url.starts_with("http://");
    if !(s.run_url.is_empty() || url_ok) {
        return Err(LedgerError::invalid(
            format!("{path}.run_url"),
            "must be an http(s) URL, when set",
        ));
    }
    Ok(())
}

fn timestamp(ts: Option<&prost_types::Timestamp>, path: &str, name: &str) -> Result<(i64, i32)> {
    let ts = ts.ok_or_else(|| LedgerError::invalid(at(path, name), "is required"))?;
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(LedgerError::invalid(
            at(path, name),
            "nanos must be in 0..1e9",
        ));
    }
    // RFC 3339 range, as protobuf's Timestamp documents it.
    if !(-62_135_596_800..=253_402_300_799).contains(&ts.seconds) {
        return Err(LedgerError::invalid(
            at(path, name),
            "must be between years 0001 and 9999",
        ));
    }
    Ok((ts.seconds, ts.nanos))
}

/// A protobuf enum field: must be a known value other than UNSPECIFIED (0).
fn known_enum<E: TryFrom<i32>>(value: i32, path: &str, name: &str) -> Result<()> {
    if value == 0 {
        return Err(LedgerError::invalid(
            at(path, name),
            "is required (UNSPECIFIED is not allowed)",
        ));
    }
    if E::try_from(value).is_err() {
        return Err(LedgerError::invalid(
            at(path, name),
            format!("unknown enum value {value}"),
        ));
    }
    Ok(())
}
