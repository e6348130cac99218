//! The real binary and access: the bootstrap admin of `serve`, `govledger
//! token` / `principal` online and offline, exit codes, and that no token
//! ever reaches a log, the journal or an error message.

use std::{os::unix::fs::PermissionsExt, path::Path};

use govledger::proto::v1::{GetHeadRequest, ListTokensRequest};
use predicates::str::contains;
use tonic::Code;

use crate::{
    cli::{Served, govledger},
    helpers::*,
};

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every file under `dir`, recursively, except the bootstrap token file.
fn files_except_token(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_except_token(&path));
        } else if path.file_name().unwrap() != "admin.token" {
            out.push(path);
        }
    }
    out
}

fn secret(token: &str) -> &str {
    token.rsplit('_').next().unwrap()
}

#[tokio::test]
async fn serve_bootstraps_an_admin_and_tokens_never_leak() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (mut served, addr) = Served::start(data.path(), logs.path());
    let token_file = data.path().join("admin.token");

    // The bootstrap token: a file only its owner may read, named in the log.
    let admin = std::fs::read_to_string(&token_file).unwrap();
    let admin = admin.trim();
    assert!(admin.starts_with("glt_"), "{admin:?}");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "admin.token mode {mode:o}");
    assert!(
        served.stderr().contains("admin.token"),
        "{}",
        served.stderr()
    );

    // An admin issues a scoped recorder token through the CLI.
    let created = govledger()
        .args(["--addr", &addr, "--token-file"])
        .arg(&token_file)
        .args(["token", "create", "--name", "ci-main", "--role", "recorder"])
        .args(["--scope", "cli/*", "--description", "main branch CI"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let ci_token = stdout_of(&created).trim().to_owned();
    assert!(ci_token.starts_with("glt_"), "{ci_token:?}");
    assert!(String::from_utf8_lossy(&created.stderr).contains("shown only this once"));

    // It writes as ci-main, inside its scope only.
    let addr_parsed: std::net::SocketAddr = addr.parse().unwrap();
    let mut client = connect_as(addr_parsed, &ci_token).await;
    let entry = client
        .append(req(version("cli/prompt")))
        .await
        .unwrap()
        .into_inner()
        .entry
        .unwrap();
    assert_eq!(entry.actor, "ci-main");
    let outside = client.append(req(version("other/prompt"))).await;
    assert_status(outside, Code::PermissionDenied, "recorder role");

    // `token list --output json`: one object per line, no secrets.
    let listed = govledger()
        .args([
            "--addr", &addr, "--token", admin, "--output", "json", "token", "list",
        ])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let lines: Vec<serde_json::Value> = stdout_of(&listed)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let ci = lines
        .iter()
        .find(|t| t["principal"] == "ci-main")
        .expect("ci-main's token listed");
    let ci_id = ci["token_id"].as_str().unwrap().to_owned();
    assert!(!stdout_of(&listed).contains(secret(&ci_token)));

    // A non-admin may not manage tokens: exit 4 with the server's reason.
    govledger()
        .args(["--addr", &addr, "--token", &ci_token, "token", "list"])
        .assert()
        .code(4)
        .stderr(contains("admin role"));
    // A wrong token: exit 4, the token not echoed.
    let mut wrong = ci_token.clone();
    wrong.replace_range(wrong.len() - 4.., "0000");
    let refused = govledger()
        .args(["--addr", &addr, "--token", &wrong, "token", "list"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not valid"), "{stderr}");
    assert!(!stderr.contains(secret(&wrong)), "{stderr}");

    // Revoke: the token stops working at once.
    govledger()
        .args(["--addr", &addr, "--token", admin, "token", "revoke", &ci_id])
        .args(["--reason", "rotated"])
        .assert()
        .success()
        .stdout(contains("revoked by entry"));
    let status = client.get_head(GetHeadRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    assert!(served.terminate().await.success());
    // No secret in the server's log or in any file of the data dir but the
    // token file itself.
    let log = served.stderr();
    assert!(log.contains("refused: unauthenticated"), "{log}");
    for token in [admin, ci_token.as_str(), wrong.as_str()] {
        assert!(!log.contains(secret(token)), "a token in the log:\n{log}");
        for file in files_except_token(data.path()) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes
                    .windows(secret(token).len())
                    .any(|w| w == secret(token).as_bytes()),
                "a token in {}",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn offline_token_commands_bootstrap_and_recover_a_stopped_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    // A data dir that never served: give it an admin offline.
    let created = govledger()
        .args(["token", "create", "--data-dir", dir, "--name", "ops"])
        .args(["--role", "admin", "--output", "json"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let answer: serde_json::Value = serde_json::from_str(stdout_of(&created).trim()).unwrap();
    let ops = answer["token"].as_str().unwrap().to_owned();
    assert_eq!(answer["principal"], "ops");
    assert_eq!(answer["grants"], serde_json::json!(["admin"]));

    // The server then finds a principal and creates no bootstrap admin.
    let logs = tempfile::tempdir().unwrap();
    let (mut served, addr) = Served::start(data.path(), logs.path());
    assert!(!data.path().join("admin.token").exists());
    let tokens = {
        let mut access = govledger::proto::v1::access_client::AccessClient::with_interceptor(
            channel(addr.parse().unwrap()).await,
            govledger::connect::Bearer::new(Some(&ops)).unwrap(),
        );
        access
            .list_tokens(ListTokensRequest::default())
            .await
            .unwrap()
            .into_inner()
            .tokens
    };
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].issued_by.starts_with("local:"), "{tokens:?}");
    // Offline changes need the server stopped: the data dir is locked.
    govledger()
        .args(["token", "list", "--data-dir", dir])
        .assert()
        .code(5)
        .stderr(contains("server stopped"));
    assert!(served.terminate().await.success());

    // Offline list and revoke on the stopped dir.
    govledger()
        .args(["token", "list", "--data-dir", dir])
        .assert()
        .success()
        .stdout(contains("ops"))
        .stdout(contains("active"));
    let id = tokens[0].token_id.clone();
    govledger()
        .args(["token", "revoke", &id, "--data-dir", dir])
        .assert()
        .success();
    govledger()
        .args(["token", "list", "--data-dir", dir])
        .assert()
        .success()
        .stdout(contains("revoked"));
    // Revoking again is refused by the ledger's rules: exit 4.
    govledger()
        .args(["token", "revoke", &id, "--data-dir", dir])
        .assert()
        .code(4)
        .stderr(contains("already revoked"));
}

#[test]
fn serve_refuses_a_non_loopback_address_without_tls() {
    let data = tempfile::tempdir().unwrap();
    govledger()
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(data.path())
        .assert()
        .code(2)
        .stderr(contains("--insecure"));
    // A certificate without its key is a usage error too.
    govledger()
        .args(["serve", "--tls-cert", "cert.pem", "--data-dir"])
        .arg(data.path())
        .assert()
        .code(2)
        .stderr(contains("--tls-key"));
    assert!(
        !data.path().join("journal").exists(),
        "a refused start opened the data dir"
    );
}

#[test]
fn client_commands_exit_3_when_the_server_is_unreachable() {
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    govledger()
        .args(["--addr", &format!("127.0.0.1:{port}"), "--token", "glt_x"])
        .args(["token", "list"])
        .assert()
        .code(3)
        .stderr(contains(format!("127.0.0.1:{port}")));
    govledger()
        .args(["token", "create", "--name", "x", "--role", "root"])
        .assert()
        .code(2)
        .stderr(contains("unknown role"));
}
