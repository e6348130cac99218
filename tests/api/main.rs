//! Integration tests against a real server on 127.0.0.1:0 with a temporary
//! data dir (one app per test). Quiet unless TEST_LOG is set.

mod helpers;

mod access;
mod access_cli;
mod append;
mod batch;
mod bench_cli;
mod cli;
mod cli_audit;
mod cli_record;
mod cli_support;
mod concurrency;
mod events;
mod governance;
mod health;
mod idempotency;
mod optimistic;
mod read;
mod recovery;
mod restart;
mod subscribe;
mod tls;
mod validation;
mod verify;
