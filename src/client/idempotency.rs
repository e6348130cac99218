//! Idempotency keys derived from the CI run, so a re-run job does not
//! record twice.
//!
//! The key is `ci:<system>:<hex>`, where `<hex>` is the BLAKE3 hash of a
//! domain-separation prefix and, each length-prefixed, the system, the
//! repository, the run id, the step, and the BLAKE3 digest of the event's
//! protobuf encoding (the same bytes the server stores and digests; maps are
//! BTreeMaps, so the encoding is deterministic). 82 to 86 printable ASCII
//! characters: within the server's 128.
//!
//! What follows from it:
//!
//! - A re-run (same run id, same step) that sends the same event gets the
//!   same key, and the server answers with the original entry
//!   (`deduplicated`) instead of recording it again.
//! - A re-run whose event *differs* (an LLM eval that scored differently)
//!   gets a different key and is recorded: it is new evidence. For the
//!   same-event case to hold, the event must carry nothing that varies per
//!   attempt, which is why [`CiRun::source`] leaves attempt numbers and
//!   per-attempt URLs out.
//! - A later run of the same content is a different run id, so it is
//!   recorded again: fresh evidence restarts the policy's evidence age.

use prost::Message;

use super::ci::CiRun;
use crate::{hash::PayloadDigest, proto::v1::Event};

/// Domain-separation prefix: a key hash can never equal any other BLAKE3 use
/// in the system.
pub const IDEMPOTENCY_KEY_DOMAIN: &[u8] = b"govledger/v1/ci-idempotency-key\x00";

/// The idempotency key of recording `event` in `step` of `run`.
///
/// `step` names the recording step within the run: usually the CI job
/// (`run.step`, or empty when the system names none), refined by the caller
/// when one job records several events the same way.
pub fn idempotency_key(run: &CiRun, step: &str, event: &Event) -> String {
    let digest = PayloadDigest::of(&event.encode_to_vec());
    let mut hasher = blake3::Hasher::new();
    hasher.update(IDEMPOTENCY_KEY_DOMAIN);
    // Run ids are unique per repository on some systems (GitHub), so the
    // repository is part of the run's identity.
    let parts = [
        run.system,
        run.repository.as_deref().unwrap_or_default(),
        run.run_id.as_str(),
        step,
    ];
    for part in parts {
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.update(&digest.0);
    format!("ci:{}:{}", run.system, hasher.finalize().to_hex())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::{
        client::ci::{self, detect},
        domain::IdempotencyKey,
        proto::v1::{Direction, EvalKind, EvalRecorded, Metric, event::Kind},
    };

    fn github(attempt: &str, run_id: &str) -> CiRun {
        let vars: HashMap<&str, &str> = HashMap::from([
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SHA", "ffac537e6cbbf934b08745a378932722df287a53"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/support-bot"),
            ("GITHUB_RUN_ID", run_id),
            ("GITHUB_RUN_ATTEMPT", attempt),
            ("GITHUB_JOB", "eval"),
        ]);
        detect(|key| vars.get(key).map(|v| (*v).to_owned()))
            .unwrap_or_else(|| panic!("GitHub Actions not detected"))
    }

    /// An eval event as the CLI would build it: the run's source included.
    fn eval(run: &CiRun, pass_rate: f64) -> Event {
        Event {
            kind: Some(Kind::EvalRecorded(EvalRecorded {
                subject: "support-bot/triage-prompt".into(),
                version: "v3".into(),
                suite: "regression".into(),
                eval_kind: EvalKind::ModelGraded as i32,
                metrics: vec![Metric {
                    name: "pass_rate".into(),
                    value: pass_rate,
                    threshold: 0.9,
                    direction: Direction::HigherIsBetter as i32,
                }],
                sample_size: 200,
                source: Some(run.source()),
                ..EvalRecorded::default()
            })),
        }
    }

    #[test]
    fn same_inputs_same_key() {
        let run = github("1", "1658821493");
        let key = idempotency_key(&run, "eval", &eval(&run, 0.92));
        assert_eq!(key, idempotency_key(&run, "eval", &eval(&run, 0.92)));
        assert!(key.starts_with("ci:github-actions:"));
        assert_eq!(key.len(), "ci:github-actions:".len() + 64);
        assert!(IdempotencyKey::parse(&key).is_ok());
    }

    #[test]
    fn a_re_run_attempt_gets_the_same_key() {
        let first = github("1", "1658821493");
        let second = github("2", "1658821493");
        assert_eq!(
            idempotency_key(&first, "eval", &eval(&first, 0.92)),
            idempotency_key(&second, "eval", &eval(&second, 0.92))
        );
    }

    #[test]
    fn step_content_and_run_change_the_key() {
        let run = github("1", "1658821493");
        let key = idempotency_key(&run, "eval", &eval(&run, 0.92));
        assert_ne!(
            key,
            idempotency_key(&run, "eval-nightly", &eval(&run, 0.92))
        );
        assert_ne!(key, idempotency_key(&run, "eval", &eval(&run, 0.91)));
        let next = github("1", "1658821494");
        assert_ne!(key, idempotency_key(&next, "eval", &eval(&next, 0.92)));
        // The same run id in another repository is another run.
        let mut fork = run.clone();
        fork.repository = Some("github.com/someone/support-bot".into());
        assert_ne!(key, idempotency_key(&fork, "eval", &eval(&run, 0.92)));
        let mut other_system = run.clone();
        other_system.system = ci::GITLAB_CI;
        let other = idempotency_key(&other_system, "eval", &eval(&run, 0.92));
        assert!(other.starts_with("ci:gitlab-ci:"));
        assert_ne!(key[key.len() - 64..], other[other.len() - 64..]);
    }

    #[test]
    fn parts_are_length_prefixed() {
        let mut a = github("1", "1658821493");
        a.run_id = "12".into();
        let mut b = a.clone();
        b.run_id = "1".into();
        let event = eval(&a, 0.5);
        assert_ne!(
            idempotency_key(&a, "3", &event),
            idempotency_key(&b, "23", &event)
        );
    }

    #[test]
    fn every_system_fits_the_server_rule() {
        let run = github("1", "1");
        for system in [
            ci::GITHUB_ACTIONS,
            ci::GITLAB_CI,
            ci::BUILDKITE,
            ci::CIRCLECI,
            ci::JENKINS,
        ] {
            let mut run = run.clone();
            run.system = system;
            let key = idempotency_key(&run, "", &Event::default());
            assert!(IdempotencyKey::parse(&key).is_ok(), "{key}");
        }
    }

    /// The derivation is a compatibility boundary: a CLI that derived keys
    /// differently would record a re-run of a job run by an older CLI
    /// again. Change this value only with a deliberate format change. It was
    /// computed independently of this code (Python's `blake3` package) as
    /// BLAKE3(domain || le64(len) || part ... || BLAKE3(b"")), the encoding
    /// of an empty `Event` being empty.
    #[test]
    fn the_derivation_is_pinned() {
        let run = CiRun {
            system: ci::GITHUB_ACTIONS,
            run_id: "1658821493".into(),
            repository: Some("github.com/acme/support-bot".into()),
            commit: None,
            branch: None,
            run_url: None,
            pipeline_id: None,
            step: None,
            attempt: None,
            job_url: None,
            triggered_by: None,
        };
        assert_eq!(
            idempotency_key(&run, "eval", &Event::default()),
            "ci:github-actions:eda013e845c85ce4dd1c1e691e34207ebd7751ad2611960a732bdf6907b28818"
        );
    }
}
