//! Who may act: principals, their roles, and their tokens, folded from the
//! access entries (`PrincipalRolesSet`, `TokenIssued`, `TokenRevoked`).
//!
//! Like the rest of the state it is a pure function of the log, so the
//! history of access can be asked "as of" any moment and rebuilt from entry 1.
//! Authentication (`crate::auth`) reads it; only the fold here changes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{EntryMeta, Rejection, state::State};
use crate::proto::v1::{PrincipalRolesSet, Role, TokenIssued, TokenRevoked};

/// Every principal and every token ever issued.
#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccessState {
    pub principals: BTreeMap<String, PrincipalState>,
    /// token id → token. Revoked tokens stay, for the audit trail.
    pub tokens: BTreeMap<String, TokenState>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrincipalState {
    pub grants: Vec<GrantState>,
    /// The entry that set these grants.
    pub roles_sequence: u64,
    pub roles_set_by: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GrantState {
    #[serde(with = "crate::governance::codec::proto_enum")]
    pub role: Role,
    /// "" = every subject; "a/*" = subjects under "a/"; else one subject.
    pub scope: String,
}

impl GrantState {
    /// Whether this grant covers `subject`.
    pub fn covers(&self, subject: &str) -> bool {
        if self.scope.is_empty() {
            return true;
        }
        match self.scope.strip_suffix('*') {
            // "a/*": anything under "a/" (the prefix keeps its slash, so
            // "a/*" never covers "ab/x").
            Some(prefix) => subject.starts_with(prefix),
            None => subject == self.scope,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenState {
    pub principal: String,
    /// Hex of BLAKE3(token domain || secret); the secret itself is never kept.
    pub secret_hash: String,
    pub description: String,
    pub issued_sequence: u64,
    pub issued_at_us: i64,
    pub issued_by: String,
    pub revoked: Option<Revocation>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Revocation {
    pub sequence: u64,
    pub recorded_at_us: i64,
    pub revoked_by: String,
    pub reason: String,
}

impl AccessState {
    pub fn principal(&self, name: &str) -> Option<&PrincipalState> {
        self.principals.get(name)
    }

    pub fn token(&self, id: &str) -> Option<&TokenState> {
        self.tokens.get(id)
    }

    /// Whether some principal holds the admin role over every subject.
    fn has_unscoped_admin_besides(&self, principal: &str) -> bool {
        self.principals.iter().any(|(name, p)| {
            name != principal
                && p.grants
                    .iter()
                    .any(|g| g.role == Role::Admin && g.scope.is_empty())
        })
    }

    pub(super) fn roles_set(&mut self, meta: &EntryMeta, e: &PrincipalRolesSet) -> bool {
        let mut grants: Vec<GrantState> = e
            .grants
            .iter()
            .map(|g| GrantState {
                role: Role::try_from(g.role).unwrap_or_default(),
                scope: g.scope.clone(),
            })
            .collect();
        grants.sort();
        grants.dedup();
        self.principals.insert(
            e.principal.clone(),
            PrincipalState {
                grants,
                roles_sequence: meta.sequence,
                roles_set_by: meta.actor.clone(),
            },
        );
        true
    }

    pub(super) fn token_issued(&mut self, meta: &EntryMeta, e: &TokenIssued) -> bool {
        if self.tokens.contains_key(&e.token_id) {
            return false;
        }
        self.tokens.insert(
            e.token_id.clone(),
            TokenState {
                principal: e.principal.clone(),
                secret_hash: hex(&e.secret_hash),
                description: e.description.clone(),
                issued_sequence: meta.sequence,
                issued_at_us: meta.recorded_at_us,
                issued_by: meta.actor.clone(),
                revoked: None,
            },
        );
        true
    }

    pub(super) fn token_revoked(&mut self, meta: &EntryMeta, e: &TokenRevoked) -> bool {
        match self.tokens.get_mut(&e.token_id) {
            Some(token) if token.revoked.is_none() && token.principal == e.principal => {
                token.revoked = Some(Revocation {
                    sequence: meta.sequence,
                    recorded_at_us: meta.recorded_at_us,
                    revoked_by: meta.actor.clone(),
                    reason: e.reason.clone(),
                });
                true
            }
            _ => false,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ----- deciding -----

pub(super) fn decide_roles_set(state: &State, e: &PrincipalRolesSet) -> Result<(), Rejection> {
    let access = state.access();
    let keeps_admin = e
        .grants
        .iter()
        .any(|g| g.role == Role::Admin as i32 && g.scope.is_empty());
    let was_admin = access.principal(&e.principal).is_some_and(|p| {
        p.grants
            .iter()
            .any(|g| g.role == Role::Admin && g.scope.is_empty())
    });
    if was_admin && !keeps_admin && !access.has_unscoped_admin_besides(&e.principal) {
        return Err(Rejection::new(format!(
            "principal {} is the last admin; grant another principal the admin role first",
            e.principal
        )));
    }
    Ok(())
}

pub(super) fn decide_token_issued(state: &State, e: &TokenIssued) -> Result<(), Rejection> {
    let access = state.access();
    if access.token(&e.token_id).is_some() {
        return Err(Rejection::new(format!(
            "token id {} is already issued",
            e.token_id
        )));
    }
    if access.principal(&e.principal).is_none() {
        return Err(Rejection::new(format!(
            "principal {} has no roles; give it roles first (grants in the same request)",
            e.principal
        )));
    }
    Ok(())
}

pub(super) fn decide_token_revoked(state: &State, e: &TokenRevoked) -> Result<(), Rejection> {
    match state.access().token(&e.token_id) {
        None => Err(Rejection::new(format!(
            "token {} does not exist",
            e.token_id
        ))),
        Some(t) if t.principal != e.principal => Err(Rejection::new(format!(
            "token {} belongs to {}, not {}",
            e.token_id, t.principal, e.principal
        ))),
        Some(t) if t.revoked.is_some() => Err(Rejection::new(format!(
            "token {} is already revoked",
            e.token_id
        ))),
        Some(_) => Ok(()),
    }
}
