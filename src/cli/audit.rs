//! The auditors' commands: `verify` (against the server, or offline with
//! `--data-dir`), `gate`, `log` (`--follow`), `state` and `history`. They
//! only read; every answer comes from the server (or the stopped data dir).

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context;
use clap::{Args, Subcommand};
use govledger::{
    LedgerError,
    connect::{Authed, ClientArgs},
    ledger::verify_offline,
    proto::v1::{
        self, AsOf, CheckGateRequest, Decision, Direction, Entry, EvalKind, Event, EventKind,
        GetEntryRequest, GetHeadRequest, GetSubjectStateRequest, GetVersionHistoryRequest,
        IncidentCategory, ReadEntriesRequest, Severity, Source, SubjectKind, SubscribeRequest,
        VerifyChainRequest, as_of::Point, event::Kind, ledger_client::LedgerClient,
    },
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use tonic::Code;

use super::{EXIT_DENIED_OR_DAMAGED, Output, UsageError, access::grants_text, hex, online};

/// Entries per VerifyChain call when verifying against the server.
pub const DEFAULT_VERIFY_CHUNK: u64 = 100_000;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain: against the server (VerifyChain, in chunks
    /// whose hashes must link; a progress bar on a terminal), or, with
    /// --data-dir, a stopped ledger's journal offline. Exit 1 names the
    /// first bad entry and why.
    Verify(VerifyArgs),
    /// Would deploying a version to an environment pass the policy in force?
    /// Exit 0 allow, 1 deny; every unmet rule is printed with its evidence.
    Gate(GateArgs),
    /// The log's entries, filtered; --follow stays live.
    Log(LogArgs),
    /// A subject's lifecycle state, now or as of a moment or an entry.
    State(StateArgs),
    /// Every version of a subject with its evidence trail.
    History {
        /// The subject, e.g. support-bot/triage-prompt.
        subject: String,
    },
}

#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    /// Verify this stopped ledger's journal offline (every hash, link and
    /// payload digest) instead of asking the server.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["from", "to", "chunk"])]
    data_dir: Option<PathBuf>,
    /// First entry to verify (default 1).
    #[arg(long, value_name = "SEQ")]
    from: Option<u64>,
    /// Last entry to verify (default: the head when the command starts).
    #[arg(long, value_name = "SEQ")]
    to: Option<u64>,
    /// Entries per VerifyChain call.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_VERIFY_CHUNK,
          value_parser = clap::value_parser!(u64).range(1..))]
    chunk: u64,
}

/// A point in history: `--as-of` a moment or a sequence, or `--as-of-sequence`.
#[derive(Args, Clone, Debug)]
pub struct AsOfArgs {
    /// A moment (RFC 3339, e.g. 2026-03-03T00:00:00Z, or a date, 2026-03-03,
    /// meaning its midnight UTC) or an entry's sequence number: the state
    /// after the last entry recorded then.
    #[arg(long, value_name = "RFC3339|SEQ", value_parser = parse_as_of)]
    as_of: Option<Point>,
    /// The state right after this entry.
    #[arg(long, value_name = "SEQ", conflicts_with = "as_of")]
    as_of_sequence: Option<u64>,
}

impl AsOfArgs {
    fn as_of(&self) -> Option<AsOf> {
        let point = match (&self.as_of, self.as_of_sequence) {
            (_, Some(sequence)) => Point::Sequence(sequence),
            (Some(point), None) => *point,
            (None, None) => return None,
        };
        Some(AsOf { point: Some(point) })
    }
}

#[derive(Args, Clone, Debug)]
pub struct GateArgs {
    /// The subject, e.g. support-bot/triage-prompt.
    #[arg(long)]
    subject: String,
    /// The version label that would be deployed.
    #[arg(long)]
    version: String,
    /// The environment to deploy to.
    #[arg(long = "env", visible_alias = "environment", value_name = "ENV")]
    environment: String,
    /// Who would deploy (default: the caller).
    #[arg(long)]
    deployer: Option<String>,
    #[command(flatten)]
    as_of: AsOfArgs,
}

#[derive(Args, Clone, Debug)]
pub struct LogArgs {
    /// First sequence to consider (default 1).
    #[arg(long, value_name = "SEQ")]
    from: Option<u64>,
    /// Only entries about this subject.
    #[arg(long)]
    subject: Option<String>,
    /// An event kind: version_registered (or version-registered),
    /// eval_recorded, approval_recorded, deployment_recorded,
    /// incident_opened, incident_resolved, feedback_recorded, policy_set,
    /// principal_roles_set, token_issued, token_revoked.
    #[arg(long, value_parser = parse_kind)]
    kind: Option<EventKind>,
    /// Only entries by this principal.
    #[arg(long)]
    actor: Option<String>,
    /// Entries recorded at or after this moment (RFC 3339 or a date).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    since: Option<prost_types::Timestamp>,
    /// Entries recorded before this moment (RFC 3339 or a date).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    until: Option<prost_types::Timestamp>,
    /// At most this many entries.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    limit: Option<u32>,
    /// After the matching history, stay live and print new entries as they
    /// are appended, until interrupted (or the server shuts down, or
    /// --limit / --until is reached).
    #[arg(long, short = 'f')]
    follow: bool,
}

#[derive(Args, Clone, Debug)]
pub struct StateArgs {
    /// The subject, e.g. support-bot/triage-prompt.
    subject: String,
    #[command(flatten)]
    as_of: AsOfArgs,
}

pub fn run(command: AuditCommand, client: &ClientArgs, out: Output) -> anyhow::Result<ExitCode> {
    let result = match command {
        AuditCommand::Verify(args) => match args.data_dir {
            Some(dir) => verify_data_dir(dir, out),
            None => online(client, |conn| verify_online(conn, args, out)),
        },
        AuditCommand::Gate(args) => online(client, |conn| gate(conn, args, out)),
        AuditCommand::Log(args) => online(client, |conn| log(conn, args, out)),
        AuditCommand::State(args) => online(client, |conn| state(conn, args, out)),
        AuditCommand::History { subject } => online(client, |conn| history(conn, subject, out)),
    };
    match result {
        // `govledger log | head`: the reader has seen enough.
        Err(e) if e.downcast_ref::<StdoutClosed>().is_some() => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

// ---- verify -------------------------------------------------------------------

/// Offline verification of a stopped ledger (the data dir's lock proves no
/// server is running). Damage is a `LedgerError::Corrupt`: exit 1, named on
/// stderr (and, with --output json, on stdout as online verify reports it).
fn verify_data_dir(data_dir: PathBuf, out: Output) -> anyhow::Result<ExitCode> {
    if !data_dir.is_dir() {
        anyhow::bail!("data directory {} does not exist", data_dir.display());
    }
    let report = match verify_offline(&data_dir) {
        Ok(report) => report,
        Err(LedgerError::Corrupt { sequence, reason }) => {
            if out.json {
                // The journal's end is unknown: the scan stopped at the damage.
                verdict_json(&fault_json(
                    1,
                    None,
                    sequence.saturating_sub(1),
                    sequence,
                    &reason,
                ))?;
            }
            return Err(LedgerError::Corrupt { sequence, reason }.into());
        }
        Err(e) => return Err(e.into()),
    };
    let last = report.cursor.last_sequence();
    let head_hash = report.cursor.prev_hash.to_string();
    if out.json {
        let mut answer = verified_json(last.min(1), last, last, &head_hash);
        answer.insert(
            "torn_tail".into(),
            report.dropped.as_ref().map_or(Value::Null, |d| {
                json!({
                    "segment": d.segment.display().to_string(),
                    "offset": d.offset,
                    "bytes": d.bytes,
                })
            }),
        );
        verdict_json(&Value::Object(answer))?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(d) = &report.dropped {
        verdict_line(&format!(
            "torn tail: {} bytes at offset {} of {} (never acknowledged; cut off at the next start)",
            d.bytes,
            d.offset,
            d.segment.display()
        ))?;
    }
    verdict_line(&format!(
        "ok: entries 1..={last} verified, head hash {head_hash}"
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// The fields a successful `verify` prints in JSON, online and offline alike.
fn verified_json(
    from: u64,
    to: u64,
    checked: u64,
    head_hash: &str,
) -> serde_json::Map<String, Value> {
    let Value::Object(answer) = json!({
        "valid": true,
        "from_sequence": from,
        "to_sequence": to,
        "entries_checked": checked,
        "head_hash": head_hash,
    }) else {
        unreachable!("json! of an object literal")
    };
    answer
}

/// The JSON `verify` prints when it finds damage, online and offline alike.
fn fault_json(from: u64, to: Option<u64>, checked: u64, sequence: u64, reason: &str) -> Value {
    json!({
        "valid": false,
        "from_sequence": from,
        "to_sequence": to,
        "entries_checked": checked,
        "first_bad_sequence": sequence,
        "reason": reason,
    })
}

/// Verifies `from..=to` through VerifyChain, one chunk per call. Each chunk
/// is anchored by the server on the entry before it; the client checks that
/// the next chunk's first entry names the hash the previous chunk verified
/// as its `prev_hash`, and that the last verified hash is the head's.
async fn verify_online(
    conn: govledger::connect::Connection,
    args: VerifyArgs,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let mut ledger = conn.ledger();
    let head = ledger
        .get_head(GetHeadRequest {})
        .await
        .context("reading the head")?
        .into_inner();
    let from = args.from.unwrap_or(1).max(1);
    let to = args.to.unwrap_or(head.sequence);
    if to > head.sequence {
        return Err(UsageError(format!(
            "--to {to} is past the head of the ledger (entry {})",
            head.sequence
        ))
        .into());
    }
    if head.sequence == 0 {
        if out.json {
            verdict_json(&Value::Object(verified_json(0, 0, 0, &hex(&head.hash))))?;
        } else {
            verdict_line("ok: the ledger is empty; nothing to verify")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if from > to {
        return Err(UsageError(format!("--from {from} is after --to {to}")).into());
    }
    let bar = progress_bar(to - from + 1, args.chunk);
    let chunks = verify_chunks(&mut ledger, from, to, args.chunk, &bar).await;
    // Before any output or error message, on every path: a bar left on the
    // terminal would sit on top of what follows.
    bar.finish_and_clear();
    let chunks = chunks?;
    let verified = chunks.hash.unwrap_or_default();
    let fault = chunks.fault.or_else(|| {
        (to == head.sequence && verified != head.hash).then(|| {
            (
                to,
                format!(
                    "the verified hash {} is not the head hash {} the server reported",
                    hex(&verified),
                    hex(&head.hash)
                ),
            )
        })
    });
    if let Some((sequence, reason)) = fault {
        if out.json {
            verdict_json(&fault_json(
                from,
                Some(to),
                chunks.checked,
                sequence,
                &reason,
            ))?;
        }
        return Err(LedgerError::Corrupt { sequence, reason }.into());
    }
    if out.json {
        let mut answer = verified_json(from, to, chunks.checked, &hex(&verified));
        answer.insert("chunks".into(), chunks.count.into());
        verdict_json(&Value::Object(answer))?;
    } else {
        verdict_line(&format!(
            "ok: entries {from}..={to} verified, head hash {}",
            hex(&verified)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What the chunked VerifyChain calls found.
struct Chunks {
    checked: u64,
    count: u64,
    /// The last verified entry's hash.
    hash: Option<Vec<u8>>,
    /// The first bad entry and why.
    fault: Option<(u64, String)>,
}

async fn verify_chunks(
    ledger: &mut LedgerClient<Authed>,
    from: u64,
    to: u64,
    chunk: u64,
    bar: &ProgressBar,
) -> anyhow::Result<Chunks> {
    let mut chunks = Chunks {
        checked: 0,
        count: 0,
        hash: None,
        fault: None,
    };
    // The server anchors the range on the entry before it; when that entry
    // cannot be read, VerifyChain fails without saying which entry is at
    // fault, so ask for it first.
    if from > 1
        && let Err(fault) = read_for_verify(ledger, from - 1).await?
    {
        chunks.fault = Some(fault);
        return Ok(chunks);
    }
    let mut start = from;
    while start <= to {
        let end = start.saturating_add(chunk - 1).min(to);
        if let Some(hash) = &chunks.hash {
            let next = match read_for_verify(ledger, start).await? {
                Ok(next) => next,
                Err(fault) => {
                    chunks.fault = Some(fault);
                    break;
                }
            };
            if next.sequence != start || next.prev_hash != *hash {
                chunks.fault = Some((
                    start,
                    format!(
                        "its prev_hash {} does not link to the hash {} verified for entry {}",
                        hex(&next.prev_hash),
                        hex(hash),
                        start - 1
                    ),
                ));
                break;
            }
        }
        let report = match ledger
            .verify_chain(VerifyChainRequest {
                from_sequence: start,
                to_sequence: end,
            })
            .await
        {
            Ok(report) => report.into_inner(),
            // The server found damage it could not place in a report (e.g.
            // an entry missing from its index): the chunk is not verified.
            Err(status) if status.code() == Code::DataLoss => {
                chunks.fault = Some((
                    start,
                    format!(
                        "the server reports data loss verifying entries {start}..={end}: {}",
                        status.message()
                    ),
                ));
                break;
            }
            Err(status) => {
                return Err(anyhow::Error::new(status)
                    .context(format!("verifying entries {start}..={end}")));
            }
        };
        if !report.valid {
            chunks.fault = Some((report.first_bad_sequence, report.reason));
            break;
        }
        if report.from_sequence != start
            || report.to_sequence != end
            || report.entries_checked != end - start + 1
            || report.head_hash.len() != 32
        {
            chunks.fault = Some((
                start,
                format!(
                    "the server answered for entries {}..={} ({} checked) when asked for {start}..={end}",
                    report.from_sequence, report.to_sequence, report.entries_checked
                ),
            ));
            break;
        }
        chunks.checked += report.entries_checked;
        chunks.count += 1;
        bar.inc(report.entries_checked);
        chunks.hash = Some(report.head_hash);
        start = end + 1;
    }
    Ok(chunks)
}

/// Entry `sequence`, or the fault that it cannot be read. Only statuses
/// that say nothing about the entry (the server unreachable or shutting
/// down, the caller not authenticated or not allowed, the call cut short)
/// are errors; any other failure to serve an entry the head covers is
/// what verify is there to find.
async fn read_for_verify(
    ledger: &mut LedgerClient<Authed>,
    sequence: u64,
) -> anyhow::Result<Result<Entry, (u64, String)>> {
    match ledger.get_entry(GetEntryRequest { sequence }).await {
        Ok(entry) => Ok(Ok(entry.into_inner())),
        // Only what speaks of the data is a finding: the server reports
        // damage as DataLoss, and an acknowledged entry it cannot find is
        // missing. Anything else (a refused token, an I/O hiccup, a proxy's
        // error) is a failed check, not a verdict on the ledger.
        Err(status) if !matches!(status.code(), Code::DataLoss | Code::NotFound) => {
            Err(anyhow::Error::new(status).context(format!("reading entry {sequence}")))
        }
        Err(status) => Ok(Err((
            sequence,
            format!(
                "the server cannot read it ({:?}: {})",
                status.code(),
                status.message()
            ),
        ))),
    }
}

/// A bar on stderr when it is a terminal and the range spans several
/// chunks; otherwise hidden (nothing is ever written, so captured stderr
/// stays clean).
fn progress_bar(total: u64, chunk: u64) -> ProgressBar {
    if total <= chunk || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "verifying {wide_bar} {human_pos}/{human_len} entries ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}

// ---- gate ---------------------------------------------------------------------

async fn gate(
    conn: govledger::connect::Connection,
    args: GateArgs,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let decision = conn
        .governance()
        .check_gate(CheckGateRequest {
            subject: args.subject.clone(),
            version: args.version.clone(),
            environment: args.environment.clone(),
            deployer: args.deployer.clone().unwrap_or_default(),
            as_of: args.as_of.as_of(),
        })
        .await
        .context("checking the gate")?
        .into_inner();
    if out.json {
        verdict_json(&json!({
            "allow": decision.allow,
            "decision": if decision.allow { "allow" } else { "deny" },
            "subject": args.subject,
            "version": args.version,
            "environment": args.environment,
            "deployer": args.deployer,
            "policy_sequence": decision.policy_sequence,
            "as_of_sequence": decision.as_of_sequence,
            "reasons": decision.reasons.iter().map(|r| json!({
                "rule": r.rule,
                "expected": r.expected,
                "actual": r.actual,
                "evidence": r.evidence,
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        let policy = if decision.policy_sequence == 0 {
            "no policy in force".to_owned()
        } else {
            format!("policy of entry {}", decision.policy_sequence)
        };
        let verdict = if decision.allow { "ALLOW" } else { "DENY" };
        let unmet = match decision.reasons.len() {
            0 => String::new(),
            1 => ": 1 unmet rule".to_owned(),
            n => format!(": {n} unmet rules"),
        };
        verdict_line(&format!(
            "{verdict} {} {} to {} ({policy}; state as of entry {}){unmet}",
            args.subject, args.version, args.environment, decision.as_of_sequence
        ))?;
        for r in &decision.reasons {
            let evidence = if r.evidence.is_empty() {
                String::new()
            } else {
                format!(" [evidence: entries {}]", join(&r.evidence))
            };
            verdict_line(&format!(
                "  {}: expected {}; actual {}{evidence}",
                r.rule, r.expected, r.actual
            ))?;
        }
    }
    Ok(if decision.allow {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DENIED_OR_DAMAGED)
    })
}

// ---- log ----------------------------------------------------------------------

async fn log(
    conn: govledger::connect::Connection,
    args: LogArgs,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let mut ledger = conn.ledger();
    let kind = args.kind.map_or(0, |k| k as i32);
    // The header once the server has accepted the request.
    let header = || {
        if out.json {
            return Ok(());
        }
        emit(&format!(
            "{:>8}  {:<27}  {:<19}  {:<28}  {:<12}  {:<12}  SUMMARY",
            "SEQ", "RECORDED_AT", "KIND", "SUBJECT", "ACTOR", "HASH"
        ))
    };
    // Once --until has passed nothing live can match: the history is the
    // whole answer, and following would wait for nothing.
    let follow = args.follow && !args.until.as_ref().is_some_and(has_passed);
    if !follow {
        let mut stream = ledger
            .read_entries(ReadEntriesRequest {
                from_sequence: args.from.unwrap_or(0),
                subject: args.subject.unwrap_or_default(),
                kind,
                actor: args.actor.unwrap_or_default(),
                since: args.since,
                until: args.until,
                limit: args.limit.unwrap_or(0),
            })
            .await
            .context("reading entries")?
            .into_inner();
        header()?;
        while let Some(entry) = stream.message().await.context("reading entries")? {
            print_entry(&entry, out)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Subscribe filters by sequence, subject and kind; the rest is done here.
    let mut stream = ledger
        .subscribe(SubscribeRequest {
            from_sequence: args.from.unwrap_or(0),
            subject: args.subject.clone().unwrap_or_default(),
            kind,
        })
        .await
        .context("subscribing")?
        .into_inner();
    header()?;
    let after = |t: &Option<prost_types::Timestamp>, bound: &prost_types::Timestamp| {
        t.as_ref()
            .is_some_and(|t| (t.seconds, t.nanos) >= (bound.seconds, bound.nanos))
    };
    let mut shown = 0u32;
    // The next sequence the subscription would deliver.
    let mut next = args.from.unwrap_or(0);
    // On an idle ledger no entry arrives to show that --until has passed.
    let until_passed = wait_until(args.until);
    tokio::pin!(until_passed);
    loop {
        let message = tokio::select! {
            // Entries already delivered come before the deadline: a
            // subscription still replaying history must not lose them.
            biased;
            message = stream.message() => message.context("following the log")?,
            () = &mut until_passed => {
                // The subscription may still be replaying history (or an
                // entry may be on its way): what was recorded up to --until
                // and is acknowledged now is read in one go, then we stop.
                let mut rest = ledger
                    .read_entries(ReadEntriesRequest {
                        from_sequence: next,
                        subject: args.subject.clone().unwrap_or_default(),
                        kind,
                        actor: args.actor.clone().unwrap_or_default(),
                        since: args.since,
                        until: args.until,
                        limit: args.limit.map_or(0, |limit| limit - shown),
                    })
                    .await
                    .context("reading the entries up to --until")?
                    .into_inner();
                while let Some(entry) = rest.message().await.context("reading entries")? {
                    print_entry(&entry, out)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
        };
        let Some(entry) = message else { break };
        next = entry.sequence + 1;
        // Recorded times never go backwards: nothing later can match.
        if let Some(until) = &args.until
            && after(&entry.recorded_at, until)
        {
            return Ok(ExitCode::SUCCESS);
        }
        if args.actor.as_ref().is_some_and(|a| *a != entry.actor)
            || args
                .since
                .as_ref()
                .is_some_and(|since| !after(&entry.recorded_at, since))
        {
            continue;
        }
        print_entry(&entry, out)?;
        shown += 1;
        if args.limit.is_some_and(|limit| shown >= limit) {
            return Ok(ExitCode::SUCCESS);
        }
    }
    eprintln!("govledger log: the server ended the stream (it is shutting down)");
    Ok(ExitCode::SUCCESS)
}

/// Whether the wall clock is at or past `t`.
fn has_passed(t: &prost_types::Timestamp) -> bool {
    until_wall_clock(t).is_none()
}

/// How long until the wall clock reaches `t`; `None` once it has.
fn until_wall_clock(t: &prost_types::Timestamp) -> Option<std::time::Duration> {
    let at = chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)?;
    (at - chrono::Utc::now())
        .to_std()
        .ok()
        .filter(|d| !d.is_zero())
}

/// Resolves once the wall clock reaches `until`; never without one. The
/// timer runs on the monotonic clock, so the wall clock is asked again when
/// it fires rather than trusting the two to agree.
async fn wait_until(until: Option<prost_types::Timestamp>) {
    let Some(until) = until else {
        return std::future::pending().await;
    };
    while let Some(left) = until_wall_clock(&until) {
        tokio::time::sleep(left).await;
    }
}

fn print_entry(entry: &Entry, out: Output) -> anyhow::Result<()> {
    let kind = kind_name(entry.kind);
    let recorded_at = entry
        .recorded_at
        .as_ref()
        .map(super::timestamp_text)
        .unwrap_or_default();
    let summary = entry.event.as_ref().map(event_summary).unwrap_or_default();
    if out.json {
        return emit_json(&json!({
            "sequence": entry.sequence,
            "event_id": entry.event_id,
            "recorded_at": recorded_at,
            "kind": kind,
            "subject": entry.subject,
            "actor": entry.actor,
            "idempotency_key": entry.idempotency_key,
            "hash": hex(&entry.hash),
            "prev_hash": hex(&entry.prev_hash),
            "payload_digest": hex(&entry.payload_digest),
            "ends_atomic_group": entry.ends_atomic_group,
            "summary": summary,
            "event": entry.event.as_ref().map(event_json),
        }));
    }
    let hash = hex(&entry.hash);
    emit(&format!(
        "{:>8}  {:<27}  {:<19}  {:<28}  {:<12}  {:<12}  {}",
        entry.sequence,
        recorded_at,
        kind,
        entry.subject,
        entry.actor,
        &hash[..hash.len().min(12)],
        summary
    ))
}

// ---- state and history ---------------------------------------------------------

async fn state(
    conn: govledger::connect::Connection,
    args: StateArgs,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let s = conn
        .governance()
        .get_subject_state(GetSubjectStateRequest {
            subject: args.subject.clone(),
            as_of: args.as_of.as_of(),
        })
        .await
        .with_context(|| format!("reading the state of {}", args.subject))?
        .into_inner();
    if out.json {
        emit_json(&json!({
            "subject": s.subject,
            "kind": subject_kind_name(s.kind),
            "as_of_sequence": s.as_of_sequence,
            "created_sequence": s.created_sequence,
            "drift": s.drift,
            "versions": s.versions.iter().map(version_json).collect::<Vec<_>>(),
            "environments": s.environments.iter().map(environment_json).collect::<Vec<_>>(),
            "open_incidents": s.open_incidents.iter().map(incident_json).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines = vec![
        format!(
            "{} ({}) as of entry {}; first entry {}; drift: {}",
            s.subject,
            subject_kind_name(s.kind),
            s.as_of_sequence,
            s.created_sequence,
            yes_no(s.drift)
        ),
        String::new(),
        "VERSIONS".to_owned(),
    ];
    for v in &s.versions {
        version_lines(v, &[], &mut lines);
    }
    lines.push(String::new());
    lines.push("ENVIRONMENTS".to_owned());
    if s.environments.is_empty() {
        lines.push("  (none deployed)".to_owned());
    }
    for e in &s.environments {
        environment_lines(e, false, &mut lines);
    }
    lines.push(String::new());
    lines.push("OPEN INCIDENTS".to_owned());
    if s.open_incidents.is_empty() {
        lines.push("  (none)".to_owned());
    }
    for i in &s.open_incidents {
        lines.push(format!("  {}", incident_text(i)));
    }
    emit_lines(&lines)?;
    Ok(ExitCode::SUCCESS)
}

async fn history(
    conn: govledger::connect::Connection,
    subject: String,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let h = conn
        .governance()
        .get_version_history(GetVersionHistoryRequest {
            subject: subject.clone(),
        })
        .await
        .with_context(|| format!("reading the history of {subject}"))?
        .into_inner();
    if out.json {
        emit_json(&json!({
            "subject": h.subject,
            "as_of_sequence": h.as_of_sequence,
            "versions": h.versions.iter().map(version_json).collect::<Vec<_>>(),
            "environments": h.environments.iter().map(environment_json).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines = vec![
        format!(
            "{}: {} version(s) as of entry {}",
            h.subject,
            h.versions.len(),
            h.as_of_sequence
        ),
        String::new(),
    ];
    for v in &h.versions {
        version_lines(v, &h.environments, &mut lines);
    }
    lines.push(String::new());
    lines.push("ENVIRONMENTS".to_owned());
    if h.environments.is_empty() {
        lines.push("  (none deployed)".to_owned());
    }
    for e in &h.environments {
        environment_lines(e, true, &mut lines);
    }
    emit_lines(&lines)?;
    Ok(ExitCode::SUCCESS)
}

/// A version and its evidence; with `environments`, its deployments too.
fn version_lines(
    v: &v1::VersionState,
    environments: &[v1::EnvironmentState],
    lines: &mut Vec<String>,
) {
    let parent = if v.parent_version.is_empty() {
        String::new()
    } else {
        format!(", parent {}", v.parent_version)
    };
    let author = if v.author.is_empty() {
        String::new()
    } else {
        format!("author {}, ", v.author)
    };
    lines.push(format!(
        "  {}  {}  (entry {}, {}; {author}registered by {}{parent}; content {})",
        v.version,
        v.stage,
        v.created_sequence,
        time_text(&v.created_at),
        v.registered_by,
        short_hex(&v.content_digest)
    ));
    for e in &v.evals {
        let metrics: Vec<String> = e
            .metrics
            .iter()
            .map(|m| {
                format!(
                    "{} {} {} {} {}",
                    m.name,
                    m.value,
                    direction_symbol(m.direction),
                    m.threshold,
                    if m.passed { "ok" } else { "FAILED" }
                )
            })
            .collect();
        lines.push(format!(
            "      eval      {} {} (entry {}): {}",
            e.suite,
            if e.passed { "PASS" } else { "FAIL" },
            e.sequence,
            metrics.join("; ")
        ));
    }
    for a in &v.approvals {
        lines.push(format!(
            "      {:<9} {} by {} (entry {}, {})",
            decision_name(a.decision),
            a.environment,
            a.approver,
            a.sequence,
            time_text(&a.recorded_at)
        ));
    }
    for e in environments {
        for d in e.history.iter().filter(|d| d.version == v.version) {
            lines.push(format!(
                "      deployed  {}",
                deployment_text(&e.environment, d)
            ));
        }
    }
    if !v.incident_ids.is_empty() {
        lines.push(format!("      incidents {}", v.incident_ids.join(", ")));
    }
}

fn environment_lines(e: &v1::EnvironmentState, deployments: bool, lines: &mut Vec<String>) {
    let live = if e.live_version.is_empty() {
        "nothing live".to_owned()
    } else {
        format!(
            "live {} since entry {}",
            e.live_version, e.live_since_sequence
        )
    };
    let drift = if e.drift {
        format!(
            "DRIFT ({}; incident {})",
            e.drift_finding, e.drift_incident_id
        )
    } else {
        "no drift".to_owned()
    };
    lines.push(format!("  {}  {live}; {drift}", e.environment));
    if deployments {
        for d in &e.history {
            lines.push(format!("      {}", deployment_text(&e.environment, d)));
        }
    }
}

fn deployment_text(environment: &str, d: &v1::DeploymentState) -> String {
    let mut text = format!(
        "{} to {} by {} (entry {}, {})",
        d.version,
        environment,
        d.deployer,
        d.sequence,
        time_text(&d.recorded_at)
    );
    if d.rollback {
        text.push_str(", rollback");
    }
    if !d.override_justification.is_empty() {
        text.push_str(&format!(", OVERRIDE: {}", d.override_justification));
    }
    text
}

fn incident_text(i: &v1::Incident) -> String {
    let mut place = i.version.clone();
    if !i.environment.is_empty() {
        place = format!("{place} in {}", i.environment);
    }
    format!(
        "{} {} {} on {} (opened entry {} by {}, {}): {}",
        i.incident_id,
        severity_name(i.severity),
        category_name(i.category),
        if place.is_empty() {
            "the subject"
        } else {
            &place
        },
        i.opened_sequence,
        i.opened_by,
        time_text(&i.opened_at),
        i.description
    )
}

fn version_json(v: &v1::VersionState) -> Value {
    json!({
        "version": v.version,
        "stage": v.stage,
        "content_digest": hex(&v.content_digest),
        "author": v.author,
        "registered_by": v.registered_by,
        "parent_version": v.parent_version,
        "created_sequence": v.created_sequence,
        "created_at": time_json(&v.created_at),
        "evals": v.evals.iter().map(|e| json!({
            "suite": e.suite,
            "passed": e.passed,
            "sequence": e.sequence,
            "recorded_at": time_json(&e.recorded_at),
            "metrics": e.metrics.iter().map(|m| json!({
                "name": m.name,
                "value": m.value,
                "threshold": m.threshold,
                "direction": direction_name(m.direction),
                "passed": m.passed,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "approvals": v.approvals.iter().map(|a| json!({
            "environment": a.environment,
            "approver": a.approver,
            "decision": decision_name(a.decision),
            "sequence": a.sequence,
            "recorded_at": time_json(&a.recorded_at),
        })).collect::<Vec<_>>(),
        "incident_ids": v.incident_ids,
    })
}

fn environment_json(e: &v1::EnvironmentState) -> Value {
    json!({
        "environment": e.environment,
        "live_version": (!e.live_version.is_empty()).then_some(&e.live_version),
        "live_since_sequence": e.live_since_sequence,
        "drift": e.drift,
        "drift_incident_id": e.drift_incident_id,
        "drift_finding": e.drift_finding,
        "history": e.history.iter().map(|d| json!({
            "version": d.version,
            "sequence": d.sequence,
            "recorded_at": time_json(&d.recorded_at),
            "deployer": d.deployer,
            "override_justification": d.override_justification,
            "rollback": d.rollback,
        })).collect::<Vec<_>>(),
    })
}

fn incident_json(i: &v1::Incident) -> Value {
    json!({
        "incident_id": i.incident_id,
        "subject": i.subject,
        "version": i.version,
        "environment": i.environment,
        "severity": severity_name(i.severity),
        "category": category_name(i.category),
        "description": i.description,
        "related_sequence": i.related_sequence,
        "opened_sequence": i.opened_sequence,
        "opened_at": time_json(&i.opened_at),
        "opened_by": i.opened_by,
        "open": i.open,
        "resolved_sequence": i.resolved_sequence,
        "resolved_at": time_json(&i.resolved_at),
        "resolution": i.resolution,
        "fixing_version": i.fixing_version,
    })
}

// ---- events as JSON and as one line ----------------------------------------------

/// The event as JSON, field by field (prost messages have no serde): enum
/// values by their short lowercase names, bytes in hex, the content of a
/// version as text when it is UTF-8 (`content_hex` otherwise).
pub fn event_json(event: &Event) -> Value {
    let Some(kind) = &event.kind else {
        return Value::Null;
    };
    match kind {
        Kind::VersionRegistered(v) => {
            let mut value = json!({
                "subject": v.subject,
                "subject_kind": subject_kind_name(v.subject_kind),
                "version": v.version,
                "content_digest": hex(&v.content_digest),
                "parent_version": v.parent_version,
                "author": v.author,
                "model": v.model,
                "parameters": v.parameters,
                "source": source_json(&v.source),
                "summary": v.summary,
                "content_length": v.content.len(),
            });
            if !v.content.is_empty() {
                value["content"] = match std::str::from_utf8(&v.content) {
                    Ok(text) => Value::from(text),
                    Err(_) => Value::Null,
                };
                if value["content"].is_null() {
                    value["content_hex"] = Value::from(hex(&v.content));
                }
            }
            value
        }
        Kind::EvalRecorded(e) => json!({
            "subject": e.subject,
            "version": e.version,
            "suite": e.suite,
            "eval_kind": eval_kind_name(e.eval_kind),
            "metrics": e.metrics.iter().map(|m| json!({
                "name": m.name,
                "value": m.value,
                "threshold": m.threshold,
                "direction": direction_name(m.direction),
            })).collect::<Vec<_>>(),
            "dataset_digest": hex(&e.dataset_digest),
            "sample_size": e.sample_size,
            "grader_model": e.grader_model,
            "run_ref": e.run_ref,
            "source": source_json(&e.source),
        }),
        Kind::ApprovalRecorded(a) => json!({
            "subject": a.subject,
            "version": a.version,
            "environment": a.environment,
            "decision": decision_name(a.decision),
            "comment": a.comment,
        }),
        Kind::DeploymentRecorded(d) => json!({
            "subject": d.subject,
            "version": d.version,
            "environment": d.environment,
            "override_justification": d.override_justification,
            "source": source_json(&d.source),
        }),
        Kind::IncidentOpened(i) => json!({
            "incident_id": i.incident_id,
            "subject": i.subject,
            "version": i.version,
            "environment": i.environment,
            "severity": severity_name(i.severity),
            "category": category_name(i.category),
            "description": i.description,
            "related_sequence": i.related_sequence,
        }),
        Kind::IncidentResolved(i) => json!({
            "incident_id": i.incident_id,
            "subject": i.subject,
            "resolution": i.resolution,
            "fixing_version": i.fixing_version,
        }),
        Kind::FeedbackRecorded(f) => json!({
            "subject": f.subject,
            "version": f.version,
            "environment": f.environment,
            "window_start": time_json(&f.window_start),
            "window_end": time_json(&f.window_end),
            "thumbs_up": f.thumbs_up,
            "thumbs_down": f.thumbs_down,
            "rewrites": f.rewrites,
            "total": f.total,
        }),
        Kind::PolicySet(p) => json!({
            "subject": p.subject,
            "environment": p.environment,
            "required_suites": p.required_suites.iter().map(|s| json!({
                "suite": s.suite,
                "thresholds": s.thresholds.iter().map(|m| json!({
                    "name": m.name,
                    "threshold": m.threshold,
                    "direction": direction_name(m.direction),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "max_evidence_age_seconds": p.max_evidence_age_seconds,
            "min_approvals": p.min_approvals,
            "allow_self_approval": p.allow_self_approval,
            "deployer_not_sole_approver": p.deployer_not_sole_approver,
            "block_on_open_incident_severity": severity_name(p.block_on_open_incident_severity),
            "max_eval_score_drop": p.max_eval_score_drop,
            "max_negative_feedback_rate_rise": p.max_negative_feedback_rate_rise,
            "baseline_negative_feedback_rate": p.baseline_negative_feedback_rate,
        }),
        Kind::PrincipalRolesSet(p) => json!({
            "principal": p.principal,
            "grants": grants_text(&p.grants),
        }),
        Kind::TokenIssued(t) => json!({
            "principal": t.principal,
            "token_id": t.token_id,
            "secret_hash": hex(&t.secret_hash),
            "description": t.description,
        }),
        Kind::TokenRevoked(t) => json!({
            "principal": t.principal,
            "token_id": t.token_id,
            "reason": t.reason,
        }),
    }
}

/// One line saying what the event did (the subject and actor are shown
/// beside it).
pub fn event_summary(event: &Event) -> String {
    let Some(kind) = &event.kind else {
        return "(no event)".to_owned();
    };
    match kind {
        Kind::VersionRegistered(v) => {
            let mut text = format!("{} ({})", v.version, subject_kind_name(v.subject_kind));
            if !v.author.is_empty() {
                text.push_str(&format!(" by {}", v.author));
            }
            if !v.parent_version.is_empty() {
                text.push_str(&format!(", parent {}", v.parent_version));
            }
            text.push_str(&format!(", content {}", short_hex(&v.content_digest)));
            if !v.summary.is_empty() {
                text.push_str(&format!(": {}", v.summary));
            }
            text
        }
        Kind::EvalRecorded(e) => {
            let metrics: Vec<String> = e
                .metrics
                .iter()
                .map(|m| {
                    format!(
                        "{} {} {} {}",
                        m.name,
                        m.value,
                        direction_symbol(m.direction),
                        m.threshold
                    )
                })
                .collect();
            format!(
                "{} suite {} ({}): {}",
                e.version,
                e.suite,
                eval_kind_name(e.eval_kind),
                metrics.join(", ")
            )
        }
        Kind::ApprovalRecorded(a) => {
            let mut text = format!(
                "{} {} for {}",
                decision_name(a.decision),
                a.version,
                a.environment
            );
            if !a.comment.is_empty() {
                text.push_str(&format!(": {}", a.comment));
            }
            text
        }
        Kind::DeploymentRecorded(d) => {
            let mut text = format!("{} to {}", d.version, d.environment);
            if !d.override_justification.is_empty() {
                text.push_str(&format!(", OVERRIDE: {}", d.override_justification));
            }
            text
        }
        Kind::IncidentOpened(i) => {
            let mut place = i.version.clone();
            if !i.environment.is_empty() {
                place = format!("{place} in {}", i.environment);
            }
            format!(
                "{} {} {}{}: {}",
                i.incident_id,
                severity_name(i.severity),
                category_name(i.category),
                if place.is_empty() {
                    String::new()
                } else {
                    format!(" on {place}")
                },
                i.description
            )
        }
        Kind::IncidentResolved(i) => {
            let fixed = if i.fixing_version.is_empty() {
                String::new()
            } else {
                format!(" (fixed in {})", i.fixing_version)
            };
            format!("{} resolved{fixed}: {}", i.incident_id, i.resolution)
        }
        Kind::FeedbackRecorded(f) => format!(
            "{} in {}: {} up, {} down, {} rewrites of {} ({} to {})",
            f.version,
            f.environment,
            f.thumbs_up,
            f.thumbs_down,
            f.rewrites,
            f.total,
            time_text(&f.window_start),
            time_text(&f.window_end)
        ),
        Kind::PolicySet(p) => {
            let mut rules = Vec::new();
            for s in &p.required_suites {
                if s.thresholds.is_empty() {
                    rules.push(format!("suite {} passed", s.suite));
                } else {
                    let t: Vec<String> = s
                        .thresholds
                        .iter()
                        .map(|m| {
                            format!(
                                "{} {} {}",
                                m.name,
                                direction_symbol(m.direction),
                                m.threshold
                            )
                        })
                        .collect();
                    rules.push(format!("suite {} ({})", s.suite, t.join(", ")));
                }
            }
            if p.min_approvals > 0 {
                rules.push(format!("{} approval(s)", p.min_approvals));
            }
            if p.max_evidence_age_seconds > 0 {
                rules.push(format!(
                    "evidence at most {} s old",
                    p.max_evidence_age_seconds
                ));
            }
            if p.block_on_open_incident_severity != 0 {
                rules.push(format!(
                    "no open {}+ incident",
                    severity_name(p.block_on_open_incident_severity)
                ));
            }
            if p.deployer_not_sole_approver {
                rules.push("deployer not sole approver".to_owned());
            }
            if p.allow_self_approval {
                rules.push("self-approval allowed".to_owned());
            }
            format!(
                "policy for {} in {}: {}",
                p.subject,
                p.environment,
                if rules.is_empty() {
                    "no rules".to_owned()
                } else {
                    rules.join("; ")
                }
            )
        }
        Kind::PrincipalRolesSet(p) => {
            let grants = grants_text(&p.grants);
            format!(
                "roles of {}: {}",
                p.principal,
                if grants.is_empty() {
                    "none".to_owned()
                } else {
                    grants.join(", ")
                }
            )
        }
        Kind::TokenIssued(t) => format!("token {} issued to {}", t.token_id, t.principal),
        Kind::TokenRevoked(t) => {
            let mut text = format!("token {} of {} revoked", t.token_id, t.principal);
            if !t.reason.is_empty() {
                text.push_str(&format!(": {}", t.reason));
            }
            text
        }
    }
}

fn source_json(source: &Option<Source>) -> Value {
    match source {
        None => Value::Null,
        Some(s) => json!({
            "repository": s.repository,
            "commit": s.commit,
            "branch": s.branch,
            "run_url": s.run_url,
            "pipeline_id": s.pipeline_id,
            "system": s.system,
        }),
    }
}

// ---- names, times, hex ------------------------------------------------------------

/// A prost enum value by its short lowercase name (`SEVERITY_HIGH` → `high`).
macro_rules! enum_name {
    ($ty:ty, $prefix:literal, $value:expr) => {{
        let value: i32 = $value;
        match <$ty>::try_from(value) {
            Ok(v) => {
                let name = v.as_str_name();
                name.strip_prefix($prefix)
                    .unwrap_or(name)
                    .to_ascii_lowercase()
            }
            Err(_) => format!("unknown({value})"),
        }
    }};
}

pub fn kind_name(kind: i32) -> String {
    enum_name!(EventKind, "EVENT_KIND_", kind)
}
pub(super) fn severity_name(v: i32) -> String {
    enum_name!(Severity, "SEVERITY_", v)
}
/// Kebab-case, unlike the other names here: it is how `incident open
/// --category` takes a category and how the recording commands print one,
/// so a category read from `log` or `state` can be passed back as it is.
pub(super) fn category_name(v: i32) -> String {
    enum_name!(IncidentCategory, "INCIDENT_CATEGORY_", v).replace('_', "-")
}
fn subject_kind_name(v: i32) -> String {
    enum_name!(SubjectKind, "SUBJECT_KIND_", v)
}
fn eval_kind_name(v: i32) -> String {
    enum_name!(EvalKind, "EVAL_KIND_", v)
}
fn direction_name(v: i32) -> String {
    enum_name!(Direction, "DIRECTION_", v)
}
fn decision_name(v: i32) -> String {
    enum_name!(Decision, "DECISION_", v)
}

fn direction_symbol(direction: i32) -> &'static str {
    match Direction::try_from(direction) {
        Ok(Direction::HigherIsBetter) => ">=",
        Ok(Direction::LowerIsBetter) => "<=",
        _ => "?",
    }
}

/// `eval_recorded`, `eval-recorded`, `EVAL_RECORDED` or `EVENT_KIND_EVAL_RECORDED`.
fn parse_kind(text: &str) -> Result<EventKind, String> {
    let upper = text.trim().replace('-', "_").to_ascii_uppercase();
    let name = if upper.starts_with("EVENT_KIND_") {
        upper
    } else {
        format!("EVENT_KIND_{upper}")
    };
    EventKind::from_str_name(&name)
        .filter(|k| *k != EventKind::Unspecified)
        .ok_or_else(|| {
            let known: Vec<String> = (1..=11).map(kind_name).collect();
            format!("unknown event kind {text:?}; known: {}", known.join(", "))
        })
}

/// RFC 3339 (`2026-03-03T00:00:00Z`, any offset) or a date (`2026-03-03`,
/// its midnight UTC).
fn parse_time(text: &str) -> Result<prost_types::Timestamp, String> {
    let time = chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.to_utc())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| {
            format!(
                "{text:?} is neither an RFC 3339 time (2026-03-03T00:00:00Z) nor a date (2026-03-03)"
            )
        })?;
    Ok(prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    })
}

/// A sequence number (digits only) or a moment.
fn parse_as_of(text: &str) -> Result<Point, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(Point::Sequence)
            .map_err(|e| format!("{text:?}: {e}"));
    }
    parse_time(text)
        .map(Point::Time)
        .map_err(|e| format!("{e}, nor a sequence number"))
}

fn time_text(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .map(super::timestamp_text)
        .unwrap_or_else(|| "-".to_owned())
}

fn time_json(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref()
        .map_or(Value::Null, |t| Value::from(super::timestamp_text(t)))
}

fn short_hex(bytes: &[u8]) -> String {
    let mut text = hex(bytes);
    text.truncate(12);
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

fn join(sequences: &[u64]) -> String {
    sequences
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

// ---- standard output --------------------------------------------------------------

/// Standard output was closed by its reader (`govledger log | head`): not
/// a failure.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
struct StdoutClosed;

fn emit(line: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

/// Output of a command whose exit code is its answer (verify, gate). A
/// closed stdout (`verify | head -1`) must not turn "damaged" or "denied"
/// into success, so these writes are best-effort and the command goes on to
/// its verdict.
fn verdict_line(line: &str) -> anyhow::Result<()> {
    match emit(line) {
        Err(e) if e.downcast_ref::<StdoutClosed>().is_some() => Ok(()),
        other => other,
    }
}

fn verdict_json(value: &Value) -> anyhow::Result<()> {
    verdict_line(&value.to_string())
}

fn emit_lines(lines: &[String]) -> anyhow::Result<()> {
    lines.iter().try_for_each(|line| emit(line))
}

fn emit_json(value: &Value) -> anyhow::Result<()> {
    emit(&value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_in_every_spelling() {
        for text in [
            "eval_recorded",
            "eval-recorded",
            "EVAL_RECORDED",
            "EVENT_KIND_EVAL_RECORDED",
        ] {
            assert_eq!(parse_kind(text), Ok(EventKind::EvalRecorded), "{text}");
        }
        assert!(parse_kind("unspecified").is_err());
        let error = parse_kind("evals").unwrap_err();
        assert!(error.contains("token_revoked"), "{error}");
        for k in 1..=11 {
            assert_eq!(parse_kind(&kind_name(k)).map(|k| k as i32), Ok(k));
        }
    }

    #[test]
    fn as_of_is_a_sequence_or_a_moment() {
        assert_eq!(parse_as_of("42"), Ok(Point::Sequence(42)));
        assert_eq!(
            parse_as_of("2026-03-03T00:00:00Z"),
            Ok(Point::Time(prost_types::Timestamp {
                seconds: 1_772_496_000,
                nanos: 0
            }))
        );
        assert_eq!(
            parse_as_of("2026-03-03"),
            parse_as_of("2026-03-03T01:00:00+01:00")
        );
        assert_eq!(
            parse_time("2026-03-03T00:00:00.000123Z").map(|t| t.nanos),
            Ok(123_000)
        );
        assert!(parse_as_of("yesterday").is_err());
        assert!(parse_as_of("-1").is_err());
    }

    #[test]
    fn enum_names_are_short_and_lowercase() {
        assert_eq!(severity_name(Severity::Critical as i32), "critical");
        assert_eq!(category_name(IncidentCategory::PiiLeak as i32), "pii-leak");
        assert_eq!(kind_name(EventKind::PolicySet as i32), "policy_set");
        assert_eq!(direction_symbol(Direction::LowerIsBetter as i32), "<=");
        assert_eq!(severity_name(99), "unknown(99)");
    }

    #[test]
    fn binary_content_is_shown_in_hex() {
        let event = Event {
            kind: Some(Kind::VersionRegistered(v1::VersionRegistered {
                content: vec![0xff, 0x00],
                ..Default::default()
            })),
        };
        let value = event_json(&event);
        assert_eq!(value["content_hex"], "ff00");
        assert!(value["content"].is_null());
        assert_eq!(value["content_length"], 2);
    }
}
