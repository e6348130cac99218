//! Why an eval result file could not be imported.

/// A rejected import. Each variant says where in the input the problem is and
/// which rule it broke, so the user can fix the file or the options without
/// reading our code.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input is not JSON at all.
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// The input is not well-formed XML.
    #[error("not well-formed XML at byte {position}: {message}")]
    Xml { position: u64, message: String },

    /// A value is present but does not have the documented shape.
    /// `path` is a JSON path (`results.results[3].success`) or an XML element
    /// path (`testsuites/testsuite[2]`).
    #[error("{path}: {rule}")]
    Invalid { path: String, rule: String },

    /// Nothing was run, so there is no pass rate to record: recording 1.0
    /// for zero tests would be false evidence.
    #[error("{0}")]
    NothingRan(String),

    /// An option given by the caller breaks a rule of the ledger.
    #[error("option {option}: {rule}")]
    Option { option: &'static str, rule: String },

    /// Two metrics or suites would get the same name once made valid labels.
    #[error("two {what} would both be named {name:?} ({first:?} and {second:?}); rename one")]
    NameCollision {
        what: &'static str,
        name: String,
        first: String,
        second: String,
    },

    /// The ledger accepts at most `max` metrics per eval result.
    #[error(
        "suite {suite:?} would have {count} metrics, more than the ledger's {max}; \
         leave out named-score or assertion-type metrics (govledger eval import \
         --no-named-scores / --no-assertion-metrics)"
    )]
    TooManyMetrics {
        suite: String,
        count: usize,
        max: usize,
    },
}

impl ImportError {
    pub(crate) fn invalid(path: impl Into<String>, rule: impl Into<String>) -> ImportError {
        ImportError::Invalid {
            path: path.into(),
            rule: rule.into(),
        }
    }
}
