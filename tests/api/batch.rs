//! AppendBatch: consecutive sequences, all or nothing.

use govledger::proto::v1::{
    AppendBatchRequest, ApprovalRecorded, BatchItem, EventKind, VersionRegistered,
};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_batch_appends_consecutive_entries_ending_one_atomic_group() {
    let app = TestApp::spawn().await;
    let before: Vec<_> = vec![
        app.append_event(version("a")).await,
        app.append_event(version("b")).await,
    ];
    let events = all_kinds("support-bot/triage-prompt")[..5].to_vec();

    let resp = app
        .append_batch(batch(events.clone()))
        .await
        .expect("AppendBatch");

    assert!(!resp.deduplicated);
    let entries = resp.entries;
    let base = SETUP_ENTRIES;
    assert_eq!(
        seqs(&entries),
        vec![base + 3, base + 4, base + 5, base + 6, base + 7]
    );
    assert_eq!(
        entries[0].prev_hash, before[1].hash,
        "the batch continues the chain"
    );
    assert_linked(&entries);
    for (i, (entry, event)) in entries.iter().zip(&events).enumerate() {
        assert_eq!(
            entry.event.as_ref(),
            Some(event),
            "item {i} reads back equal"
        );
        assert_eq!(entry.kind, kind_of(event) as i32);
        assert_eq!(entry.subject, "support-bot/triage-prompt");
        assert_eq!(entry.payload_digest, digest(&entry.payload));
        assert_eq!(
            entry.ends_atomic_group,
            i == entries.len() - 1,
            "ends_atomic_group only on the batch's last entry (item {i})"
        );
        assert_eq!(app.get_entry(entry.sequence).await.unwrap(), *entry);
    }
    let head = app.get_head().await;
    assert_eq!(head.sequence, base + 7);
    assert_eq!(head.hash, entries[4].hash);
    // The next single append follows the batch.
    let next = app.append_event(numbered("a", 3)).await;
    assert_eq!(next.sequence, base + 8);
    assert_eq!(next.prev_hash, entries[4].hash);
    assert!(next.ends_atomic_group);
}

#[tokio::test]
async fn a_batch_carries_the_actor_on_every_entry() {
    let app = TestApp::spawn().await;

    let entries = app
        .append_batch_as("release-bot", batch(all_kinds("a")))
        .await
        .expect("AppendBatch")
        .entries;

    assert_eq!(entries.len(), 8);
    assert!(
        entries.iter().all(|e| e.actor == "release-bot"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn a_batch_with_one_invalid_item_appends_nothing() {
    let app = TestApp::spawn().await;
    app.append_event(version("a")).await;
    let before = app.get_head().await;
    // Valid items but one (version labels 10..14 are new for "a").
    let mut items: Vec<BatchItem> = (10..15).map(|n| item(numbered("a", n))).collect();
    items[3] = item(VersionRegistered {
        subject: "a//b".into(),
        ..version("a")
    });

    let result = app
        .append_batch(AppendBatchRequest {
            items,
            expected_head_sequence: None,
        })
        .await;

    assert_status(
        result,
        Code::InvalidArgument,
        "items[3].event.version_registered.subject",
    );
    assert_eq!(
        app.get_head().await,
        before,
        "a rejected batch leaves the head unchanged"
    );
    assert_eq!(before.sequence, SETUP_ENTRIES + 1);
    assert_status(app.get_entry(before.sequence + 1).await, Code::NotFound, "");
    let next = app.append_event(numbered("a", 10)).await;
    assert_eq!(
        next.sequence,
        before.sequence + 1,
        "no sequence was consumed by the rejected batch"
    );
}

#[tokio::test]
async fn a_batch_of_1000_events_is_accepted() {
    let app = TestApp::spawn().await;
    // The versions approved, registered by another actor first (entries
    // SETUP_ENTRIES + 1 to SETUP_ENTRIES + 7).
    for s in 0..7 {
        app.register(&format!("s{s}")).await;
    }
    // One approver approves each (version, environment) once.
    let events: Vec<_> = (0..1000)
        .map(|n| {
            ApprovalRecorded {
                environment: format!("env-{n}"),
                ..approval(&format!("s{}", n % 7))
            }
            .event()
        })
        .collect();

    let entries = app.append_events(events).await;

    let base = SETUP_ENTRIES;
    assert_eq!(seqs(&entries), (base + 8..=base + 1007).collect::<Vec<_>>());
    assert_linked(&entries);
    assert_eq!(entries.iter().filter(|e| e.ends_atomic_group).count(), 1);
    assert!(entries[999].ends_atomic_group);
    assert_eq!(app.get_head().await.sequence, base + 1007);
    let read = app
        .read_entries(govledger::proto::v1::ReadEntriesRequest {
            kind: EventKind::ApprovalRecorded as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(read.len(), 1000);
}

#[tokio::test]
async fn a_batch_of_almost_16_mib_is_accepted() {
    let app = TestApp::spawn().await;
    // 16 events of ~1 MB each: under 1 MiB per event, under 16 MiB in all.
    let events: Vec<_> = (0..16)
        .map(|n| version_with_content(&format!("big/{n}"), 1_000_000).event())
        .collect();

    let entries = app.append_events(events.clone()).await;

    assert_eq!(
        seqs(&entries),
        (SETUP_ENTRIES + 1..=SETUP_ENTRIES + 16).collect::<Vec<_>>()
    );
    let stored = app.get_entry(SETUP_ENTRIES + 16).await.unwrap();
    assert_eq!(stored.event.as_ref(), Some(&events[15]));
}
