//! Start-up recovery: a torn last record is cut off; damage before the tail
//! stops start-up with an error naming the entry.
//!
//! A fresh log starts with its access entries (one atomic group, sequences
//! 1..=SETUP_ENTRIES): the records damaged here are always the test's own.

use govledger::{Ledger, LedgerConfig};
use tonic::Code;

use crate::helpers::*;

/// A stopped ledger with `n` single-entry appends of sizeable payloads (at
/// sequences SETUP_ENTRIES + 1 ..= SETUP_ENTRIES + n), and its whole log.
async fn stopped_ledger(n: usize) -> (StoppedDir, Vec<govledger::proto::v1::Entry>) {
    let app = TestApp::spawn().await;
    for i in 0..n {
        app.append_event(version_with_content(&format!("s/{i}"), 2048))
            .await;
    }
    let entries = app.read_all().await;
    assert_eq!(entries.len(), SETUP_ENTRIES as usize + n);
    (app.stop_keep_dir().await, entries)
}

#[tokio::test]
async fn a_torn_last_record_is_cut_off_at_start_up() {
    let (stopped, entries) = stopped_ledger(6).await;
    let s = SETUP_ENTRIES;
    let (five, last_whole) = ((s + 5) as usize, &entries[(s + 4) as usize]);
    let last = record(&stopped.path, s + 6);
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
            head.sequence,
            s + 5,
            "cut at {cut}: recovered to the last whole entry"
        );
        assert_eq!(head.hash, last_whole.hash);
        app.assert_chain_valid().await;
        assert_status(app.get_entry(s + 6).await, Code::NotFound, "");
        assert_eq!(app.read_all().await, entries[..five]);
        // Appending continues the recovered chain.
        let next = app.append_event(version("after")).await;
        assert_eq!(next.sequence, s + 6);
        assert_eq!(next.prev_hash, last_whole.hash);
        let app = app.restart().await;
        assert_eq!(app.get_entry(s + 6).await.unwrap(), next);
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
    let s = SETUP_ENTRIES;
    assert_eq!(seqs(&batch_entries), (s + 5..=s + 9).collect::<Vec<_>>());
    let before = app.read_all().await;
    let (four, last_single) = ((s + 4) as usize, &before[(s + 3) as usize]);
    let stopped = app.stop_keep_dir().await;
    let last = record(&stopped.path, s + 9);

    truncate(
        &segment_path(&last, &stopped.path),
        last.offset + last.len / 2,
    );
    let app = TestApp::spawn_at(&stopped.path).await;

    let head = app.get_head().await;
    assert_eq!(
        head.sequence,
        s + 4,
        "the whole batch is gone: it was one atomic group"
    );
    assert_eq!(head.hash, last_single.hash);
    for seq in s + 5..=s + 9 {
        assert_status(app.get_entry(seq).await, Code::NotFound, "");
    }
    assert_eq!(app.read_all().await, before[..four]);
    app.assert_chain_valid().await;
    let next = app.append_event(version("after")).await;
    assert_eq!(next.sequence, s + 5);
    assert_eq!(next.prev_hash, last_single.hash);
}

#[tokio::test]
async fn damage_before_the_tail_stops_start_up_naming_the_entry() {
    let (stopped, _) = stopped_ledger(10).await;
    let bad = SETUP_ENTRIES + 3;

    tamper_with_entry(&stopped.path, bad);

    match Ledger::open(LedgerConfig::new(&stopped.path)) {
        Ok(_) => panic!("a ledger damaged at entry {bad} was opened"),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(&format!("entry {bad}")),
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
    // The test's 9th entry of 10, after the access entries.
    let bad = SETUP_ENTRIES + 9;
    tamper_with_entry(&stopped.path, bad);

    assert!(
        Ledger::open(LedgerConfig::new(&stopped.path)).is_err(),
        "damage at entry {bad} (of {}) was silently cut off or served",
        SETUP_ENTRIES + 10
    );
}
