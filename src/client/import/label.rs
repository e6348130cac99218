//! Names the ledger accepts for suites and metrics.
//!
//! The server's label rule lives in `domain/names.rs` (private to `domain`);
//! it is restated here because an importer must *produce* conforming names
//! from arbitrary tool output, not only check them. The tests of the
//! importers run their output through the server's own validator
//! (`ValidEvent::parse`), so a drift between the two rules fails a test.

use std::collections::BTreeMap;

use super::ImportError;
use crate::proto::v1::{Direction, Metric};

/// Longest label (suite and metric names).
pub const MAX_LABEL_LEN: usize = 64;
/// Most metrics the ledger accepts in one eval result.
pub const MAX_METRICS: usize = 64;

fn label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '+' | '-')
}

/// Whether `s` is a label: 1-64 characters of `[A-Za-z0-9._:+-]`, starting
/// with a letter or digit.
pub fn is_label(s: &str) -> bool {
    (1..=MAX_LABEL_LEN).contains(&s.len())
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(label_char)
}

/// Whether `s` is an identity (grader models, authors): 1-128 characters of
/// `[A-Za-z0-9._:@/+-]`, starting with a letter or digit.
pub fn is_identity(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '/' | '+' | '-')
        })
}

/// Turns free text (a promptfoo metric name, a provider id, a JUnit suite
/// name) into a label: every other character becomes `-`, runs of `-` are
/// collapsed, leading characters that are not letters or digits are dropped,
/// and the result is cut to `max_len`. `None` when nothing usable is left.
pub fn to_label(text: &str, max_len: usize) -> Option<String> {
    let mut out = String::with_capacity(text.len().min(max_len));
    for c in text.chars() {
        let c = if label_char(c) { c } else { '-' };
        if out.is_empty() && !c.is_ascii_alphanumeric() {
            continue;
        }
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    out.truncate(max_len.min(MAX_LABEL_LEN));
    // A trailing separator left by the cut or the replacement says nothing.
    while out.ends_with('-') {
        out.pop();
    }
    (!out.is_empty()).then_some(out)
}

/// `prefix` followed by `text` made a label (the prefix must be one).
pub fn prefixed_label(prefix: &str, text: &str) -> Option<String> {
    let rest = to_label(text, MAX_LABEL_LEN.saturating_sub(prefix.len()))?;
    Some(format!("{prefix}{rest}"))
}

/// Collects a suite's metrics, keeping names unique (as the ledger demands)
/// and remembering which source each name came from, so a collision can be
/// reported with both originals.
#[derive(Debug, Default)]
pub struct MetricSet {
    metrics: Vec<Metric>,
    origins: BTreeMap<String, String>,
}

impl MetricSet {
    pub fn push(
        &mut self,
        name: String,
        origin: &str,
        value: f64,
        threshold: f64,
        direction: Direction,
    ) -> Result<(), ImportError> {
        if let Some(first) = self.origins.get(&name) {
            return Err(ImportError::NameCollision {
                what: "metrics",
                name,
                first: first.clone(),
                second: origin.to_owned(),
            });
        }
        self.origins.insert(name.clone(), origin.to_owned());
        self.metrics.push(Metric {
            name,
            value,
            threshold,
            direction: direction as i32,
        });
        Ok(())
    }

    /// The metrics in insertion order, or an error past the ledger's limit.
    pub fn finish(self, suite: &str) -> Result<Vec<Metric>, ImportError> {
        if self.metrics.len() > MAX_METRICS {
            return Err(ImportError::TooManyMetrics {
                suite: suite.to_owned(),
                count: self.metrics.len(),
                max: MAX_METRICS,
            });
        }
        Ok(self.metrics)
    }
}

/// A threshold given by the caller must be a finite number (the ledger
/// rejects NaN and infinities).
pub fn check_threshold(option: &'static str, value: f64) -> Result<(), ImportError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(ImportError::Option {
            option,
            rule: format!("must be a finite number (got {value})"),
        })
    }
}

/// A suite name given by the caller is used as is, so it must already be a
/// label: silently renaming what the user typed would record evidence under
/// a name their policy does not require.
pub fn check_suite_name(option: &'static str, name: &str) -> Result<(), ImportError> {
    if is_label(name) {
        Ok(())
    } else {
        Err(ImportError::Option {
            option,
            rule: format!(
                "{name:?} must be 1-64 characters of [A-Za-z0-9._:+-], starting with a letter or digit"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_server_rule() {
        assert!(is_label("pass_rate"));
        assert!(is_label("assert:llm-rubric"));
        assert!(is_label(&"a".repeat(64)));
        assert!(!is_label(&"a".repeat(65)));
        assert!(!is_label(""));
        assert!(!is_label("-x"));
        assert!(!is_label("has space"));
    }

    #[test]
    fn free_text_becomes_a_label() {
        assert_eq!(
            to_label("Factual accuracy", 64).as_deref(),
            Some("Factual-accuracy")
        );
        assert_eq!(to_label("  jest tests ", 64).as_deref(), Some("jest-tests"));
        assert_eq!(
            to_label("file://../../src/providers/agent-provider.ts", 64).as_deref(),
            Some("file:-..-..-src-providers-agent-provider.ts")
        );
        assert_eq!(
            to_label("openai:gpt-4o-mini", 64).as_deref(),
            Some("openai:gpt-4o-mini")
        );
        assert_eq!(to_label("héllo wörld", 64).as_deref(), Some("h-llo-w-rld"));
        assert_eq!(to_label("abc def", 4).as_deref(), Some("abc"));
        assert_eq!(to_label("/// ", 64), None);
        assert_eq!(to_label("", 64), None);
        assert_eq!(to_label(&"x".repeat(100), 200).map(|s| s.len()), Some(64));
    }

    #[test]
    fn prefixes_leave_room_for_the_prefix() {
        let long = "n".repeat(100);
        let name = prefixed_label("metric:", &long).unwrap_or_default();
        assert_eq!(name.len(), 64);
        assert!(name.starts_with("metric:nnn"));
        assert!(is_label(&name));
        assert_eq!(prefixed_label("metric:", "!!"), None);
    }

    #[test]
    fn metric_sets_reject_duplicates_and_overflow() {
        let mut set = MetricSet::default();
        let push = |set: &mut MetricSet, name: &str, origin: &str| {
            set.push(name.to_owned(), origin, 1.0, 0.0, Direction::HigherIsBetter)
        };
        assert!(push(&mut set, "metric:a-b", "a b").is_ok());
        let err = push(&mut set, "metric:a-b", "a/b").map(|_| ()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "two metrics would both be named \"metric:a-b\" (\"a b\" and \"a/b\"); rename one"
        );
        let mut big = MetricSet::default();
        for i in 0..65 {
            assert!(push(&mut big, &format!("m{i}"), "x").is_ok());
        }
        assert!(matches!(
            big.finish("s"),
            Err(ImportError::TooManyMetrics {
                count: 65,
                max: 64,
                ..
            })
        ));
    }

    #[test]
    fn options_are_checked() {
        assert!(check_threshold("--threshold", 0.9).is_ok());
        assert!(check_threshold("--threshold", f64::NAN).is_err());
        assert!(check_suite_name("--suite", "regression").is_ok());
        assert!(check_suite_name("--suite", "my suite").is_err());
    }
}
