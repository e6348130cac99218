//! The `govledger.v1.Access` service: principals, roles and tokens. Every
//! change is an access entry in the ledger; the token secret exists only in
//! the CreateToken answer.

use tonic::{Request, Response, Status};

use super::{Auth, convert::timestamp};
use crate::{
    Ledger, LedgerError,
    auth::{self, Action},
    domain,
    governance::access::{GrantState, PrincipalState, TokenState},
    proto::v1::{self, PrincipalRolesSet, TokenRevoked, access_server, event::Kind},
};

pub use access_server::AccessServer;

pub struct AccessService {
    ledger: Ledger,
    auth: Auth,
}

impl AccessService {
    pub fn new(ledger: Ledger, auth: Auth) -> AccessService {
        AccessService { ledger, auth }
    }

    /// The principal's current roles, as an answer.
    fn principal(&self, name: &str) -> Option<v1::Principal> {
        let state = self.ledger.state();
        state.access().principal(name).map(|p| principal(name, p))
    }
}

fn grant(g: &GrantState) -> v1::Grant {
    v1::Grant {
        role: g.role as i32,
        scope: g.scope.clone(),
    }
}

fn principal(name: &str, p: &PrincipalState) -> v1::Principal {
    v1::Principal {
        name: name.to_owned(),
        grants: p.grants.iter().map(grant).collect(),
        roles_sequence: p.roles_sequence,
    }
}

fn token_info(id: &str, t: &TokenState) -> v1::TokenInfo {
    let revoked = t.revoked.as_ref();
    v1::TokenInfo {
        token_id: id.to_owned(),
        principal: t.principal.clone(),
        description: t.description.clone(),
        issued_sequence: t.issued_sequence,
        issued_at: Some(timestamp(t.issued_at_us)),
        issued_by: t.issued_by.clone(),
        revoked: revoked.is_some(),
        revoked_sequence: revoked.map_or(0, |r| r.sequence),
        revoked_at: revoked.map(|r| timestamp(r.recorded_at_us)),
        revoked_by: revoked.map(|r| r.revoked_by.clone()).unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl access_server::Access for AccessService {
    async fn create_token(
        &self,
        request: Request<v1::CreateTokenRequest>,
    ) -> Result<Response<v1::CreateTokenResponse>, Status> {
        let caller = self
            .auth
            .check(&request, "CreateToken", Action::ManageAccess)?;
        let r = request.into_inner();
        domain::principal(&r.principal, "", "principal")?;
        domain::grants(&r.grants, "")?;
        let (token, appended) = auth::issue_token(
            &self.ledger,
            caller.name,
            &r.principal,
            r.grants,
            &r.description,
        )
        .await?;
        let sequence = appended.entries.last().map_or(0, |e| e.envelope.sequence);
        tracing::info!(principal = %r.principal, token_id = %token.id, sequence, "token issued");
        Ok(Response::new(v1::CreateTokenResponse {
            token: token.to_string(),
            token_id: token.id.clone(),
            principal: self.principal(&r.principal),
            sequence,
        }))
    }

    async fn set_roles(
        &self,
        request: Request<v1::SetRolesRequest>,
    ) -> Result<Response<v1::SetRolesResponse>, Status> {
        let caller = self
            .auth
            .check(&request, "SetRoles", Action::ManageAccess)?;
        let r = request.into_inner();
        domain::principal(&r.principal, "", "principal")?;
        domain::grants(&r.grants, "")?;
        let appended = auth::append_access(
            &self.ledger,
            caller.name,
            vec![Kind::PrincipalRolesSet(PrincipalRolesSet {
                principal: r.principal.clone(),
                grants: r.grants,
            })],
        )
        .await?;
        Ok(Response::new(v1::SetRolesResponse {
            principal: self.principal(&r.principal),
            sequence: appended.entries.last().map_or(0, |e| e.envelope.sequence),
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<v1::RevokeTokenRequest>,
    ) -> Result<Response<v1::RevokeTokenResponse>, Status> {
        let caller = self
            .auth
            .check(&request, "RevokeToken", Action::ManageAccess)?;
        let r = request.into_inner();
        if !domain::is_token_id(&r.token_id) {
            return Err(LedgerError::invalid("token_id", domain::TOKEN_ID_RULE).into());
        }
        let owner = self
            .ledger
            .state()
            .access()
            .token(&r.token_id)
            .map(|t| t.principal.clone())
            .ok_or_else(|| LedgerError::NotFound(format!("token {} does not exist", r.token_id)))?;
        let appended = auth::append_access(
            &self.ledger,
            caller.name,
            vec![Kind::TokenRevoked(TokenRevoked {
                principal: owner,
                token_id: r.token_id.clone(),
                reason: r.reason,
            })],
        )
        .await?;
        let sequence = appended.entries.last().map_or(0, |e| e.envelope.sequence);
        tracing::info!(token_id = %r.token_id, sequence, "token revoked");
        Ok(Response::new(v1::RevokeTokenResponse { sequence }))
    }

    async fn list_tokens(
        &self,
        request: Request<v1::ListTokensRequest>,
    ) -> Result<Response<v1::ListTokensResponse>, Status> {
        self.auth
            .check(&request, "ListTokens", Action::ManageAccess)?;
        let r = request.into_inner();
        let state = self.ledger.state();
        let tokens = state
            .access()
            .tokens
            .iter()
            .filter(|(_, t)| r.principal.is_empty() || t.principal == r.principal)
            .map(|(id, t)| token_info(id, t))
            .collect();
        Ok(Response::new(v1::ListTokensResponse { tokens }))
    }

    async fn list_principals(
        &self,
        request: Request<v1::ListPrincipalsRequest>,
    ) -> Result<Response<v1::ListPrincipalsResponse>, Status> {
        self.auth
            .check(&request, "ListPrincipals", Action::ManageAccess)?;
        let state = self.ledger.state();
        let principals = state
            .access()
            .principals
            .iter()
            .map(|(name, p)| principal(name, p))
            .collect();
        Ok(Response::new(v1::ListPrincipalsResponse { principals }))
    }

    async fn who_am_i(
        &self,
        request: Request<v1::WhoAmIRequest>,
    ) -> Result<Response<v1::WhoAmIResponse>, Status> {
        let caller = self.auth.check(&request, "WhoAmI", Action::Read)?;
        Ok(Response::new(v1::WhoAmIResponse {
            principal: Some(v1::Principal {
                name: caller.name.to_string(),
                grants: caller.grants.iter().map(grant).collect(),
                roles_sequence: self
                    .principal(caller.name.as_str())
                    .map_or(0, |p| p.roles_sequence),
            }),
            authenticated_by: caller.credential.to_string(),
        }))
    }

    async fn get_access_stats(
        &self,
        request: Request<v1::GetAccessStatsRequest>,
    ) -> Result<Response<v1::AccessStats>, Status> {
        self.auth
            .check(&request, "GetAccessStats", Action::ManageAccess)?;
        let (unauthenticated, permission_denied) = self.auth.guard.refusals();
        Ok(Response::new(v1::AccessStats {
            unauthenticated,
            permission_denied,
        }))
    }
}
