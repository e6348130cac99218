//! The auditors' commands of the real binary (`verify`, `gate`, `log`,
//! `state`, `history`) against a real in-process server: their answers are
//! compared with what the server holds, and their exit codes with the
//! README's.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command as StdCommand, Stdio},
    time::{Duration, Instant},
};

use assert_cmd::Command;
use govledger::{
    connect::{Authed, Bearer},
    proto::v1::{
        CheckGateRequest, DeploymentRecorded, Entry, EvalRecorded, EventKind, GateDecision,
        ReadEntriesRequest, governance_client::GovernanceClient,
    },
};
use serde_json::Value;

use crate::{
    cli::govledger,
    cli_support::{assert_code, hex, json_lines, json_object, leaky_vars, run, stderr, stdout},
    helpers::*,
};

/// The binary talking to `app` with `principal`'s token.
async fn cli(app: &TestApp, principal: &str) -> Command {
    let mut cmd = govledger();
    cmd.args(["--addr", &app.addr.to_string()])
        .args(["--token", &app.token(principal).await]);
    cmd
}

/// An entry's recorded_at as RFC 3339 with every digit.
fn rfc3339(entry: &Entry) -> String {
    let t = entry.recorded_at.as_ref().expect("recorded_at");
    chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32)
        .expect("a valid time")
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

async fn governance(app: &TestApp, principal: &str) -> GovernanceClient<Authed> {
    GovernanceClient::with_interceptor(
        channel(app.addr).await,
        Bearer::new(Some(&app.token(principal).await)).unwrap(),
    )
}

async fn check_gate(app: &TestApp, subject: &str, deployer: &str) -> GateDecision {
    governance(app, TESTER)
        .await
        .check_gate(CheckGateRequest {
            subject: subject.into(),
            version: V.into(),
            environment: "production".into(),
            deployer: deployer.into(),
            as_of: None,
        })
        .await
        .expect("CheckGate")
        .into_inner()
}

// ---- gate -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_exits_zero_on_allow_and_one_on_deny_printing_every_reason() {
    let app = TestApp::spawn().await;
    let s = "gate/triage-prompt";
    app.register(s).await;
    app.append_event(policy(s)).await;
    let failed = app
        .append_event(EvalRecorded {
            metrics: vec![metric("accuracy", 0.80, 0.85)],
            ..eval(s)
        })
        .await;
    let gate = |principal: &'static str| {
        let app = &app;
        async move {
            let mut cmd = cli(app, principal).await;
            cmd.args([
                "gate",
                "--subject",
                s,
                "--version",
                V,
                "--env",
                "production",
            ]);
            cmd
        }
    };

    // Denied: a failed required metric (with its evidence) and no approval.
    let server = check_gate(&app, s, "bob").await;
    assert!(!server.allow);
    assert!(server.reasons.len() >= 2, "{server:?}");
    let mut cmd = gate("ci").await;
    cmd.args(["--deployer", "bob"]);
    let denied = run(cmd).await;
    assert_code(&denied, 1);
    let text = stdout(&denied);
    assert!(text.starts_with("DENY "), "{text}");
    for reason in &server.reasons {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{}:", reason.rule)))
            .unwrap_or_else(|| panic!("no line for rule {}:\n{text}", reason.rule));
        assert!(line.contains(&reason.expected), "{line}");
        assert!(line.contains(&reason.actual), "{line}");
        for sequence in &reason.evidence {
            assert!(line.contains(&sequence.to_string()), "{line}");
        }
    }
    let threshold = server
        .reasons
        .iter()
        .find(|r| r.rule == "metric_threshold")
        .expect("0.80 < 0.85");
    assert_eq!(threshold.evidence, vec![failed.sequence]);

    let mut cmd = gate("ci").await;
    cmd.args(["--deployer", "bob", "--output", "json"]);
    let denied = run(cmd).await;
    assert_code(&denied, 1);
    let answer = json_object(&denied);
    assert_eq!(answer["allow"], false);
    assert_eq!(answer["decision"], "deny");
    assert_eq!(answer["policy_sequence"], server.policy_sequence);
    let reasons = answer["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), server.reasons.len());
    for (printed, reason) in reasons.iter().zip(&server.reasons) {
        assert_eq!(printed["rule"], reason.rule.as_str());
        assert_eq!(printed["expected"], reason.expected.as_str());
        assert_eq!(printed["actual"], reason.actual.as_str());
        let evidence: Vec<u64> = printed["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(evidence, reason.evidence);
    }

    // Passing evidence and an approval by tester: allowed when bob deploys.
    app.append_event(eval(s)).await;
    let approved = app.append_event(approval(s)).await;
    assert!(check_gate(&app, s, "bob").await.allow);
    let mut cmd = gate("ci").await;
    cmd.args(["--deployer", "bob"]);
    let allowed = run(cmd).await;
    assert_code(&allowed, 0);
    assert!(
        stdout(&allowed).starts_with("ALLOW "),
        "{}",
        stdout(&allowed)
    );
    let mut cmd = gate("ci").await;
    cmd.args(["--deployer", "bob", "--output", "json"]);
    let allowed = run(cmd).await;
    assert_code(&allowed, 0);
    let answer = json_object(&allowed);
    assert_eq!(answer["allow"], true);
    assert_eq!(answer["reasons"].as_array().unwrap().len(), 0);

    // The deployer defaults to the caller: tester approved, so tester may not deploy alone.
    let denied = run(gate(TESTER).await).await;
    assert_code(&denied, 1);
    assert!(
        stdout(&denied).contains("deployer_not_sole_approver"),
        "{}",
        stdout(&denied)
    );

    // As of the entry before the approval, the gate denied.
    for as_of in [
        vec!["--as-of".to_owned(), (approved.sequence - 1).to_string()],
        vec![
            "--as-of-sequence".to_owned(),
            (approved.sequence - 1).to_string(),
        ],
    ] {
        let mut cmd = gate("ci").await;
        cmd.args(["--deployer", "bob", "--output", "json"])
            .args(&as_of);
        let then = run(cmd).await;
        assert_code(&then, 1);
        let answer = json_object(&then);
        assert_eq!(answer["as_of_sequence"], approved.sequence - 1);
        assert!(
            answer["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["rule"] == "min_approvals"),
            "{answer}"
        );
    }
}

// ---- log ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_prints_what_the_server_holds_for_every_filter() {
    let app = TestApp::spawn().await;
    app.append_events(lifecycle("log/a", "v1", "staging")).await;
    let b = app
        .append_batch_as("bob", batch(lifecycle("log/b", "v1", "staging")))
        .await
        .expect("bob's batch")
        .entries;
    let carol = app
        .append_as("carol", req(numbered("log/a", 3)))
        .await
        .expect("carol's version")
        .entry
        .unwrap();
    assert!(
        ts(&carol) > ts(&b[0]),
        "carol's entry is recorded after bob's batch"
    );
    let (since, until) = (rfc3339(&b[0]), rfc3339(&carol));

    let cases: Vec<(Vec<&str>, ReadEntriesRequest)> = vec![
        (vec![], ReadEntriesRequest::default()),
        (
            vec!["--subject", "log/a"],
            ReadEntriesRequest {
                subject: "log/a".into(),
                ..Default::default()
            },
        ),
        (
            vec!["--kind", "eval-recorded"],
            ReadEntriesRequest {
                kind: EventKind::EvalRecorded as i32,
                ..Default::default()
            },
        ),
        (
            vec!["--kind", "approval_recorded", "--subject", "log/b"],
            ReadEntriesRequest {
                kind: EventKind::ApprovalRecorded as i32,
                subject: "log/b".into(),
                ..Default::default()
            },
        ),
        (
            vec!["--actor", "bob"],
            ReadEntriesRequest {
                actor: "bob".into(),
                ..Default::default()
            },
        ),
        (
            vec!["--from", "5", "--limit", "3"],
            ReadEntriesRequest {
                from_sequence: 5,
                limit: 3,
                ..Default::default()
            },
        ),
        (
            vec!["--since", &since, "--until", &until],
            ReadEntriesRequest {
                since: b[0].recorded_at,
                until: carol.recorded_at,
                ..Default::default()
            },
        ),
    ];
    for (args, request) in cases {
        let expected = app.read_entries(request).await.expect("ReadEntries");
        assert!(!expected.is_empty(), "{args:?} matches something");

        let mut cmd = cli(&app, "dave").await;
        cmd.arg("log").args(&args).args(["--output", "json"]);
        let output = run(cmd).await;
        assert_code(&output, 0);
        let lines = json_lines(&output);
        let printed: Vec<u64> = lines
            .iter()
            .map(|l| l["sequence"].as_u64().unwrap())
            .collect();
        assert_eq!(printed, seqs(&expected), "log {args:?}");
        for (line, entry) in lines.iter().zip(&expected) {
            assert_eq!(line["hash"], hex(&entry.hash), "{line}");
            assert_eq!(line["prev_hash"], hex(&entry.prev_hash), "{line}");
            assert_eq!(line["actor"], entry.actor.as_str(), "{line}");
            assert_eq!(line["subject"], entry.subject.as_str(), "{line}");
            assert!(line["event"].is_object(), "{line}");
        }

        let mut cmd = cli(&app, "dave").await;
        cmd.arg("log").args(&args);
        let table = run(cmd).await;
        assert_code(&table, 0);
        let text = stdout(&table);
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert!(text.starts_with("     SEQ  RECORDED_AT"), "{text}");
        assert_eq!(rows.len(), expected.len(), "log {args:?}:\n{text}");
        for (row, entry) in rows.iter().zip(&expected) {
            assert!(
                row.trim_start()
                    .starts_with(&format!("{} ", entry.sequence)),
                "{row}"
            );
            assert!(row.contains(&hex(&entry.hash)[..12]), "{row}");
        }
    }

    // The decoded event, field by field.
    let mut cmd = cli(&app, "dave").await;
    cmd.args(["log", "--kind", "eval_recorded", "--subject", "log/a"])
        .args(["--output", "json"]);
    let output = run(cmd).await;
    let line = json_object(&output);
    assert_eq!(line["kind"], "eval_recorded");
    assert_eq!(line["event"]["suite"], "regression");
    assert_eq!(line["event"]["version"], "v1");
    assert_eq!(line["event"]["eval_kind"], "model_graded");
    assert_eq!(line["event"]["metrics"][0]["name"], "accuracy");
    assert_eq!(line["event"]["metrics"][0]["value"], 0.87);
    assert_eq!(line["event"]["metrics"][1]["direction"], "lower_is_better");
    assert_eq!(line["event"]["source"]["pipeline_id"], "4242");
    let mut cmd = cli(&app, "dave").await;
    cmd.args(["log", "--kind", "version_registered", "--actor", "carol"])
        .args(["--output", "json"]);
    let line = json_object(&run(cmd).await);
    assert_eq!(line["event"]["version"], "v3");
    assert_eq!(line["event"]["subject_kind"], "prompt");
    assert_eq!(
        line["event"]["content"],
        "You are the triage assistant for log/a. Be brief."
    );
}

/// A child process killed if the test ends early.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_follow_streams_new_entries_until_the_server_stops() {
    let app = TestApp::spawn().await;
    let s = "follow/triage-prompt";
    let before = vec![app.register(s).await, app.append_event(eval(s)).await];
    app.append_event(version("follow/other")).await;

    let logs = tempfile::tempdir().unwrap();
    let stderr_log = logs.path().join("follow.stderr");
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("govledger"));
    for name in leaky_vars() {
        cmd.env_remove(name);
    }
    let child = cmd
        .args(["--addr", &app.addr.to_string()])
        .args(["--token", &app.token("dave").await])
        .args(["--output", "json", "log", "--follow", "--subject", s])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_log).unwrap())
        .spawn()
        .expect("spawning govledger log --follow");
    let mut child = KillOnDrop(child);
    let out = child.0.stdout.take().unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut next = async || -> Option<Value> {
        within("the next line of log --follow", lines.recv())
            .await
            .map(|line| serde_json::from_str(&line).expect("a JSON line"))
    };

    // The catch-up: the subject's entries so far.
    for entry in &before {
        let line = next().await.expect("a catch-up line");
        assert_eq!(line["sequence"], entry.sequence, "{line}");
    }
    // Then what is appended from now on (other subjects filtered out).
    app.append_event(numbered("follow/other", 3)).await;
    let approved = app.append_event(approval(s)).await;
    let line = next().await.expect("a live line");
    assert_eq!(line["sequence"], approved.sequence, "{line}");
    assert_eq!(line["kind"], "approval_recorded");
    assert_eq!(line["event"]["decision"], "approve");
    let deployed = app
        .append_event(DeploymentRecorded {
            environment: "staging".into(),
            ..deployment(s)
        })
        .await;
    let line = next().await.expect("a live line");
    assert_eq!(line["sequence"], deployed.sequence, "{line}");

    // The server stops: the stream ends, and so does the command, with 0.
    app.stop().await;
    assert!(next().await.is_none(), "nothing after the last entry");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "log --follow did not exit after the server stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let err = std::fs::read_to_string(&stderr_log).unwrap();
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
    assert!(err.contains("ended the stream"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_follow_ends_at_until_on_an_idle_ledger() {
    let app = TestApp::spawn().await;
    let s = "until/triage-prompt";
    let registered = app.register(s).await;
    let follow_until = |until: String| {
        let app = &app;
        async move {
            let mut cmd = cli(app, "dave").await;
            cmd.args(["--output", "json", "log", "--follow", "--subject", s])
                .args(["--until", &until])
                // The failure bound: a command that waits for an entry that
                // never comes is killed here and exits without a code.
                .timeout(WAIT);
            run(cmd).await
        }
    };
    let rfc3339 =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);

    // Already past: the history up to it, then done.
    let output = follow_until(rfc3339(chrono::Utc::now())).await;
    assert_code(&output, 0);
    let printed: Vec<u64> = json_lines(&output)
        .iter()
        .map(|l| l["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(printed, vec![registered.sequence]);

    // A moment ahead, and nothing is appended meanwhile: done once it passes.
    let until = chrono::Utc::now() + chrono::Duration::seconds(1);
    let output = follow_until(rfc3339(until)).await;
    assert_code(&output, 0);
    assert!(
        chrono::Utc::now() >= until,
        "log --follow exited before --until"
    );
    assert_eq!(json_lines(&output).len(), 1, "{}", stdout(&output));
    assert!(
        !stderr(&output).contains("ended the stream"),
        "{}",
        stderr(&output)
    );
}

/// --until passing while the subscription still replays history must not
/// cut the history short: every entry recorded up to --until is printed,
/// once, in order, however the deadline and the replay interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_follow_until_prints_all_history_even_when_the_deadline_wins() {
    let app = TestApp::spawn().await;
    for chunk in 0..5 {
        app.append_events(
            (0..1000)
                .map(|n| version(&format!("replay/{chunk}-{n}")).event())
                .collect(),
        )
        .await;
    }
    let head = app.get_head().await.sequence;
    let rfc3339 =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    for ahead_ms in [1, 20, 200] {
        let until = chrono::Utc::now() + chrono::Duration::milliseconds(ahead_ms);
        let mut cmd = cli(&app, "dave").await;
        cmd.args([
            "--output",
            "json",
            "log",
            "--follow",
            "--until",
            &rfc3339(until),
        ])
        .timeout(WAIT);
        let output = run(cmd).await;
        assert_code(&output, 0);
        let printed: Vec<u64> = json_lines(&output)
            .iter()
            .map(|l| l["sequence"].as_u64().unwrap())
            .collect();
        assert_eq!(
            printed,
            (1..=head).collect::<Vec<u64>>(),
            "--until {ahead_ms} ms ahead printed {} of {head} entries",
            printed.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_categories_read_back_as_they_are_recorded() {
    let app = TestApp::spawn().await;
    let s = "category/triage-prompt";
    app.register(s).await;
    let categories = [("INC-pii", "pii-leak"), ("INC-policy", "policy-violation")];
    for (id, category) in categories {
        let mut cmd = cli(&app, TESTER).await;
        cmd.args(["incident", "open", "--subject", s, "--severity", "low"])
            .args(["--category", category, "--id", id, "--description", "x"]);
        assert_code(&run(cmd).await, 0);
    }

    let mut cmd = cli(&app, "dave").await;
    cmd.args(["--output", "json", "incident", "list", "--subject", s]);
    let listed = json_lines(&run(cmd).await);
    let mut cmd = cli(&app, "dave").await;
    cmd.args(["--output", "json", "log", "--kind", "incident_opened"]);
    let logged = json_lines(&run(cmd).await);
    let mut cmd = cli(&app, "dave").await;
    cmd.args(["--output", "json", "state", s]);
    let state = json_object(&run(cmd).await);
    let open = state["open_incidents"].as_array().unwrap();
    for (id, category) in categories {
        let find = |lines: &[Value], key: &str| -> Value {
            lines
                .iter()
                .find(|l| l[key] == id)
                .unwrap_or_else(|| panic!("{id} missing from {lines:?}"))
                .clone()
        };
        let events: Vec<Value> = logged.iter().map(|l| l["event"].clone()).collect();
        assert_eq!(find(&listed, "incident_id")["category"], category);
        assert_eq!(find(&events, "incident_id")["category"], category);
        assert_eq!(find(open, "incident_id")["category"], category);
    }
    let mut cmd = cli(&app, "dave").await;
    cmd.args(["log", "--kind", "incident_opened"]);
    let text = stdout(&run(cmd).await);
    assert!(text.contains(" low pii-leak: x"), "{text}");
}

// ---- state and history ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_now_and_as_of_a_moment_before_a_change() {
    let app = TestApp::spawn().await;
    let s = "state/triage-prompt";
    app.append_event(numbered(s, 1)).await;
    let first = app
        .append_event(DeploymentRecorded {
            version: "v1".into(),
            ..deployment(s)
        })
        .await;
    app.append_event(child_version(s, V, "v1")).await;
    let second = app.append_event(deployment(s)).await;
    assert!(ts(&second) > ts(&first));

    let state = |args: Vec<String>| {
        let app = &app;
        async move {
            let mut cmd = cli(app, "dave").await;
            cmd.args(["state", s]).args(args);
            run(cmd).await
        }
    };
    let json = |args: &[&str]| {
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.extend(["--output".into(), "json".into()]);
        args
    };

    let now = state(json(&[])).await;
    assert_code(&now, 0);
    let now = json_object(&now);
    assert_eq!(now["subject"], s);
    assert_eq!(now["kind"], "prompt");
    assert_eq!(now["as_of_sequence"], app.get_head().await.sequence);
    assert_eq!(now["versions"].as_array().unwrap().len(), 2);
    assert_eq!(now["versions"][0]["stage"], "superseded");
    assert_eq!(now["versions"][1]["stage"], "deployed");
    assert_eq!(now["versions"][1]["parent_version"], "v1");
    assert_eq!(now["environments"][0]["environment"], "production");
    assert_eq!(now["environments"][0]["live_version"], V);
    assert_eq!(
        now["environments"][0]["live_since_sequence"],
        second.sequence
    );

    let at = rfc3339(&first);
    let sequence = first.sequence.to_string();
    for args in [
        json(&["--as-of", &at]),
        json(&["--as-of", &sequence]),
        json(&["--as-of-sequence", &sequence]),
    ] {
        let then = state(args.clone()).await;
        assert_code(&then, 0);
        let then = json_object(&then);
        assert_eq!(then["as_of_sequence"], first.sequence, "{args:?}");
        assert_eq!(then["versions"].as_array().unwrap().len(), 1, "{args:?}");
        assert_eq!(then["versions"][0]["version"], "v1");
        assert_eq!(then["versions"][0]["stage"], "deployed");
        assert_eq!(then["environments"][0]["live_version"], "v1", "{args:?}");
    }

    let table = state(vec![]).await;
    assert_code(&table, 0);
    let text = stdout(&table);
    assert!(
        text.contains(&format!(
            "production  live {V} since entry {}",
            second.sequence
        )),
        "{text}"
    );
    let table = state(vec!["--as-of".into(), at]).await;
    assert_code(&table, 0);
    let text = stdout(&table);
    assert!(
        text.contains(&format!(
            "production  live v1 since entry {}",
            first.sequence
        )),
        "{text}"
    );
    assert!(!text.contains(&format!("  {V}  ")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_shows_every_version_with_its_evidence() {
    let app = TestApp::spawn().await;
    let s = "history/triage-prompt";
    let v1 = app.append_events(lifecycle(s, "v1", "staging")).await;
    app.append_as(REGISTRAR, req(child_version(s, V, "v1")))
        .await
        .expect("v2");
    let evaluated = app.append_event(eval(s)).await;
    let approved = app.append_event(approval(s)).await;

    let mut cmd = cli(&app, "dave").await;
    cmd.args(["history", s, "--output", "json"]);
    let output = run(cmd).await;
    assert_code(&output, 0);
    let history = json_object(&output);
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], "v1");
    assert_eq!(versions[0]["created_sequence"], v1[0].sequence);
    assert_eq!(versions[0]["evals"][0]["sequence"], v1[1].sequence);
    assert_eq!(versions[0]["evals"][0]["passed"], true);
    assert_eq!(versions[0]["approvals"][0]["decision"], "reject");
    assert_eq!(versions[0]["approvals"][0]["sequence"], v1[2].sequence);
    assert_eq!(versions[0]["incident_ids"][0], incident_id(s, "v1"));
    assert_eq!(versions[1]["version"], V);
    assert_eq!(versions[1]["parent_version"], "v1");
    assert_eq!(versions[1]["registered_by"], REGISTRAR);
    assert_eq!(versions[1]["evals"][0]["sequence"], evaluated.sequence);
    assert_eq!(versions[1]["approvals"][0]["decision"], "approve");
    assert_eq!(versions[1]["approvals"][0]["approver"], TESTER);
    assert_eq!(history["environments"][0]["environment"], "staging");
    assert_eq!(
        history["environments"][0]["history"][0]["sequence"],
        v1[3].sequence
    );

    let mut cmd = cli(&app, "dave").await;
    cmd.args(["history", s]);
    let output = run(cmd).await;
    assert_code(&output, 0);
    let text = stdout(&output);
    for needle in [
        format!("eval      regression PASS (entry {})", v1[1].sequence),
        format!("reject    staging by {TESTER} (entry {}", v1[2].sequence),
        format!(
            "deployed  v1 to staging by {TESTER} (entry {}",
            v1[3].sequence
        ),
        format!("incidents {}", incident_id(s, "v1")),
        format!("eval      regression PASS (entry {})", evaluated.sequence),
        format!(
            "approve   production by {TESTER} (entry {}",
            approved.sequence
        ),
    ] {
        assert!(text.contains(&needle), "{needle:?} missing from:\n{text}");
    }
}

// ---- verify -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_against_the_server_in_linked_chunks() {
    let app = TestApp::spawn().await;
    for n in 0..12 {
        app.append_event(version_with_content(&format!("verify/{n}"), 2048))
            .await;
    }
    let head = app.get_head().await;
    let ok_line = format!(
        "ok: entries 1..={} verified, head hash {}\n",
        head.sequence,
        hex(&head.hash)
    );

    for chunk in ["5", "100000"] {
        let mut cmd = cli(&app, "dave").await;
        cmd.args(["verify", "--chunk", chunk]);
        let output = run(cmd).await;
        assert_code(&output, 0);
        assert_eq!(stdout(&output), ok_line);
        assert_eq!(
            stderr(&output),
            "",
            "no progress bar (nor anything else) on a captured stderr"
        );
    }
    let mut cmd = cli(&app, "dave").await;
    cmd.args(["verify", "--chunk", "5", "--output", "json"]);
    let answer = json_object(&run(cmd).await);
    assert_eq!(answer["valid"], true);
    assert_eq!(answer["entries_checked"], head.sequence);
    assert_eq!(answer["chunks"], head.sequence.div_ceil(5));
    assert_eq!(answer["head_hash"], hex(&head.hash));

    // A range ends on its last entry's hash.
    let (from, to) = (SETUP_ENTRIES + 3, SETUP_ENTRIES + 9);
    let last = app.get_entry(to).await.unwrap();
    let mut cmd = cli(&app, "dave").await;
    cmd.args(["verify", "--chunk", "2"]).args([
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
    ]);
    let output = run(cmd).await;
    assert_code(&output, 0);
    assert_eq!(
        stdout(&output),
        format!(
            "ok: entries {from}..={to} verified, head hash {}\n",
            hex(&last.hash)
        )
    );

    // One changed byte on disk: exit 1 naming the entry, whichever chunk holds it.
    let bad = SETUP_ENTRIES + 8;
    tamper_with_entry(&app.data_dir, bad);
    for chunk in ["5", "100000"] {
        let mut cmd = cli(&app, "dave").await;
        cmd.args(["verify", "--chunk", chunk]);
        let output = run(cmd).await;
        assert_code(&output, 1);
        assert!(
            stderr(&output).contains(&format!("entry {bad}:")),
            "{}",
            stderr(&output)
        );
        assert!(!stdout(&output).contains("ok:"), "{}", stdout(&output));
    }
    let mut cmd = cli(&app, "dave").await;
    cmd.args(["verify", "--chunk", "5", "--output", "json"]);
    let output = run(cmd).await;
    assert_code(&output, 1);
    let answer = json_object(&output);
    assert_eq!(answer["valid"], false);
    assert_eq!(answer["first_bad_sequence"], bad);
    assert!(!answer["reason"].as_str().unwrap().is_empty(), "{answer}");
    // Entries before the damage still verify.
    let mut cmd = cli(&app, "dave").await;
    cmd.args(["verify", "--to", &(bad - 1).to_string()]);
    assert_code(&run(cmd).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_online_and_offline_say_the_same() {
    let app = TestApp::spawn().await;
    app.append_events(lifecycle("verify/same", "v1", "staging"))
        .await;
    let mut cmd = cli(&app, "dave").await;
    cmd.arg("verify");
    let online = run(cmd).await;
    assert_code(&online, 0);

    let stopped = app.stop_keep_dir().await;
    let mut cmd = govledger();
    cmd.args(["verify", "--data-dir"]).arg(&stopped.path);
    let offline = run(cmd).await;
    assert_code(&offline, 0);
    assert_eq!(stdout(&offline), stdout(&online));

    // --data-dir verifies a whole journal: no range, no chunks.
    let mut cmd = govledger();
    cmd.args(["verify", "--chunk", "5", "--data-dir"])
        .arg(&stopped.path);
    assert_code(&run(cmd).await, 2);
}

/// How a test damages the journal of a running server inside one entry.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// The segment ends halfway through the entry (the server then fails
    /// to read it with an I/O error: Internal).
    Truncated,
    /// The record's length prefix is changed so that it cannot be framed
    /// (the server then refuses to serve it: DataLoss).
    Misframed,
}

impl Damage {
    fn apply(self, data_dir: &std::path::Path, sequence: u64) {
        match self {
            Damage::Truncated => {
                let location = record(data_dir, sequence);
                truncate(
                    &segment_path(&location, data_dir),
                    location.offset + location.len / 2,
                );
            }
            Damage::Misframed => {
                let location = record(data_dir, sequence);
                // The little-endian length's high byte: far past any record's length.
                flip_byte(&segment_path(&location, data_dir), location.offset + 3);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_damage_it_meets_at_a_chunk_boundary_or_the_anchor() {
    for damage in [Damage::Truncated, Damage::Misframed] {
        let app = TestApp::spawn().await;
        for n in 0..8 {
            app.append_event(version_with_content(&format!("boundary/{n}"), 2048))
                .await;
        }
        let bad = SETUP_ENTRIES + 4;
        damage.apply(&app.data_dir, bad);
        // The server itself names the entry it could not serve.
        let refused = app
            .get_entry(bad)
            .await
            .expect_err("a damaged entry is served");
        assert!(
            refused.message().contains(&format!("entry {bad}")),
            "{damage:?}: {refused:?}"
        );

        for args in [
            // VerifyChain itself meets the damage.
            vec!["--from".to_owned(), bad.to_string()],
            // The chunk before ends cleanly; the next one starts on the damage.
            vec![
                "--from".to_owned(),
                (bad - 1).to_string(),
                "--chunk".to_owned(),
                "1".to_owned(),
            ],
            // The range starts after the damage, anchored on the damaged entry.
            vec!["--from".to_owned(), (bad + 1).to_string()],
        ] {
            let mut cmd = cli(&app, "dave").await;
            cmd.arg("verify").args(&args);
            let output = run(cmd).await;
            assert_code(&output, 1);
            assert!(
                stderr(&output).contains(&format!("entry {bad}:")),
                "{damage:?} {args:?}: {}",
                stderr(&output)
            );
            assert_eq!(stdout(&output), "", "{damage:?} {args:?}");

            let mut cmd = cli(&app, "dave").await;
            cmd.arg("verify").args(&args).args(["--output", "json"]);
            let output = run(cmd).await;
            assert_code(&output, 1);
            let answer = json_object(&output);
            assert_eq!(answer["valid"], false, "{damage:?} {args:?}");
            assert_eq!(answer["first_bad_sequence"], bad, "{damage:?} {args:?}");
            assert!(
                !answer["reason"].as_str().unwrap().is_empty(),
                "{damage:?} {args:?}: {answer}"
            );
        }
        // Entries before the damage still verify.
        let mut cmd = cli(&app, "dave").await;
        cmd.args(["verify", "--chunk", "1", "--to", &(bad - 1).to_string()]);
        assert_code(&run(cmd).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_data_dir_prints_json_like_online_verify() {
    let app = TestApp::spawn().await;
    for n in 0..3 {
        app.append_event(version_with_content(&format!("offline/{n}"), 2048))
            .await;
    }
    let mut cmd = cli(&app, "dave").await;
    cmd.args(["verify", "--output", "json"]);
    let output = run(cmd).await;
    assert_code(&output, 0);
    let online = json_object(&output);
    let stopped = app.stop_keep_dir().await;

    let offline_json = |dir: &std::path::Path| {
        let mut cmd = govledger();
        cmd.args(["--output", "json", "verify", "--data-dir"])
            .arg(dir);
        run(cmd)
    };
    let output = offline_json(&stopped.path).await;
    assert_code(&output, 0);
    let offline = json_object(&output);
    for field in [
        "valid",
        "from_sequence",
        "to_sequence",
        "entries_checked",
        "head_hash",
    ] {
        assert_eq!(offline[field], online[field], "{field}: {offline}");
    }
    assert!(offline["torn_tail"].is_null(), "{offline}");

    // A torn tail: reported, and the entries before it verify.
    let head = SETUP_ENTRIES + 3;
    let last = record(&stopped.path, head);
    let torn = tempfile::tempdir().unwrap();
    copy_dir(&stopped.path, torn.path());
    let segment = segment_in(&last, &stopped.path, torn.path());
    truncate(&segment, last.offset + last.len / 2);
    let output = offline_json(torn.path()).await;
    assert_code(&output, 0);
    let answer = json_object(&output);
    assert_eq!(answer["valid"], true, "{answer}");
    assert_eq!(answer["to_sequence"], head - 1, "{answer}");
    assert_eq!(answer["entries_checked"], head - 1, "{answer}");
    assert_eq!(answer["torn_tail"]["offset"], last.offset, "{answer}");
    assert_eq!(answer["torn_tail"]["bytes"], last.len / 2, "{answer}");
    // Text mode keeps saying it in words.
    let mut cmd = govledger();
    cmd.args(["verify", "--data-dir"]).arg(torn.path());
    let output = run(cmd).await;
    assert_code(&output, 0);
    let text = stdout(&output);
    assert!(
        text.starts_with(&format!(
            "torn tail: {} bytes at offset {}",
            last.len / 2,
            last.offset
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("ok: entries 1..={} verified", head - 1)),
        "{text}"
    );

    // Damage: the same fault fields as online verify.
    let bad = SETUP_ENTRIES + 2;
    tamper_with_entry(&stopped.path, bad);
    let output = offline_json(&stopped.path).await;
    assert_code(&output, 1);
    let answer = json_object(&output);
    assert_eq!(answer["valid"], false, "{answer}");
    assert_eq!(answer["first_bad_sequence"], bad, "{answer}");
    assert_eq!(answer["entries_checked"], bad - 1, "{answer}");
    assert!(!answer["reason"].as_str().unwrap().is_empty(), "{answer}");
    assert!(
        stderr(&output).contains(&format!("entry {bad}:")),
        "{}",
        stderr(&output)
    );
}

// ---- exit codes --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_unreachable_rejected_and_usage() {
    let app = TestApp::spawn().await;
    app.register("codes/a").await;

    // 3: nobody listens there (a port just released by this test).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    for args in [
        vec!["state", "codes/a"],
        vec!["log"],
        vec!["verify"],
        vec![
            "gate",
            "--subject",
            "codes/a",
            "--version",
            V,
            "--env",
            "prod",
        ],
    ] {
        let mut cmd = govledger();
        cmd.args(["--addr", &format!("127.0.0.1:{port}")])
            .args(["--token", &app.token("dave").await])
            .args(&args);
        let output = run(cmd).await;
        assert_code(&output, 3);
    }

    // 4: the server refuses, and says why.
    for args in [vec!["state", "codes/nope"], vec!["history", "codes/nope"]] {
        let mut cmd = cli(&app, "dave").await;
        cmd.args(&args);
        let output = run(cmd).await;
        assert_code(&output, 4);
        assert!(
            stderr(&output).contains("not found: subject \"codes/nope\" has no entries"),
            "{}",
            stderr(&output)
        );
    }
    let mut cmd = govledger();
    cmd.args(["--addr", &app.addr.to_string()])
        .args([
            "--token",
            &format!("glt_0123456789abcdef_{}", "0".repeat(64)),
        ])
        .arg("log");
    let output = run(cmd).await;
    assert_code(&output, 4);
    assert_eq!(stdout(&output), "", "no table header before a refusal");

    // 2: the command line is wrong.
    let head = app.get_head().await.sequence;
    let too_far = (head + 1).to_string();
    for args in [
        vec!["log", "--kind", "evals"],
        vec!["log", "--since", "yesterday"],
        vec!["state"],
        vec!["state", "codes/a", "--as-of", "last week"],
        vec!["state", "codes/a", "--as-of", "3", "--as-of-sequence", "3"],
        vec!["gate", "--subject", "codes/a", "--version", V],
        vec!["verify", "--to", &too_far],
        vec!["verify", "--chunk", "0"],
    ] {
        let mut cmd = cli(&app, "dave").await;
        cmd.args(&args);
        let output = run(cmd).await;
        assert_code(&output, 2);
        assert_eq!(stdout(&output), "", "{args:?}");
    }
}

/// Runs the binary with `args` and its standard output already closed by
/// the reader (`govledger ... | head -0`); returns the exit code.
async fn exit_code_with_stdout_closed(args: Vec<String>) -> Option<i32> {
    tokio::task::spawn_blocking(move || {
        let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("govledger"));
        for name in leaky_vars() {
            cmd.env_remove(name);
        }
        let mut child = cmd
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting govledger");
        // Closing our end before the child writes: its writes fail (EPIPE).
        drop(child.stdout.take());
        child.wait().expect("waiting for govledger").code()
    })
    .await
    .unwrap()
}

/// A verdict is the exit code, not the output: a reader that closes the
/// pipe early must not turn "denied" or "damaged" into 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_does_not_change_a_verdict() {
    let app = TestApp::spawn().await;
    let s = "closed/triage-prompt";
    app.register(s).await;
    app.append_event(policy(s)).await;
    let connection = vec![
        "--addr".to_owned(),
        app.addr.to_string(),
        "--token".to_owned(),
        app.token("ci").await,
    ];
    for format in ["table", "json"] {
        let mut args = connection.clone();
        args.extend(
            [
                "--output",
                format,
                "gate",
                "--subject",
                s,
                "--version",
                V,
                "--env",
                "production",
            ]
            .map(str::to_owned),
        );
        assert_eq!(
            exit_code_with_stdout_closed(args).await,
            Some(1),
            "gate, {format}"
        );
    }

    let stopped = app.stop_keep_dir().await;
    tamper_with_entry(&stopped.path, SETUP_ENTRIES + 1);
    for format in ["table", "json"] {
        let args = vec![
            "--output".to_owned(),
            format.to_owned(),
            "verify".to_owned(),
            "--data-dir".to_owned(),
            stopped.path.display().to_string(),
        ];
        assert_eq!(
            exit_code_with_stdout_closed(args).await,
            Some(1),
            "verify, {format}"
        );
    }
}
