//! Model-based property test of the real [`Ledger`] (in the style of sled's
//! `tree` model tests): random command sequences run against a ledger in a
//! temporary directory (real files, real fsync, no gRPC), and against a
//! small in-memory model written here from the rules of issue 3, not from the
//! crate's `governance` module.
//!
//! Every command is one append (or one atomic batch); the model predicts
//! whether the ledger accepts it, which incidents it derives (override and
//! feedback-drift incidents, with their ids) and, for a denied deployment,
//! which gate rules are unmet. After every step the model and
//! `ledger.state()` must agree (versions, authors and registrants, eval
//! results, every approval decision, live versions, feedback baselines,
//! drift episodes, incidents, policies), the gate must give the model's
//! answer for every (subject, version, environment, deployer) of the pools,
//! and the head must be exactly as long as the model expects. A rejected
//! append must leave the head and the state digest as they were.
//!
//! Two steps stop the ledger: `Restart` (close, drop, open) and `Crash` (drop
//! without close, as a kill would: the state checkpoint is then older than
//! the journal or missing, so the next open must replay). Either way the
//! reopened ledger must have the same head and the same state digest. At the
//! end the ledger is closed, `rebuild_offline` must find the saved state
//! identical to a replay from entry 1, and "as of" answers (before and after
//! a reopen) must equal the states captured along the way.
//!
//! Some commands name the state rather than a fixed value ("the nth open
//! incident", "the nth live deployment", "what I decided before") and are
//! made concrete just before they run, so that resolutions, feedback on live
//! versions and repeated decisions happen often.
//!
//! Restrictions that keep the model simple: evidence never expires within a
//! run (`max_evidence_age_seconds` is 0 or ten years), and eval drift is off
//! (`max_eval_score_drop` is 0). Feedback drift is on in some policies.
//!
//! `PROPTEST_CASES` overrides the number of cases (24 by default; a few
//! hundred reach the rarer corners).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use govledger::{
    Ledger, LedgerConfig, LedgerError,
    domain::{ActorName, AppendItem, ValidEvent},
    governance::{State, SubjectState, check_gate},
    ledger::rebuild_offline,
    proto::v1::{
        ApprovalRecorded, Decision, DeploymentRecorded, Direction, EvalKind, EvalRecorded, Event,
        FeedbackRecorded, IncidentCategory, IncidentOpened, IncidentResolved, Metric, PolicySet,
        RequiredSuite, Severity, SubjectKind, VersionRegistered, event::Kind,
    },
};
use proptest::{option, prelude::*, sample::select};

// ----- name pools: small, so references hit -----

/// The prelude registers the first two; `c/index` only the commands may.
const SUBJECTS: &[&str] = &["a/prompt", "b/model", "c/index"];
const VERSIONS: &[&str] = &["v1", "v2", "v3", "v4"];
const ENVS: &[&str] = &["staging", "prod"];
const ACTORS: &[&str] = &["alice", "bob", "carol", "ci"];
const SUITES: &[&str] = &["regression", "safety"];
/// Client-chosen incident ids; two look like ids the ledger derives, so a
/// derived id sometimes has to step around a taken one.
const INCIDENT_IDS: &[&str] = &["i1", "i2", "i3", "override-9", "drift-12"];

/// `accuracy` passes at or above this (higher is better).
const ACCURACY_PASS: f64 = 0.8;
/// `toxicity` passes at or below this (lower is better).
const TOXICITY_PASS: f64 = 0.2;
/// A policy's threshold on `accuracy`, stricter or looser than the client's.
const POLICY_ACCURACY: f64 = 0.7;
/// Metric values (hundredths) an eval reports: every threshold above, exactly,
/// and values on either side of them.
const METRIC_VALUES: &[u8] = &[10, 20, 50, 70, 80, 95];
/// Evidence older than this is refused; no run lasts that long.
const TEN_YEARS_S: u64 = 10 * 365 * 24 * 3600;

// ----- commands -----

#[derive(Clone, Debug)]
struct PolicyM {
    subject: &'static str,
    env: &'static str,
    suite: Option<&'static str>,
    /// With a suite: require `accuracy >= POLICY_ACCURACY` instead of "suite passed".
    accuracy_threshold: bool,
    max_age_s: u64,
    min_approvals: u32,
    allow_self: bool,
    deployer_not_sole: bool,
    /// Severity as its proto number; 0 = incidents never block.
    block: i32,
    /// Feedback drift tolerance (0 = off) and fixed baseline (0 = first window).
    rise: f64,
    baseline: f64,
}

#[derive(Clone, Debug)]
enum Op {
    Register {
        subject: &'static str,
        version: &'static str,
        author: Option<&'static str>,
        parent: Option<&'static str>,
        model: bool,
    },
    Eval {
        subject: &'static str,
        version: &'static str,
        suite: &'static str,
        /// (metric, value in hundredths): `accuracy` and/or `toxicity`.
        metrics: Vec<(&'static str, u8)>,
    },
    Approve {
        subject: &'static str,
        version: &'static str,
        env: &'static str,
        approve: bool,
    },
    Deploy {
        subject: &'static str,
        version: &'static str,
        env: &'static str,
        justified: bool,
    },
    Open {
        id: String,
        subject: &'static str,
        version: Option<&'static str>,
        env: Option<&'static str>,
        severity: i32,
        drift: bool,
    },
    Resolve {
        id: String,
        subject: &'static str,
        fixing: Option<&'static str>,
    },
    /// Resolve the `nth` open incident (modulo their number), derived ones
    /// included; becomes a `Resolve` just before it runs.
    ResolveOpen {
        nth: usize,
        fixing: Option<&'static str>,
    },
    Feedback {
        subject: &'static str,
        version: &'static str,
        env: &'static str,
        down: u64,
        total: u64,
    },
    /// The step's actor decides again on the `nth` (subject, version,
    /// environment) they decided on before (approving twice, withdrawing,
    /// approving after a rejection); becomes an `Approve` just before it runs.
    Revisit {
        nth: usize,
        approve: bool,
    },
    /// Feedback for the `nth` live deployment (v1 of `a/prompt` in `prod`
    /// when nothing is live); becomes a `Feedback` just before it runs.
    FeedbackLive {
        nth: usize,
        down: u64,
        total: u64,
    },
    Policy(PolicyM),
}

#[derive(Clone, Debug)]
enum Step {
    One {
        actor: &'static str,
        op: Op,
    },
    /// One atomic append of several items by one actor.
    Batch {
        actor: &'static str,
        ops: Vec<Op>,
    },
    /// close().await, drop, open.
    Restart,
    /// Drop without close (a kill), open.
    Crash,
    /// One atomic append: an incident whose id is the one `op` (a justified
    /// deployment or feedback) would derive (`override-N`, `drift-N`), then
    /// `op`, so that a derived id must step around a taken one.
    Squat {
        actor: &'static str,
        severity: i32,
        op: Op,
    },
    /// One atomic append of `BULK_ITEMS` feedback windows, evals and default
    /// policies about the `subject`-th prelude subject, to grow the log past
    /// the "as of" snapshot interval quickly.
    Bulk {
        subject: usize,
    },
}

/// The largest batch the ledger takes.
const BULK_ITEMS: usize = 1000;

/// The items of a `Bulk` step: every one of them is accepted.
fn bulk(subject: usize) -> Vec<Op> {
    let subject = SUBJECTS[subject % 2];
    (0..BULK_ITEMS)
        .map(|k| match k % 3 {
            0 if k % 300 == 0 => Op::Policy(PolicyM {
                subject: "*",
                env: "staging",
                suite: None,
                accuracy_threshold: false,
                max_age_s: 0,
                min_approvals: (k / 300 % 3) as u32,
                allow_self: false,
                deployer_not_sole: false,
                block: 0,
                rise: 0.1,
                baseline: 0.0,
            }),
            0 => Op::Feedback {
                subject,
                version: "v1",
                env: ENVS[k % 2],
                down: (k % 7) as u64,
                total: 10,
            },
            1 => Op::Eval {
                subject,
                version: "v2",
                suite: SUITES[k % 2],
                metrics: vec![("accuracy", METRIC_VALUES[k % METRIC_VALUES.len()])],
            },
            // bob alternates his decision in each environment, so he never
            // approves twice in a row.
            _ => Op::Approve {
                subject,
                version: "v1",
                env: ENVS[(k / 3) % 2],
                approve: (k / 6) % 2 == 1,
            },
        })
        .collect()
}

/// The pool entry equal to `name` (every name the model holds came from a pool).
fn pooled(pool: &'static [&'static str], name: &str) -> &'static str {
    pool.iter()
        .copied()
        .find(|p| *p == name)
        .expect("a pooled name")
}

impl Op {
    /// Turns the commands that refer to the current state into plain ones.
    fn resolve(&self, model: &Model, actor: &str) -> Op {
        match self {
            &Op::Revisit { nth, approve } => {
                let mut decided: Vec<(&str, &str, &str)> = Vec::new();
                for (subject, s) in &model.subjects {
                    for (version, v) in &s.versions {
                        for (env, decisions) in &v.approvals {
                            if decisions.iter().any(|(who, _)| who == actor) {
                                decided.push((subject, version, env));
                            }
                        }
                    }
                }
                let (subject, version, env) = decided
                    .get(nth % decided.len().max(1))
                    .copied()
                    .unwrap_or(("a/prompt", "v2", "prod"));
                Op::Approve {
                    subject: pooled(SUBJECTS, subject),
                    version: pooled(VERSIONS, version),
                    env: pooled(ENVS, env),
                    approve,
                }
            }
            &Op::ResolveOpen { nth, fixing } => {
                let open: Vec<(&String, &IncidentM)> =
                    model.incidents.iter().filter(|(_, i)| i.open).collect();
                match open.get(nth % open.len().max(1)) {
                    Some((id, incident)) => Op::Resolve {
                        id: (*id).clone(),
                        subject: pooled(SUBJECTS, &incident.subject),
                        fixing,
                    },
                    None => Op::Resolve {
                        id: "i1".into(),
                        subject: SUBJECTS[0],
                        fixing,
                    },
                }
            }
            &Op::FeedbackLive { nth, down, total } => {
                let live: Vec<(&str, &str, &str)> = model
                    .subjects
                    .iter()
                    .flat_map(|(subject, s)| {
                        s.live.iter().map(move |(env, version)| {
                            (subject.as_str(), version.as_str(), env.as_str())
                        })
                    })
                    .collect();
                let (subject, version, env) = live
                    .get(nth % live.len().max(1))
                    .copied()
                    .unwrap_or(("a/prompt", "v1", "prod"));
                Op::Feedback {
                    subject: pooled(SUBJECTS, subject),
                    version: pooled(VERSIONS, version),
                    env: pooled(ENVS, env),
                    down,
                    total,
                }
            }
            other => other.clone(),
        }
    }

    fn subject(&self) -> &'static str {
        match self {
            Op::Register { subject, .. }
            | Op::Eval { subject, .. }
            | Op::Approve { subject, .. }
            | Op::Deploy { subject, .. }
            | Op::Open { subject, .. }
            | Op::Resolve { subject, .. }
            | Op::Feedback { subject, .. } => subject,
            Op::Policy(p) => p.subject,
            Op::ResolveOpen { .. } | Op::Revisit { .. } | Op::FeedbackLive { .. } => {
                unreachable!("resolved before it runs")
            }
        }
    }

    fn event(&self) -> Event {
        let kind = match self.clone() {
            Op::Register {
                subject,
                version,
                author,
                parent,
                model,
            } => Kind::VersionRegistered(VersionRegistered {
                subject: subject.into(),
                subject_kind: kind_of(model) as i32,
                version: version.into(),
                content_digest: blake3::hash(version.as_bytes()).as_bytes().to_vec(),
                parent_version: parent.unwrap_or("").into(),
                author: author.unwrap_or("").into(),
                ..Default::default()
            }),
            Op::Eval {
                subject,
                version,
                suite,
                metrics,
            } => Kind::EvalRecorded(EvalRecorded {
                subject: subject.into(),
                version: version.into(),
                suite: suite.into(),
                eval_kind: EvalKind::Deterministic as i32,
                metrics: metrics
                    .iter()
                    .map(|&(name, hundredths)| {
                        let (threshold, direction) = metric_rule(name);
                        Metric {
                            name: name.into(),
                            value: value_of(hundredths),
                            threshold,
                            direction: direction as i32,
                        }
                    })
                    .collect(),
                ..Default::default()
            }),
            Op::Approve {
                subject,
                version,
                env,
                approve,
            } => Kind::ApprovalRecorded(ApprovalRecorded {
                subject: subject.into(),
                version: version.into(),
                environment: env.into(),
                decision: if approve {
                    Decision::Approve
                } else {
                    Decision::Reject
                } as i32,
                comment: String::new(),
            }),
            Op::Deploy {
                subject,
                version,
                env,
                justified,
            } => Kind::DeploymentRecorded(DeploymentRecorded {
                subject: subject.into(),
                version: version.into(),
                environment: env.into(),
                override_justification: if justified {
                    "hotfix, approved by phone".into()
                } else {
                    String::new()
                },
                source: None,
            }),
            Op::Open {
                id,
                subject,
                version,
                env,
                severity,
                drift,
            } => Kind::IncidentOpened(IncidentOpened {
                incident_id: id.clone(),
                subject: subject.into(),
                version: version.unwrap_or("").into(),
                environment: env.unwrap_or("").into(),
                severity,
                category: if drift {
                    IncidentCategory::Drift
                } else {
                    IncidentCategory::Hallucination
                } as i32,
                description: format!("incident {id}"),
                related_sequence: 0,
            }),
            Op::Resolve {
                id,
                subject,
                fixing,
            } => Kind::IncidentResolved(IncidentResolved {
                incident_id: id,
                subject: subject.into(),
                resolution: "fixed".into(),
                fixing_version: fixing.unwrap_or("").into(),
            }),
            Op::Feedback {
                subject,
                version,
                env,
                down,
                total,
            } => Kind::FeedbackRecorded(FeedbackRecorded {
                subject: subject.into(),
                version: version.into(),
                environment: env.into(),
                window_start: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: 0,
                }),
                window_end: Some(prost_types::Timestamp {
                    seconds: 2,
                    nanos: 0,
                }),
                thumbs_up: total - down,
                thumbs_down: down,
                rewrites: 0,
                total,
            }),
            Op::Policy(p) => Kind::PolicySet(p.proto()),
            Op::ResolveOpen { .. } | Op::FeedbackLive { .. } | Op::Revisit { .. } => {
                unreachable!("resolved before it runs")
            }
        };
        Event { kind: Some(kind) }
    }
}

impl PolicyM {
    fn proto(&self) -> PolicySet {
        PolicySet {
            subject: self.subject.into(),
            environment: self.env.into(),
            required_suites: self
                .suite
                .map(|suite| RequiredSuite {
                    suite: suite.into(),
                    thresholds: if self.accuracy_threshold {
                        vec![Metric {
                            name: "accuracy".into(),
                            value: 0.0,
                            threshold: POLICY_ACCURACY,
                            direction: Direction::HigherIsBetter as i32,
                        }]
                    } else {
                        Vec::new()
                    },
                })
                .into_iter()
                .collect(),
            max_evidence_age_seconds: self.max_age_s,
            min_approvals: self.min_approvals,
            allow_self_approval: self.allow_self,
            deployer_not_sole_approver: self.deployer_not_sole,
            block_on_open_incident_severity: self.block,
            max_eval_score_drop: 0.0,
            max_negative_feedback_rate_rise: self.rise,
            baseline_negative_feedback_rate: self.baseline,
        }
    }
}

fn kind_of(model: bool) -> SubjectKind {
    if model {
        SubjectKind::Model
    } else {
        SubjectKind::Prompt
    }
}

fn value_of(hundredths: u8) -> f64 {
    f64::from(hundredths) / 100.0
}

/// The client's threshold and direction of each metric name.
fn metric_rule(name: &str) -> (f64, Direction) {
    if name == "accuracy" {
        (ACCURACY_PASS, Direction::HigherIsBetter)
    } else {
        (TOXICITY_PASS, Direction::LowerIsBetter)
    }
}

fn metric_passes(name: &str, value: f64) -> bool {
    match metric_rule(name) {
        (threshold, Direction::HigherIsBetter) => value >= threshold,
        (threshold, _) => value <= threshold,
    }
}

// ----- generators -----

fn pick(pool: &'static [&'static str]) -> impl Strategy<Value = &'static str> + Clone {
    select(pool)
}

/// A policy for one of `subjects` (or `*`) in one of `envs`.
fn policy_in(
    subjects: &'static [&'static str],
    envs: &'static [&'static str],
) -> impl Strategy<Value = PolicyM> {
    (
        (pick(subjects), pick(envs)),
        (option::of(pick(SUITES)), any::<bool>()),
        (select(vec![0u64, TEN_YEARS_S]), 0u32..=2),
        (any::<bool>(), any::<bool>()),
        0i32..=4,
        (select(vec![0.0, 0.1]), select(vec![0.0, 0.05])),
    )
        .prop_map(
            |(
                (subject, env),
                (suite, accuracy_threshold),
                (max_age_s, min_approvals),
                (allow_self, deployer_not_sole),
                block,
                (rise, baseline),
            )| PolicyM {
                subject,
                env,
                suite,
                accuracy_threshold,
                max_age_s,
                min_approvals,
                allow_self,
                deployer_not_sole,
                block,
                rise,
                baseline,
            },
        )
}

/// A version to refer to: mostly the ones the prelude registers.
fn version_ref() -> impl Strategy<Value = &'static str> + Clone {
    prop_oneof![3 => pick(&VERSIONS[..2]), 1 => pick(&VERSIONS[2..])]
}

fn op() -> impl Strategy<Value = Op> {
    let s = || prop_oneof![4 => pick(&SUBJECTS[..2]), 1 => pick(&SUBJECTS[2..])];
    let v = version_ref;
    let env = || pick(ENVS);
    let metrics = prop::sample::subsequence(vec!["accuracy", "toxicity"], 1..=2)
        .prop_flat_map(|names| {
            let n = names.len();
            (Just(names), prop::collection::vec(select(METRIC_VALUES), n))
        })
        .prop_map(|(names, values)| names.into_iter().zip(values).collect::<Vec<_>>());
    prop_oneof![
        3 => (s(), pick(VERSIONS), option::of(pick(ACTORS)), option::of(pick(VERSIONS)), any::<bool>()).prop_map(
            |(subject, version, author, parent, model)| Op::Register {
                subject,
                version,
                author,
                // The input rules refuse a version that is its own parent.
                parent: parent.filter(|p| *p != version),
                model,
            }
        ),
        4 => (s(), v(), pick(SUITES), metrics).prop_map(|(subject, version, suite, metrics)| {
            Op::Eval { subject, version, suite, metrics }
        }),
        6 => (s(), v(), env(), prop::bool::weighted(0.75)).prop_map(
            |(subject, version, env, approve)| Op::Approve { subject, version, env, approve }
        ),
        5 => (s(), v(), env(), any::<bool>()).prop_map(|(subject, version, env, justified)| {
            Op::Deploy { subject, version, env, justified }
        }),
        2 => (pick(INCIDENT_IDS), s(), option::of(v()), option::of(env()), 1i32..=4, any::<bool>())
            .prop_map(|(id, subject, version, env, severity, drift)| Op::Open {
                id: id.to_owned(), subject, version, env, severity, drift
            }),
        2 => (any::<usize>(), any::<bool>())
            .prop_map(|(nth, approve)| Op::Revisit { nth, approve }),
        1 => (pick(INCIDENT_IDS), s(), option::of(v())).prop_map(|(id, subject, fixing)| {
            Op::Resolve { id: id.to_owned(), subject, fixing }
        }),
        2 => (any::<usize>(), option::of(v()))
            .prop_map(|(nth, fixing)| Op::ResolveOpen { nth, fixing }),
        1 => (s(), v(), env(), 0u64..=10, 0u64..=10).prop_map(|(subject, version, env, down, up)| {
            Op::Feedback { subject, version, env, down, total: down + up }
        }),
        5 => (any::<usize>(), 0u64..=10, 0u64..=10).prop_map(|(nth, down, up)| {
            Op::FeedbackLive { nth, down, total: down + up }
        }),
        3 => policy_in(&["*", "a/prompt", "b/model"], ENVS).prop_map(Op::Policy),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        22 => (pick(ACTORS), op()).prop_map(|(actor, op)| Step::One { actor, op }),
        2 => (pick(ACTORS), prop::collection::vec(op(), 2..=3))
            .prop_map(|(actor, ops)| Step::Batch { actor, ops }),
        // Each reopen costs ~0.2 s of CPU in a debug build (opening, and the
        // history rebuild after it, each zero-fill a 4 MiB scan buffer twice).
        1 => Just(Step::Restart),
        1 => Just(Step::Crash),
        1 => (
            pick(ACTORS),
            1i32..=4,
            prop_oneof![
                (pick(SUBJECTS), version_ref(), pick(ENVS)).prop_map(|(subject, version, env)| {
                    Op::Deploy { subject, version, env, justified: true }
                }),
                (any::<usize>(), 0u64..=10, 0u64..=10).prop_map(
                    |(nth, down, up)| Op::FeedbackLive { nth, down, total: down + up }
                ),
            ],
        )
            .prop_map(|(actor, severity, op)| Step::Squat { actor, severity, op }),
    ]
}

/// Starts from v1 (registered by `ci`, written by `alice`) and v2
/// (registered and written by `bob`) of each subject, so most references hit
/// (v3 is left for the commands to register), and a random default policy
/// for `prod`, so most deployments there meet a gate.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    (
        policy_in(&["*"], &["prod"]),
        prop::collection::vec(step(), 1..=40),
    )
        .prop_map(|(policy, random)| {
            let mut steps = steps_prelude();
            steps.push(Step::One {
                actor: "carol",
                op: Op::Policy(policy),
            });
            steps.extend(random);
            steps
        })
}

fn steps_prelude() -> Vec<Step> {
    SUBJECTS[..2]
        .iter()
        .flat_map(|&subject| {
            [("ci", "v1", "alice"), ("bob", "v2", "bob")].map(|(actor, version, author)| {
                Step::One {
                    actor,
                    op: Op::Register {
                        subject,
                        version,
                        author: Some(author),
                        parent: None,
                        model: subject == "b/model",
                    },
                }
            })
        })
        .collect()
}

// ----- the model -----

#[derive(Clone, Debug)]
struct VersionM {
    author: String,
    registered_by: String,
    /// suite → metric → (value, passed): the latest result.
    evals: BTreeMap<String, BTreeMap<String, (f64, bool)>>,
    /// environment → every decision (approver, approve?), in log order.
    approvals: BTreeMap<String, Vec<(String, bool)>>,
}

impl VersionM {
    fn is_own(&self, actor: &str) -> bool {
        actor == self.registered_by || (!self.author.is_empty() && actor == self.author)
    }

    /// Each approver's latest decision in `env` (true = approve).
    fn latest(&self, env: &str) -> BTreeMap<&str, bool> {
        self.approvals
            .get(env)
            .into_iter()
            .flatten()
            .map(|(who, approve)| (who.as_str(), *approve))
            .collect()
    }
}

#[derive(Clone, Debug)]
struct SubjectM {
    kind: SubjectKind,
    versions: BTreeMap<String, VersionM>,
    /// environment → live version (never removed: there is no undeploy).
    live: BTreeMap<String, String>,
    /// environment → negative rate of the first non-empty feedback window of
    /// the live version since its deployment.
    baseline: BTreeMap<String, f64>,
    /// environment → the incident of the active drift episode.
    drift: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
struct IncidentM {
    subject: String,
    severity: i32,
    open: bool,
}

/// An entry the ledger must append itself (actor `system`) right after the
/// item that caused it.
#[derive(Clone, Debug, PartialEq)]
struct Derived {
    id: String,
    subject: String,
    category: IncidentCategory,
}

#[derive(Clone, Debug, Default)]
struct Model {
    /// Entries the log should hold.
    head: u64,
    subjects: BTreeMap<String, SubjectM>,
    incidents: BTreeMap<String, IncidentM>,
    /// (subject or `*`, environment) → the latest policy.
    policies: BTreeMap<(String, String), PolicyM>,
}

/// Why the model expects the ledger to refuse an item: a reason for the
/// failure message, and the gate's unmet rules when a deployment is denied.
#[derive(Clone, Debug)]
struct Refusal {
    why: String,
    rules: Vec<&'static str>,
}

impl From<String> for Refusal {
    fn from(why: String) -> Refusal {
        Refusal {
            why,
            rules: Vec::new(),
        }
    }
}

type Verdict<T> = Result<T, Refusal>;

impl Model {
    fn version(&self, subject: &str, version: &str) -> Verdict<&VersionM> {
        self.subjects
            .get(subject)
            .ok_or_else(|| format!("subject {subject} unknown"))?
            .versions
            .get(version)
            .ok_or_else(|| format!("version {version} of {subject} unknown").into())
    }

    fn version_mut(&mut self, subject: &str, version: &str) -> Verdict<&mut VersionM> {
        self.subjects
            .get_mut(subject)
            .ok_or_else(|| format!("subject {subject} unknown"))?
            .versions
            .get_mut(version)
            .ok_or_else(|| format!("version {version} of {subject} unknown").into())
    }

    /// The subject's own policy for `env`, else the default one.
    fn policy(&self, subject: &str, env: &str) -> Option<&PolicyM> {
        self.policies
            .get(&(subject.to_owned(), env.to_owned()))
            .or_else(|| self.policies.get(&("*".to_owned(), env.to_owned())))
    }

    /// `base`, or `base.2`, `base.3`... whichever is not taken yet.
    fn fresh_id(&self, base: String) -> String {
        if !self.incidents.contains_key(&base) {
            return base;
        }
        (2..)
            .map(|n| format!("{base}.{n}"))
            .find(|id| !self.incidents.contains_key(id))
            .expect("a free id")
    }

    fn open_incident(
        &mut self,
        id: &str,
        subject: &str,
        env: Option<&str>,
        severity: Severity,
        drift: bool,
    ) {
        self.incidents.insert(
            id.to_owned(),
            IncidentM {
                subject: subject.to_owned(),
                severity: severity as i32,
                open: true,
            },
        );
        // A drift incident starts the environment's episode, if something is
        // deployed there and no episode is active.
        if drift
            && let Some(env) = env
            && let Some(s) = self.subjects.get_mut(subject)
            && s.live.contains_key(env)
        {
            s.drift
                .entry(env.to_owned())
                .or_insert_with(|| id.to_owned());
        }
    }

    /// The rules of the policy in force that `version` does not meet, were
    /// `deployer` to deploy it to `env` now, in the order the gate reports
    /// them; empty = allowed.
    fn gate(&self, subject: &str, version: &str, env: &str, deployer: &str) -> Vec<&'static str> {
        let Ok(v) = self.version(subject, version) else {
            return vec!["registered"];
        };
        let Some(p) = self.policy(subject, env) else {
            return Vec::new();
        };
        let mut unmet = Vec::new();
        if let Some(suite) = p.suite {
            match v.evals.get(suite) {
                None => unmet.push("required_suite"),
                Some(result) if p.accuracy_threshold => {
                    let met = result
                        .get("accuracy")
                        .is_some_and(|(value, _)| *value >= POLICY_ACCURACY);
                    if !met {
                        unmet.push("metric_threshold");
                    }
                }
                Some(result) => {
                    if !result.values().all(|(_, passed)| *passed) {
                        unmet.push("required_suite");
                    }
                }
            }
        }
        // `max_age_s` is 0 or ten years: evidence never expires in a run.
        // Each approver counts with their latest decision only.
        let latest = v.latest(env);
        let approving: Vec<&str> = latest
            .iter()
            .filter(|(_, approve)| **approve)
            .map(|(who, _)| *who)
            .collect();
        let own = approving
            .iter()
            .filter(|who| !p.allow_self && v.is_own(who))
            .count();
        let counted = approving
            .iter()
            .filter(|who| p.allow_self || !v.is_own(who))
            .filter(|who| !(p.deployer_not_sole && **who == deployer))
            .count();
        if counted < p.min_approvals as usize {
            unmet.push("min_approvals");
            if own > 0 {
                unmet.push("separation_of_duties");
            }
        }
        if latest.values().any(|approve| !approve) {
            unmet.push("rejected");
        }
        if p.deployer_not_sole
            && !approving.is_empty()
            && approving.iter().all(|who| *who == deployer)
        {
            unmet.push("deployer_not_sole_approver");
        }
        let blocked = p.block > 0
            && self
                .incidents
                .values()
                .any(|i| i.open && i.subject == subject && i.severity >= p.block);
        if blocked {
            unmet.push("open_incident");
        }
        unmet
    }

    /// Decides and applies one item by `actor`: `Err` = the ledger must
    /// reject it (and the model is then to be thrown away); `Ok` = the
    /// incidents it derives, already applied.
    fn apply(&mut self, actor: &str, op: &Op) -> Verdict<Vec<Derived>> {
        let sequence = self.head + 1;
        let mut derived = Vec::new();
        match op {
            &Op::Register {
                subject,
                version,
                author,
                parent,
                model,
            } => {
                let kind = kind_of(model);
                let existing = self.subjects.get(subject);
                if let Some(s) = existing {
                    if s.versions.contains_key(version) {
                        return Err(format!("{subject} {version} already registered").into());
                    }
                    if s.kind != kind {
                        return Err(format!("{subject} is a {:?}", s.kind).into());
                    }
                }
                // A parent must be registered (a first version has none).
                if let Some(p) = parent
                    && !existing.is_some_and(|s| s.versions.contains_key(p))
                {
                    return Err(format!("parent {p} of {subject} unknown").into());
                }
                let s = self
                    .subjects
                    .entry(subject.to_owned())
                    .or_insert_with(|| SubjectM {
                        kind,
                        versions: BTreeMap::new(),
                        live: BTreeMap::new(),
                        baseline: BTreeMap::new(),
                        drift: BTreeMap::new(),
                    });
                s.versions.insert(
                    version.to_owned(),
                    VersionM {
                        author: author.unwrap_or("").to_owned(),
                        registered_by: actor.to_owned(),
                        evals: BTreeMap::new(),
                        approvals: BTreeMap::new(),
                    },
                );
            }
            Op::Eval {
                subject,
                version,
                suite,
                metrics,
            } => {
                let result = metrics
                    .iter()
                    .map(|&(name, hundredths)| {
                        let value = value_of(hundredths);
                        (name.to_owned(), (value, metric_passes(name, value)))
                    })
                    .collect();
                self.version_mut(subject, version)?
                    .evals
                    .insert(suite.to_string(), result);
            }
            &Op::Approve {
                subject,
                version,
                env,
                approve,
            } => {
                let allow_self = self.policy(subject, env).is_some_and(|p| p.allow_self);
                let v = self.version_mut(subject, version)?;
                if approve {
                    if v.latest(env).get(actor) == Some(&true) {
                        return Err(format!("{actor} already approved").into());
                    }
                    if !allow_self && v.is_own(actor) {
                        return Err(format!("{actor} may not approve their own version").into());
                    }
                }
                v.approvals
                    .entry(env.to_owned())
                    .or_default()
                    .push((actor.to_owned(), approve));
            }
            &Op::Deploy {
                subject,
                version,
                env,
                justified,
            } => {
                self.version(subject, version)?;
                let unmet = self.gate(subject, version, env, actor);
                if !unmet.is_empty() && !justified {
                    return Err(Refusal {
                        why: format!("the gate denies the deployment: {unmet:?}"),
                        rules: unmet,
                    });
                }
                if !unmet.is_empty() {
                    derived.push(Derived {
                        id: self.fresh_id(format!("override-{sequence}")),
                        subject: subject.to_owned(),
                        category: IncidentCategory::PolicyViolation,
                    });
                }
                let s = self.subjects.get_mut(subject).expect("known subject");
                s.live.insert(env.to_owned(), version.to_owned());
                s.baseline.remove(env);
                s.drift.remove(env);
            }
            Op::Open {
                id,
                subject,
                version,
                env,
                severity,
                drift,
            } => {
                let (id, subject, version, env, severity, drift) =
                    (id.as_str(), *subject, *version, *env, *severity, *drift);
                if self.incidents.contains_key(id) {
                    return Err(format!("incident {id} exists").into());
                }
                match version {
                    Some(version) => {
                        self.version(subject, version)?;
                    }
                    None if !self.subjects.contains_key(subject) => {
                        return Err(format!("subject {subject} unknown").into());
                    }
                    None => {}
                }
                let severity = Severity::try_from(severity).expect("a severity");
                self.open_incident(id, subject, env, severity, drift);
            }
            Op::Resolve {
                id,
                subject,
                fixing,
            } => {
                let (id, subject, fixing) = (id.as_str(), *subject, *fixing);
                let Some(incident) = self.incidents.get(id) else {
                    return Err(format!("incident {id} unknown").into());
                };
                if incident.subject != subject {
                    return Err(format!("incident {id} is not about {subject}").into());
                }
                if !incident.open {
                    return Err(format!("incident {id} already resolved").into());
                }
                if let Some(fixing) = fixing {
                    self.version(subject, fixing)?;
                }
                self.incidents.get_mut(id).expect("known").open = false;
                let s = self.subjects.get_mut(subject).expect("known subject");
                s.drift.retain(|_, episode| episode != id);
            }
            &Op::Feedback {
                subject,
                version,
                env,
                down,
                total,
            } => {
                self.version(subject, version)?;
                let rate = (total > 0).then(|| down as f64 / total as f64);
                let s = &self.subjects[subject];
                let watched = s.live.get(env).is_some_and(|live| live == version)
                    && !s.drift.contains_key(env);
                let drifted = watched
                    && rate.is_some_and(|rate| {
                        self.policy(subject, env).is_some_and(|p| {
                            let baseline = if p.baseline > 0.0 {
                                Some(p.baseline)
                            } else {
                                s.baseline.get(env).copied()
                            };
                            p.rise > 0.0 && baseline.is_some_and(|b| rate - b > p.rise)
                        })
                    });
                if drifted {
                    derived.push(Derived {
                        id: self.fresh_id(format!("drift-{sequence}")),
                        subject: subject.to_owned(),
                        category: IncidentCategory::Drift,
                    });
                }
                let s = self.subjects.get_mut(subject).expect("known subject");
                if s.live.get(env).is_some_and(|live| live == version)
                    && let Some(rate) = rate
                {
                    s.baseline.entry(env.to_owned()).or_insert(rate);
                }
            }
            Op::Policy(p) => {
                self.policies
                    .insert((p.subject.to_owned(), p.env.to_owned()), p.clone());
            }
            Op::ResolveOpen { .. } | Op::FeedbackLive { .. } | Op::Revisit { .. } => {
                unreachable!("resolved before it runs")
            }
        }
        self.head = sequence;
        for d in &derived {
            self.head += 1;
            match op {
                Op::Deploy { env, .. } => {
                    self.open_incident(&d.id, &d.subject, Some(env), Severity::High, false)
                }
                Op::Feedback { env, .. } => {
                    self.open_incident(&d.id, &d.subject, Some(env), Severity::Medium, true)
                }
                _ => unreachable!("only deployments and feedback derive"),
            }
        }
        Ok(derived)
    }
}

// ----- comparing the model with the ledger's state -----

fn check(state: &State, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(state.sequence(), model.head, "state sequence");
    // The gate (what CheckGate answers and deployments must pass), for every
    // version, environment and deployer of the pools.
    let now_us = govledger::ledger::now_us();
    for subject in SUBJECTS {
        for version in VERSIONS {
            for env in ENVS {
                for deployer in ACTORS {
                    let decision = check_gate(state, subject, version, env, deployer, now_us);
                    let rules: Vec<&str> =
                        decision.reasons.iter().map(|r| r.rule.as_str()).collect();
                    let expected = model.gate(subject, version, env, deployer);
                    prop_assert_eq!(
                        &rules,
                        &expected,
                        "gate for {} {} in {} deployed by {}: {:?}",
                        subject,
                        version,
                        env,
                        deployer,
                        decision.reasons
                    );
                    prop_assert_eq!(decision.allow, expected.is_empty());
                }
            }
        }
    }
    prop_assert!(
        state.unplaced().is_empty(),
        "unplaced {:?}",
        state.unplaced()
    );
    let names: Vec<&str> = state.subjects().map(|(name, _)| name).collect();
    let expected: Vec<&str> = model.subjects.keys().map(String::as_str).collect();
    prop_assert_eq!(names, expected, "subjects");
    for (name, sm) in &model.subjects {
        let ss = state.subject(name).expect("listed");
        prop_assert_eq!(ss.kind(), sm.kind, "kind of {}", name);
        let labels: Vec<&str> = ss.versions().map(|(label, _)| label).collect();
        let expected: Vec<&str> = sm.versions.keys().map(String::as_str).collect();
        prop_assert_eq!(labels, expected, "versions of {}", name);
        for (label, vm) in &sm.versions {
            let vs = ss.version(label).expect("listed");
            prop_assert_eq!(&vs.author, &vm.author, "author of {} {}", name, label);
            prop_assert_eq!(&vs.registered_by, &vm.registered_by);
            let approvals: BTreeMap<String, Vec<(String, bool)>> = vs
                .approvals
                .iter()
                .map(|(env, list)| {
                    let list = list
                        .iter()
                        .map(|a| (a.approver.clone(), a.decision == Decision::Approve))
                        .collect();
                    (env.clone(), list)
                })
                .collect();
            prop_assert_eq!(&approvals, &vm.approvals, "approvals of {} {}", name, label);
            let evals: BTreeMap<String, BTreeMap<String, (f64, bool)>> = vs
                .evals
                .iter()
                .map(|(suite, result)| {
                    let metrics = result
                        .metrics
                        .iter()
                        .map(|(metric, m)| (metric.clone(), (m.value, m.passed)))
                        .collect();
                    (suite.clone(), metrics)
                })
                .collect();
            prop_assert_eq!(&evals, &vm.evals, "evals of {} {}", name, label);
            for (suite, result) in &vs.evals {
                let all = vm.evals[suite].values().all(|(_, passed)| *passed);
                prop_assert_eq!(
                    result.passed,
                    all,
                    "pass/fail of {} {} {}",
                    name,
                    label,
                    suite
                );
            }
        }
        let mut live = BTreeMap::new();
        let mut baseline = BTreeMap::new();
        let mut drift = BTreeMap::new();
        for (env, es) in ss.environments() {
            if let Some(l) = &es.live {
                live.insert(env.to_owned(), l.version.clone());
                if let Some(b) = &l.feedback_baseline {
                    baseline.insert(env.to_owned(), b.negative_rate);
                }
            }
            if let Some(episode) = &es.drift {
                drift.insert(env.to_owned(), episode.incident_id.clone());
            }
        }
        prop_assert_eq!(&live, &sm.live, "live versions of {}", name);
        prop_assert_eq!(&baseline, &sm.baseline, "feedback baselines of {}", name);
        prop_assert_eq!(&drift, &sm.drift, "drift episodes of {}", name);
        let open: BTreeSet<&str> = ss.open_incident_ids().collect();
        let expected: BTreeSet<&str> = model
            .incidents
            .iter()
            .filter(|(_, i)| i.open && i.subject == *name)
            .map(|(id, _)| id.as_str())
            .collect();
        prop_assert_eq!(open, expected, "open incidents of {}", name);
    }
    let incidents: BTreeMap<String, IncidentM> = state
        .incidents()
        .map(|i| {
            let m = IncidentM {
                subject: i.subject.clone(),
                severity: i.severity as i32,
                open: i.is_open(),
            };
            (i.id.clone(), m)
        })
        .collect();
    prop_assert_eq!(&incidents, &model.incidents, "incidents");
    let policies: BTreeMap<(String, String), PolicySet> = state
        .policies()
        .map(|(s, env, entry)| ((s.to_owned(), env.to_owned()), entry.policy.clone()))
        .collect();
    let expected: BTreeMap<(String, String), PolicySet> = model
        .policies
        .iter()
        .map(|(key, p)| (key.clone(), p.proto()))
        .collect();
    prop_assert_eq!(policies, expected, "policies");
    Ok(())
}

// ----- running the commands against the ledger -----

fn open(dir: &Path) -> Result<Ledger, TestCaseError> {
    Ledger::open(LedgerConfig::new(dir)).map_err(|e| {
        TestCaseError::fail(format!(
            "Ledger::open({}) failed: {e}{}",
            dir.display(),
            if matches!(e, LedgerError::Locked { .. }) {
                " (BUG: the data-dir lock outlived the dropped Ledger)"
            } else {
                ""
            }
        ))
    })
}

/// Appends `ops` by `actor` as one request and checks the ledger's answer
/// against the model's verdict; advances the model when accepted.
async fn append(
    ledger: &Ledger,
    model: &mut Model,
    actor: &str,
    ops: &[Op],
    batch: bool,
) -> Result<(), TestCaseError> {
    let items = ops
        .iter()
        .map(|op| AppendItem {
            event: ValidEvent::parse(Some(op.event()), "event")
                .unwrap_or_else(|e| panic!("generated an invalid event {op:?}: {e}")),
            idempotency_key: None,
            expected_subject_sequence: None,
        })
        .collect();
    // Every item in order on a copy; any rejection rejects the whole request.
    let mut trial = model.clone();
    let verdict: Verdict<Vec<(&str, &str, Option<Derived>)>> =
        ops.iter().try_fold(Vec::new(), |mut entries, op| {
            let derived = trial.apply(actor, op)?;
            entries.push((actor, op.subject(), None));
            entries.extend(
                derived
                    .into_iter()
                    .map(|d| ("system", op.subject(), Some(d))),
            );
            Ok(entries)
        });
    let state_before = ledger.state().digest();
    let head_before = ledger.head();
    let actor_name = ActorName::parse(actor).expect("a valid actor");
    // The model's head is also the ledger's expected head: a model that
    // miscounted entries gets an expectation failure, not a silent pass.
    let answer = ledger
        .append(actor_name, items, Some(model.head), batch)
        .await;
    match (verdict, answer) {
        (Ok(expected), Ok(appended)) => {
            prop_assert!(!appended.deduplicated);
            let got: Vec<(&str, &str)> = appended
                .entries
                .iter()
                .map(|e| (e.envelope.actor.as_str(), e.envelope.subject.as_str()))
                .collect();
            let want: Vec<(&str, &str)> = expected.iter().map(|(a, s, _)| (*a, *s)).collect();
            prop_assert_eq!(got, want, "entries (actor, subject) of {:?}", ops);
            prop_assert_eq!(appended.events.len(), expected.len());
            let mut cause = 0;
            for (i, (event, (_, _, derived))) in appended.events.iter().zip(&expected).enumerate() {
                let sequence = appended.entries[i].envelope.sequence;
                prop_assert_eq!(sequence, model.head + 1 + i as u64);
                if derived.is_none() {
                    cause = sequence;
                }
                if let Some(d) = derived {
                    let Some(Kind::IncidentOpened(incident)) = &event.kind else {
                        return Err(TestCaseError::fail(format!(
                            "expected derived incident {d:?}, got {event:?}"
                        )));
                    };
                    prop_assert_eq!(&incident.incident_id, &d.id);
                    prop_assert_eq!(&incident.subject, &d.subject);
                    prop_assert_eq!(incident.category, d.category as i32);
                    // A derived incident points at the entry that caused it.
                    prop_assert_eq!(incident.related_sequence, cause);
                }
            }
            *model = trial;
        }
        (
            Err(refusal),
            Err(LedgerError::Rejected {
                reasons, message, ..
            }),
        ) => {
            // A denied deployment names exactly the unmet rules.
            let rules: Vec<&str> = reasons.iter().map(|r| r.rule.as_str()).collect();
            prop_assert_eq!(
                &rules,
                &refusal.rules,
                "unmet rules of {:?} by {} ({}; the model: {})",
                ops,
                actor,
                message,
                refusal.why
            );
            // A rejected request leaves no trace.
            prop_assert_eq!(ledger.head(), head_before, "head after a rejection");
            prop_assert_eq!(ledger.state().digest(), state_before);
        }
        (Ok(expected), Err(e)) => {
            return Err(TestCaseError::fail(format!(
                "the ledger refused {ops:?} by {actor} ({e}); the model expected entries {expected:?}"
            )));
        }
        (Err(why), Ok(appended)) => {
            return Err(TestCaseError::fail(format!(
                "the ledger accepted {ops:?} by {actor} as entries {:?}; the model rejects it: {}",
                appended
                    .entries
                    .iter()
                    .map(|e| e.envelope.sequence)
                    .collect::<Vec<_>>(),
                why.why
            )));
        }
        (Err(why), Err(e)) => {
            return Err(TestCaseError::fail(format!(
                "{ops:?} by {actor}: expected a governance rejection ({}), got {e:?}",
                why.why
            )));
        }
    }
    Ok(())
}

/// "As of" answers for every captured point equal what the state was then,
/// for each subject and the policies it is governed by.
fn check_as_of(ledger: &Ledger, history: &BTreeMap<u64, State>) -> Result<(), TestCaseError> {
    for (&sequence, then) in history {
        for subject in SUBJECTS {
            let as_of = ledger
                .state_as_of(subject, sequence)
                .map_err(|e| TestCaseError::fail(format!("state_as_of({sequence}): {e}")))?;
            let got: Option<&SubjectState> = as_of.subject(subject);
            prop_assert_eq!(got, then.subject(subject), "{} as of {}", subject, sequence);
            for env in ENVS {
                prop_assert_eq!(
                    as_of.policy_entry(subject, env),
                    then.policy_entry(subject, env),
                    "policy of {} in {} as of {}",
                    subject,
                    env,
                    sequence
                );
            }
        }
    }
    Ok(())
}

/// Runs `steps` against a fresh ledger and the model; returns the model.
async fn run(steps: &[Step]) -> Result<Model, TestCaseError> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().to_path_buf();
    let mut ledger = open(&path)?;
    let mut model = Model::default();
    // The state after each step, by sequence, for the "as of" checks.
    let mut history = BTreeMap::from([(0, ledger.state())]);
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::One { actor, op } => {
                let op = op.resolve(&model, actor);
                append(&ledger, &mut model, actor, &[op], false).await?
            }
            Step::Batch { actor, ops } => {
                let ops: Vec<Op> = ops.iter().map(|op| op.resolve(&model, actor)).collect();
                append(&ledger, &mut model, actor, &ops, true).await?
            }
            Step::Squat {
                actor,
                severity,
                op,
            } => {
                let op = op.resolve(&model, actor);
                let prefix = match op {
                    Op::Deploy { .. } => "override",
                    _ => "drift",
                };
                let squat = Op::Open {
                    id: format!("{prefix}-{}", model.head + 2),
                    subject: op.subject(),
                    version: None,
                    env: None,
                    severity: *severity,
                    drift: false,
                };
                append(&ledger, &mut model, actor, &[squat, op], true).await?
            }
            Step::Bulk { subject } => {
                let head = model.head;
                append(&ledger, &mut model, "bob", &bulk(*subject), true).await?;
                prop_assert!(model.head >= head + BULK_ITEMS as u64, "bulk refused");
            }
            Step::Restart | Step::Crash => {
                let head = ledger.head();
                let digest = ledger.state().digest();
                if matches!(step, Step::Restart) {
                    ledger.close().await;
                }
                // A crash: no close, so no final checkpoint and the lock is
                // only released by dropping the handle.
                drop(ledger);
                ledger = open(&path)?;
                prop_assert_eq!(ledger.head(), head, "head after {:?} at step {}", step, i);
                prop_assert_eq!(
                    ledger.state().digest(),
                    digest,
                    "state digest after {:?} at step {}",
                    step,
                    i
                );
            }
        }
        prop_assert_eq!(ledger.head().sequence, model.head, "head after step {}", i);
        let state = ledger.state();
        check(&state, &model).map_err(|e| TestCaseError::fail(format!("after step {i}: {e}")))?;
        history.insert(state.sequence(), state);
    }

    check_as_of(&ledger, &history)?;
    let digest = ledger.state().digest();
    let head = ledger.head();
    ledger.close().await;
    drop(ledger);

    // The saved state equals a replay from entry 1.
    let report =
        rebuild_offline(&path).map_err(|e| TestCaseError::fail(format!("rebuild_offline: {e}")))?;
    prop_assert_eq!(report.head, model.head);
    prop_assert_eq!(report.rebuilt, digest, "rebuilt digest");
    prop_assert_eq!(report.identical(), Some(true));

    let ledger = open(&path)?;
    prop_assert_eq!(ledger.head(), head);
    prop_assert_eq!(ledger.state().digest(), digest);
    check_as_of(&ledger, &history)?;
    ledger.close().await;
    Ok(model)
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    ProptestConfig {
        cases,
        max_shrink_iters: 512,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Random governance commands, restarts and crashes: the ledger agrees
    /// with the model at every step, survives every stop with the same state,
    /// and its saved state equals a replay from entry 1.
    #[test]
    fn ledger_agrees_with_the_model_across_restarts_and_crashes(steps in steps()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(run(&steps))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: config().cases.div_ceil(8), ..config() })]

    /// Logs past the "as of" snapshot interval (bulk batches), with restarts
    /// and crashes between them: "as of" answers start from snapshots (and,
    /// after a start from a checkpoint, from snapshots rebuilt in the
    /// background) and must still equal the states captured along the way.
    #[test]
    fn as_of_agrees_across_snapshots_restarts_and_crashes(steps in bulk_steps()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(run(&steps))?;
    }
}

fn bulk_steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        5 => (0usize..2).prop_map(|subject| Step::Bulk { subject }),
        2 => (pick(ACTORS), op()).prop_map(|(actor, op)| Step::One { actor, op }),
        1 => Just(Step::Restart),
        1 => Just(Step::Crash),
    ];
    prop::collection::vec(step, 8..=14).prop_map(|random| {
        let mut steps = steps_prelude();
        steps.extend(random);
        steps
    })
}

/// A fixed scenario through the same machinery, so the paths that random
/// sequences reach rarely are always covered: self-approval refused, a
/// denied deployment, an override with its incident, a feedback drift
/// incident (one per episode), resolving it, a crash and a restart.
#[test]
fn scripted_lifecycle_agrees_with_the_model() {
    let policy = PolicyM {
        subject: "*",
        env: "prod",
        suite: Some("regression"),
        accuracy_threshold: false,
        max_age_s: TEN_YEARS_S,
        min_approvals: 1,
        allow_self: false,
        deployer_not_sole: true,
        block: Severity::High as i32,
        rise: 0.1,
        baseline: 0.0,
    };
    let one = |actor, op| Step::One { actor, op };
    // Only one deployment is ever live in this scenario.
    let feedback = |down, total| Op::FeedbackLive {
        nth: 0,
        down,
        total,
    };
    let deploy = |justified| Op::Deploy {
        subject: "a/prompt",
        version: "v1",
        env: "prod",
        justified,
    };
    let resolve = |nth| Op::ResolveOpen { nth, fixing: None };
    let mut steps: Vec<Step> = steps_prelude();
    steps.extend([
        one("carol", Op::Policy(policy)),
        // Denied: no regression result, no approval.
        one("ci", deploy(false)),
        // Refused: alice wrote v1.
        one(
            "alice",
            Op::Approve {
                subject: "a/prompt",
                version: "v1",
                env: "prod",
                approve: true,
            },
        ),
        // An override, whose incident id `override-N` is taken: `override-N.2`.
        Step::Squat {
            actor: "ci",
            severity: Severity::Low as i32,
            op: deploy(true),
        },
        Step::Crash,
        // The baseline window, then a drift whose id `drift-N` is taken.
        one("carol", feedback(1, 10)),
        Step::Squat {
            actor: "carol",
            severity: Severity::Low as i32,
            op: feedback(5, 10),
        },
        // The episode is active: no second incident.
        one("carol", feedback(9, 10)),
        Step::Restart,
        // Open, by id: drift-N (squat), drift-N.2 (the episode),
        // override-M (squat), override-M.2. Resolve the episode's incident.
        one("carol", resolve(1)),
        // Episode over: the next bad window opens a new one.
        one("carol", feedback(9, 10)),
        Step::Crash,
    ]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let model = runtime
        .block_on(run(&steps))
        .unwrap_or_else(|e| panic!("{e}"));
    let v1 = &model.subjects["a/prompt"].versions["v1"];
    assert!(v1.approvals.is_empty(), "{:?}", v1.approvals);
    // Entries 1-5: the prelude and the policy; 6-8: the squatted
    // `override-7`, the deployment, its incident; 9: the baseline window;
    // 10-12: the squatted `drift-11`, the window, its incident; 13: a window
    // in the episode; 14: the resolution; 15-16: a window and a new episode.
    let incidents: Vec<(&str, bool)> = model
        .incidents
        .iter()
        .map(|(id, i)| (id.as_str(), i.open))
        .collect();
    assert_eq!(
        incidents,
        [
            ("drift-11", true),
            ("drift-11.2", false),
            ("drift-15", true),
            ("override-7", true),
            ("override-7.2", true),
        ]
    );
    assert_eq!(model.head, 16);
    assert_eq!(model.subjects["a/prompt"].drift.len(), 1);
}
