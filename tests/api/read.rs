//! ReadEntries: every filter, alone and combined, against a scan of the whole log
//! (its access entries included).

use govledger::proto::v1::{Entry, EventKind, ReadEntriesRequest};
use prost_types::Timestamp;

use crate::helpers::*;

const SUBJECTS: [&str; 3] = [
    "support-bot/triage",
    "support-bot/triage-v2",
    "search/ranker",
];
const ACTORS: [&str; 3] = ["alice", "ci-bot", TESTER];
/// The access entries every fresh log starts with: the seeded entries follow.
const S: u64 = SETUP_ENTRIES;

/// The order in which each subject's events (indexes into `all_kinds`) are
/// appended: a different valid order per subject (registered first, the
/// incident opened before it is resolved, the policy last so that it gates
/// nothing), so that kinds and actors mix differently per subject.
const ORDERS: [[usize; 8]; 3] = [
    [0, 1, 2, 3, 4, 5, 6, 7],
    [0, 2, 1, 3, 6, 4, 5, 7],
    [0, 1, 3, 4, 2, 6, 5, 7],
];

/// 24 single appends covering every (subject, kind) pair, three actors, then a
/// batch of 5 by alice (a second version of the last subject, in another
/// environment): 29 entries (sequences S + 1 ..= S + 29) after the S access
/// entries of a fresh log. Returns the whole log.
async fn seeded() -> (TestApp, Vec<Entry>) {
    let app = TestApp::spawn().await;
    for i in 0..24 {
        let (subject, round) = (i % 3, i / 3);
        let event = all_kinds(SUBJECTS[subject]).swap_remove(ORDERS[subject][round]);
        let actor = ACTORS[round % 3];
        let resp = if actor == TESTER {
            app.append(req(event)).await
        } else {
            app.append_as(actor, req(event)).await
        };
        resp.expect("seed append");
    }
    app.append_batch_as(
        "alice",
        batch(lifecycle("search/ranker", "v3", "staging")[..5].to_vec()),
    )
    .await
    .expect("seed batch");
    let all = app.read_all().await;
    assert_eq!(all.len() as u64, S + 29);
    assert!(
        all[..S as usize].iter().all(|e| e.subject == "@access"),
        "the log starts with its access entries"
    );
    assert!(
        all[S as usize..].iter().all(|e| e.subject != "@access"),
        "the seeded entries follow"
    );
    (app, all)
}

/// What ReadEntries must return: a plain scan of the whole log.
fn scan(all: &[Entry], r: &ReadEntriesRequest) -> Vec<u64> {
    let key = |t: &Timestamp| (t.seconds, t.nanos);
    let matching = all.iter().filter(|e| {
        e.sequence >= r.from_sequence.max(1)
            && (r.subject.is_empty() || e.subject == r.subject)
            && (r.kind == 0 || e.kind == r.kind)
            && (r.actor.is_empty() || e.actor == r.actor)
            && r.since.as_ref().is_none_or(|s| ts(e) >= key(s))
            && r.until.as_ref().is_none_or(|u| ts(e) < key(u))
    });
    let seqs = matching.map(|e| e.sequence);
    if r.limit == 0 {
        seqs.collect()
    } else {
        seqs.take(r.limit as usize).collect()
    }
}

async fn check(app: &TestApp, all: &[Entry], r: ReadEntriesRequest) {
    let got = app.read_entries(r.clone()).await.expect("ReadEntries");
    assert_eq!(seqs(&got), scan(all, &r), "ReadEntries {r:?}");
    for entry in &got {
        assert_eq!(
            entry,
            &all[entry.sequence as usize - 1],
            "entry {} differs",
            entry.sequence
        );
    }
}

#[tokio::test]
async fn reading_without_filters_returns_every_entry_in_order() {
    let (app, all) = seeded().await;

    assert_eq!(seqs(&all), (1..=S + 29).collect::<Vec<_>>());
    assert_linked(&all);
    for entry in &all {
        assert_eq!(app.get_entry(entry.sequence).await.unwrap(), *entry);
    }
}

#[tokio::test]
async fn from_sequence_skips_earlier_entries() {
    let (app, all) = seeded().await;
    for from in [0, 1, 2, 13, S, S + 1, S + 2, S + 13, S + 29, S + 30, 1000] {
        check(
            &app,
            &all,
            ReadEntriesRequest {
                from_sequence: from,
                ..Default::default()
            },
        )
        .await;
    }
    let tail = app
        .read_entries(ReadEntriesRequest {
            from_sequence: S + 27,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(seqs(&tail), vec![S + 27, S + 28, S + 29]);
}

#[tokio::test]
async fn the_subject_filter_matches_exactly() {
    let (app, all) = seeded().await;
    for subject in SUBJECTS.into_iter().chain(["@access"]) {
        check(
            &app,
            &all,
            ReadEntriesRequest {
                subject: subject.into(),
                ..Default::default()
            },
        )
        .await;
    }
    // Neither a prefix nor an unknown subject matches anything.
    for subject in ["support-bot", "support-bot/triage-v", "nobody/here"] {
        let got = app
            .read_entries(ReadEntriesRequest {
                subject: subject.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(
            got.is_empty(),
            "subject {subject:?} matched {:?}",
            seqs(&got)
        );
    }
    let triage = app
        .read_entries(ReadEntriesRequest {
            subject: SUBJECTS[0].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(triage.len(), 8);
    assert!(triage.iter().all(|e| e.subject == SUBJECTS[0]));
}

#[tokio::test]
async fn the_kind_filter_matches_each_kind() {
    let (app, all) = seeded().await;
    let access_kinds = [
        EventKind::PrincipalRolesSet,
        EventKind::TokenIssued,
        EventKind::TokenRevoked,
    ];
    for kind in ALL_KINDS.into_iter().chain(access_kinds) {
        check(
            &app,
            &all,
            ReadEntriesRequest {
                kind: kind as i32,
                ..Default::default()
            },
        )
        .await;
    }
    let evals = app
        .read_entries(ReadEntriesRequest {
            kind: EventKind::EvalRecorded as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(evals.len(), 4, "3 single evals and 1 in the batch");
}

#[tokio::test]
async fn the_actor_filter_matches_each_actor() {
    let (app, all) = seeded().await;
    for actor in ACTORS.into_iter().chain(["nobody", "admin", "system"]) {
        check(
            &app,
            &all,
            ReadEntriesRequest {
                actor: actor.into(),
                ..Default::default()
            },
        )
        .await;
    }
    let alice = app
        .read_entries(ReadEntriesRequest {
            actor: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(alice.len(), 9 + 5, "9 single appends and the batch");
    let tester = app
        .read_entries(ReadEntriesRequest {
            actor: TESTER.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tester.len(), 6, "the default client appends as {TESTER}");
}

#[tokio::test]
async fn the_time_range_is_since_inclusive_until_exclusive() {
    let (app, all) = seeded().await;
    // The time of seeded entry n.
    let t = |n: u64| all[(S + n - 1) as usize].recorded_at;
    let ranges = [
        (t(5), None),
        (None, t(20)),
        (t(5), t(20)),
        (t(1), t(29)),
        (t(29), None),
        (t(20), t(5)), // empty
        (t(7), t(7)),  // empty
    ];
    for (since, until) in ranges {
        check(
            &app,
            &all,
            ReadEntriesRequest {
                since,
                until,
                ..Default::default()
            },
        )
        .await;
    }
    // since = an entry's own time includes it; until = its time excludes it.
    let from_5 = app
        .read_entries(ReadEntriesRequest {
            since: t(5),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(from_5.iter().any(|e| e.sequence == S + 5));
    let before_20 = app
        .read_entries(ReadEntriesRequest {
            until: t(20),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(before_20.iter().all(|e| e.sequence < S + 20));
    assert!(
        before_20.iter().any(|e| e.sequence == S + 19)
            || ts(&all[(S + 18) as usize]) == ts(&all[(S + 19) as usize])
    );
}

#[tokio::test]
async fn the_limit_returns_the_first_matches() {
    let (app, all) = seeded().await;
    for limit in [1, 3, 29, S as u32 + 29, 100] {
        check(
            &app,
            &all,
            ReadEntriesRequest {
                limit,
                ..Default::default()
            },
        )
        .await;
        check(
            &app,
            &all,
            ReadEntriesRequest {
                limit,
                subject: SUBJECTS[2].into(),
                ..Default::default()
            },
        )
        .await;
    }
    let first3 = app
        .read_entries(ReadEntriesRequest {
            limit: 3,
            from_sequence: S + 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(seqs(&first3), vec![S + 10, S + 11, S + 12]);
}

#[tokio::test]
async fn every_combination_of_filters_matches_a_scan() {
    let (app, all) = seeded().await;
    // The time of seeded entry n.
    let t = |n: u64| all[(S + n - 1) as usize].recorded_at;
    let subjects = ["", SUBJECTS[0], SUBJECTS[2]];
    let kinds = [
        0,
        EventKind::VersionRegistered as i32,
        EventKind::PolicySet as i32,
        EventKind::EvalRecorded as i32,
    ];
    let actors = ["", "alice", TESTER];
    let mut checked = 0;
    for subject in subjects {
        for kind in kinds {
            for actor in actors {
                for from_sequence in [0, S + 12] {
                    for limit in [0, 2] {
                        for (since, until) in [(None, None), (t(4), t(26))] {
                            let r = ReadEntriesRequest {
                                from_sequence,
                                subject: subject.into(),
                                kind,
                                actor: actor.into(),
                                since,
                                until,
                                limit,
                            };
                            check(&app, &all, r).await;
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 3 * 4 * 3 * 2 * 2 * 2);
}
