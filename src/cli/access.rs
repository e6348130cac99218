//! `govledger token …` and `govledger principal …`: through the Access
//! service as an admin, or offline on a stopped data dir (bootstrap and
//! recovery: the data dir's lock proves no server is running).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;
use clap::{Args, Subcommand};
use govledger::{
    Ledger, LedgerConfig,
    auth::{self, parse_role, role_name},
    connect::ClientArgs,
    domain::ActorName,
    governance::access::{AccessState, GrantState},
    proto::v1::{
        self, CreateTokenRequest, Grant, ListPrincipalsRequest, ListTokensRequest,
        PrincipalRolesSet, RevokeTokenRequest, Role, SetRolesRequest, TokenRevoked, event::Kind,
    },
};

use super::{Output, online, runtime, say, timestamp_text};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a bearer token for a principal (setting its roles when --role is given).
    /// The token is printed once, on standard output.
    Create {
        /// The principal (created when it has no roles yet; then --role is required).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        grants: GrantArgs,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        target: Target,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this principal's tokens.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a token at once.
    Revoke {
        /// The token id (the 16 hex digits after "glt_").
        token_id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
pub enum PrincipalCommand {
    /// Replace a principal's roles (e.g. one that authenticates with a client certificate).
    Set {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        grants: GrantArgs,
        #[command(flatten)]
        target: Target,
    },
    /// List principals and their roles.
    List {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Args, Clone, Debug)]
pub struct GrantArgs {
    /// A role: recorder, approver, deployer, responder, auditor or admin. Repeatable.
    #[arg(long = "role", value_parser = parse_role_arg)]
    roles: Vec<Role>,
    /// Limit every --role to these subjects ("team-a/*" or one subject). Repeatable.
    #[arg(long = "scope")]
    scopes: Vec<String>,
}

fn parse_role_arg(value: &str) -> Result<Role, String> {
    parse_role(value).ok_or_else(|| {
        format!("unknown role {value:?}: expected recorder, approver, deployer, responder, auditor or admin")
    })
}

impl GrantArgs {
    fn grants(&self) -> Vec<Grant> {
        let scopes = if self.scopes.is_empty() {
            vec![String::new()]
        } else {
            self.scopes.clone()
        };
        self.roles
            .iter()
            .flat_map(|role| {
                scopes.iter().map(move |scope| Grant {
                    role: *role as i32,
                    scope: scope.clone(),
                })
            })
            .collect()
    }
}

/// Online (the client flags) or offline (--data-dir of a stopped server).
#[derive(Args, Clone, Debug)]
pub struct Target {
    /// Work offline on this stopped server's data directory instead of
    /// through the API.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn token(command: TokenCommand, client: &ClientArgs, out: Output) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            grants,
            description,
            target,
        } => {
            let grants = grants.grants();
            let created = match &target.data_dir {
                Some(dir) => offline(dir, |ledger, actor| async move {
                    check_principal_and_grants(&name, &grants)?;
                    let (token, appended) =
                        auth::issue_token(&ledger, actor, &name, grants, &description).await?;
                    let sequence = appended.entries.last().map_or(0, |e| e.envelope.sequence);
                    let state = ledger.state();
                    let principal = principal_answer(state.access(), &name);
                    Ok(v1::CreateTokenResponse {
                        token: token.to_string(),
                        token_id: token.id.clone(),
                        principal,
                        sequence,
                    })
                })?,
                None => online(client, |conn| async move {
                    Ok(conn
                        .access()
                        .create_token(CreateTokenRequest {
                            principal: name,
                            grants,
                            description,
                        })
                        .await?
                        .into_inner())
                })?,
            };
            let principal = created.principal.clone().unwrap_or_default();
            // The token exists nowhere else: failing to hand it over is an
            // error (the caller should revoke it), not a closed pipe to shrug at.
            let shown = if out.json {
                serde_json::json!({
                    "token": created.token,
                    "token_id": created.token_id,
                    "principal": principal.name,
                    "grants": grants_text(&principal.grants),
                    "sequence": created.sequence,
                })
                .to_string()
            } else {
                created.token.clone()
            };
            writeln!(std::io::stdout().lock(), "{shown}").with_context(|| {
                format!(
                    "token {} was issued (entry {}) but could not be printed; revoke it",
                    created.token_id, created.sequence
                )
            })?;
            if !out.json {
                eprintln!(
                    "token {} for {} ({}) issued by entry {}; it is shown only this once",
                    created.token_id,
                    principal.name,
                    grants_text(&principal.grants).join(", "),
                    created.sequence
                );
            }
        }
        TokenCommand::List { name, target } => {
            let tokens = match &target.data_dir {
                Some(dir) => read_offline(dir, |access| {
                    access
                        .tokens
                        .iter()
                        .filter(|(_, t)| name.as_ref().is_none_or(|n| &t.principal == n))
                        .map(|(id, t)| v1::TokenInfo {
                            token_id: id.clone(),
                            principal: t.principal.clone(),
                            description: t.description.clone(),
                            issued_sequence: t.issued_sequence,
                            issued_by: t.issued_by.clone(),
                            revoked: t.revoked.is_some(),
                            revoked_sequence: t.revoked.as_ref().map_or(0, |r| r.sequence),
                            ..Default::default()
                        })
                        .collect()
                })?,
                None => online(client, |conn| async move {
                    Ok(conn
                        .access()
                        .list_tokens(ListTokensRequest {
                            principal: name.unwrap_or_default(),
                        })
                        .await?
                        .into_inner()
                        .tokens)
                })?,
            };
            if out.json {
                for t in &tokens {
                    out.line(&serde_json::json!({
                        "token_id": t.token_id,
                        "principal": t.principal,
                        "description": t.description,
                        "issued_sequence": t.issued_sequence,
                        "issued_at": t.issued_at.as_ref().map(timestamp_text),
                        "issued_by": t.issued_by,
                        "revoked": t.revoked,
                        "revoked_sequence": t.revoked_sequence,
                    }));
                }
            } else {
                say!(
                    "{:<16}  {:<24}  {:<8}  {:>8}  DESCRIPTION",
                    "TOKEN ID",
                    "PRINCIPAL",
                    "STATUS",
                    "ISSUED"
                );
                for t in &tokens {
                    say!(
                        "{:<16}  {:<24}  {:<8}  {:>8}  {}",
                        t.token_id,
                        t.principal,
                        if t.revoked { "revoked" } else { "active" },
                        t.issued_sequence,
                        t.description
                    );
                }
            }
        }
        TokenCommand::Revoke {
            token_id,
            reason,
            target,
        } => {
            let sequence = match &target.data_dir {
                Some(dir) => offline(dir, |ledger, actor| async move {
                    let owner = ledger
                        .state()
                        .access()
                        .token(&token_id)
                        .map(|t| t.principal.clone())
                        .ok_or_else(|| anyhow::anyhow!("token {token_id} does not exist"))?;
                    let appended = auth::append_access(
                        &ledger,
                        actor,
                        vec![Kind::TokenRevoked(TokenRevoked {
                            principal: owner,
                            token_id: token_id.clone(),
                            reason,
                        })],
                    )
                    .await?;
                    Ok(appended.entries.last().map_or(0, |e| e.envelope.sequence))
                })?,
                None => online(client, |conn| async move {
                    Ok(conn
                        .access()
                        .revoke_token(RevokeTokenRequest { token_id, reason })
                        .await?
                        .into_inner()
                        .sequence)
                })?,
            };
            if out.json {
                out.line(&serde_json::json!({ "revoked": true, "sequence": sequence }));
            } else {
                say!("revoked by entry {sequence}");
            }
        }
    }
    Ok(())
}

pub fn principal(
    command: PrincipalCommand,
    client: &ClientArgs,
    out: Output,
) -> anyhow::Result<()> {
    let principals = match command {
        PrincipalCommand::Set {
            name,
            grants,
            target,
        } => {
            let grants = grants.grants();
            let principal = match &target.data_dir {
                Some(dir) => offline(dir, |ledger, actor| async move {
                    check_principal_and_grants(&name, &grants)?;
                    auth::append_access(
                        &ledger,
                        actor,
                        vec![Kind::PrincipalRolesSet(PrincipalRolesSet {
                            principal: name.clone(),
                            grants,
                        })],
                    )
                    .await?;
                    Ok(principal_answer(ledger.state().access(), &name))
                })?,
                None => online(client, |conn| async move {
                    Ok(conn
                        .access()
                        .set_roles(SetRolesRequest {
                            principal: name,
                            grants,
                        })
                        .await?
                        .into_inner()
                        .principal)
                })?,
            };
            principal.into_iter().collect::<Vec<_>>()
        }
        PrincipalCommand::List { target } => match &target.data_dir {
            Some(dir) => read_offline(dir, |access| {
                access
                    .principals
                    .keys()
                    .filter_map(|name| principal_answer(access, name))
                    .collect()
            })?,
            None => online(client, |conn| async move {
                Ok(conn
                    .access()
                    .list_principals(ListPrincipalsRequest {})
                    .await?
                    .into_inner()
                    .principals)
            })?,
        },
    };
    for p in &principals {
        if out.json {
            out.line(&serde_json::json!({
                "principal": p.name,
                "grants": grants_text(&p.grants),
                "roles_sequence": p.roles_sequence,
            }));
        } else {
            say!("{:<24}  {}", p.name, grants_text(&p.grants).join(", "));
        }
    }
    Ok(())
}

fn check_principal_and_grants(name: &str, grants: &[Grant]) -> anyhow::Result<()> {
    govledger::domain::principal(name, "--name", "")?;
    govledger::domain::grants(grants, "--role/--scope")?;
    Ok(())
}

/// "recorder", "approver on team-a/*".
pub fn grants_text(grants: &[Grant]) -> Vec<String> {
    grants
        .iter()
        .map(|g| {
            let role = role_name(Role::try_from(g.role).unwrap_or_default());
            if g.scope.is_empty() {
                role.to_owned()
            } else {
                format!("{role} on {}", g.scope)
            }
        })
        .collect()
}

fn principal_answer(access: &AccessState, name: &str) -> Option<v1::Principal> {
    access.principal(name).map(|p| v1::Principal {
        name: name.to_owned(),
        grants: p
            .grants
            .iter()
            .map(|g: &GrantState| Grant {
                role: g.role as i32,
                scope: g.scope.clone(),
            })
            .collect(),
        roles_sequence: p.roles_sequence,
    })
}

/// The actor of offline access changes: the local operator.
fn offline_actor() -> ActorName {
    let user = std::env::var("USER").unwrap_or_default();
    ActorName::parse(&format!("local:{user}"))
        .unwrap_or_else(|_| ActorName::parse("local:operator").expect("a valid actor name"))
}

/// Opens the stopped ledger in `dir`, runs `f`, closes it.
fn offline<T, F, Fut>(dir: &Path, f: F) -> anyhow::Result<T>
where
    F: FnOnce(Ledger, ActorName) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    if !dir.is_dir() {
        anyhow::bail!("data directory {} does not exist", dir.display());
    }
    let ledger = Ledger::open(LedgerConfig::new(dir)).with_context(|| {
        format!(
            "opening {} (offline access changes need the server stopped; with it running, use --addr and an admin token)",
            dir.display()
        )
    })?;
    runtime()?.block_on(async {
        let result = f(ledger.clone(), offline_actor()).await;
        ledger.close().await;
        result
    })
}

fn read_offline<T>(dir: &Path, f: impl FnOnce(&AccessState) -> T) -> anyhow::Result<T> {
    offline(
        dir,
        |ledger, _| async move { Ok(f(ledger.state().access())) },
    )
}
