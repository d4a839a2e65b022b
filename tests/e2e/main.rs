//! End-to-end tests of the `tempora` binary: each test starts its own server
//! (fresh data directory, free port) and talks to it like a user would.
//!
//!   cargo test --workspace --test e2e                 # all
//!   cargo test --workspace --test e2e restart::       # one module
//!   cargo test --workspace --test e2e -- --nocapture  # see server logs on failure
//!
//! A failing test prints the tail of the server log; set
//! TEMPORA_TEST_KEEP_DATA=1 to keep the data directory and full log.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod bad_input;
mod caggs;
mod chunks;
mod cli;
mod compression;
mod copy;
mod crash;
mod databases;
mod drivers;
mod explain;
mod faults;
mod jobs;
mod plan_cache;
mod psql;
mod psql_describe;
mod restart;
mod schema_change;
#[path = "tokio_postgres.rs"]
mod tokio_pg;
mod transaction_blocks;
mod upsert;
