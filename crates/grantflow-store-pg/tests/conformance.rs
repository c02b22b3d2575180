//! The store trait's conformance suite, run against both backends: sled (always) and
//! PostgreSQL (when `GRANTFLOW_TEST_POSTGRES` holds a URL; each test in its own schema).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

mod sled {
    crate::conformance_suite!(crate::common::sled_backend);
}

mod postgres {
    crate::conformance_suite!(crate::common::pg_backend);
}
