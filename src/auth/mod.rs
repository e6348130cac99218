//! Identity and access: who is calling, and may they do this?
//!
//! - [`token`]: the bearer token format, its generation and its check.
//! - [`Caller`]: the authenticated principal of one request, with its grants.
//! - [`Action`]: what an RPC needs, checked by [`Guard::authorize`].
//! - [`Guard`]: authenticates requests (a token, or a client certificate
//!   mapped to a principal), authorizes actions, and counts and logs every
//!   refusal (never with the token).
//! - [`issue_token`], [`bootstrap`]: the writes that create access, shared
//!   by the Access service, first start, and the offline CLI.
//!
//! Principals, roles and tokens are ledger entries folded into
//! [`AccessState`]; nothing here keeps access data of its own.

pub mod token;

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use crate::{
    Ledger, LedgerError,
    domain::{ActorName, AppendItem, EventKind, ValidEvent},
    governance::access::{AccessState, GrantState},
    ledger::Appended,
    proto::v1::{Event, Grant, PrincipalRolesSet, Role, TokenIssued, event::Kind},
};
pub use token::{NewToken, PresentedToken, TOKEN_PREFIX};

/// The header the actor was once named by; now refused, so that a client
/// still sending it learns that it is not what its entries will say.
pub const LEGACY_ACTOR_HEADER: &str = "x-govledger-actor";
/// The principal first start creates.
pub const BOOTSTRAP_PRINCIPAL: &str = "admin";
/// Where first start writes the bootstrap admin token, inside the data dir.
pub const BOOTSTRAP_TOKEN_FILE: &str = "admin.token";

/// How the caller proved who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    Token { id: String },
    ClientCertificate,
}

impl std::fmt::Display for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Token { id } => write!(f, "token {id}"),
            Credential::ClientCertificate => f.write_str("client certificate"),
        }
    }
}

/// The authenticated principal of one request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: ActorName,
    pub grants: Vec<GrantState>,
    pub credential: Credential,
}

impl Caller {
    fn holds(&self, role: Role, subject: &str) -> bool {
        self.grants
            .iter()
            .any(|g| g.role == role && g.covers(subject))
    }
}

/// What a call needs.
#[derive(Clone, Copy, Debug)]
pub enum Action<'a> {
    /// Reading anything: every role may.
    Read,
    /// Appending an event of `kind` about `subject`.
    Write { kind: EventKind, subject: &'a str },
    /// Managing principals and tokens: unscoped admin.
    ManageAccess,
}

/// The role that may append events of `kind`.
pub fn role_for(kind: EventKind) -> Role {
    match kind {
        EventKind::VersionRegistered | EventKind::EvalRecorded | EventKind::FeedbackRecorded => {
            Role::Recorder
        }
        EventKind::ApprovalRecorded => Role::Approver,
        EventKind::DeploymentRecorded => Role::Deployer,
        EventKind::IncidentOpened | EventKind::IncidentResolved => Role::Responder,
        EventKind::PolicySet
        | EventKind::PrincipalRolesSet
        | EventKind::TokenIssued
        | EventKind::TokenRevoked => Role::Admin,
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Unspecified => "unspecified",
        Role::Recorder => "recorder",
        Role::Approver => "approver",
        Role::Deployer => "deployer",
        Role::Responder => "responder",
        Role::Auditor => "auditor",
        Role::Admin => "admin",
    }
}

pub fn parse_role(name: &str) -> Option<Role> {
    [
        Role::Recorder,
        Role::Approver,
        Role::Deployer,
        Role::Responder,
        Role::Auditor,
        Role::Admin,
    ]
    .into_iter()
    .find(|r| role_name(*r) == name)
}

/// Authenticates and authorizes; counts refusals. One per server.
#[derive(Debug, Default)]
pub struct Guard {
    unauthenticated: AtomicU64,
    permission_denied: AtomicU64,
}

impl Guard {
    /// The caller presenting `authorization` (the header's value, if any) or,
    /// failing that, a client certificate with common name `certificate_cn`.
    pub fn authenticate(
        &self,
        access: &AccessState,
        authorization: Option<&[u8]>,
        certificate_cn: Option<&str>,
        rpc: &str,
    ) -> Result<Caller, LedgerError> {
        let result = authenticate(access, authorization, certificate_cn);
        if let Err(error) = &result {
            self.unauthenticated.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(rpc, reason = %error, "refused: unauthenticated");
        }
        result
    }

    /// Whether `caller` may take `action`; PERMISSION_DENIED names the
    /// missing role and scope.
    pub fn authorize(&self, caller: &Caller, action: Action, rpc: &str) -> Result<(), LedgerError> {
        let refusal = match action {
            Action::Read => (caller.grants.is_empty())
                .then(|| format!("{} holds no role; every role may read", caller.name)),
            Action::Write { kind, subject } => {
                let role = role_for(kind);
                (!caller.holds(role, subject)).then(|| {
                    format!(
                        "{} may not append {}: it needs the {} role for subject {subject}",
                        caller.name,
                        kind.field_name(),
                        role_name(role)
                    )
                })
            }
            Action::ManageAccess => (!unscoped_admin(caller)).then(|| {
                    format!(
                        "{} may not manage principals or tokens: it needs the admin role without a scope",
                        caller.name
                    )
                }),
        };
        match refusal {
            None => Ok(()),
            Some(message) => {
                self.permission_denied.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(rpc, principal = %caller.name, reason = %message, "refused: permission denied");
                Err(LedgerError::PermissionDenied(message))
            }
        }
    }

    /// (unauthenticated, permission denied) refusals so far.
    pub fn refusals(&self) -> (u64, u64) {
        (
            self.unauthenticated.load(Ordering::Relaxed),
            self.permission_denied.load(Ordering::Relaxed),
        )
    }
}

fn unscoped_admin(caller: &Caller) -> bool {
    caller
        .grants
        .iter()
        .any(|g| g.role == Role::Admin && g.scope.is_empty())
}

fn authenticate(
    access: &AccessState,
    authorization: Option<&[u8]>,
    certificate_cn: Option<&str>,
) -> Result<Caller, LedgerError> {
    let unauthenticated = |m: String| Err(LedgerError::Unauthenticated(m));
    if let Some(header) = authorization {
        let Some(token) = std::str::from_utf8(header).ok().and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        }) else {
            return unauthenticated("authorization header: must be \"Bearer <token>\"".to_owned());
        };
        let Some(presented) = PresentedToken::parse(token.trim()) else {
            return unauthenticated(format!(
                "authorization header: the token is malformed (expected {TOKEN_PREFIX}<16 hex>_<64 hex>)"
            ));
        };
        let Some(stored) = access.token(presented.id) else {
            return unauthenticated("authorization header: the token is not valid".to_owned());
        };
        if !presented.matches(&stored.secret_hash) {
            return unauthenticated("authorization header: the token is not valid".to_owned());
        }
        if let Some(revocation) = &stored.revoked {
            return unauthenticated(format!(
                "authorization header: token {} was revoked by entry {}",
                presented.id, revocation.sequence
            ));
        }
        return caller(
            access,
            &stored.principal,
            Credential::Token {
                id: presented.id.to_owned(),
            },
        );
    }
    if let Some(cn) = certificate_cn {
        return caller(access, cn, Credential::ClientCertificate);
    }
    unauthenticated(
        "no credentials: send \"authorization: Bearer <token>\" (or a client certificate)"
            .to_owned(),
    )
}

fn caller(access: &AccessState, name: &str, credential: Credential) -> Result<Caller, LedgerError> {
    let principal = access.principal(name).filter(|p| !p.grants.is_empty());
    let (Some(principal), Ok(actor)) = (principal, ActorName::parse(name)) else {
        return Err(LedgerError::Unauthenticated(format!(
            "{credential} names principal {name:?}, which holds no roles"
        )));
    };
    Ok(Caller {
        name: actor,
        grants: principal.grants.clone(),
        credential,
    })
}

/// Issues a token for `principal`, first setting its roles when `grants` is
/// non-empty (one atomic group). Returns the token (to show once) and the
/// appended entries.
pub async fn issue_token(
    ledger: &Ledger,
    actor: ActorName,
    principal: &str,
    grants: Vec<Grant>,
    description: &str,
) -> Result<(NewToken, Appended), LedgerError> {
    let token = NewToken::generate().map_err(|e| LedgerError::Io {
        context: "generating a token".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut events = Vec::new();
    if !grants.is_empty() {
        events.push(Kind::PrincipalRolesSet(PrincipalRolesSet {
            principal: principal.to_owned(),
            grants,
        }));
    }
    events.push(Kind::TokenIssued(TokenIssued {
        principal: principal.to_owned(),
        token_id: token.id.clone(),
        secret_hash: token.secret_hash().to_vec(),
        description: description.to_owned(),
    }));
    let appended = append_access(ledger, actor, events).await?;
    Ok((token, appended))
}

/// Appends access events (already built by this module or the Access
/// service) as one atomic group, validated like any other event.
pub async fn append_access(
    ledger: &Ledger,
    actor: ActorName,
    events: Vec<Kind>,
) -> Result<Appended, LedgerError> {
    let batch = events.len() > 1;
    let items = events
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let path = if batch {
                format!("items[{i}].event")
            } else {
                "event".to_owned()
            };
            Ok(AppendItem {
                event: ValidEvent::parse(Some(Event { kind: Some(kind) }), &path)?,
                idempotency_key: None,
                expected_subject_sequence: None,
            })
        })
        .collect::<Result<Vec<_>, LedgerError>>()?;
    ledger.append(actor, items, None, batch).await
}

/// First start: when the ledger has no principal at all, creates principal
/// [`BOOTSTRAP_PRINCIPAL`] with the admin role and a token for it, written to
/// [`BOOTSTRAP_TOKEN_FILE`] in the data dir (readable by its owner only).
/// Returns the file's path when it did so.
pub async fn bootstrap(ledger: &Ledger) -> Result<Option<PathBuf>, LedgerError> {
    if !ledger.state().access().principals.is_empty() {
        return Ok(None);
    }
    let path = ledger.data_dir().join(BOOTSTRAP_TOKEN_FILE);
    let grants = vec![Grant {
        role: Role::Admin as i32,
        scope: String::new(),
    }];
    let (token, _) = issue_token(
        ledger,
        ActorName::system(),
        BOOTSTRAP_PRINCIPAL,
        grants,
        "bootstrap admin token, created at first start",
    )
    .await?;
    // Written after the entries are durable: a crash in between leaves an
    // admin without a saved token, which `govledger token create --data-dir`
    // on the stopped data dir repairs; the reverse order could leave a file
    // holding a token the ledger never issued.
    write_private(&path, &format!("{token}\n")).map_err(|source| LedgerError::Io {
        context: format!("writing the bootstrap token to {}", path.display()),
        source,
    })?;
    tracing::warn!(
        path = %path.display(),
        "no principals yet: created principal \"admin\"; its token is in this file (readable by its owner only)"
    );
    Ok(Some(path))
}

/// Writes `contents` to `path` atomically, readable and writable by the
/// owner only.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(role: Role, scope: &str) -> GrantState {
        GrantState {
            role,
            scope: scope.to_owned(),
        }
    }

    fn caller(grants: Vec<GrantState>) -> Caller {
        Caller {
            name: ActorName::parse("p").unwrap(),
            grants,
            credential: Credential::ClientCertificate,
        }
    }

    #[test]
    fn scopes_cover_their_prefix_only() {
        let g = grant(Role::Recorder, "team-a/*");
        assert!(g.covers("team-a/x"));
        assert!(g.covers("team-a/x/y"));
        assert!(!g.covers("team-ab/x"));
        assert!(!g.covers("team-b/x"));
        assert!(!g.covers("team-a"));
        assert!(grant(Role::Recorder, "").covers("anything"));
        assert!(grant(Role::Recorder, "a/b").covers("a/b"));
        assert!(!grant(Role::Recorder, "a/b").covers("a/b/c"));
    }

    #[test]
    fn writes_need_the_kind_role_within_scope() {
        let guard = Guard::default();
        let ci = caller(vec![grant(Role::Recorder, "team-a/*")]);
        let write = |kind, subject| Action::Write { kind, subject };
        assert!(
            guard
                .authorize(&ci, write(EventKind::EvalRecorded, "team-a/x"), "t")
                .is_ok()
        );
        let denied = guard
            .authorize(&ci, write(EventKind::EvalRecorded, "team-b/x"), "t")
            .unwrap_err()
            .to_string();
        assert!(
            denied.contains("recorder role for subject team-b/x"),
            "{denied}"
        );
        let denied = guard
            .authorize(&ci, write(EventKind::ApprovalRecorded, "team-a/x"), "t")
            .unwrap_err()
            .to_string();
        assert!(denied.contains("approver"), "{denied}");
        assert!(guard.authorize(&ci, Action::ManageAccess, "t").is_err());
        assert!(guard.authorize(&ci, Action::Read, "t").is_ok());
        assert_eq!(guard.refusals(), (0, 3));
    }

    #[test]
    fn only_an_unscoped_admin_manages_access_or_sets_default_policies() {
        let guard = Guard::default();
        let scoped = caller(vec![grant(Role::Admin, "team-a/*")]);
        assert!(guard.authorize(&scoped, Action::ManageAccess, "t").is_err());
        let policy = |subject| Action::Write {
            kind: EventKind::PolicySet,
            subject,
        };
        assert!(guard.authorize(&scoped, policy("team-a/x"), "t").is_ok());
        assert!(guard.authorize(&scoped, policy("*"), "t").is_err());
        let admin = caller(vec![grant(Role::Admin, "")]);
        assert!(guard.authorize(&admin, Action::ManageAccess, "t").is_ok());
        assert!(guard.authorize(&admin, policy("*"), "t").is_ok());
    }

    #[test]
    fn every_role_is_named_and_parses_back() {
        for role in [
            Role::Recorder,
            Role::Approver,
            Role::Deployer,
            Role::Responder,
            Role::Auditor,
            Role::Admin,
        ] {
            assert_eq!(parse_role(role_name(role)), Some(role));
        }
        assert_eq!(parse_role("root"), None);
    }
}
