//! Connecting to a govledger server as a client: the address, TLS (a CA to
//! trust, optionally a client certificate) and the bearer token every call
//! carries. Used by the CLI's client commands and by `govledger bench`.

use std::path::PathBuf;

use anyhow::Context;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

use crate::proto::v1::{
    access_client::AccessClient, governance_client::GovernanceClient, ledger_client::LedgerClient,
};

/// Adds `authorization: Bearer <token>` to every call that does not carry
/// its own (nothing when unset).
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    pub fn new(token: Option<&str>) -> anyhow::Result<Bearer> {
        token
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {}", t.trim()))
                    .context("the token is not a valid header value (ASCII only)")
            })
            .transpose()
            .map(Bearer)
    }
}

/// Never prints the token.
impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(<redacted>)"
        } else {
            "Bearer(none)"
        })
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0
            && !request.metadata().contains_key("authorization")
        {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// Where and how to connect.
#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    /// `host:port`, or a URL (`http://…`, `https://…`).
    pub addr: String,
    pub token: Option<String>,
    /// PEM CA certificate to trust; setting it (or `https://`) means TLS.
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate and key, for mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host).
    pub tls_domain: Option<String>,
}

/// A connected channel and the token to send on it.
#[derive(Clone, Debug)]
pub struct Connection {
    pub channel: Channel,
    pub bearer: Bearer,
}

impl Connection {
    pub fn ledger(&self) -> LedgerClient<Authed> {
        LedgerClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    pub fn governance(&self) -> GovernanceClient<Authed> {
        GovernanceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn access(&self) -> AccessClient<Authed> {
        AccessClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
}

impl ClientConfig {
    /// The endpoint, without connecting.
    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        let tls = self.ca_cert.is_some() || self.addr.starts_with("https://");
        let url = if self.addr.contains("://") {
            self.addr.clone()
        } else if tls {
            format!("https://{}", self.addr)
        } else {
            format!("http://{}", self.addr)
        };
        let mut endpoint = Endpoint::from_shared(url.clone())
            .with_context(|| format!("invalid server address {url:?}"))?
            .tcp_nodelay(true);
        if tls {
            let mut config = ClientTlsConfig::new();
            if let Some(ca) = &self.ca_cert {
                let pem = std::fs::read(ca)
                    .with_context(|| format!("reading the CA certificate {}", ca.display()))?;
                config = config.ca_certificate(Certificate::from_pem(pem));
            }
            match (&self.client_cert, &self.client_key) {
                (Some(cert), Some(key)) => {
                    let cert = std::fs::read(cert).with_context(|| {
                        format!("reading the client certificate {}", cert.display())
                    })?;
                    let key = std::fs::read(key)
                        .with_context(|| format!("reading the client key {}", key.display()))?;
                    config = config.identity(Identity::from_pem(cert, key));
                }
                (None, None) => {}
                _ => anyhow::bail!("a client certificate needs both its certificate and its key"),
            }
            if let Some(domain) = &self.tls_domain {
                config = config.domain_name(domain.clone());
            }
            endpoint = endpoint.tls_config(config).context("configuring TLS")?;
        }
        Ok(endpoint)
    }

    /// Connects (fails fast when the server is unreachable).
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let endpoint = self.endpoint()?;
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        Ok(Connection {
            channel,
            bearer: Bearer::new(self.token.as_deref())?,
        })
    }
}

/// The connection flags every client command shares. Flags win over the
/// environment.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ClientArgs {
    /// Server address (host:port or URL).
    #[arg(
        long,
        env = "GOVLEDGER_ADDR",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub addr: String,
    /// Bearer token.
    #[arg(long, env = "GOVLEDGER_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// File holding the bearer token (e.g. the data dir's admin.token).
    #[arg(
        long,
        env = "GOVLEDGER_TOKEN_FILE",
        global = true,
        conflicts_with = "token"
    )]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificate to verify the server with (turns TLS on).
    #[arg(long, env = "GOVLEDGER_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS.
    #[arg(
        long,
        env = "GOVLEDGER_TLS_CLIENT_CERT",
        global = true,
        requires = "tls_client_key"
    )]
    pub tls_client_cert: Option<PathBuf>,
    /// PEM key of the client certificate.
    #[arg(
        long,
        env = "GOVLEDGER_TLS_CLIENT_KEY",
        global = true,
        requires = "tls_client_cert"
    )]
    pub tls_client_key: Option<PathBuf>,
    /// Name the server's certificate must carry (default: the address's host).
    #[arg(long, env = "GOVLEDGER_TLS_DOMAIN", global = true)]
    pub tls_domain: Option<String>,
}

impl ClientArgs {
    pub fn config(&self) -> anyhow::Result<ClientConfig> {
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => Some(token.trim().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the token file {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        Ok(ClientConfig {
            addr: self.addr.clone(),
            token,
            ca_cert: self.tls_ca.clone(),
            client_cert: self.tls_client_cert.clone(),
            client_key: self.tls_client_key.clone(),
            tls_domain: self.tls_domain.clone(),
        })
    }
}
