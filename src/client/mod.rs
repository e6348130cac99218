//! Client-side building blocks of the `govledger` CLI that need no I/O: they
//! take text or a variable lookup and return values, so every rule here is
//! unit-tested without a server, a file system or a CI machine.
//!
//! - [`import`]: eval result files of other tools (promptfoo's JSON output,
//!   JUnit XML) turned into suites and metrics for `EvalRecorded`.
//! - [`ci`]: which CI system runs us, and the run's commit, branch, URL and
//!   identity, from its environment variables.
//! - [`idempotency`]: the append key derived from the CI run, the step and
//!   the event, so a re-run job does not record twice.

pub mod ci;
pub mod idempotency;
pub mod import;
