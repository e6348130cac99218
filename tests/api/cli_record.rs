//! The write commands of the real binary (`version register`, `eval
//! record|import`, `approve`, `reject`, `deploy`, `incident`, `feedback`,
//! `policy`) against a real in-process server: what they record (read back
//! through the API), what they print, their exit codes, CI metadata and
//! re-runs that record nothing new.
//!
//! Every command runs through [`gl`] ([`govledger`]), which removes every variable the CI
//! detection reads (and every GOVLEDGER_* one) from the child's environment:
//! the machine running the tests may itself be a CI runner. Only the CI tests
//! set such variables, explicitly.

use std::{path::Path, process::Output};

use govledger::{
    connect::{Authed, Bearer},
    proto::v1::{
        Decision, Direction, Entry, EvalKind, EventKind, GetSubjectStateRequest,
        ReadEntriesRequest, Severity, SubjectKind, SubjectState, VersionState, event::Kind,
        governance_client::GovernanceClient,
    },
};
use serde_json::{Value, json};

use crate::{
    cli::govledger,
    cli_support::{self, assert_code, hex, json_object, run, stderr, stdout},
    helpers::*,
};

/// A GitHub Actions job's variables (attempt `attempt` of run 1658821493).
fn github_env(attempt: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GITHUB_ACTIONS", "true".into()),
        (
            "GITHUB_SHA",
            "ffac537e6cbbf934b08745a378932722df287a53".into(),
        ),
        ("GITHUB_REF_NAME", "main".into()),
        ("GITHUB_SERVER_URL", "https://github.com".into()),
        ("GITHUB_REPOSITORY", "acme/support-bot".into()),
        ("GITHUB_RUN_ID", "1658821493".into()),
        ("GITHUB_RUN_ATTEMPT", attempt.into()),
        ("GITHUB_JOB", "eval".into()),
    ]
}

const RUN_URL: &str = "https://github.com/acme/support-bot/actions/runs/1658821493";

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A command line: words split on whitespace, and values taken as they are.
#[derive(Clone, Debug)]
struct Argv(Vec<String>);

/// The fixed part of a command line, split on whitespace.
fn cmd(words: &str) -> Argv {
    Argv(Vec::new()).words(words)
}

impl Argv {
    /// More words, split on whitespace.
    fn words(mut self, words: &str) -> Argv {
        self.0.extend(words.split_whitespace().map(str::to_owned));
        self
    }

    /// One argument as it is (a path, a text with spaces).
    fn arg(mut self, value: impl AsRef<str>) -> Argv {
        self.0.push(value.as_ref().to_owned());
        self
    }
}

/// `govledger --addr <app> --token <principal's> ARGV` outside CI.
async fn gl(app: &TestApp, principal: &str, argv: Argv) -> Output {
    gl_env(app, principal, &[], argv).await
}

/// The same, with these (CI) variables set.
async fn gl_env(app: &TestApp, principal: &str, env: &[(&str, String)], argv: Argv) -> Output {
    let mut cmd = govledger();
    cmd.args(["--addr", &app.addr.to_string()])
        .args(["--token", &app.token(principal).await]);
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.args(argv.0);
    run(cmd).await
}

/// Standard output of a successful command as JSON objects, one per line.
#[track_caller]
fn json_lines(out: &Output) -> Vec<Value> {
    assert_code(out, 0);
    cli_support::json_lines(out)
}

/// The one JSON object a successful command printed.
#[track_caller]
fn one_json(out: &Output) -> Value {
    assert_code(out, 0);
    json_object(out)
}

async fn governance(app: &TestApp) -> GovernanceClient<Authed> {
    GovernanceClient::with_interceptor(
        channel(app.addr).await,
        Bearer::new(Some(&app.token(TESTER).await)).unwrap(),
    )
}

async fn state(app: &TestApp, subject: &str) -> SubjectState {
    governance(app)
        .await
        .get_subject_state(GetSubjectStateRequest {
            subject: subject.into(),
            as_of: None,
        })
        .await
        .unwrap_or_else(|s| panic!("GetSubjectState({subject}): {s:?}"))
        .into_inner()
}

fn version_of<'a>(state: &'a SubjectState, version: &str) -> &'a VersionState {
    state
        .versions
        .iter()
        .find(|v| v.version == version)
        .unwrap_or_else(|| panic!("no version {version} in {state:?}"))
}

/// `(value, threshold, direction, passed)` of `metric` in `suite` of `version`.
fn recorded_metric(
    state: &SubjectState,
    version: &str,
    suite: &str,
    metric: &str,
) -> (f64, f64, Direction, bool) {
    let v = version_of(state, version);
    let s = v
        .evals
        .iter()
        .find(|s| s.suite == suite)
        .unwrap_or_else(|| panic!("no suite {suite} in {:?}", v.evals));
    let m = s
        .metrics
        .iter()
        .find(|m| m.name == metric)
        .unwrap_or_else(|| panic!("no metric {metric} in {:?}", s.metrics));
    (m.value, m.threshold, m.direction(), m.passed)
}

fn suite_passed(state: &SubjectState, version: &str, suite: &str) -> bool {
    version_of(state, version)
        .evals
        .iter()
        .find(|s| s.suite == suite)
        .unwrap_or_else(|| panic!("no suite {suite}"))
        .passed
}

async fn entries_of(app: &TestApp, subject: &str, kind: EventKind) -> Vec<Entry> {
    app.read_entries(ReadEntriesRequest {
        subject: subject.into(),
        kind: kind as i32,
        ..ReadEntriesRequest::default()
    })
    .await
    .unwrap()
}

async fn entry(app: &TestApp, sequence: u64) -> Entry {
    app.get_entry(sequence).await.unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Registers `version` of `subject` as "ci" through the CLI.
async fn register(app: &TestApp, dir: &Path, subject: &str, version: &str) {
    let file = write_file(
        dir,
        &format!("{version}.txt"),
        &format!("{subject} {version}"),
    );
    let argv = cmd(&format!(
        "version register --subject {subject} --kind prompt --version {version} --file"
    ))
    .arg(file);
    assert_code(&gl(app, "ci", argv).await, 0);
}

#[tokio::test]
async fn version_register_records_the_digest_and_prints_it() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let text = "You are the triage assistant. Cite the refund policy.";
    let file = write_file(dir.path(), "prompt.txt", text);
    let digest = blake3::hash(text.as_bytes()).to_hex().to_string();

    let argv = cmd("version register --subject cli/triage --kind prompt --version v1")
        .words("--author dana --model openai/gpt-4o-mini")
        .words("--param temperature=0.2 --param max_tokens=512 --summary")
        .arg("first prompt")
        .arg("--file")
        .arg(&file);
    let out = gl(&app, "ci", argv).await;
    assert_code(&out, 0);
    assert!(stdout(&out).contains("registered version v1 of cli/triage"));
    assert!(stdout(&out).contains(&digest), "{}", stdout(&out));

    let recorded = entries_of(&app, "cli/triage", EventKind::VersionRegistered).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].actor, "ci");
    // Outside CI: no key, no source.
    assert_eq!(recorded[0].idempotency_key, "");
    let Some(Kind::VersionRegistered(v)) = recorded[0].event.clone().unwrap().kind else {
        panic!("{:?}", recorded[0]);
    };
    assert_eq!(v.content_digest, blake3::hash(text.as_bytes()).as_bytes());
    assert!(
        v.content.is_empty(),
        "content stored without --store-content"
    );
    assert_eq!(v.subject_kind(), SubjectKind::Prompt);
    assert_eq!(
        (v.author.as_str(), v.model.as_str()),
        ("dana", "openai/gpt-4o-mini")
    );
    assert_eq!(v.parameters["temperature"], "0.2");
    assert_eq!(v.parameters["max_tokens"], "512");
    assert_eq!(v.summary, "first prompt");
    assert_eq!(v.source, None);

    // No --version: the label is the digest's first 12 hex digits; the
    // content is stored on request; JSON describes the entry.
    let text2 = "You are the triage assistant. Be brief.";
    let file2 = write_file(dir.path(), "prompt2.txt", text2);
    let digest2 = blake3::hash(text2.as_bytes()).to_hex().to_string();
    let argv = cmd("--output json version register --subject cli/triage --kind prompt")
        .words("--parent v1 --store-content --file")
        .arg(&file2);
    let line = one_json(&gl(&app, "ci", argv).await);
    assert_eq!(line["version"], digest2[..12]);
    assert_eq!(line["content_digest"], digest2);
    assert_eq!(line["kind"], "version_registered");
    assert_eq!(line["subject"], "cli/triage");
    assert_eq!(line["actor"], "ci");
    assert_eq!(line["deduplicated"], false);
    assert_eq!(line["derived"], serde_json::json!([]));
    let sequence = line["sequence"].as_u64().unwrap();
    let stored = entry(&app, sequence).await;
    assert_eq!(line["hash"], hex(&stored.hash));
    let Some(Kind::VersionRegistered(v)) = stored.event.unwrap().kind else {
        panic!()
    };
    assert_eq!(v.content, text2.as_bytes());
    assert_eq!(v.parent_version, "v1");

    // The same content again (outside CI, no key): the label is taken, so
    // the server refuses it: exit 4 with its reason, nothing recorded.
    let head = app.get_head().await.sequence;
    let argv = cmd("version register --subject cli/triage --kind prompt --file").arg(&file2);
    let out = gl(&app, "ci", argv).await;
    assert_code(&out, 4);
    assert!(stderr(&out).contains(&digest2[..12]), "{}", stderr(&out));
    assert_eq!(app.get_head().await.sequence, head);

    // Usage errors: exit 2, nothing recorded.
    for (words, needle) in [
        ("--kind playbook", "--kind"),
        ("--kind prompt --param temperature", "--param"),
        ("--kind prompt --param a+b:c/=1", "--param"),
        ("--kind prompt --idempotency-key", "--idempotency-key"),
    ] {
        let argv = cmd("version register --subject cli/x --file")
            .arg(&file)
            .words(words);
        let out = gl(&app, "ci", argv).await;
        assert_code(&out, 2);
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
    }
    // A missing content file is a local failure.
    let argv = cmd("version register --subject cli/x --kind model --file /nonexistent/p.txt");
    let out = gl(&app, "ci", argv).await;
    assert_code(&out, 5);
    assert!(
        stderr(&out).contains("/nonexistent/p.txt"),
        "{}",
        stderr(&out)
    );
    assert_eq!(app.get_head().await.sequence, head);
}

#[tokio::test]
async fn eval_record_lets_the_ledger_judge_the_metrics() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    register(&app, dir.path(), "cli/eval", "v1").await;
    let dataset = "0123456789abcdef".repeat(4);

    let argv = cmd("eval record --subject cli/eval --version v1 --suite regression")
        .words("--kind model-graded --metric accuracy=0.92>=0.85 --metric toxicity=0.01<=0.05")
        .words("--samples 200 --grader gpt-4o --run-ref https://evals.example.com/run/7")
        .arg("--dataset-digest")
        .arg(&dataset);
    let out = gl(&app, "ci", argv).await;
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("recorded eval regression of cli/eval v1"),
        "{text}"
    );
    // A failing value is recorded too; the ledger says it failed.
    let argv = cmd("--output json eval record --subject cli/eval --version v1 --suite nightly")
        .words("--kind human --metric accuracy=0.80>=0.85");
    let line = one_json(&gl(&app, "ci", argv).await);
    assert_eq!(line["kind"], "eval_recorded");
    assert_eq!(line["suite"], "nightly");

    let s = state(&app, "cli/eval").await;
    assert!(suite_passed(&s, "v1", "regression"));
    assert_eq!(
        recorded_metric(&s, "v1", "regression", "accuracy"),
        (0.92, 0.85, Direction::HigherIsBetter, true)
    );
    assert_eq!(
        recorded_metric(&s, "v1", "regression", "toxicity"),
        (0.01, 0.05, Direction::LowerIsBetter, true)
    );
    assert!(!suite_passed(&s, "v1", "nightly"));
    let recorded = entries_of(&app, "cli/eval", EventKind::EvalRecorded).await;
    let Some(Kind::EvalRecorded(e)) = recorded[0].event.clone().unwrap().kind else {
        panic!()
    };
    assert_eq!(e.sample_size, 200);
    assert_eq!(e.grader_model, "gpt-4o");
    assert_eq!(hex(&e.dataset_digest), dataset);
    assert_eq!(e.run_ref, "https://evals.example.com/run/7");
    assert_eq!(e.eval_kind, EvalKind::ModelGraded as i32);

    // Every malformed metric is a usage error naming the flag and the rule.
    let head = app.get_head().await.sequence;
    let base = "eval record --subject cli/eval --version v1 --suite s --kind deterministic";
    for bad in [
        "accuracy",
        "accuracy=0.92",
        "accuracy=0.92>0.85",
        "accuracy=0.92=>0.85",
        "accuracy=high>=0.85",
        "accuracy=0.92>=0.85<=0.9",
        "=0.92>=0.85",
        "accuracy=NaN>=0.85",
        "accuracy=0.92>=",
    ] {
        let out = gl(&app, "ci", cmd(base).arg("--metric").arg(bad)).await;
        assert_code(&out, 2);
        let err = stderr(&out);
        assert!(err.contains("--metric"), "{bad}: {err}");
        assert!(err.contains("NAME=VALUE>=THRESHOLD"), "{bad}: {err}");
        assert!(err.contains("NAME=VALUE<=THRESHOLD"), "{bad}: {err}");
    }
    // The same metric twice, or none at all: usage errors too.
    for metrics in ["--metric a=1>=1 --metric a=2>=1", ""] {
        let out = gl(&app, "ci", cmd(base).words(metrics)).await;
        assert_code(&out, 2);
        assert!(stderr(&out).contains("--metric"), "{}", stderr(&out));
    }
    // A dataset digest that is not one.
    let out = gl(
        &app,
        "ci",
        cmd(base).words("--metric a=1>=1 --dataset-digest abc"),
    )
    .await;
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("--dataset-digest"),
        "{}",
        stderr(&out)
    );
    // An unregistered version: the server refuses, exit 4 with its reason.
    let argv = cmd("eval record --subject cli/eval --version v9 --suite s --kind human")
        .words("--metric a=1>=1");
    let out = gl(&app, "ci", argv).await;
    assert_code(&out, 4);
    let err = stderr(&out);
    assert!(
        err.contains("version v9 of cli/eval is not registered"),
        "{err}"
    );
    assert_eq!(app.get_head().await.sequence, head);
}

#[tokio::test]
async fn eval_import_records_promptfoo_suites_in_one_batch() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    register(&app, dir.path(), "cli/pf", "v1").await;
    let results = fixture("promptfoo-results.json");

    let argv = cmd("eval import --format promptfoo --subject cli/pf --version v1").arg(&results);
    assert_code(&gl(&app, "ci", argv).await, 0);
    let s = state(&app, "cli/pf").await;
    // 3 of 6 results passed; promptfoo's own default fails on any failure.
    assert_eq!(
        recorded_metric(&s, "v1", "promptfoo", "pass_rate"),
        (0.5, 1.0, Direction::HigherIsBetter, false)
    );
    assert!(close(
        recorded_metric(&s, "v1", "promptfoo", "metric:tone").0,
        0.8
    ));
    assert!(close(
        recorded_metric(&s, "v1", "promptfoo", "assert:llm-rubric").0,
        0.8
    ));
    assert!(!suite_passed(&s, "v1", "promptfoo"));

    // One suite per provider, appended together: consecutive entries.
    let argv = cmd("--output json eval import --format promptfoo --subject cli/pf --version v1")
        .words("--suite pf --split-by-provider --pass-rate-threshold 0.6")
        .arg(&results);
    let lines = json_lines(&gl(&app, "ci", argv).await);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let haiku = "pf.anthropic:messages:claude-haiku-4-5";
    assert_eq!(lines[0]["suite"], haiku);
    assert_eq!(lines[1]["suite"], "pf.mini");
    let first = lines[0]["sequence"].as_u64().unwrap();
    assert_eq!(lines[1]["sequence"].as_u64().unwrap(), first + 1);
    assert_eq!(app.get_head().await.sequence, first + 1);
    for line in &lines {
        assert_eq!(line["kind"], "eval_recorded");
        assert_eq!(line["deduplicated"], false);
    }
    let s = state(&app, "cli/pf").await;
    let (mini, threshold, _, passed) = recorded_metric(&s, "v1", "pf.mini", "pass_rate");
    assert!(close(mini, 2.0 / 3.0));
    assert_eq!((threshold, passed), (0.6, true));
    assert!(suite_passed(&s, "v1", "pf.mini"));
    assert!(close(
        recorded_metric(&s, "v1", haiku, "pass_rate").0,
        1.0 / 3.0
    ));
    assert!(!suite_passed(&s, "v1", haiku));
    // The grader named in the file is recorded.
    let recorded = entry(&app, first + 1).await;
    let Some(Kind::EvalRecorded(e)) = recorded.event.unwrap().kind else {
        panic!()
    };
    assert_eq!(e.grader_model, "openai:gpt-4o");
    assert_eq!(e.sample_size, 3);
}

#[tokio::test]
async fn eval_import_records_junit_reports_and_refuses_bad_input() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    register(&app, dir.path(), "cli/junit", "v1").await;
    let import = "eval import --subject cli/junit --version v1";

    let argv = cmd(import)
        .words("--format junit")
        .arg(fixture("pytest-junit.xml"));
    assert_code(&gl(&app, "ci", argv).await, 0);
    let argv = cmd(import)
        .words("--format junit --suite unit --pass-rate-threshold 0.6")
        .arg(fixture("jest-junit.xml"));
    assert_code(&gl(&app, "ci", argv).await, 0);
    let s = state(&app, "cli/junit").await;
    // pytest: 4 passed of the 8 that ran, 10 test cases.
    assert_eq!(
        recorded_metric(&s, "v1", "pytest", "pass_rate"),
        (0.5, 1.0, Direction::HigherIsBetter, false)
    );
    assert_eq!(recorded_metric(&s, "v1", "pytest", "tests").0, 10.0);
    assert_eq!(
        recorded_metric(&s, "v1", "pytest", "failures"),
        (2.0, 10.0, Direction::LowerIsBetter, true)
    );
    assert_eq!(recorded_metric(&s, "v1", "pytest", "errors").0, 2.0);
    assert_eq!(recorded_metric(&s, "v1", "pytest", "skipped").0, 2.0);
    // jest: 4 of 6, against the given threshold, under the given name.
    let (rate, threshold, _, passed) = recorded_metric(&s, "v1", "unit", "pass_rate");
    assert!(close(rate, 4.0 / 6.0));
    assert_eq!((threshold, passed), (0.6, true));
    assert_eq!(recorded_metric(&s, "v1", "unit", "tests").0, 7.0);
    let recorded = entries_of(&app, "cli/junit", EventKind::EvalRecorded).await;
    let Some(Kind::EvalRecorded(e)) = recorded[0].event.clone().unwrap().kind else {
        panic!()
    };
    assert_eq!(e.eval_kind, EvalKind::Deterministic as i32);
    assert_eq!(e.sample_size, 10);

    // Bad input records nothing: a file in another format or an option that
    // does not apply is a usage error, a missing file a local failure.
    let head = app.get_head().await.sequence;
    for (words, file, code, needle) in [
        (
            "--format promptfoo",
            fixture("pytest-junit.xml"),
            2,
            "not a usable promptfoo report",
        ),
        (
            "--format junit",
            fixture("promptfoo-results.json"),
            2,
            "not a usable JUnit report",
        ),
        (
            "--format junit --split-by-provider",
            fixture("jest-junit.xml"),
            2,
            "--split-by-provider",
        ),
        (
            "--format junit --suite a/b",
            fixture("jest-junit.xml"),
            2,
            "suite",
        ),
        ("--format csv", fixture("jest-junit.xml"), 2, "--format"),
        (
            "--format junit",
            "/nonexistent/report.xml".into(),
            5,
            "/nonexistent/report.xml",
        ),
    ] {
        let out = gl(&app, "ci", cmd(import).words(words).arg(&file)).await;
        assert_code(&out, code);
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
    }
    assert_eq!(app.get_head().await.sequence, head);
}

/// A policy for `subject` in prod: suite regression with accuracy >= 0.85,
/// one approval, the deployer not the sole approver.
fn policy_toml(subject: &str) -> String {
    format!(
        r#"
subject = "{subject}"
environment = "prod"
max_evidence_age = "7d"
min_approvals = 1
deployer_not_sole_approver = true
block_on_open_incident_severity = "critical"

[[required_suites]]
suite = "regression"
thresholds = ["accuracy>=0.85"]
"#
    )
}

#[tokio::test]
async fn approvals_and_deployments_through_the_policy_gate() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let s = "cli/gated";
    let policy = write_file(dir.path(), "policy.toml", &policy_toml(s));
    let out = gl(&app, "alice", cmd("policy set --file").arg(&policy)).await;
    assert_code(&out, 0);
    assert!(stdout(&out).contains("set the policy of cli/gated for prod"));
    register(&app, dir.path(), s, "v1").await;
    register(&app, dir.path(), s, "v2").await;
    for (version, accuracy) in [("v1", "0.92"), ("v2", "0.80")] {
        let argv = cmd(&format!(
            "eval record --subject {s} --version {version} --suite regression --kind human \
             --metric accuracy={accuracy}>=0.85"
        ));
        assert_code(&gl(&app, "ci", argv).await, 0);
    }
    let v2_eval = app.get_head().await.sequence;
    let deploy = |version: &str| {
        cmd(&format!(
            "deploy --subject {s} --version {version} --env prod"
        ))
    };

    // v1 has its evidence but no approval yet: denied, every reason on
    // stderr, exit 4, nothing recorded.
    let head = app.get_head().await.sequence;
    let out = gl(&app, "release-bot", deploy("v1")).await;
    assert_code(&out, 4);
    let err = stderr(&out);
    assert!(err.contains("denied by the policy gate"), "{err}");
    assert!(err.contains("min_approvals: expected"), "{err}");
    assert!(err.contains("--override"), "{err}");
    assert!(!err.contains("metric_threshold"), "{err}");
    assert_eq!(app.get_head().await.sequence, head);

    // Approve v1 for prod (alice), reject it for staging (bob).
    let argv = cmd(&format!(
        "approve --subject {s} --version v1 --env prod --comment"
    ))
    .arg("evidence reviewed");
    let out = gl(&app, "alice", argv).await;
    assert_code(&out, 0);
    assert!(stdout(&out).contains("approved version v1 of cli/gated for prod"));
    let argv = cmd(&format!(
        "--output json reject --subject {s} --version v1 --env staging"
    ));
    let line = one_json(&gl(&app, "bob", argv).await);
    assert_eq!(line["actor"], "bob");
    assert_eq!(line["decision"], "rejected");
    let approvals = version_of(&state(&app, s).await, "v1").approvals.clone();
    assert_eq!(approvals.len(), 2);
    assert_eq!(
        (approvals[0].approver.as_str(), approvals[0].decision()),
        ("alice", Decision::Approve)
    );
    assert_eq!(approvals[0].environment, "prod");
    assert_eq!(
        (approvals[1].approver.as_str(), approvals[1].decision()),
        ("bob", Decision::Reject)
    );

    // Now the gate opens for release-bot.
    let out = gl(&app, "release-bot", deploy("v1")).await;
    assert_code(&out, 0);
    assert!(stdout(&out).contains("deployed version v1 of cli/gated to prod"));
    let live = state(&app, s).await;
    let prod = live
        .environments
        .iter()
        .find(|e| e.environment == "prod")
        .unwrap();
    assert_eq!(prod.live_version, "v1");

    // v2 fails its threshold and has no approval: every reason is printed,
    // with the evidence entries; JSON mode also answers on stdout.
    let head = app.get_head().await.sequence;
    let out = gl(&app, "release-bot", deploy("v2").words("--output json")).await;
    assert_code(&out, 4);
    let err = stderr(&out);
    assert!(err.contains("metric_threshold: expected"), "{err}");
    assert!(
        err.contains(&format!("(evidence: entries {v2_eval})")),
        "{err}"
    );
    assert!(err.contains("min_approvals: expected"), "{err}");
    let answer: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(answer["recorded"], false);
    let rules: Vec<&str> = answer["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["metric_threshold", "min_approvals"]);
    assert_eq!(app.get_head().await.sequence, head);

    // An override is recorded, and the ledger opens an incident with it.
    let argv = deploy("v2")
        .arg("--override")
        .arg("hotfix for a prompt injection");
    let out = gl(&app, "release-bot", argv).await;
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("OVER THE DENIED POLICY GATE"), "{text}");
    assert!(text.contains("the ledger opened incident"), "{text}");
    assert!(text.contains("policy-violation"), "{text}");
    assert_eq!(app.get_head().await.sequence, head + 2);
    let incident = entry(&app, head + 2).await;
    assert_eq!(incident.actor, "system");
    let Some(Kind::IncidentOpened(opened)) = incident.event.unwrap().kind else {
        panic!()
    };
    assert!(text.contains(&opened.incident_id), "{text}");
    assert_eq!(opened.related_sequence, head + 1);

    // An override where no policy applies overrides nothing: recorded as a
    // plain deployment, nothing derived.
    let argv = cmd(&format!(
        "--output json deploy --subject {s} --version v2 --env canary"
    ))
    .arg("--override")
    .arg("not needed");
    let line = one_json(&gl(&app, "release-bot", argv).await);
    assert_eq!(line["kind"], "deployment_recorded");
    assert_eq!(line["derived"], serde_json::json!([]));
}

#[tokio::test]
async fn deploy_override_lists_the_derived_incident_in_json() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let s = "cli/override";
    let policy = write_file(dir.path(), "policy.toml", &policy_toml(s));
    assert_code(
        &gl(&app, "alice", cmd("policy set --file").arg(&policy)).await,
        0,
    );
    register(&app, dir.path(), s, "v1").await;
    let argv = cmd(&format!(
        "--output json deploy --subject {s} --version v1 --env prod"
    ))
    .arg("--override")
    .arg("incident INC-7 needs this prompt live");
    let line = one_json(&gl(&app, "release-bot", argv).await);
    assert_eq!(line["override"], true);
    let derived = line["derived"].as_array().unwrap();
    assert_eq!(derived.len(), 1, "{line}");
    assert_eq!(derived[0]["kind"], "incident_opened");
    assert_eq!(derived[0]["actor"], "system");
    assert_eq!(derived[0]["category"], "policy-violation");
    assert_eq!(
        derived[0]["sequence"].as_u64().unwrap(),
        line["sequence"].as_u64().unwrap() + 1
    );
    let open = state(&app, s).await.open_incidents;
    assert_eq!(open.len(), 1);
    assert_eq!(derived[0]["incident_id"], open[0].incident_id);
}

#[tokio::test]
async fn incidents_open_resolve_and_list() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let s = "cli/incidents";
    register(&app, dir.path(), s, "v1").await;
    register(&app, dir.path(), s, "v2").await;
    let open = |words: &str| cmd(&format!("incident open --subject {s}")).words(words);

    // No --id: one is generated and printed.
    let argv = open("--output json --version v1 --env prod --severity high")
        .words("--category hallucination --description")
        .arg("Invented a 90-day refund policy.");
    let line = one_json(&gl(&app, "carol", argv).await);
    let id = line["incident_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("INC-") && id.len() == 16, "{id}");
    assert_eq!(line["kind"], "incident_opened");
    let argv = open("--severity low --category other --id INC-typo --description")
        .arg("Typo in a greeting.");
    let out = gl(&app, "carol", argv).await;
    assert_code(&out, 0);
    assert!(stdout(&out).contains("opened incident INC-typo on cli/incidents"));
    // Ids are unique: the server refuses a second INC-typo.
    let argv = open("--severity low --category other --id INC-typo --description again");
    let out = gl(&app, "carol", argv).await;
    assert_code(&out, 4);
    assert!(stderr(&out).contains("already used"), "{}", stderr(&out));

    // list: open ones by default, filtered by severity, as a table or JSON.
    let out = gl(&app, "dave", cmd(&format!("incident list --subject {s}"))).await;
    assert_code(&out, 0);
    let table = stdout(&out);
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains(&id) && table.contains("INC-typo"), "{table}");
    assert!(
        table.contains("hallucination") && table.contains("open"),
        "{table}"
    );
    let argv = cmd(&format!(
        "--output json incident list --subject {s} --min-severity medium"
    ));
    let lines = json_lines(&gl(&app, "dave", argv).await);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["incident_id"], id);
    assert_eq!(lines[0]["severity"], "high");
    assert_eq!(lines[0]["open"], true);
    assert_eq!(lines[0]["opened_by"], "carol");

    // Resolve it, fixed in v2.
    let argv = cmd(&format!(
        "incident resolve --id {id} --subject {s} --fixing-version v2"
    ))
    .arg("--resolution")
    .arg("Refund policy added to the index.");
    let out = gl(&app, "carol", argv).await;
    assert_code(&out, 0);
    assert!(stdout(&out).contains(&format!("resolved incident {id}")));
    let argv = cmd("--output json incident list --status resolved");
    let lines = json_lines(&gl(&app, "dave", argv).await);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["incident_id"], id);
    assert_eq!(lines[0]["open"], false);
    assert_eq!(lines[0]["fixing_version"], "v2");
    assert_eq!(lines[0]["resolution"], "Refund policy added to the index.");
    let open_now = json_lines(&gl(&app, "dave", cmd("--output json incident list")).await);
    assert_eq!(open_now.len(), 1);
    assert_eq!(open_now[0]["incident_id"], "INC-typo");
    let all = cmd("--output json incident list --status all");
    assert_eq!(json_lines(&gl(&app, "dave", all).await).len(), 2);
    // Resolving twice is refused by the server.
    let argv = cmd(&format!(
        "incident resolve --id {id} --subject {s} --resolution again"
    ));
    let out = gl(&app, "carol", argv).await;
    assert_code(&out, 4);
    assert!(
        stderr(&out).contains("already resolved"),
        "{}",
        stderr(&out)
    );
    // A severity that does not exist is a usage error.
    let out = gl(
        &app,
        "carol",
        open("--severity urgent --category other --description x"),
    )
    .await;
    assert_code(&out, 2);
    assert!(stderr(&out).contains("--severity"), "{}", stderr(&out));
}

#[tokio::test]
async fn feedback_record() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let s = "cli/feedback";
    register(&app, dir.path(), s, "v1").await;
    let feedback = |start: &str, total: u64| {
        cmd(&format!(
            "feedback record --subject {s} --version v1 --env prod --window-start {start} \
             --window-end 2026-03-03T01:00:00Z --up 120 --down 14 --rewrites 9 --total {total}"
        ))
    };
    let argv = feedback("2026-03-03T00:00:00Z", 400).words("--output json");
    let line = one_json(&gl(&app, "ci", argv).await);
    assert_eq!(line["kind"], "feedback_recorded");
    let recorded = entry(&app, line["sequence"].as_u64().unwrap()).await;
    let Some(Kind::FeedbackRecorded(f)) = recorded.event.unwrap().kind else {
        panic!()
    };
    assert_eq!(
        (f.thumbs_up, f.thumbs_down, f.rewrites, f.total),
        (120, 14, 9, 400)
    );
    assert_eq!(f.window_start.unwrap().seconds, 1_772_496_000);
    assert_eq!(f.window_end.unwrap().seconds, 1_772_499_600);
    assert_eq!(f.environment, "prod");

    let head = app.get_head().await.sequence;
    // Not a time: usage error. Fewer interactions than votes: the server refuses.
    let out = gl(&app, "ci", feedback("yesterday", 400)).await;
    assert_code(&out, 2);
    assert!(stderr(&out).contains("--window-start"), "{}", stderr(&out));
    let out = gl(&app, "ci", feedback("2026-03-03T00:00:00Z", 100)).await;
    assert_code(&out, 4);
    assert!(stderr(&out).contains("total"), "{}", stderr(&out));
    assert_eq!(app.get_head().await.sequence, head);
}

#[tokio::test]
async fn policy_set_and_show() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let s = "cli/policy";
    let toml = format!(
        r#"
subject = "{s}"
environment = "prod"
max_evidence_age = "7d"
min_approvals = 2
deployer_not_sole_approver = true
block_on_open_incident_severity = "high"
max_eval_score_drop = 0.05
max_negative_feedback_rate_rise = 0.1

[[required_suites]]
suite = "regression"
thresholds = ["accuracy>=0.85", "toxicity<=0.05"]

[[required_suites]]
suite = "pytest"
"#
    );
    let file = write_file(dir.path(), "policy.toml", &toml);
    let set = |file: &str| cmd("--output json policy set --file").arg(file);
    let line = one_json(&gl(&app, "alice", set(&file)).await);
    assert_eq!(line["kind"], "policy_set");
    let policy_sequence = line["sequence"].as_u64().unwrap();
    let Some(Kind::PolicySet(p)) = entry(&app, policy_sequence).await.event.unwrap().kind else {
        panic!()
    };
    assert_eq!(p.max_evidence_age_seconds, 7 * 86_400);
    assert_eq!(p.min_approvals, 2);
    assert!(p.deployer_not_sole_approver && !p.allow_self_approval);
    assert_eq!(p.block_on_open_incident_severity(), Severity::High);
    assert_eq!(p.required_suites[0].thresholds[1].name, "toxicity");
    assert_eq!(
        p.required_suites[0].thresholds[1].direction(),
        Direction::LowerIsBetter
    );
    assert!(p.required_suites[1].thresholds.is_empty());
    assert_eq!(p.max_negative_feedback_rate_rise, 0.1);

    // show: the TOML that `policy set` reads, with where it comes from.
    let out = gl(
        &app,
        "dave",
        cmd(&format!("policy show --subject {s} --env prod")),
    )
    .await;
    assert_code(&out, 0);
    let shown = stdout(&out);
    assert!(
        shown.contains(&format!("entry {policy_sequence}")),
        "{shown}"
    );
    assert!(shown.contains("max_evidence_age = \"1w\""), "{shown}");
    assert!(shown.contains("\"toxicity<=0.05\""), "{shown}");
    // ... so it can be set again as it is: the same policy.
    let again = write_file(dir.path(), "shown.toml", &shown);
    let line = one_json(&gl(&app, "alice", set(&again)).await);
    let sequence = line["sequence"].as_u64().unwrap();
    let Some(Kind::PolicySet(p2)) = entry(&app, sequence).await.event.unwrap().kind else {
        panic!()
    };
    assert_eq!(p2, p);

    // The default policy ("*") applies where the subject has none; flags
    // replace the file's subject and environment.
    let argv = cmd("policy set --subject * --env staging --file").arg(&file);
    assert_code(&gl(&app, "alice", argv).await, 0);
    let argv = cmd(&format!(
        "--output json policy show --subject {s} --env staging"
    ));
    let shown = one_json(&gl(&app, "dave", argv).await);
    assert_eq!(shown["policy_subject"], "*");
    assert_eq!(shown["policy"]["min_approvals"], 2);
    assert_eq!(shown["policy"]["required_suites"][0]["suite"], "regression");
    let out = gl(
        &app,
        "dave",
        cmd(&format!("policy show --subject {s} --env dev")),
    )
    .await;
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("no policy in force"),
        "{}",
        stdout(&out)
    );

    // A typo, a bad threshold, a bad age, no subject: usage errors naming
    // the problem, nothing recorded.
    let head = app.get_head().await.sequence;
    let header = "subject = \"cli/policy\"\nenvironment = \"prod\"\n";
    for (text, needle) in [
        (format!("{header}min_aprovals = 1\n"), "min_aprovals"),
        (
            format!(
                "{header}[[required_suites]]\nsuite = \"r\"\nthresholds = [\"accuracy > 0.85\"]\n"
            ),
            "NAME>=THRESHOLD",
        ),
        (
            format!("{header}max_evidence_age = \"a week\"\n"),
            "max_evidence_age",
        ),
        ("environment = \"prod\"\n".to_owned(), "subject is required"),
    ] {
        let bad = write_file(dir.path(), "bad.toml", &text);
        let out = gl(&app, "alice", cmd("policy set --file").arg(&bad)).await;
        assert_code(&out, 2);
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
    }
    assert_eq!(app.get_head().await.sequence, head);
}

#[tokio::test]
async fn in_ci_the_user_who_started_the_run_is_the_author_and_may_not_approve() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let s = "cli/ci-author";
    let prompt = write_file(dir.path(), "prompt.txt", "You are alice's prompt.");
    let mut vars = github_env("1");
    vars.push(("GITHUB_ACTOR", "alice".into()));
    let register = |version: &str| {
        cmd(&format!(
            "version register --subject {s} --kind prompt --version {version}"
        ))
        .arg("--file")
        .arg(&prompt)
    };
    assert_code(&gl_env(&app, "ci", &vars, register("v1")).await, 0);
    let author = |state: &SubjectState, version: &str| {
        let v = version_of(state, version);
        (v.author.clone(), v.registered_by.clone())
    };
    let recorded = state(&app, s).await;
    assert_eq!(author(&recorded, "v1"), ("alice".into(), "ci".into()));

    // alice pushed the change the CI principal registered: she may not
    // approve it, though she holds the approver role; bob may.
    let approve = |version: &str| {
        cmd(&format!(
            "approve --subject {s} --version {version} --env prod --comment ok"
        ))
    };
    let out = gl(&app, "alice", approve("v1")).await;
    assert_code(&out, 4);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("alice authored version v1") && stderr.contains("separation of duties"),
        "{stderr}"
    );
    assert_code(&gl(&app, "bob", approve("v1")).await, 0);

    // --author wins over the CI variable.
    let explicit = register("v2").arg("--author").arg("carol");
    assert_code(&gl_env(&app, "ci", &vars, explicit).await, 0);
    let recorded = state(&app, s).await;
    assert_eq!(author(&recorded, "v2"), ("carol".into(), "ci".into()));
    assert_code(&gl(&app, "alice", approve("v2")).await, 0);
}

#[tokio::test]
async fn ci_metadata_is_recorded_and_a_re_run_records_nothing_new() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let s = "cli/ci";
    let prompt = write_file(dir.path(), "prompt.txt", "You are the CI prompt.");
    let register = cmd(&format!(
        "version register --subject {s} --kind prompt --version v1"
    ))
    .arg("--file")
    .arg(&prompt);
    assert_code(
        &gl_env(&app, "ci", &github_env("1"), register.clone()).await,
        0,
    );
    let first = entries_of(&app, s, EventKind::VersionRegistered).await;
    assert_eq!(first.len(), 1);
    let key = &first[0].idempotency_key;
    assert!(key.starts_with("ci:github-actions:"), "{key}");
    let Some(Kind::VersionRegistered(v)) = first[0].event.clone().unwrap().kind else {
        panic!()
    };
    let source = v.source.unwrap();
    assert_eq!(source.commit, "ffac537e6cbbf934b08745a378932722df287a53");
    assert_eq!(source.branch, "main");
    assert_eq!(source.run_url, RUN_URL);
    assert_eq!(source.repository, "github.com/acme/support-bot");
    assert_eq!(source.pipeline_id, "1658821493");
    assert_eq!(source.system, "github-actions");

    let eval = cmd(&format!(
        "eval record --subject {s} --version v1 --suite regression --kind model-graded \
         --metric accuracy=0.92>=0.85"
    ));
    assert_code(&gl_env(&app, "ci", &github_env("1"), eval.clone()).await, 0);
    let import = cmd(&format!(
        "eval import --format junit --subject {s} --version v1"
    ))
    .arg(fixture("pytest-junit.xml"));
    assert_code(
        &gl_env(&app, "ci", &github_env("1"), import.clone()).await,
        0,
    );
    let incident = cmd(&format!(
        "--output json incident open --subject {s} --severity low --category drift \
         --description longer-answers"
    ));
    let opened = one_json(&gl_env(&app, "ci", &github_env("1"), incident.clone()).await);
    let evals = entries_of(&app, s, EventKind::EvalRecorded).await;
    assert_eq!(evals.len(), 2);
    for e in &evals {
        let Some(Kind::EvalRecorded(eval)) = e.event.clone().unwrap().kind else {
            panic!()
        };
        assert_eq!(eval.source.unwrap().run_url, RUN_URL);
        assert!(e.idempotency_key.starts_with("ci:github-actions:"));
    }

    // The job re-run (attempt 2): every command answers with the original
    // entry, exit 0; the log does not grow.
    let head = app.get_head().await;
    let out = gl_env(&app, "ci", &github_env("2"), register).await;
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("already recorded as entry {}", first[0].sequence)),
        "{text}"
    );
    let out = gl_env(&app, "ci", &github_env("2"), eval.clone()).await;
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("already recorded as entry {}", evals[0].sequence)),
        "{text}"
    );
    let json_import = import.words("--output json");
    let line = one_json(&gl_env(&app, "ci", &github_env("2"), json_import).await);
    assert_eq!(line["deduplicated"], true);
    assert_eq!(line["sequence"].as_u64().unwrap(), evals[1].sequence);
    let again = one_json(&gl_env(&app, "ci", &github_env("2"), incident).await);
    assert_eq!(again["incident_id"], opened["incident_id"]);
    assert_eq!(again["sequence"], opened["sequence"]);
    assert_eq!(again["deduplicated"], true);
    assert_eq!(app.get_head().await, head);

    // Another step of the same run, or another run, is new evidence.
    let other_step = eval.clone().words("--step eval-nightly");
    assert_code(&gl_env(&app, "ci", &github_env("1"), other_step).await, 0);
    let mut next_run = github_env("1");
    next_run.retain(|(k, _)| *k != "GITHUB_RUN_ID");
    next_run.push(("GITHUB_RUN_ID", "1658821999".into()));
    let out = gl_env(&app, "ci", &next_run, eval).await;
    assert_code(&out, 0);
    assert!(
        !stdout(&out).contains("already recorded"),
        "{}",
        stdout(&out)
    );
    assert_eq!(app.get_head().await.sequence, head.sequence + 2);

    // Flags replace detected source fields.
    let argv = cmd(&format!(
        "--output json eval record --subject {s} --version v1 --suite manual --kind human \
         --metric helpful=4.5>=4 --commit abcdef12 --branch release/1.2"
    ));
    let line = one_json(&gl_env(&app, "ci", &github_env("1"), argv).await);
    let recorded = entry(&app, line["sequence"].as_u64().unwrap()).await;
    let Some(Kind::EvalRecorded(e)) = recorded.event.unwrap().kind else {
        panic!()
    };
    let source = e.source.unwrap();
    assert_eq!(
        (source.commit.as_str(), source.branch.as_str()),
        ("abcdef12", "release/1.2")
    );
    assert_eq!(source.run_url, RUN_URL);
}

#[tokio::test]
async fn an_explicit_idempotency_key_makes_a_retry_safe_outside_ci() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let s = "cli/keyed";
    register(&app, dir.path(), s, "v1").await;
    let approve = |env: &str, key: &str| {
        cmd(&format!(
            "--output json approve --subject {s} --version v1 --env {env} --idempotency-key"
        ))
        .arg(key)
    };
    let first = one_json(&gl(&app, "alice", approve("prod", "approve-v1-prod")).await);
    assert_eq!(first["idempotency_key"], "approve-v1-prod");
    assert_eq!(first["deduplicated"], false);
    let again = one_json(&gl(&app, "alice", approve("prod", "approve-v1-prod")).await);
    assert_eq!(again["deduplicated"], true);
    assert_eq!(again["sequence"], first["sequence"]);
    let head = app.get_head().await.sequence;
    // The same key for another event is refused by the server.
    let out = gl(&app, "alice", approve("staging", "approve-v1-prod")).await;
    assert_code(&out, 4);
    assert!(stderr(&out).contains("approve-v1-prod"), "{}", stderr(&out));
    // A key the server could never accept is a usage error.
    let out = gl(&app, "alice", approve("staging", "has space")).await;
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("--idempotency-key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(app.get_head().await.sequence, head);

    // An import of several suites keys each one: KEY:<suite>.
    let import = cmd(&format!(
        "--output json eval import --format promptfoo --split-by-provider --subject {s} \
         --version v1 --idempotency-key import-7"
    ))
    .arg(fixture("promptfoo-results.json"));
    let lines = json_lines(&gl(&app, "ci", import.clone()).await);
    let keys: Vec<&str> = lines
        .iter()
        .map(|l| l["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "import-7:promptfoo.anthropic:messages:claude-haiku-4-5",
            "import-7:promptfoo.mini"
        ]
    );
    let head = app.get_head().await.sequence;
    let again = json_lines(&gl(&app, "ci", import).await);
    assert!(again.iter().all(|l| l["deduplicated"] == true), "{again:?}");
    assert_eq!(again[0]["sequence"], lines[0]["sequence"]);
    assert_eq!(app.get_head().await.sequence, head);

    // An incident without --id: a retry with the key opens the same one
    // (the id comes from the key and the content), a new key a new one.
    let open = |key: &str| {
        cmd(&format!(
            "--output json incident open --subject {s} --severity low --category other \
             --description retried --idempotency-key {key}"
        ))
    };
    let first = one_json(&gl(&app, "carol", open("inc-1")).await);
    let again = one_json(&gl(&app, "carol", open("inc-1")).await);
    assert_eq!(again["deduplicated"], true, "{again}");
    assert_eq!(again["incident_id"], first["incident_id"]);
    assert_eq!(again["sequence"], first["sequence"]);
    let other = one_json(&gl(&app, "carol", open("inc-2")).await);
    assert_eq!(other["deduplicated"], false);
    assert_ne!(other["incident_id"], first["incident_id"]);
}

#[tokio::test]
async fn exit_codes_for_unreachable_and_unauthenticated_servers() {
    let app = TestApp::spawn().await;
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = govledger();
    command
        .args(["--addr", &format!("127.0.0.1:{port}"), "--token", "glt_x"])
        .args([
            "approve",
            "--subject",
            "cli/x",
            "--version",
            "v1",
            "--env",
            "prod",
        ]);
    let out = run(command).await;
    assert_code(&out, 3);
    let err = stderr(&out);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");

    // A token the server does not know: refused, exit 4, nothing recorded.
    let head = app.get_head().await.sequence;
    let mut command = govledger();
    command
        .args([
            "--addr",
            &app.addr.to_string(),
            "--token",
            "glt_0000000000000000_00",
        ])
        .args([
            "approve",
            "--subject",
            "cli/x",
            "--version",
            "v1",
            "--env",
            "prod",
        ]);
    let out = run(command).await;
    assert_code(&out, 4);
    assert_eq!(app.get_head().await.sequence, head);
    // GOVLEDGER_ADDR and GOVLEDGER_TOKEN from the environment work as the flags do.
    let mut command = govledger();
    command
        .env("GOVLEDGER_ADDR", app.addr.to_string())
        .env("GOVLEDGER_TOKEN", app.token("dave").await)
        .args(["--output", "json", "incident", "list"]);
    let out = run(command).await;
    assert!(json_lines(&out).is_empty());
}

/// A re-run job whose model-graded suites scored partly as before: the
/// unchanged suite is recognised, the changed one is recorded as new
/// evidence, and the command succeeds (the ledger replays a batch only as a
/// whole, so the CLI falls back to one append per suite).
#[tokio::test]
async fn a_re_run_import_with_one_changed_suite_records_only_that_suite() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    register(&app, dir.path(), "cli/pf-rerun", "v1").await;
    let original = std::fs::read_to_string(fixture("promptfoo-results.json")).unwrap();
    let mut results: Value = serde_json::from_str(&original).unwrap();
    let import = |file: &Path| {
        cmd("--output json eval import --format promptfoo --subject cli/pf-rerun --version v1")
            .words("--suite pf --split-by-provider")
            .arg(file.to_str().unwrap())
    };
    let first_file = dir.path().join("attempt-1.json");
    std::fs::write(&first_file, &original).unwrap();
    let first = json_lines(&gl_env(&app, "ci", &github_env("1"), import(&first_file)).await);
    assert_eq!(first.len(), 2, "{first:?}");

    // Attempt 2: the grader scored claude-haiku's first answer's tone differently.
    let answer = &mut results["results"]["results"][3];
    assert_eq!(
        answer["provider"]["id"],
        "anthropic:messages:claude-haiku-4-5"
    );
    answer["namedScores"]["tone"] = json!(0.75);
    let second_file = dir.path().join("attempt-2.json");
    std::fs::write(&second_file, results.to_string()).unwrap();
    let head = app.get_head().await.sequence;
    let second = json_lines(&gl_env(&app, "ci", &github_env("2"), import(&second_file)).await);
    assert_eq!(second.len(), 2, "{second:?}");
    let by_suite = |lines: &[Value], suite: &str| {
        lines
            .iter()
            .find(|l| l["suite"] == suite)
            .unwrap_or_else(|| panic!("no suite {suite} in {lines:?}"))
            .clone()
    };
    let haiku = "pf.anthropic:messages:claude-haiku-4-5";
    // mini: the same evidence, answered with its original entry.
    assert_eq!(by_suite(&second, "pf.mini")["deduplicated"], true);
    assert_eq!(
        by_suite(&second, "pf.mini")["sequence"],
        by_suite(&first, "pf.mini")["sequence"]
    );
    // haiku: new evidence, one new entry, and nothing else.
    assert_eq!(by_suite(&second, haiku)["deduplicated"], false);
    assert_eq!(
        by_suite(&second, haiku)["sequence"].as_u64(),
        Some(head + 1)
    );
    assert_eq!(app.get_head().await.sequence, head + 1);
}

/// Flags win over the environment, also for the token's two sources; an
/// empty variable (an unset secret mapped into a CI job) counts as unset.
#[tokio::test]
async fn token_flags_win_over_the_environment() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_file(dir.path(), "token", &app.token("dave").await);
    let whoami = |env: &[(&str, &str)], flags: &[&str]| {
        let mut command = govledger();
        command.args(["--addr", &app.addr.to_string(), "--output", "json"]);
        for (name, value) in env {
            command.env(name, value);
        }
        command.args(flags).args(["principal", "list"]);
        command
    };
    let wrong = "glt_0000000000000000_00";
    /// Variables, flags, the expected exit code.
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, i32);
    let cases: Vec<Case> = vec![
        // The flag file beats a wrong token in the environment.
        (
            vec![("GOVLEDGER_TOKEN", wrong)],
            vec!["--token-file", &token_file],
            0,
        ),
        // An empty GOVLEDGER_TOKEN falls through to GOVLEDGER_TOKEN_FILE.
        (
            vec![
                ("GOVLEDGER_TOKEN", ""),
                ("GOVLEDGER_TOKEN_FILE", &token_file),
            ],
            vec![],
            0,
        ),
        // GOVLEDGER_TOKEN beats GOVLEDGER_TOKEN_FILE.
        (
            vec![
                ("GOVLEDGER_TOKEN", wrong),
                ("GOVLEDGER_TOKEN_FILE", &token_file),
            ],
            vec![],
            4,
        ),
        // The --token flag beats a good token file in the environment.
        (
            vec![("GOVLEDGER_TOKEN_FILE", &token_file)],
            vec!["--token", wrong],
            4,
        ),
        // Both flags at once are a usage error.
        (
            vec![],
            vec!["--token", wrong, "--token-file", &token_file],
            2,
        ),
    ];
    for (env, flags, code) in cases {
        let out = run(whoami(&env, &flags)).await;
        assert_eq!(
            out.status.code(),
            Some(code),
            "env {env:?} flags {flags:?}: {}",
            stderr(&out)
        );
    }
}

/// A malformed address, or TLS options with a plain http:// address, are
/// usage errors (2), not an unreachable server (3).
#[tokio::test]
async fn contradictory_connection_options_are_usage_errors() {
    for flags in [
        vec!["--addr", "http://exa mple:1"],
        vec!["--addr", "ftp://127.0.0.1:1"],
        vec![
            "--addr",
            "http://127.0.0.1:1",
            "--tls-client-cert",
            "c.pem",
            "--tls-client-key",
            "k.pem",
        ],
        vec!["--addr", "http://127.0.0.1:1", "--tls-ca", "ca.pem"],
        vec![
            "--addr",
            "http://127.0.0.1:1",
            "--tls-domain",
            "ledger.example.com",
        ],
    ] {
        let mut command = govledger();
        command.args(&flags).args(["incident", "list"]);
        let out = run(command).await;
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("addr"), "{flags:?}: {}", stderr(&out));
    }
}

/// A red-team run has more assertion types than the ledger's 64 metrics per
/// result: refused with the flag that helps (exit 2), recorded with it; the
/// caller's --grader is recorded; an impossible pass-rate threshold is a
/// usage error.
#[tokio::test]
async fn promptfoo_import_options_for_large_red_team_runs() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    register(&app, dir.path(), "cli/redteam", "v1").await;
    let mut results: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("promptfoo-results.json")).unwrap())
            .unwrap();
    let components = results["results"]["results"][0]["gradingResult"]["componentResults"]
        .as_array_mut()
        .unwrap();
    for plugin in 0..70 {
        components.push(json!({
            "pass": true,
            "score": 1,
            "reason": "Assertion passed",
            "assertion": {"type": format!("promptfoo:redteam:plugin-{plugin}")}
        }));
    }
    let file = write_file(dir.path(), "redteam.json", &results.to_string());
    let import = |flags: &str| {
        cmd("--output json eval import --format promptfoo --subject cli/redteam --version v1")
            .words(flags)
            .arg(&file)
    };
    let head = app.get_head().await.sequence;
    let out = gl(&app, "ci", import("")).await;
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("--no-assertion-metrics"),
        "{}",
        stderr(&out)
    );
    let out = gl(&app, "ci", import("--pass-rate-threshold 1.5")).await;
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("--pass-rate-threshold"),
        "{}",
        stderr(&out)
    );
    assert_eq!(app.get_head().await.sequence, head);

    let line = one_json(
        &gl(
            &app,
            "ci",
            import("--no-assertion-metrics --grader openai:o3-judge"),
        )
        .await,
    );
    let recorded = entry(&app, line["sequence"].as_u64().unwrap()).await;
    let Some(Kind::EvalRecorded(e)) = recorded.event.unwrap().kind else {
        panic!()
    };
    assert_eq!(e.grader_model, "openai:o3-judge");
    assert!(e.metrics.iter().any(|m| m.name == "metric:tone"));
    assert!(
        e.metrics.iter().all(|m| !m.name.starts_with("assert:")),
        "{:?}",
        e.metrics
    );
}

/// `version register --exists-ok`: a pipeline that runs again for an
/// unchanged prompt succeeds without recording anything; the same label
/// with other content is still refused.
#[tokio::test]
async fn version_register_exists_ok_accepts_only_the_same_content() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let same = write_file(dir.path(), "prompt.txt", "You are the triage assistant.");
    let other = write_file(dir.path(), "other.txt", "You are someone else.");
    let register = |file: &str, flags: &str| {
        cmd("version register --subject cli/exists --kind prompt --version v1")
            .words(flags)
            .arg("--file")
            .arg(file)
    };
    let first = one_json(&gl(&app, "ci", register(&same, "--output json")).await);
    let head = app.get_head().await.sequence;

    // Without the flag, a second registration is refused.
    assert_code(&gl(&app, "ci", register(&same, "")).await, 4);
    // With it: success, the original entry, nothing new.
    let again = gl(&app, "ci", register(&same, "--exists-ok")).await;
    assert_code(&again, 0);
    assert!(
        stdout(&again).contains(&format!("already recorded as entry {}", first["sequence"])),
        "{}",
        stdout(&again)
    );
    let again = one_json(&gl(&app, "ci", register(&same, "--exists-ok --output json")).await);
    assert_eq!(again["deduplicated"], true);
    assert_eq!(again["sequence"], first["sequence"]);
    assert_eq!(again["content_digest"], first["content_digest"]);
    // Other content under the same label: refused, and said why.
    let clash = gl(&app, "ci", register(&other, "--exists-ok")).await;
    assert_code(&clash, 4);
    assert!(
        stderr(&clash).contains("other content"),
        "{}",
        stderr(&clash)
    );
    assert_eq!(app.get_head().await.sequence, head);
}
