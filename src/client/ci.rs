//! Which CI system runs us, and what its environment says about the run:
//! GitHub Actions, GitLab CI, Buildkite, CircleCI and Jenkins.
//!
//! [`detect`] reads variables through a lookup function (the CLI passes
//! `std::env::var`), so it is tested with plain maps.
//!
//! Two rules shape what is kept:
//!
//! - **Re-runs are the same run.** A re-run or retried job must produce the
//!   same event and the same idempotency key, or the ledger would record the
//!   evidence twice. So [`CiRun::run_id`] and everything that goes into the
//!   event's [`Source`] come from variables that stay the same across
//!   attempts (GitHub's run id, not its attempt number; GitLab's pipeline, not
//!   its job; Buildkite's build, not its job). Per-attempt values
//!   ([`CiRun::attempt`], [`CiRun::job_url`]) are kept apart, for display.
//! - **Bad values are dropped, not fatal.** The server validates a source
//!   (commit 4-64 hex characters, run URL http(s), at most 2,048 bytes, no
//!   control characters; `domain/validate.rs`). A value that would break
//!   those rules is left out (Buildkite's commit is `HEAD` on some builds),
//!   so recording never fails because of CI metadata. Credentials in git and
//!   URL user-info (`https://user:token@host/...`) are removed.

use crate::{domain::is_identity, proto::v1::Source};

pub const GITHUB_ACTIONS: &str = "github-actions";
pub const GITLAB_CI: &str = "gitlab-ci";
pub const BUILDKITE: &str = "buildkite";
pub const CIRCLECI: &str = "circleci";
pub const JENKINS: &str = "jenkins";

/// Longest reference the server accepts in a source field
/// (`MAX_REF_BYTES` in `domain/validate.rs`).
const MAX_REF_BYTES: usize = 2048;

/// A CI run, as its environment describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiRun {
    /// `github-actions`, `gitlab-ci`, `buildkite`, `circleci` or `jenkins`.
    pub system: &'static str,
    /// The run's identity, the same for every attempt of it and unique within
    /// the system and repository: GitHub's `GITHUB_RUN_ID`, GitLab's
    /// `CI_PIPELINE_ID`, Buildkite's `BUILDKITE_BUILD_ID`, CircleCI's
    /// `CIRCLE_PIPELINE_ID` (else `CIRCLE_WORKFLOW_ID`), Jenkins'
    /// `BUILD_URL` (else `BUILD_TAG`).
    pub run_id: String,
    /// `host/owner/name`, e.g. `github.com/acme/support-bot`.
    pub repository: Option<String>,
    /// Hex commit id.
    pub commit: Option<String>,
    pub branch: Option<String>,
    /// The run's page, the same for every attempt.
    pub run_url: Option<String>,
    pub pipeline_id: Option<String>,
    /// The job (step) within the run, e.g. `GITHUB_JOB`.
    pub step: Option<String>,
    /// Which attempt of the run or job this is, when the system says so.
    /// Never part of the source or the idempotency key.
    pub attempt: Option<String>,
    /// This attempt's own page, when it differs from `run_url`. Never part
    /// of the source or the idempotency key.
    pub job_url: Option<String>,
    /// The CI user who started the run, when the system names one that stays
    /// the same on every attempt: GitHub's `GITHUB_ACTOR` (a re-run by
    /// someone else sets `GITHUB_TRIGGERING_ACTOR`, not this), Buildkite's
    /// `BUILDKITE_BUILD_CREATOR_EMAIL` (a retried job stays in its build),
    /// Jenkins' `CHANGE_AUTHOR` (a change request's author). GitLab's
    /// `GITLAB_USER_LOGIN` names whoever started the job and CircleCI's
    /// `CIRCLE_USERNAME` may name whoever re-ran the workflow; a value that
    /// changes between attempts would change the event and defeat the re-run
    /// detection, so those two systems have none. Only values that are valid identities are kept.
    /// Version registration uses it as the default author, so the person
    /// whose change it is cannot approve it.
    pub triggered_by: Option<String>,
}

impl CiRun {
    /// The event source: only fields that every attempt of the run shares.
    pub fn source(&self) -> Source {
        Source {
            repository: self.repository.clone().unwrap_or_default(),
            commit: self.commit.clone().unwrap_or_default(),
            branch: self.branch.clone().unwrap_or_default(),
            run_url: self.run_url.clone().unwrap_or_default(),
            pipeline_id: self.pipeline_id.clone().unwrap_or_default(),
            system: self.system.to_owned(),
        }
    }
}

/// The CI run we are in, or `None` outside CI or when the system's run
/// identity is missing (without it no re-run could be recognised, so the
/// caller should behave as outside CI rather than guess).
///
/// When several systems' markers are set (a GitHub runner on a machine that
/// also has `JENKINS_URL`), the first of GitHub Actions, GitLab CI,
/// Buildkite, CircleCI, Jenkins wins: Jenkins' marker is a plain URL that
/// other environments inherit most easily.
pub fn detect(env: impl Fn(&str) -> Option<String>) -> Option<CiRun> {
    let env = Env(&env);
    github(&env)
        .or_else(|| gitlab(&env))
        .or_else(|| buildkite(&env))
        .or_else(|| circleci(&env))
        .or_else(|| jenkins(&env))
}

struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// A variable's value, trimmed; empty counts as unset.
    fn get(&self, key: &str) -> Option<String> {
        (self.0)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    fn reference(&self, key: &str) -> Option<String> {
        self.get(key).and_then(reference)
    }

    fn commit(&self, key: &str) -> Option<String> {
        self.get(key).and_then(commit)
    }

    fn url(&self, key: &str) -> Option<String> {
        self.get(key).and_then(|v| url(&v))
    }

    fn repository(&self, key: &str) -> Option<String> {
        self.get(key).and_then(|v| repository_from_git_url(&v))
    }

    fn identity(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| is_identity(v))
    }
}

/// GitHub Actions' default variables.
fn github(env: &Env) -> Option<CiRun> {
    if !env.flag("GITHUB_ACTIONS") {
        return None;
    }
    let run_id = env.reference("GITHUB_RUN_ID")?;
    let server = env.url("GITHUB_SERVER_URL");
    let slug = env.reference("GITHUB_REPOSITORY");
    let (repository, run_url) = match (&server, &slug) {
        (Some(server), Some(slug)) => {
            let server = server.trim_end_matches('/');
            (
                reference(format!("{}/{slug}", without_scheme(server))),
                url(&format!("{server}/{slug}/actions/runs/{run_id}")),
            )
        }
        _ => (slug.clone(), None),
    };
    let attempt = env.reference("GITHUB_RUN_ATTEMPT");
    let job_url = match (&run_url, &attempt) {
        (Some(run_url), Some(attempt)) => url(&format!("{run_url}/attempts/{attempt}")),
        _ => None,
    };
    Some(CiRun {
        system: GITHUB_ACTIONS,
        repository,
        commit: env.commit("GITHUB_SHA"),
        branch: env.reference("GITHUB_REF_NAME"),
        run_url,
        pipeline_id: Some(run_id.clone()),
        step: env.reference("GITHUB_JOB"),
        attempt,
        job_url,
        triggered_by: env.identity("GITHUB_ACTOR"),
        run_id,
    })
}

/// GitLab's predefined variables. A retried job is a new job (new
/// `CI_JOB_ID`, `CI_JOB_URL`) in the same pipeline, so the pipeline is the run.
fn gitlab(env: &Env) -> Option<CiRun> {
    if !env.flag("GITLAB_CI") {
        return None;
    }
    let run_id = env.reference("CI_PIPELINE_ID")?;
    let path = env.reference("CI_PROJECT_PATH");
    let repository = match (env.reference("CI_SERVER_HOST"), &path) {
        (Some(host), Some(path)) => reference(format!("{host}/{path}")),
        _ => path,
    };
    let run_url = env.url("CI_PIPELINE_URL").or_else(|| {
        let project = env.url("CI_PROJECT_URL")?;
        url(&format!("{project}/-/pipelines/{run_id}"))
    });
    Some(CiRun {
        system: GITLAB_CI,
        repository,
        commit: env.commit("CI_COMMIT_SHA"),
        branch: env.reference("CI_COMMIT_REF_NAME"),
        run_url,
        pipeline_id: Some(run_id.clone()),
        step: env.reference("CI_JOB_NAME"),
        attempt: None,
        job_url: env.url("CI_JOB_URL"),
        triggered_by: None,
        run_id,
    })
}

/// Buildkite's variables. A retried job is a new job (`BUILDKITE_JOB_ID`,
/// `BUILDKITE_RETRY_COUNT`) in the same build.
fn buildkite(env: &Env) -> Option<CiRun> {
    if !env.flag("BUILDKITE") {
        return None;
    }
    let run_id = env.reference("BUILDKITE_BUILD_ID")?;
    let run_url = env.url("BUILDKITE_BUILD_URL");
    let job_url = match (&run_url, env.reference("BUILDKITE_JOB_ID")) {
        (Some(build), Some(job)) => url(&format!("{build}#{job}")),
        _ => None,
    };
    Some(CiRun {
        system: BUILDKITE,
        repository: env.repository("BUILDKITE_REPO"),
        commit: env.commit("BUILDKITE_COMMIT"),
        branch: env.reference("BUILDKITE_BRANCH"),
        run_url,
        pipeline_id: Some(run_id.clone()),
        step: env
            .reference("BUILDKITE_STEP_KEY")
            .or_else(|| env.reference("BUILDKITE_LABEL")),
        attempt: env.reference("BUILDKITE_RETRY_COUNT"),
        job_url,
        triggered_by: env.identity("BUILDKITE_BUILD_CREATOR_EMAIL"),
        run_id,
    })
}

/// CircleCI's built-in variables. Re-running a workflow creates a new
/// workflow (new `CIRCLE_WORKFLOW_ID`, new jobs and `CIRCLE_BUILD_URL`s) in
/// the same pipeline, so the pipeline is the run. CircleCI gives no URL of
/// the pipeline itself, and the job URL changes on a re-run, so the source
/// has no run URL then; the job URL is kept as `job_url`. Without
/// `CIRCLE_PIPELINE_ID` (older servers) the workflow is the best identity
/// there is, and its job URL is as stable as it.
fn circleci(env: &Env) -> Option<CiRun> {
    if !env.flag("CIRCLECI") {
        return None;
    }
    let pipeline = env.reference("CIRCLE_PIPELINE_ID");
    let run_id = pipeline
        .clone()
        .or_else(|| env.reference("CIRCLE_WORKFLOW_ID"))?;
    let repository = env.repository("CIRCLE_REPOSITORY_URL").or_else(|| {
        let user = env.reference("CIRCLE_PROJECT_USERNAME")?;
        let name = env.reference("CIRCLE_PROJECT_REPONAME")?;
        reference(format!("{user}/{name}"))
    });
    let job_url = env.url("CIRCLE_BUILD_URL");
    Some(CiRun {
        system: CIRCLECI,
        repository,
        commit: env.commit("CIRCLE_SHA1"),
        branch: env.reference("CIRCLE_BRANCH"),
        run_url: if pipeline.is_some() {
            None
        } else {
            job_url.clone()
        },
        pipeline_id: Some(run_id.clone()),
        step: env.reference("CIRCLE_JOB"),
        attempt: None,
        job_url,
        triggered_by: None,
        run_id,
    })
}

/// Jenkins' variables (core, plus `GIT_*` from the Git plugin and
/// `BRANCH_NAME`/`STAGE_NAME` from Pipeline). Jenkins has no re-run of a
/// build: "Rebuild" and "Replay" start a new build with a new number, which
/// is a new run.
fn jenkins(env: &Env) -> Option<CiRun> {
    env.get("JENKINS_URL")?;
    let build_url = env.url("BUILD_URL");
    let tag = env.reference("BUILD_TAG");
    let run_id = build_url.clone().or_else(|| tag.clone())?;
    // The Git plugin's GIT_BRANCH names the remote branch (`origin/main`).
    let branch = env.reference("BRANCH_NAME").or_else(|| {
        let branch = env.reference("GIT_BRANCH")?;
        Some(branch.strip_prefix("origin/").unwrap_or(&branch).to_owned())
    });
    Some(CiRun {
        system: JENKINS,
        repository: env.repository("GIT_URL"),
        commit: env.commit("GIT_COMMIT"),
        branch,
        run_url: build_url,
        pipeline_id: tag.or_else(|| env.reference("BUILD_NUMBER")),
        step: env
            .reference("STAGE_NAME")
            .or_else(|| env.reference("JOB_NAME")),
        attempt: None,
        job_url: None,
        triggered_by: env.identity("CHANGE_AUTHOR"),
        run_id,
    })
}

/// A source reference the server accepts: at most 2,048 bytes, no control
/// characters.
fn reference(value: String) -> Option<String> {
    let ok =
        !value.is_empty() && value.len() <= MAX_REF_BYTES && !value.chars().any(char::is_control);
    ok.then_some(value)
}

/// A commit id the server accepts: 4-64 hexadecimal characters.
fn commit(value: String) -> Option<String> {
    let ok = (4..=64).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(value)
}

/// An http(s) URL without user-info, as the server accepts a run URL.
fn url(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() {
        return None;
    }
    reference(format!("{scheme}://{host}{path}"))
}

fn without_scheme(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

/// `host/path` of a git remote, from any of its spellings:
/// `https://[user[:token]@]host/path.git`, `ssh://git@host[:port]/path.git`,
/// `git@host:path.git`. Credentials never survive.
fn repository_from_git_url(value: &str) -> Option<String> {
    let value = value.trim();
    let joined = if let Some((_, rest)) = value.split_once("://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        format!("{host}/{path}")
    } else if let Some((before, path)) = value.split_once(':')
        && !before.contains('/')
    {
        // scp-like syntax: [user@]host:path
        let host = before.rsplit_once('@').map_or(before, |(_, host)| host);
        format!("{host}/{path}")
    } else {
        value.to_owned()
    };
    let trimmed = joined.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    let trimmed = trimmed.trim_end_matches('/');
    reference(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::{
        domain::ValidEvent,
        proto::v1::{Direction, EvalKind, EvalRecorded, Event, Metric, event::Kind},
    };

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn detect_in(vars: &HashMap<String, String>) -> Option<CiRun> {
        detect(|key| vars.get(key).cloned())
    }

    fn run(vars: &HashMap<String, String>) -> CiRun {
        detect_in(vars).unwrap_or_else(|| panic!("no CI run detected in {vars:?}"))
    }

    /// The source must pass the server's own validation.
    fn assert_source_accepted(source: Source) {
        let event = Event {
            kind: Some(Kind::EvalRecorded(EvalRecorded {
                subject: "support-bot/triage-prompt".into(),
                version: "v3".into(),
                suite: "regression".into(),
                eval_kind: EvalKind::Deterministic as i32,
                metrics: vec![Metric {
                    name: "pass_rate".into(),
                    value: 1.0,
                    threshold: 1.0,
                    direction: Direction::HigherIsBetter as i32,
                }],
                source: Some(source),
                ..EvalRecorded::default()
            })),
        };
        if let Err(e) = ValidEvent::parse(Some(event), "event") {
            panic!("source rejected by the server: {e}");
        }
    }

    fn github_env(attempt: &str) -> HashMap<String, String> {
        env(&[
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SHA", "ffac537e6cbbf934b08745a378932722df287a53"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/support-bot"),
            ("GITHUB_RUN_ID", "1658821493"),
            ("GITHUB_RUN_NUMBER", "42"),
            ("GITHUB_RUN_ATTEMPT", attempt),
            ("GITHUB_JOB", "eval"),
            ("GITHUB_WORKFLOW", "LLM evals"),
            ("GITHUB_ACTOR", "octocat"),
            ("GITHUB_TRIGGERING_ACTOR", "hubot"),
        ])
    }

    #[test]
    fn github_actions() {
        let run = run(&github_env("1"));
        assert_eq!(
            run,
            CiRun {
                system: "github-actions",
                run_id: "1658821493".into(),
                repository: Some("github.com/acme/support-bot".into()),
                commit: Some("ffac537e6cbbf934b08745a378932722df287a53".into()),
                branch: Some("main".into()),
                run_url: Some("https://github.com/acme/support-bot/actions/runs/1658821493".into()),
                pipeline_id: Some("1658821493".into()),
                step: Some("eval".into()),
                attempt: Some("1".into()),
                job_url: Some(
                    "https://github.com/acme/support-bot/actions/runs/1658821493/attempts/1".into()
                ),
                triggered_by: Some("octocat".into()),
            }
        );
        assert_eq!(
            run.source(),
            Source {
                repository: "github.com/acme/support-bot".into(),
                commit: "ffac537e6cbbf934b08745a378932722df287a53".into(),
                branch: "main".into(),
                run_url: "https://github.com/acme/support-bot/actions/runs/1658821493".into(),
                pipeline_id: "1658821493".into(),
                system: "github-actions".into(),
            }
        );
        assert_source_accepted(run.source());
    }

    #[test]
    fn a_github_re_run_is_the_same_run() {
        let first = run(&github_env("1"));
        let second = run(&github_env("2"));
        assert_eq!(second.attempt.as_deref(), Some("2"));
        assert_ne!(first.job_url, second.job_url);
        assert_eq!(first.run_id, second.run_id);
        assert_eq!(first.step, second.step);
        assert_eq!(first.source(), second.source());
    }

    fn gitlab_env(job_id: &str) -> HashMap<String, String> {
        env(&[
            ("GITLAB_CI", "true"),
            ("CI_SERVER_HOST", "gitlab.example.com"),
            ("CI_PROJECT_PATH", "acme/ml/support-bot"),
            (
                "CI_PROJECT_URL",
                "https://gitlab.example.com/acme/ml/support-bot",
            ),
            ("CI_COMMIT_SHA", "1ecfd275763eff1d6b4844ea3168962458c9f27a"),
            ("CI_COMMIT_REF_NAME", "feature/refund-prompt"),
            ("CI_PIPELINE_ID", "1000246"),
            (
                "CI_PIPELINE_URL",
                "https://gitlab.example.com/acme/ml/support-bot/-/pipelines/1000246",
            ),
            ("CI_JOB_ID", job_id),
            (
                "CI_JOB_URL",
                &format!("https://gitlab.example.com/acme/ml/support-bot/-/jobs/{job_id}"),
            ),
            ("CI_JOB_NAME", "eval:promptfoo"),
        ])
    }

    #[test]
    fn gitlab_ci_and_a_retried_job() {
        let first = run(&gitlab_env("8812001"));
        assert_eq!(first.system, "gitlab-ci");
        assert_eq!(first.run_id, "1000246");
        assert_eq!(
            first.repository.as_deref(),
            Some("gitlab.example.com/acme/ml/support-bot")
        );
        assert_eq!(first.branch.as_deref(), Some("feature/refund-prompt"));
        // The pipeline's page, not the job's: a retried job has a new one.
        assert_eq!(
            first.run_url.as_deref(),
            Some("https://gitlab.example.com/acme/ml/support-bot/-/pipelines/1000246")
        );
        assert_eq!(
            first.job_url.as_deref(),
            Some("https://gitlab.example.com/acme/ml/support-bot/-/jobs/8812001")
        );
        assert_eq!(first.step.as_deref(), Some("eval:promptfoo"));
        let retried = run(&gitlab_env("8812077"));
        assert_ne!(first.job_url, retried.job_url);
        assert_eq!(first.source(), retried.source());
        assert_eq!(first.run_id, retried.run_id);
        assert_source_accepted(first.source());

        // Without CI_PIPELINE_URL the page is built from the project URL.
        let mut vars = gitlab_env("1");
        vars.remove("CI_PIPELINE_URL");
        assert_eq!(
            run(&vars).run_url.as_deref(),
            Some("https://gitlab.example.com/acme/ml/support-bot/-/pipelines/1000246")
        );
    }

    fn buildkite_env(job: &str, retry: &str) -> HashMap<String, String> {
        env(&[
            ("BUILDKITE", "true"),
            ("BUILDKITE_BUILD_ID", "01890f4c-5b9e-4a1c-9a0e-3f1f7a2b9c11"),
            ("BUILDKITE_BUILD_NUMBER", "1514"),
            (
                "BUILDKITE_BUILD_URL",
                "https://buildkite.com/acme/support-bot/builds/1514",
            ),
            ("BUILDKITE_JOB_ID", job),
            ("BUILDKITE_RETRY_COUNT", retry),
            ("BUILDKITE_COMMIT", "HEAD"),
            ("BUILDKITE_BRANCH", "main"),
            ("BUILDKITE_REPO", "git@github.com:acme/support-bot.git"),
            ("BUILDKITE_STEP_KEY", "evals"),
            ("BUILDKITE_LABEL", ":test_tube: Evals"),
        ])
    }

    #[test]
    fn buildkite_and_a_retried_job() {
        let first = run(&buildkite_env("0190aaaa-0000-4000-8000-000000000001", "0"));
        assert_eq!(first.system, "buildkite");
        assert_eq!(first.run_id, "01890f4c-5b9e-4a1c-9a0e-3f1f7a2b9c11");
        assert_eq!(
            first.repository.as_deref(),
            Some("github.com/acme/support-bot")
        );
        // `HEAD` is not a commit id: dropped, not fatal.
        assert_eq!(first.commit, None);
        assert_eq!(first.step.as_deref(), Some("evals"));
        assert_eq!(
            first.run_url.as_deref(),
            Some("https://buildkite.com/acme/support-bot/builds/1514")
        );
        assert_eq!(
            first.job_url.as_deref(),
            Some(
                "https://buildkite.com/acme/support-bot/builds/1514#0190aaaa-0000-4000-8000-000000000001"
            )
        );
        let retried = run(&buildkite_env("0190aaaa-0000-4000-8000-000000000002", "1"));
        assert_eq!(retried.attempt.as_deref(), Some("1"));
        assert_eq!(first.source(), retried.source());
        assert_source_accepted(first.source());

        // The label names the step when it has no key.
        let mut vars = buildkite_env("j", "0");
        vars.remove("BUILDKITE_STEP_KEY");
        assert_eq!(run(&vars).step.as_deref(), Some(":test_tube: Evals"));
    }

    fn circleci_env(workflow: &str, build: &str) -> HashMap<String, String> {
        env(&[
            ("CIRCLECI", "true"),
            ("CIRCLE_PIPELINE_ID", "2b7c9f3e-8d1a-4e6b-9c2d-5f0a1b3c4d5e"),
            ("CIRCLE_WORKFLOW_ID", workflow),
            ("CIRCLE_BUILD_NUM", build),
            (
                "CIRCLE_BUILD_URL",
                &format!("https://circleci.com/gh/acme/support-bot/{build}"),
            ),
            ("CIRCLE_SHA1", "0d3f2a9b6c8e1f4a7b2c5d8e0f1a3b4c5d6e7f80"),
            ("CIRCLE_BRANCH", "main"),
            ("CIRCLE_JOB", "eval"),
            ("CIRCLE_PROJECT_USERNAME", "acme"),
            ("CIRCLE_PROJECT_REPONAME", "support-bot"),
            (
                "CIRCLE_REPOSITORY_URL",
                "git@github.com:acme/support-bot.git",
            ),
        ])
    }

    #[test]
    fn circleci_and_a_rerun_workflow() {
        let first = run(&circleci_env(
            "6a1f0c2e-0000-4000-8000-000000000001",
            "9921",
        ));
        assert_eq!(first.system, "circleci");
        assert_eq!(first.run_id, "2b7c9f3e-8d1a-4e6b-9c2d-5f0a1b3c4d5e");
        assert_eq!(
            first.repository.as_deref(),
            Some("github.com/acme/support-bot")
        );
        assert_eq!(first.run_url, None);
        assert_eq!(
            first.job_url.as_deref(),
            Some("https://circleci.com/gh/acme/support-bot/9921")
        );
        let rerun = run(&circleci_env(
            "6a1f0c2e-0000-4000-8000-000000000002",
            "9934",
        ));
        assert_eq!(first.run_id, rerun.run_id);
        assert_eq!(first.source(), rerun.source());
        assert_source_accepted(first.source());

        // Older servers: the workflow is the run, and its job URL the page.
        let mut vars = circleci_env("6a1f0c2e-0000-4000-8000-000000000001", "9921");
        vars.remove("CIRCLE_PIPELINE_ID");
        vars.remove("CIRCLE_REPOSITORY_URL");
        let old = run(&vars);
        assert_eq!(old.run_id, "6a1f0c2e-0000-4000-8000-000000000001");
        assert_eq!(
            old.pipeline_id.as_deref(),
            Some("6a1f0c2e-0000-4000-8000-000000000001")
        );
        assert_eq!(
            old.run_url.as_deref(),
            Some("https://circleci.com/gh/acme/support-bot/9921")
        );
        assert_eq!(old.repository.as_deref(), Some("acme/support-bot"));
    }

    fn jenkins_env() -> HashMap<String, String> {
        env(&[
            ("JENKINS_URL", "https://jenkins.acme.internal/"),
            (
                "BUILD_URL",
                "https://jenkins.acme.internal/job/support-bot/job/main/87/",
            ),
            ("BUILD_TAG", "jenkins-support-bot-main-87"),
            ("BUILD_NUMBER", "87"),
            ("JOB_NAME", "support-bot/main"),
            ("GIT_COMMIT", "9fceb02d0ae598e95dc970b74767f19372d61af8"),
            ("GIT_BRANCH", "origin/main"),
            (
                "GIT_URL",
                "https://ci-bot:ghp_s3cr3tT0ken@github.com/acme/support-bot.git",
            ),
        ])
    }

    #[test]
    fn jenkins() {
        let run = run(&jenkins_env());
        assert_eq!(run.system, "jenkins");
        assert_eq!(
            run.run_id,
            "https://jenkins.acme.internal/job/support-bot/job/main/87/"
        );
        // The token in GIT_URL never reaches the ledger.
        assert_eq!(
            run.repository.as_deref(),
            Some("github.com/acme/support-bot")
        );
        assert_eq!(run.branch.as_deref(), Some("main"));
        assert_eq!(
            run.pipeline_id.as_deref(),
            Some("jenkins-support-bot-main-87")
        );
        assert_eq!(run.step.as_deref(), Some("support-bot/main"));
        assert_source_accepted(run.source());

        let mut vars = jenkins_env();
        vars.insert("BRANCH_NAME".into(), "release/2.1".into());
        vars.insert("STAGE_NAME".into(), "Evals".into());
        vars.remove("BUILD_URL");
        let pipeline = detect_in(&vars).unwrap_or_else(|| panic!("not detected"));
        assert_eq!(pipeline.branch.as_deref(), Some("release/2.1"));
        assert_eq!(pipeline.step.as_deref(), Some("Evals"));
        assert_eq!(pipeline.run_id, "jenkins-support-bot-main-87");
        assert_eq!(pipeline.run_url, None);
    }

    #[test]
    fn outside_ci_or_without_a_run_identity() {
        assert_eq!(detect_in(&env(&[])), None);
        assert_eq!(detect_in(&env(&[("CI", "true"), ("HOME", "/root")])), None);
        assert_eq!(detect_in(&env(&[("GITHUB_ACTIONS", "false")])), None);
        let mut vars = github_env("1");
        vars.remove("GITHUB_RUN_ID");
        assert_eq!(detect_in(&vars), None);
        vars.insert("GITHUB_RUN_ID".into(), "  ".into());
        assert_eq!(detect_in(&vars), None);
    }

    /// Who started the run, per system, as far as it survives a re-run.
    #[test]
    fn the_user_who_started_the_run() {
        let mut vars = buildkite_env("j", "0");
        vars.insert("BUILDKITE_BUILD_CREATOR".into(), "Keith Pitt".into());
        vars.insert(
            "BUILDKITE_BUILD_CREATOR_EMAIL".into(),
            "keith@example.com".into(),
        );
        assert_eq!(
            run(&vars).triggered_by.as_deref(),
            Some("keith@example.com")
        );
        // CircleCI's CIRCLE_USERNAME may follow whoever re-ran: not used.
        let mut vars = circleci_env("w", "1");
        vars.insert("CIRCLE_USERNAME".into(), "mona".into());
        assert_eq!(run(&vars).triggered_by, None);
        let mut vars = jenkins_env();
        assert_eq!(run(&vars).triggered_by, None);
        vars.insert("CHANGE_AUTHOR".into(), "jdoe".into());
        assert_eq!(run(&vars).triggered_by.as_deref(), Some("jdoe"));
        // GitLab's GITLAB_USER_LOGIN names whoever retried the job: not used.
        let mut vars = gitlab_env("7");
        vars.insert("GITLAB_USER_LOGIN".into(), "mona".into());
        assert_eq!(run(&vars).triggered_by, None);
    }

    #[test]
    fn the_first_system_wins() {
        let mut vars = jenkins_env();
        vars.extend(github_env("1"));
        assert_eq!(run(&vars).system, "github-actions");
    }

    #[test]
    fn invalid_values_are_dropped() {
        let mut vars = github_env("1");
        vars.insert("GITHUB_SHA".into(), "not-a-commit".into());
        vars.insert("GITHUB_REF_NAME".into(), "main\u{7}".into());
        vars.insert("GITHUB_SERVER_URL".into(), "ftp://github.com".into());
        vars.insert("GITHUB_JOB".into(), "x".repeat(3000));
        let run = run(&vars);
        assert_eq!(run.commit, None);
        assert_eq!(run.branch, None);
        assert_eq!(run.run_url, None);
        assert_eq!(run.step, None);
        assert_eq!(run.repository.as_deref(), Some("acme/support-bot"));
        assert_eq!(run.triggered_by.as_deref(), Some("octocat"));
        // A user name the ledger could not take as an author is dropped.
        vars.insert("GITHUB_ACTOR".into(), "Mona Lisa".into());
        assert_eq!(
            super::detect(|k| vars.get(k).cloned()).and_then(|r| r.triggered_by),
            None
        );
        assert_source_accepted(run.source());
    }

    #[test]
    fn urls_and_git_remotes() {
        assert_eq!(
            url("HTTPS://bot:pw@ci.example.com:8443/job/1?x=@y").as_deref(),
            Some("https://ci.example.com:8443/job/1?x=@y")
        );
        assert_eq!(url("https://"), None);
        assert_eq!(url("file:///tmp/x"), None);
        assert_eq!(url("ci.example.com/job/1"), None);
        for (remote, expected) in [
            ("https://github.com/acme/bot.git", "github.com/acme/bot"),
            ("https://github.com/acme/bot/", "github.com/acme/bot"),
            ("git@github.com:acme/bot.git", "github.com/acme/bot"),
            ("github.com:acme/bot", "github.com/acme/bot"),
            (
                "ssh://git@git.acme.io:7999/ml/bot.git",
                "git.acme.io:7999/ml/bot",
            ),
            (
                "https://oauth2:glpat-XXXX@gitlab.example.com/group/sub/bot.git",
                "gitlab.example.com/group/sub/bot",
            ),
            ("/srv/git/bot.git", "/srv/git/bot"),
        ] {
            assert_eq!(
                repository_from_git_url(remote).as_deref(),
                Some(expected),
                "{remote}"
            );
        }
        assert_eq!(commit("ABCDEF12".into()).as_deref(), Some("ABCDEF12"));
        assert_eq!(commit("abc".into()), None);
        assert_eq!(commit("a".repeat(65)), None);
    }
}
