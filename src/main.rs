//! The `govledger` binary: `serve`, `verify` and `bench`.
//!
//! Exit codes: 0 ok; 1 verification failed (damaged journal); 2 usage error;
//! 5 local failure (data directory locked or unreadable, I/O error).

#![forbid(unsafe_code)]

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use govledger::{
    Ledger, LedgerConfig, LedgerError, bench,
    ledger::{rebuild_offline, verify_offline},
};
use tracing_subscriber::EnvFilter;

/// The server allocates many small, short-lived buffers per request (protobuf
/// messages, HTTP/2 frames); mimalloc measured faster than the system
/// allocator on the benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code: verification found damage.
const EXIT_VERIFY_FAILED: u8 = 1;
/// Exit code: a local failure (lock, I/O, unreadable data directory).
const EXIT_LOCAL_FAILURE: u8 = 5;

#[derive(Parser)]
#[command(
    name = "govledger",
    version,
    about = "Append-only, hash-chained, verifiable ledger for governed LLM assets",
    after_help = "Exit codes: 0 ok, 1 verification failed (or a rebuilt state differs from the live one), 2 usage error, 5 local failure (data directory locked or unreadable)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API (Ledger, grpc.health.v1, reflection) until SIGINT/SIGTERM.
    Serve {
        /// Where the journal and indexes live.
        #[arg(long, env = "GOVLEDGER_DATA_DIR", default_value = "./govledger-data")]
        data_dir: PathBuf,
        /// Address to listen on (port 0 picks a free port; the chosen address is printed).
        #[arg(long, env = "GOVLEDGER_LISTEN", default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
    },
    /// Verify a stopped ledger's journal offline: every hash, link and payload digest.
    Verify {
        #[arg(long, default_value = "./govledger-data")]
        data_dir: PathBuf,
    },
    /// Rebuild the projected state of a stopped ledger from entry 1 and prove it
    /// identical to the state the server left (compares their digests).
    Rebuild {
        #[arg(long, default_value = "./govledger-data")]
        data_dir: PathBuf,
    },
    /// Measure durable append throughput and latency, batch appends and verification.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    match try_main() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("govledger: {error:#}");
            let damaged = error.chain().any(|e| {
                matches!(
                    e.downcast_ref::<LedgerError>(),
                    Some(LedgerError::Corrupt { .. })
                )
            });
            ExitCode::from(if damaged {
                EXIT_VERIFY_FAILED
            } else {
                EXIT_LOCAL_FAILURE
            })
        }
    }
}

fn try_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve { data_dir, listen } => serve(data_dir, listen),
        Command::Verify { data_dir } => verify(data_dir),
        Command::Rebuild { data_dir } => rebuild(data_dir),
        Command::Bench(args) => bench::run(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn serve(data_dir: PathBuf, listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let ledger = Ledger::open(LedgerConfig::new(&data_dir))
        .with_context(|| format!("opening the ledger in {}", data_dir.display()))?;
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        // Scripts and tests read the bound address (port 0) from this line.
        println!("govledger listening on {addr}");
        tracing::info!(%addr, data_dir = %data_dir.display(), "serving");
        govledger::server::run(listener, ledger, shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

fn verify(data_dir: PathBuf) -> anyhow::Result<ExitCode> {
    if !data_dir.is_dir() {
        anyhow::bail!("data directory {} does not exist", data_dir.display());
    }
    let report = verify_offline(&data_dir)?;
    if let Some(d) = &report.dropped {
        println!(
            "torn tail: {} bytes at offset {} of {} (never acknowledged; cut off at the next start)",
            d.bytes,
            d.offset,
            d.segment.display()
        );
    }
    println!(
        "ok: entries 1..={} verified, head hash {}",
        report.cursor.last_sequence(),
        report.cursor.prev_hash
    );
    Ok(ExitCode::SUCCESS)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn rebuild(data_dir: PathBuf) -> anyhow::Result<ExitCode> {
    if !data_dir.is_dir() {
        anyhow::bail!("data directory {} does not exist", data_dir.display());
    }
    let report = rebuild_offline(&data_dir)?;
    println!(
        "rebuilt from entries 1..={}: state digest {}",
        report.head,
        hex(&report.rebuilt)
    );
    match (report.checkpoint, report.identical()) {
        (_, Some(true)) => {
            println!(
                "identical to the live state (digest {})",
                hex(&report.rebuilt)
            );
            Ok(ExitCode::SUCCESS)
        }
        (Some((_, digest)), Some(false)) => {
            eprintln!(
                "govledger rebuild: the live state differs from the rebuild: live {}, rebuilt {}; the rebuilt state now replaces it",
                hex(&digest),
                hex(&report.rebuilt)
            );
            Ok(ExitCode::from(EXIT_VERIFY_FAILED))
        }
        (Some((sequence, _)), None) => {
            println!(
                "the saved live state was at entry {sequence}, not the head: nothing to compare; the rebuilt state now replaces it"
            );
            Ok(ExitCode::SUCCESS)
        }
        (None, _) => {
            println!("no saved live state to compare with; the rebuilt state is now saved");
            Ok(ExitCode::SUCCESS)
        }
    }
}
