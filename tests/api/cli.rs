//! The `govledger` binary: `verify` on a stopped ledger, and `serve`.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command as StdCommand, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use assert_cmd::Command;
use predicates::{prelude::*, str::contains};

use govledger::{
    connect::Bearer,
    proto::v1::{CreateTokenRequest, GetEntryRequest, access_client::AccessClient},
};

use crate::helpers::*;

const BIN: &str = "govledger";

/// The binary, with nothing from the machine's environment that could
/// change what it does (see `cli_support::leaky_vars`); tests set CI
/// variables explicitly where they mean to.
pub(crate) fn govledger() -> Command {
    let mut cmd = Command::cargo_bin(BIN).expect("the govledger binary is built");
    cmd.timeout(Duration::from_secs(60));
    for name in crate::cli_support::leaky_vars() {
        cmd.env_remove(name);
    }
    cmd
}

async fn stopped_ledger(n: usize) -> StoppedDir {
    let app = TestApp::spawn().await;
    for i in 0..n {
        app.append_event(version_with_content(&format!("s/{i}"), 2048))
            .await;
    }
    app.stop_keep_dir().await
}

#[tokio::test]
async fn verify_exits_zero_on_a_healthy_ledger() {
    let stopped = stopped_ledger(10).await;

    govledger()
        .args(["verify", "--data-dir"])
        .arg(&stopped.path)
        .assert()
        .success();
}

#[tokio::test]
async fn verify_exits_one_naming_the_damaged_entry() {
    let stopped = stopped_ledger(10).await;
    // The third of the test's own entries, after the access entries.
    let damaged = SETUP_ENTRIES + 3;
    tamper_with_entry(&stopped.path, damaged);

    govledger()
        .args(["verify", "--data-dir"])
        .arg(&stopped.path)
        .assert()
        .code(1)
        .stderr(contains(format!("entry {damaged}")));
}

/// A `govledger serve` child process, killed if the test ends early.
pub(crate) struct Served {
    child: Option<Child>,
    stderr_log: std::path::PathBuf,
}

impl Served {
    pub(crate) fn start(data_dir: &Path, log_dir: &Path) -> (Served, String) {
        let stderr_log = log_dir.join("serve.stderr");
        let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin(BIN))
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr_log).unwrap())
            .spawn()
            .expect("spawning govledger serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let served = Served {
            child: Some(child),
            stderr_log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.trim().strip_prefix("govledger listening on ") {
                        break addr.to_owned();
                    }
                }
                Err(_) => panic!(
                    "no 'govledger listening on' line on stdout; stderr:\n{}",
                    served.stderr()
                ),
            }
        };
        (served, addr)
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, then wait (bounded) for the exit status. Async, so that this
    /// test's own runtime keeps answering on any connection still open.
    pub(crate) async fn terminate(&mut self) -> std::process::ExitStatus {
        let status = StdCommand::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "govledger serve did not exit within 30 s of SIGTERM; stderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn serve_listens_locks_the_data_dir_and_shuts_down_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (mut served, addr) = Served::start(data.path(), logs.path());
    let addr: std::net::SocketAddr = addr
        .parse()
        .unwrap_or_else(|e| panic!("listening address {addr:?}: {e}"));
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0, "the real port is printed");

    // It serves, with the admin it created at first start.
    let admin = std::fs::read_to_string(data.path().join("admin.token")).unwrap();
    let created = within(
        "CreateToken on the served binary",
        AccessClient::with_interceptor(channel(addr).await, Bearer::new(Some(&admin)).unwrap())
            .create_token(CreateTokenRequest {
                principal: "ci".into(),
                grants: writer_grants(),
                description: String::new(),
            }),
    )
    .await
    .expect("create token")
    .into_inner();
    assert_eq!(
        created.sequence, 4,
        "the bootstrap admin's roles and token, then ci's roles and token"
    );
    let mut client = connect_as(addr, &created.token).await;
    let entry = within(
        "Append to the served binary",
        client.append(req(version("cli/served"))),
    )
    .await
    .expect("append")
    .into_inner()
    .entry
    .unwrap();
    assert_eq!(entry.sequence, created.sequence + 1);
    assert_eq!(entry.actor, "ci");

    // A second server on the same data dir refuses to start.
    govledger()
        .args(["serve", "--data-dir"])
        .arg(data.path())
        .args(["--listen", "127.0.0.1:0"])
        .timeout(Duration::from_secs(30))
        .assert()
        .failure()
        .stderr(contains("locked"));

    // SIGTERM shuts it down gracefully, releasing the lock.
    drop(client);
    let status = served.terminate().await;
    assert!(
        status.success(),
        "exit status after SIGTERM: {status:?}; stderr:\n{}",
        served.stderr()
    );
    govledger()
        .args(["verify", "--data-dir"])
        .arg(data.path())
        .assert()
        .success();
    // Served again over the same data dir (a TestApp cannot: it did not set
    // the dir up), ci's token still works and the append is there.
    let (mut served, addr) = Served::start(data.path(), logs.path());
    let mut client = connect_as(addr.parse().unwrap(), &created.token).await;
    let stored = within(
        "GetEntry on the restarted binary",
        client.get_entry(GetEntryRequest {
            sequence: entry.sequence,
        }),
    )
    .await
    .expect("get entry")
    .into_inner();
    assert_eq!(stored, entry, "the acknowledged append is durable");
    drop(client);
    let status = served.terminate().await;
    assert!(
        status.success(),
        "exit status after SIGTERM: {status:?}; stderr:\n{}",
        served.stderr()
    );
}

/// Scripts are written from a command's own --help: every command, nested
/// ones included, states the exit codes there.
#[test]
fn every_commands_help_states_the_exit_codes() {
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["token", "create"],
        &["principal", "set"],
        &["version", "register"],
        &["eval", "import"],
        &["approve"],
        &["deploy"],
        &["gate"],
        &["incident", "resolve"],
        &["policy", "set"],
        &["log"],
        &["state"],
        &["verify"],
        &["rebuild"],
        &["bench"],
    ];
    for command in commands {
        govledger()
            .args(*command)
            .arg("--help")
            .assert()
            .success()
            .stdout(
                contains("Exit codes: 0 ok; 1 gate denied").and(contains("3 server unreachable")),
            );
    }
}

/// A supervisor may stop the server the moment it has read the address: the
/// signal handlers are in place before the address is announced, so even
/// an immediate SIGTERM is a clean shutdown (exit 0), never a kill.
#[tokio::test]
async fn sigterm_right_after_the_announcement_is_a_clean_shutdown() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    for _ in 0..5 {
        let (mut served, _addr) = Served::start(data.path(), logs.path());
        let status = served.terminate().await;
        assert!(
            status.success(),
            "exit status after an immediate SIGTERM: {status:?}; stderr:\n{}",
            served.stderr()
        );
    }
}
