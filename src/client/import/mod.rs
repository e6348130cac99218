//! Eval results of other tools, read into what an `EvalRecorded` needs.
//!
//! The importers only parse and compute; reading the file, choosing the
//! subject and version, and attaching the CI source are the CLI's job. The
//! ledger computes pass/fail from the metrics and thresholds, so an importer
//! never reports a verdict, only measured values with the thresholds the
//! caller asked for.
//!
//! - [`promptfoo`]: `promptfoo eval -o results.json` (output versions 2 and 3).
//! - [`junit`]: JUnit XML (pytest `--junitxml`, jest-junit, and others).

mod error;
pub mod junit;
pub mod label;
pub mod promptfoo;

pub use error::ImportError;

use crate::proto::v1::{EvalKind, EvalRecorded, Metric};

/// One suite's results, ready to be recorded against a version.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedSuite {
    /// The suite name (a label).
    pub suite: String,
    pub eval_kind: EvalKind,
    /// 1-64 metrics with unique label names; `pass_rate` first.
    pub metrics: Vec<Metric>,
    /// Test cases (JUnit) or test results (promptfoo) the metrics cover.
    pub sample_size: u64,
    /// The grading model of a model-graded suite, when the file names exactly
    /// one that is a valid identity.
    pub grader_model: Option<String>,
}

impl ImportedSuite {
    /// The eval event for `subject` at `version`. Source, run reference and
    /// dataset digest are left for the caller: they come from the CI, not the
    /// file.
    pub fn to_eval_recorded(&self, subject: &str, version: &str) -> EvalRecorded {
        EvalRecorded {
            subject: subject.to_owned(),
            version: version.to_owned(),
            suite: self.suite.clone(),
            eval_kind: self.eval_kind as i32,
            metrics: self.metrics.clone(),
            sample_size: self.sample_size,
            grader_model: self.grader_model.clone().unwrap_or_default(),
            ..EvalRecorded::default()
        }
    }

    /// The metric named `name`, if any.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

/// Test helpers shared by the importers' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::ImportedSuite;
    use crate::{
        domain::ValidEvent,
        proto::v1::{Direction, Event, event::Kind},
    };

    /// Runs the suite through the server's own validator, so the importers
    /// are held to the ledger's rules and not to a copy of them.
    pub fn assert_accepted_by_server(suite: &ImportedSuite) {
        let event = Event {
            kind: Some(Kind::EvalRecorded(
                suite.to_eval_recorded("support-bot/triage-prompt", "v3"),
            )),
        };
        if let Err(e) = ValidEvent::parse(Some(event), "event") {
            panic!("suite {:?} rejected by the server: {e}", suite.suite);
        }
    }

    /// `(value, threshold, direction)` of the metric `name`.
    pub fn metric(suite: &ImportedSuite, name: &str) -> (f64, f64, Direction) {
        let m = suite
            .metric(name)
            .unwrap_or_else(|| panic!("suite {:?} has no metric {name:?}", suite.suite));
        (m.value, m.threshold, m.direction())
    }

    /// Equal within a rounding error of averaging.
    pub fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }
}
