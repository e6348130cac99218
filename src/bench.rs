//! `govledger bench`: the project's benchmark, run against a real server over
//! real gRPC connections, with real fsync.
//!
//! Phases: (1) durable single appends from many concurrent clients, each on
//! its own connection, each waiting for its acknowledgement before sending
//! the next (throughput, p50/p99/max latency); (2) AppendBatch of 1,000
//! events from a few clients (entries/s); (3) VerifyChain over the whole log,
//! reading from disk (entries/s).

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context;
use tonic::transport::Endpoint;

use crate::{
    Ledger, LedgerConfig,
    connect::{Authed, Bearer},
    proto::v1::{
        AppendBatchRequest, AppendRequest, BatchItem, Direction, EvalKind, EvalRecorded, Event,
        Metric, Source, VerifyChainRequest, event::Kind, ledger_client::LedgerClient,
    },
};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Concurrent clients for single appends, each on its own connection.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// HTTP/2 connections the clients share (0 = one per client). Clients on
    /// a shared connection are multiplexed as separate streams.
    #[arg(long, default_value_t = 0)]
    pub connections: usize,
    /// Appends each client makes (after a warm-up of 20).
    #[arg(long, default_value_t = 500)]
    pub appends_per_client: usize,
    /// Concurrent clients sending AppendBatch.
    #[arg(long, default_value_t = 2)]
    pub batch_clients: usize,
    /// Batches of 1,000 events each batch client sends.
    #[arg(long, default_value_t = 100)]
    pub batches_per_client: usize,
    /// Governance reads per kind (GetSubjectState now and as of a past entry,
    /// CheckGate), after the writes; 0 skips them.
    #[arg(long, default_value_t = 2000)]
    pub reads: usize,
    /// Data directory for the benchmark ledger (default: a fresh temporary one).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Benchmark a running server at this address instead of an in-process
    /// one; the global --token (or GOVLEDGER_TOKEN) must then name a
    /// principal holding the recorder role. (In-process, the bench issues its
    /// own token from the bootstrap admin's.)
    #[arg(long)]
    pub server: Option<SocketAddr>,
}

/// Versions each benchmark subject has; evals cycle through them.
const VERSIONS: usize = 50;

fn subject(client: usize) -> String {
    format!("bench/team-{}/prompt-{}", client % 8, client)
}

/// Registers the subjects and versions the eval events refer to (the ledger
/// rejects evals of unknown versions).
async fn register_subjects(endpoint: &Target, clients: usize) -> anyhow::Result<()> {
    let mut client = connect(endpoint).await?;
    for c in 0..clients {
        let items = (1..=VERSIONS)
            .map(|v| BatchItem {
                event: Some(Event {
                    kind: Some(Kind::VersionRegistered(
                        crate::proto::v1::VersionRegistered {
                            subject: subject(c),
                            subject_kind: crate::proto::v1::SubjectKind::Prompt as i32,
                            version: format!("v{v}"),
                            content_digest: blake3::hash(format!("{c}/{v}").as_bytes())
                                .as_bytes()
                                .to_vec(),
                            author: "bench".into(),
                            ..Default::default()
                        },
                    )),
                }),
                ..Default::default()
            })
            .collect();
        let registered = client
            .append_batch(AppendBatchRequest {
                items,
                expected_head_sequence: None,
            })
            .await;
        match registered {
            // Registered by an earlier run on the same data directory.
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// A realistic event: an eval result of a few metrics (about 300 bytes).
pub fn sample_event(client: usize, n: usize) -> Event {
    Event {
        kind: Some(Kind::EvalRecorded(EvalRecorded {
            subject: subject(client),
            version: format!("v{}", n % VERSIONS + 1),
            suite: "regression".into(),
            eval_kind: EvalKind::ModelGraded as i32,
            metrics: vec![
                Metric {
                    name: "accuracy".into(),
                    value: 0.91,
                    threshold: 0.85,
                    direction: Direction::HigherIsBetter as i32,
                },
                Metric {
                    name: "toxicity".into(),
                    value: 0.01,
                    threshold: 0.05,
                    direction: Direction::LowerIsBetter as i32,
                },
            ],
            dataset_digest: blake3::hash(b"dataset").as_bytes().to_vec(),
            sample_size: 200,
            grader_model: "gpt-4o-2024-08-06".into(),
            run_ref: format!("https://ci.example.com/runs/{client}/{n}"),
            source: Some(Source {
                commit: "0123456789abcdef0123456789abcdef01234567".into(),
                branch: "main".into(),
                system: "github-actions".into(),
                ..Source::default()
            }),
        })),
    }
}

pub fn run(args: BenchArgs, token: Option<String>) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args, token))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn run_async(args: BenchArgs, token: Option<String>) -> anyhow::Result<()> {
    let _temp;
    let (addr, server) = match args.server {
        Some(addr) => (addr, None),
        None => {
            let dir = match &args.data_dir {
                Some(dir) => dir.clone(),
                None => {
                    let temp = tempfile::Builder::new()
                        .prefix("govledger-bench")
                        .tempdir_in(".")?;
                    let path = temp.path().to_path_buf();
                    _temp = temp;
                    path
                }
            };
            let ledger = Ledger::open(LedgerConfig::new(&dir))?;
            // Before serving, so the admin token file exists once we connect.
            crate::auth::bootstrap(&ledger).await?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let handle = tokio::spawn(crate::server::run(listener, ledger, async {
                let _ = stopped.await;
            }));
            println!(
                "bench: in-process server on {addr}, data in {}",
                dir.display()
            );
            (addr, Some((stop, handle, dir)))
        }
    };
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true);
    let token = match (&token, &server) {
        (Some(token), _) => token.clone(),
        (None, Some((_, _, dir))) => bench_token(&endpoint, dir).await?,
        (None, None) => anyhow::bail!("--server needs --token (or GOVLEDGER_TOKEN)"),
    };
    let target = Target {
        endpoint,
        bearer: Bearer::new(Some(&token))?,
    };
    let endpoint = &target;
    register_subjects(endpoint, args.clients.max(args.batch_clients)).await?;

    // The ceiling: the same clients and connections calling an RPC that does
    // no work (GetHead), to separate the gRPC stack's cost from the ledger's.
    let (count, elapsed, mut latencies) = ceiling(
        endpoint,
        args.clients,
        args.connections,
        args.appends_per_client,
    )
    .await?;
    latencies.sort_unstable();
    println!(
        "ceiling   {:>3} clients  {:>3} conns  {:>8} GetHead   {:>9.0} calls/s    p50 {:>6.2} ms  p99 {:>6.2} ms",
        args.clients,
        if args.connections == 0 {
            args.clients
        } else {
            args.connections
        },
        count,
        count as f64 / elapsed.as_secs_f64(),
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() * 99 / 100]),
    );

    let (count, elapsed, mut latencies) = single_appends(
        endpoint,
        args.clients,
        args.connections,
        args.appends_per_client,
    )
    .await?;
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let connections = if args.connections == 0 {
        args.clients
    } else {
        args.connections
    };
    println!(
        "append    {:>3} clients  {:>3} conns  {:>8} entries  {:>9.0} entries/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms",
        args.clients,
        connections,
        count,
        count as f64 / elapsed.as_secs_f64(),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*latencies.last().expect("latencies")),
    );

    let (entries, elapsed) =
        batch_appends(endpoint, args.batch_clients, args.batches_per_client).await?;
    println!(
        "batch     {:>3} clients             {:>8} entries  {:>9.0} entries/s  (batches of 1000)",
        args.batch_clients,
        entries,
        entries as f64 / elapsed.as_secs_f64()
    );

    let mut client = connect(&target).await?;
    let started = Instant::now();
    let report = client
        .verify_chain(VerifyChainRequest::default())
        .await?
        .into_inner();
    let elapsed = started.elapsed();
    anyhow::ensure!(
        report.valid,
        "verification failed: entry {}: {}",
        report.first_bad_sequence,
        report.reason
    );
    println!(
        "verify                                {:>8} entries  {:>9.0} entries/s  ({:.3} s, from disk)",
        report.entries_checked,
        report.entries_checked as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );

    if args.reads > 0 {
        governance_reads(endpoint, args.reads).await?;
    }

    if let Some((stop, handle, _)) = server {
        let _ = stop.send(());
        handle.await.context("server task")??;
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A token for principal `bench` (recorder over every subject), issued with
/// the bootstrap admin token of the in-process server's data dir.
async fn bench_token(endpoint: &Endpoint, dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join(crate::auth::BOOTSTRAP_TOKEN_FILE);
    let admin = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the admin token {}", path.display()))?;
    let mut access = crate::proto::v1::access_client::AccessClient::with_interceptor(
        endpoint.connect().await?,
        Bearer::new(Some(&admin))?,
    );
    let created = access
        .create_token(crate::proto::v1::CreateTokenRequest {
            principal: "bench".into(),
            grants: vec![crate::proto::v1::Grant {
                role: crate::proto::v1::Role::Recorder as i32,
                scope: String::new(),
            }],
            description: "govledger bench".into(),
        })
        .await
        .context("creating the bench token")?;
    Ok(created.into_inner().token)
}

/// The server under test and the token its clients send.
struct Target {
    endpoint: Endpoint,
    bearer: Bearer,
}

async fn connect(target: &Target) -> anyhow::Result<LedgerClient<Authed>> {
    Ok(LedgerClient::with_interceptor(
        target.endpoint.connect().await.context("connecting")?,
        target.bearer.clone(),
    ))
}

async fn single_appends(
    endpoint: &Target,
    clients: usize,
    connections: usize,
    per_client: usize,
) -> anyhow::Result<(usize, Duration, Vec<Duration>)> {
    const WARM_UP: usize = 20;
    let connections = if connections == 0 {
        clients
    } else {
        connections.min(clients)
    };
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(connect(endpoint).await?);
    }
    let connected: Vec<_> = (0..clients)
        .map(|c| channels[c % connections].clone())
        .collect();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for (c, mut client) in connected.into_iter().enumerate() {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..WARM_UP {
                client
                    .append(AppendRequest {
                        event: Some(sample_event(c, n)),
                        ..Default::default()
                    })
                    .await?;
            }
            barrier.wait().await;
            let mut latencies = Vec::with_capacity(per_client);
            for n in 0..per_client {
                let started = Instant::now();
                client
                    .append(AppendRequest {
                        event: Some(sample_event(c, n)),
                        ..Default::default()
                    })
                    .await?;
                latencies.push(started.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(clients * per_client);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok((latencies.len(), started.elapsed(), latencies))
}

async fn ceiling(
    endpoint: &Target,
    clients: usize,
    connections: usize,
    per_client: usize,
) -> anyhow::Result<(usize, Duration, Vec<Duration>)> {
    let connections = if connections == 0 {
        clients
    } else {
        connections.min(clients)
    };
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(connect(endpoint).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let mut client = channels[c % connections].clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t = Instant::now();
                client.get_head(crate::proto::v1::GetHeadRequest {}).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok((latencies.len(), started.elapsed(), latencies))
}

/// Latency of governance reads from 4 concurrent clients: the live state of
/// a subject, its state as of a past entry (spread over the whole log), and a
/// gate check.
async fn governance_reads(endpoint: &Target, per_kind: usize) -> anyhow::Result<()> {
    use crate::proto::v1::{
        AsOf, CheckGateRequest, GetHeadRequest, GetSubjectStateRequest, as_of::Point,
        governance_client::GovernanceClient,
    };
    const CLIENTS: usize = 4;
    const READ_WARM_UP: usize = 20;
    let head = connect(endpoint)
        .await?
        .get_head(GetHeadRequest {})
        .await?
        .into_inner()
        .sequence;
    for kind in ["check-gate", "state", "state-as-of"] {
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let mut client = GovernanceClient::with_interceptor(
                endpoint.endpoint.connect().await?,
                endpoint.bearer.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_kind / CLIENTS);
                // The first calls of each kind warm the connection and
                // caches, as the append bench's warm-up does; not recorded.
                for n in 0..READ_WARM_UP + per_kind / CLIENTS {
                    let subject = subject((c + n) % 2);
                    // A spread of past points: a cheap deterministic scramble.
                    let point = 1 + (n as u64 * 2_654_435_761 + c as u64) % head.max(1);
                    let started = Instant::now();
                    match kind {
                        "state" => client
                            .get_subject_state(GetSubjectStateRequest {
                                subject,
                                as_of: None,
                            })
                            .await
                            .map(|_| ()),
                        "state-as-of" => client
                            .get_subject_state(GetSubjectStateRequest {
                                subject,
                                as_of: Some(AsOf {
                                    point: Some(Point::Sequence(point)),
                                }),
                            })
                            .await
                            .map(|_| ())
                            .or_else(|s| {
                                if s.code() == tonic::Code::NotFound {
                                    Ok(())
                                } else {
                                    Err(s)
                                }
                            }),
                        _ => client
                            .check_gate(CheckGateRequest {
                                subject,
                                version: "v1".into(),
                                environment: "prod".into(),
                                deployer: "bench".into(),
                                as_of: None,
                            })
                            .await
                            .map(|_| ()),
                    }?;
                    if n >= READ_WARM_UP {
                        latencies.push(started.elapsed());
                    }
                }
                anyhow::Ok(latencies)
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await??);
        }
        latencies.sort_unstable();
        println!(
            "read      {:<12} {:>8} calls at head {head}  p50 {:>6.3} ms  p99 {:>6.3} ms  max {:>6.3} ms",
            kind,
            latencies.len(),
            ms(latencies[latencies.len() / 2]),
            ms(latencies[latencies.len() * 99 / 100]),
            ms(*latencies.last().expect("latencies")),
        );
    }
    Ok(())
}

async fn batch_appends(
    endpoint: &Target,
    clients: usize,
    batches: usize,
) -> anyhow::Result<(usize, Duration)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = connect(endpoint).await?;
        tasks.push(tokio::spawn(async move {
            let items: Vec<BatchItem> = (0..1000)
                .map(|n| BatchItem {
                    event: Some(sample_event(c, n)),
                    ..Default::default()
                })
                .collect();
            for _ in 0..batches {
                let request = AppendBatchRequest {
                    items: items.clone(),
                    expected_head_sequence: None,
                };
                client.append_batch(request).await?;
            }
            anyhow::Ok(batches * 1000)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok((total, started.elapsed()))
}
