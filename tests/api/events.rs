//! Every event kind is appended and read back equal.

use govledger::proto::v1::{
    Entry, Event, EventKind, IncidentOpened, PolicySet, ReadEntriesRequest, Severity, SubjectKind,
    VersionRegistered,
};

use crate::helpers::*;

/// Events with only their required fields set.
fn minimal_events() -> Vec<Event> {
    vec![
        VersionRegistered {
            subject: "m/prompt".into(),
            subject_kind: SubjectKind::AgentConfig as i32,
            version: "1".into(),
            content_digest: vec![0xAB; 32],
            ..Default::default()
        }
        .event(),
        IncidentOpened {
            incident_id: "INC-1".into(),
            subject: "m/prompt".into(),
            severity: Severity::Low as i32,
            category: 6,
            description: "odd".into(),
            ..Default::default()
        }
        .event(),
        PolicySet {
            subject: "*".into(),
            environment: "staging".into(),
            ..Default::default()
        }
        .event(),
    ]
}

/// The entries of `app`'s whole log after its access entries, which must
/// come first and be exactly the setup ones.
async fn read_own(app: &TestApp) -> Vec<Entry> {
    let mut all = app.read_all().await;
    assert!(all.len() as u64 >= SETUP_ENTRIES, "{all:?}");
    let own = all.split_off(SETUP_ENTRIES as usize);
    assert!(all.iter().all(|e| e.subject == "@access"), "{all:?}");
    assert!(own.iter().all(|e| e.subject != "@access"), "{own:?}");
    own
}

#[tokio::test]
async fn every_event_kind_reads_back_equal() {
    let app = TestApp::spawn().await;
    let events = all_kinds("support-bot/triage-prompt");
    let mut entries = Vec::new();
    for event in &events {
        entries.push(app.append_event(event.clone()).await);
    }

    let read = read_own(&app).await;
    assert_eq!(read.len(), events.len());
    for ((event, appended), read) in events.iter().zip(&entries).zip(&read) {
        let kind = kind_of(event);
        assert_eq!(
            appended.event.as_ref(),
            Some(event),
            "{kind:?}: Append response"
        );
        let got = app.get_entry(appended.sequence).await.unwrap();
        assert_eq!(got.event.as_ref(), Some(event), "{kind:?}: GetEntry");
        assert_eq!(read.event.as_ref(), Some(event), "{kind:?}: ReadEntries");
        assert_eq!(got.kind, kind as i32);
        assert_eq!(got.subject, "support-bot/triage-prompt");
        assert_eq!(got, *read, "{kind:?}: GetEntry and ReadEntries agree");
        let by_kind = app
            .read_entries(ReadEntriesRequest {
                kind: kind as i32,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            seqs(&by_kind),
            vec![appended.sequence],
            "{kind:?}: kind filter"
        );
    }
    assert_eq!(
        entries.iter().map(|e| e.kind).collect::<Vec<_>>(),
        ALL_KINDS.iter().map(|k| *k as i32).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn every_event_kind_reads_back_equal_from_a_batch() {
    let app = TestApp::spawn().await;
    let events = all_kinds("search/ranker");

    let entries = app.append_events(events.clone()).await;

    let read = read_own(&app).await;
    assert_eq!(read.len(), events.len());
    for (i, event) in events.iter().enumerate() {
        assert_eq!(entries[i].event.as_ref(), Some(event));
        assert_eq!(read[i].event.as_ref(), Some(event));
        assert_eq!(
            app.get_entry(SETUP_ENTRIES + i as u64 + 1).await.unwrap(),
            read[i]
        );
    }
}

#[tokio::test]
async fn minimal_events_read_back_equal() {
    let app = TestApp::spawn().await;
    for event in minimal_events() {
        let entry = app.append_event(event.clone()).await;
        assert_eq!(entry.event.as_ref(), Some(&event));
        assert_eq!(
            app.get_entry(entry.sequence).await.unwrap().event,
            Some(event)
        );
    }
    let policy = app.get_entry(SETUP_ENTRIES + 3).await.unwrap();
    assert_eq!(policy.subject, "*");
    assert_eq!(policy.kind, EventKind::PolicySet as i32);
}

/// The `all_kinds` version is a subject's first and names no parent; this
/// one does.
#[tokio::test]
async fn a_version_with_a_parent_reads_back_equal() {
    let app = TestApp::spawn().await;
    app.append_event(version("support-bot/triage-prompt")).await;
    let event = child_version("support-bot/triage-prompt", "v3", V).event();

    let entry = app.append_event(event.clone()).await;

    assert_eq!(entry.event.as_ref(), Some(&event));
    assert_eq!(
        app.get_entry(entry.sequence).await.unwrap().event,
        Some(event)
    );
}

#[tokio::test]
async fn large_content_reads_back_equal() {
    let app = TestApp::spawn().await;
    let event = version_with_content("big/prompt", 900_000).event();

    let entry = app.append_event(event.clone()).await;

    assert_eq!(
        app.get_entry(entry.sequence).await.unwrap().event,
        Some(event.clone())
    );
    assert_eq!(read_own(&app).await[0].event, Some(event));
}
