//! The deployment gate: may this version go live in this environment now?
//!
//! Pure and read-only. `decide` runs it on every `DeploymentRecorded`, and
//! the `CheckGate` read answers with the same function, so a pipeline that
//! asked first gets the answer its deployment will get.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::state::{IncidentState, State, SubjectState, VersionState, meets};
use crate::proto::v1::{Decision, Direction, PolicySet, RequiredSuite, Severity};

/// The gate's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateDecision {
    /// No reasons: every rule of the policy in force is met.
    pub allow: bool,
    /// The entry of the policy that was applied (none = no policy in force).
    pub policy_sequence: Option<u64>,
    /// Every unmet rule, in a fixed order.
    pub reasons: Vec<GateReason>,
}

/// One unmet rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateReason {
    /// `registered`, `required_suite`, `metric_threshold`, `evidence_age`,
    /// `min_approvals`, `separation_of_duties`, `rejected`,
    /// `deployer_not_sole_approver` or `open_incident`.
    pub rule: String,
    pub expected: String,
    pub actual: String,
    /// The entries the finding rests on (sequence numbers).
    pub evidence: Vec<u64>,
}

impl GateReason {
    fn new(rule: &str, expected: String, actual: String, evidence: Vec<u64>) -> GateReason {
        GateReason {
            rule: rule.to_owned(),
            expected,
            actual,
            evidence,
        }
    }
}

impl fmt::Display for GateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, actual {}",
            self.rule, self.expected, self.actual
        )?;
        if !self.evidence.is_empty() {
            let entries: Vec<String> = self.evidence.iter().map(u64::to_string).collect();
            write!(f, " (entries {})", entries.join(", "))?;
        }
        Ok(())
    }
}

/// Checks every rule of the policy in force for (`subject`, `environment`)
/// against `version`, as if `deployer` deployed it at `now_us`.
///
/// No policy in force allows any registered version. An unregistered version
/// is always denied (rule `registered`), policy or not: nothing unknown goes
/// live.
pub fn check_gate(
    state: &State,
    subject: &str,
    version: &str,
    environment: &str,
    deployer: &str,
    now_us: i64,
) -> GateDecision {
    let policy = state.policy(subject, environment);
    let policy_sequence = policy.map(|(sequence, _)| sequence);
    let found = state
        .subject(subject)
        .and_then(|s| Some((s, s.version(version)?)));
    let Some((subject_state, version_state)) = found else {
        let reason = GateReason::new(
            "registered",
            format!("version {version} of {subject} registered"),
            "not registered".to_owned(),
            Vec::new(),
        );
        return decision(policy_sequence, vec![reason]);
    };
    let Some((_, policy)) = policy else {
        return decision(None, Vec::new());
    };
    let check = Check {
        state,
        subject: subject_state,
        version: version_state,
        environment,
        deployer,
        now_us,
        policy,
    };
    let mut reasons = Vec::new();
    check.suites(&mut reasons);
    check.approvals(&mut reasons);
    check.incidents(&mut reasons);
    decision(policy_sequence, reasons)
}

fn decision(policy_sequence: Option<u64>, reasons: Vec<GateReason>) -> GateDecision {
    GateDecision {
        allow: reasons.is_empty(),
        policy_sequence,
        reasons,
    }
}

struct Check<'a> {
    state: &'a State,
    subject: &'a SubjectState,
    version: &'a VersionState,
    environment: &'a str,
    deployer: &'a str,
    now_us: i64,
    policy: &'a PolicySet,
}

impl Check<'_> {
    /// `required_suite`, `metric_threshold`, `evidence_age`.
    fn suites(&self, reasons: &mut Vec<GateReason>) {
        let max_age_us = i64::try_from(self.policy.max_evidence_age_seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000);
        let oldest_us = self.now_us.saturating_sub(max_age_us);
        for required in &self.policy.required_suites {
            let Some(result) = self.version.evals.get(&required.suite) else {
                reasons.push(GateReason::new(
                    "required_suite",
                    format!("a result of suite {}", required.suite),
                    "none recorded".to_owned(),
                    Vec::new(),
                ));
                continue;
            };
            if required.thresholds.is_empty() {
                if !result.passed {
                    let failed: Vec<&str> = result
                        .metrics
                        .iter()
                        .filter(|(_, m)| !m.passed)
                        .map(|(name, _)| name.as_str())
                        .collect();
                    reasons.push(GateReason::new(
                        "required_suite",
                        format!("suite {} passed", required.suite),
                        format!("failed ({})", failed.join(", ")),
                        vec![result.sequence],
                    ));
                }
            } else {
                thresholds(required, result, reasons);
            }
            if self.policy.max_evidence_age_seconds > 0 && result.recorded_at_us < oldest_us {
                reasons.push(GateReason::new(
                    "evidence_age",
                    format!(
                        "suite {} recorded at or after {} (at most {} s old)",
                        required.suite, oldest_us, self.policy.max_evidence_age_seconds
                    ),
                    format!("recorded at {}", result.recorded_at_us),
                    vec![result.sequence],
                ));
            }
        }
    }

    /// `min_approvals`, `separation_of_duties`, `rejected`,
    /// `deployer_not_sole_approver`. Each approver counts with their latest
    /// decision only: a later reject withdraws an approval, and vice versa.
    fn approvals(&self, reasons: &mut Vec<GateReason>) {
        let latest = self.version.latest_decisions(self.environment);
        let approving: Vec<_> = latest
            .values()
            .filter(|a| a.decision == Decision::Approve)
            .collect();
        let mut counted = Vec::new();
        let mut own = Vec::new();
        for approval in &approving {
            if !self.policy.allow_self_approval && self.version.is_own(&approval.approver) {
                own.push(approval);
            } else if !(self.policy.deployer_not_sole_approver
                && approval.approver == self.deployer)
            {
                counted.push(approval);
            }
        }
        let needed = usize::try_from(self.policy.min_approvals).unwrap_or(usize::MAX);
        if counted.len() < needed {
            let names: Vec<&str> = counted.iter().map(|a| a.approver.as_str()).collect();
            reasons.push(GateReason::new(
                "min_approvals",
                format!(
                    "{} approvals by distinct approvers for {}",
                    self.policy.min_approvals, self.environment
                ),
                if names.is_empty() {
                    "0".to_owned()
                } else {
                    format!("{} ({})", names.len(), names.join(", "))
                },
                counted.iter().map(|a| a.sequence).collect(),
            ));
            // Explain approvals that exist but did not count: otherwise the
            // author sees "1 approval needed, 0 found" next to their own.
            if !own.is_empty() {
                let names: Vec<&str> = own.iter().map(|a| a.approver.as_str()).collect();
                reasons.push(GateReason::new(
                    "separation_of_duties",
                    "approvals by someone other than the version's author or registrant".to_owned(),
                    format!("approved by {} only (not counted)", names.join(", ")),
                    own.iter().map(|a| a.sequence).collect(),
                ));
            }
        }
        let rejecting: Vec<_> = latest
            .values()
            .filter(|a| a.decision == Decision::Reject)
            .collect();
        if !rejecting.is_empty() {
            let names: Vec<&str> = rejecting.iter().map(|a| a.approver.as_str()).collect();
            reasons.push(GateReason::new(
                "rejected",
                format!("no rejection standing for {}", self.environment),
                format!("rejected by {}", names.join(", ")),
                rejecting.iter().map(|a| a.sequence).collect(),
            ));
        }
        if self.policy.deployer_not_sole_approver
            && !approving.is_empty()
            && approving.iter().all(|a| a.approver == self.deployer)
        {
            reasons.push(GateReason::new(
                "deployer_not_sole_approver",
                format!("an approver other than the deployer {}", self.deployer),
                format!("{} is the only approver", self.deployer),
                approving.iter().map(|a| a.sequence).collect(),
            ));
        }
    }

    /// `open_incident`: any open incident of the subject (whatever its
    /// version) at or above the blocking severity.
    fn incidents(&self, reasons: &mut Vec<GateReason>) {
        let block = self.policy.block_on_open_incident_severity;
        if block == Severity::Unspecified as i32 {
            return;
        }
        let blocking: Vec<&IncidentState> = self
            .subject
            .open_incident_ids()
            .filter_map(|id| self.state.incident(id))
            .filter(|i| i.severity as i32 >= block)
            .collect();
        if blocking.is_empty() {
            return;
        }
        let listed: Vec<String> = blocking
            .iter()
            .map(|i| format!("{} ({})", i.id, severity_name(i.severity as i32)))
            .collect();
        reasons.push(GateReason::new(
            "open_incident",
            format!(
                "no open incident of severity {} or above",
                severity_name(block)
            ),
            format!("open: {}", listed.join(", ")),
            blocking.iter().map(|i| i.opened_sequence).collect(),
        ));
    }
}

/// `metric_threshold`: each named metric present in the latest result and
/// meeting the *policy's* threshold and direction (not the client's).
fn thresholds(
    required: &RequiredSuite,
    result: &super::state::SuiteResult,
    reasons: &mut Vec<GateReason>,
) {
    for threshold in &required.thresholds {
        let direction = Direction::try_from(threshold.direction).unwrap_or_default();
        let expected = format!(
            "{}/{} {} {}",
            required.suite,
            threshold.name,
            comparison(direction),
            threshold.threshold
        );
        match result.metrics.get(&threshold.name) {
            None => reasons.push(GateReason::new(
                "metric_threshold",
                expected,
                "metric missing from the latest result".to_owned(),
                vec![result.sequence],
            )),
            Some(metric) if !meets(metric.value, threshold.threshold, direction) => {
                reasons.push(GateReason::new(
                    "metric_threshold",
                    expected,
                    metric.value.to_string(),
                    vec![result.sequence],
                ));
            }
            Some(_) => {}
        }
    }
}

fn comparison(direction: Direction) -> &'static str {
    match direction {
        Direction::HigherIsBetter => ">=",
        Direction::LowerIsBetter => "<=",
        Direction::Unspecified => "(no direction)",
    }
}

/// `HIGH` rather than `SEVERITY_HIGH`.
pub(super) fn severity_name(value: i32) -> &'static str {
    Severity::try_from(value)
        .map(|s| s.as_str_name().trim_start_matches("SEVERITY_"))
        .unwrap_or("UNKNOWN")
}
