//! promptfoo's JSON output (`promptfoo eval -o results.json`).
//!
//! The file is promptfoo's `OutputFile`: `{evalId, results, config,
//! shareableUrl, metadata}`, where `results` is an `EvaluateSummary`:
//!
//! - version 3 (promptfoo since mid-2024): `{version: 3, timestamp, prompts,
//!   results: EvaluateResult[], stats: {successes, failures, errors, ...}}`;
//! - version 2 and older: `{version, timestamp, results: EvaluateResult[],
//!   table, stats: {successes, failures, ...}}`.
//!
//! Both carry one `EvaluateResult` per test × prompt × provider, with
//! `success`, `provider` (`{id, label}`), `namedScores` (v3) and
//! `gradingResult.componentResults[]`, each with `pass` and the `assertion`
//! (`type`, `metric`, `provider`). A bare `EvaluateSummary` (what promptfoo's
//! Node `evaluate()` returns, sometimes saved as is) is read too.
//!
//! What is recorded, per suite (one suite, or one per provider):
//!
//! - `pass_rate` = results with `success: true` / all results. Errored results
//!   (`failureReason: 2`) count as not passed: an eval that could not run did
//!   not pass. Higher is better; threshold from the caller (default 1.0, as
//!   promptfoo itself fails the run on any failure).
//! - `metric:<name>` = the mean of `namedScores[name]` over the results that
//!   have it (promptfoo's own per-prompt aggregate is the same sum / count).
//! - `assert:<type>` = passed / evaluated assertions of that type.
//!
//! The extra metrics are evidence a policy can put thresholds on; by default
//! their own thresholds (0) never fail the suite, so `pass_rate` alone decides
//! unless the caller or the policy says otherwise. The counts come from the
//! results themselves, not from `stats`, so the metrics always describe the
//! results in the file. Unknown fields are ignored.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{
    ImportError, ImportedSuite,
    label::{
        MAX_LABEL_LEN, MetricSet, check_suite_name, check_threshold, is_identity, prefixed_label,
    },
};
use crate::proto::v1::{Direction, EvalKind};

/// The newest output version this importer understands.
const MAX_VERSION: f64 = 3.0;

/// Assertion types graded by a model, after stripping a `not-` prefix. From
/// promptfoo's "Model-graded metrics" documentation, plus its embedding,
/// classifier and moderation checks, which a model also decides.
const MODEL_GRADED: &[&str] = &[
    "llm-rubric",
    "search-rubric",
    "model-graded-closedqa",
    "model-graded-factuality",
    "factuality",
    "g-eval",
    "answer-relevance",
    "context-faithfulness",
    "context-recall",
    "context-relevance",
    "conversation-relevance",
    "select-best",
    "similar",
    "similar:cosine",
    "similar:dot",
    "similar:euclidean",
    "pi",
    "classifier",
    "moderation",
];
/// Red-team graders (`promptfoo:redteam:<plugin>`) are LLM judges too.
const REDTEAM_PREFIX: &str = "promptfoo:redteam:";
/// The assertion type promptfoo's web viewer records for a manual rating.
const HUMAN: &str = "human";
/// An assertion set only groups other assertions; its children are counted.
const ASSERT_SET: &str = "assert-set";

/// How to turn the file into suites.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptfooOptions {
    /// Suite name, or the prefix of per-provider suite names. Must be a label.
    pub suite: String,
    /// One suite per provider, named `<suite>.<provider label or id>`.
    pub split_by_provider: bool,
    /// Threshold of `pass_rate`.
    pub pass_rate_threshold: f64,
    /// Record `metric:<name>` for promptfoo's named scores.
    pub named_scores: bool,
    /// Threshold of every `metric:<name>`.
    pub named_score_threshold: f64,
    /// Record `assert:<type>` pass rates.
    pub assertion_types: bool,
    /// Threshold of every `assert:<type>`.
    pub assertion_threshold: f64,
}

impl Default for PromptfooOptions {
    fn default() -> Self {
        PromptfooOptions {
            suite: "promptfoo".to_owned(),
            split_by_provider: false,
            pass_rate_threshold: 1.0,
            named_scores: true,
            named_score_threshold: 0.0,
            assertion_types: true,
            assertion_threshold: 0.0,
        }
    }
}

/// Reads a promptfoo output file. Returns one suite, or one per provider
/// (sorted by name) when `options.split_by_provider` is set.
pub fn parse(json: &str, options: &PromptfooOptions) -> Result<Vec<ImportedSuite>, ImportError> {
    check_options(options)?;
    let root: Value = serde_json::from_str(json)?;
    let file = object(&root, "(root)")?;
    let (summary, base) = match file.get("results") {
        Some(Value::Object(summary)) => (summary, "results".to_owned()),
        // A bare EvaluateSummary: its `results` is the array itself.
        Some(Value::Array(_)) => (file, String::new()),
        Some(_) => {
            return Err(ImportError::invalid(
                "results",
                "expected an object (promptfoo's EvaluateSummary)",
            ));
        }
        None => {
            return Err(ImportError::invalid(
                "results",
                "is required: not a promptfoo output file (`promptfoo eval -o results.json`)",
            ));
        }
    };
    check_version(summary, &base)?;
    let defaults = FileDefaults::of(file);

    let results_path = join(&base, "results");
    let items = match present(summary, "results") {
        Some(v) => array(v, &results_path)?,
        None => return Err(ImportError::invalid(results_path, "is required")),
    };
    if items.is_empty() {
        return Err(ImportError::NothingRan(format!(
            "{results_path} is empty: promptfoo ran no tests, so there is no pass rate to record"
        )));
    }
    let results = items
        .iter()
        .enumerate()
        .map(|(i, item)| TestResult::read(item, &format!("{results_path}[{i}]"), &defaults))
        .collect::<Result<Vec<_>, _>>()?;

    if !options.split_by_provider {
        return Ok(vec![suite(&options.suite, &results, options)?]);
    }
    let prefix = format!("{}.", options.suite);
    let mut groups: BTreeMap<String, (String, Vec<TestResult>)> = BTreeMap::new();
    for (i, result) in results.into_iter().enumerate() {
        let Some(provider) = result.provider.clone() else {
            return Err(ImportError::invalid(
                format!("{results_path}[{i}].provider"),
                "is required to split the results by provider (an id or a label)",
            ));
        };
        let name = prefixed_label(&prefix, &provider).ok_or_else(|| {
            ImportError::invalid(
                format!("{results_path}[{i}].provider"),
                format!("{provider:?} has no letter or digit to name a suite by"),
            )
        })?;
        let (first, group) = groups
            .entry(name.clone())
            .or_insert_with(|| (provider.clone(), Vec::new()));
        if *first != provider {
            return Err(ImportError::NameCollision {
                what: "provider suites",
                name,
                first: first.clone(),
                second: provider,
            });
        }
        group.push(result);
    }
    groups
        .iter()
        .map(|(name, (_, group))| suite(name, group, options))
        .collect()
}

fn check_options(options: &PromptfooOptions) -> Result<(), ImportError> {
    check_suite_name("suite", &options.suite)?;
    if options.split_by_provider && options.suite.len() + 2 > MAX_LABEL_LEN {
        return Err(ImportError::Option {
            option: "suite",
            rule: "is too long to prefix per-provider suite names".to_owned(),
        });
    }
    check_threshold("pass_rate_threshold", options.pass_rate_threshold)?;
    check_threshold("named_score_threshold", options.named_score_threshold)?;
    check_threshold("assertion_threshold", options.assertion_threshold)
}

fn check_version(summary: &Map<String, Value>, base: &str) -> Result<(), ImportError> {
    let path = join(base, "version");
    let Some(version) = present(summary, "version") else {
        return Ok(());
    };
    let version = number(version, &path)?;
    if version > MAX_VERSION {
        return Err(ImportError::invalid(
            path,
            format!(
                "unsupported output version {version}; this importer reads promptfoo output versions 2 and 3"
            ),
        ));
    }
    Ok(())
}

/// What the file's config says for every test, used when a result does not
/// say it itself.
struct FileDefaults {
    grader: Option<String>,
}

impl FileDefaults {
    fn of(file: &Map<String, Value>) -> FileDefaults {
        let config = present(file, "config");
        let default_test = config
            .and_then(|c| c.get("defaultTest"))
            .and_then(|t| t.get("options"))
            .and_then(|o| o.get("provider"))
            .and_then(provider_id);
        // `promptfoo eval --grader X` is kept in the config's command line options.
        let command_line = config
            .and_then(|c| c.get("commandLineOptions"))
            .and_then(|o| o.get("grader"))
            .and_then(provider_id);
        FileDefaults {
            grader: default_test.or(command_line),
        }
    }
}

/// One `EvaluateResult`, reduced to what the metrics need.
struct TestResult {
    provider: Option<String>,
    success: bool,
    named_scores: Vec<(String, f64)>,
    assertions: Vec<Assertion>,
}

struct Assertion {
    kind: String,
    pass: bool,
    /// The grading provider, for model-graded assertions.
    grader: Option<String>,
}

impl TestResult {
    fn read(item: &Value, path: &str, defaults: &FileDefaults) -> Result<TestResult, ImportError> {
        let result = object(item, path)?;
        let success = match present(result, "success") {
            Some(v) => boolean(v, &join(path, "success"))?,
            None => return Err(ImportError::invalid(join(path, "success"), "is required")),
        };
        let provider = match present(result, "provider") {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(Value::Object(p)) => {
                let label = p.get("label").and_then(Value::as_str).map(str::trim);
                let id = p.get("id").and_then(Value::as_str).map(str::trim);
                label
                    .filter(|l| !l.is_empty())
                    .or(id.filter(|i| !i.is_empty()))
                    .map(str::to_owned)
            }
            Some(_) => {
                return Err(ImportError::invalid(
                    join(path, "provider"),
                    "expected an object with an id, or a string",
                ));
            }
        };
        let grading = present(result, "gradingResult");
        let named_path = join(path, "namedScores");
        let named_scores = match present(result, "namedScores") {
            Some(scores) => scores_of(scores, &named_path)?,
            // Older outputs keep them only in the grading result.
            None => match grading.and_then(|g| g.get("namedScores")) {
                Some(scores) if !scores.is_null() => {
                    scores_of(scores, &join(path, "gradingResult.namedScores"))?
                }
                _ => Vec::new(),
            },
        };
        // The grader a test case sets for all its assertions.
        let test_grader = present(result, "testCase")
            .and_then(|t| t.get("options"))
            .and_then(|o| o.get("provider"))
            .and_then(provider_id)
            .or_else(|| defaults.grader.clone());
        let mut assertions = Vec::new();
        if let Some(grading) = grading {
            collect(
                grading,
                &join(path, "gradingResult"),
                test_grader.as_deref(),
                &mut assertions,
            )?;
        }
        Ok(TestResult {
            provider,
            success,
            named_scores,
            assertions,
        })
    }
}

/// Walks a grading result: a node with an assertion type is one evaluated
/// assertion; any other node (the per-test aggregate, an assertion set)
/// stands for its `componentResults`, so nothing is counted twice.
fn collect(
    node: &Value,
    path: &str,
    test_grader: Option<&str>,
    out: &mut Vec<Assertion>,
) -> Result<(), ImportError> {
    let grading = object(node, path)?;
    let assertion = present(grading, "assertion");
    let kind = match assertion.and_then(|a| a.get("type")) {
        None | Some(Value::Null) => None,
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(_) => {
            return Err(ImportError::invalid(
                join(path, "assertion.type"),
                "expected a string",
            ));
        }
    };
    if let Some(kind) = kind.filter(|k| *k != ASSERT_SET) {
        let pass = match present(grading, "pass") {
            Some(v) => boolean(v, &join(path, "pass"))?,
            None => return Err(ImportError::invalid(join(path, "pass"), "is required")),
        };
        let grader = is_model_graded(kind).then(|| {
            assertion
                .and_then(|a| a.get("provider"))
                .and_then(provider_id)
                .or_else(|| test_grader.map(str::to_owned))
        });
        out.push(Assertion {
            kind: kind.to_owned(),
            pass,
            grader: grader.flatten(),
        });
        return Ok(());
    }
    let children_path = join(path, "componentResults");
    if let Some(children) = present(grading, "componentResults") {
        for (i, child) in array(children, &children_path)?.iter().enumerate() {
            collect(child, &format!("{children_path}[{i}]"), test_grader, out)?;
        }
    }
    Ok(())
}

/// A grading provider is a string id or an object with an `id`; anything
/// else (a map of providers per purpose) names no single model.
fn provider_id(value: &Value) -> Option<String> {
    match value {
        Value::String(id) => Some(id.trim().to_owned()),
        Value::Object(p) => p
            .get("id")
            .and_then(Value::as_str)
            .map(|s| s.trim().to_owned()),
        _ => None,
    }
    .filter(|id| !id.is_empty())
}

fn base_type(kind: &str) -> &str {
    kind.strip_prefix("not-").unwrap_or(kind)
}

fn is_model_graded(kind: &str) -> bool {
    let base = base_type(kind);
    MODEL_GRADED.contains(&base) || base.starts_with(REDTEAM_PREFIX)
}

fn scores_of(value: &Value, path: &str) -> Result<Vec<(String, f64)>, ImportError> {
    object(value, path)?
        .iter()
        .map(|(name, score)| Ok((name.clone(), number(score, &format!("{path}[{name:?}]"))?)))
        .collect()
}

/// One suite from a group of results.
fn suite(
    name: &str,
    results: &[TestResult],
    options: &PromptfooOptions,
) -> Result<ImportedSuite, ImportError> {
    let total = results.len();
    let passed = results.iter().filter(|r| r.success).count();
    let mut metrics = MetricSet::default();
    metrics.push(
        "pass_rate".to_owned(),
        "pass rate",
        ratio(passed, total),
        options.pass_rate_threshold,
        Direction::HigherIsBetter,
    )?;

    if options.named_scores {
        // name -> (sum, count), sorted by name so the metric order is stable.
        let mut named: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        for (score_name, score) in results.iter().flat_map(|r| &r.named_scores) {
            let entry = named.entry(score_name).or_default();
            entry.0 += score;
            entry.1 += 1;
        }
        for (score_name, (sum, count)) in named {
            let label = prefixed_label("metric:", score_name).ok_or_else(|| {
                ImportError::invalid(
                    "namedScores",
                    format!("{score_name:?} has no letter or digit to name a metric by"),
                )
            })?;
            let mean = sum / count as f64;
            metrics.push(
                label,
                score_name,
                mean,
                options.named_score_threshold,
                Direction::HigherIsBetter,
            )?;
        }
    }

    if options.assertion_types {
        // type -> (passed, evaluated)
        let mut kinds: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for assertion in results.iter().flat_map(|r| &r.assertions) {
            let entry = kinds.entry(&assertion.kind).or_default();
            entry.0 += usize::from(assertion.pass);
            entry.1 += 1;
        }
        for (kind, (passed, evaluated)) in kinds {
            let label = prefixed_label("assert:", kind).ok_or_else(|| {
                ImportError::invalid(
                    "assertion.type",
                    format!("{kind:?} has no letter or digit to name a metric by"),
                )
            })?;
            metrics.push(
                label,
                kind,
                ratio(passed, evaluated),
                options.assertion_threshold,
                Direction::HigherIsBetter,
            )?;
        }
    }

    let assertions = || results.iter().flat_map(|r| &r.assertions);
    let eval_kind = if assertions().any(|a| is_model_graded(&a.kind)) {
        EvalKind::ModelGraded
    } else if assertions().any(|a| base_type(&a.kind) == HUMAN) {
        EvalKind::Human
    } else {
        EvalKind::Deterministic
    };
    let graders: BTreeSet<&str> = assertions().filter_map(|a| a.grader.as_deref()).collect();
    // Only an unambiguous grader is recorded; several (or an id the ledger
    // cannot store) are left to the caller's `--grader`.
    let grader_model = match graders.into_iter().collect::<Vec<_>>().as_slice() {
        [only] if is_identity(only) => Some((*only).to_owned()),
        _ => None,
    };
    Ok(ImportedSuite {
        suite: name.to_owned(),
        eval_kind,
        metrics: metrics.finish(name)?,
        sample_size: total as u64,
        grader_model,
    })
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

/// A field that is present and not `null` (promptfoo writes `null` for
/// absent optional values, e.g. `gradingResult: null`).
fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ImportError> {
    value
        .as_object()
        .ok_or_else(|| ImportError::invalid(path, "expected an object"))
}

fn array<'a>(value: &'a Value, path: &str) -> Result<&'a Vec<Value>, ImportError> {
    value
        .as_array()
        .ok_or_else(|| ImportError::invalid(path, "expected an array"))
}

fn boolean(value: &Value, path: &str) -> Result<bool, ImportError> {
    value
        .as_bool()
        .ok_or_else(|| ImportError::invalid(path, "expected a boolean"))
}

fn number(value: &Value, path: &str) -> Result<f64, ImportError> {
    value
        .as_f64()
        .filter(|n| n.is_finite())
        .ok_or_else(|| ImportError::invalid(path, "expected a number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::import::testing::{assert_accepted_by_server, close, metric};

    const V3: &str = include_str!("../../../tests/fixtures/promptfoo-results.json");
    const V2: &str = include_str!("../../../tests/fixtures/promptfoo-results-v2.json");

    fn names(suite: &ImportedSuite) -> Vec<&str> {
        suite.metrics.iter().map(|m| m.name.as_str()).collect()
    }

    fn one(json: &str) -> ImportedSuite {
        match parse(json, &PromptfooOptions::default()) {
            Ok(mut suites) if suites.len() == 1 => suites.remove(0),
            other => panic!("expected one suite, got {other:?}"),
        }
    }

    fn err(json: &str) -> String {
        match parse(json, &PromptfooOptions::default()) {
            Ok(suites) => panic!("expected an error, got {suites:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn v3_file_as_one_suite() {
        let suite = one(V3);
        assert_eq!(suite.suite, "promptfoo");
        assert_eq!(suite.sample_size, 6);
        assert_eq!(suite.eval_kind, EvalKind::ModelGraded);
        assert_eq!(suite.grader_model.as_deref(), Some("openai:gpt-4o"));
        assert_eq!(
            names(&suite),
            [
                "pass_rate",
                "metric:accuracy",
                "metric:policy",
                "metric:tone",
                "assert:contains",
                "assert:icontains",
                "assert:javascript",
                "assert:llm-rubric",
                "assert:not-contains",
            ]
        );
        // 3 of 6 results succeeded; the errored one counts as not passed.
        assert_eq!(
            metric(&suite, "pass_rate"),
            (0.5, 1.0, Direction::HigherIsBetter)
        );
        let (accuracy, threshold, direction) = metric(&suite, "metric:accuracy");
        assert!(close(accuracy, 1.0));
        assert_eq!((threshold, direction), (0.0, Direction::HigherIsBetter));
        // policy: results 2 (1.0) and 5 (0.1); tone: results 0, 1, 3.
        assert!(close(metric(&suite, "metric:policy").0, 0.55));
        assert!(close(metric(&suite, "metric:tone").0, 0.8));
        assert!(close(metric(&suite, "assert:contains").0, 1.0));
        assert!(close(metric(&suite, "assert:icontains").0, 1.0));
        assert!(close(metric(&suite, "assert:javascript").0, 0.5));
        assert!(close(metric(&suite, "assert:llm-rubric").0, 0.8));
        assert!(close(metric(&suite, "assert:not-contains").0, 0.0));
        assert_accepted_by_server(&suite);
    }

    #[test]
    fn v3_file_split_by_provider() {
        let options = PromptfooOptions {
            split_by_provider: true,
            pass_rate_threshold: 0.6,
            ..PromptfooOptions::default()
        };
        let suites = parse(V3, &options).unwrap_or_default();
        let names: Vec<&str> = suites.iter().map(|s| s.suite.as_str()).collect();
        // The labelled provider is named by its label, the other by its id.
        assert_eq!(
            names,
            [
                "promptfoo.anthropic:messages:claude-haiku-4-5",
                "promptfoo.mini"
            ]
        );
        let (haiku, mini) = (&suites[0], &suites[1]);
        assert_eq!((haiku.sample_size, mini.sample_size), (3, 3));
        assert!(close(metric(mini, "pass_rate").0, 2.0 / 3.0));
        assert_eq!(metric(mini, "pass_rate").1, 0.6);
        assert!(close(metric(mini, "metric:tone").0, 0.85));
        assert!(close(metric(mini, "metric:policy").0, 1.0));
        assert!(close(metric(mini, "assert:llm-rubric").0, 1.0));
        assert!(close(metric(mini, "assert:not-contains").0, 0.0));
        assert!(close(metric(haiku, "pass_rate").0, 1.0 / 3.0));
        assert!(close(metric(haiku, "metric:tone").0, 0.7));
        assert!(close(metric(haiku, "metric:policy").0, 0.1));
        assert!(close(metric(haiku, "assert:llm-rubric").0, 0.5));
        assert!(close(metric(haiku, "assert:javascript").0, 0.0));
        // The errored result ran no assertion, so these types never ran here.
        assert!(haiku.metric("assert:icontains").is_none());
        assert!(haiku.metric("assert:not-contains").is_none());
        for suite in &suites {
            assert_eq!(suite.eval_kind, EvalKind::ModelGraded);
            assert_accepted_by_server(suite);
        }
    }

    #[test]
    fn v2_file() {
        let suite = one(V2);
        assert_eq!(suite.sample_size, 4);
        assert_eq!(suite.eval_kind, EvalKind::Deterministic);
        assert_eq!(suite.grader_model, None);
        assert_eq!(
            names(&suite),
            [
                "pass_rate",
                "assert:contains",
                "assert:equals",
                "assert:is-json"
            ]
        );
        assert!(close(metric(&suite, "pass_rate").0, 0.75));
        assert!(close(metric(&suite, "assert:contains").0, 2.0 / 3.0));
        assert!(close(metric(&suite, "assert:equals").0, 1.0));
        assert!(close(metric(&suite, "assert:is-json").0, 1.0));
        assert_accepted_by_server(&suite);
    }

    #[test]
    fn options_shape_the_metrics() {
        let options = PromptfooOptions {
            suite: "regression".to_owned(),
            named_scores: false,
            assertion_types: false,
            pass_rate_threshold: 0.9,
            ..PromptfooOptions::default()
        };
        let suites = parse(V3, &options).unwrap_or_default();
        assert_eq!(suites.len(), 1);
        assert_eq!(suites[0].suite, "regression");
        assert_eq!(names(&suites[0]), ["pass_rate"]);
        assert_eq!(metric(&suites[0], "pass_rate").1, 0.9);

        let thresholds = PromptfooOptions {
            named_score_threshold: 0.7,
            assertion_threshold: 0.5,
            ..PromptfooOptions::default()
        };
        let suite = &parse(V3, &thresholds).unwrap_or_default()[0];
        assert_eq!(metric(suite, "metric:tone").1, 0.7);
        assert_eq!(metric(suite, "assert:contains").1, 0.5);

        let bad = PromptfooOptions {
            suite: "my suite".to_owned(),
            ..PromptfooOptions::default()
        };
        assert!(matches!(
            parse(V3, &bad),
            Err(ImportError::Option {
                option: "suite",
                ..
            })
        ));
        let nan = PromptfooOptions {
            pass_rate_threshold: f64::NAN,
            ..PromptfooOptions::default()
        };
        assert!(parse(V3, &nan).is_err());
    }

    #[test]
    fn bare_summary_and_unknown_fields() {
        let json = r#"{"version": 3, "futureField": [1, 2], "results": [
            {"success": true, "provider": "echo", "extra": {"a": 1}},
            {"success": false, "provider": {"id": "echo"}, "gradingResult": null,
             "namedScores": {"Factual accuracy": 0.25}}
        ]}"#;
        let suite = one(json);
        assert_eq!(suite.sample_size, 2);
        assert!(close(metric(&suite, "pass_rate").0, 0.5));
        assert!(close(metric(&suite, "metric:Factual-accuracy").0, 0.25));
        assert_eq!(suite.eval_kind, EvalKind::Deterministic);
    }

    #[test]
    fn model_grading_and_graders() {
        // The assertion's own provider wins over the test's; `not-` variants
        // of model-graded types are model-graded.
        let json = r#"{"results": {"version": 3, "results": [
            {"success": true, "testCase": {"options": {"provider": "openai:gpt-4o"}},
             "gradingResult": {"pass": true, "componentResults": [
                {"pass": true, "assertion": {"type": "not-llm-rubric",
                 "provider": {"id": "anthropic:messages:claude-sonnet-4"}}}]}}
        ]}}"#;
        let suite = one(json);
        assert_eq!(suite.eval_kind, EvalKind::ModelGraded);
        assert_eq!(
            suite.grader_model.as_deref(),
            Some("anthropic:messages:claude-sonnet-4")
        );

        // Two graders: ambiguous, so none is recorded.
        let json = r#"{"results": {"results": [
            {"success": true, "gradingResult": {"pass": true, "componentResults": [
                {"pass": true, "assertion": {"type": "llm-rubric", "provider": "a:b"}},
                {"pass": true, "assertion": {"type": "factuality", "provider": "c:d"}}]}}
        ]}}"#;
        assert_eq!(one(json).grader_model, None);

        // The config's default grader applies when the test names none; a
        // red-team grader is a model.
        let json = r#"{"config": {"defaultTest": {"options": {"provider": {"id": "openai:gpt-4.1"}}}},
            "results": {"results": [
            {"success": false, "gradingResult": {"pass": false, "componentResults": [
                {"pass": false, "assertion": {"type": "promptfoo:redteam:harmful"}}]}}
        ]}}"#;
        let suite = one(json);
        assert_eq!(suite.grader_model.as_deref(), Some("openai:gpt-4.1"));
        assert!(close(
            metric(&suite, "assert:promptfoo:redteam:harmful").0,
            0.0
        ));

        // A manual rating only: a human eval.
        let json = r#"{"results": {"results": [
            {"success": true, "gradingResult": {"pass": true, "componentResults": [
                {"pass": true, "assertion": {"type": "human"}}]}}
        ]}}"#;
        assert_eq!(one(json).eval_kind, EvalKind::Human);
    }

    #[test]
    fn assertion_sets_count_their_children_once() {
        let json = r#"{"results": {"results": [
            {"success": true, "gradingResult": {"pass": true, "assertion": null, "componentResults": [
                {"pass": true, "assertion": {"type": "assert-set"}, "componentResults": [
                    {"pass": true, "assertion": {"type": "contains"}},
                    {"pass": false, "assertion": {"type": "regex"}}]},
                {"pass": true, "assertion": {"type": "contains"}}]}},
            {"success": true, "gradingResult": {"pass": true, "assertion": {"type": "equals"},
                "componentResults": [{"pass": true, "assertion": {"type": "equals"}}]}}
        ]}}"#;
        let suite = one(json);
        assert_eq!(
            names(&suite),
            [
                "pass_rate",
                "assert:contains",
                "assert:equals",
                "assert:regex"
            ]
        );
        assert!(close(metric(&suite, "assert:contains").0, 1.0));
        assert!(close(metric(&suite, "assert:regex").0, 0.0));
        // The top-level `equals` stands for its single component: counted once.
        assert!(close(metric(&suite, "assert:equals").0, 1.0));
    }

    #[test]
    fn errors_name_the_path_and_the_rule() {
        assert!(err("not json").starts_with("not valid JSON"));
        assert_eq!(err("[]"), "(root): expected an object");
        assert_eq!(
            err(r#"{"config": {}}"#),
            "results: is required: not a promptfoo output file (`promptfoo eval -o results.json`)"
        );
        assert_eq!(
            err(r#"{"results": "x"}"#),
            "results: expected an object (promptfoo's EvaluateSummary)"
        );
        assert_eq!(
            err(r#"{"results": {"version": 4, "results": []}}"#),
            "results.version: unsupported output version 4; this importer reads promptfoo output versions 2 and 3"
        );
        assert_eq!(
            err(r#"{"results": {"results": []}}"#),
            "results.results is empty: promptfoo ran no tests, so there is no pass rate to record"
        );
        let bad_success = r#"{"results": {"results": [{"success": true}, {"success": true},
            {"success": true}, {"success": "yes"}]}}"#;
        assert_eq!(
            err(bad_success),
            "results.results[3].success: expected a boolean"
        );
        assert_eq!(
            err(r#"{"results": {"results": [{"score": 1}]}}"#),
            "results.results[0].success: is required"
        );
        assert_eq!(
            err(
                r#"{"results": {"results": [{"success": true, "namedScores": {"tone": "high"}}]}}"#
            ),
            "results.results[0].namedScores[\"tone\"]: expected a number"
        );
        assert_eq!(
            err(
                r#"{"results": {"results": [{"success": true, "gradingResult": {"pass": true,
                "componentResults": [{"pass": 1, "assertion": {"type": "contains"}}]}}]}}"#
            ),
            "results.results[0].gradingResult.componentResults[0].pass: expected a boolean"
        );
        assert_eq!(
            err(
                r#"{"results": {"results": [{"success": true, "gradingResult": {"pass": true,
                "componentResults": {}}}]}}"#
            ),
            "results.results[0].gradingResult.componentResults: expected an array"
        );
    }

    #[test]
    fn provider_split_needs_providers_and_distinct_names() {
        let options = PromptfooOptions {
            split_by_provider: true,
            ..PromptfooOptions::default()
        };
        let missing =
            r#"{"results": {"results": [{"success": true, "provider": "a"}, {"success": true}]}}"#;
        assert_eq!(
            parse(missing, &options)
                .map(|_| ())
                .unwrap_err()
                .to_string(),
            "results.results[1].provider: is required to split the results by provider (an id or a label)"
        );
        let clash = r#"{"results": {"results": [{"success": true, "provider": "a b"},
            {"success": true, "provider": "a/b"}]}}"#;
        assert!(matches!(
            parse(clash, &options),
            Err(ImportError::NameCollision {
                what: "provider suites",
                ..
            })
        ));
    }

    #[test]
    fn named_scores_that_collide_are_refused() {
        let json = r#"{"results": {"results": [{"success": true,
            "namedScores": {"a b": 1, "a/b": 0}}]}}"#;
        assert!(matches!(
            parse(json, &PromptfooOptions::default()),
            Err(ImportError::NameCollision {
                what: "metrics",
                ..
            })
        ));
    }
}
