//! Append: the entry envelope, the hash chain, the actor, GetEntry and GetHead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use govledger::proto::v1::{Event, EventKind};
use prost::Message;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_new_ledger_starts_with_its_access_entries_only() {
    let app = TestApp::spawn().await;

    let head = app.get_head().await;

    assert_eq!(head.sequence, SETUP_ENTRIES);
    let entries = app.read_all().await;
    assert_eq!(seqs(&entries), (1..=SETUP_ENTRIES).collect::<Vec<_>>());
    assert!(
        entries.iter().all(|e| e.subject == "@access"),
        "{entries:?}"
    );
    // The chain starts from 32 zero bytes and ends at the head.
    assert_eq!(
        entries[0].prev_hash,
        vec![0u8; 32],
        "entry 1's prev_hash is 32 zero bytes"
    );
    assert_linked(&entries);
    assert_eq!(head.hash, entries.last().unwrap().hash);
    // The bootstrap admin first, created by the ledger itself; then the test
    // principals, created by the admin.
    assert_eq!(entries[0].actor, "system");
    assert_eq!(entries[0].kind, EventKind::PrincipalRolesSet as i32);
    assert_eq!(entries[1].actor, "system");
    assert_eq!(entries[1].kind, EventKind::TokenIssued as i32);
    assert!(
        entries[2..].iter().all(|e| e.actor == "admin"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn append_returns_a_complete_entry() {
    let app = TestApp::spawn().await;
    let setup = app.get_head().await;
    assert_eq!(setup.sequence, SETUP_ENTRIES);
    let event = version("support-bot/triage-prompt").event();

    let resp = app.append(req(event.clone())).await.expect("Append failed");

    assert!(!resp.deduplicated, "a first append is not deduplicated");
    let entry = resp.entry.expect("entry is set");
    assert_eq!(entry.sequence, SETUP_ENTRIES + 1);
    assert_eq!(
        entry.prev_hash, setup.hash,
        "the first appended entry's prev_hash is the hash of the last access entry"
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
    assert_eq!(entry.actor, TESTER);
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

    let stored = app
        .get_entry(SETUP_ENTRIES + 1)
        .await
        .expect("GetEntry(SETUP_ENTRIES + 1)");
    assert_eq!(stored, entry, "GetEntry returns what Append returned");
    let head = app.get_head().await;
    assert_eq!(head.sequence, SETUP_ENTRIES + 1);
    assert_eq!(head.hash, entry.hash);
    assert_eq!(head.recorded_at, entry.recorded_at);
}

#[tokio::test]
async fn entries_form_a_hash_chain_in_time_order() {
    let app = TestApp::spawn().await;
    let setup = app.get_head().await;

    let mut entries = Vec::new();
    for event in all_kinds("support-bot/triage-prompt") {
        entries.push(app.append_event(event).await);
    }

    assert_eq!(
        seqs(&entries),
        (SETUP_ENTRIES + 1..=SETUP_ENTRIES + 8).collect::<Vec<_>>()
    );
    assert_eq!(entries[0].prev_hash, setup.hash);
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
    assert_eq!(head.sequence, SETUP_ENTRIES + 8);
    assert_eq!(head.hash, entries[7].hash);
}

#[tokio::test]
async fn the_same_event_appended_twice_without_a_key_makes_two_entries() {
    let app = TestApp::spawn().await;
    // SETUP_ENTRIES + 1: what the eval is about.
    app.append_event(version("search/ranker")).await;
    let event = eval("search/ranker").event();

    let first = app.append_event(event.clone()).await;
    let second = app.append_event(event.clone()).await;

    assert_eq!(
        (first.sequence, second.sequence),
        (SETUP_ENTRIES + 2, SETUP_ENTRIES + 3)
    );
    assert_eq!(first.payload, second.payload);
    assert_eq!(first.payload_digest, second.payload_digest);
    assert_ne!(
        first.hash, second.hash,
        "the hash covers the sequence and the chain"
    );
    assert_ne!(first.event_id, second.event_id);
}

#[tokio::test]
async fn the_actor_is_the_authenticated_principal() {
    let app = TestApp::spawn().await;
    // Registered by a third principal: nobody approves their own version.
    let registered = app
        .append_as("release-bot", req(version("support-bot/triage-prompt")))
        .await
        .expect("Append as release-bot")
        .entry
        .unwrap();

    let named = app
        .append_as("ci-pipeline", req(approval("support-bot/triage-prompt")))
        .await
        .expect("Append as ci-pipeline")
        .entry
        .unwrap();
    let default = app
        .append_event(approval("support-bot/triage-prompt"))
        .await;

    assert_eq!(registered.actor, "release-bot");
    assert_eq!(named.actor, "ci-pipeline");
    assert_eq!(default.actor, TESTER);
    let base = SETUP_ENTRIES;
    assert_eq!(named.sequence, base + 2);
    assert_eq!(app.get_entry(base + 1).await.unwrap().actor, "release-bot");
    assert_eq!(app.get_entry(base + 2).await.unwrap().actor, "ci-pipeline");
    assert_eq!(app.get_entry(base + 3).await.unwrap().actor, TESTER);
}

#[tokio::test]
async fn the_legacy_actor_header_is_rejected_and_appends_nothing() {
    let app = TestApp::spawn().await;
    app.append_event(version("a")).await;
    let before = app.get_head().await;

    let mut client = app.client.clone();
    for claimed in ["alice", TESTER] {
        let mut request = tonic::Request::new(req(numbered("a", 3)));
        request
            .metadata_mut()
            .insert(LEGACY_ACTOR_HEADER, claimed.parse().unwrap());
        let single = within("Append", client.append(request)).await;
        assert_status(single, Code::InvalidArgument, LEGACY_ACTOR_HEADER);
        let mut request = tonic::Request::new(batch(vec![numbered("a", 3)]));
        request
            .metadata_mut()
            .insert(LEGACY_ACTOR_HEADER, claimed.parse().unwrap());
        let batched = within("AppendBatch", client.append_batch(request)).await;
        assert_status(batched, Code::InvalidArgument, "no longer accepted");
    }
    assert_eq!(app.get_head().await, before, "head changed");
}

#[tokio::test]
async fn principal_names_follow_the_identity_rule_and_system_is_reserved() {
    let app = TestApp::spawn().await;
    let mut admin = app.access_as("admin").await;
    let before = app.get_head().await;
    let too_long = "a".repeat(129);
    for (name, rule) in [
        ("has space", "must be 1-128 characters"),
        (too_long.as_str(), "must be 1-128 characters"),
        ("system", "reserved"),
        ("", "must be 1-128 characters"),
    ] {
        let created = admin
            .create_token(govledger::proto::v1::CreateTokenRequest {
                principal: name.to_owned(),
                grants: writer_grants(),
                description: String::new(),
            })
            .await;
        let status = created.expect_err(name);
        assert_eq!(status.code(), Code::InvalidArgument, "{name:?}: {status:?}");
        assert!(
            status.message().starts_with("principal: ") && status.message().contains(rule),
            "{name:?}: {status:?}"
        );
    }
    assert_eq!(app.get_head().await, before, "head changed");

    // The longest valid name is fine, and is the actor of what it appends.
    let longest = "b".repeat(128);
    let entry = app
        .append_as(&longest, req(numbered("a", 3)))
        .await
        .unwrap()
        .entry
        .unwrap();
    assert_eq!(entry.actor, longest);
}

#[tokio::test]
async fn get_entry_outside_the_log_is_not_found() {
    let app = TestApp::spawn().await;
    let base = SETUP_ENTRIES;

    assert_status(app.get_entry(base + 1).await, Code::NotFound, "");
    app.append_event(numbered("a", 1)).await;
    app.append_event(numbered("a", 2)).await;

    assert_status(app.get_entry(0).await, Code::NotFound, "");
    assert_status(app.get_entry(base + 3).await, Code::NotFound, "");
    assert_status(app.get_entry(u64::MAX).await, Code::NotFound, "");
    assert_eq!(app.get_entry(base + 2).await.unwrap().sequence, base + 2);
    assert_eq!(app.get_entry(1).await.unwrap().sequence, 1);
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
