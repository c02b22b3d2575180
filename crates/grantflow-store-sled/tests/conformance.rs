//! The store trait's conformance suite (`grantflow_store::testing`), run against sled.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

grantflow_store::conformance_suite!(crate::common::sled_backend);
