//! decide's rules (each rejection names what is wrong), overrides, and the
//! fold's totality and digest.

use super::*;
use crate::governance::Stage;

/// `S` with v1 (author alice, registered by ci) and an open incident INC-1.
fn world() -> Log {
    given(&[
        ("ci", register(S, "v1", "alice")),
        ("oncall", open("INC-1", S, "v1", Severity::Low)),
        ("ci", register("other/model", "m1", "zed")),
    ])
}

#[track_caller]
fn rejects(log: &Log, actor: &str, event: Event, message: &str) {
    match log.when(actor, event) {
        Ok(derived) => panic!("accepted (derived {derived:?}), expected {message:?}"),
        Err(rejection) => {
            assert_eq!(rejection.message, message);
            assert!(rejection.reasons.is_empty());
        }
    }
}

#[test]
fn version_registration_rules() {
    let log = world();
    rejects(
        &log,
        "ci",
        register(S, "v1", "bob"),
        &format!("version v1 of {S} is already registered (entry 1)"),
    );
    rejects(
        &log,
        "ci",
        register_with(S, "v2", "alice", "", SubjectKind::Model),
        &format!("subject {S} is of kind SUBJECT_KIND_PROMPT, not SUBJECT_KIND_MODEL"),
    );
    rejects(
        &log,
        "ci",
        register_with(S, "v2", "alice", "v0", SubjectKind::Prompt),
        &format!("parent version v0 of {S} is not registered"),
    );
    assert!(
        log.when(
            "ci",
            register_with(S, "v2", "alice", "v1", SubjectKind::Prompt)
        )
        .is_ok()
    );
    assert!(log.when("ci", register("new/subject", "v1", "")).is_ok());
}

#[test]
fn unknown_subjects_and_versions_are_rejected_by_name() {
    let log = world();
    let unknown_version = format!("version v9 of {S} is not registered");
    let unknown_subject = "subject nope is not registered";
    for event in [
        accuracy(S, "v9", 0.9),
        approve(S, "v9", "prod"),
        deploy(S, "v9", "prod"),
        feedback(S, "v9", "prod", 1, 10),
        open("INC-2", S, "v9", Severity::Low),
    ] {
        rejects(&log, "bob", event, &unknown_version);
    }
    for event in [
        accuracy("nope", "v1", 0.9),
        approve("nope", "v1", "prod"),
        deploy("nope", "v1", "prod"),
        feedback("nope", "v1", "prod", 1, 10),
        open("INC-2", "nope", "", Severity::Low),
        open("INC-2", "nope", "v1", Severity::Low),
    ] {
        rejects(&log, "bob", event, unknown_subject);
    }
}

#[test]
fn incident_rules() {
    let mut log = world();
    rejects(
        &log,
        "oncall",
        open("INC-1", S, "", Severity::Low),
        "incident id INC-1 is already used (entry 2)",
    );
    rejects(
        &log,
        "oncall",
        resolve("INC-9", S, ""),
        "incident INC-9 does not exist",
    );
    rejects(
        &log,
        "oncall",
        resolve("INC-1", "other/model", ""),
        &format!("incident INC-1 belongs to subject {S}, not other/model"),
    );
    rejects(
        &log,
        "oncall",
        resolve("INC-1", S, "v7"),
        &format!("fixing version v7 of {S} is not registered"),
    );
    log.ok("oncall", resolve("INC-1", S, "v1"));
    let resolved = log.last();
    rejects(
        &log,
        "oncall",
        resolve("INC-1", S, ""),
        &format!("incident INC-1 is already resolved (entry {resolved})"),
    );
    // A resolved id stays used.
    rejects(
        &log,
        "oncall",
        open("INC-1", S, "", Severity::Low),
        "incident id INC-1 is already used (entry 2)",
    );
    let incident = log.state.incident("INC-1").expect("INC-1");
    assert!(!incident.is_open());
    assert_eq!(
        log.state.subject(S).map(|s| s.open_incident_ids().count()),
        Some(0)
    );
    assert_eq!(
        log.state.subject(S).map(|s| s.incident_ids().count()),
        Some(1)
    );
}

#[test]
fn approving_twice_is_rejected_while_the_first_stands() {
    let mut log = world();
    log.ok("bob", approve(S, "v1", "prod"));
    let first = log.last();
    rejects(
        &log,
        "bob",
        approve(S, "v1", "prod"),
        &format!("bob already approved version v1 of {S} for prod (entry {first})"),
    );
    // Another environment is another decision; a reject is always recorded.
    log.ok("bob", approve(S, "v1", "staging"));
    log.ok("bob", reject(S, "v1", "prod"));
    log.ok("bob", reject(S, "v1", "prod"));
    // After withdrawing, bob may approve again.
    log.ok("bob", approve(S, "v1", "prod"));
    assert_eq!(
        log.state
            .version(S, "v1")
            .map(|v| v.approvals["prod"].len()),
        Some(4)
    );
}

#[test]
fn separation_of_duties_at_approval() {
    let mut log = world();
    rejects(
        &log,
        "alice",
        approve(S, "v1", "prod"),
        &format!(
            "alice authored version v1 of {S} and may not approve it for prod (separation of \
             duties; the policy in force does not set allow_self_approval)"
        ),
    );
    rejects(
        &log,
        "ci",
        approve(S, "v1", "prod"),
        &format!(
            "ci registered version v1 of {S} and may not approve it for prod (separation of \
             duties; the policy in force does not set allow_self_approval)"
        ),
    );
    // The author may object to their own version.
    log.ok("alice", reject(S, "v1", "prod"));
    // A policy that does not allow it changes nothing; one that does, does,
    // for its environment only.
    log.ok("gov", policy(rules(S, "prod")));
    assert!(log.when("alice", approve(S, "v1", "prod")).is_err());
    log.ok(
        "gov",
        policy(PolicySet {
            allow_self_approval: true,
            ..rules("*", "dev")
        }),
    );
    log.ok("alice", approve(S, "v1", "dev"));
    assert!(log.when("alice", approve(S, "v1", "prod")).is_err());
}

#[test]
fn a_denied_deployment_lists_every_unmet_rule() {
    let mut log = world();
    log.ok(
        "gov",
        policy(PolicySet {
            required_suites: vec![accuracy_at_least(0.85)],
            min_approvals: 2,
            block_on_open_incident_severity: Severity::Low as i32,
            ..rules(S, "prod")
        }),
    );
    let policy_seq = log.last();
    log.ok("bob", approve(S, "v1", "prod"));
    let rejection = log.rejected("cd", deploy(S, "v1", "prod"));
    assert_eq!(
        rules_of(&rejection.reasons),
        ["required_suite", "min_approvals", "open_incident"]
    );
    let message = &rejection.message;
    assert!(
        message.starts_with(&format!(
            "deployment of version v1 of {S} to prod is denied by the policy in force (entry \
             {policy_seq}): required_suite: expected a result of suite regression"
        )),
        "{message}"
    );
    for reason in &rejection.reasons {
        assert!(
            message.contains(&reason.to_string()),
            "{message} lacks {reason}"
        );
    }
    assert!(message.contains("override_justification"));
}

#[test]
fn an_override_derives_exactly_one_linked_incident() {
    let mut log = world();
    log.ok(
        "gov",
        policy(PolicySet {
            min_approvals: 1,
            ..rules(S, "prod")
        }),
    );
    let derived = log.ok(
        "cd",
        deploy_override(S, "v1", "prod", "hotfix for outage 17"),
    );
    let deployment = log.last() - 1;
    assert_eq!(derived.len(), 1);
    let incident = incident_of(&derived[0]);
    assert_eq!(incident.incident_id, format!("override-{deployment}"));
    assert_eq!(incident.related_sequence, deployment);
    assert_eq!(incident.category, IncidentCategory::PolicyViolation as i32);
    assert_eq!(incident.severity, Severity::High as i32);
    assert_eq!(
        (
            incident.subject.as_str(),
            incident.version.as_str(),
            incident.environment.as_str()
        ),
        (S, "v1", "prod")
    );
    assert!(incident.description.contains("hotfix for outage 17"));
    assert!(incident.description.contains("min_approvals"));

    let subject = log.state.subject(S).expect("subject");
    let prod = subject.environment("prod").expect("prod");
    assert_eq!(prod.live.as_ref().map(|l| l.version.as_str()), Some("v1"));
    assert_eq!(
        prod.history[0].override_justification.as_deref(),
        Some("hotfix for outage 17")
    );
    let opened = log.state.incident(&incident.incident_id).expect("opened");
    assert_eq!(
        (opened.opened_by.as_str(), opened.opened_sequence),
        ("system", deployment + 1)
    );
    assert!(
        subject
            .open_incident_ids()
            .any(|id| id == incident.incident_id)
    );
    assert_eq!(
        subject.version("v1").map(|v| v.stage),
        Some(Stage::Deployed)
    );
}

#[test]
fn an_override_of_an_open_gate_derives_nothing() {
    let mut log = world();
    let derived = log.ok("cd", deploy_override(S, "v1", "prod", "just in case"));
    assert!(derived.is_empty());
    let prod = log
        .state
        .subject(S)
        .and_then(|s| s.environment("prod"))
        .expect("prod");
    // Still recorded as given: the log says what the deployer claimed.
    assert!(prod.history[0].override_justification.is_some());
}

#[test]
fn a_derived_incident_id_never_collides() {
    let mut log = world();
    log.ok(
        "gov",
        policy(PolicySet {
            min_approvals: 1,
            ..rules(S, "prod")
        }),
    );
    // Entry 7 will be the deployment; a client already took its ids.
    log.ok("oncall", open("override-7", S, "", Severity::Low));
    log.ok("oncall", open("override-7.2", S, "", Severity::Low));
    let derived = log.ok("cd", deploy_override(S, "v1", "prod", "urgent"));
    assert_eq!(log.last(), 8);
    assert_eq!(incident_of(&derived[0]).incident_id, "override-7.3");
    assert!(log.state.unplaced().is_empty());
}

/// Events decide would reject still fold: not placed, recorded as unplaced,
/// and nothing else changes. Nothing panics.
#[test]
fn apply_is_total_on_events_decide_rejects() {
    let log = world();
    let rejected = [
        Event { kind: None },
        register(S, "v1", "mallory"),
        register_with(S, "v2", "alice", "v0", SubjectKind::Model),
        accuracy(S, "v9", 0.9),
        approve("nope", "v1", "prod"),
        approve(S, "v1", "prod"), // by the author: placed (the rule is decide's)
        event(Kind::ApprovalRecorded(ApprovalRecorded {
            subject: S.into(),
            version: "v1".into(),
            environment: "prod".into(),
            decision: 99,
            comment: String::new(),
        })),
        deploy(S, "v9", "prod"),
        open("INC-1", S, "", Severity::Low),
        open("INC-2", S, "v9", Severity::Low),
        resolve("INC-9", S, ""),
        resolve("INC-1", "other/model", ""),
        resolve("INC-1", S, "v7"),
        resolve("INC-1", S, ""),
        feedback(S, "v9", "prod", 1, 0),
        eval(S, "v1", "weird", vec![]),
        event(Kind::FeedbackRecorded(FeedbackRecorded {
            subject: S.into(),
            version: "v1".into(),
            environment: "prod".into(),
            thumbs_down: u64::MAX,
            total: 0,
            ..Default::default()
        })),
    ];
    let mut state = log.state.clone();
    let mut unplaced = Vec::new();
    for (i, event) in rejected.iter().enumerate() {
        let sequence = log.last() + 1 + i as u64;
        let meta = EntryMeta {
            sequence,
            recorded_at_us: T0_US,
            actor: "alice".into(),
        };
        let before = state.clone();
        // Each is rejected where it lands, but for the last two, which only
        // input validation (domain) refuses.
        let decided = crate::governance::decide(&state, &meta, event);
        assert!(decided.is_err() || i >= 15, "entry {i} was accepted");
        state.apply(&meta, event);
        assert_ne!(
            state.digest(),
            before.digest(),
            "apply of {i} changed nothing"
        );
        if state.unplaced().len() > before.unplaced().len() {
            unplaced.push(sequence);
        }
    }
    let base = log.last() + 1;
    // Placed: v2 with an unknown parent, the author's approval, the
    // resolution naming an unknown fixing version (the first resolution
    // wins; the next is unplaced), the empty eval and the empty window.
    let placed = [2, 5, 12, 15, 16].map(|i| base + i);
    let expected: Vec<u64> = (base..base + rejected.len() as u64)
        .filter(|s| !placed.contains(s))
        .collect();
    assert_eq!(unplaced, expected);
    assert_eq!(state.unplaced(), &expected[..]);
    let v2 = state.version(S, "v2").expect("placed");
    assert_eq!(v2.parent.as_deref(), Some("v0"));
    assert_eq!(
        state.subject(S).map(|s| s.kind()),
        Some(SubjectKind::Prompt)
    );
    let weird = &state.version(S, "v1").expect("v1").evals["weird"];
    assert!(!weird.passed, "a run without metrics passes nothing");
    let roundtrip: State =
        serde_json::from_slice(&serde_json::to_vec(&state).expect("serialize")).expect("parse");
    assert_eq!(roundtrip, state);
}

#[test]
fn digests_are_equal_for_equal_states_and_change_with_every_apply() {
    let history = [
        (
            "gov",
            policy(PolicySet {
                min_approvals: 1,
                max_eval_score_drop: 0.01,
                ..rules("*", "prod")
            }),
        ),
        ("ci", register(S, "v1", "alice")),
        ("ci", accuracy(S, "v1", 0.9)),
        ("bob", approve(S, "v1", "prod")),
        ("cd", deploy(S, "v1", "prod")),
        ("users", feedback(S, "v1", "prod", 1, 10)),
        ("oncall", open("INC-1", S, "v1", Severity::Low)),
        ("oncall", resolve("INC-1", S, "v1")),
        ("ci", accuracy(S, "v1", 0.5)),
    ];
    let a = given(&history);
    let b = given(&history);
    assert_eq!(a.state, b.state);
    assert_eq!(a.state.digest(), b.state.digest());
    assert_eq!(State::default().digest(), State::default().digest());

    let mut state = State::default();
    let mut seen = std::collections::BTreeSet::new();
    assert!(seen.insert(state.digest()));
    for (i, (actor, event)) in history.iter().enumerate() {
        let meta = EntryMeta {
            sequence: i as u64 + 1,
            recorded_at_us: T0_US,
            actor: (*actor).into(),
        };
        state.apply(&meta, event);
        assert!(
            seen.insert(state.digest()),
            "digest repeated after entry {}",
            i + 1
        );
        let json = serde_json::to_string(&state).expect("serialize");
        let back: State = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, state);
        assert_eq!(back.digest(), state.digest());
    }
    // The same content through a different history of clones: still equal.
    let snapshot = a.state.clone();
    assert_eq!(snapshot.digest(), a.state.digest());
}

/// A clone shares everything; a write copies only the subject it touches.
#[test]
fn a_snapshot_shares_untouched_subjects() {
    use crate::governance::shared::Shared;
    let mut log = world();
    let snapshot = log.state.clone();
    log.ok("bob", approve(S, "v1", "prod"));
    let (old, new) = (&snapshot.subjects, &log.state.subjects);
    assert!(!Shared::ptr_eq(old, new), "the subject map was copied");
    assert!(Shared::ptr_eq(&old["other/model"], &new["other/model"]));
    assert!(!Shared::ptr_eq(&old[S], &new[S]));
    assert!(Shared::ptr_eq(&snapshot.incidents, &log.state.incidents));
    assert!(Shared::ptr_eq(&snapshot.policies, &log.state.policies));
    // The snapshot still shows the past.
    assert!(
        snapshot
            .version(S, "v1")
            .is_some_and(|v| v.approvals.is_empty())
    );
}
