//! govledger: an append-only, hash-chained, verifiable log of everything that
//! happens to governed LLM assets, served over gRPC.
//!
//! # Layout
//!
//! - [`proto`]: code generated from `proto/` (the API and the stored event
//!   schema). Nothing hand-written lives there.
//! - [`domain`]: the governance vocabulary as values you can only obtain by
//!   parsing: names, validated events, event kinds. All input rules live here.
//! - [`hash`]: the hash-chain primitives (domain-separation prefixes, digest
//!   newtypes, the entry hash).
//! - [`journal`]: the durable record. Segment files of length-prefixed
//!   records, the group-commit writer's file handling, the scanner that
//!   verifies and recovers the journal at start-up, and positional reads.
//!   It never interprets event payloads.
//! - [`governance`]: the pure core of governance: the projected state and
//!   its fold, the rules that decide (referential, separation of duties,
//!   gates, overrides, drift). No I/O.
//! - [`verify`]: chain verification over a run of records (parallel hashing,
//!   sequential linkage), shared by start-up, `VerifyChain` and `govledger verify`.
//! - [`index`]: the in-memory catalog (record positions, times, postings by
//!   kind, subject and actor, idempotency keys), rebuilt from the journal.
//! - [`ledger`]: the [`Ledger`] handle: opens and recovers a data dir, runs
//!   the single writer thread (group commit, governed), publishes the
//!   projected state, answers reads, queries and "as of" questions.
//! - [`auth`]: identity and access: bearer tokens, roles and scopes, the
//!   guard every RPC asks, and the bootstrap admin of a new ledger.
//! - [`api`]: the gRPC services. The only module that touches tonic and the
//!   request/response messages; converts errors to `tonic::Status` in one place.
//! - [`server`]: `run(listener, ledger, shutdown)`: serves the API, health and
//!   reflection until `shutdown` completes.
//! - [`connect`]: the client side of a connection: address, TLS, bearer token.
//! - [`bench`]: the `govledger bench` load generator.
//! - [`client`]: the CLI's I/O-free building blocks: importers of promptfoo
//!   and JUnit results, CI metadata detection, idempotency keys per CI run.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod bench;
pub mod client;
pub mod connect;
pub mod domain;
pub mod error;
pub mod governance;
pub mod hash;
pub mod index;
pub mod journal;
pub mod ledger;
pub mod proto;
pub mod server;
pub mod verify;

pub use error::LedgerError;
pub use ledger::{Ledger, LedgerConfig};
