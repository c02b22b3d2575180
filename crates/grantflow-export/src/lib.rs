//! grantflow's exports for people outside the system: the IATI 2.03 activities XML that a
//! fund publishes for donors, the public and aid-transparency tools ([`write_iati`]), the
//! IATI 2.03 organisation file of the same publisher ([`write_iati_organisation`]), and the
//! per-event CSV that auditors open in a spreadsheet ([`write_events_csv`]).
//!
//! All are folds of the log, read page by page from the store: memory grows with the number
//! of funds and grants (and, for IATI, each exported activity's transactions), never with the
//! length of the log, and the output is written as it is produced, never built as one string.
//!
//! The mapping of events to IATI elements and codes is docs/domain.md's "IATI mapping" and
//! "IATI mapping, part two" (pledges, documents; fees and income unpublished); the choices
//! they leave open are documented on [`write_iati`] and [`write_iati_organisation`]. Both IATI
//! files pass the 2.03 schema and every error-level rule of IATI's rulesets and codelists
//! (docs/iati-2.03; the tests apply them to every file they produce).
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod classify;
mod document_link;
mod events_csv;
mod fold;
mod iati;
mod ledger;
mod organisation;
mod publisher;
mod shares;
mod xml;

pub use fold::ExportError;

pub use events_csv::{spreadsheet_safe, write_events_csv, CSV_COLUMNS};
pub use iati::{write_iati, ExportSummary, IatiOptions, IATI_VERSION, REPORTING_ORG_TYPE};
pub use organisation::{write_iati_organisation, OrganisationSummary};
pub use publisher::REPORTING_ORG_CHARS_MAX;

#[cfg(test)]
mod tests {
    use super::*;
    use grantflow_store::EventStore;

    /// The HTTP server runs exports on its runtime's worker threads: the futures must be Send.
    #[allow(dead_code)]
    fn export_futures_are_send(
        store: &dyn EventStore,
        options: &IatiOptions,
        out: &mut (dyn std::io::Write + Send),
    ) {
        fn send<T: Send>(_: T) {}
        send(write_iati(store, options, out));
        send(write_events_csv(store, out));
    }
}
