//! grantflow's benchmark harness, library part: the reproducible workload generator, the
//! baselines' event records, a probing [`EventStore`](grantflow_store::EventStore) wrapper and
//! small system helpers. The `grantflow-bench` binary and the criterion benches use them.
#![deny(missing_docs)]

pub mod baseline;
pub mod probe;
pub mod records;
pub mod sys;
pub mod workload;
