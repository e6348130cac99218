//! The gRPC services. The only module that touches tonic and the
//! request/response messages: it maps them onto domain values, calls the
//! [`Ledger`], and maps results back.

mod access;
mod auth;
mod convert;
mod governance;
mod status;

use std::collections::HashMap;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::{
    Ledger, LedgerError,
    auth::Action,
    domain::{AppendItem, MAX_BATCH_BYTES, MAX_BATCH_ITEMS, ValidEvent},
    ledger::Query,
    proto::v1::{self, ledger_server},
};

pub use access::{AccessServer, AccessService};
pub use auth::Auth;
pub use governance::{GovernanceServer, GovernanceService};
pub use ledger_server::LedgerServer;
/// Entries read per pass while a subscription catches up.
const SUBSCRIBE_CHUNK: usize = 1024;
/// Entries buffered per stream ahead of a slow client.
const STREAM_BUFFER: usize = 256;

/// The `govledger.v1.Ledger` service.
pub struct LedgerService {
    ledger: Ledger,
    /// Cancelled at shutdown, so endless Subscribe streams end and the
    /// server can drain.
    shutdown: CancellationToken,
    auth: Auth,
}

impl LedgerService {
    pub fn new(ledger: Ledger, shutdown: CancellationToken, auth: Auth) -> LedgerService {
        LedgerService {
            ledger,
            shutdown,
            auth,
        }
    }
}

/// Validates an event to append and checks that `caller` may append it.
fn writable(
    auth: &Auth,
    caller: &crate::auth::Caller,
    event: Option<v1::Event>,
    path: &str,
    rpc: &str,
) -> Result<ValidEvent, Status> {
    let event = ValidEvent::parse(event, path)?;
    if event.kind().is_access() {
        return Err(LedgerError::invalid(
            format!("{path}.{}", event.kind().field_name()),
            "access entries are written only through the Access service",
        )
        .into());
    }
    auth.authorize(
        caller,
        Action::Write {
            kind: event.kind(),
            subject: event.subject().as_str(),
        },
        rpc,
    )?;
    Ok(event)
}

fn optional_name(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// Appended entries as answers: with the validated events when the append
/// was new, decoding the stored payloads only for a replay.
fn answer(
    entries: Vec<crate::journal::StoredEntry>,
    events: Vec<v1::Event>,
) -> impl Iterator<Item = v1::Entry> {
    let mut events = events.into_iter();
    entries.into_iter().map(move |stored| match events.next() {
        Some(event) => convert::entry_with(stored, Some(event)),
        None => convert::entry(stored),
    })
}

type EntryStream = ReceiverStream<Result<v1::Entry, Status>>;

#[tonic::async_trait]
impl ledger_server::Ledger for LedgerService {
    async fn append(
        &self,
        request: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        let caller = self.auth.authenticate(&request, "Append")?;
        let request = request.into_inner();
        let item = AppendItem {
            event: writable(&self.auth, &caller, request.event, "event", "Append")?,
            idempotency_key: convert::idempotency_key(&request.idempotency_key, "idempotency_key")?,
            expected_subject_sequence: request.expected_subject_sequence,
        };
        let appended = self
            .ledger
            .append(
                caller.name,
                vec![item],
                request.expected_head_sequence,
                false,
            )
            .await?;
        let mut entries = answer(appended.entries, appended.events);
        let entry = entries.next();
        Ok(Response::new(v1::AppendResponse {
            entry,
            deduplicated: appended.deduplicated,
            derived: entries.collect(),
        }))
    }

    async fn append_batch(
        &self,
        request: Request<v1::AppendBatchRequest>,
    ) -> Result<Response<v1::AppendBatchResponse>, Status> {
        let caller = self.auth.authenticate(&request, "AppendBatch")?;
        let request = request.into_inner();
        if request.items.is_empty() || request.items.len() > MAX_BATCH_ITEMS {
            return Err(LedgerError::invalid(
                "items",
                format!(
                    "must hold 1-{MAX_BATCH_ITEMS} events (got {})",
                    request.items.len()
                ),
            )
            .into());
        }
        let mut items = Vec::with_capacity(request.items.len());
        let mut keys = HashMap::new();
        let mut bytes = 0;
        for (i, item) in request.items.into_iter().enumerate() {
            let event = writable(
                &self.auth,
                &caller,
                item.event,
                &format!("items[{i}].event"),
                "AppendBatch",
            )?;
            bytes += event.payload().len();
            if bytes > MAX_BATCH_BYTES {
                return Err(LedgerError::invalid(
                    "items",
                    format!("encoded events exceed the batch limit of {MAX_BATCH_BYTES} bytes (16 MiB) at items[{i}]"),
                )
                .into());
            }
            let field = format!("items[{i}].idempotency_key");
            let idempotency_key = convert::idempotency_key(&item.idempotency_key, &field)?;
            if let Some(key) = &idempotency_key
                && let Some(first) = keys.insert(key.to_string(), i)
            {
                return Err(LedgerError::invalid(
                    field,
                    format!("repeats the key of items[{first}]"),
                )
                .into());
            }
            items.push(AppendItem {
                event,
                idempotency_key,
                expected_subject_sequence: item.expected_subject_sequence,
            });
        }
        let appended = self
            .ledger
            .append(caller.name, items, request.expected_head_sequence, true)
            .await?;
        Ok(Response::new(v1::AppendBatchResponse {
            entries: answer(appended.entries, appended.events).collect(),
            deduplicated: appended.deduplicated,
        }))
    }

    async fn get_entry(
        &self,
        request: Request<v1::GetEntryRequest>,
    ) -> Result<Response<v1::Entry>, Status> {
        self.auth.check(&request, "GetEntry", Action::Read)?;
        let sequence = request.into_inner().sequence;
        let ledger = self.ledger.clone();
        let entry = tokio::task::spawn_blocking(move || ledger.entry(sequence))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(convert::entry(entry)))
    }

    async fn get_head(
        &self,
        request: Request<v1::GetHeadRequest>,
    ) -> Result<Response<v1::Head>, Status> {
        self.auth.check(&request, "GetHead", Action::Read)?;
        Ok(Response::new(convert::head(self.ledger.head())))
    }

    type ReadEntriesStream = EntryStream;

    async fn read_entries(
        &self,
        request: Request<v1::ReadEntriesRequest>,
    ) -> Result<Response<Self::ReadEntriesStream>, Status> {
        self.auth.check(&request, "ReadEntries", Action::Read)?;
        let r = request.into_inner();
        let query = Query {
            from: r.from_sequence,
            subject: optional_name(r.subject),
            kind: convert::kind_filter(r.kind, "kind")?,
            actor: optional_name(r.actor),
            since_us: r
                .since
                .as_ref()
                .map(|t| convert::micros(t, "since"))
                .transpose()?,
            until_us: r
                .until
                .as_ref()
                .map(|t| convert::micros(t, "until"))
                .transpose()?,
        };
        let limit = if r.limit == 0 {
            usize::MAX
        } else {
            r.limit as usize
        };
        let ledger = self.ledger.clone();
        let entries = ledger.query(query, ledger.head().sequence)?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::task::spawn_blocking(move || {
            for item in entries.take(limit) {
                let failed = item.is_err();
                if tx
                    .blocking_send(item.map(convert::entry).map_err(Status::from))
                    .is_err()
                    || failed
                {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type SubscribeStream = EntryStream;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        self.auth.check(&request, "Subscribe", Action::Read)?;
        let r = request.into_inner();
        let filter = Query {
            from: 0,
            subject: optional_name(r.subject),
            kind: convert::kind_filter(r.kind, "kind")?,
            ..Query::default()
        };
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let ledger = self.ledger.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(follow(ledger, filter, r.from_sequence.max(1), tx, shutdown));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn verify_chain(
        &self,
        request: Request<v1::VerifyChainRequest>,
    ) -> Result<Response<v1::VerifyChainResponse>, Status> {
        self.auth.check(&request, "VerifyChain", Action::Read)?;
        let r = request.into_inner();
        let ledger = self.ledger.clone();
        let report =
            tokio::task::spawn_blocking(move || ledger.verify(r.from_sequence, r.to_sequence))
                .await
                .map_err(|e| Status::internal(e.to_string()))??;
        let (first_bad_sequence, reason) = report
            .fault
            .map(|f| (f.sequence, f.reason))
            .unwrap_or_default();
        Ok(Response::new(v1::VerifyChainResponse {
            valid: first_bad_sequence == 0,
            from_sequence: report.from,
            to_sequence: report.to,
            entries_checked: report.checked,
            first_bad_sequence,
            reason,
            head_hash: if first_bad_sequence == 0 {
                report.head_hash.0.to_vec()
            } else {
                Vec::new()
            },
        }))
    }
}

/// Streams every entry matching `filter` from `next` on: catch up from disk,
/// then wait for the head to move. Each pass reads by sequence up to a head
/// that was already acknowledged, so no entry is skipped or repeated however
/// appends race with the catch-up.
async fn follow(
    ledger: Ledger,
    filter: Query,
    mut next: u64,
    tx: mpsc::Sender<Result<v1::Entry, Status>>,
    shutdown: CancellationToken,
) {
    let mut head_rx = ledger.watch_head();
    loop {
        let head = head_rx.borrow_and_update().sequence;
        if next <= head {
            let ledger = ledger.clone();
            let query = Query {
                from: next,
                ..filter.clone()
            };
            let chunk = tokio::task::spawn_blocking(move || -> Result<Vec<_>, LedgerError> {
                ledger.query(query, head)?.take(SUBSCRIBE_CHUNK).collect()
            })
            .await;
            let entries = match chunk {
                Ok(Ok(entries)) => entries,
                Ok(Err(e)) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                    return;
                }
            };
            next = match entries.last() {
                Some(last) if entries.len() == SUBSCRIBE_CHUNK => last.envelope.sequence + 1,
                _ => head + 1,
            };
            for entry in entries {
                if tx.send(Ok(convert::entry(entry))).await.is_err() {
                    return;
                }
            }
            continue;
        }
        tokio::select! {
            changed = head_rx.changed() => if changed.is_err() { return },
            () = shutdown.cancelled() => return,
            () = tx.closed() => return,
        }
    }
}
