//! The per-event CSV of the worked example: RFC 4180, one row per event, the figures after
//! each event, and a failing output reported as an I/O error.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::{load_worked_example, Fixture};
use grantflow_export::{write_events_csv, write_iati, ExportError, IatiOptions, CSV_COLUMNS};

fn column(name: &str) -> usize {
    CSV_COLUMNS
        .iter()
        .position(|column| *column == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

#[tokio::test]
async fn the_worked_example_reads_back_one_row_per_event() {
    let fixture = Fixture::new().await;
    load_worked_example(&fixture).await;
    let mut bytes = Vec::new();
    let rows = write_events_csv(fixture.store(), &mut bytes)
        .await
        .expect("the CSV export");
    let head = fixture.engine.snapshot().position;
    assert_eq!(rows, head);
    let text = String::from_utf8(bytes.clone()).expect("UTF-8");
    assert!(text.starts_with("position,recorded_at,actor,command_id,stream,type,"));
    assert_eq!(
        text.matches("\r\n").count() as u64,
        head + 1,
        "CRLF after every row"
    );
    assert!(
        text.contains(",\"programme revised to five agencies, IOM as lead\","),
        "a field with a comma is quoted"
    );

    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let records: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("every row parses");
    assert_eq!(records.len() as u64, head);
    let by_type = |event_type: &str| {
        records
            .iter()
            .filter(|r| &r[column("type")] == event_type)
            .cloned()
            .collect::<Vec<_>>()
    };

    let contribution = &by_type("fund.contribution_recorded")[0];
    assert_eq!(&contribution[column("donor")], "JP-GOV");
    assert_eq!(&contribution[column("amount")], "5000000.00");
    assert_eq!(&contribution[column("currency")], "USD");
    assert_eq!(&contribution[column("business_date")], "2012-04-02");
    assert_eq!(&contribution[column("fund_received")], "5000000.00");
    assert_eq!(&contribution[column("grant")], "");
    assert_eq!(&contribution[column("grant_amount")], "");

    let approval = &by_type("grant.approved")[0];
    assert_eq!(&approval[column("actor")], "fund.manager");
    assert_eq!(&approval[column("command")], "approve-grant");
    assert_eq!(&approval[column("fund")], "UNTFHS");
    assert_eq!(&approval[column("amount")], "3209232.40");
    assert_eq!(&approval[column("business_date")], "2012-09-27");
    assert_eq!(&approval[column("grant_status")], "approved");
    assert_eq!(&approval[column("grant_amount")], "3209232.40");

    let disbursements = by_type("grant.disbursement_recorded");
    assert_eq!(disbursements.len(), 5);
    assert_eq!(&disbursements[0][column("agency")], "IOM");
    assert_eq!(&disbursements[0][column("reference")], "TRANCHE-1-IOM");
    assert_eq!(&disbursements[0][column("grant_status")], "active");
    assert_eq!(&disbursements[4][column("grant_disbursed")], "800000.00");
    assert_eq!(&disbursements[4][column("fund_cash")], "4200000.00");

    let revision = &by_type("grant.revised")[0];
    assert_eq!(&revision[column("previous_amount")], "3209232.40");
    assert_eq!(&revision[column("amount")], "3121707.00");
    assert_eq!(&revision[column("business_date")], "2013-03-01");
    assert_eq!(
        &revision[column("reason")],
        "budget revised for five agencies (January 2013 to September 2015)"
    );
    let commitment = &by_type("fund.commitment_revised")[0];
    assert_eq!(&commitment[column("command")], "revise-grant");
    assert_eq!(&commitment[column("fund_committed")], "3121707.00");
    assert_eq!(&commitment[column("fund_available")], "1878293.00");
    for record in &records {
        let recorded_at = &record[column("recorded_at")];
        assert!(
            recorded_at.ends_with('Z') && recorded_at.len() == 27,
            "{recorded_at}"
        );
    }
}

/// Accepts `room` bytes, then fails.
struct FailingWriter {
    room: usize,
}

impl std::io::Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::other("disk full"));
        }
        let taken = buf.len().min(self.room);
        self.room -= taken;
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_output_is_an_io_error() {
    let fixture = Fixture::new().await;
    load_worked_example(&fixture).await;
    let mut out = FailingWriter { room: 100 };
    let error = write_events_csv(fixture.store(), &mut out)
        .await
        .unwrap_err();
    assert!(matches!(error, ExportError::Io(_)), "{error}");
    let mut out = FailingWriter { room: 100 };
    let error = write_iati(fixture.store(), &IatiOptions::default(), &mut out)
        .await
        .unwrap_err();
    assert!(matches!(error, ExportError::Io(_)), "{error}");
}
