//! `govledger bench` end to end, tiny: it parses its flags alongside the
//! global client flags, bootstraps its own server and token, and reports
//! every phase.

use predicates::str::contains;

use crate::cli::govledger;

#[test]
fn a_tiny_bench_runs_every_phase() {
    let cwd = tempfile::tempdir().unwrap();
    govledger()
        .current_dir(cwd.path())
        .env_remove("GOVLEDGER_TOKEN")
        .env_remove("GOVLEDGER_ADDR")
        .args(["bench", "--clients", "2", "--appends-per-client", "3"])
        .args([
            "--batch-clients",
            "1",
            "--batches-per-client",
            "1",
            "--reads",
            "8",
        ])
        .assert()
        .success()
        .stdout(contains("ceiling"))
        .stdout(contains("append "))
        .stdout(contains("batch "))
        .stdout(contains("verify "))
        .stdout(contains("read      check-gate"));
}

#[test]
fn bench_against_a_server_needs_a_token() {
    govledger()
        .env_remove("GOVLEDGER_TOKEN")
        .args(["bench", "--server", "127.0.0.1:9"])
        .assert()
        .failure()
        .stderr(contains("--server needs --token"));
}
