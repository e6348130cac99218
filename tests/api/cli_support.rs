//! What the black-box CLI tests share: which variables no test binary may
//! inherit from the machine's environment (it may itself be a CI runner, or
//! have GOVLEDGER_* set; `cli::govledger()` removes them), running the
//! binary off the async threads, and reading what it printed.

use std::{ffi::OsString, process::Output};

use serde_json::Value;

/// Every environment variable `src/client/ci.rs` reads (the test
/// `the_isolation_covers_every_ci_variable` holds this list to its source).
pub(crate) const CI_VARS: &[&str] = &[
    "CI",
    "GITHUB_ACTIONS",
    "GITHUB_ACTOR",
    "GITHUB_JOB",
    "GITHUB_REF_NAME",
    "GITHUB_REPOSITORY",
    "GITHUB_RUN_ATTEMPT",
    "GITHUB_RUN_ID",
    "GITHUB_SERVER_URL",
    "GITHUB_SHA",
    "GITLAB_CI",
    "CI_COMMIT_REF_NAME",
    "CI_COMMIT_SHA",
    "CI_JOB_NAME",
    "CI_JOB_URL",
    "CI_PIPELINE_ID",
    "CI_PIPELINE_URL",
    "CI_PROJECT_PATH",
    "CI_PROJECT_URL",
    "CI_SERVER_HOST",
    "BUILDKITE",
    "BUILDKITE_BRANCH",
    "BUILDKITE_BUILD_CREATOR_EMAIL",
    "BUILDKITE_BUILD_ID",
    "BUILDKITE_BUILD_URL",
    "BUILDKITE_COMMIT",
    "BUILDKITE_JOB_ID",
    "BUILDKITE_LABEL",
    "BUILDKITE_REPO",
    "BUILDKITE_RETRY_COUNT",
    "BUILDKITE_STEP_KEY",
    "CIRCLECI",
    "CIRCLE_BRANCH",
    "CIRCLE_BUILD_URL",
    "CIRCLE_JOB",
    "CIRCLE_PIPELINE_ID",
    "CIRCLE_PROJECT_REPONAME",
    "CIRCLE_PROJECT_USERNAME",
    "CIRCLE_REPOSITORY_URL",
    "CIRCLE_SHA1",
    "CIRCLE_USERNAME",
    "CIRCLE_WORKFLOW_ID",
    "JENKINS_URL",
    "BRANCH_NAME",
    "BUILD_NUMBER",
    "BUILD_TAG",
    "BUILD_URL",
    "CHANGE_AUTHOR",
    "GIT_BRANCH",
    "GIT_COMMIT",
    "GIT_URL",
    "JOB_NAME",
    "STAGE_NAME",
];

/// Families of variables nobody should inherit: client configuration and
/// every CI system's own.
const LEAKY_PREFIXES: &[&str] = &[
    "GOVLEDGER_",
    "GITHUB_",
    "GITLAB_",
    "CI_",
    "BUILDKITE_",
    "CIRCLE_",
    "JENKINS_",
];

/// Every variable to remove from a child's environment: the ones the CLI
/// reads by name, RUST_LOG, and whatever this machine has in the families.
pub(crate) fn leaky_vars() -> Vec<OsString> {
    let mut names: Vec<OsString> = CI_VARS
        .iter()
        .chain(&["RUST_LOG"])
        .map(Into::into)
        .collect();
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if LEAKY_PREFIXES.iter().any(|p| text.starts_with(p)) {
            names.push(name);
        }
    }
    names
}

/// Runs `cmd` off the async threads (the server runs in the test's runtime).
pub(crate) async fn run(mut cmd: assert_cmd::Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("running govledger"))
        .await
        .expect("the command's thread panicked")
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
pub(crate) fn assert_code(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit {code}, got {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// Standard output as JSON objects, one per line (every line must parse),
/// whatever the exit code.
#[track_caller]
pub(crate) fn json_lines(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"))
        })
        .inspect(|v| assert!(v.is_object(), "not an object: {v}"))
        .collect()
}

/// Lowercase hex, as the CLI prints digests and hashes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one JSON object standard output holds.
#[track_caller]
pub(crate) fn json_object(output: &Output) -> Value {
    let mut lines = json_lines(output);
    assert_eq!(lines.len(), 1, "{}", stdout(output));
    lines.remove(0)
}

#[test]
fn the_isolation_covers_every_ci_variable() {
    let source = include_str!("../../src/client/ci.rs");
    let code = source.split("#[cfg(test)]").next().unwrap();
    let read: Vec<&str> = code
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.len() > 1
                && s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    assert!(read.len() > 40, "{read:?}");
    for var in read {
        assert!(
            CI_VARS.contains(&var),
            "{var} is read by ci.rs but not removed"
        );
    }
}
