//! Identity and access (issue 4): every RPC × every role, scopes, tokens
//! (missing, wrong, revoked), separation of duties on real identities, and
//! the Access service itself.

use govledger::{
    connect::Bearer,
    proto::v1::{
        AccessStats, AppendRequest, CheckGateRequest, CreateTokenRequest, Event,
        GetAccessStatsRequest, GetEntryRequest, GetHeadRequest, GetSubjectStateRequest,
        GetVersionHistoryRequest, Grant, ListIncidentsRequest, ListPrincipalsRequest,
        ListSubjectsRequest, ListTokensRequest, ReadEntriesRequest, RevokeTokenRequest, Role,
        SetRolesRequest, SubscribeRequest, VerifyChainRequest, WhoAmIRequest,
        access_client::AccessClient, governance_client::GovernanceClient,
        ledger_client::LedgerClient,
    },
};
use tonic::{Code, Status};

use crate::helpers::*;

const ROLES: [(&str, Role); 6] = [
    ("recorder", Role::Recorder),
    ("approver", Role::Approver),
    ("deployer", Role::Deployer),
    ("responder", Role::Responder),
    ("auditor", Role::Auditor),
    ("admin", Role::Admin),
];

/// Clients of every service, all sending `token` (or nothing).
struct Clients {
    ledger: LedgerClient<govledger::connect::Authed>,
    governance: GovernanceClient<govledger::connect::Authed>,
    access: AccessClient<govledger::connect::Authed>,
}

async fn clients(app: &TestApp, token: Option<&str>) -> Clients {
    let channel = channel(app.addr).await;
    let bearer = Bearer::new(token).unwrap();
    Clients {
        ledger: LedgerClient::with_interceptor(channel.clone(), bearer.clone()),
        governance: GovernanceClient::with_interceptor(channel.clone(), bearer.clone()),
        access: AccessClient::with_interceptor(channel, bearer),
    }
}

/// Issues a token for `principal` holding exactly `grants`.
async fn token_with(app: &TestApp, principal: &str, grants: Vec<Grant>) -> (String, String) {
    let created = app
        .access_as("admin")
        .await
        .create_token(CreateTokenRequest {
            principal: principal.into(),
            grants,
            description: format!("{principal} for a test"),
        })
        .await
        .unwrap_or_else(|s| panic!("creating a token for {principal}: {s:?}"))
        .into_inner();
    (created.token, created.token_id)
}

fn grant(role: Role, scope: &str) -> Grant {
    Grant {
        role: role as i32,
        scope: scope.into(),
    }
}

/// Every write the matrix tries, with the role it needs: valid events that
/// the ledger accepts from a principal holding that role (each once, on the
/// caller's own subject `m/<role>`, registered by [`REGISTRAR`]).
fn writes(subject: &str) -> Vec<(&'static str, Role, Event)> {
    vec![
        ("VersionRegistered", Role::Recorder, numbered(subject, 7)),
        ("EvalRecorded", Role::Recorder, eval(subject).event()),
        (
            "FeedbackRecorded",
            Role::Recorder,
            feedback(subject).event(),
        ),
        (
            "ApprovalRecorded",
            Role::Approver,
            approval(subject).event(),
        ),
        (
            "DeploymentRecorded",
            Role::Deployer,
            deployment(subject).event(),
        ),
        (
            "IncidentOpened",
            Role::Responder,
            incident_opened(subject).event(),
        ),
        (
            "IncidentResolved",
            Role::Responder,
            incident_resolved(subject).event(),
        ),
        ("PolicySet", Role::Admin, policy(subject).event()),
    ]
}

/// Calls every read RPC; returns (rpc, result) pairs.
async fn reads(c: &mut Clients, subject: &str) -> Vec<(&'static str, Result<(), Status>)> {
    let mut out = Vec::new();
    out.push((
        "GetHead",
        c.ledger.get_head(GetHeadRequest {}).await.map(drop),
    ));
    out.push((
        "GetEntry",
        c.ledger
            .get_entry(GetEntryRequest { sequence: 1 })
            .await
            .map(drop),
    ));
    out.push((
        "ReadEntries",
        match c.ledger.read_entries(ReadEntriesRequest::default()).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                match tokio_stream::StreamExt::next(&mut stream).await {
                    Some(Err(status)) => Err(status),
                    _ => Ok(()),
                }
            }
            Err(status) => Err(status),
        },
    ));
    out.push((
        "Subscribe",
        c.ledger
            .subscribe(SubscribeRequest::default())
            .await
            .map(drop),
    ));
    out.push((
        "VerifyChain",
        c.ledger
            .verify_chain(VerifyChainRequest::default())
            .await
            .map(drop),
    ));
    out.push((
        "CheckGate",
        c.governance
            .check_gate(CheckGateRequest {
                subject: subject.into(),
                version: V.into(),
                environment: "production".into(),
                ..Default::default()
            })
            .await
            .map(drop),
    ));
    out.push((
        "GetSubjectState",
        c.governance
            .get_subject_state(GetSubjectStateRequest {
                subject: subject.into(),
                as_of: None,
            })
            .await
            .map(drop),
    ));
    out.push((
        "ListSubjects",
        c.governance
            .list_subjects(ListSubjectsRequest::default())
            .await
            .map(drop),
    ));
    out.push((
        "ListIncidents",
        c.governance
            .list_incidents(ListIncidentsRequest::default())
            .await
            .map(drop),
    ));
    out.push((
        "GetVersionHistory",
        c.governance
            .get_version_history(GetVersionHistoryRequest {
                subject: subject.into(),
            })
            .await
            .map(drop),
    ));
    out.push((
        "WhoAmI",
        c.access.who_am_i(WhoAmIRequest {}).await.map(drop),
    ));
    out
}

/// Calls every access-management RPC (admin only); `n` keeps names unique.
async fn manage(c: &mut Clients, n: &str) -> Vec<(&'static str, Result<(), Status>)> {
    let mut out = Vec::new();
    let created = c
        .access
        .create_token(CreateTokenRequest {
            principal: format!("made-by-{n}"),
            grants: vec![grant(Role::Auditor, "")],
            description: String::new(),
        })
        .await;
    let made = created.as_ref().ok().map(|r| r.get_ref().token_id.clone());
    out.push(("CreateToken", created.map(drop)));
    out.push((
        "SetRoles",
        c.access
            .set_roles(SetRolesRequest {
                principal: format!("roles-by-{n}"),
                grants: vec![grant(Role::Auditor, "")],
            })
            .await
            .map(drop),
    ));
    out.push((
        "RevokeToken",
        c.access
            .revoke_token(RevokeTokenRequest {
                // An admin revokes what it made; anyone else tries an admin's.
                token_id: made.unwrap_or_else(|| "0000000000000000".into()),
                reason: "test".into(),
            })
            .await
            .map(drop),
    ));
    out.push((
        "ListTokens",
        c.access
            .list_tokens(ListTokensRequest::default())
            .await
            .map(drop),
    ));
    out.push((
        "ListPrincipals",
        c.access
            .list_principals(ListPrincipalsRequest {})
            .await
            .map(drop),
    ));
    out.push((
        "GetAccessStats",
        c.access
            .get_access_stats(GetAccessStatsRequest {})
            .await
            .map(drop),
    ));
    out
}

async fn stats(app: &TestApp) -> AccessStats {
    app.access_as("admin")
        .await
        .get_access_stats(GetAccessStatsRequest {})
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn every_rpc_allows_exactly_the_roles_it_should() {
    let app = TestApp::spawn().await;
    for (name, role) in ROLES {
        let subject = format!("m/{name}");
        app.register(&subject).await;
        let (token, _) = token_with(&app, &format!("only-{name}"), vec![grant(role, "")]).await;
        let mut c = clients(&app, Some(&token)).await;

        for (rpc, needs, event) in writes(&subject) {
            let before = app.get_head().await;
            let result = c
                .ledger
                .append(AppendRequest {
                    event: Some(event.clone()),
                    ..Default::default()
                })
                .await;
            if needs == role {
                let entry = result
                    .unwrap_or_else(|s| panic!("{name} appending {rpc}: {s:?}"))
                    .into_inner()
                    .entry
                    .unwrap();
                assert_eq!(entry.actor, format!("only-{name}"), "{rpc}");
            } else {
                let status = result.expect_err(&format!("{name} appending {rpc}"));
                assert_eq!(
                    status.code(),
                    Code::PermissionDenied,
                    "{name} {rpc}: {status:?}"
                );
                let needed = ROLES.iter().find(|(_, r)| *r == needs).unwrap().0;
                assert!(
                    status
                        .message()
                        .contains(&format!("needs the {needed} role")),
                    "{name} {rpc}: {status:?}"
                );
                assert_eq!(
                    app.get_head().await,
                    before,
                    "{name} {rpc}: a denial appended"
                );
            }
            // The same rule holds inside a batch.
            let batched = c.ledger.append_batch(batch(vec![event])).await;
            if needs != role {
                assert_eq!(
                    batched.expect_err("batch").code(),
                    Code::PermissionDenied,
                    "{name} batch {rpc}"
                );
            }
        }
        for (rpc, result) in reads(&mut c, &subject).await {
            result.unwrap_or_else(|s| panic!("{name} reading with {rpc}: {s:?}"));
        }
        for (rpc, result) in manage(&mut c, name).await {
            match role {
                Role::Admin => {
                    result.unwrap_or_else(|s| panic!("admin calling {rpc}: {s:?}"));
                }
                _ => {
                    let status = result.expect_err(&format!("{name} calling {rpc}"));
                    assert_eq!(status.code(), Code::PermissionDenied, "{name} {rpc}");
                    assert!(status.message().contains("admin role"), "{status:?}");
                }
            }
        }
    }
}

#[tokio::test]
async fn missing_wrong_and_revoked_tokens_are_unauthenticated_everywhere() {
    let app = TestApp::spawn().await;
    app.register("m/x").await;
    let (token, token_id) = token_with(&app, "short-lived", writer_grants()).await;
    // A wrong secret for a real token id, and a token that never existed.
    let mut wrong = token.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    let revoked = {
        let (t, id) = token_with(&app, "revoked-one", writer_grants()).await;
        app.access_as("admin")
            .await
            .revoke_token(RevokeTokenRequest {
                token_id: id,
                reason: "leaked in a CI log".into(),
            })
            .await
            .unwrap();
        t
    };
    let stats_before = stats(&app).await;
    let before = app.get_head().await;
    let mut refused = 0;
    for (label, presented) in [
        ("no token", None),
        ("wrong secret", Some(wrong.as_str())),
        ("malformed", Some("not-a-token")),
        ("revoked", Some(revoked.as_str())),
    ] {
        let mut c = clients(&app, presented).await;
        let mut results = Vec::new();
        for (rpc, _, event) in writes("m/x") {
            results.push((
                rpc,
                c.ledger
                    .append(AppendRequest {
                        event: Some(event),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ));
        }
        results.extend(reads(&mut c, "m/x").await);
        results.extend(manage(&mut c, "nobody").await);
        for (rpc, result) in results {
            let status = result.expect_err(&format!("{label}: {rpc}"));
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{label} {rpc}: {status:?}"
            );
            if let Some(t) = presented {
                assert!(!status.message().contains(t), "{rpc}: the token is echoed");
            }
            refused += 1;
        }
    }
    assert_eq!(app.get_head().await, before, "a refused call appended");
    let stats_after = stats(&app).await;
    assert_eq!(
        stats_after.unauthenticated - stats_before.unauthenticated,
        refused,
        "every refusal is counted"
    );
    // The revoked token's message says so (its id is public, its secret never shown).
    let mut c = clients(&app, Some(&revoked)).await;
    let status = c.ledger.get_head(GetHeadRequest {}).await.unwrap_err();
    assert!(status.message().contains("revoked"), "{status:?}");
    // The live token still works.
    let mut c = clients(&app, Some(&token)).await;
    c.ledger.get_head(GetHeadRequest {}).await.unwrap();
    assert_eq!(token_id.len(), 16);
}

#[tokio::test]
async fn a_scoped_recorder_writes_only_inside_its_scope() {
    let app = TestApp::spawn().await;
    app.register("team-a/bot").await;
    app.register("team-b/bot").await;
    app.register("team-ab/bot").await;
    let (token, _) = token_with(&app, "ci-team-a", vec![grant(Role::Recorder, "team-a/*")]).await;
    let mut c = clients(&app, Some(&token)).await;

    let ok = c.ledger.append(req(eval("team-a/bot"))).await;
    assert_eq!(ok.unwrap().into_inner().entry.unwrap().actor, "ci-team-a");
    for outside in ["team-b/bot", "team-ab/bot"] {
        let before = app.get_head().await;
        let status = c.ledger.append(req(eval(outside))).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(
            status
                .message()
                .contains(&format!("recorder role for subject {outside}")),
            "{status:?}"
        );
        assert_eq!(app.get_head().await, before);
    }
    // A batch with one item outside the scope appends nothing.
    let before = app.get_head().await;
    let mixed = c
        .ledger
        .append_batch(batch(vec![
            eval("team-a/bot").event(),
            eval("team-b/bot").event(),
        ]))
        .await;
    assert_status(mixed, Code::PermissionDenied, "team-b/bot");
    assert_eq!(app.get_head().await, before);
    // Scoped admins may set policies in their scope, never the default one.
    let (admin_a, _) = token_with(&app, "admin-a", vec![grant(Role::Admin, "team-a/*")]).await;
    let mut c = clients(&app, Some(&admin_a)).await;
    c.ledger.append(req(policy("team-a/bot"))).await.unwrap();
    assert_status(
        c.ledger.append(req(policy("*"))).await,
        Code::PermissionDenied,
        "admin role for subject *",
    );
    assert_status(
        c.access.list_tokens(ListTokensRequest::default()).await,
        Code::PermissionDenied,
        "without a scope",
    );
}

#[tokio::test]
async fn separation_of_duties_binds_to_authenticated_principals() {
    let app = TestApp::spawn().await;
    let (author, _) = token_with(
        &app,
        "author-1",
        vec![grant(Role::Recorder, ""), grant(Role::Approver, "")],
    )
    .await;
    let mut c = clients(&app, Some(&author)).await;
    let registered = c
        .ledger
        .append(req(govledger::proto::v1::VersionRegistered {
            author: "someone-else".into(),
            ..version("sod/bot")
        }))
        .await
        .unwrap()
        .into_inner()
        .entry
        .unwrap();
    assert_eq!(
        registered.actor, "author-1",
        "the actor is who authenticated"
    );

    // The registering principal may not approve its own version.
    let before = app.get_head().await;
    assert_status(
        c.ledger.append(req(approval("sod/bot"))).await,
        Code::FailedPrecondition,
        "author-1",
    );
    assert_eq!(app.get_head().await, before);

    // "The deployer may not be the only approver", enforced on identities.
    app.append_as(
        "admin",
        req(govledger::proto::v1::PolicySet {
            required_suites: vec![],
            min_approvals: 1,
            deployer_not_sole_approver: true,
            block_on_open_incident_severity: 0,
            ..policy("sod/bot")
        }),
    )
    .await
    .unwrap();
    let (both, _) = token_with(
        &app,
        "approver-deployer",
        vec![grant(Role::Approver, ""), grant(Role::Deployer, "")],
    )
    .await;
    let mut c = clients(&app, Some(&both)).await;
    c.ledger.append(req(approval("sod/bot"))).await.unwrap();
    assert_status(
        c.ledger.append(req(deployment("sod/bot"))).await,
        Code::FailedPrecondition,
        "approver-deployer",
    );
    // A second, distinct approver makes it deployable by the same deployer.
    app.append_as("bob", req(approval("sod/bot")))
        .await
        .unwrap();
    let deployed = c.ledger.append(req(deployment("sod/bot"))).await.unwrap();
    assert_eq!(
        deployed.into_inner().entry.unwrap().actor,
        "approver-deployer"
    );
}

#[tokio::test]
async fn grants_and_revocations_are_ledger_entries_and_revocation_is_immediate() {
    let app = TestApp::spawn().await;
    let before = app.get_head().await.sequence;
    let (token, token_id) = token_with(&app, "ops-bot", vec![grant(Role::Responder, "")]).await;
    let mut c = clients(&app, Some(&token)).await;
    let me = c
        .access
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.principal.unwrap().name, "ops-bot");
    assert_eq!(me.authenticated_by, format!("token {token_id}"));

    let mut admin = app.access_as("admin").await;
    admin
        .revoke_token(RevokeTokenRequest {
            token_id: token_id.clone(),
            reason: "rotated".into(),
        })
        .await
        .unwrap();
    assert_status(
        c.ledger.get_head(GetHeadRequest {}).await,
        Code::Unauthenticated,
        "revoked",
    );
    // Revoking twice, or an unknown token, is refused and appends nothing.
    let head = app.get_head().await;
    assert_status(
        admin
            .revoke_token(RevokeTokenRequest {
                token_id: token_id.clone(),
                reason: String::new(),
            })
            .await,
        Code::FailedPrecondition,
        "already revoked",
    );
    assert_status(
        admin
            .revoke_token(RevokeTokenRequest {
                token_id: "0123456789abcdef".into(),
                reason: String::new(),
            })
            .await,
        Code::NotFound,
        "does not exist",
    );
    assert_eq!(app.get_head().await, head);

    // The history of access is in the log, under "@access", never a secret.
    let entries = app
        .read_entries(ReadEntriesRequest {
            from_sequence: before + 1,
            subject: "@access".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let kinds: Vec<i32> = entries.iter().map(|e| e.kind).collect();
    use govledger::proto::v1::EventKind;
    assert_eq!(
        kinds,
        vec![
            EventKind::PrincipalRolesSet as i32,
            EventKind::TokenIssued as i32,
            EventKind::TokenRevoked as i32
        ]
    );
    assert!(entries.iter().all(|e| e.actor == "admin"));
    let secret = token.rsplit('_').next().unwrap();
    for e in &entries {
        assert!(
            !String::from_utf8_lossy(&e.payload).contains(secret),
            "a secret in the log"
        );
    }
    let listed = admin
        .list_tokens(ListTokensRequest {
            principal: "ops-bot".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked);
    assert_eq!(listed[0].revoked_by, "admin");

    // Access survives a restart (it is folded from the log).
    let app = app.restart().await;
    let mut c = clients(&app, Some(&token)).await;
    assert_status(
        c.ledger.get_head(GetHeadRequest {}).await,
        Code::Unauthenticated,
        "revoked",
    );
}

#[tokio::test]
async fn access_entries_cannot_be_appended_directly_and_the_last_admin_stays() {
    use govledger::proto::v1::{PrincipalRolesSet, event::Kind};
    let app = TestApp::spawn().await;
    let before = app.get_head().await;
    let forged = Event {
        kind: Some(Kind::PrincipalRolesSet(PrincipalRolesSet {
            principal: "mallory".into(),
            grants: vec![grant(Role::Admin, "")],
        })),
    };
    assert_status(
        app.append_as("admin", req(forged)).await,
        Code::InvalidArgument,
        "event.principal_roles_set: access entries are written only through the Access service",
    );
    assert_eq!(app.get_head().await, before);

    // Every test principal is an admin too; strip them all but "admin", then
    // "admin" may not remove its own admin role.
    let mut admin = app.access_as("admin").await;
    for p in TEST_PRINCIPALS {
        admin
            .set_roles(SetRolesRequest {
                principal: (*p).into(),
                grants: vec![grant(Role::Recorder, "")],
            })
            .await
            .unwrap();
    }
    assert_status(
        admin
            .set_roles(SetRolesRequest {
                principal: "admin".into(),
                grants: vec![grant(Role::Auditor, "")],
            })
            .await,
        Code::FailedPrecondition,
        "last admin",
    );
}

#[tokio::test]
async fn bad_grants_are_invalid_arguments_naming_the_field() {
    let app = TestApp::spawn().await;
    let mut admin = app.access_as("admin").await;
    let before = app.get_head().await;
    for (grants, field, rule) in [
        (
            vec![grant(Role::Unspecified, "")],
            "grants[0].role",
            "is required",
        ),
        (
            vec![Grant {
                role: 42,
                scope: String::new(),
            }],
            "grants[0].role",
            "unknown enum value 42",
        ),
        (
            vec![grant(Role::Recorder, "team a/*")],
            "grants[0].scope",
            "must be empty",
        ),
        (
            vec![grant(Role::Recorder, "team-a/**")],
            "grants[0].scope",
            "must be empty",
        ),
    ] {
        let status = admin
            .create_token(CreateTokenRequest {
                principal: "p".into(),
                grants,
                description: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(&format!("{field}: ")) && status.message().contains(rule),
            "{status:?}"
        );
    }
    // A token for a principal without roles is refused until it has some.
    assert_status(
        admin
            .create_token(CreateTokenRequest {
                principal: "nobody-yet".into(),
                grants: vec![],
                description: String::new(),
            })
            .await,
        Code::FailedPrecondition,
        "has no roles",
    );
    assert_eq!(app.get_head().await, before);
}
