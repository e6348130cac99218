//! Many clients at once: no gaps, no duplicates, one valid chain.

use std::{collections::BTreeSet, time::Duration};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_appending_200_each_make_one_gapless_chain() {
    const CLIENTS: usize = 64;
    const PER_CLIENT: usize = 200;
    const TOTAL: u64 = (CLIENTS * PER_CLIENT) as u64;
    let app = TestApp::spawn().await;

    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let mut client = app.new_client().await; // its own connection
        tasks.push(tokio::spawn(async move {
            let subject = format!("client/{c}");
            let mut sequences = Vec::with_capacity(PER_CLIENT);
            for n in 0..PER_CLIENT {
                let entry = client
                    .append(req(numbered(&subject, n)))
                    .await
                    .unwrap_or_else(|s| panic!("client {c} append {n}: {s:?}"))
                    .into_inner()
                    .entry
                    .expect("entry");
                sequences.push(entry.sequence);
            }
            sequences
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        let sequences = within_for(Duration::from_secs(180), "a concurrent client", task)
            .await
            .expect("client task panicked");
        assert!(
            sequences.windows(2).all(|w| w[0] < w[1]),
            "a client's own appends are ordered"
        );
        acknowledged.extend(sequences);
    }

    assert_eq!(acknowledged.len() as u64, TOTAL);
    let unique: BTreeSet<u64> = acknowledged.iter().copied().collect();
    assert_eq!(
        unique.len() as u64,
        TOTAL,
        "no sequence was acknowledged twice"
    );
    let base = SETUP_ENTRIES;
    assert_eq!(
        unique,
        (base + 1..=base + TOTAL).collect::<BTreeSet<_>>(),
        "sequences are exactly {}..={}",
        base + 1,
        base + TOTAL
    );
    let head = app.get_head().await;
    assert_eq!(head.sequence, base + TOTAL);
    // The whole log: the access entries, then exactly the acknowledged ones.
    let all = app.read_all().await;
    assert_eq!(seqs(&all), (1..=base + TOTAL).collect::<Vec<_>>());
    assert!(all[..base as usize].iter().all(|e| e.subject == "@access"));
    assert!(all[base as usize..].iter().all(|e| e.subject != "@access"));
    assert_linked(&all);
    assert_eq!(all[0].prev_hash, vec![0u8; 32]);
    app.assert_chain_valid().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_and_singles_keep_batches_contiguous() {
    let app = TestApp::spawn().await;
    let mut tasks = Vec::new();
    for c in 0..8 {
        let mut client = app.new_client().await;
        tasks.push(tokio::spawn(async move {
            let mut groups = Vec::new();
            for n in 0..20 {
                if c % 2 == 0 {
                    let events = (0..10)
                        .map(|i| numbered(&format!("batch/{c}"), n * 10 + i))
                        .collect();
                    let entries = client
                        .append_batch(batch(events))
                        .await
                        .expect("batch")
                        .into_inner()
                        .entries;
                    groups.push(entries);
                } else {
                    let entry = client
                        .append(req(numbered(&format!("single/{c}"), n)))
                        .await
                        .expect("single")
                        .into_inner()
                        .entry
                        .unwrap();
                    groups.push(vec![entry]);
                }
            }
            groups
        }));
    }
    let mut groups = Vec::new();
    for task in tasks {
        groups.extend(
            within_for(Duration::from_secs(120), "a client", task)
                .await
                .unwrap(),
        );
    }

    let total: usize = groups.iter().map(Vec::len).sum();
    assert_eq!(total, 4 * 20 * 10 + 4 * 20);
    for group in &groups {
        let first = group[0].sequence;
        assert_eq!(
            seqs(group),
            (first..first + group.len() as u64).collect::<Vec<_>>(),
            "a batch occupies consecutive sequences"
        );
        assert!(group.last().unwrap().ends_atomic_group);
        assert!(
            group[..group.len() - 1]
                .iter()
                .all(|e| !e.ends_atomic_group)
        );
    }
    // The whole log: the access entries, then exactly the acknowledged ones.
    let base = SETUP_ENTRIES;
    let all = app.read_all().await;
    assert_eq!(seqs(&all), (1..=base + total as u64).collect::<Vec<_>>());
    let mut acknowledged: Vec<u64> = groups.iter().flatten().map(|e| e.sequence).collect();
    acknowledged.sort_unstable();
    assert_eq!(
        acknowledged,
        (base + 1..=base + total as u64).collect::<Vec<_>>()
    );
    assert_linked(&all);
    app.assert_chain_valid().await;
}
