//! Append: the entry envelope, the hash chain, the actor, GetEntry and GetHead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use govledger::proto::v1::{Event, EventKind};
use prost::Message;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn an_empty_ledger_has_head_zero_and_a_zero_hash() {
    let app = TestApp::spawn().await;

    let head = app.get_head().await;

    assert_eq!(head.sequence, 0);
    assert_eq!(head.hash, vec![0u8; 32]);
}

#[tokio::test]
async fn append_returns_a_complete_entry() {
    let app = TestApp::spawn().await;
    let event = version("support-bot/triage-prompt").event();

    let resp = app.append(req(event.clone())).await.expect("Append failed");

    assert!(!resp.deduplicated, "a first append is not deduplicated");
    let entry = resp.entry.expect("entry is set");
    assert_eq!(entry.sequence, 1);
    assert_eq!(
        entry.prev_hash,
        vec![0u8; 32],
        "entry 1's prev_hash is 32 zero bytes"
    );
    assert_eq!(entry.hash.len(), 32);
    assert_ne!(entry.hash, vec![0u8; 32]);
    assert_eq!(
        entry.event.as_ref(),
        Some(&event),
        "the event reads back equal"
    );
    assert_eq!(
        entry.payload,
        event.encode_to_vec(),
        "payload = protobuf encoding of the event"
    );
    assert_eq!(Event::decode(&entry.payload[..]).unwrap(), event);
    assert_eq!(
        entry.payload_digest,
        digest(&entry.payload),
        "payload_digest = BLAKE3(payload)"
    );
    assert_eq!(entry.kind, EventKind::VersionRegistered as i32);
    assert_eq!(entry.subject, "support-bot/triage-prompt");
    assert!(
        entry.ends_atomic_group,
        "a single append ends its atomic group"
    );
    assert_eq!(entry.actor, "anonymous");
    assert_eq!(entry.idempotency_key, "");
    let id = uuid::Uuid::parse_str(&entry.event_id)
        .unwrap_or_else(|e| panic!("event_id {:?} is not a UUID: {e}", entry.event_id));
    assert_eq!(id.get_version_num(), 7, "event_id is a UUID v7");
    let recorded = entry.recorded_at.expect("recorded_at is set");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (recorded.seconds - now).abs() < 300,
        "recorded_at {recorded:?} is the server clock (now = {now})"
    );

    let stored = app.get_entry(1).await.expect("GetEntry(1)");
    assert_eq!(stored, entry, "GetEntry returns what Append returned");
    let head = app.get_head().await;
    assert_eq!(head.sequence, 1);
    assert_eq!(head.hash, entry.hash);
    assert_eq!(head.recorded_at, entry.recorded_at);
}

#[tokio::test]
async fn entries_form_a_hash_chain_in_time_order() {
    let app = TestApp::spawn().await;

    let mut entries = Vec::new();
    for event in all_kinds("support-bot/triage-prompt") {
        entries.push(app.append_event(event).await);
    }

    assert_eq!(seqs(&entries), (1..=8).collect::<Vec<_>>());
    assert_eq!(entries[0].prev_hash, vec![0u8; 32]);
    assert_linked(&entries);
    let mut ids: Vec<_> = entries.iter().map(|e| e.event_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), entries.len(), "event ids are unique");
    let mut hashes: Vec<_> = entries.iter().map(|e| e.hash.clone()).collect();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), entries.len(), "hashes are unique");
    for entry in &entries {
        assert!(entry.ends_atomic_group);
        assert_eq!(app.get_entry(entry.sequence).await.unwrap(), *entry);
    }
    let head = app.get_head().await;
    assert_eq!(head.sequence, 8);
    assert_eq!(head.hash, entries[7].hash);
}

#[tokio::test]
async fn the_same_event_appended_twice_without_a_key_makes_two_entries() {
    let app = TestApp::spawn().await;
    app.append_event(version("search/ranker")).await; // 1: what the eval is about
    let event = eval("search/ranker").event();

    let first = app.append_event(event.clone()).await;
    let second = app.append_event(event.clone()).await;

    assert_eq!((first.sequence, second.sequence), (2, 3));
    assert_eq!(first.payload, second.payload);
    assert_eq!(first.payload_digest, second.payload_digest);
    assert_ne!(
        first.hash, second.hash,
        "the hash covers the sequence and the chain"
    );
    assert_ne!(first.event_id, second.event_id);
}

#[tokio::test]
async fn the_actor_comes_from_the_request_header() {
    let app = TestApp::spawn().await;
    // Registered by a third actor: nobody approves their own version.
    let registered = app
        .append_as("release-bot", req(version("support-bot/triage-prompt")))
        .await
        .expect("Append with an actor header")
        .entry
        .unwrap();

    let named = app
        .append_as("ci-pipeline", req(approval("support-bot/triage-prompt")))
        .await
        .expect("Append with an actor header")
        .entry
        .unwrap();
    let anonymous = app
        .append_event(approval("support-bot/triage-prompt"))
        .await;

    assert_eq!(registered.actor, "release-bot");
    assert_eq!(named.actor, "ci-pipeline");
    assert_eq!(anonymous.actor, "anonymous");
    assert_eq!(named.sequence, 2);
    assert_eq!(app.get_entry(1).await.unwrap().actor, "release-bot");
    assert_eq!(app.get_entry(2).await.unwrap().actor, "ci-pipeline");
    assert_eq!(app.get_entry(3).await.unwrap().actor, "anonymous");
}

#[tokio::test]
async fn an_invalid_actor_header_is_rejected_and_appends_nothing() {
    let app = TestApp::spawn().await;
    app.append_event(version("a")).await;
    let before = app.get_head().await;
    let too_long = "a".repeat(129);

    // An event that would be accepted with a valid actor.
    for actor in ["has space", too_long.as_str()] {
        let single = app.append_as(actor, req(numbered("a", 3))).await;
        assert_status(single, Code::InvalidArgument, "");
        let batched = app
            .append_batch_as(actor, batch(vec![numbered("a", 3)]))
            .await;
        assert_status(batched, Code::InvalidArgument, "");
        assert_eq!(
            app.get_head().await,
            before,
            "actor {actor:?}: head changed"
        );
    }
    // The longest valid actor is fine.
    let longest = "b".repeat(128);
    let entry = app
        .append_as(&longest, req(numbered("a", 3)))
        .await
        .unwrap()
        .entry
        .unwrap();
    assert_eq!(entry.actor, longest);
}

/// Derived entries (override and drift incidents) carry the actor `system`:
/// no caller may claim it.
#[tokio::test]
async fn the_actor_system_is_reserved() {
    let app = TestApp::spawn().await;
    app.append_event(version("a")).await;
    let before = app.get_head().await;

    let single = app.append_as("system", req(numbered("a", 3))).await;
    assert_status(single, Code::InvalidArgument, ACTOR_HEADER);
    let batched = app
        .append_batch_as("system", batch(vec![numbered("a", 3)]))
        .await;
    assert_status(batched, Code::InvalidArgument, ACTOR_HEADER);

    assert_eq!(app.get_head().await, before, "head changed");
}

#[tokio::test]
async fn get_entry_outside_the_log_is_not_found() {
    let app = TestApp::spawn().await;

    assert_status(app.get_entry(1).await, Code::NotFound, "");
    app.append_event(numbered("a", 1)).await;
    app.append_event(numbered("a", 2)).await;

    assert_status(app.get_entry(0).await, Code::NotFound, "");
    assert_status(app.get_entry(3).await, Code::NotFound, "");
    assert_status(app.get_entry(u64::MAX).await, Code::NotFound, "");
    assert_eq!(app.get_entry(2).await.unwrap().sequence, 2);
}

#[tokio::test]
async fn recorded_at_never_decreases_over_many_appends() {
    let app = TestApp::spawn().await;
    let mut entries = Vec::new();
    for n in 0..50 {
        entries.push(app.append_event(numbered("a", n)).await);
    }
    // Within a bounded time anyway.
    let first = ts(&entries[0]);
    let last = ts(&entries[49]);
    assert!(last >= first);
    assert!(
        Duration::from_secs((last.0 - first.0) as u64) < Duration::from_secs(120),
        "recorded_at drifted implausibly"
    );
    assert_linked(&entries);
}
