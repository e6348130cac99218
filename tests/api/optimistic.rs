//! Optimistic concurrency: expected head and expected subject sequences.

use govledger::proto::v1::{AppendBatchRequest, AppendRequest, BatchItem};
use tonic::Code;

use crate::helpers::*;

fn expecting_head(event: impl ToEvent, head: u64) -> AppendRequest {
    AppendRequest {
        expected_head_sequence: Some(head),
        ..req(event)
    }
}

fn expecting_subject(event: impl ToEvent, last: u64) -> AppendRequest {
    AppendRequest {
        expected_subject_sequence: Some(last),
        ..req(event)
    }
}

#[tokio::test]
async fn a_matching_expected_head_appends() {
    let app = TestApp::spawn().await;

    let first = app
        .append(expecting_head(numbered("a", 1), SETUP_ENTRIES))
        .await
        .expect("the head of a fresh log (only its access entries)");
    let second = app
        .append(expecting_head(numbered("a", 2), SETUP_ENTRIES + 1))
        .await
        .expect("the head after one append");

    assert_eq!(first.entry.unwrap().sequence, SETUP_ENTRIES + 1);
    assert_eq!(second.entry.unwrap().sequence, SETUP_ENTRIES + 2);
}

#[tokio::test]
async fn a_wrong_expected_head_is_failed_precondition_with_the_actual_head() {
    let app = TestApp::spawn().await;
    app.append_events((0..13).map(|n| numbered("a", n)).collect())
        .await;
    let before = app.get_head().await;
    assert_eq!(before.sequence, SETUP_ENTRIES + 13);

    // An event that would be accepted (v13 is new for "a"): only the
    // expectation fails.
    let s = SETUP_ENTRIES;
    for expected in [0, 13, s, s + 12, s + 14, s + 42] {
        let result = app
            .append(expecting_head(numbered("a", 13), expected))
            .await;
        assert_status(
            result,
            Code::FailedPrecondition,
            &before.sequence.to_string(),
        );
        assert_eq!(
            app.get_head().await,
            before,
            "expected {expected}: nothing appended"
        );
    }
}

#[tokio::test]
async fn expected_subject_sequence_checks_the_subjects_last_entry() {
    let app = TestApp::spawn().await;
    // Subject "a" at s + 2 and s + 17 (after the s = SETUP_ENTRIES access
    // entries); "b" everywhere else. "a" is registered by
    // another actor, so that the default actor may approve it.
    app.append_event(numbered("b", 14)).await;
    app.register("a").await;
    app.append_events((0..14).map(|n| numbered("b", n)).collect())
        .await;
    app.append_event(eval("a")).await;
    let before = app.get_head().await;
    let s = SETUP_ENTRIES;
    assert_eq!(before.sequence, s + 17);

    // Stale: the subject moved on to s + 17.
    for expected in [0, 2, 17, s + 2, s + 16, s + 18] {
        let result = app.append(expecting_subject(approval("a"), expected)).await;
        assert_status(result, Code::FailedPrecondition, &(s + 17).to_string());
        assert_eq!(
            app.get_head().await,
            before,
            "expected {expected}: nothing appended"
        );
    }
    // A subject with no entries yet expects 0.
    let result = app.append(expecting_subject(version("new"), 5)).await;
    assert_status(result, Code::FailedPrecondition, "0");
    assert_eq!(app.get_head().await, before);

    let matched = app
        .append(expecting_subject(approval("a"), s + 17))
        .await
        .expect("match");
    assert_eq!(matched.entry.unwrap().sequence, s + 18);
    let fresh = app
        .append(expecting_subject(version("new"), 0))
        .await
        .expect("new subject");
    assert_eq!(fresh.entry.unwrap().sequence, s + 19);
    // "a/x" is another subject, not part of "a".
    let child = app
        .append(expecting_subject(version("a/x"), 0))
        .await
        .expect("child subject");
    assert_eq!(child.entry.unwrap().sequence, s + 20);
}

#[tokio::test]
async fn a_batch_checks_the_expected_head() {
    let app = TestApp::spawn().await;
    app.append_events((0..5).map(|n| numbered("a", n)).collect())
        .await;
    let before = app.get_head().await;
    let s = SETUP_ENTRIES;
    assert_eq!(before.sequence, s + 5);

    for expected in [3, 5, s + 3] {
        let stale = AppendBatchRequest {
            expected_head_sequence: Some(expected),
            ..batch(all_kinds("b"))
        };
        assert_status(
            app.append_batch(stale).await,
            Code::FailedPrecondition,
            &(s + 5).to_string(),
        );
        assert_eq!(app.get_head().await, before);
    }

    let current = AppendBatchRequest {
        expected_head_sequence: Some(s + 5),
        ..batch(all_kinds("b"))
    };
    let entries = app
        .append_batch(current)
        .await
        .expect("matching head")
        .entries;
    assert_eq!(seqs(&entries), (s + 6..=s + 13).collect::<Vec<_>>());
}

#[tokio::test]
async fn batch_items_check_subject_sequences_against_the_log_before_the_batch() {
    let app = TestApp::spawn().await;
    let s = SETUP_ENTRIES;
    app.register("a").await; // s + 1
    app.append_event(version("b")).await; // s + 2
    let before = app.get_head().await;
    assert_eq!(before.sequence, s + 2);

    // Both items of "a" expect s + 1: the state before the batch.
    let ok = AppendBatchRequest {
        items: vec![
            BatchItem {
                expected_subject_sequence: Some(s + 1),
                ..item(eval("a"))
            },
            BatchItem {
                expected_subject_sequence: Some(s + 1),
                ..item(approval("a"))
            },
            BatchItem {
                expected_subject_sequence: Some(0),
                ..item(version("c"))
            },
        ],
        expected_head_sequence: None,
    };
    let entries = app
        .append_batch(ok)
        .await
        .expect("expectations hold")
        .entries;
    assert_eq!(seqs(&entries), vec![s + 3, s + 4, s + 5]);

    // One stale item fails the whole batch, naming the actual value.
    let after = app.get_head().await;
    let stale = AppendBatchRequest {
        items: vec![
            BatchItem {
                expected_subject_sequence: Some(s + 2),
                ..item(eval("b"))
            },
            BatchItem {
                expected_subject_sequence: Some(s + 3),
                ..item(eval("a"))
            },
        ],
        expected_head_sequence: None,
    };
    assert_status(
        app.append_batch(stale).await,
        Code::FailedPrecondition,
        &(s + 4).to_string(),
    );
    assert_eq!(app.get_head().await, after);
    assert_ne!(after, before);
}
