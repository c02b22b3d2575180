//! The IATI export of docs/domain.md's worked example: valid against the 2.03 schema, with the
//! mapping of docs/domain.md, and the options (grants, reporting org, as-of) honoured.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::{
    activities, assert_passes_iati_rules, assert_valid_iati, iati_of, load_secretariat_example,
    load_worked_example, Budget, DocLink, Fixture, GENERATED_AT, ORG_REF, SECRETARIAT_GRANT,
};
use grantflow_engine::query::AsOf;
use grantflow_export::{write_iati, ExportError, IatiOptions};
use serde_json::json;

const FUND_ID: &str = "XI-IATI-UNTFHS-DEMO-UNTFHS";
const GRANT_ID: &str = "XI-IATI-UNTFHS-DEMO-MEX-2012-01";

fn budget(kind: &str, start: &str, end: &str, value: &str, value_date: &str) -> Budget {
    Budget {
        kind: kind.into(),
        start: start.into(),
        end: end.into(),
        value: value.into(),
        value_date: value_date.into(),
    }
}

fn strings(pairs: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    pairs
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[tokio::test]
async fn the_worked_example_is_valid_iati_with_domain_mapping() {
    let fixture = Fixture::new().await;
    load_worked_example(&fixture).await;
    let (xml, summary) = fixture.iati(AsOf::Head, &[]).await;
    assert_valid_iati(&xml, fixture.dir.path(), "worked-example.xml");
    assert_passes_iati_rules(&xml, "worked-example.xml");
    assert!(xml.contains(&format!("generated-datetime=\"{GENERATED_AT}\"")));
    assert!(xml.contains(&format!("<reporting-org ref=\"{ORG_REF}\" type=\"40\">")));
    assert_eq!((summary.funds, summary.grants), (1, 1));
    assert_eq!(summary.transactions, 1 + 2 + 5);

    let all = activities(&xml);
    assert_eq!(all.len(), 2);
    let (fund, grant) = (&all[0], &all[1]);

    assert_eq!(fund.identifier, FUND_ID);
    assert_eq!(fund.hierarchy, "1");
    assert_eq!(fund.title, "United Nations Trust Fund for Human Security");
    assert_eq!(fund.currency, "USD");
    assert!(fund.orgs.contains(&("1".into(), "JP-GOV".into())));
    assert!(fund.orgs.iter().any(|(role, _)| role == "3"));
    assert_eq!(
        fund.dates,
        vec![("2".to_string(), "2012-04-02".to_string())]
    );
    // The fund's one grant names no sector, and is in Mexico.
    assert_eq!(fund.sectors, strings(&[("99810", "1", "100")]));
    assert_eq!(fund.countries, vec![("MX".to_string(), "100".to_string())]);
    assert!(fund.regions.is_empty());
    assert_eq!(fund.transactions.len(), 1);
    let contribution = &fund.transactions[0];
    assert_eq!(
        (
            contribution.code.as_str(),
            contribution.value.as_str(),
            contribution.value_date.as_str()
        ),
        ("1", "5000000.00", "2012-04-02")
    );
    assert_eq!(contribution.provider.as_deref(), Some("JP-GOV"));
    assert_eq!(fund.related, vec![("2".to_string(), GRANT_ID.to_string())]);

    assert_eq!(grant.identifier, GRANT_ID);
    assert_eq!(grant.hierarchy, "2");
    assert!(grant.title.starts_with("Supporting the strengthening"));
    assert_eq!(grant.status, "2", "a disbursed grant is in implementation");
    let roles: Vec<(&str, &str)> = grant
        .orgs
        .iter()
        .map(|(role, name)| (role.as_str(), name.as_str()))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("1", "United Nations Trust Fund for Human Security"),
            ("2", "IOM"),
            ("3", "United Nations Trust Fund for Human Security"),
            ("4", "IOM"),
            ("4", "UNDP"),
            ("4", "UNFPA"),
            ("4", "UNHCR"),
            ("4", "UNODC"),
        ]
    );
    assert_eq!(
        grant.dates,
        vec![
            ("1".to_string(), "2013-01-01".to_string()),
            ("2".to_string(), "2013-01-15".to_string()),
            ("3".to_string(), "2015-09-30".to_string()),
        ]
    );
    assert_eq!(grant.country.as_deref(), Some("MX"));
    assert_eq!(grant.countries, vec![("MX".to_string(), "100".to_string())]);
    assert!(grant.regions.is_empty());
    assert_eq!(
        grant.sectors,
        strings(&[("99810", "1", "100")]),
        "names none"
    );
    assert_eq!(grant.locations, vec!["Chiapas", "Oaxaca"]);
    // Yearly from the planned start (365, 365 and 273 of 1,003 days), the parts adding up to
    // the amount; the original dated on the approval, the revised on the revision.
    assert_eq!(
        grant.budgets,
        vec![
            budget("1", "2013-01-01", "2013-12-31", "1167866.22", "2012-09-27"),
            budget("1", "2014-01-01", "2014-12-31", "1167866.23", "2012-09-27"),
            budget("1", "2015-01-01", "2015-09-30", "873499.95", "2012-09-27"),
            budget("2", "2013-01-01", "2013-12-31", "1136015.00", "2013-03-01"),
            budget("2", "2014-01-01", "2014-12-31", "1136015.01", "2013-03-01"),
            budget("2", "2015-01-01", "2015-09-30", "849676.99", "2013-03-01"),
        ]
    );
    assert_eq!(grant.budget_sum("1"), 320_923_240);
    assert_eq!(grant.budget_sum("2"), 312_170_700);
    assert_eq!(summary.budgets, 6);
    let commitments: Vec<(&str, &str)> = grant
        .transactions
        .iter()
        .filter(|tx| tx.code == "2")
        .map(|tx| (tx.value.as_str(), tx.value_date.as_str()))
        .collect();
    assert_eq!(
        commitments,
        vec![("3209232.40", "2012-09-27"), ("-87525.40", "2013-03-01")]
    );
    let disbursements: Vec<(&str, Option<&str>)> = grant
        .transactions
        .iter()
        .filter(|tx| tx.code == "3")
        .map(|tx| (tx.value.as_str(), tx.receiver.as_deref()))
        .collect();
    assert_eq!(disbursements.len(), 5);
    assert_eq!(disbursements[0], ("300000.00", Some("IOM")));
    assert_eq!(grant.sum("2"), 312_170_700);
    assert_eq!(grant.sum("3"), 80_000_000);
    assert_eq!(grant.related, vec![("1".to_string(), FUND_ID.to_string())]);
}

#[tokio::test]
async fn as_of_the_approval_the_grant_is_pipeline_with_one_commitment() {
    let fixture = Fixture::new().await;
    load_worked_example(&fixture).await;
    // 1 fund, 2 contribution, 3 proposal, 4 approval, 5 fund.grant_committed.
    let (xml, summary) = fixture.iati(AsOf::Position(5), &[]).await;
    assert_valid_iati(&xml, fixture.dir.path(), "as-of-approval.xml");
    assert_passes_iati_rules(&xml, "as-of-approval.xml");
    assert_eq!(summary.position, 5);
    let grant = &activities(&xml)[1];
    assert_eq!(grant.status, "1");
    assert_eq!(grant.transactions.len(), 1);
    assert_eq!(grant.budgets.len(), 3);
    assert!(grant.budgets.iter().all(|b| b.kind == "1"));
    assert_eq!(grant.budget_sum("1"), 320_923_240);
    assert!(!grant.orgs.iter().any(|(role, _)| role == "4"));

    let (proposal, _) = fixture.iati(AsOf::Position(3), &[]).await;
    assert_valid_iati(&proposal, fixture.dir.path(), "as-of-proposal.xml");
    assert_passes_iati_rules(&proposal, "as-of-proposal.xml");
    let grant = &activities(&proposal)[1];
    assert_eq!((grant.status.as_str(), grant.transactions.len()), ("1", 0));
    assert!(grant.budgets.is_empty(), "no budget before approval");
}

#[tokio::test]
async fn an_as_of_time_stops_at_the_first_later_event() {
    let fixture = Fixture::new().await;
    load_worked_example(&fixture).await;
    let events = fixture.store().read(1, 100).await.expect("the log");
    let cut = &events[3];
    let last_within = events
        .iter()
        .filter(|e| e.recorded_at <= cut.recorded_at)
        .map(|e| e.position)
        .max()
        .expect("an event");
    let (by_time, summary) = fixture.iati(AsOf::Time(cut.recorded_at.clone()), &[]).await;
    assert_eq!(summary.position, last_within);
    let (by_position, _) = fixture.iati(AsOf::Position(last_within), &[]).await;
    assert_eq!(by_time, by_position);
    let before_all = IatiOptions {
        as_of: AsOf::Time("2000-01-01T00:00:00+01:00".into()),
        ..IatiOptions::default()
    };
    let mut out = Vec::new();
    let error = write_iati(fixture.store(), &before_all, &mut out)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ExportError::NothingToExport { position: 0 }),
        "{error}"
    );
    let bad_time = IatiOptions {
        as_of: AsOf::Time("not a time".into()),
        ..IatiOptions::default()
    };
    let error = write_iati(fixture.store(), &bad_time, &mut out)
        .await
        .unwrap_err();
    assert!(matches!(error, ExportError::BadOption(_)), "{error}");
}

#[tokio::test]
async fn options_select_grants_and_name_the_publisher() {
    let fixture = Fixture::new().await;
    load_worked_example(&fixture).await;
    fixture
        .run(
            "secretariat.officer",
            json!({"command": "submit-proposal", "fund": "UNTFHS", "grant": "GTM-2013-02", "title": "Other", "amount": "1000.00"}),
        )
        .await;
    fixture
        .run(
            "secretariat.officer",
            json!({"command": "submit-proposal", "fund": "UNTFHS", "grant": "REJ-1", "title": "Rejected one", "amount": "1000.00"}),
        )
        .await;
    fixture
        .run(
            "fund.manager",
            json!({"command": "reject-proposal", "grant": "REJ-1", "reason": "out of scope"}),
        )
        .await;

    let options = IatiOptions {
        as_of: AsOf::Head,
        grants: vec!["GTM-2013-02".into()],
        reporting_org: Some("XM-DAC-41301".into()),
        generated_at: Some("2015-10-01T02:00:00+02:00".into()),
    };
    let (xml, summary) = iati_of(fixture.store(), &options).await;
    assert_valid_iati(&xml, fixture.dir.path(), "selected.xml");
    assert_passes_iati_rules(&xml, "selected.xml");
    assert!(xml.contains("generated-datetime=\"2015-10-01T00:00:00Z\""));
    let all = activities(&xml);
    let ids: Vec<&str> = all.iter().map(|a| a.identifier.as_str()).collect();
    assert_eq!(ids, vec!["XM-DAC-41301-UNTFHS", "XM-DAC-41301-GTM-2013-02"]);
    assert_eq!((summary.funds, summary.grants), (1, 1));
    assert_eq!(all[1].dates.len(), 1, "a fallback planned start");
    assert_eq!(all[1].dates[0].0, "1");
    // Tied to no country, naming no sector.
    assert!(all[1].countries.is_empty());
    assert_eq!(all[1].regions, strings(&[("998", "1", "100")]));
    assert_eq!(all[1].sectors, strings(&[("99810", "1", "100")]));

    let (everything, summary) = fixture.iati(AsOf::Head, &[]).await;
    assert_valid_iati(&everything, fixture.dir.path(), "all.xml");
    assert_passes_iati_rules(&everything, "all.xml");
    assert_eq!((summary.grants, summary.rejected_left_out), (2, 1));
    assert!(!everything.contains("REJ-1"));

    let unknown = IatiOptions {
        grants: vec!["NOPE".into()],
        ..IatiOptions::default()
    };
    let mut out = Vec::new();
    let error = write_iati(fixture.store(), &unknown, &mut out)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ExportError::UnknownGrant(ref id) if id == "NOPE"),
        "{error}"
    );
    assert!(out.is_empty(), "nothing is written on an error");

    for bad in [
        "has space",
        "a&b",
        "",
        "XI-GRANTFLOW-UNTFHS",
        "XM-DAC-41301/2",
    ] {
        let options = IatiOptions {
            reporting_org: Some(bad.into()),
            ..IatiOptions::default()
        };
        let error = write_iati(fixture.store(), &options, &mut out)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ExportError::BadOption(_)),
            "{bad:?}: {error}"
        );
    }
    let options = IatiOptions {
        generated_at: Some("yesterday".into()),
        ..IatiOptions::default()
    };
    let error = write_iati(fixture.store(), &options, &mut out)
        .await
        .unwrap_err();
    assert!(matches!(error, ExportError::BadOption(_)), "{error}");
    assert!(out.is_empty());
}

#[tokio::test]
async fn an_empty_log_has_nothing_to_export() {
    let fixture = Fixture::new().await;
    let mut out = Vec::new();
    let error = write_iati(fixture.store(), &IatiOptions::default(), &mut out)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ExportError::NothingToExport { position: 0 }),
        "{error}"
    );
    assert!(out.is_empty());
}

#[tokio::test]
async fn part_two_publishes_pledges_and_documents_but_not_fees_or_income() {
    let fixture = Fixture::new().await;
    load_secretariat_example(&fixture).await;
    let (xml, summary) = fixture.iati(AsOf::Head, &[]).await;
    assert_valid_iati(&xml, fixture.dir.path(), "part-two.xml");
    assert_passes_iati_rules(&xml, "part-two.xml");
    let all = activities(&xml);
    assert_eq!(all.len(), 2);
    let (fund, grant) = (&all[0], &all[1]);

    // Pledges: type 11 on the fund's activity, on signed_on, from the donor, in log order
    // with the contributions (type 1).
    let flows: Vec<(&str, &str, &str, &str, Option<&str>)> = fund
        .transactions
        .iter()
        .map(|tx| {
            (
                tx.code.as_str(),
                tx.value.as_str(),
                tx.date.as_str(),
                tx.value_date.as_str(),
                tx.provider.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        flows,
        vec![
            (
                "11",
                "6000000.00",
                "2012-03-01",
                "2012-03-01",
                Some("JP-GOV")
            ),
            (
                "11",
                "250000.00",
                "2012-05-10",
                "2012-05-10",
                Some("MX-GOV")
            ),
            (
                "1",
                "5000000.00",
                "2012-04-02",
                "2012-04-02",
                Some("JP-GOV")
            ),
            ("1", "100000.00", "2013-09-01", "2013-09-01", Some("MX-GOV")),
        ]
    );
    let descriptions: Vec<Option<&str>> = fund
        .transactions
        .iter()
        .map(|tx| tx.description.as_deref())
        .collect();
    assert_eq!(
        descriptions,
        vec![
            Some("Pledge JP-2012-A, due on 2012-12-31"),
            Some("Pledge MX-2012"),
            Some("Pays pledge JP-2012-A"),
            Some("Pays pledge MX-2012"),
        ]
    );
    // The fund's figures: type 1 sums to what was received, type 11 to what was pledged;
    // the fees (50,000.00 and 500.00) and the interest (1,234.56) appear nowhere.
    assert_eq!(fund.sum("1"), 510_000_000);
    assert_eq!(fund.sum("11"), 625_000_000);
    assert_eq!(summary.transactions, 4 + 3);
    for hidden in [">50000.00<", ">500.00<", "1234.56", "interest", "fee"] {
        assert!(!xml.contains(hidden), "{hidden} is not published:\n{xml}");
    }
    let funders: Vec<&str> = fund
        .orgs
        .iter()
        .filter(|(role, _)| role == "1")
        .map(|(_, name)| name.as_str())
        .collect();
    assert_eq!(funders, vec!["JP-GOV", "MX-GOV"]);

    // Documents: a document-link each, those without a url left out.
    assert_eq!(
        fund.documents,
        vec![
            DocLink {
                url: "https://example.org/untfhs/mou-jp.pdf".into(),
                format: "application/pdf".into(),
                title: "Contribution agreement, Government of Japan".into(),
                category: "A09".into(),
                date: Some("2012-03-01".into()),
            },
            DocLink {
                url: "https://example.org/untfhs/terms".into(),
                format: "application/octet-stream".into(),
                title: "Terms of reference of the fund".into(),
                category: "A02".into(),
                date: None,
            },
        ]
    );
    assert_eq!(
        grant.documents,
        vec![
            DocLink {
                url: "https://example.org/mex/prodoc.PDF?version=2".into(),
                format: "application/pdf".into(),
                title: "Programme document: objectives & results".into(),
                category: "A02".into(),
                date: Some("2012-09-27".into()),
            },
            DocLink {
                url: "https://example.org/mex/a%25zz/map%5B1%5D#x".into(),
                format: "application/octet-stream".into(),
                title: "Map of shelters".into(),
                category: "A12".into(),
                date: None,
            },
        ]
    );
    assert_eq!(summary.document_links, 4);
    for left_out in ["MINUTES-1", "not public", "Draft, not yet published"] {
        assert!(!xml.contains(left_out), "{left_out}");
    }
    // Reports are not published.
    assert!(!xml.contains("PR-2013-1"));

    // The approval's commitment carries the yen figure as information.
    let approval = grant
        .transactions
        .iter()
        .find(|tx| tx.code == "2")
        .expect("the approval's commitment");
    assert_eq!(approval.value, "3209232.40");
    assert_eq!(
        approval.description.as_deref(),
        Some("Approved on 2012-09-27; reported as approximately 260,000,000 JPY")
    );
    assert_eq!(grant.sum("3"), 50_000_000);
    assert_eq!(grant.sum("4"), 10_000_000);

    // A grant selected alone still brings its fund's activity, documents included.
    let (selected, _) = fixture.iati(AsOf::Head, &[SECRETARIAT_GRANT]).await;
    assert_valid_iati(&selected, fixture.dir.path(), "part-two-selected.xml");
    assert_eq!(activities(&selected)[0].documents.len(), 2);

    // As of the first pledge, the fund's activity holds it alone.
    let (early, _) = fixture.iati(AsOf::Position(2), &[]).await;
    assert_valid_iati(&early, fixture.dir.path(), "part-two-early.xml");
    let fund = &activities(&early)[0];
    assert_eq!(fund.transactions.len(), 1);
    assert_eq!(fund.transactions[0].code, "11");
    assert!(fund.documents.is_empty());
}

/// Exports with these options; the error when refused.
async fn refused(fixture: &Fixture, options: IatiOptions) -> ExportError {
    let mut out = Vec::new();
    let error = write_iati(fixture.store(), &options, &mut out)
        .await
        .unwrap_err();
    assert!(out.is_empty(), "nothing is written on an error");
    error
}

#[tokio::test]
async fn the_publisher_is_the_option_or_the_funds_identifier_and_never_made_up() {
    let fixture = Fixture::new().await;
    fixture
        .run(
            "finance",
            json!({"command": "register-fund", "fund": "F1", "name": "Fund one", "currency": "USD"}),
        )
        .await;
    // No identifier anywhere: refused, saying how to set one.
    let error = refused(&fixture, IatiOptions::default()).await;
    let message = error.to_string();
    assert!(matches!(error, ExportError::BadOption(_)), "{message}");
    for hint in ["F1", "--reporting-org", "iati_org_ref", "IATI Registry"] {
        assert!(message.contains(hint), "{hint}: {message}");
    }
    // The option names the publisher.
    let options = IatiOptions {
        reporting_org: Some("XM-DAC-41301".into()),
        generated_at: Some(GENERATED_AT.into()),
        ..IatiOptions::default()
    };
    let (xml, _) = iati_of(fixture.store(), &options).await;
    assert_passes_iati_rules(&xml, "option.xml");
    assert_eq!(activities(&xml)[0].identifier, "XM-DAC-41301-F1");

    // Two funds with different identifiers cannot share a file (one reporting-org per file)...
    for (fund, reference) in [("F2", "XM-DAC-41302"), ("F3", "XM-DAC-41303")] {
        fixture
            .run(
                "finance",
                json!({"command": "register-fund", "fund": fund, "name": fund, "currency": "USD", "iati_org_ref": reference}),
            )
            .await;
    }
    fixture
        .run(
            "sec",
            json!({"command": "submit-proposal", "fund": "F2", "grant": "G2", "title": "Two", "amount": "10.00"}),
        )
        .await;
    fixture
        .run(
            "sec",
            json!({"command": "submit-proposal", "fund": "F3", "grant": "G3", "title": "Three", "amount": "10.00"}),
        )
        .await;
    let both = IatiOptions {
        grants: vec!["G2".into(), "G3".into()],
        ..IatiOptions::default()
    };
    let message = refused(&fixture, both).await.to_string();
    assert!(
        message.contains("XM-DAC-41302") && message.contains("XM-DAC-41303"),
        "{message}"
    );
    // ...but each fund's grants go out under their own.
    let one = IatiOptions {
        grants: vec!["G3".into()],
        generated_at: Some(GENERATED_AT.into()),
        ..IatiOptions::default()
    };
    let (xml, _) = iati_of(fixture.store(), &one).await;
    let ids: Vec<String> = activities(&xml).into_iter().map(|a| a.identifier).collect();
    assert_eq!(ids, vec!["XM-DAC-41303-F3", "XM-DAC-41303-G3"]);
}

#[tokio::test]
async fn a_pooled_fund_names_its_grants_sectors_and_countries_weighted_by_commitment() {
    let fixture = Fixture::new().await;
    let commands = [
        json!({"command": "register-fund", "fund": "F", "name": "Pooled", "currency": "USD", "iati_org_ref": ORG_REF}),
        json!({"command": "record-contribution", "fund": "F", "donor": "D", "amount": "1000000.00", "received_on": "2012-01-10"}),
        // 300,000 in Mexico: 2/3 migration, 1/3 human rights.
        json!({"command": "submit-proposal", "fund": "F", "grant": "A", "title": "A", "amount": "300000.00", "country": "MX",
            "sectors": [{"code": "15190", "percentage": "66.67"}, {"code": "15160", "percentage": "33.33"}]}),
        // 100,000 tied to no country, naming no sector.
        json!({"command": "submit-proposal", "fund": "F", "grant": "B", "title": "B", "amount": "100000.00"}),
        // 200,000 in Guatemala, migration.
        json!({"command": "submit-proposal", "fund": "F", "grant": "C", "title": "C", "amount": "200000.00", "country": "GT",
            "sectors": [{"code": "15190", "percentage": "100"}]}),
        // A proposal holds nothing of the fund: it does not weigh.
        json!({"command": "submit-proposal", "fund": "F", "grant": "P", "title": "P", "amount": "900000.00", "country": "HN",
            "sectors": [{"code": "12220", "percentage": "100"}]}),
    ];
    for command in commands {
        fixture.run("sec", command).await;
    }
    for grant in ["A", "B", "C"] {
        fixture
            .run(
                "approver",
                json!({"command": "approve-grant", "grant": grant, "decided_on": "2012-09-27"}),
            )
            .await;
    }
    let (xml, _) = fixture.iati(AsOf::Head, &[]).await;
    assert_valid_iati(&xml, fixture.dir.path(), "pooled.xml");
    assert_passes_iati_rules(&xml, "pooled.xml");
    let all = activities(&xml);
    let fund = &all[0];
    // Exact shares: 15190 (300,000 x 66.67 + 200,000 x 100) / 600,000 = 66.668...,
    // 15160 16.665, 99810 16.666...; in hundredths, the floors add up to 99.98 and the two
    // largest remainders (15190's, 99810's) get the last two.
    assert_eq!(
        fund.sectors,
        strings(&[
            ("15160", "1", "16.66"),
            ("15190", "1", "66.67"),
            ("99810", "1", "16.67")
        ])
    );
    assert_eq!(
        fund.countries,
        vec![
            ("GT".to_string(), "33.33".to_string()),
            ("MX".to_string(), "50".to_string())
        ]
    );
    assert_eq!(fund.regions, strings(&[("998", "1", "16.67")]));
    let grant_b = all
        .iter()
        .find(|a| a.identifier.ends_with("-B"))
        .expect("B");
    assert_eq!(grant_b.regions, strings(&[("998", "1", "100")]));
    assert_eq!(grant_b.sectors, strings(&[("99810", "1", "100")]));
    let grant_a = all
        .iter()
        .find(|a| a.identifier.ends_with("-A"))
        .expect("A");
    assert_eq!(
        grant_a.sectors,
        strings(&[("15190", "1", "66.67"), ("15160", "1", "33.33")])
    );

    // A fund that holds nothing yet: not specified, developing countries unspecified.
    let (early, _) = fixture.iati(AsOf::Position(4), &[]).await;
    assert_passes_iati_rules(&early, "pooled-early.xml");
    let fund = &activities(&early)[0];
    assert_eq!(fund.sectors, strings(&[("99810", "1", "100")]));
    assert!(fund.countries.is_empty());
    assert_eq!(fund.regions, strings(&[("998", "1", "100")]));
}

#[tokio::test]
async fn nothing_is_dated_ahead_and_the_actual_dates_are_in_order() {
    let fixture = Fixture::new().await;
    let today = chrono::Utc::now().date_naive();
    let ahead = (today + chrono::Days::new(40)).to_string();
    let commands = [
        json!({"command": "register-fund", "fund": "F", "name": "F", "currency": "USD", "iati_org_ref": ORG_REF}),
        json!({"command": "record-contribution", "fund": "F", "donor": "D", "amount": "1000.00", "received_on": "2012-01-10"}),
        json!({"command": "submit-proposal", "fund": "F", "grant": "G", "title": "G", "amount": "100.00", "ends_on": "2013-01-01"}),
        json!({"command": "approve-grant", "grant": "G", "decided_on": "2013-06-01"}),
        json!({"command": "assign-agency", "grant": "G", "agency": "AG", "allocation": "100.00"}),
        json!({"command": "record-disbursement", "grant": "G", "agency": "AG", "amount": "50.00", "paid_on": "2014-02-01"}),
        // Spending reported for a period that ends ahead (a planning date may lie ahead).
        json!({"command": "record-expenditure", "grant": "G", "agency": "AG", "amount": "10.00", "period_end": ahead}),
        // Closed on a day before its first disbursement's business date.
        json!({"command": "close-grant", "grant": "G", "closed_on": "2014-01-01"}),
        // Approved after its planned end, never disbursed.
        json!({"command": "submit-proposal", "fund": "F", "grant": "H", "title": "H", "amount": "100.00", "ends_on": "2013-01-01"}),
        json!({"command": "approve-grant", "grant": "H", "decided_on": "2013-06-01"}),
    ];
    for command in commands {
        let actor = match command["command"].as_str() {
            Some("approve-grant") => "approver",
            _ => "sec",
        };
        fixture.run(actor, command).await;
    }
    let (xml, _) = fixture.iati(AsOf::Head, &[]).await;
    assert_valid_iati(&xml, fixture.dir.path(), "dates.xml");
    assert_passes_iati_rules(&xml, "dates.xml");
    let grant = &activities(&xml)[1];
    let expenditure = grant
        .transactions
        .iter()
        .find(|tx| tx.code == "4")
        .expect("the expenditure");
    // Dated on the day it was recorded (today, or yesterday around midnight UTC).
    assert!(
        expenditure.date.as_str() <= today.to_string().as_str(),
        "{expenditure:?}"
    );
    assert!(expenditure.date.as_str() < ahead.as_str());
    assert_eq!(expenditure.date, expenditure.value_date);
    // The actual start no later than the closure.
    let dates = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(kind, date)| (kind.to_string(), date.to_string()))
            .collect()
    };
    assert_eq!(
        grant.dates,
        dates(&[
            ("2", "2014-01-01"),
            ("3", "2013-01-01"),
            ("4", "2014-01-01")
        ])
    );
    // A planned start from the approval, but not after the planned end.
    let never_started = &activities(&xml)[2];
    assert_eq!(
        never_started.dates,
        dates(&[("1", "2013-01-01"), ("3", "2013-01-01")])
    );
}
