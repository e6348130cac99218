//! The write commands a CI pipeline (or a person) runs: `version register`,
//! `eval record|import`, `approve`, `reject`, `deploy`, `incident
//! open|resolve|list`, `feedback record`, `policy set|show`.
//!
//! Every write:
//!
//! - detects the CI run from the environment ([`ci::detect`]) and records
//!   its commit, branch, repository and run URL as the event's `source`
//!   (events that have one), each overridable by a flag;
//! - appends with an idempotency key derived from the CI run, the step and
//!   the event ([`idempotency_key`]), so a re-run job records nothing new
//!   (the server answers with the original entry: "already recorded as
//!   entry N", exit 0). `--idempotency-key` sets the key instead; outside CI
//!   there is no key unless given;
//! - prints a sentence (or, with `--output json`, one JSON object per
//!   recorded entry) and leaves refusals to the server: its reason goes to
//!   stderr with exit 4.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use govledger::{
    client::{
        ci::{self, CiRun},
        idempotency::idempotency_key,
        import::{
            ImportError, ImportedSuite,
            junit::{self, JunitOptions},
            label::is_label,
            promptfoo::{self, PromptfooOptions},
        },
    },
    connect::{ClientArgs, Connection},
    domain::IdempotencyKey,
    governance::SYSTEM_ACTOR,
    proto::v1::{
        AppendBatchRequest, AppendRequest, ApprovalRecorded, BatchItem, CheckGateRequest, Decision,
        DeploymentRecorded, Direction, Entry, EvalKind, EvalRecorded, Event, FeedbackRecorded,
        GateDecision, GetEntryRequest, Incident, IncidentCategory, IncidentOpened,
        IncidentResolved, IncidentStatus, ListIncidentsRequest, Metric, PolicySet, RequiredSuite,
        Severity, Source, SubjectKind, VersionRegistered, event::Kind,
    },
};
use prost::Message;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    EXIT_REJECTED, Output, UsageError,
    audit::{category_name, kind_name, severity_name},
    hex, online, say, timestamp_text,
};

/// The rule of `--metric`, quoted in its errors.
const METRIC_RULE: &str = "expected NAME=VALUE>=THRESHOLD (higher is better) or NAME=VALUE<=THRESHOLD (lower is better), e.g. accuracy=0.92>=0.85 or toxicity=0.01<=0.05";
/// The rule of a policy threshold, quoted in its errors.
const THRESHOLD_RULE: &str = "expected NAME>=THRESHOLD (higher is better) or NAME<=THRESHOLD (lower is better), e.g. \"accuracy>=0.85\"";

#[derive(Subcommand)]
pub enum RecordCommand {
    /// Versions of governed subjects (prompts, models, retrieval context, agent configurations).
    #[command(subcommand)]
    Version(VersionCommand),
    /// Eval results: recorded from metrics, or imported from promptfoo or JUnit output.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Approve a version for an environment (as the authenticated caller).
    Approve(ApprovalArgs),
    /// Reject a version for an environment (as the authenticated caller).
    Reject(ApprovalArgs),
    /// Record that a version goes live in an environment. The ledger checks
    /// the policy gate: a denied deployment records nothing, prints every
    /// unmet rule on stderr and exits 4, unless --override justifies it
    /// (then the ledger opens a policy-violation incident with it).
    Deploy(DeployArgs),
    /// Incidents: open, resolve, list.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// Aggregated user feedback for a version in an environment.
    #[command(subcommand)]
    Feedback(FeedbackCommand),
    /// The policy a deployment must pass: set it from a TOML file, show the one in force.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
pub enum VersionCommand {
    /// Register a new version from its content file; prints the version and
    /// its content digest (BLAKE3 of the file's bytes). Only the digest is
    /// recorded unless --store-content is given.
    Register(RegisterArgs),
}

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Record one suite's result from its metrics. The ledger decides pass or
    /// fail from the values and thresholds.
    Record(EvalRecordArgs),
    /// Import an eval tool's results file and record each suite in it, all
    /// in one atomic batch. A file that is not a valid report of --format is
    /// a usage error (exit 2); an unreadable one a local failure (exit 5).
    Import(EvalImportArgs),
}

#[derive(Subcommand)]
pub enum IncidentCommand {
    /// Open an incident against a subject (and optionally a version and an
    /// environment); prints its id.
    Open(IncidentOpenArgs),
    /// Resolve an open incident.
    Resolve(IncidentResolveArgs),
    /// List incidents (open ones by default).
    List(IncidentListArgs),
}

#[derive(Subcommand)]
pub enum FeedbackCommand {
    /// Record user feedback counts over a time window.
    Record(FeedbackArgs),
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Set the policy of a subject (or the default, "*") for an environment
    /// from a TOML file. The file's shape:
    ///
    ///   subject = "support-bot/triage-prompt"   # or "*": every subject without its own
    ///   environment = "prod"
    ///   max_evidence_age = "7d"                 # s, m, h, d, w, or seconds; absent = no limit
    ///   min_approvals = 1                       # by distinct approvers
    ///   allow_self_approval = false             # may an author approve their own version?
    ///   deployer_not_sole_approver = true
    ///   block_on_open_incident_severity = "high"  # low|medium|high|critical; absent = never
    ///   max_eval_score_drop = 0.05              # drift tolerances; 0 = no check
    ///   max_negative_feedback_rate_rise = 0.1
    ///   baseline_negative_feedback_rate = 0.05  # 0 = the first window after deployment
    ///
    ///   [[required_suites]]
    ///   suite = "regression"
    ///   thresholds = ["accuracy>=0.85", "toxicity<=0.05"]
    ///
    ///   [[required_suites]]
    ///   suite = "pytest"                        # no thresholds: the suite must have passed
    ///
    /// Unknown keys are refused (exit 2), so a typo cannot weaken a policy.
    #[command(verbatim_doc_comment)]
    Set(PolicySetArgs),
    /// Show the policy in force for a subject and environment (the
    /// subject's own, else the default "*"), as the TOML `policy set` reads.
    Show(PolicyShowArgs),
}

/// How an append is keyed.
#[derive(Args, Clone, Debug, Default)]
pub struct WriteArgs {
    /// Idempotency key of this append: the same key with the same event
    /// returns the original entry instead of recording it again. Default: in
    /// CI, derived from the run, the step and the event (a re-run job
    /// records nothing new); outside CI, none.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// The recording step, part of the derived idempotency key. Default:
    /// the CI job (GITHUB_JOB, CI_JOB_NAME, BUILDKITE_STEP_KEY, CIRCLE_JOB,
    /// STAGE_NAME).
    #[arg(long, value_name = "NAME")]
    step: Option<String>,
}

/// Where a change or result comes from. Each flag replaces the value
/// detected from the CI environment.
#[derive(Args, Clone, Debug, Default)]
pub struct SourceArgs {
    /// Commit (4-64 hex digits). Default: detected from CI.
    #[arg(long, value_name = "SHA")]
    commit: Option<String>,
    /// Branch. Default: detected from CI.
    #[arg(long)]
    branch: Option<String>,
    /// Repository, e.g. github.com/acme/support-bot. Default: detected from CI.
    #[arg(long)]
    repository: Option<String>,
    /// CI run URL (http or https). Default: detected from CI.
    #[arg(long, value_name = "URL")]
    run_url: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SubjectKindArg {
    Prompt,
    Model,
    /// Retrieval context / RAG index.
    Context,
    AgentConfig,
}

impl From<SubjectKindArg> for SubjectKind {
    fn from(kind: SubjectKindArg) -> SubjectKind {
        match kind {
            SubjectKindArg::Prompt => SubjectKind::Prompt,
            SubjectKindArg::Model => SubjectKind::Model,
            SubjectKindArg::Context => SubjectKind::Context,
            SubjectKindArg::AgentConfig => SubjectKind::AgentConfig,
        }
    }
}

#[derive(Args)]
pub struct RegisterArgs {
    #[arg(long)]
    subject: String,
    #[arg(long, value_enum)]
    kind: SubjectKindArg,
    /// The content: prompt text, model card, index manifest, agent
    /// configuration ("-" reads standard input).
    #[arg(long, value_name = "PATH")]
    file: PathBuf,
    /// Version label (1-64 of [A-Za-z0-9._:+-]). Default: the first 12 hex
    /// digits of the content digest, so the same content always gets the
    /// same label and a re-run never registers it twice.
    #[arg(long)]
    version: Option<String>,
    /// The version this one changes (must be registered).
    #[arg(long, value_name = "VERSION")]
    parent: Option<String>,
    /// Who wrote the change (may not approve it). Default in CI: the user
    /// who started the run (GITHUB_ACTOR, BUILDKITE_BUILD_CREATOR_EMAIL,
    /// Jenkins' CHANGE_AUTHOR); GitLab and CircleCI name no user that stays
    /// the same on a re-run: pass --author there.
    #[arg(long, value_name = "NAME")]
    author: Option<String>,
    /// The model the version targets, e.g. openai/gpt-4o-mini.
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// A parameter, KEY=VALUE (e.g. temperature=0.2). Repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Change summary.
    #[arg(long)]
    summary: Option<String>,
    /// Store the content itself in the ledger (at most about 1 MiB), not
    /// only its digest. Off by default: prompts may hold confidential text,
    /// and the digest is enough to prove which content a version was.
    #[arg(long)]
    store_content: bool,
    /// Succeed without recording anything when the version is already
    /// registered with the same content (a pipeline that runs again for an
    /// unchanged prompt); the same label with other content is still refused.
    #[arg(long)]
    exists_ok: bool,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EvalKindArg {
    Deterministic,
    ModelGraded,
    Human,
}

impl From<EvalKindArg> for EvalKind {
    fn from(kind: EvalKindArg) -> EvalKind {
        match kind {
            EvalKindArg::Deterministic => EvalKind::Deterministic,
            EvalKindArg::ModelGraded => EvalKind::ModelGraded,
            EvalKindArg::Human => EvalKind::Human,
        }
    }
}

/// Evidence about an eval run that neither the metrics nor a results file carry.
#[derive(Args, Clone, Debug, Default)]
pub struct EvalEvidenceArgs {
    /// BLAKE3 digest of the dataset, 64 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_digest, conflicts_with = "dataset_file")]
    dataset_digest: Option<Digest>,
    /// The dataset file, whose BLAKE3 digest is recorded (instead of --dataset-digest).
    #[arg(long, value_name = "PATH")]
    dataset_file: Option<PathBuf>,
    /// Reference to the eval run (URL or id).
    #[arg(long, value_name = "REF")]
    run_ref: Option<String>,
}

#[derive(Args)]
pub struct EvalRecordArgs {
    #[arg(long)]
    subject: String,
    #[arg(long)]
    version: String,
    /// Suite name, e.g. regression.
    #[arg(long)]
    suite: String,
    #[arg(long, value_enum)]
    kind: EvalKindArg,
    /// A metric: NAME=VALUE>=THRESHOLD (higher is better) or
    /// NAME=VALUE<=THRESHOLD (lower is better). Repeatable; at least one.
    #[arg(long = "metric", value_name = "METRIC", value_parser = parse_metric, required = true)]
    metrics: Vec<Metric>,
    /// Number of samples evaluated.
    #[arg(long, value_name = "N")]
    samples: Option<u64>,
    /// The grading model of a model-graded suite.
    #[arg(long, value_name = "MODEL")]
    grader: Option<String>,
    #[command(flatten)]
    evidence: EvalEvidenceArgs,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ImportFormat {
    /// promptfoo's output file (`promptfoo eval -o results.json`).
    Promptfoo,
    /// JUnit XML (pytest --junitxml, jest-junit, ...), as a deterministic suite.
    Junit,
}

#[derive(Args)]
pub struct EvalImportArgs {
    #[arg(long, value_enum)]
    format: ImportFormat,
    /// The results file ("-" reads standard input).
    file: PathBuf,
    #[arg(long)]
    subject: String,
    #[arg(long)]
    version: String,
    /// Suite name (promptfoo: the prefix of per-provider names). Default:
    /// "promptfoo"; for JUnit the report's own name (pytest: "pytest",
    /// jest-junit: "jest"), else "junit".
    #[arg(long)]
    suite: Option<String>,
    /// Threshold of the recorded pass_rate metric, 0 to 1 (default 1.0: any
    /// failure fails the suite).
    #[arg(long, value_name = "X", default_value_t = 1.0, value_parser = parse_rate)]
    pass_rate_threshold: f64,
    /// promptfoo: one suite per provider, named <suite>.<provider>.
    #[arg(long)]
    split_by_provider: bool,
    /// promptfoo: do not record a metric:<name> per named score.
    #[arg(long)]
    no_named_scores: bool,
    /// promptfoo: do not record an assert:<type> pass rate per assertion
    /// type (a red-team run with many plugins has more types than the
    /// ledger's 64 metrics per result).
    #[arg(long)]
    no_assertion_metrics: bool,
    /// The model that graded the results (default: the one the promptfoo
    /// file names, when it names exactly one).
    #[arg(long, value_name = "MODEL")]
    grader: Option<String>,
    #[command(flatten)]
    evidence: EvalEvidenceArgs,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Args)]
pub struct ApprovalArgs {
    #[arg(long)]
    subject: String,
    #[arg(long)]
    version: String,
    /// Environment, e.g. prod.
    #[arg(long, value_name = "ENV")]
    env: String,
    #[arg(long)]
    comment: Option<String>,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Args)]
pub struct DeployArgs {
    #[arg(long)]
    subject: String,
    #[arg(long)]
    version: String,
    #[arg(long, value_name = "ENV")]
    env: String,
    /// Deploy although the policy gate denies it, for this reason. Recorded
    /// as an override; the ledger opens a policy-violation incident.
    #[arg(long = "override", value_name = "JUSTIFICATION")]
    override_justification: Option<String>,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum SeverityArg {
    Low,
    Medium,
    High,
    Critical,
}

impl From<SeverityArg> for Severity {
    fn from(severity: SeverityArg) -> Severity {
        match severity {
            SeverityArg::Low => Severity::Low,
            SeverityArg::Medium => Severity::Medium,
            SeverityArg::High => Severity::High,
            SeverityArg::Critical => Severity::Critical,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CategoryArg {
    Hallucination,
    Toxicity,
    PolicyViolation,
    PiiLeak,
    Drift,
    Other,
}

impl From<CategoryArg> for IncidentCategory {
    fn from(category: CategoryArg) -> IncidentCategory {
        match category {
            CategoryArg::Hallucination => IncidentCategory::Hallucination,
            CategoryArg::Toxicity => IncidentCategory::Toxicity,
            CategoryArg::PolicyViolation => IncidentCategory::PolicyViolation,
            CategoryArg::PiiLeak => IncidentCategory::PiiLeak,
            CategoryArg::Drift => IncidentCategory::Drift,
            CategoryArg::Other => IncidentCategory::Other,
        }
    }
}

#[derive(Args)]
pub struct IncidentOpenArgs {
    #[arg(long)]
    subject: String,
    /// The version in force, when known.
    #[arg(long)]
    version: Option<String>,
    #[arg(long, value_name = "ENV")]
    env: Option<String>,
    #[arg(long, value_enum)]
    severity: SeverityArg,
    #[arg(long, value_enum)]
    category: CategoryArg,
    #[arg(long)]
    description: String,
    /// Incident id (a label, unique in the ledger). Default: "INC-" and 12
    /// hex digits, random outside CI; in CI derived from the run, the step
    /// and the incident, so a re-run opens nothing new.
    #[arg(long)]
    id: Option<String>,
    /// The entry this incident is about.
    #[arg(long, value_name = "SEQUENCE")]
    related_entry: Option<u64>,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Args)]
pub struct IncidentResolveArgs {
    #[arg(long)]
    id: String,
    #[arg(long)]
    subject: String,
    #[arg(long)]
    resolution: String,
    /// The version that fixes it (must be registered).
    #[arg(long, value_name = "VERSION")]
    fixing_version: Option<String>,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StatusArg {
    Open,
    Resolved,
    All,
}

#[derive(Args)]
pub struct IncidentListArgs {
    #[arg(long)]
    subject: Option<String>,
    #[arg(long, value_enum, default_value_t = StatusArg::Open)]
    status: StatusArg,
    /// Only incidents at or above this severity.
    #[arg(long, value_enum)]
    min_severity: Option<SeverityArg>,
}

#[derive(Args)]
pub struct FeedbackArgs {
    #[arg(long)]
    subject: String,
    #[arg(long)]
    version: String,
    #[arg(long, value_name = "ENV")]
    env: String,
    /// Start of the window (RFC 3339, e.g. 2026-03-03T00:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    window_start: prost_types::Timestamp,
    /// End of the window (RFC 3339), after its start.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    window_end: prost_types::Timestamp,
    /// Thumbs up.
    #[arg(long, value_name = "N")]
    up: u64,
    /// Thumbs down.
    #[arg(long, value_name = "N")]
    down: u64,
    /// Answers users rewrote or regenerated.
    #[arg(long, value_name = "N", default_value_t = 0)]
    rewrites: u64,
    /// Interactions in the window (at least up + down, and at least rewrites).
    #[arg(long, value_name = "N")]
    total: u64,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Args)]
pub struct PolicySetArgs {
    /// The policy file (TOML; see `govledger policy set --help`).
    #[arg(long, value_name = "PATH")]
    file: PathBuf,
    /// The subject (or "*"); replaces the file's.
    #[arg(long)]
    subject: Option<String>,
    /// The environment; replaces the file's.
    #[arg(long, value_name = "ENV")]
    env: Option<String>,
    #[command(flatten)]
    write: WriteArgs,
}

#[derive(Args)]
pub struct PolicyShowArgs {
    #[arg(long)]
    subject: String,
    #[arg(long, value_name = "ENV")]
    env: String,
}

pub fn run(command: RecordCommand, client: &ClientArgs, out: Output) -> anyhow::Result<ExitCode> {
    let run = ci::detect(|k| std::env::var(k).ok());
    let ctx = Ctx {
        run: run.as_ref(),
        out,
    };
    match command {
        RecordCommand::Version(VersionCommand::Register(args)) => register(&ctx, client, args),
        RecordCommand::Eval(EvalCommand::Record(args)) => eval_record(&ctx, client, args),
        RecordCommand::Eval(EvalCommand::Import(args)) => eval_import(&ctx, client, args),
        RecordCommand::Approve(args) => approval(&ctx, client, args, Decision::Approve),
        RecordCommand::Reject(args) => approval(&ctx, client, args, Decision::Reject),
        RecordCommand::Deploy(args) => deploy(&ctx, client, args),
        RecordCommand::Incident(IncidentCommand::Open(args)) => incident_open(&ctx, client, args),
        RecordCommand::Incident(IncidentCommand::Resolve(args)) => {
            incident_resolve(&ctx, client, args)
        }
        RecordCommand::Incident(IncidentCommand::List(args)) => incident_list(out, client, args),
        RecordCommand::Feedback(FeedbackCommand::Record(args)) => feedback(&ctx, client, args),
        RecordCommand::Policy(PolicyCommand::Set(args)) => policy_set(&ctx, client, args),
        RecordCommand::Policy(PolicyCommand::Show(args)) => policy_show(out, client, args),
    }
}

/// What every write needs besides its flags.
struct Ctx<'a> {
    run: Option<&'a CiRun>,
    out: Output,
}

impl Ctx<'_> {
    /// The event's source: the CI run's, each field replaced by its flag.
    /// `None` when nothing is known.
    fn source(&self, args: &SourceArgs) -> Option<Source> {
        let mut source = self.run.map(CiRun::source).unwrap_or_default();
        for (flag, field) in [
            (&args.commit, &mut source.commit),
            (&args.branch, &mut source.branch),
            (&args.repository, &mut source.repository),
            (&args.run_url, &mut source.run_url),
        ] {
            if let Some(value) = flag {
                field.clone_from(value);
            }
        }
        (source != Source::default()).then_some(source)
    }

    /// The step that names this recording within the CI run.
    fn step<'a>(&'a self, write: &'a WriteArgs) -> &'a str {
        write
            .step
            .as_deref()
            .or_else(|| self.run.and_then(|r| r.step.as_deref()))
            .unwrap_or_default()
    }

    /// The idempotency key of appending `event`: the user's, else derived
    /// from the CI run, else none (empty).
    fn key(&self, write: &WriteArgs, event: &Event) -> anyhow::Result<String> {
        if let Some(key) = &write.idempotency_key {
            IdempotencyKey::parse(key)
                .map_err(|rule| UsageError(format!("--idempotency-key: {rule}")))?;
            return Ok(key.clone());
        }
        Ok(self
            .run
            .map(|run| idempotency_key(run, self.step(write), event))
            .unwrap_or_default())
    }
}

// ---- version register --------------------------------------------------------

fn register(ctx: &Ctx, client: &ClientArgs, args: RegisterArgs) -> anyhow::Result<ExitCode> {
    let content = read_input(&args.file, "content file")?;
    let digest = blake3::hash(&content);
    let version = match args.version {
        Some(version) => version,
        None => digest.to_hex()[..12].to_owned(),
    };
    let mut parameters = BTreeMap::new();
    for (key, value) in args.params {
        if parameters.insert(key.clone(), value).is_some() {
            return Err(UsageError(format!("--param: {key} is given twice")).into());
        }
    }
    let event = event(Kind::VersionRegistered(VersionRegistered {
        subject: args.subject.clone(),
        subject_kind: SubjectKind::from(args.kind) as i32,
        version: version.clone(),
        content_digest: digest.as_bytes().to_vec(),
        parent_version: args.parent.unwrap_or_default(),
        author: args
            .author
            .or_else(|| ctx.run.and_then(|run| run.triggered_by.clone()))
            .unwrap_or_default(),
        model: args.model.unwrap_or_default(),
        parameters: parameters.into_iter().collect(),
        source: ctx.source(&args.source),
        summary: args.summary.unwrap_or_default(),
        content: if args.store_content {
            content
        } else {
            Vec::new()
        },
    }));
    let key = ctx.key(&args.write, &event)?;
    let subject = args.subject.clone();
    let label = version.clone();
    let answer = online(client, |conn| async move {
        match append(conn.clone(), event, key).await {
            Err(refused) if args.exists_ok && is_already_registered(&refused) => {
                match registered_sequence(&conn, &subject, &label, digest.as_bytes()).await {
                    Ok(Some(sequence)) => Ok(Err(sequence)),
                    // The same label with other content: refused, and said so.
                    Ok(None) => Err(refused.context(format!(
                        "--exists-ok: version {label} of {subject} is registered with other content"
                    ))),
                    Err(_) => Err(refused),
                }
            }
            other => other.map(Ok),
        }
    })?;
    let digest = digest.to_hex().to_string();
    let human = format!(
        "registered version {version} of {} (blake3 {digest})",
        args.subject
    );
    match answer {
        Ok(answer) => answer.report(
            ctx.out,
            &[
                ("version", json!(version)),
                ("content_digest", json!(digest)),
            ],
            &human,
        ),
        Err(sequence) if ctx.out.json => ctx.out.line(&json!({
            "sequence": sequence,
            "subject": args.subject,
            "kind": "version_registered",
            "version": version,
            "content_digest": digest,
            "deduplicated": true,
        })),
        Err(sequence) => {
            say!("already recorded as entry {sequence} ({human}; nothing new recorded)")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The ledger's answer to registering a label the subject already has.
fn is_already_registered(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<tonic::Status>().is_some_and(|status| {
            status.code() == tonic::Code::FailedPrecondition
                && status.message().contains("is already registered")
        })
    })
}

/// The entry that registered `version` of `subject`, if its content digest
/// is `digest`.
async fn registered_sequence(
    conn: &Connection,
    subject: &str,
    version: &str,
    digest: &[u8],
) -> anyhow::Result<Option<u64>> {
    let state = conn
        .governance()
        .get_subject_state(govledger::proto::v1::GetSubjectStateRequest {
            subject: subject.to_owned(),
            as_of: None,
        })
        .await?
        .into_inner();
    Ok(state
        .versions
        .iter()
        .find(|v| v.version == version && v.content_digest == digest)
        .map(|v| v.created_sequence))
}

// ---- eval record / import ----------------------------------------------------

impl EvalEvidenceArgs {
    fn apply(&self, eval: &mut EvalRecorded) -> anyhow::Result<()> {
        if let Some(Digest(digest)) = &self.dataset_digest {
            eval.dataset_digest.clone_from(digest);
        }
        if let Some(path) = &self.dataset_file {
            let bytes = read_input(path, "dataset file")?;
            eval.dataset_digest = blake3::hash(&bytes).as_bytes().to_vec();
        }
        if let Some(run_ref) = &self.run_ref {
            eval.run_ref.clone_from(run_ref);
        }
        Ok(())
    }
}

fn eval_record(ctx: &Ctx, client: &ClientArgs, args: EvalRecordArgs) -> anyhow::Result<ExitCode> {
    let mut names = BTreeSet::new();
    for metric in &args.metrics {
        if !names.insert(metric.name.as_str()) {
            return Err(UsageError(format!(
                "--metric: {} is given twice; each metric once",
                metric.name
            ))
            .into());
        }
    }
    let mut eval = EvalRecorded {
        subject: args.subject,
        version: args.version,
        suite: args.suite,
        eval_kind: EvalKind::from(args.kind) as i32,
        metrics: args.metrics,
        sample_size: args.samples.unwrap_or_default(),
        grader_model: args.grader.unwrap_or_default(),
        source: ctx.source(&args.source),
        ..EvalRecorded::default()
    };
    args.evidence.apply(&mut eval)?;
    let human = eval_sentence(&eval);
    let suite = eval.suite.clone();
    let event = event(Kind::EvalRecorded(eval));
    let key = ctx.key(&args.write, &event)?;
    let answer = online(client, |conn| append(conn, event, key))?;
    answer.report(ctx.out, &[("suite", json!(suite))], &human);
    Ok(ExitCode::SUCCESS)
}

/// "eval regression of S v3: accuracy 0.92 >= 0.85, toxicity 0.01 <= 0.05".
fn eval_sentence(eval: &EvalRecorded) -> String {
    let metrics: Vec<String> = eval
        .metrics
        .iter()
        .map(|m| {
            let op = match m.direction() {
                Direction::LowerIsBetter => "<=",
                _ => ">=",
            };
            format!("{} {} (threshold {op} {})", m.name, m.value, m.threshold)
        })
        .collect();
    format!(
        "recorded eval {} of {} {}: {}",
        eval.suite,
        eval.subject,
        eval.version,
        metrics.join(", ")
    )
}

fn eval_import(ctx: &Ctx, client: &ClientArgs, args: EvalImportArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_input(&args.file, "results file")?;
    let text = String::from_utf8(bytes).map_err(|_| {
        UsageError(format!(
            "{} is not UTF-8 text: not a {} report",
            args.file.display(),
            format_name(args.format)
        ))
    })?;
    let imported = match args.format {
        ImportFormat::Promptfoo => {
            let mut options = PromptfooOptions {
                split_by_provider: args.split_by_provider,
                pass_rate_threshold: args.pass_rate_threshold,
                named_scores: !args.no_named_scores,
                assertion_types: !args.no_assertion_metrics,
                ..PromptfooOptions::default()
            };
            if let Some(suite) = &args.suite {
                options.suite.clone_from(suite);
            }
            promptfoo::parse(&text, &options)
        }
        ImportFormat::Junit => {
            if args.split_by_provider {
                return Err(UsageError(
                    "--split-by-provider applies to --format promptfoo only (a JUnit report is one suite)".into(),
                )
                .into());
            }
            junit::parse(
                &text,
                &JunitOptions {
                    suite: args.suite.clone(),
                    pass_rate_threshold: args.pass_rate_threshold,
                },
            )
            .map(|suite| vec![suite])
        }
    }
    .map_err(|e| import_error(e, &args.file, args.format))?;

    let source = ctx.source(&args.source);
    let mut items = Vec::with_capacity(imported.len());
    let mut sentences = Vec::with_capacity(imported.len());
    let mut suites = Vec::with_capacity(imported.len());
    for suite in &imported {
        let mut eval = ImportedSuite::to_eval_recorded(suite, &args.subject, &args.version);
        eval.source.clone_from(&source);
        if let Some(grader) = &args.grader {
            eval.grader_model.clone_from(grader);
        }
        args.evidence.apply(&mut eval)?;
        sentences.push(eval_sentence(&eval));
        suites.push(eval.suite.clone());
        let event = event(Kind::EvalRecorded(eval));
        let key = match (&args.write.idempotency_key, imported.len()) {
            // One key per item: the user's, refined by the suite when there are several.
            (Some(key), n) if n > 1 => {
                let key = format!("{key}:{}", suite.suite);
                IdempotencyKey::parse(&key).map_err(|rule| {
                    UsageError(format!(
                        "--idempotency-key: {rule} (the key of suite {} is {key:?}); give a shorter key",
                        suite.suite
                    ))
                })?;
                key
            }
            _ => ctx.key(&args.write, &event)?,
        };
        items.push(BatchItem {
            event: Some(event),
            idempotency_key: key,
            expected_subject_sequence: None,
        });
    }
    let recorded = online(client, |conn| async move {
        let batch = conn
            .ledger()
            .append_batch(AppendBatchRequest {
                items: items.clone(),
                expected_head_sequence: None,
            })
            .await;
        match batch {
            Ok(answer) => {
                let answer = answer.into_inner();
                Ok(groups(answer.entries)
                    .into_iter()
                    .map(|(entry, derived)| Appended {
                        entry,
                        derived,
                        deduplicated: answer.deduplicated,
                    })
                    .collect())
            }
            // A re-run in which some suites scored as before and others did
            // not (model-graded evals vary): the ledger replays a batch only
            // as a whole, so record the items one by one: the unchanged
            // ones are recognised, the changed ones are new evidence.
            Err(status) if is_partial_replay(&status) => {
                let mut each = Vec::with_capacity(items.len());
                for item in items {
                    let event = item
                        .event
                        .expect("the CLI builds every item with its event");
                    each.push(append(conn.clone(), event, item.idempotency_key).await?);
                }
                Ok(each)
            }
            Err(status) => Err(status.into()),
        }
    })?;
    for (i, appended) in recorded.into_iter().enumerate() {
        let suite = suites.get(i).cloned().unwrap_or_default();
        let sentence = sentences.get(i).cloned().unwrap_or_default();
        appended.report(ctx.out, &[("suite", json!(suite))], &sentence);
    }
    Ok(ExitCode::SUCCESS)
}

/// The ledger's answer to a batch whose items were partly recorded before
/// (`LedgerError::PartialReplay`).
fn is_partial_replay(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::AlreadyExists
        && status
            .message()
            .contains("a batch is replayed only as a whole")
}

fn format_name(format: ImportFormat) -> &'static str {
    match format {
        ImportFormat::Promptfoo => "promptfoo",
        ImportFormat::Junit => "JUnit",
    }
}

/// A file that is not a valid report is the caller's input error (exit 2).
fn import_error(error: ImportError, file: &Path, format: ImportFormat) -> anyhow::Error {
    UsageError(format!(
        "{}: not a usable {} report: {error}",
        file.display(),
        format_name(format)
    ))
    .into()
}

/// A batch's entries grouped per item: each item's entry with the entries
/// the ledger derived from it (actor "system"), which follow it.
fn groups(entries: Vec<Entry>) -> Vec<(Entry, Vec<Entry>)> {
    let mut out: Vec<(Entry, Vec<Entry>)> = Vec::new();
    for entry in entries {
        match out.last_mut() {
            Some((_, derived)) if entry.actor == SYSTEM_ACTOR => derived.push(entry),
            _ => out.push((entry, Vec::new())),
        }
    }
    out
}

// ---- approve / reject / deploy -----------------------------------------------

fn approval(
    ctx: &Ctx,
    client: &ClientArgs,
    args: ApprovalArgs,
    decision: Decision,
) -> anyhow::Result<ExitCode> {
    let verb = match decision {
        Decision::Reject => "rejected",
        _ => "approved",
    };
    let human = format!(
        "{verb} version {} of {} for {}",
        args.version, args.subject, args.env
    );
    let event = event(Kind::ApprovalRecorded(ApprovalRecorded {
        subject: args.subject,
        version: args.version,
        environment: args.env,
        decision: decision as i32,
        comment: args.comment.unwrap_or_default(),
    }));
    let key = ctx.key(&args.write, &event)?;
    let answer = online(client, |conn| append(conn, event, key))?;
    answer.report(ctx.out, &[("decision", json!(verb))], &human);
    Ok(ExitCode::SUCCESS)
}

fn deploy(ctx: &Ctx, client: &ClientArgs, args: DeployArgs) -> anyhow::Result<ExitCode> {
    let what = format!(
        "version {} of {} to {}",
        args.version, args.subject, args.env
    );
    let overridden = args.override_justification.is_some();
    let event = event(Kind::DeploymentRecorded(DeploymentRecorded {
        subject: args.subject,
        version: args.version,
        environment: args.env,
        override_justification: args.override_justification.unwrap_or_default(),
        source: ctx.source(&args.source),
    }));
    let key = ctx.key(&args.write, &event)?;
    let outcome = online(client, |conn| async move {
        let request = AppendRequest {
            event: Some(event),
            idempotency_key: key,
            ..AppendRequest::default()
        };
        match conn.ledger().append(request).await {
            Ok(answer) => Ok(Ok(Appended::from(answer.into_inner()))),
            Err(status) => match gate_denial(&status) {
                Some(decision) => Ok(Err((status, decision))),
                None => Err(status.into()),
            },
        }
    })?;
    match outcome {
        Ok(answer) => {
            let human = if overridden && !answer.derived.is_empty() {
                format!("deployed {what} OVER THE DENIED POLICY GATE (recorded as an override)")
            } else if overridden && answer.deduplicated {
                // A replay carries no derived entries: whether the gate was
                // denied then is in the original entry, not in this answer.
                format!("deployed {what} with an override justification")
            } else {
                format!("deployed {what}")
            };
            answer.report(ctx.out, &[("override", json!(overridden))], &human);
            Ok(ExitCode::SUCCESS)
        }
        Err((status, decision)) => {
            print_denial(ctx.out, &what, &status, &decision);
            Ok(ExitCode::from(EXIT_REJECTED))
        }
    }
}

/// The gate's decision carried by a refused deployment, if that is why.
fn gate_denial(status: &tonic::Status) -> Option<GateDecision> {
    if status.code() != tonic::Code::FailedPrecondition || status.details().is_empty() {
        return None;
    }
    GateDecision::decode(status.details()).ok()
}

fn print_denial(out: Output, what: &str, status: &tonic::Status, decision: &GateDecision) {
    let policy = match decision.policy_sequence {
        0 => String::new(),
        n => format!(" (policy entry {n})"),
    };
    eprintln!(
        "govledger: deployment of {what} denied by the policy gate{policy}; nothing was recorded. Unmet rules:"
    );
    for reason in &decision.reasons {
        eprintln!("  {}", reason_text(reason));
    }
    eprintln!(
        "govledger: deploy anyway with --override \"justification\" (recorded as an override, with a policy-violation incident)"
    );
    if out.json {
        out.line(&json!({
            "recorded": false,
            "allow": false,
            "reasons": decision.reasons.iter().map(|r| json!({
                "rule": r.rule,
                "expected": r.expected,
                "actual": r.actual,
                "evidence": r.evidence,
            })).collect::<Vec<_>>(),
            "message": status.message(),
        }));
    }
}

/// "min_approvals: expected 1 approval(s) for prod, actual 0 (evidence: entries 12, 13)".
fn reason_text(reason: &govledger::proto::v1::GateReason) -> String {
    let evidence = if reason.evidence.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = reason.evidence.iter().map(u64::to_string).collect();
        format!(" (evidence: entries {})", list.join(", "))
    };
    format!(
        "{}: expected {}, actual {}{evidence}",
        reason.rule, reason.expected, reason.actual
    )
}

// ---- incidents ---------------------------------------------------------------

fn incident_open(
    ctx: &Ctx,
    client: &ClientArgs,
    args: IncidentOpenArgs,
) -> anyhow::Result<ExitCode> {
    let mut opened = IncidentOpened {
        incident_id: args.id.clone().unwrap_or_default(),
        subject: args.subject,
        version: args.version.unwrap_or_default(),
        environment: args.env.unwrap_or_default(),
        severity: Severity::from(args.severity) as i32,
        category: IncidentCategory::from(args.category) as i32,
        description: args.description,
        related_sequence: args.related_entry.unwrap_or_default(),
    };
    if args.id.is_none() {
        opened.incident_id = match (&args.write.idempotency_key, ctx.run) {
            // A retry with the same key opens the same incident: its id
            // must come from the key and the content, not from chance, or
            // the retry would be "the same key with different content".
            (Some(key), _) => {
                use prost::Message;
                let mut hasher = blake3::Hasher::new();
                hasher.update(b"govledger incident id\0");
                hasher.update(key.as_bytes());
                hasher.update(b"\0");
                hasher.update(&event(Kind::IncidentOpened(opened.clone())).encode_to_vec());
                format!("INC-{}", &hasher.finalize().to_hex()[..12])
            }
            // The same incident in a re-run of the job gets the same id, so
            // the same event and key: it is not opened twice.
            (None, Some(run)) => {
                let key = idempotency_key(
                    run,
                    ctx.step(&args.write),
                    &event(Kind::IncidentOpened(opened.clone())),
                );
                let hex = key.rsplit(':').next().unwrap_or_default();
                format!("INC-{}", &hex[..12.min(hex.len())])
            }
            (None, None) => {
                let mut bytes = [0u8; 6];
                getrandom::fill(&mut bytes)
                    .map_err(|e| anyhow::anyhow!("generating an incident id: {e}"))?;
                format!("INC-{}", hex(&bytes))
            }
        };
    }
    let id = opened.incident_id.clone();
    let human = format!("opened incident {id} on {}", opened.subject);
    let event = event(Kind::IncidentOpened(opened));
    let key = ctx.key(&args.write, &event)?;
    let answer = online(client, |conn| append(conn, event, key))?;
    answer.report(ctx.out, &[("incident_id", json!(id))], &human);
    Ok(ExitCode::SUCCESS)
}

fn incident_resolve(
    ctx: &Ctx,
    client: &ClientArgs,
    args: IncidentResolveArgs,
) -> anyhow::Result<ExitCode> {
    let human = format!("resolved incident {} of {}", args.id, args.subject);
    let id = args.id.clone();
    let event = event(Kind::IncidentResolved(IncidentResolved {
        incident_id: args.id,
        subject: args.subject,
        resolution: args.resolution,
        fixing_version: args.fixing_version.unwrap_or_default(),
    }));
    let key = ctx.key(&args.write, &event)?;
    let answer = online(client, |conn| append(conn, event, key))?;
    answer.report(ctx.out, &[("incident_id", json!(id))], &human);
    Ok(ExitCode::SUCCESS)
}

fn incident_list(
    out: Output,
    client: &ClientArgs,
    args: IncidentListArgs,
) -> anyhow::Result<ExitCode> {
    let request = ListIncidentsRequest {
        status: match args.status {
            StatusArg::Open => IncidentStatus::Open,
            StatusArg::Resolved => IncidentStatus::Resolved,
            StatusArg::All => IncidentStatus::Any,
        } as i32,
        subject: args.subject.unwrap_or_default(),
        min_severity: args
            .min_severity
            .map_or(Severity::Unspecified, Severity::from) as i32,
    };
    let answer = online(client, |conn| async move {
        Ok(conn
            .governance()
            .list_incidents(request)
            .await?
            .into_inner())
    })?;
    if out.json {
        for incident in &answer.incidents {
            out.line(&incident_json(incident));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if answer.incidents.is_empty() {
        eprintln!("no incidents match (as of entry {})", answer.as_of_sequence);
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "{:<20}  {:<28}  {:<12}  {:<10}  {:<8}  {:<16}  {:<8}  {:>7}  DESCRIPTION",
        "ID",
        "SUBJECT",
        "VERSION",
        "ENV",
        "SEVERITY",
        "CATEGORY",
        "STATUS",
        "OPENED"
    );
    for i in &answer.incidents {
        say!(
            "{:<20}  {:<28}  {:<12}  {:<10}  {:<8}  {:<16}  {:<8}  {:>7}  {}",
            i.incident_id,
            i.subject,
            dash(&i.version),
            dash(&i.environment),
            severity_name(i.severity),
            category_name(i.category),
            if i.open { "open" } else { "resolved" },
            i.opened_sequence,
            one_line(&i.description, 60)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn incident_json(i: &Incident) -> Value {
    json!({
        "incident_id": i.incident_id,
        "subject": i.subject,
        "version": i.version,
        "environment": i.environment,
        "severity": severity_name(i.severity),
        "category": category_name(i.category),
        "description": i.description,
        "related_sequence": i.related_sequence,
        "open": i.open,
        "opened_sequence": i.opened_sequence,
        "opened_at": i.opened_at.as_ref().map(timestamp_text),
        "opened_by": i.opened_by,
        "resolved_sequence": i.resolved_sequence,
        "resolved_at": i.resolved_at.as_ref().map(timestamp_text),
        "resolution": i.resolution,
        "fixing_version": i.fixing_version,
    })
}

fn dash(value: &str) -> &str {
    if value.is_empty() { "-" } else { value }
}

/// The first line of `text`, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > max || line.len() < text.trim_end().len() {
        let cut: String = line.chars().take(max.saturating_sub(3)).collect();
        format!("{cut}...")
    } else {
        line.to_owned()
    }
}

// ---- feedback ----------------------------------------------------------------

fn feedback(ctx: &Ctx, client: &ClientArgs, args: FeedbackArgs) -> anyhow::Result<ExitCode> {
    let human = format!(
        "recorded feedback for version {} of {} in {}: {} up, {} down, {} rewrites of {}",
        args.version, args.subject, args.env, args.up, args.down, args.rewrites, args.total
    );
    let event = event(Kind::FeedbackRecorded(FeedbackRecorded {
        subject: args.subject,
        version: args.version,
        environment: args.env,
        window_start: Some(args.window_start),
        window_end: Some(args.window_end),
        thumbs_up: args.up,
        thumbs_down: args.down,
        rewrites: args.rewrites,
        total: args.total,
    }));
    let key = ctx.key(&args.write, &event)?;
    let answer = online(client, |conn| append(conn, event, key))?;
    answer.report(ctx.out, &[], &human);
    Ok(ExitCode::SUCCESS)
}

// ---- policy ------------------------------------------------------------------

/// The TOML shape of a policy (see `policy set --help`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_evidence_age: Option<Age>,
    #[serde(default)]
    min_approvals: u32,
    #[serde(default)]
    allow_self_approval: bool,
    #[serde(default)]
    deployer_not_sole_approver: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    block_on_open_incident_severity: Option<String>,
    #[serde(default)]
    max_eval_score_drop: f64,
    #[serde(default)]
    max_negative_feedback_rate_rise: f64,
    #[serde(default)]
    baseline_negative_feedback_rate: f64,
    #[serde(default)]
    required_suites: Vec<SuiteFile>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    suite: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    thresholds: Vec<String>,
}

/// An age: seconds, or a number with a unit ("90s", "30m", "36h", "7d", "2w").
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
enum Age {
    Seconds(u64),
    Text(String),
}

impl Age {
    fn seconds(&self) -> Result<u64, String> {
        let text = match self {
            Age::Seconds(s) => return Ok(*s),
            Age::Text(text) => text.trim(),
        };
        let rule = || {
            format!(
                "max_evidence_age {text:?}: expected seconds or a number with a unit s, m, h, d or w (e.g. \"7d\")"
            )
        };
        let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
            Some(at) => text.split_at(at),
            None => (text, "s"),
        };
        let scale = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(rule()),
        };
        let number: u64 = number.parse().map_err(|_| rule())?;
        number.checked_mul(scale).ok_or_else(rule)
    }

    /// The largest whole unit: 604800 -> "1w", 90 -> "90s".
    fn of(seconds: u64) -> Age {
        for (scale, unit) in [(604_800, "w"), (86_400, "d"), (3600, "h"), (60, "m")] {
            if seconds.is_multiple_of(scale) {
                return Age::Text(format!("{}{unit}", seconds / scale));
            }
        }
        Age::Text(format!("{seconds}s"))
    }
}

fn parse_severity_name(name: &str) -> Result<Severity, String> {
    match name.trim().to_ascii_lowercase().as_str() {
        "low" => Ok(Severity::Low),
        "medium" => Ok(Severity::Medium),
        "high" => Ok(Severity::High),
        "critical" => Ok(Severity::Critical),
        "none" | "" => Ok(Severity::Unspecified),
        _ => Err(format!(
            "block_on_open_incident_severity {name:?}: expected low, medium, high, critical or none"
        )),
    }
}

impl PolicyFile {
    fn to_policy(&self) -> Result<PolicySet, String> {
        let subject = self
            .subject
            .clone()
            .ok_or("subject is required (in the file or with --subject)")?;
        let environment = self
            .environment
            .clone()
            .ok_or("environment is required (in the file or with --env)")?;
        let mut required_suites = Vec::with_capacity(self.required_suites.len());
        for (i, suite) in self.required_suites.iter().enumerate() {
            let thresholds = suite
                .thresholds
                .iter()
                .map(|t| {
                    parse_threshold(t).map_err(|e| format!("required_suites[{i}].thresholds: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            required_suites.push(RequiredSuite {
                suite: suite.suite.clone(),
                thresholds,
            });
        }
        Ok(PolicySet {
            subject,
            environment,
            required_suites,
            max_evidence_age_seconds: self
                .max_evidence_age
                .as_ref()
                .map(Age::seconds)
                .transpose()?
                .unwrap_or_default(),
            min_approvals: self.min_approvals,
            allow_self_approval: self.allow_self_approval,
            deployer_not_sole_approver: self.deployer_not_sole_approver,
            block_on_open_incident_severity: self
                .block_on_open_incident_severity
                .as_deref()
                .map(parse_severity_name)
                .transpose()?
                .unwrap_or(Severity::Unspecified)
                as i32,
            max_eval_score_drop: self.max_eval_score_drop,
            max_negative_feedback_rate_rise: self.max_negative_feedback_rate_rise,
            baseline_negative_feedback_rate: self.baseline_negative_feedback_rate,
        })
    }

    fn of(policy: &PolicySet) -> PolicyFile {
        let severity = policy.block_on_open_incident_severity();
        PolicyFile {
            subject: Some(policy.subject.clone()),
            environment: Some(policy.environment.clone()),
            max_evidence_age: (policy.max_evidence_age_seconds > 0)
                .then(|| Age::of(policy.max_evidence_age_seconds)),
            min_approvals: policy.min_approvals,
            allow_self_approval: policy.allow_self_approval,
            deployer_not_sole_approver: policy.deployer_not_sole_approver,
            block_on_open_incident_severity: (severity != Severity::Unspecified)
                .then(|| severity_name(severity as i32)),
            max_eval_score_drop: policy.max_eval_score_drop,
            max_negative_feedback_rate_rise: policy.max_negative_feedback_rate_rise,
            baseline_negative_feedback_rate: policy.baseline_negative_feedback_rate,
            required_suites: policy
                .required_suites
                .iter()
                .map(|s| SuiteFile {
                    suite: s.suite.clone(),
                    thresholds: s.thresholds.iter().map(threshold_text).collect(),
                })
                .collect(),
        }
    }
}

/// "accuracy>=0.85".
fn threshold_text(metric: &Metric) -> String {
    let op = match metric.direction() {
        Direction::LowerIsBetter => "<=",
        _ => ">=",
    };
    format!("{}{op}{}", metric.name, metric.threshold)
}

fn policy_set(ctx: &Ctx, client: &ClientArgs, args: PolicySetArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_input(&args.file, "policy file")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| UsageError(format!("{}: not UTF-8 text", args.file.display())))?;
    let mut file: PolicyFile =
        toml::from_str(&text).map_err(|e| UsageError(format!("{}: {e}", args.file.display())))?;
    if args.subject.is_some() {
        file.subject = args.subject;
    }
    if args.env.is_some() {
        file.environment = args.env;
    }
    let policy = file
        .to_policy()
        .map_err(|e| UsageError(format!("{}: {e}", args.file.display())))?;
    let human = format!(
        "set the policy of {} for {}",
        policy.subject, policy.environment
    );
    let event = event(Kind::PolicySet(policy));
    let key = ctx.key(&args.write, &event)?;
    let answer = online(client, |conn| append(conn, event, key))?;
    answer.report(ctx.out, &[], &human);
    Ok(ExitCode::SUCCESS)
}

/// The policy in force is the one the gate applies: CheckGate names its
/// entry (whatever version is asked about), and the entry holds it.
fn policy_show(out: Output, client: &ClientArgs, args: PolicyShowArgs) -> anyhow::Result<ExitCode> {
    let (subject, env) = (args.subject, args.env);
    let request = CheckGateRequest {
        subject: subject.clone(),
        // Any label: only the policy in force is used, not the verdict.
        version: "-".into(),
        environment: env.clone(),
        ..CheckGateRequest::default()
    };
    let found = online(client, |conn| async move {
        let decision = conn.governance().check_gate(request).await?.into_inner();
        if decision.policy_sequence == 0 {
            return Ok(None);
        }
        let entry = conn
            .ledger()
            .get_entry(GetEntryRequest {
                sequence: decision.policy_sequence,
            })
            .await?
            .into_inner();
        Ok(Some(entry))
    })?;
    let Some(entry) = found else {
        if out.json {
            out.line(&json!({
                "subject": subject,
                "environment": env,
                "policy_sequence": 0,
                "policy": null,
            }));
        } else {
            say!(
                "no policy in force for {subject} in {env}: every registered version may be deployed"
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let Some(Kind::PolicySet(policy)) = entry.event.as_ref().and_then(|e| e.kind.clone()) else {
        anyhow::bail!(
            "entry {} named as the policy in force is not a PolicySet",
            entry.sequence
        );
    };
    let file = PolicyFile::of(&policy);
    if out.json {
        out.line(&json!({
            "subject": subject,
            "environment": env,
            "policy_sequence": entry.sequence,
            "policy_subject": policy.subject,
            "recorded_at": entry.recorded_at.as_ref().map(timestamp_text),
            "actor": entry.actor,
            "policy": serde_json::to_value(&file)?,
        }));
    } else {
        let from = if policy.subject == subject {
            String::new()
        } else {
            format!(" (the default policy, subject {:?})", policy.subject)
        };
        say!(
            "# policy in force for {subject} in {env}{from}: entry {}, set by {} at {}",
            entry.sequence,
            entry.actor,
            entry
                .recorded_at
                .as_ref()
                .map(timestamp_text)
                .unwrap_or_default()
        );
        print!(
            "{}",
            toml::to_string(&file).context("printing the policy as TOML")?
        );
    }
    Ok(ExitCode::SUCCESS)
}

// ---- appending and reporting -------------------------------------------------

fn event(kind: Kind) -> Event {
    Event { kind: Some(kind) }
}

/// One recorded entry and what the ledger derived from it.
struct Appended {
    entry: Entry,
    derived: Vec<Entry>,
    deduplicated: bool,
}

impl From<govledger::proto::v1::AppendResponse> for Appended {
    fn from(answer: govledger::proto::v1::AppendResponse) -> Appended {
        Appended {
            entry: answer.entry.unwrap_or_default(),
            derived: answer.derived,
            deduplicated: answer.deduplicated,
        }
    }
}

async fn append(conn: Connection, event: Event, key: String) -> anyhow::Result<Appended> {
    let answer = conn
        .ledger()
        .append(AppendRequest {
            event: Some(event),
            idempotency_key: key,
            ..AppendRequest::default()
        })
        .await?;
    Ok(Appended::from(answer.into_inner()))
}

impl Appended {
    /// Prints the outcome: `human` (a sentence) or one JSON object with
    /// `extra` fields.
    fn report(&self, out: Output, extra: &[(&str, Value)], human: &str) {
        if out.json {
            let mut line = entry_json(&self.entry);
            line.insert("deduplicated".into(), json!(self.deduplicated));
            line.insert(
                "derived".into(),
                Value::Array(
                    self.derived
                        .iter()
                        .map(|d| Value::Object(entry_json(d)))
                        .collect(),
                ),
            );
            for (name, value) in extra {
                line.insert((*name).to_owned(), value.clone());
            }
            out.line(&Value::Object(line));
            return;
        }
        if self.deduplicated {
            say!(
                "already recorded as entry {} ({human}; nothing new recorded)",
                self.entry.sequence
            );
        } else {
            // The full hash is in the JSON output; 16 digits identify it here.
            let hash = hex(&self.entry.hash);
            say!(
                "{human}: entry {} (hash {})",
                self.entry.sequence,
                &hash[..hash.len().min(16)]
            );
        }
        for derived in &self.derived {
            say!("{}", derived_text(derived));
        }
    }
}

fn entry_json(entry: &Entry) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("sequence".into(), json!(entry.sequence));
    map.insert("hash".into(), json!(hex(&entry.hash)));
    map.insert("subject".into(), json!(entry.subject));
    map.insert("kind".into(), json!(kind_name(entry.kind)));
    map.insert("actor".into(), json!(entry.actor));
    map.insert("idempotency_key".into(), json!(entry.idempotency_key));
    map.insert(
        "recorded_at".into(),
        json!(entry.recorded_at.as_ref().map(timestamp_text)),
    );
    if let Some(Kind::IncidentOpened(i)) = entry.event.as_ref().and_then(|e| e.kind.as_ref()) {
        map.insert("incident_id".into(), json!(i.incident_id));
        map.insert("severity".into(), json!(severity_name(i.severity)));
        map.insert("category".into(), json!(category_name(i.category)));
        map.insert("description".into(), json!(i.description));
    }
    map
}

/// "the ledger opened incident override-45 as entry 46 (high, policy-violation): ...".
fn derived_text(entry: &Entry) -> String {
    match entry.event.as_ref().and_then(|e| e.kind.as_ref()) {
        Some(Kind::IncidentOpened(i)) => format!(
            "the ledger opened incident {} as entry {} ({}, {}): {}",
            i.incident_id,
            entry.sequence,
            severity_name(i.severity),
            category_name(i.category),
            i.description
        ),
        _ => format!(
            "the ledger derived entry {} ({})",
            entry.sequence,
            kind_name(entry.kind)
        ),
    }
}

/// A file's bytes, or standard input for "-".
fn read_input(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .with_context(|| format!("reading the {what} from standard input"))?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
}

// ---- flag parsers (their errors are usage errors, exit 2) --------------------

/// `NAME=VALUE>=THRESHOLD` or `NAME=VALUE<=THRESHOLD`.
/// A pass-rate threshold: a rate above 1 could never be met.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{text:?} must be a number from 0 to 1")),
    }
}

fn parse_metric(text: &str) -> Result<Metric, String> {
    let (name, rest) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: no '=' after the name; {METRIC_RULE}"))?;
    let (value, threshold, direction) = split_comparison(rest).ok_or_else(|| {
        format!("{text:?}: no '>=' or '<=' between value and threshold; {METRIC_RULE}")
    })?;
    let name = name.trim();
    if !is_label(name) {
        return Err(format!(
            "{text:?}: metric name {name:?} must be 1-64 characters of [A-Za-z0-9._:+-], starting with a letter or digit; {METRIC_RULE}"
        ));
    }
    Ok(Metric {
        name: name.to_owned(),
        value: number(value, "value", text, METRIC_RULE)?,
        threshold: number(threshold, "threshold", text, METRIC_RULE)?,
        direction: direction as i32,
    })
}

/// `NAME>=THRESHOLD` or `NAME<=THRESHOLD` (a policy's threshold).
fn parse_threshold(text: &str) -> Result<Metric, String> {
    let (name, threshold, direction) = split_comparison(text)
        .ok_or_else(|| format!("{text:?}: no '>=' or '<='; {THRESHOLD_RULE}"))?;
    let name = name.trim();
    if !is_label(name) {
        return Err(format!(
            "{text:?}: metric name {name:?} must be 1-64 characters of [A-Za-z0-9._:+-], starting with a letter or digit; {THRESHOLD_RULE}"
        ));
    }
    Ok(Metric {
        name: name.to_owned(),
        value: 0.0,
        threshold: number(threshold, "threshold", text, THRESHOLD_RULE)?,
        direction: direction as i32,
    })
}

/// Splits "a>=b" / "a<=b" (exactly one comparison).
fn split_comparison(text: &str) -> Option<(&str, &str, Direction)> {
    let found: Vec<(usize, Direction)> = text
        .match_indices(">=")
        .map(|(i, _)| (i, Direction::HigherIsBetter))
        .chain(
            text.match_indices("<=")
                .map(|(i, _)| (i, Direction::LowerIsBetter)),
        )
        .collect();
    match found.as_slice() {
        [(at, direction)] => Some((&text[..*at], &text[at + 2..], *direction)),
        _ => None,
    }
}

fn number(text: &str, what: &str, whole: &str, rule: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && !text.trim().is_empty() => Ok(n),
        _ => Err(format!(
            "{whole:?}: the {what} {text:?} is not a finite number; {rule}"
        )),
    }
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected KEY=VALUE, e.g. temperature=0.2"))?;
    if !is_label(key) {
        return Err(format!(
            "{text:?}: the key {key:?} must be 1-64 characters of [A-Za-z0-9._:+-], starting with a letter or digit"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// A BLAKE3 digest given on the command line (a newtype: clap would take a
/// bare `Vec<u8>` for a list of bytes).
#[derive(Clone, Debug)]
pub struct Digest(Vec<u8>);

fn parse_digest(text: &str) -> Result<Digest, String> {
    let text = text.trim();
    let text = text.strip_prefix("blake3:").unwrap_or(text);
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{text:?}: expected a BLAKE3 digest as 64 hex digits (use --dataset-file to have it computed)"
        ));
    }
    Ok(Digest(
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or_default())
            .collect(),
    ))
}

fn parse_time(text: &str) -> Result<prost_types::Timestamp, String> {
    let time = chrono::DateTime::parse_from_rfc3339(text.trim()).map_err(|e| {
        format!("{text:?}: expected an RFC 3339 time, e.g. 2026-03-03T00:00:00Z ({e})")
    })?;
    Ok(prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_parse_both_directions() {
        let m = parse_metric("accuracy=0.92>=0.85").unwrap();
        assert_eq!(
            (m.name.as_str(), m.value, m.threshold, m.direction()),
            ("accuracy", 0.92, 0.85, Direction::HigherIsBetter)
        );
        let m = parse_metric("toxicity=0.01<=0.05").unwrap();
        assert_eq!(
            (m.name.as_str(), m.value, m.threshold, m.direction()),
            ("toxicity", 0.01, 0.05, Direction::LowerIsBetter)
        );
        let m = parse_metric("latency_p95_ms=-1e3<=1200").unwrap();
        assert_eq!((m.value, m.threshold), (-1000.0, 1200.0));
    }

    #[test]
    fn bad_metrics_name_the_rule() {
        for bad in [
            "accuracy",
            "accuracy=0.92",
            "accuracy=0.92>0.85",
            "accuracy=0.92=>0.85",
            "accuracy=0.92>=0.85<=1",
            "=0.92>=0.85",
            "acc uracy=0.92>=0.85",
            "accuracy=x>=0.85",
            "accuracy=0.92>=",
            "accuracy=NaN>=0.85",
            "accuracy=0.9>=inf",
        ] {
            let e = parse_metric(bad).expect_err(bad);
            assert!(e.contains("NAME=VALUE>=THRESHOLD"), "{bad}: {e}");
        }
    }

    #[test]
    fn ages() {
        for (text, seconds) in [
            ("7d", 604_800),
            ("36h", 129_600),
            ("90", 90),
            ("2w", 1_209_600),
        ] {
            assert_eq!(Age::Text(text.into()).seconds(), Ok(seconds), "{text}");
        }
        assert_eq!(Age::Seconds(60).seconds(), Ok(60));
        for bad in ["7 days", "d", "-1d", "1.5h", ""] {
            assert!(Age::Text(bad.into()).seconds().is_err(), "{bad}");
        }
        for seconds in [604_800, 86_400 * 3, 7200, 90, 61] {
            assert_eq!(Age::of(seconds).seconds(), Ok(seconds));
        }
        assert!(matches!(Age::of(604_800), Age::Text(t) if t == "1w"));
    }

    #[test]
    fn a_policy_round_trips_through_toml() {
        let text = r#"
            subject = "support-bot/triage-prompt"
            environment = "prod"
            max_evidence_age = "7d"
            min_approvals = 2
            deployer_not_sole_approver = true
            block_on_open_incident_severity = "high"
            max_eval_score_drop = 0.05

            [[required_suites]]
            suite = "regression"
            thresholds = ["accuracy>=0.85", "toxicity<=0.05"]

            [[required_suites]]
            suite = "pytest"
        "#;
        let file: PolicyFile = toml::from_str(text).unwrap();
        let policy = file.to_policy().unwrap();
        assert_eq!(policy.max_evidence_age_seconds, 604_800);
        assert_eq!(policy.min_approvals, 2);
        assert_eq!(policy.block_on_open_incident_severity(), Severity::High);
        assert_eq!(policy.required_suites.len(), 2);
        assert_eq!(
            policy.required_suites[0].thresholds[1].direction(),
            Direction::LowerIsBetter
        );
        assert!(policy.required_suites[1].thresholds.is_empty());
        let printed = toml::to_string(&PolicyFile::of(&policy)).unwrap();
        let again: PolicyFile = toml::from_str(&printed).unwrap();
        assert_eq!(again.to_policy().unwrap(), policy, "{printed}");
    }

    #[test]
    fn a_policy_with_a_typo_is_refused() {
        let e = toml::from_str::<PolicyFile>("subject = \"*\"\nmin_aprovals = 1\n").unwrap_err();
        assert!(e.to_string().contains("min_aprovals"), "{e}");
    }

    #[test]
    fn batch_entries_group_with_their_derived_entries() {
        let entry = |sequence, actor: &str| Entry {
            sequence,
            actor: actor.into(),
            ..Entry::default()
        };
        let groups = groups(vec![entry(1, "ci"), entry(2, SYSTEM_ACTOR), entry(3, "ci")]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].1.len(), 1);
        assert!(groups[1].1.is_empty());
    }
}
