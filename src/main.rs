//! The `govledger` binary: the server (`serve`), offline tools (`rebuild`,
//! `verify --data-dir`), access management (`token`, `principal`), the
//! auditors' commands (`verify`, `gate`, `log`, `state`, `history`) and `bench`.
//! `main` only parses and dispatches; exit codes are in [`cli`].

#![forbid(unsafe_code)]

mod cli;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use cli::{EXIT_CODES_HELP, EXIT_DENIED_OR_DAMAGED, Output, UsageError, hex};
use govledger::{
    Ledger, LedgerConfig, bench, connect::ClientArgs, ledger::rebuild_offline, server::ServeOptions,
};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tracing_subscriber::EnvFilter;

/// The server allocates many small, short-lived buffers per request (protobuf
/// messages, HTTP/2 frames); mimalloc measured faster than the system
/// allocator on the benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "govledger",
    version,
    about = "Append-only, hash-chained, verifiable ledger for governed LLM assets",
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: ClientArgs,
    /// Output format of client commands.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    output: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Readable tables and sentences.
    Table,
    /// One JSON object per line.
    Json,
}

// Parsed once per process: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
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
        #[command(flatten)]
        tls: TlsArgs,
        /// Allow a non-loopback address without TLS (tokens then cross the
        /// network in the clear).
        #[arg(long)]
        insecure: bool,
    },
    /// Bearer tokens: create, list, revoke (as an admin through the API, or
    /// offline with --data-dir on a stopped server).
    #[command(subcommand)]
    Token(cli::access::TokenCommand),
    /// Principals and their roles.
    #[command(subcommand)]
    Principal(cli::access::PrincipalCommand),
    #[command(flatten)]
    Record(cli::record::RecordCommand),
    /// Rebuild the projected state of a stopped ledger from entry 1 and prove it
    /// identical to the state the server left (compares their digests).
    Rebuild {
        #[arg(long, default_value = "./govledger-data")]
        data_dir: PathBuf,
    },
    #[command(flatten)]
    Audit(cli::audit::AuditCommand),
    /// Measure durable append throughput and latency, batch appends and verification.
    Bench(bench::BenchArgs),
}

#[derive(clap::Args, Clone, Debug)]
struct TlsArgs {
    /// PEM certificate chain to serve TLS with.
    #[arg(long, env = "GOVLEDGER_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "GOVLEDGER_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA whose client certificates are accepted; a certificate's common
    /// name then names the principal (mutual TLS). Tokens keep working.
    #[arg(long, env = "GOVLEDGER_CLIENT_CA", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
}

fn main() -> ExitCode {
    match try_main() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("govledger: {}", cli::describe(&error));
            ExitCode::from(cli::exit_code(&error))
        }
    }
}

/// The command line, parsed with the exit codes at the end of every
/// command's --help, not only the top level's: a script author reads
/// `govledger gate --help`.
fn parse() -> Cli {
    fn with_exit_codes(command: clap::Command) -> clap::Command {
        command
            .after_help(EXIT_CODES_HELP)
            .mut_subcommands(with_exit_codes)
    }
    let matches = with_exit_codes(Cli::command()).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn try_main() -> anyhow::Result<ExitCode> {
    let cli = parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let out = Output {
        json: cli.output == Format::Json,
    };
    match cli.command {
        Command::Serve {
            data_dir,
            listen,
            tls,
            insecure,
        } => serve(data_dir, listen, tls, insecure),
        Command::Token(command) => {
            cli::access::token(command, &cli.client, out).map(|()| ExitCode::SUCCESS)
        }
        Command::Principal(command) => {
            cli::access::principal(command, &cli.client, out).map(|()| ExitCode::SUCCESS)
        }
        Command::Record(command) => cli::record::run(command, &cli.client, out),
        Command::Rebuild { data_dir } => rebuild(data_dir),
        Command::Audit(command) => cli::audit::run(command, &cli.client, out),
        Command::Bench(args) => bench::run(args, cli.client.config()?.token),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn serve_options(tls: TlsArgs, listen: SocketAddr, insecure: bool) -> anyhow::Result<ServeOptions> {
    let (Some(cert), Some(key)) = (&tls.tls_cert, &tls.tls_key) else {
        if !listen.ip().is_loopback() && !insecure {
            return Err(UsageError(format!(
                "refusing to serve {listen} without TLS: tokens would cross the network in the clear; give --tls-cert and --tls-key, or --insecure"
            ))
            .into());
        }
        return Ok(ServeOptions::default());
    };
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
    };
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(
        read(cert, "certificate")?,
        read(key, "key")?,
    ));
    if let Some(ca) = &tls.client_ca {
        config = config
            .client_ca_root(Certificate::from_pem(read(ca, "client CA")?))
            .client_auth_optional(true);
    }
    Ok(ServeOptions {
        tls: Some(config),
        client_certificates: tls.client_ca.is_some(),
    })
}

fn serve(
    data_dir: PathBuf,
    listen: SocketAddr,
    tls: TlsArgs,
    insecure: bool,
) -> anyhow::Result<ExitCode> {
    let options = serve_options(tls, listen, insecure)?;
    let ledger = Ledger::open(LedgerConfig::new(&data_dir))
        .with_context(|| format!("opening the ledger in {}", data_dir.display()))?;
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        // Before the address is announced, so a client that reads it finds
        // the admin token file in place.
        govledger::auth::bootstrap(&ledger)
            .await
            .context("creating the bootstrap admin")?;
        // Also before the announcement: a supervisor may send SIGTERM the
        // moment it reads the address, and a signal that arrives before its
        // handler is installed kills the process instead of stopping it.
        let shutdown = shutdown_signal().context("listening for SIGINT and SIGTERM")?;
        // Scripts and tests read the bound address (port 0) from this line.
        println!("govledger listening on {addr}");
        tracing::info!(%addr, data_dir = %data_dir.display(), "serving");
        govledger::server::run_with(listener, ledger, options, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Installs the SIGINT and SIGTERM handlers now; the future resolves when
/// either arrives.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
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
            Ok(ExitCode::from(EXIT_DENIED_OR_DAMAGED))
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Clap's own consistency checks (e.g. a subcommand's flag clashing with a
    /// global one), which otherwise fail only when that command is parsed.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
