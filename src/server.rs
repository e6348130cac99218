//! Serving the API until told to stop.

use std::{future::Future, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_stream::{StreamExt, wrappers::TcpListenerStream};
use tokio_util::sync::CancellationToken;

use tonic::transport::ServerTlsConfig;

use crate::{
    Ledger,
    api::{
        AccessServer, AccessService, Auth, GovernanceServer, GovernanceService, LedgerServer,
        LedgerService,
    },
    domain::MAX_BATCH_BYTES,
    proto::FILE_DESCRIPTOR_SET,
};

/// How long shutdown waits for connected clients to finish before closing
/// them: one stuck client must not keep SIGTERM from working.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Largest request: a full batch plus framing (the batch rule itself is
/// checked by the API, which names the field).
const MAX_REQUEST_BYTES: usize = MAX_BATCH_BYTES + (4 << 20);
/// Largest response: an AppendBatch answer carries every entry's payload and
/// decoded event, twice the batch.
const MAX_RESPONSE_BYTES: usize = 2 * MAX_BATCH_BYTES + (8 << 20);

/// How to serve, besides where.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Serve TLS with this configuration; `None` = plaintext (the caller
    /// decides whether that is safe for the address).
    pub tls: Option<ServerTlsConfig>,
    /// The TLS configuration verifies client certificates against a CA, so
    /// a certificate's common name may name a principal.
    pub client_certificates: bool,
}

/// Serves the ledger, governance, access, health and reflection on
/// `listener` until `shutdown` completes; then stops accepting, ends
/// subscriptions, lets in-flight requests finish, and closes the ledger
/// (which finishes queued appends and releases the data directory).
///
/// A ledger without principals gets its bootstrap admin first (see
/// [`crate::auth::bootstrap`]).
pub async fn run(
    listener: TcpListener,
    ledger: Ledger,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(listener, ledger, ServeOptions::default(), shutdown).await
}

/// [`run`] with TLS options.
pub async fn run_with(
    listener: TcpListener,
    ledger: Ledger,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    crate::auth::bootstrap(&ledger)
        .await
        .context("creating the bootstrap admin")?;
    let auth = Auth::new(ledger.clone(), options.client_certificates);
    let cancel = CancellationToken::new();
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<LedgerServer<LedgerService>>().await;
    health
        .set_serving::<GovernanceServer<GovernanceService>>()
        .await;
    health.set_serving::<AccessServer<AccessService>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building reflection v1")?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("building reflection v1alpha")?;
    let ledger_service = LedgerServer::new(LedgerService::new(
        ledger.clone(),
        cancel.clone(),
        auth.clone(),
    ))
    .max_decoding_message_size(MAX_REQUEST_BYTES)
    .max_encoding_message_size(MAX_RESPONSE_BYTES);

    // Small unary messages: never wait for Nagle's algorithm.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|stream| {
            let _ = stream.set_nodelay(true);
        })
    });
    let (fired, fired_rx) = tokio::sync::oneshot::channel();
    let signal = {
        let cancel = cancel.clone();
        let health = health.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            health
                .set_not_serving::<LedgerServer<LedgerService>>()
                .await;
            cancel.cancel();
            let _ = fired.send(());
        }
    };
    let grace = async move {
        match fired_rx.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            Err(_) => std::future::pending().await,
        }
    };
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = options.tls {
        builder = builder.tls_config(tls).context("configuring TLS")?;
    }
    let serve = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ledger_service)
        .add_service(GovernanceServer::new(GovernanceService::new(
            ledger.clone(),
            auth.clone(),
        )))
        .add_service(AccessServer::new(AccessService::new(ledger.clone(), auth)))
        .serve_with_incoming_shutdown(incoming, signal);
    let served = tokio::select! {
        served = serve => served,
        () = grace => {
            tracing::warn!(grace_s = SHUTDOWN_GRACE.as_secs(), "clients still connected after the grace period; closing");
            Ok(())
        }
    };
    cancel.cancel();
    ledger.close().await;
    tracing::info!("ledger closed");
    served.context("serving gRPC")
}
