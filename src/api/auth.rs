//! Authentication and authorization at the gRPC edge: reads the credentials
//! from a request (the `authorization` header, or the TLS client
//! certificate) and asks [`Guard`] about them. Every RPC handler calls
//! [`Auth::check`] (or `authenticate` then `authorize`) before doing anything.

use std::sync::Arc;

use tonic::{Request, Status};

use crate::{
    Ledger, LedgerError,
    auth::{Action, Caller, Guard, LEGACY_ACTOR_HEADER},
};

/// Shared by every service of one server.
#[derive(Clone)]
pub struct Auth {
    ledger: Ledger,
    pub(crate) guard: Arc<Guard>,
    /// Client certificates were verified against a CA at the TLS handshake,
    /// so their common name may identify a principal.
    client_certificates: bool,
}

impl Auth {
    pub fn new(ledger: Ledger, client_certificates: bool) -> Auth {
        Auth {
            ledger,
            guard: Arc::new(Guard::default()),
            client_certificates,
        }
    }

    pub fn authenticate<T>(&self, request: &Request<T>, rpc: &str) -> Result<Caller, Status> {
        if request.metadata().contains_key(LEGACY_ACTOR_HEADER) {
            return Err(LedgerError::invalid(
                format!("{LEGACY_ACTOR_HEADER} header"),
                "is no longer accepted: the actor of an entry is the authenticated principal",
            )
            .into());
        }
        let authorization = request
            .metadata()
            .get("authorization")
            .map(|value| value.as_bytes());
        let cn = if self.client_certificates {
            certificate_cn(request)
        } else {
            None
        };
        Ok(self.ledger.with_access(|access| {
            self.guard
                .authenticate(access, authorization, cn.as_deref(), rpc)
        })?)
    }

    pub fn authorize(&self, caller: &Caller, action: Action, rpc: &str) -> Result<(), Status> {
        Ok(self.guard.authorize(caller, action, rpc)?)
    }

    /// Authenticates, then authorizes `action`.
    pub fn check<T>(
        &self,
        request: &Request<T>,
        rpc: &str,
        action: Action,
    ) -> Result<Caller, Status> {
        let caller = self.authenticate(request, rpc)?;
        self.authorize(&caller, action, rpc)?;
        Ok(caller)
    }
}

/// The common name of the verified client certificate, if any.
fn certificate_cn<T>(request: &Request<T>) -> Option<String> {
    let certs = request.peer_certs()?;
    let leaf = certs.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(cn)
}
