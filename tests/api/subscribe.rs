//! Subscribe: catch up from a sequence, then stay live; never skip or repeat
//! an entry, also while appends race with the catch-up.
//!
//! A fresh log starts with its SETUP_ENTRIES access entries: a subscription
//! from the beginning catches up on those too.

use std::time::Duration;

use govledger::proto::v1::{Entry, EventKind, SubscribeRequest};
use tokio_stream::StreamExt;
use tonic::codec::Streaming;

use crate::helpers::*;

/// Reads `n` entries from the stream.
async fn take(stream: &mut Streaming<Entry>, n: usize) -> Vec<Entry> {
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        entries.push(next_entry(stream).await);
    }
    entries
}

/// Asserts nothing more arrives right now (the stream neither ends nor yields).
async fn assert_quiet(stream: &mut Streaming<Entry>) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
        panic!("expected no more entries for now, got {item:?}");
    }
}

#[tokio::test]
async fn subscribe_catches_up_then_stays_live() {
    let app = TestApp::spawn().await;
    let mut appended = app
        .append_events((0..10).map(|n| numbered("a", n)).collect())
        .await;
    let log = app.read_all().await;
    assert_eq!(log[SETUP_ENTRIES as usize..], appended);

    let mut stream = app
        .subscribe(SubscribeRequest {
            from_sequence: 1,
            ..Default::default()
        })
        .await;
    let caught_up = take(&mut stream, log.len()).await;
    assert_eq!(
        caught_up, log,
        "catch-up yields the stored entries, the access entries first"
    );
    assert_quiet(&mut stream).await;

    for n in 10..15 {
        appended.push(app.append_event(numbered("a", n)).await);
        let live = next_entry(&mut stream).await;
        assert_eq!(
            &live,
            appended.last().unwrap(),
            "the live entry is the appended one"
        );
    }
    appended.extend(
        app.append_events((15..20).map(|n| numbered("b", n)).collect())
            .await,
    );
    let live_batch = take(&mut stream, 5).await;
    assert_eq!(live_batch, appended[15..20]);
    assert_quiet(&mut stream).await;
}

#[tokio::test]
async fn subscribe_from_zero_starts_at_the_beginning() {
    let app = TestApp::spawn().await;
    let appended = app
        .append_events((0..3).map(|n| numbered("a", n)).collect())
        .await;
    let log = app.read_all().await;
    assert_eq!(log.len() as u64, SETUP_ENTRIES + 3);
    assert_eq!(log[SETUP_ENTRIES as usize..], appended);

    let mut stream = app.subscribe(SubscribeRequest::default()).await;

    let caught_up = take(&mut stream, log.len()).await;
    assert_eq!(caught_up[0].sequence, 1);
    assert_eq!(caught_up, log);
}

#[tokio::test]
async fn subscribe_from_head_plus_one_yields_only_new_entries() {
    let app = TestApp::spawn().await;
    app.append_events((0..7).map(|n| numbered("a", n)).collect())
        .await;

    let mut stream = app
        .subscribe(SubscribeRequest {
            from_sequence: SETUP_ENTRIES + 8,
            ..Default::default()
        })
        .await;
    assert_quiet(&mut stream).await;
    let new = app.append_event(version("b")).await;

    assert_eq!(next_entry(&mut stream).await, new);
    assert_eq!(new.sequence, SETUP_ENTRIES + 8);
}

#[tokio::test]
async fn subscribe_on_a_fresh_log_waits_for_the_first_new_entry() {
    // A fresh log holds only its access entries.
    let app = TestApp::spawn().await;
    let access = app.read_all().await;
    assert_eq!(access.len() as u64, SETUP_ENTRIES);
    let mut stream = app.subscribe(SubscribeRequest::default()).await;
    assert_eq!(take(&mut stream, access.len()).await, access);
    assert_quiet(&mut stream).await;

    let first = app.append_event(version("a")).await;

    assert_eq!(first.sequence, SETUP_ENTRIES + 1);
    assert_eq!(next_entry(&mut stream).await, first);
}

#[tokio::test]
async fn subscribe_filters_by_subject_and_kind() {
    let app = TestApp::spawn().await;
    for subject in ["a", "b", "a/x"] {
        app.append_events(all_kinds(subject)).await;
    }

    let mut by_subject = app
        .subscribe(SubscribeRequest {
            from_sequence: 1,
            subject: "a".into(),
            ..Default::default()
        })
        .await;
    let mut by_kind = app
        .subscribe(SubscribeRequest {
            from_sequence: 1,
            kind: EventKind::ApprovalRecorded as i32,
            ..Default::default()
        })
        .await;
    let mut both = app
        .subscribe(SubscribeRequest {
            from_sequence: 1,
            subject: "b".into(),
            kind: EventKind::PolicySet as i32,
        })
        .await;

    // The test's entries follow the s access entries (which match no filter).
    let s = SETUP_ENTRIES;
    assert_eq!(
        seqs(&take(&mut by_subject, 8).await),
        (s + 1..=s + 8).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&take(&mut by_kind, 3).await),
        vec![s + 3, s + 11, s + 19]
    );
    assert_eq!(seqs(&take(&mut both, 1).await), vec![s + 16]);
    assert_quiet(&mut by_subject).await;
    assert_quiet(&mut by_kind).await;
    assert_quiet(&mut both).await;

    // Live entries are filtered too: a second version of "b" (in another
    // environment, where no policy is in force yet), and an approval of "a"'s
    // version by someone who did not register it.
    app.append_events(lifecycle("b", "v3", "staging")).await; // s + 25..=s + 32
    app.append_as("reviewer", req(approval("a")))
        .await
        .expect("approval"); // s + 33
    assert_eq!(next_entry(&mut by_subject).await.sequence, s + 33);
    assert_eq!(seqs(&take(&mut by_kind, 2).await), vec![s + 27, s + 33]);
    assert_eq!(next_entry(&mut both).await.sequence, s + 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_gap_and_no_duplicate_while_appends_race_with_the_catch_up() {
    // A backlog larger than any sensible catch-up chunk, so the catch-up takes
    // several reads while the writers keep appending.
    const BACKLOG: usize = 2_400;
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 100;
    // The access entries of a fresh log, then the test's own.
    const TOTAL: u64 = SETUP_ENTRIES + (BACKLOG + WRITERS * PER_WRITER) as u64;

    let app = TestApp::spawn().await;
    for chunk in 0..BACKLOG / 800 {
        app.append_events(
            (0..800)
                .map(|n| numbered("backlog", chunk * 800 + n))
                .collect(),
        )
        .await;
    }

    // Writers start first, so live appends land while the subscribers catch up.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut client = app.new_client().await;
        writers.push(tokio::spawn(async move {
            let mut sequences = Vec::new();
            for n in 0..PER_WRITER {
                let resp = client
                    .append(req(numbered(&format!("writer/{w}"), n)))
                    .await
                    .expect("racing append");
                sequences.push(resp.into_inner().entry.unwrap().sequence);
            }
            sequences
        }));
    }
    let mut subscribers = Vec::new();
    for (from, subject) in [(1u64, ""), (1000, ""), (0, ""), (1, "writer/1")] {
        let mut client = app.new_client().await;
        subscribers.push(tokio::spawn(async move {
            let request = SubscribeRequest {
                from_sequence: from,
                subject: subject.into(),
                ..Default::default()
            };
            let mut stream = client
                .subscribe(request)
                .await
                .expect("subscribe")
                .into_inner();
            let count = if subject.is_empty() {
                TOTAL + 1 - from.max(1)
            } else {
                PER_WRITER as u64
            };
            let mut got = Vec::new();
            for _ in 0..count {
                got.push(next_entry(&mut stream).await);
            }
            (from.max(1), subject, got)
        }));
    }

    let mut writer_1 = Vec::new();
    for (w, writer) in writers.into_iter().enumerate() {
        let sequences = within_for(Duration::from_secs(120), "a racing writer", writer)
            .await
            .unwrap();
        if w == 1 {
            writer_1 = sequences;
        }
    }
    let all = app.read_all().await;
    assert_eq!(all.len() as u64, TOTAL);
    for subscriber in subscribers {
        let (first, subject, got) =
            within_for(Duration::from_secs(120), "a subscriber", subscriber)
                .await
                .unwrap();
        let expected = if subject.is_empty() {
            (first..=TOTAL).collect::<Vec<_>>()
        } else {
            writer_1.clone()
        };
        assert_eq!(
            seqs(&got),
            expected,
            "subscriber from {first} {subject:?}: every sequence exactly once, in order"
        );
        for entry in &got {
            assert_eq!(entry, &all[entry.sequence as usize - 1]);
        }
    }
}

#[tokio::test]
async fn a_subscription_ends_when_the_server_stops() {
    let app = TestApp::spawn().await;
    let appended = app.append_event(version("a")).await;
    let mut stream = app.subscribe(SubscribeRequest::default()).await;
    // Caught up (the access entries, then the appended one): now live.
    let caught_up = take(&mut stream, SETUP_ENTRIES as usize + 1).await;
    assert_eq!(caught_up.last(), Some(&appended));

    within("stopping with an open subscription", app.stop()).await;

    // The stream ends (cleanly or with a status) instead of hanging.
    let rest = within("the subscription to end", async {
        let mut rest = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(entry) => rest.push(entry.sequence),
                Err(_) => break,
            }
        }
        rest
    })
    .await;
    assert!(rest.is_empty(), "no entries after shutdown: {rest:?}");
}
