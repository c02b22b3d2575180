//! The IATI organisation file (`export --format iati-org`): the publisher as one
//! organisation, its committed budget and its expenditure per calendar year, valid against
//! iati-organisations-schema.xsd and IATI's rules.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::{
    assert_passes_iati_rules, assert_valid_iati_org, iati_org_of, load_worked_example, Fixture,
    GENERATED_AT, ORG_REF,
};
use grantflow_engine::query::AsOf;
use grantflow_export::{write_iati_organisation, ExportError, IatiOptions};
use serde_json::json;

/// One `total-budget` or `total-expenditure`: period, value, its @currency, and the lines
/// (ref, value).
#[derive(Debug, PartialEq, Eq)]
struct Total {
    start: String,
    end: String,
    value: String,
    currency: Option<String>,
    lines: Vec<(String, String)>,
}

fn child<'a, 'input>(node: roxmltree::Node<'a, 'input>, name: &str) -> roxmltree::Node<'a, 'input> {
    node.children().find(|c| c.has_tag_name(name)).unwrap()
}

fn totals(xml: &str, element: &str) -> Vec<Total> {
    let document = roxmltree::Document::parse(xml).unwrap();
    document
        .descendants()
        .filter(|n| n.has_tag_name(element))
        .map(|n| {
            let value = child(n, "value");
            Total {
                start: child(n, "period-start")
                    .attribute("iso-date")
                    .unwrap()
                    .into(),
                end: child(n, "period-end").attribute("iso-date").unwrap().into(),
                value: value.text().unwrap().into(),
                currency: value.attribute("currency").map(str::to_string),
                lines: n
                    .children()
                    .filter(|c| c.is_element() && c.tag_name().name().ends_with("-line"))
                    .map(|line| {
                        (
                            line.attribute("ref").unwrap().to_string(),
                            child(line, "value").text().unwrap().to_string(),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

fn year(year: i32, value: &str) -> Total {
    Total {
        start: format!("{year}-01-01"),
        end: format!("{year}-12-31"),
        value: value.into(),
        currency: None,
        lines: Vec::new(),
    }
}

#[tokio::test]
async fn the_worked_examples_fund_as_an_organisation() {
    let fixture = Fixture::new().await;
    load_worked_example(&fixture).await;
    let (xml, summary) = fixture.iati_org(AsOf::Head).await;
    assert_valid_iati_org(&xml, fixture.dir.path(), "organisation.xml");
    let findings = assert_passes_iati_rules(&xml, "organisation.xml");
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(summary.organisation, ORG_REF);
    assert_eq!(
        (summary.funds, summary.budgets, summary.expenditures),
        (1, 3, 1)
    );
    assert!(xml.contains(&format!(
        "<organisation-identifier>{ORG_REF}</organisation-identifier>"
    )));
    assert!(xml.contains(&format!("<reporting-org ref=\"{ORG_REF}\" type=\"40\">")));
    assert!(xml.contains("default-currency=\"USD\""));
    assert!(xml.contains(&format!("generated-datetime=\"{GENERATED_AT}\"")));
    // The revised commitment (3,121,707.00) over 2013-01-01 to 2015-09-30 by days: 365, 365
    // and 273 of 1,003.
    assert_eq!(
        totals(&xml, "total-budget"),
        vec![
            year(2013, "1136015.00"),
            year(2014, "1136015.01"),
            year(2015, "849676.99")
        ]
    );
    // The first tranche, paid in 2013.
    assert_eq!(
        totals(&xml, "total-expenditure"),
        vec![year(2013, "800000.00")]
    );

    // As of the approval: the approved amount, nothing paid yet.
    let (early, _) = fixture.iati_org(AsOf::Position(5)).await;
    assert_valid_iati_org(&early, fixture.dir.path(), "organisation-early.xml");
    assert_passes_iati_rules(&early, "organisation-early.xml");
    assert_eq!(
        totals(&early, "total-budget"),
        vec![
            year(2013, "1167866.22"),
            year(2014, "1167866.23"),
            year(2015, "873499.95")
        ]
    );
    assert!(totals(&early, "total-expenditure").is_empty());
}

#[tokio::test]
async fn several_funds_make_one_organisation_with_a_line_per_fund() {
    let fixture = Fixture::new().await;
    let commands = [
        (
            "finance",
            json!({"command": "register-fund", "fund": "FA", "name": "Fund A", "currency": "USD", "iati_org_ref": ORG_REF}),
        ),
        (
            "finance",
            json!({"command": "register-fund", "fund": "FB", "name": "Fund B", "currency": "USD", "iati_org_ref": ORG_REF}),
        ),
        (
            "finance",
            json!({"command": "register-fund", "fund": "FJ", "name": "Fund J", "currency": "JPY", "iati_org_ref": ORG_REF}),
        ),
        (
            "finance",
            json!({"command": "record-contribution", "fund": "FA", "donor": "D", "amount": "1000.00", "received_on": "2012-01-10"}),
        ),
        (
            "finance",
            json!({"command": "record-contribution", "fund": "FB", "donor": "D", "amount": "1000.00", "received_on": "2012-01-10"}),
        ),
        (
            "finance",
            json!({"command": "record-contribution", "fund": "FJ", "donor": "D", "amount": "100000", "received_on": "2012-01-10"}),
        ),
        // A: 730.00 over two calendar years, half each (2013 has 365 days, 2014 too).
        (
            "sec",
            json!({"command": "submit-proposal", "fund": "FA", "grant": "GA", "title": "A", "amount": "730.00", "starts_on": "2013-01-01", "ends_on": "2014-12-31"}),
        ),
        // B: no planned period: whole in the year of its approval.
        (
            "sec",
            json!({"command": "submit-proposal", "fund": "FB", "grant": "GB", "title": "B", "amount": "100.00"}),
        ),
        // J: in yen, from mid-2013.
        (
            "sec",
            json!({"command": "submit-proposal", "fund": "FJ", "grant": "GJ", "title": "J", "amount": "36500", "starts_on": "2013-07-02", "ends_on": "2014-07-01"}),
        ),
        // A proposal holds nothing.
        (
            "sec",
            json!({"command": "submit-proposal", "fund": "FB", "grant": "GP", "title": "P", "amount": "500.00", "starts_on": "2013-01-01", "ends_on": "2013-12-31"}),
        ),
        (
            "approver",
            json!({"command": "approve-grant", "grant": "GA", "decided_on": "2012-09-27"}),
        ),
        (
            "approver",
            json!({"command": "approve-grant", "grant": "GB", "decided_on": "2013-05-01"}),
        ),
        (
            "approver",
            json!({"command": "approve-grant", "grant": "GJ", "decided_on": "2013-05-01"}),
        ),
        (
            "sec",
            json!({"command": "assign-agency", "grant": "GA", "agency": "AG", "allocation": "730.00"}),
        ),
        (
            "finance",
            json!({"command": "record-disbursement", "grant": "GA", "agency": "AG", "amount": "300.00", "paid_on": "2013-02-01"}),
        ),
        (
            "finance",
            json!({"command": "record-disbursement", "grant": "GA", "agency": "AG", "amount": "200.00", "paid_on": "2014-02-01"}),
        ),
        (
            "finance",
            json!({"command": "record-refund", "grant": "GA", "agency": "AG", "amount": "50.00", "received_on": "2014-03-01"}),
        ),
    ];
    for (actor, command) in commands {
        fixture.run(actor, command).await;
    }
    let (xml, summary) = fixture.iati_org(AsOf::Head).await;
    assert_valid_iati_org(&xml, fixture.dir.path(), "organisations.xml");
    assert_passes_iati_rules(&xml, "organisations.xml");
    assert_eq!(summary.funds, 3);
    assert!(xml.contains("<narrative>Fund A; Fund B; Fund J</narrative>"));
    let line = |fund: &str, value: &str| (fund.to_string(), value.to_string());
    let jpy = |mut total: Total| {
        total.currency = Some("JPY".into());
        total
    };
    let with = |mut total: Total, lines: Vec<(String, String)>| {
        total.lines = lines;
        total
    };
    // By year, then currency; a line per fund. GJ: 36,500 yen over 365 days, 183 in 2013
    // (2 July to 31 December), 182 in 2014.
    assert_eq!(
        totals(&xml, "total-budget"),
        vec![
            with(jpy(year(2013, "18300")), vec![line("FJ", "18300")]),
            with(
                year(2013, "465.00"),
                vec![line("FA", "365.00"), line("FB", "100.00")]
            ),
            with(jpy(year(2014, "18200")), vec![line("FJ", "18200")]),
            with(year(2014, "365.00"), vec![line("FA", "365.00")]),
        ]
    );
    assert_eq!(
        totals(&xml, "total-expenditure"),
        vec![
            with(year(2013, "300.00"), vec![line("FA", "300.00")]),
            with(year(2014, "150.00"), vec![line("FA", "150.00")]),
        ]
    );
}

#[tokio::test]
async fn the_organisation_file_names_one_publisher_and_covers_every_fund() {
    let fixture = Fixture::new().await;
    let mut out = Vec::new();
    let error = write_iati_organisation(fixture.store(), &IatiOptions::default(), &mut out)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ExportError::NothingToExport { position: 0 }),
        "{error}"
    );
    fixture
        .run(
            "finance",
            json!({"command": "register-fund", "fund": "F", "name": "F", "currency": "USD"}),
        )
        .await;
    let refusals = [
        IatiOptions::default(),
        IatiOptions {
            grants: vec!["G".into()],
            reporting_org: Some("XM-DAC-41301".into()),
            ..IatiOptions::default()
        },
        IatiOptions {
            reporting_org: Some("XI-GRANTFLOW-F".into()),
            ..IatiOptions::default()
        },
    ];
    for options in refusals {
        let error = write_iati_organisation(fixture.store(), &options, &mut out)
            .await
            .unwrap_err();
        assert!(matches!(error, ExportError::BadOption(_)), "{error}");
        assert!(out.is_empty(), "nothing is written on an error");
    }
    let options = IatiOptions {
        reporting_org: Some("XM-DAC-41301".into()),
        generated_at: Some(GENERATED_AT.into()),
        ..IatiOptions::default()
    };
    let (xml, summary) = iati_org_of(fixture.store(), &options).await;
    assert_valid_iati_org(&xml, fixture.dir.path(), "bare.xml");
    assert_passes_iati_rules(&xml, "bare.xml");
    assert_eq!((summary.budgets, summary.expenditures), (0, 0));
    assert!(xml.contains("<organisation-identifier>XM-DAC-41301</organisation-identifier>"));
}
