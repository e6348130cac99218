//! VerifyChain: a healthy log verifies; one changed byte on disk is reported
//! at its sequence.

use crate::helpers::*;

#[tokio::test]
async fn a_healthy_log_verifies() {
    let app = TestApp::spawn().await;
    for subject in ["a", "b"] {
        app.append_events(all_kinds(subject)).await;
        app.append_event(numbered(subject, 3)).await;
    }
    let head = app.get_head().await;
    assert_eq!(head.sequence, SETUP_ENTRIES + 18);

    let report = app.verify_chain(0, 0).await;

    assert!(report.valid, "{report:?}");
    assert_eq!(
        report.entries_checked,
        SETUP_ENTRIES + 18,
        "the access entries are checked too"
    );
    assert_eq!(report.first_bad_sequence, 0);
    assert_eq!(report.from_sequence, 1, "from 0 means from 1");
    assert_eq!(
        report.to_sequence,
        SETUP_ENTRIES + 18,
        "to 0 means the head"
    );
    assert_eq!(report.head_hash, head.hash);
}

#[tokio::test]
async fn a_range_verifies_and_reports_its_last_hash() {
    let app = TestApp::spawn().await;
    let entries = app
        .append_events((0..10).map(|n| numbered("a", n)).collect())
        .await;

    let s = SETUP_ENTRIES;
    assert_eq!(entries[0].sequence, s + 1);

    let report = app.verify_chain(s + 3, s + 7).await;

    assert!(report.valid, "{report:?}");
    assert_eq!((report.from_sequence, report.to_sequence), (s + 3, s + 7));
    assert_eq!(report.entries_checked, 5);
    assert_eq!(report.head_hash, entries[6].hash);
    let single = app.verify_chain(s + 10, s + 10).await;
    assert!(single.valid, "{single:?}");
    assert_eq!(single.entries_checked, 1);
    assert_eq!(single.head_hash, entries[9].hash);
}

#[tokio::test]
async fn a_fresh_log_verifies() {
    // A fresh log holds only its access entries.
    let app = TestApp::spawn().await;
    let head = app.get_head().await;
    assert_eq!(head.sequence, SETUP_ENTRIES);

    let report = app.verify_chain(0, 0).await;

    assert!(report.valid, "{report:?}");
    assert_eq!(report.entries_checked, SETUP_ENTRIES);
    assert_eq!(report.first_bad_sequence, 0);
    assert_eq!(report.head_hash, head.hash);
}

#[tokio::test]
async fn a_byte_changed_on_disk_is_reported_at_its_sequence() {
    // The test's own entries, after the access entries.
    for bad in [1u64, 6, 10].map(|n| SETUP_ENTRIES + n) {
        let app = TestApp::spawn().await;
        // Large payloads, so the middle of each record lies inside the payload.
        for n in 0..10 {
            app.append_event(version_with_content(&format!("s/{n}"), 4096))
                .await;
        }
        assert!(app.verify_chain(0, 0).await.valid);

        tamper_with_entry(&app.data_dir, bad);

        let report = app.verify_chain(0, 0).await;
        assert!(!report.valid, "entry {bad} was changed: {report:?}");
        assert_eq!(report.first_bad_sequence, bad, "{report:?}");
        assert!(!report.reason.is_empty(), "the report says why: {report:?}");
        let before = app.verify_chain(1, bad - 1).await;
        assert!(before.valid, "entries before {bad} are intact: {before:?}");
        assert_eq!(before.entries_checked, bad - 1);
        let from_bad = app.verify_chain(bad, 0).await;
        assert!(!from_bad.valid, "{from_bad:?}");
        assert_eq!(from_bad.first_bad_sequence, bad);
    }
}
