//! The whole loop: register → evaluate → approve → deploy → incident → fix →
//! deploy (supersede) → drift → rollback.

use super::*;
use crate::governance::{Stage, check_gate};

#[test]
fn full_lifecycle() {
    let mut log = given(&[(
        "governance",
        policy(PolicySet {
            required_suites: vec![accuracy_at_least(0.85)],
            min_approvals: 1,
            block_on_open_incident_severity: Severity::High as i32,
            max_eval_score_drop: 0.05,
            ..rules("*", "prod")
        }),
    )]);

    // v1: registered by CI, written by alice, evaluated, approved by bob.
    log.ok("ci", register(S, "v1", "alice"));
    let v1 = log.last();
    assert_eq!(
        log.state.version(S, "v1").map(|v| v.stage),
        Some(Stage::Registered)
    );
    log.ok("ci", accuracy(S, "v1", 0.91));
    assert_eq!(
        log.state.version(S, "v1").map(|v| v.stage),
        Some(Stage::Evaluated)
    );
    let denied = log.rejected("cd", deploy(S, "v1", "prod"));
    assert_eq!(rules_of(&denied.reasons), ["min_approvals"]);
    log.ok("bob", approve(S, "v1", "prod"));
    assert_eq!(
        log.state.version(S, "v1").map(|v| v.stage),
        Some(Stage::Approved)
    );
    assert!(log.ok("cd", deploy(S, "v1", "prod")).is_empty());
    let subject = log.state.subject(S).expect("subject");
    assert_eq!(subject.created_sequence(), v1);
    assert_eq!(subject.live_version("prod"), Some("v1"));
    assert_eq!(
        subject.version("v1").map(|v| v.stage),
        Some(Stage::Deployed)
    );

    // An incident against v1 blocks the next deployment until it is fixed.
    log.ok("oncall", open("INC-1", S, "v1", Severity::High));
    let incident_seq = log.last();
    log.ok(
        "ci",
        register_with(S, "v2", "alice", "v1", SubjectKind::Prompt),
    );
    log.ok("ci", accuracy(S, "v2", 0.95));
    log.ok("bob", approve(S, "v2", "prod"));
    log.ok("carol", approve(S, "v2", "prod"));
    let denied = log.rejected("cd", deploy(S, "v2", "prod"));
    assert_eq!(rules_of(&denied.reasons), ["open_incident"]);
    assert_eq!(denied.reasons[0].evidence, [incident_seq]);
    log.ok("oncall", resolve("INC-1", S, "v2"));
    let inc = log.state.incident("INC-1").expect("incident");
    assert_eq!(
        inc.resolution
            .as_ref()
            .and_then(|r| r.fixing_version.as_deref()),
        Some("v2")
    );

    // v2 replaces v1: v1 is superseded (v2 is newer).
    assert!(log.ok("cd", deploy(S, "v2", "prod")).is_empty());
    let v2_deploy = log.last();
    let subject = log.state.subject(S).expect("subject");
    assert_eq!(subject.live_version("prod"), Some("v2"));
    assert_eq!(
        subject.version("v1").map(|v| v.stage),
        Some(Stage::Superseded)
    );
    assert_eq!(
        subject.version("v2").map(|v| v.stage),
        Some(Stage::Deployed)
    );
    assert_eq!(subject.open_incident_ids().count(), 0);

    // A later eval of v2 drops 0.10 below its result at deployment: drift.
    let derived = log.ok("nightly", accuracy(S, "v2", 0.85));
    let eval_seq = log.last() - 1;
    assert_eq!(derived.len(), 1);
    let drift = incident_of(&derived[0]);
    assert_eq!(drift.incident_id, format!("drift-{eval_seq}"));
    assert_eq!(drift.category, IncidentCategory::Drift as i32);
    assert_eq!(drift.related_sequence, eval_seq);
    let episode = log.state.subject(S).and_then(|s| s.drift("prod")).cloned();
    assert_eq!(
        episode.as_ref().map(|e| e.incident_id.as_str()),
        Some(drift.incident_id.as_str())
    );
    assert!(episode.is_some_and(|e| e.finding.contains("accuracy 0.95 -> 0.85")));
    let opened = log
        .state
        .incident(&drift.incident_id)
        .expect("drift incident");
    assert_eq!(opened.opened_by, SYSTEM_ACTOR);

    // Rollback to v1: allowed (drift is MEDIUM, below the HIGH block); v2 is
    // rolled back, v1 live again, and the new deployment ends the episode.
    assert!(log.ok("cd", deploy(S, "v1", "prod")).is_empty());
    let subject = log.state.subject(S).expect("subject");
    assert_eq!(subject.live_version("prod"), Some("v1"));
    assert_eq!(
        subject.version("v2").map(|v| v.stage),
        Some(Stage::RolledBack)
    );
    assert_eq!(
        subject.version("v1").map(|v| v.stage),
        Some(Stage::Deployed)
    );
    assert_eq!(subject.drift("prod"), None);
    let history = &subject.environment("prod").expect("prod").history;
    let summary: Vec<_> = history
        .iter()
        .map(|d| (d.version.as_str(), d.replaced.as_deref(), d.is_rollback))
        .collect();
    assert_eq!(
        summary,
        [
            ("v1", None, false),
            ("v2", Some("v1"), false),
            ("v1", Some("v2"), true)
        ]
    );
    assert_eq!(history[1].sequence, v2_deploy);
    assert!(
        history
            .iter()
            .all(|d| d.actor == "cd" && d.override_justification.is_none())
    );

    // The version records carry the evidence trail.
    let v2 = log.state.version(S, "v2").expect("v2");
    assert_eq!(v2.parent.as_deref(), Some("v1"));
    assert_eq!(
        (v2.author.as_str(), v2.registered_by.as_str()),
        ("alice", "ci")
    );
    assert!(v2.incidents.contains(&drift.incident_id));
    assert_eq!(v2.approvals["prod"].len(), 2);
    assert_eq!(log.state.unplaced(), &[] as &[u64]);
    let gate = check_gate(&log.state, S, "v2", "prod", "cd", log.now_us);
    assert!(gate.allow, "v2 still meets the gate: {:?}", gate.reasons);
}

/// Redeploying to another environment keeps a version `Deployed` until it is
/// replaced everywhere.
#[test]
fn stage_follows_every_environment() {
    let mut log = given(&[
        ("ci", register(S, "v1", "alice")),
        ("ci", register(S, "v2", "alice")),
    ]);
    log.ok("cd", deploy(S, "v1", "staging"));
    log.ok("cd", deploy(S, "v1", "prod"));
    log.ok("cd", deploy(S, "v2", "staging"));
    let subject = log.state.subject(S).expect("subject");
    assert_eq!(
        subject.version("v1").map(|v| v.stage),
        Some(Stage::Deployed)
    );
    assert_eq!(
        subject.live_environments("v1").collect::<Vec<_>>(),
        ["prod"]
    );
    log.ok("cd", deploy(S, "v2", "prod"));
    let subject = log.state.subject(S).expect("subject");
    assert_eq!(
        subject.version("v1").map(|v| v.stage),
        Some(Stage::Superseded)
    );
    // Redeploying what is live replaces nothing.
    log.ok("cd", deploy(S, "v2", "prod"));
    let prod = log
        .state
        .subject(S)
        .and_then(|s| s.environment("prod"))
        .expect("prod");
    assert_eq!(prod.history.last().map(|d| d.replaced.clone()), Some(None));
}
