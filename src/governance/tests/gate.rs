//! Each gate rule denied, then satisfied; policy precedence and history.

use super::*;
use crate::governance::{GateDecision, check_gate};

/// v1 of `S`, written by alice, registered by ci.
fn registered() -> Log {
    given(&[("ci", register(S, "v1", "alice"))])
}

fn gate(log: &Log, deployer: &str) -> GateDecision {
    check_gate(&log.state, S, "v1", "prod", deployer, log.now_us)
}

#[track_caller]
fn denied_by(log: &Log, rules: &[&str]) -> GateDecision {
    let decision = gate(log, "cd");
    assert!(!decision.allow);
    assert_eq!(rules_of(&decision.reasons), rules);
    decision
}

#[track_caller]
fn allowed(log: &Log) {
    let decision = gate(log, "cd");
    assert!(decision.allow, "denied: {:?}", decision.reasons);
    assert!(decision.reasons.is_empty());
}

#[test]
fn no_policy_allows_any_registered_version() {
    let log = registered();
    let decision = gate(&log, "cd");
    assert_eq!(
        decision,
        GateDecision {
            allow: true,
            policy_sequence: None,
            reasons: vec![]
        }
    );
}

#[test]
fn unregistered_versions_are_always_denied() {
    let log = registered();
    let decision = check_gate(&log.state, S, "v9", "prod", "cd", log.now_us);
    assert_eq!(rules_of(&decision.reasons), ["registered"]);
    let decision = check_gate(&log.state, "other", "v1", "prod", "cd", log.now_us);
    assert!(!decision.allow);
}

#[test]
fn required_suite_with_thresholds() {
    let mut log = registered();
    log.ok(
        "gov",
        policy(PolicySet {
            required_suites: vec![accuracy_at_least(0.85)],
            ..rules(S, "prod")
        }),
    );
    let policy_seq = log.last();
    let decision = denied_by(&log, &["required_suite"]);
    assert_eq!(decision.policy_sequence, Some(policy_seq));

    // Below the policy's threshold, even though the client claimed 0.5 as
    // its own threshold (and so a pass): the policy's threshold applies.
    log.ok(
        "ci",
        eval(S, "v1", "regression", vec![higher("accuracy", 0.8, 0.5)]),
    );
    let below = log.last();
    let decision = denied_by(&log, &["metric_threshold"]);
    assert_eq!(decision.reasons[0].actual, "0.8");
    assert_eq!(decision.reasons[0].expected, "regression/accuracy >= 0.85");
    assert_eq!(decision.reasons[0].evidence, [below]);

    // The metric missing from the latest result.
    log.ok(
        "ci",
        eval(S, "v1", "regression", vec![higher("recall", 0.9, 0.5)]),
    );
    let decision = denied_by(&log, &["metric_threshold"]);
    assert!(decision.reasons[0].actual.contains("missing"));

    log.ok("ci", accuracy(S, "v1", 0.85));
    allowed(&log);
}

#[test]
fn lower_is_better_thresholds() {
    let mut log = registered();
    log.ok(
        "gov",
        policy(PolicySet {
            required_suites: vec![RequiredSuite {
                suite: "safety".into(),
                thresholds: vec![lower("toxicity", 0.0, 0.01)],
            }],
            ..rules(S, "prod")
        }),
    );
    log.ok(
        "ci",
        eval(S, "v1", "safety", vec![lower("toxicity", 0.02, 0.05)]),
    );
    denied_by(&log, &["metric_threshold"]);
    log.ok(
        "ci",
        eval(S, "v1", "safety", vec![lower("toxicity", 0.01, 0.05)]),
    );
    allowed(&log);
}

#[test]
fn required_suite_without_thresholds_must_have_passed() {
    let mut log = registered();
    log.ok(
        "gov",
        policy(PolicySet {
            required_suites: vec![RequiredSuite {
                suite: "regression".into(),
                thresholds: vec![],
            }],
            ..rules("*", "prod")
        }),
    );
    // Pass/fail is computed from every metric: one failing metric fails it.
    log.ok(
        "ci",
        eval(
            S,
            "v1",
            "regression",
            vec![
                higher("accuracy", 0.9, 0.85),
                lower("latency_ms", 900.0, 800.0),
            ],
        ),
    );
    let decision = denied_by(&log, &["required_suite"]);
    assert_eq!(decision.reasons[0].actual, "failed (latency_ms)");
    log.ok(
        "ci",
        eval(
            S,
            "v1",
            "regression",
            vec![
                higher("accuracy", 0.9, 0.85),
                lower("latency_ms", 700.0, 800.0),
            ],
        ),
    );
    allowed(&log);
    let result = &log.state.version(S, "v1").expect("v1").evals["regression"];
    assert!(result.passed && result.metrics.values().all(|m| m.passed));
}

#[test]
fn evidence_age() {
    let mut log = registered();
    log.ok(
        "gov",
        policy(PolicySet {
            required_suites: vec![accuracy_at_least(0.85)],
            max_evidence_age_seconds: 3600,
            ..rules(S, "prod")
        }),
    );
    log.ok("ci", accuracy(S, "v1", 0.9));
    allowed(&log);
    log.advance(3600);
    // Exactly at the limit: still fresh ("at or after now - age").
    let at_limit = check_gate(&log.state, S, "v1", "prod", "cd", log.now_us);
    assert_eq!(at_limit.reasons, vec![], "recorded exactly max age ago");
    log.advance(2);
    let decision = denied_by(&log, &["evidence_age"]);
    assert_eq!(decision.reasons[0].evidence, [log.last()]);
    log.ok("ci", accuracy(S, "v1", 0.9));
    allowed(&log);
}

#[test]
fn min_approvals_by_distinct_approvers() {
    let mut log = registered();
    log.ok(
        "gov",
        policy(PolicySet {
            min_approvals: 2,
            ..rules(S, "prod")
        }),
    );
    let decision = denied_by(&log, &["min_approvals"]);
    assert_eq!(decision.reasons[0].actual, "0");
    log.ok("bob", approve(S, "v1", "prod"));
    let bob = log.last();
    // Approvals for another environment do not count for prod.
    log.ok("carol", approve(S, "v1", "staging"));
    let decision = denied_by(&log, &["min_approvals"]);
    assert_eq!(decision.reasons[0].evidence, [bob]);
    log.ok("carol", approve(S, "v1", "prod"));
    allowed(&log);
}

#[test]
fn a_standing_rejection_denies_and_a_later_approval_withdraws_it() {
    let mut log = registered();
    log.ok("gov", policy(rules(S, "prod")));
    log.ok("bob", approve(S, "v1", "prod"));
    log.ok("dave", reject(S, "v1", "prod"));
    let dave = log.last();
    let decision = denied_by(&log, &["rejected"]);
    assert_eq!(decision.reasons[0].evidence, [dave]);
    log.ok("dave", approve(S, "v1", "prod"));
    allowed(&log);
    // Bob changes his mind: his approval no longer counts.
    log.ok(
        "gov",
        policy(PolicySet {
            min_approvals: 2,
            ..rules(S, "prod")
        }),
    );
    allowed(&log);
    log.ok("bob", reject(S, "v1", "prod"));
    denied_by(&log, &["min_approvals", "rejected"]);
}

#[test]
fn separation_of_duties_in_the_gate() {
    // The author's approval was recorded while the policy allowed it; the
    // policy then changed, and it no longer counts.
    let mut log = registered();
    log.ok(
        "gov",
        policy(PolicySet {
            min_approvals: 1,
            allow_self_approval: true,
            ..rules(S, "prod")
        }),
    );
    log.ok("alice", approve(S, "v1", "prod"));
    let alice = log.last();
    allowed(&log);
    log.ok(
        "gov",
        policy(PolicySet {
            min_approvals: 1,
            ..rules(S, "prod")
        }),
    );
    let decision = denied_by(&log, &["min_approvals", "separation_of_duties"]);
    assert_eq!(decision.reasons[1].evidence, [alice]);
    log.ok("bob", approve(S, "v1", "prod"));
    allowed(&log);
}

#[test]
fn deployer_not_sole_approver() {
    let mut log = registered();
    log.ok(
        "gov",
        policy(PolicySet {
            min_approvals: 1,
            deployer_not_sole_approver: true,
            ..rules(S, "prod")
        }),
    );
    log.ok("bob", approve(S, "v1", "prod"));
    // Bob deploying what only he approved: his approval does not count.
    let decision = check_gate(&log.state, S, "v1", "prod", "bob", log.now_us);
    assert_eq!(
        rules_of(&decision.reasons),
        ["min_approvals", "deployer_not_sole_approver"]
    );
    // Someone else deploying it is fine.
    allowed(&log);
    log.ok("carol", approve(S, "v1", "prod"));
    let decision = check_gate(&log.state, S, "v1", "prod", "bob", log.now_us);
    assert!(decision.allow, "{:?}", decision.reasons);
}

#[test]
fn open_incidents_at_or_above_the_severity_block() {
    let mut log = registered();
    log.ok(
        "gov",
        policy(PolicySet {
            block_on_open_incident_severity: Severity::High as i32,
            ..rules("*", "prod")
        }),
    );
    log.ok("oncall", open("INC-low", S, "v1", Severity::Low));
    allowed(&log);
    log.ok("oncall", open("INC-crit", S, "", Severity::Critical));
    let crit = log.last();
    let decision = denied_by(&log, &["open_incident"]);
    assert_eq!(decision.reasons[0].evidence, [crit]);
    assert_eq!(decision.reasons[0].actual, "open: INC-crit (CRITICAL)");
    log.ok("oncall", resolve("INC-crit", S, ""));
    allowed(&log);
}

#[test]
fn every_unmet_rule_is_reported_in_order() {
    let mut log = registered();
    log.ok("oncall", open("INC-1", S, "v1", Severity::Critical));
    log.ok(
        "gov",
        policy(PolicySet {
            required_suites: vec![accuracy_at_least(0.85)],
            min_approvals: 1,
            block_on_open_incident_severity: Severity::High as i32,
            ..rules(S, "prod")
        }),
    );
    log.ok("dave", reject(S, "v1", "prod"));
    denied_by(
        &log,
        &[
            "required_suite",
            "min_approvals",
            "rejected",
            "open_incident",
        ],
    );
}

#[test]
fn a_subject_policy_overrides_the_default() {
    let mut log = registered();
    log.ok(
        "gov",
        policy(PolicySet {
            min_approvals: 3,
            ..rules("*", "prod")
        }),
    );
    denied_by(&log, &["min_approvals"]);
    log.ok("gov", policy(rules(S, "prod")));
    let own = log.last();
    let decision = gate(&log, "cd");
    assert!(decision.allow);
    assert_eq!(decision.policy_sequence, Some(own));
    // Other environments and subjects are untouched.
    assert_eq!(log.state.policy(S, "staging"), None);
    assert_eq!(
        log.state.policy("other", "prod").map(|(s, _)| s),
        Some(own - 1)
    );
}

#[test]
fn a_policy_changed_mid_history_applies_from_its_entry_on() {
    let history = vec![
        ("gov", policy(rules(S, "prod"))),
        ("ci", register(S, "v1", "alice")),
        ("ci", accuracy(S, "v1", 0.8)),
        (
            "gov",
            policy(PolicySet {
                required_suites: vec![accuracy_at_least(0.85)],
                ..rules(S, "prod")
            }),
        ),
    ];
    // The state as of entry 3 (before the change) uses the old policy.
    let before = given(&history[..3]);
    let decision = check_gate(&before.state, S, "v1", "prod", "cd", before.now_us);
    assert!(decision.allow);
    assert_eq!(decision.policy_sequence, Some(1));
    let after = given(&history);
    let decision = check_gate(&after.state, S, "v1", "prod", "cd", after.now_us);
    assert_eq!(rules_of(&decision.reasons), ["metric_threshold"]);
    assert_eq!(decision.policy_sequence, Some(4));
    // And a deployment decided against the prefix would have been accepted.
    assert!(before.when("cd", deploy(S, "v1", "prod")).is_ok());
    assert!(after.when("cd", deploy(S, "v1", "prod")).is_err());
}
