//! Restarts: everything acknowledged is there after stop and start, and the
//! indexes are rebuilt from the journal.

use govledger::proto::v1::{Entry, EvalRecorded, EventKind, ReadEntriesRequest};

use crate::helpers::*;

/// Reads by each subject, kind and actor, for comparing before and after.
async fn filtered_views(
    app: &TestApp,
    subjects: &[&str],
    actors: &[&str],
) -> Vec<(String, Vec<Entry>)> {
    let mut views = Vec::new();
    for subject in subjects {
        let r = ReadEntriesRequest {
            subject: subject.to_string(),
            ..Default::default()
        };
        views.push((
            format!("subject {subject}"),
            app.read_entries(r).await.unwrap(),
        ));
    }
    for kind in ALL_KINDS {
        let r = ReadEntriesRequest {
            kind: kind as i32,
            ..Default::default()
        };
        views.push((format!("kind {kind:?}"), app.read_entries(r).await.unwrap()));
    }
    for actor in actors {
        let r = ReadEntriesRequest {
            actor: actor.to_string(),
            ..Default::default()
        };
        views.push((format!("actor {actor}"), app.read_entries(r).await.unwrap()));
    }
    views
}

fn assert_views_match_scan(views: &[(String, Vec<Entry>)], all: &[Entry]) {
    for (name, got) in views {
        let expected: Vec<u64> = all
            .iter()
            .filter(|e| {
                if let Some(s) = name.strip_prefix("subject ") {
                    e.subject == s
                } else if let Some(a) = name.strip_prefix("actor ") {
                    e.actor == a
                } else {
                    format!("kind {:?}", EventKind::try_from(e.kind).unwrap()) == *name
                }
            })
            .map(|e| e.sequence)
            .collect();
        assert_eq!(seqs(got), expected, "{name}");
    }
}

async fn populate(app: &TestApp, round: usize) {
    for (i, subject) in ["a", "b/c"].iter().enumerate() {
        app.append_as(
            "alice",
            keyed(
                numbered(subject, round * 10 + i),
                &format!("key-{round}-{i}"),
            ),
        )
        .await
        .unwrap();
    }
    app.append_batch_as("ci-bot", batch(all_kinds(&format!("round/{round}"))))
        .await
        .unwrap();
    // An eval of the version of "a" this round registered.
    app.append_event(EvalRecorded {
        version: format!("v{}", round * 10),
        ..eval("a")
    })
    .await;
}

#[tokio::test]
async fn acknowledged_entries_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_at(dir.path()).await;
    populate(&app, 0).await;
    populate(&app, 1).await;
    let before = app.read_all().await;
    let head = app.get_head().await;
    app.stop().await;

    let app = TestApp::spawn_at(dir.path()).await;

    assert_eq!(app.get_head().await, head);
    let after = app.read_all().await;
    assert_eq!(
        after, before,
        "every entry reads back identical (hash, payload, envelope)"
    );
    for entry in &before {
        assert_eq!(app.get_entry(entry.sequence).await.unwrap(), *entry);
    }
    app.assert_chain_valid().await;
    // The chain continues where it stopped, in time order.
    let next = app.append_event(version("a")).await;
    assert_eq!(next.sequence, head.sequence + 1);
    assert_eq!(next.prev_hash, head.hash);
    assert!(ts(&next) >= ts(before.last().unwrap()));
    // And a second restart keeps that too.
    let app = app.restart().await;
    assert_eq!(app.get_entry(next.sequence).await.unwrap(), next);
    app.assert_chain_valid().await;
}

/// The indexes (the catalog) are not stored: every start rebuilds them from
/// the journal while verifying it. Filters and idempotency keys must answer
/// exactly as before the restart, for entries from both runs.
#[tokio::test]
async fn indexes_are_rebuilt_from_the_journal_at_every_start() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_at(dir.path()).await;
    populate(&app, 0).await;
    populate(&app, 1).await;
    let subjects = ["a", "b/c", "round/0", "round/1", "round/2"];
    let actors = ["alice", "ci-bot", "anonymous"];
    let views = filtered_views(&app, &subjects, &actors).await;
    app.stop().await;

    let app = TestApp::spawn_at(dir.path()).await;
    assert_eq!(
        filtered_views(&app, &subjects, &actors).await,
        views,
        "filtered reads are the same after a restart"
    );
    populate(&app, 2).await;
    let all = app.read_all().await;
    let app = app.restart().await;

    let rebuilt = filtered_views(&app, &subjects, &actors).await;
    assert_views_match_scan(&rebuilt, &all);
    for entry in &all {
        assert_eq!(app.get_entry(entry.sequence).await.unwrap(), *entry);
    }
    for key in ["key-0-0", "key-2-1"] {
        let original = all.iter().find(|e| e.idempotency_key == key).unwrap();
        let round: usize = key[4..5].parse().unwrap();
        let i: usize = key[6..7].parse().unwrap();
        let subject = ["a", "b/c"][i];
        let retry = app
            .append(keyed(numbered(subject, round * 10 + i), key))
            .await
            .unwrap();
        assert!(retry.deduplicated, "{key} is known after the rebuild");
        assert_eq!(retry.entry.unwrap().sequence, original.sequence);
    }
    let next = app.append_event(version("a")).await;
    assert_eq!(next.sequence, all.len() as u64 + 1);
    assert_eq!(next.prev_hash, all.last().unwrap().hash);
    app.assert_chain_valid().await;
}
