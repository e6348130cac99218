//! Start-up recovery: a torn last record is cut off; damage before the tail
//! stops start-up with an error naming the entry.

use govledger::{Ledger, LedgerConfig};
use tonic::Code;

use crate::helpers::*;

/// A stopped ledger with `n` single-entry appends of sizeable payloads.
async fn stopped_ledger(n: usize) -> (StoppedDir, Vec<govledger::proto::v1::Entry>) {
    let app = TestApp::spawn().await;
    for i in 0..n {
        app.append_event(version_with_content(&format!("s/{i}"), 2048))
            .await;
    }
    let entries = app.read_all().await;
    (app.stop_keep_dir().await, entries)
}

#[tokio::test]
async fn a_torn_last_record_is_cut_off_at_start_up() {
    let (stopped, entries) = stopped_ledger(6).await;
    let last = record(&stopped.path, 6);
    assert!(last.len > 4, "{last:?}");

    for cut in [
        last.offset + 1,
        last.offset + last.len / 2,
        last.offset + last.len - 1,
        last.offset,
    ] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&stopped.path, copy.path());
        truncate(&segment_in(&last, &stopped.path, copy.path()), cut);

        // Ledger::open (inside spawn_at) must succeed.
        let app = TestApp::spawn_at(copy.path()).await;

        let head = app.get_head().await;
        assert_eq!(
            head.sequence, 5,
            "cut at {cut}: recovered to the last whole entry"
        );
        assert_eq!(head.hash, entries[4].hash);
        app.assert_chain_valid().await;
        assert_status(app.get_entry(6).await, Code::NotFound, "");
        assert_eq!(app.read_all().await, entries[..5]);
        // Appending continues the recovered chain.
        let next = app.append_event(version("after")).await;
        assert_eq!(next.sequence, 6);
        assert_eq!(next.prev_hash, entries[4].hash);
        let app = app.restart().await;
        assert_eq!(app.get_entry(6).await.unwrap(), next);
        app.assert_chain_valid().await;
        app.stop().await;
    }
}

#[tokio::test]
async fn a_torn_batch_is_dropped_whole() {
    let app = TestApp::spawn().await;
    for i in 0..4 {
        app.append_event(version_with_content(&format!("s/{i}"), 1024))
            .await;
    }
    let batch_entries = app
        .append_events(
            (0..5)
                .map(|i| version_with_content(&format!("b/{i}"), 1024).event())
                .collect(),
        )
        .await;
    assert_eq!(seqs(&batch_entries), vec![5, 6, 7, 8, 9]);
    let before = app.read_all().await;
    let stopped = app.stop_keep_dir().await;
    let last = record(&stopped.path, 9);

    truncate(
        &segment_path(&last, &stopped.path),
        last.offset + last.len / 2,
    );
    let app = TestApp::spawn_at(&stopped.path).await;

    let head = app.get_head().await;
    assert_eq!(
        head.sequence, 4,
        "the whole batch is gone: it was one atomic group"
    );
    assert_eq!(head.hash, before[3].hash);
    for seq in 5..=9 {
        assert_status(app.get_entry(seq).await, Code::NotFound, "");
    }
    assert_eq!(app.read_all().await, before[..4]);
    app.assert_chain_valid().await;
    let next = app.append_event(version("after")).await;
    assert_eq!(next.sequence, 5);
    assert_eq!(next.prev_hash, before[3].hash);
}

#[tokio::test]
async fn damage_before_the_tail_stops_start_up_naming_the_entry() {
    let (stopped, _) = stopped_ledger(10).await;

    tamper_with_entry(&stopped.path, 3);

    match Ledger::open(LedgerConfig::new(&stopped.path)) {
        Ok(_) => panic!("a ledger damaged at entry 3 was opened"),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("entry 3"),
                "the error names the entry: {message:?}"
            );
        }
    }
}

#[tokio::test]
async fn damage_is_not_mistaken_for_a_torn_tail() {
    // A changed byte in the middle of the journal must not be "recovered" by
    // cutting everything from there on.
    let (stopped, _) = stopped_ledger(10).await;
    tamper_with_entry(&stopped.path, 9);

    assert!(
        Ledger::open(LedgerConfig::new(&stopped.path)).is_err(),
        "damage at entry 9 of 10 was silently cut off or served"
    );
}
