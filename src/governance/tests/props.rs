//! Property tests: random histories over small name pools (so references
//! hit), decided like the writer does, checked against a simple model.

use std::collections::{BTreeMap, BTreeSet};

use proptest::{option, prelude::*, sample::select};

use super::*;
use crate::domain::ValidEvent;

const SUBJECTS: &[&str] = &["a/prompt", "b/model"];
const VERSIONS: &[&str] = &["v1", "v2", "v3"];
const ENVS: &[&str] = &["staging", "prod"];
const ACTORS: &[&str] = &["alice", "bob", "carol", "ci"];
const SUITES: &[&str] = &["regression", "safety"];
const INCIDENTS: &[&str] = &["i1", "i2", "i3", "drift-9", "override-12"];

fn pick(pool: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    select(pool)
}

fn metric() -> impl Strategy<Value = Metric> {
    (pick(&["accuracy", "toxicity"]), 0u8..=100, any::<bool>()).prop_map(|(name, value, up)| {
        let value = f64::from(value) / 100.0;
        if up {
            higher(name, value, 0.8)
        } else {
            lower(name, value, 0.2)
        }
    })
}

fn severity() -> impl Strategy<Value = Severity> {
    select(vec![
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ])
}

fn policy_event() -> impl Strategy<Value = Event> {
    (
        (pick(&["*", "a/prompt", "b/model"]), pick(ENVS)),
        option::of(pick(SUITES)),
        any::<bool>(),
        select(vec![0u64, 60, 3600]),
        0u32..=2,
        (any::<bool>(), any::<bool>()),
        0i32..=4,
        (
            select(vec![0.0, 0.05, 0.2]),
            select(vec![0.0, 0.1]),
            select(vec![0.0, 0.05]),
        ),
    )
        .prop_map(
            |((subject, env), suite, thresholds, age, approvals, (own, sole), block, drift)| {
                let required_suites = suite
                    .map(|suite| RequiredSuite {
                        suite: suite.into(),
                        thresholds: if thresholds {
                            vec![higher("accuracy", 0.0, 0.7)]
                        } else {
                            vec![]
                        },
                    })
                    .into_iter()
                    .collect();
                policy(PolicySet {
                    required_suites,
                    max_evidence_age_seconds: age,
                    min_approvals: approvals,
                    allow_self_approval: own,
                    deployer_not_sole_approver: sole,
                    block_on_open_incident_severity: block,
                    max_eval_score_drop: drift.0,
                    max_negative_feedback_rate_rise: drift.1,
                    baseline_negative_feedback_rate: drift.2,
                    ..rules(subject, env)
                })
            },
        )
}

fn any_event() -> impl Strategy<Value = Event> {
    let s = || pick(SUBJECTS);
    let v = || pick(VERSIONS);
    let env = || pick(ENVS);
    prop_oneof![
        3 => (s(), v(), pick(ACTORS), option::of(v()), any::<bool>()).prop_map(
            |(s, v, author, parent, model)| {
                let kind = if model { SubjectKind::Model } else { SubjectKind::Prompt };
                register_with(s, v, author, parent.filter(|p| *p != v).unwrap_or(""), kind)
            }
        ),
        4 => (s(), v(), pick(SUITES), metric())
            .prop_map(|(s, v, suite, metric)| eval(s, v, suite, vec![metric])),
        4 => (s(), v(), env(), any::<bool>())
            .prop_map(|(s, v, e, yes)| if yes { approve(s, v, e) } else { reject(s, v, e) }),
        4 => (s(), v(), env(), any::<bool>()).prop_map(|(s, v, e, force)| {
            if force { deploy_override(s, v, e, "needed now") } else { deploy(s, v, e) }
        }),
        2 => (pick(INCIDENTS), s(), option::of(v()), option::of(env()), severity(), any::<bool>())
            .prop_map(|(id, s, v, e, sev, drift)| {
                let category = if drift { IncidentCategory::Drift } else { IncidentCategory::Toxicity };
                open_in(id, s, v.unwrap_or(""), e.unwrap_or(""), sev, category)
            }),
        2 => (pick(INCIDENTS), s(), option::of(v()))
            .prop_map(|(id, s, fix)| resolve(id, s, fix.unwrap_or(""))),
        2 => (s(), v(), env(), 0u64..=10, 0u64..=10)
            .prop_map(|(s, v, e, down, up)| feedback(s, v, e, down, down + up)),
        2 => policy_event(),
    ]
}

/// One step of a history: who, what, and how many seconds pass before it.
/// Starts from a registered v1 of each subject, so most references hit.
fn steps() -> impl Strategy<Value = Vec<(&'static str, Event, i64)>> {
    prop::collection::vec((pick(ACTORS), any_event(), 0i64..=1200), 1..80).prop_map(|random| {
        let prelude = SUBJECTS
            .iter()
            .map(|s| ("ci", register(s, "v1", "alice"), 0));
        prelude.chain(random).collect()
    })
}

/// What a plain reading of the accepted log says, kept without the state.
#[derive(Default)]
struct Model {
    versions: BTreeSet<(String, String)>,
    live: BTreeMap<(String, String), String>,
    open: BTreeSet<String>,
}

impl Model {
    fn record(&mut self, event: &Event) {
        match &event.kind {
            Some(Kind::VersionRegistered(e)) => {
                self.versions.insert((e.subject.clone(), e.version.clone()));
            }
            Some(Kind::DeploymentRecorded(e)) => {
                self.live.insert(
                    (e.subject.clone(), e.environment.clone()),
                    e.version.clone(),
                );
            }
            Some(Kind::IncidentOpened(e)) => {
                self.open.insert(e.incident_id.clone());
            }
            Some(Kind::IncidentResolved(e)) => {
                self.open.remove(&e.incident_id);
            }
            _ => {}
        }
    }
}

fn check_invariants(state: &State, model: &Model) -> Result<(), TestCaseError> {
    let mut open = BTreeSet::new();
    let mut live = BTreeMap::new();
    let mut versions = BTreeSet::new();
    for (name, subject) in state.subjects() {
        for (label, _) in subject.versions() {
            versions.insert((name.to_owned(), label.to_owned()));
        }
        for (env_name, env) in subject.environments() {
            if let Some(l) = &env.live {
                prop_assert!(
                    subject.version(&l.version).is_some(),
                    "live {} unregistered",
                    l.version
                );
                live.insert((name.to_owned(), env_name.to_owned()), l.version.clone());
            }
            if let Some(episode) = &env.drift {
                let incident = state.incident(&episode.incident_id);
                prop_assert!(incident.is_some_and(|i| i.is_open()
                    && i.category == IncidentCategory::Drift
                    && i.subject == name));
            }
        }
        for id in subject.open_incident_ids() {
            prop_assert!(subject.incident_ids().any(|i| i == id));
            prop_assert!(open.insert(id.to_owned()), "{id} open in two subjects");
        }
    }
    let unresolved: BTreeSet<String> = state
        .incidents()
        .filter(|i| i.resolution.is_none())
        .map(|i| i.id.clone())
        .collect();
    prop_assert_eq!(&open, &unresolved);
    prop_assert_eq!(&open, &model.open);
    prop_assert_eq!(&live, &model.live);
    prop_assert_eq!(&versions, &model.versions);
    // Everything decide accepted, the fold placed.
    prop_assert!(
        state.unplaced().is_empty(),
        "unplaced {:?}",
        state.unplaced()
    );
    Ok(())
}

fn round_trip(state: &State) -> Result<(), TestCaseError> {
    let json = serde_json::to_vec(state).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: State =
        serde_json::from_slice(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(back.digest(), state.digest());
    prop_assert_eq!(&back, state);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Decided histories keep every invariant; snapshots taken along the way
    /// are untouched by later writes and equal a replay of their prefix.
    #[test]
    fn decided_histories_keep_the_invariants(steps in steps()) {
        let mut state = State::default();
        let mut now_us = T0_US;
        let mut log: Vec<(EntryMeta, Event)> = Vec::new();
        let mut model = Model::default();
        let mut snapshots = Vec::new();
        for (i, (actor, event, wait)) in steps.into_iter().enumerate() {
            now_us += wait * SECOND_US;
            let meta = EntryMeta {
                sequence: state.sequence() + 1,
                recorded_at_us: now_us,
                actor: actor.to_owned(),
            };
            let Ok(derived) = decide(&state, &meta, &event) else {
                continue;
            };
            state.apply(&meta, &event);
            model.record(&event);
            log.push((meta, event));
            for extra in derived {
                // Derived events must pass the same input rules as any other.
                let valid = ValidEvent::parse(Some(extra.clone()), "derived");
                prop_assert!(valid.is_ok(), "derived event invalid: {:?}", valid.err());
                let meta = EntryMeta {
                    sequence: state.sequence() + 1,
                    recorded_at_us: now_us,
                    actor: SYSTEM_ACTOR.to_owned(),
                };
                state.apply(&meta, &extra);
                model.record(&extra);
                log.push((meta, extra));
            }
            check_invariants(&state, &model)?;
            if i % 7 == 0 {
                snapshots.push((state.clone(), state.digest()));
            }
        }
        round_trip(&state)?;
        // Rebuilding from entry 1 gives the live state, and every snapshot
        // still equals the replay of the prefix it was taken at.
        let mut rebuilt = State::default();
        let mut snapshots = snapshots.into_iter().peekable();
        for (meta, event) in &log {
            rebuilt.apply(meta, event);
            while let Some((snapshot, digest)) =
                snapshots.next_if(|(s, _)| s.sequence() == rebuilt.sequence())
            {
                prop_assert_eq!(snapshot.digest(), digest);
                prop_assert_eq!(&snapshot, &rebuilt);
            }
        }
        prop_assert_eq!(rebuilt.digest(), state.digest());
        prop_assert_eq!(&rebuilt, &state);
    }

    /// The fold is total: any history, decided or not, folds without panic
    /// and survives serialization exactly.
    #[test]
    fn the_fold_is_total(steps in steps()) {
        let mut state = State::default();
        for (i, (actor, event, wait)) in steps.iter().enumerate() {
            let meta = EntryMeta {
                sequence: i as u64 + 1,
                recorded_at_us: T0_US + wait,
                actor: (*actor).to_owned(),
            };
            let _ = decide(&state, &meta, event);
            state.apply(&meta, event);
            let _ = check_gate_everywhere(&state, meta.recorded_at_us);
        }
        round_trip(&state)?;
    }
}

/// Runs the gate for every (subject, version, environment) of the pools.
fn check_gate_everywhere(state: &State, now_us: i64) -> usize {
    let mut allowed = 0;
    for s in SUBJECTS {
        for v in VERSIONS {
            for e in ENVS {
                if crate::governance::check_gate(state, s, v, e, "bob", now_us).allow {
                    allowed += 1;
                }
            }
        }
    }
    allowed
}
