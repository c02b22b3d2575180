//! The store trait's conformance suite (`grantflow_store::testing`), run against PostgreSQL
//! when `GRANTFLOW_TEST_POSTGRES` holds a URL (each test in its own schema; skipped, saying
//! so, when it does not). grantflow-store-sled runs the same suite against sled.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

grantflow_store::conformance_suite!(crate::common::pg_backend);
