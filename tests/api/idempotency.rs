//! Idempotency keys: a retry returns the original entry; a reused key with a
//! different event is ALREADY_EXISTS; keys survive restarts.

use govledger::proto::v1::{AppendBatchRequest, BatchItem, VersionRegistered};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_retry_with_the_same_key_and_event_returns_the_original_entry() {
    let app = TestApp::spawn().await;
    app.append_event(version("support-bot/triage-prompt")).await;
    let request = keyed(eval("support-bot/triage-prompt"), "ci-run-4243-eval");

    let first = app.append(request.clone()).await.expect("first append");
    app.append_event(version("b")).await;
    let head = app.get_head().await;
    let retry = app.append(request.clone()).await.expect("retry");

    assert!(!first.deduplicated);
    assert!(retry.deduplicated, "the retry is reported as deduplicated");
    let (first, retry) = (first.entry.unwrap(), retry.entry.unwrap());
    assert_eq!(first.sequence, SETUP_ENTRIES + 2);
    assert_eq!(retry.sequence, first.sequence);
    assert_eq!(retry.hash, first.hash);
    assert_eq!(retry, first, "the original entry is returned unchanged");
    assert_eq!(first.idempotency_key, "ci-run-4243-eval");
    assert_eq!(app.get_head().await, head, "nothing was appended");
}

#[tokio::test]
async fn the_same_key_with_a_different_event_is_already_exists() {
    let app = TestApp::spawn().await;
    app.register("a").await;
    app.append(keyed(approval("a"), "approve-a-v2"))
        .await
        .unwrap();
    let head = app.get_head().await;

    let mut other = approval("a");
    other.comment = "a different comment".into();
    let conflict = app.append(keyed(other, "approve-a-v2")).await;

    assert_status(conflict, Code::AlreadyExists, "");
    assert_eq!(app.get_head().await, head);
    // A batch item reusing the key with a different event conflicts too, and
    // nothing of the batch is appended.
    let batch_conflict = app
        .append_batch(AppendBatchRequest {
            items: vec![
                item(version("b")),
                BatchItem {
                    idempotency_key: "approve-a-v2".into(),
                    ..item(deployment("a"))
                },
            ],
            expected_head_sequence: None,
        })
        .await;
    assert_status(batch_conflict, Code::AlreadyExists, "");
    assert_eq!(app.get_head().await, head);
}

#[tokio::test]
async fn idempotency_keys_survive_a_restart() {
    let app = TestApp::spawn().await;
    let original = app
        .append(keyed(version("a"), "register-a-v2"))
        .await
        .unwrap()
        .entry
        .unwrap();
    app.append_event(eval("a")).await;

    let app = app.restart().await;

    let retry = app
        .append(keyed(version("a"), "register-a-v2"))
        .await
        .unwrap();
    assert!(retry.deduplicated, "a retry after restart is deduplicated");
    assert_eq!(retry.entry.unwrap(), original);
    let conflict = app
        .append(keyed(
            VersionRegistered {
                summary: "changed".into(),
                ..version("a")
            },
            "register-a-v2",
        ))
        .await;
    assert_status(conflict, Code::AlreadyExists, "");
    assert_eq!(app.get_head().await.sequence, SETUP_ENTRIES + 2);
}

fn keyed_batch() -> AppendBatchRequest {
    AppendBatchRequest {
        items: all_kinds("a")
            .into_iter()
            .enumerate()
            .map(|(i, event)| BatchItem {
                event: Some(event),
                idempotency_key: format!("release-7/item-{i}"),
                expected_subject_sequence: None,
            })
            .collect(),
        expected_head_sequence: None,
    }
}

#[tokio::test]
async fn a_retried_batch_returns_the_same_entries() {
    let app = TestApp::spawn().await;
    app.append_event(version("x")).await;

    let first = app.append_batch(keyed_batch()).await.expect("first batch");
    let head = app.get_head().await;
    let retry = app
        .append_batch(keyed_batch())
        .await
        .expect("retried batch");

    assert!(!first.deduplicated);
    assert!(
        retry.deduplicated,
        "the retried batch is reported as deduplicated"
    );
    assert_eq!(
        seqs(&first.entries),
        (SETUP_ENTRIES + 2..=SETUP_ENTRIES + 9).collect::<Vec<_>>()
    );
    assert_eq!(
        retry.entries, first.entries,
        "the same entries are returned"
    );
    assert_eq!(app.get_head().await, head, "nothing was appended");

    // Also after a restart.
    let app = app.restart().await;
    let after_restart = app
        .append_batch(keyed_batch())
        .await
        .expect("batch after restart");
    assert!(after_restart.deduplicated);
    assert_eq!(after_restart.entries, first.entries);
    assert_eq!(app.get_head().await, head);
}

#[tokio::test]
async fn concurrent_retries_append_exactly_once() {
    let app = TestApp::spawn().await;
    let registered = app.append_event(version("a")).await; // SETUP_ENTRIES + 1
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut client = app.new_client().await;
        tasks.push(tokio::spawn(async move {
            client
                .append(keyed(incident_opened("a"), "inc-031-open"))
                .await
                .map(|r| r.into_inner())
        }));
    }

    let mut responses = Vec::new();
    for task in tasks {
        let resp = within("a concurrent retry", task)
            .await
            .unwrap()
            .expect("append");
        responses.push(resp);
    }

    let expected = registered.sequence + 1;
    assert_eq!(
        app.get_head().await.sequence,
        expected,
        "the key appended exactly one entry"
    );
    assert_eq!(responses.iter().filter(|r| !r.deduplicated).count(), 1);
    for resp in &responses {
        assert_eq!(resp.entry.as_ref().unwrap().sequence, expected);
    }
}
