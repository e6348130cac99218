//! TLS and mutual TLS, with certificates generated here (rcgen): the server
//! built as `govledger serve --tls-cert --tls-key [--client-ca]` builds it,
//! and clients configured as the CLI configures them.

use std::{net::SocketAddr, path::Path};

use govledger::{
    Ledger, LedgerConfig,
    connect::{ClientConfig, Connection},
    proto::v1::{GetHeadRequest, Grant, Role, SetRolesRequest, WhoAmIRequest},
    server::{ServeOptions, run_with},
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    Code,
    transport::{Certificate, Identity, ServerTlsConfig},
};

use crate::helpers::*;

/// A CA and what it signed, as PEM files in a temp dir.
struct Pki {
    dir: TempDir,
}

impl Pki {
    /// A CA, a server certificate for localhost, and client certificates
    /// with the given common names.
    fn new(clients: &[&str]) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, issuer) = ca("govledger test CA");
        std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        for cn in clients {
            write_client(dir.path(), cn, &issuer);
        }
        // A client certificate from a CA the server does not trust.
        let (_, stranger_ca) = ca("someone else's CA");
        write_client(dir.path(), "untrusted", &stranger_ca);
        Pki { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn server_tls(&self, client_ca: bool) -> ServerTlsConfig {
        let read = |n: &str| std::fs::read(self.path(n)).unwrap();
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(read("server.pem"), read("server.key")));
        if client_ca {
            config = config
                .client_ca_root(Certificate::from_pem(read("ca.pem")))
                .client_auth_optional(true);
        }
        config
    }

    fn client(&self, addr: SocketAddr, token: Option<&str>, cert: Option<&str>) -> ClientConfig {
        ClientConfig {
            addr: format!("https://localhost:{}", addr.port()),
            token: token.map(str::to_owned),
            ca_cert: Some(self.path("ca.pem")),
            client_cert: cert.map(|cn| self.path(&format!("{cn}.pem"))),
            client_key: cert.map(|cn| self.path(&format!("{cn}.key"))),
            tls_domain: None,
        }
    }
}

fn ca(cn: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn write_client(dir: &Path, cn: &str, issuer: &Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join(format!("{cn}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{cn}.key")), key.serialize_pem()).unwrap();
}

/// A TLS server over a fresh data dir; returns its address, the bootstrap
/// admin token and what stops it.
struct TlsServer {
    addr: SocketAddr,
    admin: String,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    _data: TempDir,
}

impl TlsServer {
    async fn start(pki: &Pki, client_ca: bool) -> TlsServer {
        let data = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(LedgerConfig::new(data.path())).unwrap();
        govledger::auth::bootstrap(&ledger).await.unwrap();
        let admin = std::fs::read_to_string(data.path().join("admin.token")).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ServeOptions {
            tls: Some(pki.server_tls(client_ca)),
            client_certificates: client_ca,
        };
        let handle = tokio::spawn(run_with(listener, ledger, options, async {
            let _ = stopped.await;
        }));
        TlsServer {
            addr,
            admin: admin.trim().to_owned(),
            stop: Some(stop),
            handle: Some(handle),
            _data: data,
        }
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        within("the TLS server to stop", self.handle.take().unwrap())
            .await
            .unwrap()
            .unwrap();
    }
}

async fn connect(config: ClientConfig) -> Connection {
    within("connecting over TLS", config.connect())
        .await
        .unwrap_or_else(|e| panic!("connecting over TLS: {e:#}"))
}

#[tokio::test]
async fn tls_serves_the_api_and_tokens_work_over_it() {
    let pki = Pki::new(&[]);
    let server = TlsServer::start(&pki, false).await;

    let conn = connect(pki.client(server.addr, Some(&server.admin), None)).await;
    let me = conn
        .access()
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.principal.clone().unwrap().name, "admin");
    assert!(me.authenticated_by.starts_with("token "), "{me:?}");

    // Plaintext to the TLS port gets no answer.
    let plain = ClientConfig {
        addr: format!("http://{}", server.addr),
        token: Some(server.admin.clone()),
        ..Default::default()
    };
    let refused = match within("plaintext to a TLS port", plain.connect()).await {
        Err(_) => true,
        Ok(conn) => conn.ledger().get_head(GetHeadRequest {}).await.is_err(),
    };
    assert!(refused, "a plaintext client was served by a TLS server");
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_certificate_names_its_principal() {
    let pki = Pki::new(&["runner-1", "stranger"]);
    let server = TlsServer::start(&pki, true).await;
    let admin = connect(pki.client(server.addr, Some(&server.admin), None)).await;
    admin
        .access()
        .set_roles(SetRolesRequest {
            principal: "runner-1".into(),
            grants: vec![Grant {
                role: Role::Recorder as i32,
                scope: "ci/*".into(),
            }],
        })
        .await
        .unwrap();

    // mTLS alone authenticates runner-1, which writes as itself.
    let runner = connect(pki.client(server.addr, None, Some("runner-1"))).await;
    let me = runner
        .access()
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.principal.unwrap().name, "runner-1");
    assert_eq!(me.authenticated_by, "client certificate");
    let entry = runner
        .ledger()
        .append(req(version("ci/prompt")))
        .await
        .unwrap()
        .into_inner()
        .entry
        .unwrap();
    assert_eq!(entry.actor, "runner-1");
    // Its scope still applies.
    assert_status(
        runner.ledger().append(req(version("other/prompt"))).await,
        Code::PermissionDenied,
        "recorder role for subject other/prompt",
    );

    // A verified certificate for a principal without roles is not enough.
    let stranger = connect(pki.client(server.addr, None, Some("stranger"))).await;
    assert_status(
        stranger.ledger().get_head(GetHeadRequest {}).await,
        Code::Unauthenticated,
        "\"stranger\", which holds no roles",
    );
    // Neither certificate nor token.
    let nobody = connect(pki.client(server.addr, None, None)).await;
    assert_status(
        nobody.ledger().get_head(GetHeadRequest {}).await,
        Code::Unauthenticated,
        "no credentials",
    );
    // A certificate from an untrusted CA fails the handshake.
    let untrusted = pki.client(server.addr, None, Some("untrusted"));
    let refused = match within("an untrusted client certificate", untrusted.connect()).await {
        Err(_) => true,
        Ok(conn) => conn.ledger().get_head(GetHeadRequest {}).await.is_err(),
    };
    assert!(refused, "an untrusted client certificate was accepted");
    server.shutdown().await;
}
