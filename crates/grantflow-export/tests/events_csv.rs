//! The per-event CSV of the worked example: RFC 4180, one row per event, the figures after
//! each event, and a failing output reported as an I/O error.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::{load_secretariat_example, load_worked_example, Fixture};
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

#[tokio::test]
async fn part_two_events_have_their_amounts_dates_and_ids() {
    let fixture = Fixture::new().await;
    load_secretariat_example(&fixture).await;
    let mut bytes = Vec::new();
    let rows = write_events_csv(fixture.store(), &mut bytes)
        .await
        .expect("the CSV export");
    let head = fixture.engine.snapshot().position;
    assert_eq!(rows, head);
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    assert_eq!(reader.headers().expect("a header").len(), CSV_COLUMNS.len());
    let records: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("every row parses");
    assert_eq!(records.len() as u64, head);
    for record in &records {
        assert_eq!(record.len(), CSV_COLUMNS.len());
    }
    let by_type = |event_type: &str| {
        records
            .iter()
            .filter(|r| &r[column("type")] == event_type)
            .cloned()
            .collect::<Vec<_>>()
    };
    let get = |record: &csv::StringRecord, name: &str| record[column(name)].to_string();
    // (column, value) pairs that a row must hold.
    let check = |record: &csv::StringRecord, expected: &[(&str, &str)]| {
        for (name, value) in expected {
            assert_eq!(&get(record, name), value, "column {name} of {record:?}");
        }
    };

    let pledges = by_type("fund.pledge_recorded");
    assert_eq!(pledges.len(), 2);
    check(
        &pledges[0],
        &[
            ("command", "record-pledge"),
            ("fund", "UNTFHS"),
            ("donor", "JP-GOV"),
            ("amount", "6000000.00"),
            ("currency", "USD"),
            ("business_date", "2012-03-01"),
            ("pledge", "JP-2012-A"),
            ("due_on", "2012-12-31"),
            ("fund_pledged", "6000000.00"),
            ("fund_received", "0.00"),
        ],
    );
    check(
        &pledges[1],
        &[
            ("pledge", "MX-2012"),
            ("due_on", ""),
            ("fund_pledged", "6250000.00"),
        ],
    );

    let contributions = by_type("fund.contribution_recorded");
    check(
        &contributions[0],
        &[
            ("pledge", "JP-2012-A"),
            ("amount", "5000000.00"),
            ("fund_fees", "0.00"),
        ],
    );
    let fees = by_type("fund.fee_charged");
    assert_eq!(fees.len(), 2);
    check(
        &fees[0],
        &[
            ("command", "record-contribution"),
            ("fund", "UNTFHS"),
            ("donor", "JP-GOV"),
            ("amount", "50000.00"),
            ("percent", "1.00"),
            ("fund_received", "5000000.00"),
            ("fund_fees", "50000.00"),
            ("fund_available", "4950000.00"),
            ("fund_cash", "4950000.00"),
        ],
    );
    assert_eq!(
        get(&fees[0], "command_id"),
        get(&contributions[0], "command_id"),
        "the fee comes in the contribution's append"
    );
    check(&fees[1], &[("amount", "500.00"), ("percent", "0.50")]);

    let income = &by_type("fund.income_recorded")[0];
    check(
        income,
        &[
            ("command", "record-income"),
            ("fund", "UNTFHS"),
            ("amount", "1234.56"),
            ("business_date", "2012-06-30"),
            ("kind", "interest"),
            ("fund_income", "1234.56"),
            ("fund_available", "4951234.56"),
            ("fund_cash", "4951234.56"),
        ],
    );

    let fund_documents = by_type("fund.document_attached");
    assert_eq!(fund_documents.len(), 3);
    check(
        &fund_documents[0],
        &[
            ("command", "attach-document"),
            ("fund", "UNTFHS"),
            ("document", "MOU-JP"),
            ("title", "Contribution agreement, Government of Japan"),
            ("category", "A09"),
            ("business_date", "2012-03-01"),
        ],
    );
    check(
        &fund_documents[2],
        &[("document", "MINUTES-1"), ("business_date", "")],
    );
    let grant_documents = by_type("grant.document_attached");
    assert_eq!(grant_documents.len(), 3);
    check(
        &grant_documents[0],
        &[
            ("grant", "MEX-2012-01"),
            ("fund", "UNTFHS"),
            ("document", "PRODOC"),
            ("title", "Programme document: objectives & results"),
            ("category", "A02"),
            ("business_date", "2012-09-27"),
            ("grant_status", "active"),
        ],
    );

    let expenditure = &by_type("grant.expenditure_recorded")[0];
    check(
        expenditure,
        &[("category", "staff"), ("amount", "100000.00")],
    );

    let scheduled = &by_type("grant.report_scheduled")[0];
    check(
        scheduled,
        &[
            ("command", "schedule-report"),
            ("report", "PR-2013-1"),
            ("kind", "progress"),
            ("business_date", "2013-06-30"),
            ("due_on", "2013-07-31"),
            ("fund", "UNTFHS"),
        ],
    );
    let submitted = by_type("grant.report_submitted");
    assert_eq!(submitted.len(), 2);
    check(
        &submitted[0],
        &[
            ("report", "PR-2013-1"),
            ("business_date", "2013-07-20"),
            ("title", "Progress report, first half of 2013"),
        ],
    );
    check(
        &submitted[1],
        &[("business_date", "2013-07-28"), ("title", "")],
    );
    check(
        &by_type("grant.report_returned")[0],
        &[
            ("command", "return-report"),
            ("report", "PR-2013-1"),
            ("business_date", "2013-07-25"),
            ("reason", "expenditure by category missing, please add it"),
        ],
    );
    check(
        &by_type("grant.report_accepted")[0],
        &[
            ("report", "PR-2013-1"),
            ("business_date", "2013-08-02"),
            ("actor", "fund.manager"),
        ],
    );
    check(
        &by_type("fund.terms_revised")[0],
        &[
            ("command", "revise-fund-terms"),
            ("fund", "UNTFHS"),
            ("reason", "new agreement with the administrative agent"),
            ("amount", ""),
        ],
    );

    // The last row: the fund's figures with fees and income.
    let last = records.last().expect("a row");
    check(
        last,
        &[
            ("type", "fund.fee_charged"),
            ("fund_received", "5100000.00"),
            ("fund_committed", "3209232.40"),
            ("fund_available", "1841502.16"),
            ("fund_cash", "4550734.56"),
            ("fund_pledged", "6250000.00"),
            ("fund_fees", "50500.00"),
            ("fund_income", "1234.56"),
        ],
    );
    let text = String::from_utf8(bytes).expect("UTF-8");
    assert!(
        text.contains(",\"expenditure by category missing, please add it\","),
        "a field with a comma is quoted"
    );
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
