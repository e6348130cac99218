//! Every validation rule: INVALID_ARGUMENT naming the field, and an unchanged
//! head. Each rule is checked through Append (path `event.…`) and through
//! AppendBatch with the bad item between two good ones (path `items[1].event.…`).

use govledger::proto::v1::{
    AppendBatchRequest, AppendRequest, ApprovalRecorded, BatchItem, DeploymentRecorded, Direction,
    EvalRecorded, Event, FeedbackRecorded, IncidentOpened, IncidentResolved, Metric, PolicySet,
    RequiredSuite, SubjectKind, VersionRegistered, event::Kind,
};
use prost_types::Timestamp;
use tonic::{Code, Status};

use crate::helpers::*;

/// One invalid request: its event (None = no event), idempotency key, and the
/// field path(s) the error may name (relative to the request item: `event.…`).
struct Case {
    name: String,
    event: Option<Event>,
    key: String,
    fields: Vec<String>,
}

fn case(name: impl Into<String>, event: impl ToEvent, field: &str) -> Case {
    Case {
        name: name.into(),
        event: Some(event.event()),
        key: String::new(),
        fields: vec![field.to_owned()],
    }
}

fn case_any(name: impl Into<String>, event: impl ToEvent, fields: &[&str]) -> Case {
    Case {
        fields: fields.iter().map(|f| f.to_string()).collect(),
        ..case(name, event, "")
    }
}

/// Why `result` is not the expected INVALID_ARGUMENT naming one of `fields`, if it is not.
fn problem<T>(result: Result<T, Status>, fields: &[String]) -> Option<String> {
    match result {
        Ok(_) => Some("accepted".to_owned()),
        Err(status) if status.code() != Code::InvalidArgument => Some(format!(
            "{:?} {:?}, expected InvalidArgument",
            status.code(),
            status.message()
        )),
        Err(status) if !fields.iter().any(|f| status.message().contains(f.as_str())) => {
            Some(format!(
                "message {:?} does not name {}",
                status.message(),
                fields.join(" or ")
            ))
        }
        Err(_) => None,
    }
}

/// Runs every case through Append and AppendBatch on one server; fails listing
/// every broken case.
async fn assert_all_rejected(cases: Vec<Case>) {
    let app = TestApp::spawn().await;
    app.append_event(version("seed")).await;
    // The good items around a bad one are valid: they approve and evaluate a
    // registered version, which the approver did not register.
    app.register("ok").await;
    let mut head = app.get_head().await;
    let mut failures = Vec::new();
    for case in &cases {
        let single = app
            .append(AppendRequest {
                event: case.event.clone(),
                idempotency_key: case.key.clone(),
                ..Default::default()
            })
            .await;
        if let Some(p) = problem(single, &case.fields) {
            failures.push(format!("{} [Append]: {p}", case.name));
        }
        let items = vec![
            item(approval("ok")),
            BatchItem {
                event: case.event.clone(),
                idempotency_key: case.key.clone(),
                expected_subject_sequence: None,
            },
            item(eval("ok")),
        ];
        let batched = app
            .append_batch(AppendBatchRequest {
                items,
                expected_head_sequence: None,
            })
            .await;
        let batch_fields: Vec<_> = case
            .fields
            .iter()
            .map(|f| format!("items[1].{f}"))
            .collect();
        if let Some(p) = problem(batched, &batch_fields) {
            failures.push(format!("{} [AppendBatch]: {p}", case.name));
        }
        let now = app.get_head().await;
        if now != head {
            failures.push(format!(
                "{}: head moved from {} to {}",
                case.name, head.sequence, now.sequence
            ));
            head = now;
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s) over {} cases:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}

/// Every event must be accepted, alone and in a batch (followed by a valid item).
///
/// The governance rules apply after validation, so each event is appended
/// where what it refers to exists: its [`prerequisites`] first (as
/// [`REGISTRAR`]), and the event itself from an actor of its own, so that no
/// approval is of the approver's own version or a repeat. The cases run one
/// after another on one server per mode; a case that this shared ledger refuses
/// for what earlier cases left in it (FAILED_PRECONDITION: its version label or
/// incident id is taken, a policy in force gates its deployment...) runs again
/// on a fresh server, where it must be accepted.
async fn assert_all_accepted(cases: Vec<(String, Event)>) {
    let mut single = Accepting::new(Mode::Append).await;
    let mut batched = Accepting::new(Mode::AppendBatch).await;
    let mut failures = Vec::new();
    for (name, event) in &cases {
        for accepting in [&mut single, &mut batched] {
            if let Err(p) = accepting.check(event).await {
                failures.push(format!("{name} [{:?}]: {p}", accepting.mode));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "valid events were rejected:\n  {}",
        failures.join("\n  ")
    );
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Append,
    AppendBatch,
}

/// A server that valid events are appended to, one case after another.
struct Accepting {
    app: TestApp,
    mode: Mode,
    appends: usize,
}

impl Accepting {
    async fn new(mode: Mode) -> Accepting {
        let app = TestApp::spawn().await;
        // What the valid item after a batched case approves.
        app.register("ok").await;
        Accepting {
            app,
            mode,
            appends: 0,
        }
    }

    /// Appends `event` after its prerequisites, again on a fresh server if
    /// this one refuses it for its state; why it was rejected, if it was.
    async fn check(&mut self, event: &Event) -> Result<(), String> {
        let describe = |s: Status| format!("{:?} {:?}", s.code(), s.message());
        match self.attempt(event, false).await {
            Err(s) if s.code() == Code::FailedPrecondition => {
                let mut fresh = Accepting::new(self.mode).await;
                fresh
                    .attempt(event, true)
                    .await
                    .map_err(|s| format!("{} (on a fresh ledger)", describe(s)))
            }
            result => result.map_err(describe),
        }
    }

    /// `strict`: every prerequisite must be accepted (on a fresh ledger);
    /// otherwise one refused is taken as already there, and the event tells.
    async fn attempt(&mut self, event: &Event, strict: bool) -> Result<(), Status> {
        for prerequisite in prerequisites(event) {
            match self
                .app
                .append_as(REGISTRAR, req(prerequisite.clone()))
                .await
            {
                Ok(_) => {}
                Err(s) if !strict && s.code() == Code::FailedPrecondition => {}
                Err(s) => {
                    return Err(Status::new(
                        s.code(),
                        format!("prerequisite {prerequisite:?} refused: {}", s.message()),
                    ));
                }
            }
        }
        self.appends += 1;
        let actor = format!("case-{}", self.appends);
        match self.mode {
            Mode::Append => self
                .app
                .append_as(&actor, req(event.clone()))
                .await
                .map(drop),
            Mode::AppendBatch => self
                .app
                .append_batch_as(&actor, batch(vec![event.clone(), approval("ok").event()]))
                .await
                .map(drop),
        }
    }
}

/// The events that must be in the log before `event` can be: the versions it
/// names registered (the parent of a version with the version's kind, others
/// as prompts), and the incident it resolves opened, on its subject.
fn prerequisites(event: &Event) -> Vec<Event> {
    let register = |subject: &str, label: &str, kind: i32| {
        VersionRegistered {
            version: label.into(),
            subject_kind: kind,
            ..version(subject)
        }
        .event()
    };
    let prompt = SubjectKind::Prompt as i32;
    match event.kind.as_ref().expect("the case sets an event kind") {
        Kind::VersionRegistered(e) if e.parent_version.is_empty() => vec![],
        Kind::PrincipalRolesSet(_) | Kind::TokenIssued(_) | Kind::TokenRevoked(_) => vec![],
        Kind::VersionRegistered(e) => vec![register(&e.subject, &e.parent_version, e.subject_kind)],
        Kind::EvalRecorded(e) => vec![register(&e.subject, &e.version, prompt)],
        Kind::ApprovalRecorded(e) => vec![register(&e.subject, &e.version, prompt)],
        Kind::DeploymentRecorded(e) => vec![register(&e.subject, &e.version, prompt)],
        Kind::FeedbackRecorded(e) => vec![register(&e.subject, &e.version, prompt)],
        Kind::IncidentOpened(e) if e.version.is_empty() => vec![register(&e.subject, V, prompt)],
        Kind::IncidentOpened(e) => vec![register(&e.subject, &e.version, prompt)],
        Kind::IncidentResolved(e) => {
            let mut events = vec![register(&e.subject, V, prompt)];
            if !e.fixing_version.is_empty() && e.fixing_version != V {
                events.push(register(&e.subject, &e.fixing_version, prompt));
            }
            events.push(
                IncidentOpened {
                    incident_id: e.incident_id.clone(),
                    ..incident_opened(&e.subject)
                }
                .event(),
            );
            events
        }
        Kind::PolicySet(_) => vec![],
    }
}

fn named(name: impl Into<String>, event: impl ToEvent) -> (String, Event) {
    (name.into(), event.event())
}

// ---- the event itself ---------------------------------------------------------------

#[tokio::test]
async fn a_missing_event_or_variant_is_rejected() {
    let app = TestApp::spawn().await;
    app.append_event(version("seed")).await;
    let before = app.get_head().await;

    let no_event = app.append(AppendRequest::default()).await;
    assert_status(no_event, Code::InvalidArgument, "event");
    let no_variant = app.append(req(Event { kind: None })).await;
    assert_status(no_variant, Code::InvalidArgument, "event");
    let batch_no_event = app
        .append_batch(AppendBatchRequest {
            items: vec![item(version("a")), BatchItem::default()],
            expected_head_sequence: None,
        })
        .await;
    assert_status(batch_no_event, Code::InvalidArgument, "items[1].event");
    let batch_no_variant = app.append_batch(batch(vec![Event { kind: None }])).await;
    assert_status(batch_no_variant, Code::InvalidArgument, "items[0].event");

    assert_eq!(app.get_head().await, before);
}

#[tokio::test]
async fn an_event_over_1_mib_is_rejected() {
    let too_big = version_with_content("a", 1_100_000 * 1024 / 1000);
    assert_all_rejected(vec![case("event of ~1.1 MiB", too_big, "event")]).await;
}

#[tokio::test]
async fn an_event_just_under_1_mib_is_accepted() {
    assert_all_accepted(vec![named(
        "~1,000,000 byte event",
        version_with_content("a", 1_000_000),
    )])
    .await;
}

// ---- subjects --------------------------------------------------------------------------

/// The same subject set on every kind, with the field path of each.
fn with_subject_on_every_kind(subject: &str) -> Vec<(Event, &'static str)> {
    let s = || subject.to_owned();
    vec![
        (
            VersionRegistered {
                subject: s(),
                ..version("a")
            }
            .event(),
            "event.version_registered.subject",
        ),
        (
            EvalRecorded {
                subject: s(),
                ..eval("a")
            }
            .event(),
            "event.eval_recorded.subject",
        ),
        (
            ApprovalRecorded {
                subject: s(),
                ..approval("a")
            }
            .event(),
            "event.approval_recorded.subject",
        ),
        (
            DeploymentRecorded {
                subject: s(),
                ..deployment("a")
            }
            .event(),
            "event.deployment_recorded.subject",
        ),
        // Built for the subject: each subject's incident id is its own.
        (
            incident_opened(subject).event(),
            "event.incident_opened.subject",
        ),
        (
            incident_resolved(subject).event(),
            "event.incident_resolved.subject",
        ),
        (
            FeedbackRecorded {
                subject: s(),
                ..feedback("a")
            }
            .event(),
            "event.feedback_recorded.subject",
        ),
        (
            PolicySet {
                subject: s(),
                ..policy("a")
            }
            .event(),
            "event.policy_set.subject",
        ),
    ]
}

#[tokio::test]
async fn invalid_subjects_are_rejected_on_every_kind() {
    let long = "a".repeat(129);
    let long_segments = format!("{}/{}", "a".repeat(64), "b".repeat(64));
    let bad = [
        "",
        "a//b",
        "-x",
        "has space",
        "a/",
        "/a",
        "a/.b",
        "_a",
        "a*",
        "a:b",
        "ünïcode",
        "tab\there",
        long.as_str(),
        long_segments.as_str(),
    ];
    let mut cases = Vec::new();
    for subject in bad {
        for (event, field) in with_subject_on_every_kind(subject) {
            cases.push(case(format!("{field} = {subject:?}"), event, field));
        }
    }
    // "*" is only for policies.
    for (event, field) in with_subject_on_every_kind("*") {
        if field != "event.policy_set.subject" {
            cases.push(case(format!("{field} = \"*\""), event, field));
        }
    }
    assert_all_rejected(cases).await;
}

#[tokio::test]
async fn subjects_at_the_limits_are_accepted() {
    let longest = format!("{}/{}", "a".repeat(63), "b".repeat(64));
    assert_eq!(longest.len(), 128);
    let mut cases = Vec::new();
    for subject in [
        "a",
        "7",
        "A.b_c-d/0e",
        "x/y/z/w",
        "support-bot/triage-prompt",
        longest.as_str(),
    ] {
        for (event, field) in with_subject_on_every_kind(subject) {
            cases.push(named(format!("{field} = {subject:?}"), event));
        }
    }
    cases.push(named("policy subject \"*\"", policy("*")));
    assert_all_accepted(cases).await;
}

// ---- labels ------------------------------------------------------------------------------

const BAD_LABELS: [&str; 8] = ["", "v 1", "-v1", ".v1", "v1/2", "v1é", "v1*", "LONG"];

fn bad_labels() -> Vec<String> {
    BAD_LABELS
        .iter()
        .map(|l| {
            if *l == "LONG" {
                "a".repeat(65)
            } else {
                l.to_string()
            }
        })
        .collect()
}

/// Every required label field: (event with the label set to `l`, field path).
fn with_required_label(l: &str) -> Vec<(Event, String)> {
    let l = || l.to_owned();
    let mut eval_metric = eval("a");
    eval_metric.metrics[0].name = l();
    let mut policy_suite = policy("a");
    policy_suite.required_suites[0].suite = l();
    let mut policy_metric = policy("a");
    policy_metric.required_suites[0].thresholds[0].name = l();
    vec![
        (
            VersionRegistered {
                version: l(),
                ..version("a")
            }
            .event(),
            "event.version_registered.version",
        ),
        (
            EvalRecorded {
                version: l(),
                ..eval("a")
            }
            .event(),
            "event.eval_recorded.version",
        ),
        (
            EvalRecorded {
                suite: l(),
                ..eval("a")
            }
            .event(),
            "event.eval_recorded.suite",
        ),
        (eval_metric.event(), "event.eval_recorded.metrics[0].name"),
        (
            ApprovalRecorded {
                version: l(),
                ..approval("a")
            }
            .event(),
            "event.approval_recorded.version",
        ),
        (
            ApprovalRecorded {
                environment: l(),
                ..approval("a")
            }
            .event(),
            "event.approval_recorded.environment",
        ),
        (
            DeploymentRecorded {
                version: l(),
                ..deployment("a")
            }
            .event(),
            "event.deployment_recorded.version",
        ),
        (
            DeploymentRecorded {
                environment: l(),
                ..deployment("a")
            }
            .event(),
            "event.deployment_recorded.environment",
        ),
        (
            IncidentOpened {
                incident_id: l(),
                ..incident_opened("a")
            }
            .event(),
            "event.incident_opened.incident_id",
        ),
        (
            IncidentResolved {
                incident_id: l(),
                ..incident_resolved("a")
            }
            .event(),
            "event.incident_resolved.incident_id",
        ),
        (
            FeedbackRecorded {
                version: l(),
                ..feedback("a")
            }
            .event(),
            "event.feedback_recorded.version",
        ),
        (
            FeedbackRecorded {
                environment: l(),
                ..feedback("a")
            }
            .event(),
            "event.feedback_recorded.environment",
        ),
        (
            PolicySet {
                environment: l(),
                ..policy("a")
            }
            .event(),
            "event.policy_set.environment",
        ),
        (
            policy_suite.event(),
            "event.policy_set.required_suites[0].suite",
        ),
        (
            policy_metric.event(),
            "event.policy_set.required_suites[0].thresholds[0].name",
        ),
    ]
    .into_iter()
    .map(|(e, f)| (e, f.to_owned()))
    .collect()
}

/// Optional label fields (empty is fine; a non-empty value must be a label).
fn with_optional_label(l: &str) -> Vec<(Event, String)> {
    let l = || l.to_owned();
    vec![
        (
            VersionRegistered {
                parent_version: l(),
                ..version("a")
            }
            .event(),
            "event.version_registered.parent_version",
        ),
        (
            IncidentOpened {
                version: l(),
                ..incident_opened("a")
            }
            .event(),
            "event.incident_opened.version",
        ),
        (
            IncidentOpened {
                environment: l(),
                ..incident_opened("a")
            }
            .event(),
            "event.incident_opened.environment",
        ),
        (
            IncidentResolved {
                fixing_version: l(),
                ..incident_resolved("a")
            }
            .event(),
            "event.incident_resolved.fixing_version",
        ),
    ]
    .into_iter()
    .map(|(e, f)| (e, f.to_owned()))
    .collect()
}

#[tokio::test]
async fn invalid_labels_are_rejected() {
    let mut cases = Vec::new();
    for label in bad_labels() {
        for (event, field) in with_required_label(&label) {
            cases.push(case(format!("{field} = {label:?}"), event, &field));
        }
        if !label.is_empty() {
            for (event, field) in with_optional_label(&label) {
                cases.push(case(format!("{field} = {label:?}"), event, &field));
            }
        }
    }
    assert_all_rejected(cases).await;
}

#[tokio::test]
async fn labels_at_the_limits_are_accepted() {
    let mut cases = Vec::new();
    // parent_version must differ from version, so avoid "v2" here.
    for label in ["V", "9", "1.4.0+build:7_rc-1", &"b".repeat(64)] {
        for (event, field) in with_required_label(label) {
            cases.push(named(format!("{field} = {label:?}"), event));
        }
        for (event, field) in with_optional_label(label) {
            cases.push(named(format!("{field} = {label:?}"), event));
        }
    }
    // Optional labels may be empty.
    for (event, field) in with_optional_label("") {
        cases.push(named(format!("{field} = \"\""), event));
    }
    assert_all_accepted(cases).await;
}

// ---- digests -------------------------------------------------------------------------------

#[tokio::test]
async fn digests_must_be_32_bytes_and_match_the_content() {
    let mut cases = Vec::new();
    for len in [0, 1, 31, 33, 64] {
        cases.push(case(
            format!("content_digest of {len} bytes"),
            VersionRegistered {
                content_digest: vec![7; len],
                content: vec![],
                ..version("a")
            },
            "event.version_registered.content_digest",
        ));
    }
    cases.push(case(
        "content whose BLAKE3 differs from content_digest",
        VersionRegistered {
            content: b"the real prompt".to_vec(),
            content_digest: digest(b"another prompt"),
            ..version("a")
        },
        // `content` or `content_digest`
        "event.version_registered.content",
    ));
    cases.push(case(
        "dataset_digest of 5 bytes",
        EvalRecorded {
            dataset_digest: vec![1; 5],
            ..eval("a")
        },
        "event.eval_recorded.dataset_digest",
    ));
    assert_all_rejected(cases).await;
}

#[tokio::test]
async fn a_digest_without_content_is_accepted() {
    assert_all_accepted(vec![
        named(
            "digest only",
            VersionRegistered {
                content: vec![],
                content_digest: vec![9; 32],
                ..version("a")
            },
        ),
        named(
            "no dataset digest",
            EvalRecorded {
                dataset_digest: vec![],
                ..eval("a")
            },
        ),
    ])
    .await;
}

// ---- enums ---------------------------------------------------------------------------------

#[tokio::test]
async fn unspecified_and_unknown_enums_are_rejected() {
    let mut cases = Vec::new();
    for value in [0, 99, -1] {
        cases.push(case(
            format!("subject_kind = {value}"),
            VersionRegistered {
                subject_kind: value,
                ..version("a")
            },
            "event.version_registered.subject_kind",
        ));
        cases.push(case(
            format!("eval_kind = {value}"),
            EvalRecorded {
                eval_kind: value,
                ..eval("a")
            },
            "event.eval_recorded.eval_kind",
        ));
        let mut e = eval("a");
        e.metrics[0].direction = value;
        cases.push(case(
            format!("metrics[0].direction = {value}"),
            e,
            "event.eval_recorded.metrics[0].direction",
        ));
        let mut e = eval("a");
        e.metrics[1].direction = value;
        cases.push(case(
            format!("metrics[1].direction = {value}"),
            e,
            "event.eval_recorded.metrics[1].direction",
        ));
        cases.push(case(
            format!("decision = {value}"),
            ApprovalRecorded {
                decision: value,
                ..approval("a")
            },
            "event.approval_recorded.decision",
        ));
        cases.push(case(
            format!("severity = {value}"),
            IncidentOpened {
                severity: value,
                ..incident_opened("a")
            },
            "event.incident_opened.severity",
        ));
        cases.push(case(
            format!("category = {value}"),
            IncidentOpened {
                category: value,
                ..incident_opened("a")
            },
            "event.incident_opened.category",
        ));
        let mut p = policy("a");
        p.required_suites[0].thresholds[0].direction = value;
        cases.push(case(
            format!("policy threshold direction = {value}"),
            p,
            "event.policy_set.required_suites[0].thresholds[0].direction",
        ));
    }
    // Unspecified means "incidents never block" for a policy; unknown is still invalid.
    cases.push(case(
        "block_on_open_incident_severity = 99",
        PolicySet {
            block_on_open_incident_severity: 99,
            ..policy("a")
        },
        "event.policy_set.block_on_open_incident_severity",
    ));
    assert_all_rejected(cases).await;
}

#[tokio::test]
async fn every_known_enum_value_is_accepted() {
    let mut cases = vec![named(
        "policy with unspecified blocking severity",
        PolicySet {
            block_on_open_incident_severity: 0,
            ..policy("a")
        },
    )];
    for v in 1..=4 {
        cases.push(named(
            format!("subject_kind {v}"),
            VersionRegistered {
                subject_kind: v,
                ..version("a")
            },
        ));
        cases.push(named(
            format!("severity {v}"),
            IncidentOpened {
                severity: v,
                ..incident_opened("a")
            },
        ));
    }
    for v in 1..=3 {
        cases.push(named(
            format!("eval_kind {v}"),
            EvalRecorded {
                eval_kind: v,
                ..eval("a")
            },
        ));
    }
    for v in 1..=2 {
        cases.push(named(
            format!("decision {v}"),
            ApprovalRecorded {
                decision: v,
                ..approval("a")
            },
        ));
    }
    for v in 1..=6 {
        cases.push(named(
            format!("category {v}"),
            IncidentOpened {
                category: v,
                ..incident_opened("a")
            },
        ));
    }
    assert_all_accepted(cases).await;
}

// ---- numbers and metric lists -------------------------------------------------------------

#[tokio::test]
async fn non_finite_numbers_are_rejected() {
    let mut cases = Vec::new();
    for (name, x) in [
        ("NaN", f64::NAN),
        ("+inf", f64::INFINITY),
        ("-inf", f64::NEG_INFINITY),
    ] {
        let mut e = eval("a");
        e.metrics[0].value = x;
        cases.push(case(
            format!("metrics[0].value = {name}"),
            e,
            "event.eval_recorded.metrics[0].value",
        ));
        let mut e = eval("a");
        e.metrics[1].value = x;
        cases.push(case(
            format!("metrics[1].value = {name}"),
            e,
            "event.eval_recorded.metrics[1].value",
        ));
        let mut e = eval("a");
        e.metrics[0].threshold = x;
        cases.push(case(
            format!("metrics[0].threshold = {name}"),
            e,
            "event.eval_recorded.metrics[0].threshold",
        ));
        let mut p = policy("a");
        p.required_suites[0].thresholds[0].threshold = x;
        cases.push(case(
            format!("policy threshold = {name}"),
            p,
            "event.policy_set.required_suites[0].thresholds[0].threshold",
        ));
        cases.push(case(
            format!("max_eval_score_drop = {name}"),
            PolicySet {
                max_eval_score_drop: x,
                ..policy("a")
            },
            "event.policy_set.max_eval_score_drop",
        ));
        cases.push(case(
            format!("max_negative_feedback_rate_rise = {name}"),
            PolicySet {
                max_negative_feedback_rate_rise: x,
                ..policy("a")
            },
            "event.policy_set.max_negative_feedback_rate_rise",
        ));
    }
    let mut e = eval("a");
    e.metrics[0].value = f64::NAN;
    cases.push(case(
        "the documented example",
        e,
        "event.eval_recorded.metrics[0].value",
    ));
    assert_all_rejected(cases).await;
}

#[tokio::test]
async fn the_error_names_the_field_and_the_rule() {
    // The message starts with the field path, then the rule.
    let app = TestApp::spawn().await;
    let mut e = eval("a");
    e.metrics[0].value = f64::NAN;

    let status = assert_status(
        app.append(req(e)).await,
        Code::InvalidArgument,
        "event.eval_recorded.metrics[0].value",
    );

    assert!(
        status
            .message()
            .starts_with("event.eval_recorded.metrics[0].value"),
        "the message starts with the field path: {:?}",
        status.message()
    );
    assert!(
        status.message().contains("finite"),
        "the message names the rule: {:?}",
        status.message()
    );
    assert_eq!(
        app.get_head().await.sequence,
        SETUP_ENTRIES,
        "nothing appended after the access entries"
    );
}

fn metrics(n: usize) -> Vec<Metric> {
    (0..n).map(|i| metric(&format!("m{i}"), 0.5, 0.4)).collect()
}

#[tokio::test]
async fn metric_lists_must_have_1_to_64_unique_names() {
    let duplicate = vec![metric("accuracy", 0.9, 0.8), metric("accuracy", 0.7, 0.8)];
    assert_all_rejected(vec![
        case(
            "no metrics",
            EvalRecorded {
                metrics: vec![],
                ..eval("a")
            },
            "event.eval_recorded.metrics",
        ),
        case(
            "65 metrics",
            EvalRecorded {
                metrics: metrics(65),
                ..eval("a")
            },
            "event.eval_recorded.metrics",
        ),
        // `metrics` or `metrics[1].name`
        case(
            "duplicate names",
            EvalRecorded {
                metrics: duplicate,
                ..eval("a")
            },
            "event.eval_recorded.metrics",
        ),
    ])
    .await;
}

#[tokio::test]
async fn metric_lists_and_values_at_the_limits_are_accepted() {
    let extreme = vec![
        Metric {
            name: "loss".into(),
            value: -5.0,
            threshold: 1e300,
            direction: Direction::LowerIsBetter as i32,
        },
        Metric {
            name: "tiny".into(),
            value: f64::MIN_POSITIVE,
            threshold: -1e300,
            direction: 1,
        },
    ];
    assert_all_accepted(vec![
        named(
            "1 metric",
            EvalRecorded {
                metrics: metrics(1),
                ..eval("a")
            },
        ),
        named(
            "64 metrics",
            EvalRecorded {
                metrics: metrics(64),
                ..eval("a")
            },
        ),
        named(
            "extreme finite values",
            EvalRecorded {
                metrics: extreme,
                ..eval("a")
            },
        ),
        named(
            "policy suite without thresholds",
            PolicySet {
                required_suites: vec![RequiredSuite {
                    suite: "smoke".into(),
                    thresholds: vec![],
                }],
                ..policy("a")
            },
        ),
    ])
    .await;
}

// ---- free text ------------------------------------------------------------------------------

#[tokio::test]
async fn free_text_over_4096_bytes_or_missing_required_text_is_rejected() {
    let long = "x".repeat(4097);
    // 2,049 characters but 4,098 bytes: the limit is in bytes.
    let long_bytes = "é".repeat(2049);
    let mut cases = Vec::new();
    for (what, text) in [
        ("4097 bytes", &long),
        ("4098 bytes of 2049 chars", &long_bytes),
    ] {
        cases.push(case(
            format!("summary of {what}"),
            VersionRegistered {
                summary: text.clone(),
                ..version("a")
            },
            "event.version_registered.summary",
        ));
        cases.push(case(
            format!("comment of {what}"),
            ApprovalRecorded {
                comment: text.clone(),
                ..approval("a")
            },
            "event.approval_recorded.comment",
        ));
        cases.push(case(
            format!("description of {what}"),
            IncidentOpened {
                description: text.clone(),
                ..incident_opened("a")
            },
            "event.incident_opened.description",
        ));
        cases.push(case(
            format!("resolution of {what}"),
            IncidentResolved {
                resolution: text.clone(),
                ..incident_resolved("a")
            },
            "event.incident_resolved.resolution",
        ));
        cases.push(case(
            format!("override_justification of {what}"),
            DeploymentRecorded {
                override_justification: text.clone(),
                ..deployment("a")
            },
            "event.deployment_recorded.override_justification",
        ));
    }
    cases.push(case(
        "empty description",
        IncidentOpened {
            description: String::new(),
            ..incident_opened("a")
        },
        "event.incident_opened.description",
    ));
    cases.push(case(
        "empty resolution",
        IncidentResolved {
            resolution: String::new(),
            ..incident_resolved("a")
        },
        "event.incident_resolved.resolution",
    ));
    assert_all_rejected(cases).await;
}

#[tokio::test]
async fn free_text_of_4096_bytes_is_accepted() {
    let full = "y".repeat(4096);
    let full_multibyte = "é".repeat(2048);
    let mut cases = Vec::new();
    for text in [&full, &full_multibyte] {
        cases.push(named(
            "summary",
            VersionRegistered {
                summary: text.clone(),
                ..version("a")
            },
        ));
        cases.push(named(
            "comment",
            ApprovalRecorded {
                comment: text.clone(),
                ..approval("a")
            },
        ));
        cases.push(named(
            "description",
            IncidentOpened {
                description: text.clone(),
                ..incident_opened("a")
            },
        ));
        cases.push(named(
            "resolution",
            IncidentResolved {
                resolution: text.clone(),
                ..incident_resolved("a")
            },
        ));
        cases.push(named(
            "override_justification",
            DeploymentRecorded {
                override_justification: text.clone(),
                ..deployment("a")
            },
        ));
    }
    cases.push(named(
        "empty summary",
        VersionRegistered {
            summary: String::new(),
            ..version("a")
        },
    ));
    cases.push(named(
        "empty comment",
        ApprovalRecorded {
            comment: String::new(),
            ..approval("a")
        },
    ));
    assert_all_accepted(cases).await;
}

// ---- feedback ---------------------------------------------------------------------------------

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

#[tokio::test]
async fn feedback_windows_and_counts_must_be_consistent() {
    let counts = [
        "event.feedback_recorded.total",
        "event.feedback_recorded.thumbs_up",
        "event.feedback_recorded.thumbs_down",
    ];
    assert_all_rejected(vec![
        case(
            "window_end == window_start",
            FeedbackRecorded {
                window_start: at(1_772_500_000),
                window_end: at(1_772_500_000),
                ..feedback("a")
            },
            "event.feedback_recorded.window_end",
        ),
        case(
            "window_end before window_start",
            FeedbackRecorded {
                window_start: at(1_772_500_000),
                window_end: at(1_772_400_000),
                ..feedback("a")
            },
            "event.feedback_recorded.window_end",
        ),
        case(
            "no window_start",
            FeedbackRecorded {
                window_start: None,
                ..feedback("a")
            },
            "event.feedback_recorded.window_start",
        ),
        case(
            "no window_end",
            FeedbackRecorded {
                window_end: None,
                ..feedback("a")
            },
            "event.feedback_recorded.window_end",
        ),
        case_any(
            "thumbs_up + thumbs_down > total",
            FeedbackRecorded {
                thumbs_up: 10,
                thumbs_down: 5,
                rewrites: 0,
                total: 14,
                ..feedback("a")
            },
            &counts,
        ),
        case_any(
            "thumbs that overflow u64",
            FeedbackRecorded {
                thumbs_up: u64::MAX,
                thumbs_down: 1,
                rewrites: 0,
                total: u64::MAX,
                ..feedback("a")
            },
            &counts,
        ),
        case_any(
            "rewrites > total",
            FeedbackRecorded {
                thumbs_up: 0,
                thumbs_down: 0,
                rewrites: 15,
                total: 14,
                ..feedback("a")
            },
            &[
                "event.feedback_recorded.total",
                "event.feedback_recorded.rewrites",
            ],
        ),
    ])
    .await;
}

#[tokio::test]
async fn feedback_at_the_limits_is_accepted() {
    assert_all_accepted(vec![
        named(
            "thumbs == total, rewrites == total",
            FeedbackRecorded {
                thumbs_up: 10,
                thumbs_down: 4,
                rewrites: 14,
                total: 14,
                ..feedback("a")
            },
        ),
        named(
            "a one-second window, nothing counted",
            FeedbackRecorded {
                window_start: at(1_772_500_000),
                window_end: at(1_772_500_001),
                thumbs_up: 0,
                thumbs_down: 0,
                rewrites: 0,
                total: 0,
                ..feedback("a")
            },
        ),
    ])
    .await;
}

// ---- idempotency keys ------------------------------------------------------------------------

#[tokio::test]
async fn invalid_idempotency_keys_are_rejected() {
    let bad = [
        "k".repeat(129),
        "has space".into(),
        "tab\tkey".into(),
        "ключ".into(),
        "del\u{7f}".into(),
        "nl\n".into(),
    ];
    let cases = bad
        .into_iter()
        .map(|key| Case {
            name: format!("idempotency_key = {key:?}"),
            event: Some(version("a").event()),
            key,
            fields: vec!["idempotency_key".into()],
        })
        .collect();
    assert_all_rejected(cases).await;
}

#[tokio::test]
async fn idempotency_keys_at_the_limits_are_accepted() {
    let app = TestApp::spawn().await;
    let punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~0aZ";
    for (n, key) in ["k".repeat(128), punctuation.to_owned(), "x".to_owned()]
        .into_iter()
        .enumerate()
    {
        // A new version each time, registered by another actor than the
        // (default) one that approves it in the batch below.
        let resp = app
            .append_as(REGISTRAR, keyed(numbered("a", n), &key))
            .await;
        let entry = resp
            .unwrap_or_else(|s| panic!("key {key:?} rejected: {s:?}"))
            .entry
            .unwrap();
        assert_eq!(entry.idempotency_key, key);
        let batched = app
            .append_batch(AppendBatchRequest {
                items: vec![BatchItem {
                    idempotency_key: format!("b{}", &key[1..]),
                    ..item(ApprovalRecorded {
                        version: format!("v{n}"),
                        ..approval("a")
                    })
                }],
                expected_head_sequence: None,
            })
            .await;
        batched.unwrap_or_else(|s| panic!("batch key rejected: {s:?}"));
    }
}

// ---- batch limits ------------------------------------------------------------------------------

#[tokio::test]
async fn batches_outside_1_to_1000_items_or_over_16_mib_are_rejected() {
    let app = TestApp::spawn().await;
    app.append_event(version("seed")).await;
    let before = app.get_head().await;

    let empty = app.append_batch(AppendBatchRequest::default()).await;
    assert_status(empty, Code::InvalidArgument, "items");
    assert_eq!(app.get_head().await, before);

    let too_many = batch((0..1001).map(|n| numbered("a", n)).collect());
    assert_status(
        app.append_batch(too_many).await,
        Code::InvalidArgument,
        "items",
    );
    assert_eq!(app.get_head().await, before);

    // 17 events of ~990 KB: each under 1 MiB, together just over 16 MiB.
    let heavy: Vec<_> = (0..17)
        .map(|n| version_with_content(&format!("big/{n}"), 990_000).event())
        .collect();
    let total: usize = heavy.iter().map(prost::Message::encoded_len).sum();
    assert!(total > 16 * 1024 * 1024, "test setup: {total} bytes");
    assert_status(
        app.append_batch(batch(heavy)).await,
        Code::InvalidArgument,
        "items",
    );
    assert_eq!(app.get_head().await, before);
}
