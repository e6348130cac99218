//! Drift: eval drops and feedback rises, one incident per episode.

use super::*;

/// v1 live in prod with accuracy 0.9 (and latency 500 ms) at deployment,
/// under a policy with the given drift tolerances.
fn live(max_drop: f64, max_rise: f64, baseline_rate: f64) -> Log {
    let mut log = given(&[(
        "gov",
        policy(PolicySet {
            max_eval_score_drop: max_drop,
            max_negative_feedback_rate_rise: max_rise,
            baseline_negative_feedback_rate: baseline_rate,
            ..rules("*", "prod")
        }),
    )]);
    log.ok("ci", register(S, "v1", "alice"));
    log.ok(
        "ci",
        eval(
            S,
            "v1",
            "regression",
            vec![
                higher("accuracy", 0.9, 0.85),
                lower("latency_ms", 500.0, 800.0),
            ],
        ),
    );
    assert!(log.ok("cd", deploy(S, "v1", "prod")).is_empty());
    log
}

fn drifted(log: &Log) -> Option<String> {
    let episode = log.state.subject(S)?.drift("prod")?;
    Some(episode.incident_id.clone())
}

#[test]
fn an_eval_drop_beyond_tolerance_opens_one_incident_per_episode() {
    let mut log = live(0.05, 0.0, 0.0);
    // Within tolerance, or better: nothing.
    assert!(log.ok("ci", accuracy(S, "v1", 0.86)).is_empty());
    assert!(log.ok("ci", accuracy(S, "v1", 0.99)).is_empty());
    // Compared with the result at deployment (0.9), not the latest (0.99).
    let derived = log.ok("ci", accuracy(S, "v1", 0.8));
    assert_eq!(derived.len(), 1);
    let first = incident_of(&derived[0]).clone();
    assert_eq!(first.incident_id, format!("drift-{}", log.last() - 1));
    assert_eq!(first.severity, Severity::Medium as i32);
    assert_eq!(first.environment, "prod");
    assert!(
        first.description.contains("accuracy 0.9 -> 0.8"),
        "{}",
        first.description
    );
    assert_eq!(drifted(&log), Some(first.incident_id.clone()));

    // The same episode: no second incident, however bad it gets.
    assert!(log.ok("ci", accuracy(S, "v1", 0.5)).is_empty());
    assert!(log.ok("users", feedback(S, "v1", "prod", 9, 10)).is_empty());

    // Resolving the incident ends the episode; the next drop starts another.
    log.ok("oncall", resolve(&first.incident_id, S, ""));
    assert_eq!(drifted(&log), None);
    let derived = log.ok("ci", accuracy(S, "v1", 0.7));
    assert_eq!(derived.len(), 1);
    let second = incident_of(&derived[0]);
    assert_ne!(second.incident_id, first.incident_id);
    assert_eq!(drifted(&log), Some(second.incident_id.clone()));
}

#[test]
fn lower_is_better_metrics_drift_upwards() {
    let mut log = live(50.0, 0.0, 0.0);
    assert!(
        log.ok(
            "ci",
            eval(
                S,
                "v1",
                "regression",
                vec![lower("latency_ms", 540.0, 800.0)]
            )
        )
        .is_empty()
    );
    let derived = log.ok(
        "ci",
        eval(
            S,
            "v1",
            "regression",
            vec![lower("latency_ms", 560.0, 800.0)],
        ),
    );
    assert_eq!(derived.len(), 1);
    assert!(
        incident_of(&derived[0])
            .description
            .contains("latency_ms 500 -> 560")
    );
}

#[test]
fn no_drift_without_tolerance_baseline_or_live_version() {
    // Tolerance 0: no eval drift check.
    let mut log = live(0.0, 0.0, 0.0);
    assert!(log.ok("ci", accuracy(S, "v1", 0.1)).is_empty());

    let mut log = live(0.05, 0.0, 0.0);
    // A suite the version had no result for at deployment.
    assert!(
        log.ok(
            "ci",
            eval(S, "v1", "safety", vec![higher("score", 0.1, 0.5)])
        )
        .is_empty()
    );
    // A version that is not live.
    log.ok("ci", register(S, "v2", "alice"));
    log.ok("ci", accuracy(S, "v2", 0.99));
    assert!(log.ok("ci", accuracy(S, "v2", 0.1)).is_empty());
    assert!(drifted(&log).is_none());

    // Live only in an environment without a policy.
    let mut log = given(&[
        (
            "gov",
            policy(PolicySet {
                max_eval_score_drop: 0.05,
                ..rules("*", "prod")
            }),
        ),
        ("ci", register(S, "v1", "alice")),
        ("ci", accuracy(S, "v1", 0.9)),
    ]);
    log.ok("cd", deploy(S, "v1", "staging"));
    assert!(log.ok("ci", accuracy(S, "v1", 0.1)).is_empty());
}

#[test]
fn a_new_deployment_ends_the_episode_and_resets_the_baseline() {
    let mut log = live(0.05, 0.0, 0.0);
    assert_eq!(log.ok("ci", accuracy(S, "v1", 0.8)).len(), 1);
    assert!(drifted(&log).is_some());
    // Redeploying v1 takes its latest results (0.8) as the new baseline.
    log.ok("cd", deploy(S, "v1", "prod"));
    assert_eq!(drifted(&log), None);
    assert!(log.ok("ci", accuracy(S, "v1", 0.78)).is_empty());
    assert_eq!(log.ok("ci", accuracy(S, "v1", 0.7)).len(), 1);
}

#[test]
fn feedback_drift_from_the_first_window_after_deployment() {
    let mut log = live(0.0, 0.1, 0.0);
    // An empty window is no baseline.
    assert!(log.ok("users", feedback(S, "v1", "prod", 0, 0)).is_empty());
    // The first window (10% negative) becomes the baseline.
    assert!(
        log.ok("users", feedback(S, "v1", "prod", 10, 100))
            .is_empty()
    );
    let baseline_seq = log.last();
    let live = log
        .state
        .subject(S)
        .and_then(|s| s.environment("prod"))
        .and_then(|e| e.live.clone());
    let baseline = live.and_then(|l| l.feedback_baseline).expect("baseline");
    assert_eq!(
        (baseline.negative_rate, baseline.sequence),
        (0.1, baseline_seq)
    );
    assert!(
        log.ok("users", feedback(S, "v1", "prod", 20, 100))
            .is_empty()
    );
    let derived = log.ok("users", feedback(S, "v1", "prod", 25, 100));
    assert_eq!(derived.len(), 1);
    let incident = incident_of(&derived[0]);
    assert_eq!(incident.category, IncidentCategory::Drift as i32);
    assert!(
        incident
            .description
            .contains(&format!("entry {baseline_seq}"))
    );
    assert!(
        log.ok("users", feedback(S, "v1", "prod", 90, 100))
            .is_empty()
    );
    let totals = &log.state.version(S, "v1").expect("v1").feedback["prod"];
    assert_eq!(
        (totals.windows, totals.thumbs_down, totals.total),
        (5, 145, 400)
    );
}

#[test]
fn feedback_drift_from_the_policy_baseline() {
    let mut log = live(0.0, 0.1, 0.05);
    // The policy's baseline applies from the first window on.
    let derived = log.ok("users", feedback(S, "v1", "prod", 20, 100));
    assert_eq!(derived.len(), 1);
    assert!(
        incident_of(&derived[0])
            .description
            .contains("the policy's baseline")
    );
}

#[test]
fn one_eval_drifting_in_two_environments_opens_two_incidents() {
    let mut log = live(0.05, 0.0, 0.0);
    log.ok(
        "gov",
        policy(PolicySet {
            max_eval_score_drop: 0.05,
            ..rules(S, "staging")
        }),
    );
    log.ok("cd", deploy(S, "v1", "staging"));
    let derived = log.ok("ci", accuracy(S, "v1", 0.5));
    let eval_seq = log.last() - 2;
    let ids: Vec<_> = derived
        .iter()
        .map(|e| {
            let i = incident_of(e);
            (i.incident_id.clone(), i.environment.clone())
        })
        .collect();
    assert_eq!(
        ids,
        [
            (format!("drift-{eval_seq}"), "prod".to_owned()),
            (format!("drift-{eval_seq}.2"), "staging".to_owned())
        ]
    );
    let subject = log.state.subject(S).expect("subject");
    assert!(subject.drift("prod").is_some() && subject.drift("staging").is_some());
}

/// A drift incident opened by hand starts an episode too.
#[test]
fn a_manual_drift_incident_starts_an_episode() {
    let mut log = live(0.05, 0.0, 0.0);
    log.ok(
        "oncall",
        open_in(
            "INC-7",
            S,
            "v1",
            "prod",
            Severity::High,
            IncidentCategory::Drift,
        ),
    );
    assert_eq!(drifted(&log), Some("INC-7".to_owned()));
    assert!(log.ok("ci", accuracy(S, "v1", 0.5)).is_empty());
}
