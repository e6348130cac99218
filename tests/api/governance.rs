//! Governance over gRPC: the lifecycle projection, referential rules, policy
//! gates, overrides, drift and "as of" answers.

use govledger::{
    connect::{Authed, Bearer},
    proto::v1::{
        AppendBatchRequest, AppendRequest, ApprovalRecorded, AsOf, BatchItem, CheckGateRequest,
        Decision, DeploymentRecorded, Direction, Entry, EvalKind, EvalRecorded, Event,
        GateDecision, GetSubjectStateRequest, IncidentCategory, IncidentOpened, IncidentResolved,
        IncidentStatus, ListIncidentsRequest, ListSubjectsRequest, Metric, PolicySet,
        RequiredSuite, Severity, SubjectKind, SubjectState, VersionRegistered, as_of::Point,
        event::Kind, governance_client::GovernanceClient,
    },
};
use prost::Message;
use tonic::{Code, Status};

use crate::helpers::{TESTER, TestApp, channel};

const S: &str = "support-bot/triage-prompt";

/// A TestApp with a Governance client (authenticated as [`TESTER`]).
struct Gov {
    app: TestApp,
    gov: GovernanceClient<Authed>,
}

impl Gov {
    async fn spawn() -> Gov {
        Gov::wrap(TestApp::spawn().await).await
    }

    async fn wrap(app: TestApp) -> Gov {
        let token = app.token(TESTER).await;
        let gov = GovernanceClient::with_interceptor(
            channel(app.addr).await,
            Bearer::new(Some(&token)).unwrap(),
        );
        Gov { app, gov }
    }

    async fn restart(self) -> Gov {
        Gov::wrap(self.app.restart().await).await
    }

    async fn try_as(
        &self,
        actor: &str,
        kind: Kind,
    ) -> Result<govledger::proto::v1::AppendResponse, Status> {
        self.app
            .append_as(
                actor,
                AppendRequest {
                    event: Some(Event { kind: Some(kind) }),
                    ..Default::default()
                },
            )
            .await
    }

    /// Appends as `actor`; the event must be accepted.
    async fn ok(&self, actor: &str, kind: Kind) -> Entry {
        let what = format!("{kind:?}");
        self.try_as(actor, kind)
            .await
            .unwrap_or_else(|s| panic!("rejected {what}: {s:?}"))
            .entry
            .unwrap()
    }

    /// Appends as `actor`; the event must be rejected with FAILED_PRECONDITION
    /// whose message contains `needle`, and the head must not move.
    async fn rejected(&self, actor: &str, kind: Kind, needle: &str) -> Status {
        // An actor that is not a test principal gets its token (two access
        // entries) at first use: before the head the rejection must keep.
        self.app.token(actor).await;
        let head = self.app.get_head().await;
        let status = self
            .try_as(actor, kind)
            .await
            .expect_err("the event must be rejected");
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(
            status.message().contains(needle),
            "{:?} does not mention {needle:?}",
            status.message()
        );
        assert_eq!(
            self.app.get_head().await,
            head,
            "a rejected event leaves no trace"
        );
        status
    }

    async fn gate(
        &self,
        version: &str,
        env: &str,
        deployer: &str,
        as_of: Option<Point>,
    ) -> GateDecision {
        let request = CheckGateRequest {
            subject: S.into(),
            version: version.into(),
            environment: env.into(),
            deployer: deployer.into(),
            as_of: as_of.map(|p| AsOf { point: Some(p) }),
        };
        self.gov
            .clone()
            .check_gate(request)
            .await
            .unwrap()
            .into_inner()
    }

    async fn state(&self, subject: &str, as_of: Option<Point>) -> SubjectState {
        let request = GetSubjectStateRequest {
            subject: subject.into(),
            as_of: as_of.map(|p| AsOf { point: Some(p) }),
        };
        self.gov
            .clone()
            .get_subject_state(request)
            .await
            .unwrap()
            .into_inner()
    }
}

fn register(version: &str, parent: &str, author: &str) -> Kind {
    Kind::VersionRegistered(VersionRegistered {
        subject: S.into(),
        subject_kind: SubjectKind::Prompt as i32,
        version: version.into(),
        content_digest: blake3::hash(version.as_bytes()).as_bytes().to_vec(),
        parent_version: parent.into(),
        author: author.into(),
        ..Default::default()
    })
}

fn eval(version: &str, accuracy: f64) -> Kind {
    Kind::EvalRecorded(EvalRecorded {
        subject: S.into(),
        version: version.into(),
        suite: "regression".into(),
        eval_kind: EvalKind::ModelGraded as i32,
        metrics: vec![Metric {
            name: "accuracy".into(),
            value: accuracy,
            threshold: 0.85,
            direction: Direction::HigherIsBetter as i32,
        }],
        sample_size: 200,
        ..Default::default()
    })
}

fn approve(version: &str, env: &str, decision: Decision) -> Kind {
    Kind::ApprovalRecorded(ApprovalRecorded {
        subject: S.into(),
        version: version.into(),
        environment: env.into(),
        decision: decision as i32,
        comment: "reviewed".into(),
    })
}

fn deploy(version: &str, env: &str, justification: &str) -> Kind {
    Kind::DeploymentRecorded(DeploymentRecorded {
        subject: S.into(),
        version: version.into(),
        environment: env.into(),
        override_justification: justification.into(),
        source: None,
    })
}

fn incident(id: &str, version: &str, severity: Severity) -> Kind {
    Kind::IncidentOpened(IncidentOpened {
        incident_id: id.into(),
        subject: S.into(),
        version: version.into(),
        environment: "prod".into(),
        severity: severity as i32,
        category: IncidentCategory::Hallucination as i32,
        description: "made up a refund policy".into(),
        related_sequence: 0,
    })
}

fn resolve(id: &str, fixing: &str) -> Kind {
    Kind::IncidentResolved(IncidentResolved {
        incident_id: id.into(),
        subject: S.into(),
        resolution: "prompt tightened".into(),
        fixing_version: fixing.into(),
    })
}

fn policy(subject: &str, rules: impl FnOnce(&mut PolicySet)) -> Kind {
    let mut p = PolicySet {
        subject: subject.into(),
        environment: "prod".into(),
        ..Default::default()
    };
    rules(&mut p);
    Kind::PolicySet(p)
}

fn requires_regression(p: &mut PolicySet) {
    p.required_suites = vec![RequiredSuite {
        suite: "regression".into(),
        thresholds: vec![],
    }];
    p.min_approvals = 1;
}

fn rules(decision: &GateDecision) -> Vec<&str> {
    decision.reasons.iter().map(|r| r.rule.as_str()).collect()
}

#[tokio::test]
async fn a_full_lifecycle_with_drift_and_rollback() {
    let g = Gov::spawn().await;
    g.ok(
        "admin",
        policy("*", |p| {
            requires_regression(p);
            p.max_eval_score_drop = 0.05;
        }),
    )
    .await;
    g.ok("dev", register("v1", "", "dev")).await;
    assert_eq!(g.state(S, None).await.versions[0].stage, "registered");
    g.ok("ci", eval("v1", 0.91)).await;
    assert_eq!(g.state(S, None).await.versions[0].stage, "evaluated");
    g.ok("alice", approve("v1", "prod", Decision::Approve))
        .await;
    assert!(g.gate("v1", "prod", "bob", None).await.allow);
    let d1 = g.ok("bob", deploy("v1", "prod", "")).await;
    let state = g.state(S, None).await;
    assert_eq!(state.environments[0].live_version, "v1");
    assert_eq!(state.environments[0].live_since_sequence, d1.sequence);
    assert_eq!(state.versions[0].stage, "deployed");

    g.ok("oncall", incident("INC-1", "v1", Severity::Medium))
        .await;
    assert_eq!(g.state(S, None).await.open_incidents.len(), 1);
    g.ok("dev", register("v2", "v1", "dev")).await;
    g.ok("oncall", resolve("INC-1", "v2")).await;
    g.ok("ci", eval("v2", 0.95)).await;
    g.ok("alice", approve("v2", "prod", Decision::Approve))
        .await;
    g.ok("bob", deploy("v2", "prod", "")).await;
    let state = g.state(S, None).await;
    assert_eq!(state.environments[0].live_version, "v2");
    assert_eq!(state.versions[0].stage, "superseded");
    assert!(state.open_incidents.is_empty());

    // v2 drops 0.10 below what it scored at deployment: one drift incident, derived atomically.
    let drifted = g.try_as("ci", eval("v2", 0.85)).await.unwrap();
    assert_eq!(drifted.derived.len(), 1, "exactly one drift incident");
    let derived = &drifted.derived[0];
    assert_eq!(derived.actor, "system");
    assert_eq!(
        derived.sequence,
        drifted.entry.as_ref().unwrap().sequence + 1
    );
    let Some(Kind::IncidentOpened(opened)) = derived.event.clone().and_then(|e| e.kind) else {
        panic!("not an incident")
    };
    assert_eq!(opened.category, IncidentCategory::Drift as i32);
    assert_eq!(
        opened.related_sequence,
        drifted.entry.as_ref().unwrap().sequence
    );
    assert!(g.state(S, None).await.drift);
    // The same episode: no second incident.
    let again = g.try_as("ci", eval("v2", 0.80)).await.unwrap();
    assert!(again.derived.is_empty(), "one incident per episode");

    // Roll back to v1.
    g.ok("bob", deploy("v1", "prod", "")).await;
    let state = g.state(S, None).await;
    assert_eq!(state.environments[0].live_version, "v1");
    let v2 = state.versions.iter().find(|v| v.version == "v2").unwrap();
    assert_eq!(v2.stage, "rolled_back");
    assert!(state.environments[0].history.last().unwrap().rollback);
    assert!(!state.drift, "a new deployment ends the drift episode");
}

#[tokio::test]
async fn each_gate_rule_is_denied_then_satisfied() {
    let g = Gov::spawn().await;
    g.ok("dev", register("v1", "", "dev")).await;
    g.ok(
        "admin",
        policy(S, |p| {
            p.required_suites = vec![RequiredSuite {
                suite: "regression".into(),
                thresholds: vec![Metric {
                    name: "accuracy".into(),
                    value: 0.0,
                    threshold: 0.9,
                    direction: Direction::HigherIsBetter as i32,
                }],
            }];
            p.min_approvals = 2;
            p.block_on_open_incident_severity = Severity::High as i32;
        }),
    )
    .await;
    let gate = g.gate("v1", "prod", "bob", None).await;
    assert!(!gate.allow);
    assert!(rules(&gate).contains(&"required_suite"), "{gate:?}");
    assert!(rules(&gate).contains(&"min_approvals"), "{gate:?}");

    // A deployment is held to the same decision, with the reasons in the status details.
    let head = g.app.get_head().await;
    let status = g
        .rejected("bob", deploy("v1", "prod", ""), "min_approvals")
        .await;
    let details =
        GateDecision::decode(status.details()).expect("status details carry a GateDecision");
    assert!(!details.allow);
    assert_eq!(rules(&details), rules(&gate));
    assert_eq!(g.app.get_head().await, head);

    let e = g.ok("ci", eval("v1", 0.88)).await;
    let gate = g.gate("v1", "prod", "bob", None).await;
    let threshold = gate
        .reasons
        .iter()
        .find(|r| r.rule == "metric_threshold")
        .expect("0.88 < 0.9");
    assert_eq!(threshold.evidence, vec![e.sequence]);
    g.ok("ci", eval("v1", 0.93)).await;
    g.ok("alice", approve("v1", "prod", Decision::Approve))
        .await;
    let gate = g.gate("v1", "prod", "bob", None).await;
    assert_eq!(rules(&gate), vec!["min_approvals"]);
    g.ok("carol", approve("v1", "prod", Decision::Approve))
        .await;
    let inc = g
        .ok("oncall", incident("INC-7", "v1", Severity::Critical))
        .await;
    let gate = g.gate("v1", "prod", "bob", None).await;
    assert_eq!(rules(&gate), vec!["open_incident"]);
    assert_eq!(gate.reasons[0].evidence, vec![inc.sequence]);
    g.ok("oncall", resolve("INC-7", "")).await;
    let gate = g.gate("v1", "prod", "bob", None).await;
    assert!(gate.allow, "{gate:?}");
    g.ok("bob", deploy("v1", "prod", "")).await;
}

#[tokio::test]
async fn separation_of_duties_holds_on_the_registering_actor_and_the_author() {
    let g = Gov::spawn().await;
    g.ok("ci-bot", register("v1", "", "dana")).await;
    g.rejected("ci-bot", approve("v1", "prod", Decision::Approve), "v1")
        .await;
    g.rejected("dana", approve("v1", "prod", Decision::Approve), "v1")
        .await;
    g.ok("dana", approve("v1", "prod", Decision::Reject)).await;
    g.ok("alice", approve("v1", "prod", Decision::Approve))
        .await;
    g.rejected("alice", approve("v1", "prod", Decision::Approve), "alice")
        .await;
    g.ok("alice", approve("v1", "staging", Decision::Approve))
        .await;
}

#[tokio::test]
async fn an_override_is_recorded_with_exactly_one_linked_incident() {
    let g = Gov::spawn().await;
    g.ok("dev", register("v1", "", "dev")).await;
    g.ok("admin", policy("*", requires_regression)).await;
    g.rejected("bob", deploy("v1", "prod", ""), "required_suite")
        .await;
    let r = g
        .try_as("bob", deploy("v1", "prod", "hotfix for outage INC-9"))
        .await
        .unwrap();
    let deployment = r.entry.unwrap();
    assert_eq!(r.derived.len(), 1);
    let linked = &r.derived[0];
    assert_eq!(linked.actor, "system");
    assert_eq!(linked.sequence, deployment.sequence + 1);
    assert!(
        !deployment.ends_atomic_group,
        "the deployment and its incident are one atomic group"
    );
    assert!(linked.ends_atomic_group);
    let Some(Kind::IncidentOpened(opened)) = linked.event.clone().and_then(|e| e.kind) else {
        panic!()
    };
    assert_eq!(opened.category, IncidentCategory::PolicyViolation as i32);
    assert_eq!(opened.related_sequence, deployment.sequence);
    let open = g
        .gov
        .clone()
        .list_incidents(ListIncidentsRequest {
            status: IncidentStatus::Open as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(open.incidents.len(), 1);
    let state = g.state(S, None).await;
    assert_eq!(
        state.environments[0].history[0].override_justification,
        "hotfix for outage INC-9"
    );
}

#[tokio::test]
async fn referential_rules_reject_unknown_references() {
    let g = Gov::spawn().await;
    g.rejected("ci", eval("v1", 0.9), S).await;
    g.rejected("dev", register("v1", "v0", "dev"), "parent version v0")
        .await;
    g.ok("dev", register("v1", "", "dev")).await;
    g.rejected("dev", register("v1", "", "dev"), "v1").await;
    g.rejected("dev", register("v2", "v0", "dev"), "v0").await;
    g.rejected("ci", eval("v9", 0.9), "v9").await;
    g.rejected("alice", approve("v9", "prod", Decision::Approve), "v9")
        .await;
    g.rejected("bob", deploy("v9", "prod", ""), "v9").await;
    g.rejected("oncall", resolve("INC-404", ""), "INC-404")
        .await;
    g.ok("oncall", incident("INC-1", "v1", Severity::Low)).await;
    g.rejected("oncall", incident("INC-1", "v1", Severity::Low), "INC-1")
        .await;
    g.ok("oncall", resolve("INC-1", "")).await;
    g.rejected("oncall", resolve("INC-1", ""), "INC-1").await;
}

#[tokio::test]
async fn the_gate_as_of_a_moment_uses_the_policy_then_in_force() {
    let g = Gov::spawn().await;
    g.ok("dev", register("v1", "", "dev")).await;
    let lax = g.ok("admin", policy("*", |_| {})).await;
    let before = g.gate("v1", "prod", "bob", None).await;
    assert!(before.allow);
    assert_eq!(before.policy_sequence, lax.sequence);
    let strict = g.ok("admin", policy("*", requires_regression)).await;
    let now = g.gate("v1", "prod", "bob", None).await;
    assert!(!now.allow);
    assert_eq!(now.policy_sequence, strict.sequence);
    let then = g
        .gate("v1", "prod", "bob", Some(Point::Sequence(lax.sequence)))
        .await;
    assert!(then.allow, "{then:?}");
    assert_eq!(then.policy_sequence, lax.sequence);
    assert_eq!(then.as_of_sequence, lax.sequence);
    // A moment names the last entry recorded at or before it.
    let at_time = g
        .gate(
            "v1",
            "prod",
            "bob",
            Some(Point::Time(strict.recorded_at.unwrap())),
        )
        .await;
    assert_eq!(at_time.as_of_sequence, strict.sequence);
    assert!(!at_time.allow);
    assert_eq!(at_time.policy_sequence, strict.sequence);
}

/// Asking for a subject as of a moment before it existed is NOT_FOUND, and
/// the message names the moment asked for (not an entry number the caller
/// never gave).
#[tokio::test]
async fn state_as_of_a_moment_before_the_subject_names_that_moment() {
    let g = Gov::spawn().await;
    let first = g.ok("dev", register("v1", "", "dev")).await;
    let ask = |point: Point| {
        let mut gov = g.gov.clone();
        async move {
            gov.get_subject_state(GetSubjectStateRequest {
                subject: S.into(),
                as_of: Some(AsOf { point: Some(point) }),
            })
            .await
            .expect_err("the subject did not exist then")
        }
    };
    let epoch = ask(Point::Time(prost_types::Timestamp {
        seconds: 0,
        nanos: 0,
    }))
    .await;
    assert_eq!(epoch.code(), tonic::Code::NotFound);
    assert!(
        epoch
            .message()
            .contains("1970-01-01T00:00:00Z: the ledger had none then"),
        "{}",
        epoch.message()
    );
    let before = ask(Point::Sequence(first.sequence - 1)).await;
    assert_eq!(before.code(), tonic::Code::NotFound);
    assert!(
        before
            .message()
            .contains(&format!("at or before entry {}", first.sequence - 1)),
        "{}",
        before.message()
    );
}

/// After every step, the live state is captured; later "as of" answers for
/// each step's sequence must equal what was live then — also across the
/// snapshot interval (4,096 entries) and after a restart (which rebuilds
/// the state and its snapshots from the journal).
#[tokio::test]
async fn as_of_answers_equal_the_state_that_was_live_then() {
    let g = Gov::spawn().await;
    let mut seen = Vec::new();
    let steps: Vec<(&str, Kind)> = vec![
        ("dev", register("v1", "", "dev")),
        ("ci", eval("v1", 0.9)),
        ("alice", approve("v1", "prod", Decision::Approve)),
        ("bob", deploy("v1", "prod", "")),
        ("oncall", incident("INC-1", "v1", Severity::High)),
        ("dev", register("v2", "v1", "dev")),
    ];
    for (actor, kind) in steps {
        let e = g.ok(actor, kind).await;
        seen.push((e.sequence, g.state(S, None).await));
    }
    // Push the log past a snapshot: 9,000 entries of another subject.
    let other = |n: usize| VersionRegistered {
        subject: "filler/prompt".into(),
        subject_kind: SubjectKind::Prompt as i32,
        version: format!("v{n}"),
        content_digest: vec![7; 32],
        ..Default::default()
    };
    for b in 0..9 {
        let items = (0..1000)
            .map(|i| BatchItem {
                event: Some(Event {
                    kind: Some(Kind::VersionRegistered(other(b * 1000 + i))),
                }),
                ..Default::default()
            })
            .collect();
        g.app
            .append_batch(AppendBatchRequest {
                items,
                expected_head_sequence: None,
            })
            .await
            .unwrap();
    }
    for (actor, kind) in [
        ("ci", eval("v2", 0.97)),
        ("alice", approve("v2", "prod", Decision::Approve)),
        ("bob", deploy("v2", "prod", "")),
    ] {
        let e = g.ok(actor, kind).await;
        seen.push((e.sequence, g.state(S, None).await));
    }
    let check = |g: &Gov, seen: &Vec<(u64, SubjectState)>| {
        let seen = seen.clone();
        let gov = g.gov.clone();
        async move {
            for (sequence, live) in seen {
                let request = GetSubjectStateRequest {
                    subject: S.into(),
                    as_of: Some(AsOf {
                        point: Some(Point::Sequence(sequence)),
                    }),
                };
                let then = gov
                    .clone()
                    .get_subject_state(request)
                    .await
                    .unwrap()
                    .into_inner();
                let mut live = live;
                live.as_of_sequence = sequence;
                assert_eq!(then, live, "as of entry {sequence}");
            }
        }
    };
    check(&g, &seen).await;
    let g = g.restart().await;
    check(&g, &seen).await;
    let first = g
        .gov
        .clone()
        .get_subject_state(GetSubjectStateRequest {
            subject: S.into(),
            as_of: Some(AsOf {
                point: Some(Point::Sequence(0)),
            }),
        })
        .await;
    assert_eq!(first.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn the_state_is_the_same_after_a_restart() {
    let g = Gov::spawn().await;
    g.ok("admin", policy("*", requires_regression)).await;
    g.ok("dev", register("v1", "", "dev")).await;
    g.ok("ci", eval("v1", 0.9)).await;
    g.ok("alice", approve("v1", "prod", Decision::Approve))
        .await;
    g.ok("bob", deploy("v1", "prod", "")).await;
    g.ok("oncall", incident("INC-1", "v1", Severity::High))
        .await;
    let before = g.state(S, None).await;
    let subjects = g
        .gov
        .clone()
        .list_subjects(ListSubjectsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let g = g.restart().await;
    assert_eq!(g.state(S, None).await, before);
    assert_eq!(
        g.gov
            .clone()
            .list_subjects(ListSubjectsRequest::default())
            .await
            .unwrap()
            .into_inner(),
        subjects
    );
    assert_eq!(subjects.subjects.len(), 1);
    assert_eq!(
        subjects.subjects[0]
            .live_versions
            .get("prod")
            .map(String::as_str),
        Some("v1")
    );
    assert_eq!(subjects.subjects[0].open_incidents, 1);
}

async fn some_history(g: &Gov) {
    g.ok("admin", policy("*", requires_regression)).await;
    g.ok("dev", register("v1", "", "dev")).await;
    g.ok("ci", eval("v1", 0.9)).await;
    g.ok("alice", approve("v1", "prod", Decision::Approve))
        .await;
    g.ok("bob", deploy("v1", "prod", "")).await;
}

/// The state is kept in sled (`<data-dir>/state`) only as a checkpoint: a
/// missing one, an older one, or one from another history must all give the
/// state a replay of the journal gives.
#[tokio::test]
async fn a_missing_stale_or_foreign_state_store_is_rebuilt_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let saved = tempfile::tempdir().unwrap();
    let foreign = tempfile::tempdir().unwrap();

    let other = Gov::wrap(TestApp::spawn_at(foreign.path()).await).await;
    other.ok("dev", register("v7", "", "dev")).await;
    other.app.stop().await;

    let g = Gov::wrap(TestApp::spawn_at(dir.path()).await).await;
    some_history(&g).await;
    g.app.stop().await;
    assert!(
        dir.path().join("state").is_dir(),
        "the checkpoint lives in <data-dir>/state"
    );
    crate::helpers::copy_dir(&dir.path().join("state"), &saved.path().join("state"));

    let g = Gov::wrap(TestApp::spawn_at(dir.path()).await).await;
    g.ok("oncall", incident("INC-1", "v1", Severity::High))
        .await;
    g.ok("dev", register("v2", "v1", "dev")).await;
    let expected = g.state(S, None).await;
    g.app.stop().await;

    let cases = [
        ("stale", saved.path().join("state")),
        ("foreign", foreign.path().join("state")),
    ];
    for (name, source) in cases {
        std::fs::remove_dir_all(dir.path().join("state")).unwrap();
        crate::helpers::copy_dir(&source, &dir.path().join("state"));
        let g = Gov::wrap(TestApp::spawn_at(dir.path()).await).await;
        assert_eq!(g.state(S, None).await, expected, "{name} checkpoint");
        g.app.stop().await;
    }
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let g = Gov::wrap(TestApp::spawn_at(dir.path()).await).await;
    assert_eq!(g.state(S, None).await, expected, "missing checkpoint");
    g.app.stop().await;
}

/// `govledger rebuild` on a stopped ledger rebuilds from entry 1 and proves
/// the state identical to the one the server left.
#[tokio::test]
async fn govledger_rebuild_proves_the_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gov::wrap(TestApp::spawn_at(dir.path()).await).await;
    some_history(&g).await;
    g.app.stop().await;
    let out = assert_cmd::Command::cargo_bin("govledger")
        .unwrap()
        .args(["rebuild", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("identical to the live state"), "{stdout}");
}
