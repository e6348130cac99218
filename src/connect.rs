//! Connecting to a govledger server as a client: the address, TLS (a CA to
//! trust, optionally a client certificate) and the bearer token every call
//! carries. Used by the CLI's client commands and by `govledger bench`.

use std::{
    fmt,
    path::{Path, PathBuf},
};

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

/// Where and how to connect. Its `Debug` never shows the token.
#[derive(Clone, Default)]
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

/// What `Debug` shows in place of a token.
const REDACTED: &str = "<redacted>";

fn redacted(token: &Option<String>) -> Option<&'static str> {
    token.as_ref().map(|_| REDACTED)
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("addr", &self.addr)
            .field("token", &redacted(&self.token))
            .field("ca_cert", &self.ca_cert)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("tls_domain", &self.tls_domain)
            .finish()
    }
}

impl fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientArgs")
            .field("addr", &self.addr)
            .field("token", &redacted(&self.token))
            .field("token_file", &self.token_file)
            .field("tls_ca", &self.tls_ca)
            .field("tls_client_cert", &self.tls_client_cert)
            .field("tls_client_key", &self.tls_client_key)
            .field("tls_domain", &self.tls_domain)
            .finish()
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Flag(_) => f.write_str("Flag(<redacted>)"),
            TokenSource::Env(_) => f.write_str("Env(<redacted>)"),
            TokenSource::FlagFile(path) => f.debug_tuple("FlagFile").field(path).finish(),
            TokenSource::EnvFile(path) => f.debug_tuple("EnvFile").field(path).finish(),
            TokenSource::None => f.write_str("None"),
        }
    }
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
        // A client certificate only makes sense over TLS: sending one (and
        // the token) over a plain connection would be a silent downgrade.
        let wants_tls =
            self.ca_cert.is_some() || self.client_cert.is_some() || self.tls_domain.is_some();
        if wants_tls && self.addr.starts_with("http://") {
            return Err(ConfigError(format!(
                "--addr {} is plain http://, but TLS options (--tls-ca, --tls-client-cert, --tls-domain) are given",
                self.addr
            ))
            .into());
        }
        let tls = wants_tls || self.addr.starts_with("https://");
        let url = url(&self.addr, tls);
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
                _ => {
                    return Err(ConfigError(
                        "a client certificate needs both its certificate and its key".into(),
                    )
                    .into());
                }
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

/// Client options that contradict each other: the command line's fault
/// (the CLI exits 2), found only when the options are combined.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The URL of a `host:port` or URL address.
fn url(addr: &str, tls: bool) -> String {
    if addr.contains("://") {
        addr.to_owned()
    } else if tls {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

/// `--addr`: checked when the command line is parsed, so a malformed
/// address is a usage error (exit 2), not an unreachable server.
fn parse_addr(addr: &str) -> Result<String, String> {
    let url = url(addr, false);
    match url.split_once("://") {
        Some(("http" | "https", _)) => {}
        _ => return Err(format!("{addr:?}: the scheme must be http:// or https://")),
    }
    Endpoint::from_shared(url)
        .map(|_| addr.to_owned())
        .map_err(|_| format!("{addr:?} is not a server address (host:port or URL)"))
}

/// The connection flags every client command shares. Flags win over the
/// environment.
/// Its `Debug` never shows the token.
#[derive(clap::Args, Clone, Default)]
pub struct ClientArgs {
    /// Server address (host:port or URL).
    #[arg(
        long,
        env = "GOVLEDGER_ADDR",
        default_value = "127.0.0.1:50051",
        value_parser = parse_addr,
        global = true
    )]
    pub addr: String,
    /// Bearer token [env: GOVLEDGER_TOKEN].
    // The two token sources read their variables in `config`, not through
    // clap: clap would count a variable as a given flag, so GOVLEDGER_TOKEN
    // in the environment would make `--token-file` a conflict instead of
    // being overridden by it.
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// File holding the bearer token, e.g. the data dir's admin.token [env:
    /// GOVLEDGER_TOKEN_FILE]. Either flag wins over both variables; an empty
    /// variable counts as unset.
    #[arg(long, global = true, conflicts_with = "token")]
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

/// Where the bearer token comes from, strongest first.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    Flag(String),
    FlagFile(PathBuf),
    Env(String),
    EnvFile(PathBuf),
    None,
}

impl ClientArgs {
    /// Flags first, then GOVLEDGER_TOKEN, then GOVLEDGER_TOKEN_FILE; `env`
    /// looks a variable up (the process environment in [`Self::config`]).
    pub fn token_source(&self, env: impl Fn(&str) -> Option<String>) -> TokenSource {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(token) = &self.token {
            TokenSource::Flag(token.clone())
        } else if let Some(path) = &self.token_file {
            TokenSource::FlagFile(path.clone())
        } else if let Some(token) = set("GOVLEDGER_TOKEN") {
            TokenSource::Env(token)
        } else if let Some(path) = set("GOVLEDGER_TOKEN_FILE") {
            TokenSource::EnvFile(path.into())
        } else {
            TokenSource::None
        }
    }

    pub fn config(&self) -> anyhow::Result<ClientConfig> {
        let read = |path: &Path| -> anyhow::Result<String> {
            Ok(std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file {}", path.display()))?
                .trim()
                .to_owned())
        };
        let token = match self.token_source(|name| std::env::var(name).ok()) {
            TokenSource::Flag(token) | TokenSource::Env(token) => Some(token.trim().to_owned()),
            TokenSource::FlagFile(path) | TokenSource::EnvFile(path) => Some(read(&path)?),
            TokenSource::None => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "glt_0123456789abcdef_secretsecretsecret";

    #[test]
    fn debug_output_never_shows_a_token() {
        let args = ClientArgs {
            token: Some(TOKEN.into()),
            ..ClientArgs::default()
        };
        let config = ClientConfig {
            token: Some(TOKEN.into()),
            ..ClientConfig::default()
        };
        for text in [
            format!("{args:?}"),
            format!("{config:?}"),
            format!("{:?}", args.token_source(|_| None)),
            format!(
                "{:?}",
                ClientArgs::default().token_source(|_| Some(TOKEN.into()))
            ),
        ] {
            assert!(!text.contains("secret"), "{text}");
            assert!(text.contains("redacted"), "{text}");
        }
    }

    #[test]
    fn flags_win_then_the_token_then_the_token_file() {
        let env = |token: &'static str, file: &'static str| {
            move |name: &str| match name {
                "GOVLEDGER_TOKEN" => Some(token.to_owned()),
                "GOVLEDGER_TOKEN_FILE" => Some(file.to_owned()),
                _ => None,
            }
        };
        let none = ClientArgs::default();
        assert_eq!(
            none.token_source(env("t", "f")),
            TokenSource::Env("t".into())
        );
        assert_eq!(
            none.token_source(env(" ", "f")),
            TokenSource::EnvFile("f".into())
        );
        assert_eq!(none.token_source(env("", "")), TokenSource::None);
        let file = ClientArgs {
            token_file: Some("x".into()),
            ..ClientArgs::default()
        };
        assert_eq!(
            file.token_source(env("t", "f")),
            TokenSource::FlagFile("x".into())
        );
        let flag = ClientArgs {
            token: Some("k".into()),
            ..ClientArgs::default()
        };
        assert_eq!(
            flag.token_source(env("t", "f")),
            TokenSource::Flag("k".into())
        );
    }
}
