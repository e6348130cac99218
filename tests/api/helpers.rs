//! The test harness: a real server on 127.0.0.1:0 over a temporary data dir,
//! one method per RPC, builders for every event kind (valid by default) and
//! helpers that damage a stopped (or running) ledger's files on purpose.
//!
//! "Valid" includes the governance rules the ledger enforces at append time:
//! the other builders refer to version [`V`] of their subject, which
//! [`version`] registers ([`TestApp::register`] registers it as [`REGISTRAR`],
//! so that the default actor may approve it). A version label is registered
//! once per subject ([`numbered`] and [`child_version`] make others), an
//! incident id is used once per ledger, and nobody may approve a version they
//! registered or authored ([`AUTHOR`]).
//!
//! Logs stay quiet unless `TEST_LOG` is set (`TEST_LOG=1 RUST_LOG=debug cargo
//! test --test api`).

#![allow(dead_code)]

use std::{
    fs::{self, OpenOptions},
    future::Future,
    io::{Read, Seek, SeekFrom, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::LazyLock,
    time::Duration,
};

use govledger::{
    Ledger, LedgerConfig,
    auth::{BOOTSTRAP_PRINCIPAL, BOOTSTRAP_TOKEN_FILE, NewToken},
    connect::{Authed, Bearer},
    journal::{RecordLocation, locate_records},
    proto::v1::{
        AppendBatchRequest, AppendBatchResponse, AppendRequest, AppendResponse, ApprovalRecorded,
        BatchItem, CreateTokenRequest, Decision, DeploymentRecorded, Direction, Entry, EvalKind,
        EvalRecorded, Event, EventKind, FeedbackRecorded, GetEntryRequest, GetHeadRequest, Grant,
        Head, IncidentCategory, IncidentOpened, IncidentResolved, Metric, PolicySet,
        PrincipalRolesSet, ReadEntriesRequest, RequiredSuite, Role, Severity, Source, SubjectKind,
        SubscribeRequest, TokenIssued, VerifyChainRequest, VerifyChainResponse, VersionRegistered,
        access_client::AccessClient, event::Kind, ledger_client::LedgerClient,
    },
};
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_stream::StreamExt;
use tonic::{
    Code, Request, Status,
    codec::Streaming,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};

/// The header the actor was once named by: now refused.
pub const LEGACY_ACTOR_HEADER: &str = "x-govledger-actor";
/// The principal [`TestApp`]'s own client authenticates as.
pub const TESTER: &str = "tester";
/// Principals every app creates at its first start (after the bootstrap
/// admin), each holding every writing role: tests name them as actors.
pub const TEST_PRINCIPALS: &[&str] = &[
    TESTER,
    "ci",
    "alice",
    "bob",
    "carol",
    "dave",
    "ci-bot",
    "ci-pipeline",
    "release-bot",
    "reviewer",
];
/// Entries a fresh app starts with: the bootstrap admin's roles and token,
/// then the roles and token of each of [`TEST_PRINCIPALS`].
pub const SETUP_ENTRIES: u64 = 2 + 2 * TEST_PRINCIPALS.len() as u64;
/// Where an app keeps its principals' tokens, inside its data dir, so a
/// restarted app over the same dir can still use them.
const TEST_TOKENS_FILE: &str = "test-tokens.json";
/// Upper bound on any single wait in a test: a broken server fails the test
/// instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(30);
/// The version label every builder but [`version`] and [`numbered`] refers to.
pub const V: &str = "v2";
/// The `author` of the versions the builders register: may not approve them.
pub const AUTHOR: &str = "alice";
/// The actor [`TestApp::register`] registers as: neither [`AUTHOR`] nor the
/// default actor ([`TESTER`]), so the default actor may approve what it registers.
pub const REGISTRAR: &str = "ci";

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
});

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    within_for(WAIT, what, fut).await
}

pub async fn within_for<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// A running server over a data dir, and a client connected to it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Authenticated as [`TESTER`].
    pub client: LedgerClient<Authed>,
    /// principal → bearer token (the admin's and every test principal's).
    pub tokens: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// Set when the app owns its (temporary) data dir.
    temp: Option<TempDir>,
}

impl TestApp {
    /// A server over a fresh temporary data dir, removed when the app is dropped.
    pub async fn spawn() -> TestApp {
        let temp = tempfile::tempdir().expect("creating a temp dir");
        let mut app = TestApp::spawn_at(temp.path()).await;
        app.temp = Some(temp);
        app
    }

    /// A server over `dir` (which the caller owns), e.g. to restart on the same data.
    pub async fn spawn_at(dir: &Path) -> TestApp {
        LazyLock::force(&TRACING);
        let ledger = Ledger::open(LedgerConfig::new(dir))
            .unwrap_or_else(|e| panic!("Ledger::open({}) failed: {e}", dir.display()));
        let tokens = setup_principals(&ledger).await;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let (tx, rx) = oneshot::channel::<()>();
        // A dropped sender (the app dropped without `stop`) also shuts down.
        let server = tokio::spawn(govledger::server::run(listener, ledger, async move {
            let _ = rx.await;
        }));
        let client = connect_as(addr, &tokens[TESTER]).await;
        TestApp {
            addr,
            data_dir: dir.to_path_buf(),
            client,
            tokens: std::sync::Mutex::new(tokens),
            shutdown: Some(tx),
            server: Some(server),
            temp: None,
        }
    }

    /// Graceful shutdown; fails the test if the server does not stop in time or
    /// `run` returns an error.
    pub async fn stop(mut self) {
        self.shutdown_server().await;
    }

    /// Stops and starts a new server over the same data dir (keeping a temp dir alive).
    pub async fn restart(mut self) -> TestApp {
        self.shutdown_server().await;
        let temp = self.temp.take();
        let mut app = TestApp::spawn_at(&self.data_dir).await;
        app.temp = temp;
        app
    }

    /// Stops the server but keeps the data dir alive (when the app owned it),
    /// returning it for inspection or damage.
    pub async fn stop_keep_dir(mut self) -> StoppedDir {
        self.shutdown_server().await;
        StoppedDir {
            path: self.data_dir.clone(),
            _temp: self.temp.take(),
        }
    }

    async fn shutdown_server(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let result = within("the server to stop after shutdown", server)
                .await
                .expect("the server task panicked");
            if let Err(e) = result {
                panic!("server::run returned an error: {e:#}");
            }
        }
    }

    /// A new client on its own connection, authenticated as [`TESTER`].
    pub async fn new_client(&self) -> LedgerClient<Authed> {
        connect_as(self.addr, &self.token(TESTER).await).await
    }

    /// The token of `principal`: a test principal's, the admin's, or (for
    /// any other name) a new one with every writing role, issued now through
    /// the Access service (two entries).
    pub async fn token(&self, principal: &str) -> String {
        if let Some(token) = self.tokens.lock().unwrap().get(principal) {
            return token.clone();
        }
        let created = self
            .access_as(BOOTSTRAP_PRINCIPAL)
            .await
            .create_token(CreateTokenRequest {
                principal: principal.to_owned(),
                grants: writer_grants(),
                description: "test principal".into(),
            })
            .await
            .unwrap_or_else(|s| panic!("creating a token for {principal}: {s:?}"))
            .into_inner();
        self.tokens
            .lock()
            .unwrap()
            .insert(principal.to_owned(), created.token.clone());
        save_tokens(&self.data_dir, &self.tokens.lock().unwrap());
        created.token
    }

    /// An Access client authenticated as `principal`.
    pub async fn access_as(&self, principal: &str) -> AccessClient<Authed> {
        let token = self.tokens.lock().unwrap().get(principal).cloned();
        let token = match token {
            Some(token) => token,
            None => Box::pin(self.token(principal)).await,
        };
        AccessClient::with_interceptor(channel(self.addr).await, Bearer::new(Some(&token)).unwrap())
    }

    /// `message` as a request authenticated as `principal`.
    pub async fn as_principal<T>(&self, principal: &str, message: T) -> Request<T> {
        with_token(&self.token(principal).await, message)
    }

    // ---- one method per RPC -------------------------------------------------

    pub async fn append(&self, req: AppendRequest) -> Result<AppendResponse, Status> {
        let mut client = self.client.clone();
        within("Append", client.append(req))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn append_as(
        &self,
        actor: &str,
        req: AppendRequest,
    ) -> Result<AppendResponse, Status> {
        let mut client = self.client.clone();
        let req = self.as_principal(actor, req).await;
        within("Append", client.append(req))
            .await
            .map(|r| r.into_inner())
    }

    /// Registers version [`V`] of `subject` ([`version`]) as [`REGISTRAR`], so
    /// that the default actor may then approve it; returns its entry.
    pub async fn register(&self, subject: &str) -> Entry {
        self.append_as(REGISTRAR, req(version(subject)))
            .await
            .unwrap_or_else(|s| panic!("registering {subject} {V} as {REGISTRAR}: {s:?}"))
            .entry
            .expect("AppendResponse.entry is set")
    }

    /// Appends one event that must be accepted; returns its entry.
    pub async fn append_event(&self, event: impl ToEvent) -> Entry {
        let resp = self
            .append(req(event))
            .await
            .unwrap_or_else(|s| panic!("Append rejected a valid event: {s:?}"));
        resp.entry.expect("AppendResponse.entry is set")
    }

    pub async fn append_batch(
        &self,
        req: AppendBatchRequest,
    ) -> Result<AppendBatchResponse, Status> {
        let mut client = self.client.clone();
        within("AppendBatch", client.append_batch(req))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn append_batch_as(
        &self,
        actor: &str,
        req: AppendBatchRequest,
    ) -> Result<AppendBatchResponse, Status> {
        let mut client = self.client.clone();
        let req = self.as_principal(actor, req).await;
        within("AppendBatch", client.append_batch(req))
            .await
            .map(|r| r.into_inner())
    }

    /// Appends events in one batch that must be accepted; returns the entries.
    pub async fn append_events(&self, events: Vec<Event>) -> Vec<Entry> {
        let n = events.len();
        let resp = self
            .append_batch(batch(events))
            .await
            .unwrap_or_else(|s| panic!("AppendBatch rejected valid events: {s:?}"));
        assert_eq!(
            resp.entries.len(),
            n,
            "AppendBatch returned a wrong number of entries"
        );
        resp.entries
    }

    pub async fn get_entry(&self, sequence: u64) -> Result<Entry, Status> {
        let mut client = self.client.clone();
        within("GetEntry", client.get_entry(GetEntryRequest { sequence }))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn get_head(&self) -> Head {
        let mut client = self.client.clone();
        within("GetHead", client.get_head(GetHeadRequest {}))
            .await
            .expect("GetHead failed")
            .into_inner()
    }

    /// Collects the whole ReadEntries stream.
    pub async fn read_entries(&self, req: ReadEntriesRequest) -> Result<Vec<Entry>, Status> {
        let mut client = self.client.clone();
        within("ReadEntries", async move {
            let mut stream = client.read_entries(req).await?.into_inner();
            let mut entries = Vec::new();
            while let Some(entry) = stream.next().await {
                entries.push(entry?);
            }
            Ok(entries)
        })
        .await
    }

    /// Every entry of the log, in order.
    pub async fn read_all(&self) -> Vec<Entry> {
        self.read_entries(ReadEntriesRequest::default())
            .await
            .expect("ReadEntries (all) failed")
    }

    pub async fn subscribe(&self, req: SubscribeRequest) -> Streaming<Entry> {
        let mut client = self.client.clone();
        within("Subscribe", client.subscribe(req))
            .await
            .expect("Subscribe failed")
            .into_inner()
    }

    pub async fn verify_chain(&self, from_sequence: u64, to_sequence: u64) -> VerifyChainResponse {
        let mut client = self.client.clone();
        within(
            "VerifyChain",
            client.verify_chain(VerifyChainRequest {
                from_sequence,
                to_sequence,
            }),
        )
        .await
        .expect("VerifyChain failed")
        .into_inner()
    }

    /// Asserts the whole chain verifies and matches the head.
    pub async fn assert_chain_valid(&self) {
        let head = self.get_head().await;
        let report = self.verify_chain(0, 0).await;
        assert!(
            report.valid,
            "VerifyChain reports an invalid chain: {report:?}"
        );
        assert_eq!(report.entries_checked, head.sequence, "{report:?}");
        assert_eq!(report.first_bad_sequence, 0, "{report:?}");
        if head.sequence > 0 {
            assert_eq!(
                report.head_hash, head.hash,
                "VerifyChain head_hash != GetHead hash"
            );
        }
    }
}

/// A stopped ledger's data dir.
pub struct StoppedDir {
    pub path: PathBuf,
    _temp: Option<TempDir>,
}

pub async fn channel(addr: SocketAddr) -> Channel {
    within(
        "connecting to the server",
        Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect(),
    )
    .await
    .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
}

/// A Ledger client sending `token` with every call.
pub async fn connect_as(addr: SocketAddr, token: &str) -> LedgerClient<Authed> {
    LedgerClient::with_interceptor(channel(addr).await, Bearer::new(Some(token)).unwrap())
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

/// A Ledger client sending no credentials.
pub async fn connect_anonymous(addr: SocketAddr) -> LedgerClient<Channel> {
    LedgerClient::new(channel(addr).await)
}

pub fn with_token<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("a valid header value"),
    );
    request
}

/// Every role that writes, unscoped.
pub fn writer_grants() -> Vec<Grant> {
    [
        Role::Recorder,
        Role::Approver,
        Role::Deployer,
        Role::Responder,
        Role::Admin,
    ]
    .into_iter()
    .map(|role| Grant {
        role: role as i32,
        scope: String::new(),
    })
    .collect()
}

/// At an app's first start over a data dir: the bootstrap admin (as
/// `govledger serve` would create it) and [`TEST_PRINCIPALS`], in one atomic
/// group, with tokens generated here. Later starts read the saved tokens.
async fn setup_principals(ledger: &Ledger) -> std::collections::BTreeMap<String, String> {
    let dir = ledger.data_dir().to_path_buf();
    if ledger.state().access().principals.is_empty() {
        govledger::auth::bootstrap(ledger).await.expect("bootstrap");
        let admin = fs::read_to_string(dir.join(BOOTSTRAP_TOKEN_FILE)).expect("admin token");
        let mut tokens = std::collections::BTreeMap::new();
        tokens.insert(BOOTSTRAP_PRINCIPAL.to_owned(), admin.trim().to_owned());
        let mut events = Vec::new();
        for principal in TEST_PRINCIPALS {
            let token = NewToken::generate().expect("a token");
            events.push(Kind::PrincipalRolesSet(PrincipalRolesSet {
                principal: (*principal).to_owned(),
                grants: writer_grants(),
            }));
            events.push(Kind::TokenIssued(TokenIssued {
                principal: (*principal).to_owned(),
                token_id: token.id.clone(),
                secret_hash: token.secret_hash().to_vec(),
                description: "test principal".into(),
            }));
            tokens.insert((*principal).to_owned(), token.to_string());
        }
        govledger::auth::append_access(
            ledger,
            govledger::domain::ActorName::parse(BOOTSTRAP_PRINCIPAL).unwrap(),
            events,
        )
        .await
        .expect("creating the test principals");
        assert_eq!(ledger.head().sequence, SETUP_ENTRIES);
        save_tokens(&dir, &tokens);
        tokens
    } else {
        let text = fs::read_to_string(dir.join(TEST_TOKENS_FILE)).unwrap_or_else(|e| {
            panic!(
                "reading {} (an app over a dir it did not set up?): {e}",
                dir.join(TEST_TOKENS_FILE).display()
            )
        });
        serde_json::from_str(&text).expect("test tokens")
    }
}

fn save_tokens(dir: &Path, tokens: &std::collections::BTreeMap<String, String>) {
    fs::write(
        dir.join(TEST_TOKENS_FILE),
        serde_json::to_string(tokens).unwrap(),
    )
    .expect("saving test tokens");
}

/// Next entry of a stream, within [`WAIT`]; fails on end of stream or error.
pub async fn next_entry(stream: &mut Streaming<Entry>) -> Entry {
    match within("the next streamed entry", stream.next()).await {
        Some(Ok(entry)) => entry,
        Some(Err(status)) => panic!("stream failed: {status:?}"),
        None => panic!("stream ended early"),
    }
}

// ---- assertions -------------------------------------------------------------

/// Asserts `result` failed with `code` and a message containing `needle`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    needle: &str,
) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?} containing {needle:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(
                status.code(),
                code,
                "expected {code:?} containing {needle:?}, got {status:?}"
            );
            assert!(
                status.message().contains(needle),
                "expected a message containing {needle:?}, got {:?}",
                status.message()
            );
            status
        }
    }
}

/// Asserts `entries` link up: consecutive sequences, each prev_hash the previous hash.
#[track_caller]
pub fn assert_linked(entries: &[Entry]) {
    for pair in entries.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence + 1, "sequence gap");
        assert_eq!(
            pair[1].prev_hash, pair[0].hash,
            "entry {} prev_hash != entry {} hash",
            pair[1].sequence, pair[0].sequence
        );
        assert!(
            ts(&pair[1]) >= ts(&pair[0]),
            "recorded_at went backwards at entry {}",
            pair[1].sequence
        );
    }
}

/// recorded_at as a comparable pair.
pub fn ts(entry: &Entry) -> (i64, i32) {
    let t = entry.recorded_at.as_ref().expect("recorded_at is set");
    (t.seconds, t.nanos)
}

pub fn seqs(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.sequence).collect()
}

// ---- requests -----------------------------------------------------------------

pub fn req(event: impl ToEvent) -> AppendRequest {
    AppendRequest {
        event: Some(event.event()),
        ..Default::default()
    }
}

pub fn keyed(event: impl ToEvent, key: &str) -> AppendRequest {
    AppendRequest {
        event: Some(event.event()),
        idempotency_key: key.to_owned(),
        ..Default::default()
    }
}

pub fn item(event: impl ToEvent) -> BatchItem {
    BatchItem {
        event: Some(event.event()),
        ..Default::default()
    }
}

pub fn batch(events: Vec<Event>) -> AppendBatchRequest {
    AppendBatchRequest {
        items: events.into_iter().map(item).collect(),
        expected_head_sequence: None,
    }
}

// ---- event builders (valid by default) -----------------------------------------

/// Wraps a variant (or passes an `Event` through).
pub trait ToEvent {
    fn event(self) -> Event;
}

impl ToEvent for Event {
    fn event(self) -> Event {
        self
    }
}

macro_rules! to_event {
    ($($variant:ident),* $(,)?) => {
        $(impl ToEvent for $variant {
            fn event(self) -> Event {
                Event { kind: Some(Kind::$variant(self)) }
            }
        })*
    };
}

to_event!(
    VersionRegistered,
    EvalRecorded,
    ApprovalRecorded,
    DeploymentRecorded,
    IncidentOpened,
    IncidentResolved,
    FeedbackRecorded,
    PolicySet,
);

pub fn digest(bytes: &[u8]) -> Vec<u8> {
    blake3::hash(bytes).as_bytes().to_vec()
}

pub fn source() -> Source {
    Source {
        repository: "github.com/acme/support-bot".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        branch: "main".into(),
        run_url: "https://ci.example.com/acme/support-bot/runs/4242".into(),
        pipeline_id: "4242".into(),
        system: "github-actions".into(),
    }
}

/// Version [`V`] of `subject`, a prompt: valid once per subject. It names no
/// parent (a parent must be registered first; see [`child_version`]).
pub fn version(subject: &str) -> VersionRegistered {
    let content = format!("You are the triage assistant for {subject}. Be brief.").into_bytes();
    VersionRegistered {
        subject: subject.into(),
        subject_kind: SubjectKind::Prompt as i32,
        version: V.into(),
        content_digest: digest(&content),
        parent_version: String::new(),
        author: AUTHOR.into(),
        model: "gpt-4o-mini".into(),
        parameters: [("temperature", "0.2"), ("max_tokens", "512")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        source: Some(source()),
        summary: "Shorter answers; cite the refund policy".into(),
        content,
    }
}

/// Version `label` of `subject`, changing `parent` (which must be registered).
pub fn child_version(subject: &str, label: &str, parent: &str) -> VersionRegistered {
    VersionRegistered {
        version: label.into(),
        parent_version: parent.into(),
        summary: format!("{label}: shorter answers than {parent}; cite the refund policy"),
        ..version(subject)
    }
}

/// A version whose stored content is `len` bytes, so the middle of its journal
/// record lies inside the payload.
pub fn version_with_content(subject: &str, len: usize) -> VersionRegistered {
    let content: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    VersionRegistered {
        content_digest: digest(&content),
        content,
        ..version(subject)
    }
}

pub fn metric(name: &str, value: f64, threshold: f64) -> Metric {
    Metric {
        name: name.into(),
        value,
        threshold,
        direction: Direction::HigherIsBetter as i32,
    }
}

pub fn eval(subject: &str) -> EvalRecorded {
    EvalRecorded {
        subject: subject.into(),
        version: V.into(),
        suite: "regression".into(),
        eval_kind: EvalKind::ModelGraded as i32,
        metrics: vec![
            metric("accuracy", 0.87, 0.85),
            Metric {
                name: "latency_p95_ms".into(),
                value: 840.0,
                threshold: 1200.0,
                direction: Direction::LowerIsBetter as i32,
            },
        ],
        dataset_digest: digest(b"regression dataset 2026-03"),
        sample_size: 200,
        grader_model: "gpt-4o".into(),
        run_ref: "https://ci.example.com/acme/support-bot/runs/4243".into(),
        source: Some(source()),
    }
}

pub fn approval(subject: &str) -> ApprovalRecorded {
    ApprovalRecorded {
        subject: subject.into(),
        version: V.into(),
        environment: "production".into(),
        decision: Decision::Approve as i32,
        comment: "Eval evidence reviewed; fine to ship.".into(),
    }
}

pub fn deployment(subject: &str) -> DeploymentRecorded {
    DeploymentRecorded {
        subject: subject.into(),
        version: V.into(),
        environment: "production".into(),
        override_justification: String::new(),
        source: Some(source()),
    }
}

/// The incident id [`incident_opened`] and [`lifecycle`] use for `version` of
/// `subject`. Incident ids are unique across the ledger, so it depends on both.
pub fn incident_id(subject: &str, version: &str) -> String {
    let hash = blake3::hash(format!("{subject}@{version}").as_bytes());
    format!("INC-{}", &hash.to_hex()[..12])
}

/// Opens incident [`incident_id`]`(subject, V)` against version [`V`]: valid
/// once per subject.
pub fn incident_opened(subject: &str) -> IncidentOpened {
    IncidentOpened {
        incident_id: incident_id(subject, V),
        subject: subject.into(),
        version: V.into(),
        environment: "production".into(),
        severity: Severity::High as i32,
        category: IncidentCategory::Hallucination as i32,
        description: "Invented a 90-day refund policy.".into(),
        related_sequence: 0,
    }
}

/// Resolves the incident of [`incident_opened`] (which must be open), fixed
/// in version [`V`].
pub fn incident_resolved(subject: &str) -> IncidentResolved {
    IncidentResolved {
        incident_id: incident_id(subject, V),
        subject: subject.into(),
        resolution: "Refund policy doc added to the retrieval index; answers now cite it.".into(),
        fixing_version: V.into(),
    }
}

pub fn feedback(subject: &str) -> FeedbackRecorded {
    FeedbackRecorded {
        subject: subject.into(),
        version: V.into(),
        environment: "production".into(),
        window_start: Some(prost_types::Timestamp {
            seconds: 1_772_500_000,
            nanos: 0,
        }),
        window_end: Some(prost_types::Timestamp {
            seconds: 1_772_503_600,
            nanos: 0,
        }),
        thumbs_up: 120,
        thumbs_down: 14,
        rewrites: 9,
        total: 400,
    }
}

pub fn policy(subject: &str) -> PolicySet {
    PolicySet {
        subject: subject.into(),
        environment: "production".into(),
        required_suites: vec![RequiredSuite {
            suite: "regression".into(),
            thresholds: vec![metric("accuracy", 0.0, 0.85)],
        }],
        max_evidence_age_seconds: 7 * 24 * 3600,
        min_approvals: 1,
        allow_self_approval: false,
        deployer_not_sole_approver: true,
        block_on_open_incident_severity: Severity::High as i32,
        max_eval_score_drop: 0.05,
        max_negative_feedback_rate_rise: 0.1,
        baseline_negative_feedback_rate: 0.05,
    }
}

/// One valid event of every kind for `subject`, in EventKind order:
/// [`lifecycle`]`(subject, V, "production")`. Valid once per subject.
pub fn all_kinds(subject: &str) -> Vec<Event> {
    lifecycle(subject, V, "production")
}

/// One event of every kind, in EventKind order, about a new `version` of
/// `subject` in `environment`: registered, evaluated, reviewed, deployed, an
/// incident opened and resolved, feedback, and finally a policy for the
/// environment.
///
/// Valid when appended in this order (singly or in one batch) by any one
/// actor, provided `version` is new for `subject` and no policy is in force
/// for (`subject`, `environment`) yet: the review is a REJECT, because nobody
/// may approve a version they registered (and a REJECT does not stop a
/// deployment when no policy is in force).
pub fn lifecycle(subject: &str, version: &str, environment: &str) -> Vec<Event> {
    let v = || version.to_owned();
    let env = || environment.to_owned();
    let id = incident_id(subject, version);
    vec![
        VersionRegistered {
            version: v(),
            ..self::version(subject)
        }
        .event(),
        EvalRecorded {
            version: v(),
            ..eval(subject)
        }
        .event(),
        ApprovalRecorded {
            version: v(),
            environment: env(),
            decision: Decision::Reject as i32,
            comment: "Needs a grounding eval before it ships.".into(),
            ..approval(subject)
        }
        .event(),
        DeploymentRecorded {
            version: v(),
            environment: env(),
            ..deployment(subject)
        }
        .event(),
        IncidentOpened {
            incident_id: id.clone(),
            version: v(),
            environment: env(),
            ..incident_opened(subject)
        }
        .event(),
        IncidentResolved {
            incident_id: id,
            fixing_version: v(),
            ..incident_resolved(subject)
        }
        .event(),
        FeedbackRecorded {
            version: v(),
            environment: env(),
            ..feedback(subject)
        }
        .event(),
        PolicySet {
            environment: env(),
            ..policy(subject)
        }
        .event(),
    ]
}

pub const ALL_KINDS: [EventKind; 8] = [
    EventKind::VersionRegistered,
    EventKind::EvalRecorded,
    EventKind::ApprovalRecorded,
    EventKind::DeploymentRecorded,
    EventKind::IncidentOpened,
    EventKind::IncidentResolved,
    EventKind::FeedbackRecorded,
    EventKind::PolicySet,
];

pub fn kind_of(event: &Event) -> EventKind {
    match event.kind.as_ref().expect("event has a variant") {
        Kind::VersionRegistered(_) => EventKind::VersionRegistered,
        Kind::EvalRecorded(_) => EventKind::EvalRecorded,
        Kind::ApprovalRecorded(_) => EventKind::ApprovalRecorded,
        Kind::DeploymentRecorded(_) => EventKind::DeploymentRecorded,
        Kind::IncidentOpened(_) => EventKind::IncidentOpened,
        Kind::IncidentResolved(_) => EventKind::IncidentResolved,
        Kind::FeedbackRecorded(_) => EventKind::FeedbackRecorded,
        Kind::PolicySet(_) => EventKind::PolicySet,
        Kind::PrincipalRolesSet(_) => EventKind::PrincipalRolesSet,
        Kind::TokenIssued(_) => EventKind::TokenIssued,
        Kind::TokenRevoked(_) => EventKind::TokenRevoked,
    }
}

/// A cheap event registering version `v{n}` of `subject` (no parent): valid
/// once per (subject, n); n = 2 is [`V`].
pub fn numbered(subject: &str, n: usize) -> Event {
    VersionRegistered {
        version: format!("v{n}"),
        parent_version: String::new(),
        ..version(subject)
    }
    .event()
}

// ---- on-disk helpers -------------------------------------------------------------

pub fn records(data_dir: &Path) -> Vec<RecordLocation> {
    locate_records(data_dir)
        .unwrap_or_else(|e| panic!("locate_records({}) failed: {e}", data_dir.display()))
}

pub fn record(data_dir: &Path, sequence: u64) -> RecordLocation {
    records(data_dir)
        .into_iter()
        .find(|r| r.sequence == sequence)
        .unwrap_or_else(|| panic!("no journal record for entry {sequence}"))
}

/// The segment of `location` (found under `from`) as it lies under `to`, a copy of `from`.
pub fn segment_in(location: &RecordLocation, from: &Path, to: &Path) -> PathBuf {
    let relative = if location.segment.is_absolute() {
        location
            .segment
            .strip_prefix(from)
            .or_else(|_| {
                location
                    .segment
                    .strip_prefix(from.canonicalize().expect("canonical data dir"))
            })
            .unwrap_or_else(|_| {
                panic!(
                    "segment {} is not under {}",
                    location.segment.display(),
                    from.display()
                )
            })
            .to_path_buf()
    } else {
        location.segment.clone()
    };
    to.join(relative)
}

/// The absolute path of a record's segment under its data dir.
pub fn segment_path(location: &RecordLocation, data_dir: &Path) -> PathBuf {
    if location.segment.is_absolute() {
        location.segment.clone()
    } else {
        data_dir.join(&location.segment)
    }
}

/// Inverts every bit of the byte at `offset` in `file`.
pub fn flip_byte(file: &Path, offset: u64) {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap_or_else(|e| panic!("opening {}: {e}", file.display()));
    let mut byte = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut byte).unwrap();
    byte[0] ^= 0xFF;
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&byte).unwrap();
    f.sync_all().unwrap();
}

/// Changes one byte in the middle of entry `sequence`'s stored record.
pub fn tamper_with_entry(data_dir: &Path, sequence: u64) {
    let location = record(data_dir, sequence);
    assert!(
        location.len > 2,
        "record too short to tamper with: {location:?}"
    );
    flip_byte(
        &segment_path(&location, data_dir),
        location.offset + location.len / 2,
    );
}

pub fn truncate(file: &Path, len: u64) {
    let f = OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap_or_else(|e| panic!("opening {}: {e}", file.display()));
    f.set_len(len).unwrap();
    f.sync_all().unwrap();
}

/// Recursively copies a directory.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let file_type = entry.file_type().unwrap();
        if file_type.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if file_type.is_file() {
            fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copying {}: {e}", entry.path().display()));
        }
    }
}
