//! JUnit XML test reports (pytest `--junitxml`, jest-junit, Maven Surefire
//! and most other runners) as one deterministic suite.
//!
//! The root is `<testsuites>` or a bare `<testsuite>`; every `<testcase>`
//! element anywhere below it is one test. A test's outcome comes from its
//! direct children, in this order: `<failure>` (an assertion failed), then
//! `<error>` (the test could not run properly), then `<skipped>`; a test
//! with none of them passed. Other children (`<system-out>`, `<properties>`,
//! `<rerunFailure>` of a test that passed on retry) do not change the outcome.
//!
//! The counts are taken from the elements, not from the `tests`/`failures`
//! attributes, which runners fill in differently (jest-junit counts a file
//! that failed to run in `errors` but not in `tests`; pytest writes a test
//! that fails and then errors in teardown as two `<testcase>` elements and
//! subtracts one in its header). Counting elements, such a pytest test
//! weighs twice in `tests`, `failures` and `errors`; `pass_rate` can only be
//! lower for it, never higher.
//!
//! Metrics:
//!
//! - `pass_rate` = passed / (tests − skipped), higher is better, threshold
//!   from the caller (default 1.0: any failure or error fails the suite).
//!   Skipped tests (pytest's skip and xfail, jest's `.skip`) did not run, so
//!   they neither pass nor fail.
//! - `tests`, higher is better, threshold 0: a policy can require a minimum
//!   so that a report that silently ran fewer tests does not pass.
//! - `failures`, `errors`, `skipped`, lower is better, threshold `tests`:
//!   recorded as evidence and never failing the suite by themselves (that is
//!   `pass_rate`'s job, with the caller's tolerance); a policy can demand
//!   e.g. `errors <= 0` through its own thresholds.

use quick_xml::{
    Reader, XmlVersion,
    events::{BytesStart, Event},
};

use super::{
    ImportError, ImportedSuite,
    label::{MAX_LABEL_LEN, MetricSet, check_suite_name, check_threshold, to_label},
};
use crate::proto::v1::{Direction, EvalKind};

/// Suite name when neither the caller nor the report names one.
const DEFAULT_SUITE: &str = "junit";

/// How to turn the report into a suite.
#[derive(Clone, Debug, PartialEq)]
pub struct JunitOptions {
    /// Suite name; by default the report's own name (see [`parse`]).
    pub suite: Option<String>,
    /// Threshold of `pass_rate`.
    pub pass_rate_threshold: f64,
}

impl Default for JunitOptions {
    fn default() -> Self {
        JunitOptions {
            suite: None,
            pass_rate_threshold: 1.0,
        }
    }
}

/// Test counts of a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub tests: u64,
    pub passed: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
}

/// Reads a JUnit XML report into one deterministic suite. Its name is the
/// caller's, else the root element's `name` (the tools' defaults named
/// after the tool: jest-junit's "jest tests" → "jest", newer pytest's
/// "pytest tests" → "pytest"), else the name of a `<testsuites>` root's only `<testsuite>`
/// (older pytest: "pytest"), made a label, else "junit".
pub fn parse(xml: &str, options: &JunitOptions) -> Result<ImportedSuite, ImportError> {
    if let Some(suite) = &options.suite {
        check_suite_name("suite", suite)?;
    }
    check_threshold("pass_rate_threshold", options.pass_rate_threshold)?;
    let report = read(xml)?;
    let counts = report.counts;
    let ran = counts.tests - counts.skipped;
    if ran == 0 {
        return Err(ImportError::NothingRan(format!(
            "the report has {} test case(s) and all were skipped: no pass rate to record",
            counts.tests
        )));
    }
    let suite = match &options.suite {
        Some(suite) => suite.clone(),
        None => report
            .name
            .as_deref()
            .and_then(|name| to_label(name, MAX_LABEL_LEN))
            .unwrap_or_else(|| DEFAULT_SUITE.to_owned()),
    };
    let (pass_rate, tests) = (counts.passed as f64 / ran as f64, counts.tests as f64);
    let mut metrics = MetricSet::default();
    let higher = Direction::HigherIsBetter;
    let lower = Direction::LowerIsBetter;
    metrics.push(
        "pass_rate".into(),
        "pass rate",
        pass_rate,
        options.pass_rate_threshold,
        higher,
    )?;
    metrics.push("tests".into(), "tests", tests, 0.0, higher)?;
    for (name, count) in [
        ("failures", counts.failures),
        ("errors", counts.errors),
        ("skipped", counts.skipped),
    ] {
        metrics.push(name.into(), name, count as f64, tests, lower)?;
    }
    Ok(ImportedSuite {
        metrics: metrics.finish(&suite)?,
        suite,
        eval_kind: EvalKind::Deterministic,
        sample_size: counts.tests,
        grader_model: None,
    })
}

/// What [`read`] found in a report.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The report's own name, per [`parse`]'s rule (not yet a label).
    pub name: Option<String>,
    pub counts: Counts,
}

/// The outcome children seen so far in an open `<testcase>`.
#[derive(Default)]
struct Case {
    /// Depth of the `<testcase>` element (0 = root).
    depth: usize,
    failure: bool,
    error: bool,
    skipped: bool,
}

/// Counts the test cases of a JUnit XML report.
pub fn read(xml: &str) -> Result<Report, ImportError> {
    let mut reader = Reader::from_str(xml);
    // Names of the open elements, root first.
    let mut open: Vec<String> = Vec::new();
    let mut root_name: Option<Option<String>> = None;
    // Names of a `<testsuites>` root's direct `<testsuite>` children.
    let mut child_suites: Vec<Option<String>> = Vec::new();
    let mut case: Option<Case> = None;
    let mut counts = Counts::default();
    let xml_error = |reader: &Reader<&[u8]>, message: String| ImportError::Xml {
        position: reader.error_position().max(reader.buffer_position()),
        message,
    };

    loop {
        let event = reader.read_event().map_err(|e| ImportError::Xml {
            position: reader.error_position(),
            message: e.to_string(),
        })?;
        let (element, empty) = match &event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                let closed = open.pop();
                if closed.as_deref() == Some("testcase")
                    && case.as_ref().is_some_and(|c| c.depth == open.len())
                    && let Some(done) = case.take()
                {
                    tally(&mut counts, &done);
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = element.local_name().as_ref().to_owned();
        let depth = open.len();
        if depth == 0 {
            if root_name.is_some() {
                return Err(xml_error(&reader, "more than one root element".to_owned()));
            }
            if name != "testsuites" && name != "testsuite" {
                return Err(ImportError::invalid(
                    format!("<{name}>"),
                    "expected a JUnit report: the root element must be <testsuites> or <testsuite>",
                ));
            }
            root_name = Some(name_attribute(element, &name)?);
        } else if depth == 1 && name == "testsuite" && open[0] == "testsuites" {
            child_suites.push(name_attribute(element, "testsuites/testsuite")?);
        }
        match name.as_str() {
            // A test case nested in another is not in any schema; only the
            // outer one is a test.
            "testcase" if case.is_none() => {
                if empty {
                    counts.tests += 1;
                    counts.passed += 1;
                } else {
                    case = Some(Case {
                        depth,
                        ..Case::default()
                    });
                }
            }
            "failure" | "error" | "skipped" => {
                if let Some(case) = case.as_mut().filter(|c| c.depth + 1 == depth) {
                    match name.as_str() {
                        "failure" => case.failure = true,
                        "error" => case.error = true,
                        _ => case.skipped = true,
                    }
                }
            }
            _ => {}
        }
        if !empty {
            open.push(name);
        }
    }
    if let Some(unclosed) = open.last() {
        // A runner killed while writing leaves a cut file: its counts would
        // be short, so it is refused rather than imported.
        return Err(xml_error(
            &reader,
            format!("the document ends inside <{unclosed}>: the report is incomplete"),
        ));
    }
    let Some(root_name) = root_name else {
        return Err(ImportError::invalid(
            "(document)",
            "is empty: no <testsuites> or <testsuite> element",
        ));
    };
    let name = match (root_name, child_suites.as_slice()) {
        // The tools' default root names (jest-junit: "jest tests"; pytest
        // 9: "pytest tests", its single suite still "pytest") name the
        // tool: the suite is the tool's name, whichever version wrote the
        // report. Any other name is the user's and is kept as it is.
        (Some(name), _) => Some(match name.as_str() {
            "jest tests" => "jest".to_owned(),
            "pytest tests" => "pytest".to_owned(),
            _ => name,
        }),
        (None, [Some(only)]) => Some(only.clone()),
        _ => None,
    };
    Ok(Report { name, counts })
}

fn tally(counts: &mut Counts, case: &Case) {
    counts.tests += 1;
    if case.failure {
        counts.failures += 1;
    } else if case.error {
        counts.errors += 1;
    } else if case.skipped {
        counts.skipped += 1;
    } else {
        counts.passed += 1;
    }
}

/// The element's `name` attribute, when present and not blank.
fn name_attribute(element: &BytesStart<'_>, path: &str) -> Result<Option<String>, ImportError> {
    let attribute = element
        .try_get_attribute("name")
        .map_err(|e| ImportError::invalid(format!("<{path}>"), format!("bad attribute: {e}")))?;
    let Some(attribute) = attribute else {
        return Ok(None);
    };
    let value = attribute
        .normalized_value(XmlVersion::Implicit1_0)
        .map_err(|e| ImportError::invalid(format!("<{path}> name"), e.to_string()))?;
    let value = value.trim();
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::import::testing::{assert_accepted_by_server, close, metric};

    const PYTEST: &str = include_str!("../../../tests/fixtures/pytest-junit.xml");
    const PYTEST_9: &str = include_str!("../../../tests/fixtures/pytest9-junit.xml");
    const JEST: &str = include_str!("../../../tests/fixtures/jest-junit.xml");

    fn counts(xml: &str) -> Counts {
        match read(xml) {
            Ok(report) => report.counts,
            Err(e) => panic!("{e}"),
        }
    }

    fn suite(xml: &str) -> ImportedSuite {
        match parse(xml, &JunitOptions::default()) {
            Ok(suite) => suite,
            Err(e) => panic!("{e}"),
        }
    }

    fn err(xml: &str) -> String {
        match parse(xml, &JunitOptions::default()) {
            Ok(suite) => panic!("expected an error, got {suite:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// pytest 9.2's own output (see tests/fixtures/README.md): the root now
    /// has a name, "pytest tests"; the suite is still "pytest".
    #[test]
    fn pytest_9_report() {
        assert_eq!(
            counts(PYTEST_9),
            Counts {
                tests: 4,
                passed: 2,
                failures: 1,
                errors: 0,
                skipped: 1,
            }
        );
        let suite = suite(PYTEST_9);
        assert_eq!(suite.suite, "pytest");
        assert_eq!(suite.sample_size, 4);
    }

    #[test]
    fn pytest_report() {
        // 10 <testcase> elements: the test failing in call and in teardown is
        // written twice by pytest (its header says tests="9").
        assert_eq!(
            counts(PYTEST),
            Counts {
                tests: 10,
                passed: 4,
                failures: 2,
                errors: 2,
                skipped: 2,
            }
        );
        let suite = suite(PYTEST);
        // `<testsuites>` has no name in pytest's output; its only suite does.
        assert_eq!(suite.suite, "pytest");
        assert_eq!(suite.eval_kind, EvalKind::Deterministic);
        assert_eq!(suite.sample_size, 10);
        assert_eq!(suite.grader_model, None);
        let names: Vec<&str> = suite.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            ["pass_rate", "tests", "failures", "errors", "skipped"]
        );
        // 4 passed of the 8 that ran (2 skipped).
        assert_eq!(
            metric(&suite, "pass_rate"),
            (0.5, 1.0, Direction::HigherIsBetter)
        );
        assert_eq!(
            metric(&suite, "tests"),
            (10.0, 0.0, Direction::HigherIsBetter)
        );
        assert_eq!(
            metric(&suite, "failures"),
            (2.0, 10.0, Direction::LowerIsBetter)
        );
        assert_eq!(
            metric(&suite, "errors"),
            (2.0, 10.0, Direction::LowerIsBetter)
        );
        assert_eq!(
            metric(&suite, "skipped"),
            (2.0, 10.0, Direction::LowerIsBetter)
        );
        assert_accepted_by_server(&suite);
    }

    #[test]
    fn jest_junit_report() {
        assert_eq!(
            counts(JEST),
            Counts {
                tests: 7,
                passed: 4,
                failures: 1,
                errors: 1,
                skipped: 1,
            }
        );
        let suite = suite(JEST);
        assert_eq!(suite.suite, "jest");
        assert_eq!(suite.sample_size, 7);
        assert!(close(metric(&suite, "pass_rate").0, 4.0 / 6.0));
        assert_eq!(metric(&suite, "tests").0, 7.0);
        assert_eq!(metric(&suite, "failures").0, 1.0);
        assert_eq!(metric(&suite, "errors").0, 1.0);
        assert_eq!(metric(&suite, "skipped").0, 1.0);
        assert_accepted_by_server(&suite);
    }

    #[test]
    fn options() {
        let options = JunitOptions {
            suite: Some("unit".to_owned()),
            pass_rate_threshold: 0.95,
        };
        let suite = parse(JEST, &options).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(suite.suite, "unit");
        assert_eq!(metric(&suite, "pass_rate").1, 0.95);
        let bad = JunitOptions {
            suite: Some("unit tests".to_owned()),
            ..JunitOptions::default()
        };
        assert!(matches!(
            parse(JEST, &bad),
            Err(ImportError::Option {
                option: "suite",
                ..
            })
        ));
        let inf = JunitOptions {
            pass_rate_threshold: f64::INFINITY,
            ..JunitOptions::default()
        };
        assert!(parse(JEST, &inf).is_err());
    }

    #[test]
    fn bare_testsuite_and_names() {
        // A bare <testsuite> (Maven Surefire) named by its own attribute.
        let surefire = r#"<?xml version="1.0" encoding="UTF-8"?>
            <testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" name="com.acme.PromptTest" tests="3">
              <properties><property name="java.version" value="21"/></properties>
              <testcase name="renders" classname="com.acme.PromptTest" time="0.01"/>
              <testcase name="flaky" classname="com.acme.PromptTest" time="0.02">
                <rerunFailure message="timeout" type="java.net.SocketTimeoutException"/>
              </testcase>
              <testcase name="escapes" classname="com.acme.PromptTest" time="0.01">
                <failure message="expected &lt;a&gt;" type="org.opentest4j.AssertionFailedError"/>
              </testcase>
              <system-out><![CDATA[<failure> in output is not a failure]]></system-out>
            </testsuite>"#;
        let suite = suite(surefire);
        assert_eq!(suite.suite, "com.acme.PromptTest");
        // A test that passed on rerun passed; CDATA text is not an element.
        assert!(close(metric(&suite, "pass_rate").0, 2.0 / 3.0));
        assert_eq!(metric(&suite, "failures").0, 1.0);

        // Several unnamed suites under an unnamed root: the default name.
        let two = "<testsuites><testsuite name='a'><testcase name='x'/></testsuite>\
                   <testsuite name='b'><testcase name='y'/></testsuite></testsuites>";
        assert_eq!(suite_name(two), "junit");
        // A name with no letter or digit falls back too.
        assert_eq!(
            suite_name("<testsuite name=' // '><testcase name='x'/></testsuite>"),
            "junit"
        );
    }

    fn suite_name(xml: &str) -> String {
        suite(xml).suite
    }

    #[test]
    fn outcome_precedence_and_nesting() {
        // failure > error > skipped; only direct children count; nested
        // suites are walked.
        let xml = "<testsuites><testsuite name='outer'><testsuite name='inner'>\
            <testcase name='a'><skipped/><failure/></testcase>\
            <testcase name='b'><error/><skipped/></testcase>\
            <testcase name='c'><system-out><failure/></system-out></testcase>\
            <testcase name='d'><skipped message='later'/></testcase>\
            </testsuite></testsuite></testsuites>";
        assert_eq!(
            counts(xml),
            Counts {
                tests: 4,
                passed: 1,
                failures: 1,
                errors: 1,
                skipped: 1,
            }
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            err("<html><body/></html>"),
            "<html>: expected a JUnit report: the root element must be <testsuites> or <testsuite>"
        );
        assert_eq!(
            err(""),
            "(document): is empty: no <testsuites> or <testsuite> element"
        );
        assert_eq!(
            err(
                "<testsuites><testsuite name='s'><testcase name='x'><skipped/></testcase></testsuite></testsuites>"
            ),
            "the report has 1 test case(s) and all were skipped: no pass rate to record"
        );
        assert_eq!(
            err("<testsuites></testsuites>"),
            "the report has 0 test case(s) and all were skipped: no pass rate to record"
        );
        let cut = "<testsuites><testsuite name='s'><testcase name='x'/><testcase name='y'>";
        assert!(err(cut).contains("the document ends inside <testcase>: the report is incomplete"));
        let mismatched = "<testsuites><testsuite></testsuites>";
        assert!(err(mismatched).starts_with("not well-formed XML at byte"));
        assert!(err("<testsuite/><testsuite/>").contains("more than one root element"));
    }
}
