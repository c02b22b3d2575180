//! Generated portfolios (proptest): grants in every state, awkward titles and regions, with
//! and without countries and sectors. Funds have pledges, documents, fees and income; grants
//! documents with awkward addresses. Each IATI export (activities and organisation file) is
//! valid against the IATI 2.03 XSD and passes every error-level rule of IATI's 2.03 ruleset
//! and codelists; each grant's transactions sum to its figures, its budget periods to its
//! amount, each fund's transactions to its contributions and pledges (fees and income
//! unpublished); the organisation file's yearly budgets add up to what the grants hold of
//! their funds, its yearly expenditure to the net disbursements; an as-of export equals the
//! export of the log cut at that position, and the CSV export parses back with one row per
//! event.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{
    activities, assert_passes_iati_rules, assert_valid_iati, assert_valid_iati_org, iati_of, minor,
    Fixture, GENERATED_AT, ORG_REF,
};
use grantflow_domain::{Amount, Currency};
use grantflow_engine::query::AsOf;
use grantflow_engine::transfer::{export_jsonl, import_file};
use grantflow_export::{write_events_csv, IatiOptions, CSV_COLUMNS};
use grantflow_store_sled::SledStore;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Generated cases (each drives a real sled store, so keep it small).
const PORTFOLIO_CASES: u32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Proposed,
    Rejected,
    Approved,
    Active,
    Suspended,
    Closed,
    Finalized,
    Cancelled,
    CancelledFinalized,
}

impl Target {
    fn status(self) -> &'static str {
        match self {
            Target::Proposed => "proposed",
            Target::Rejected => "rejected",
            Target::Approved => "approved",
            Target::Active => "active",
            Target::Suspended => "suspended",
            Target::Closed => "closed",
            Target::Finalized | Target::CancelledFinalized => "finalized",
            Target::Cancelled => "cancelled",
        }
    }

    fn approved(self) -> bool {
        !matches!(self, Target::Proposed | Target::Rejected)
    }

    fn disburses(self) -> bool {
        self.approved() && self != Target::Approved
    }
}

#[derive(Debug, Clone)]
struct GrantPlan {
    title: String,
    target: Target,
    requested: i128,
    agencies: usize,
    lead: bool,
    disburse_pct: i128,
    expend_pct: i128,
    refund_pct: i128,
    revise_pct: Option<i128>,
    country: Option<&'static str>,
    /// The sectors named on the proposal (code, percentage), and on a revision.
    sectors: Vec<(&'static str, String)>,
    revised_sectors: Option<Vec<(&'static str, String)>>,
    regions: Vec<String>,
    dates: Option<(u32, u32)>,
    activities: Vec<String>,
    reason: String,
    /// A document filed on the grant: title and address (none: filed without one).
    document: Option<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
struct Portfolio {
    currency: &'static str,
    funds: usize,
    fund_name: String,
    grants: Vec<GrantPlan>,
    cut: f64,
    /// The fee percentage of each fund (`"0"`: none).
    fee: &'static str,
    /// A document filed on each fund: title and address.
    fund_document: (String, Option<String>),
}

/// Text with markup characters, quotes, non-ASCII, tabs, line feeds and a character XML
/// cannot hold (U+FFFF, which the export must drop).
fn awkward() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "A & B",
        "<b>",
        "x > y",
        "\"quoted\"",
        "it's",
        "ñandú",
        "Zürich",
        "漢字",
        "🙂",
        " ",
        "]]>",
        "&amp;",
        "\t",
        "\n",
        "\u{FFFF}",
        ",",
        "plain",
    ]);
    prop::collection::vec(pieces, 1..6).prop_map(|pieces| format!("T{}", pieces.concat()))
}

/// An http(s) address the domain accepts (RFC 3986 characters, escapes, at most one `#`),
/// with the characters XML and URIs treat specially: `&`, `'`, escapes, a query, a fragment.
fn awkward_url() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a", "/", "%41", "%7B", "%25", "?q=1&r=2", ".pdf", ".PDF", "'", "(", ")", "~", "!", "$",
        ";", "=", ".html", "@", ":", "+", "*", ",",
    ]);
    (
        prop::sample::select(vec!["https://", "http://"]),
        prop::collection::vec(pieces, 0..8),
        prop::option::of(prop::sample::select(vec!["#x", "#", "#p=3&q"])),
    )
        .prop_map(|(scheme, pieces, fragment)| {
            format!(
                "{scheme}example.org/{}{}",
                pieces.concat(),
                fragment.unwrap_or_default()
            )
        })
}

/// 0 to 3 distinct DAC 5-digit codes with percentages (2 decimals, each at least 0.01)
/// that add up to exactly 100.
fn sectors() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let codes = vec![
        "15190", "15160", "12220", "72010", "99810", "43010", "15110",
    ];
    (
        prop::sample::subsequence(codes, 0..=3).prop_shuffle(),
        prop::collection::btree_set(1u32..10_000, 2),
    )
        .prop_map(|(codes, cuts)| {
            let mut bounds: Vec<u32> = vec![0];
            bounds.extend(cuts.into_iter().take(codes.len().saturating_sub(1)));
            bounds.push(10_000);
            codes
                .into_iter()
                .zip(bounds.windows(2))
                .map(|(code, span)| {
                    let hundredths = span[1] - span[0];
                    (
                        code,
                        format!("{}.{:02}", hundredths / 100, hundredths % 100),
                    )
                })
                .collect()
        })
}

fn document() -> impl Strategy<Value = (String, Option<String>)> {
    (awkward(), prop::option::of(awkward_url()))
}

fn target() -> impl Strategy<Value = Target> {
    prop::sample::select(vec![
        Target::Proposed,
        Target::Rejected,
        Target::Approved,
        Target::Active,
        Target::Suspended,
        Target::Closed,
        Target::Finalized,
        Target::Cancelled,
        Target::CancelledFinalized,
    ])
}

fn grant_plan() -> impl Strategy<Value = GrantPlan> {
    (
        (
            awkward(),
            target(),
            1_000i128..1_000_000_000,
            1usize..4,
            any::<bool>(),
        ),
        (
            1i128..=100,
            0i128..=100,
            0i128..=100,
            prop::option::of(-50i128..=50),
        ),
        (
            prop::option::of(prop::sample::select(vec!["MX", "GT"])),
            sectors(),
            prop::option::of(sectors()),
            prop::collection::vec(awkward(), 0..3),
            prop::option::of((1u32..=12, 1u32..=36)),
            prop::collection::vec(awkward(), 0..3),
            awkward(),
        ),
        prop::option::of(document()),
    )
        .prop_map(
            |(
                (title, target, requested, agencies, lead),
                (disburse_pct, expend_pct, refund_pct, revise_pct),
                (country, sectors, revised_sectors, regions, dates, activities, reason),
                document,
            )| GrantPlan {
                title,
                target,
                requested,
                agencies,
                lead,
                disburse_pct,
                expend_pct,
                refund_pct,
                revise_pct,
                country,
                sectors,
                revised_sectors,
                regions,
                dates,
                activities,
                reason,
                document,
            },
        )
}

fn portfolio() -> impl Strategy<Value = Portfolio> {
    (
        prop::sample::select(vec!["USD", "JPY", "MXN"]),
        1usize..=2,
        awkward(),
        prop::collection::vec(grant_plan(), 1..6),
        0.0f64..1.0,
        prop::sample::select(vec!["0", "1", "2.5"]),
        document(),
    )
        .prop_map(
            |(currency, funds, fund_name, grants, cut, fee, fund_document)| Portfolio {
                currency,
                funds,
                fund_name,
                grants,
                cut,
                fee,
                fund_document,
            },
        )
}

/// Loads a portfolio through the engine; returns each grant id with its plan.
async fn load(fixture: &Fixture, portfolio: &Portfolio) -> Vec<(String, GrantPlan)> {
    let currency = Currency::parse(portfolio.currency).expect("a currency");
    let money = |minor: i128| Amount(minor).format(currency.decimals());
    for fund in 0..portfolio.funds {
        fixture
            .run(
                "finance",
                json!({"command": "register-fund", "fund": format!("F{fund}"), "name": format!("{} {fund}", portfolio.fund_name), "currency": portfolio.currency, "admin_fee_percent": portfolio.fee, "iati_org_ref": ORG_REF}),
            )
            .await;
        fixture
            .run(
                "finance",
                json!({"command": "record-pledge", "fund": format!("F{fund}"), "pledge": "P-1", "donor": format!("DONOR-{fund}"), "amount": money(1_500_000_000_000), "signed_on": "2012-01-02", "due_on": "2013-01-02"}),
            )
            .await;
        fixture
            .run(
                "finance",
                json!({"command": "record-contribution", "fund": format!("F{fund}"), "donor": format!("DONOR-{fund}"), "amount": money(1_000_000_000_000), "received_on": "2012-01-10", "pledge": "P-1"}),
            )
            .await;
        fixture
            .run(
                "finance",
                json!({"command": "record-income", "fund": format!("F{fund}"), "kind": "interest", "amount": money(123_457), "received_on": "2012-06-30"}),
            )
            .await;
        attach(
            fixture,
            ("fund", &format!("F{fund}")),
            &portfolio.fund_document,
        )
        .await;
    }
    let mut loaded = Vec::new();
    for (index, plan) in portfolio.grants.iter().enumerate() {
        let grant = format!("G-{index}");
        let fund = format!("F{}", index % portfolio.funds);
        load_grant(fixture, &grant, &fund, plan, &money).await;
        loaded.push((grant, plan.clone()));
    }
    loaded
}

/// Files a document on a fund or grant (`owner`: the field and the id).
async fn attach(fixture: &Fixture, owner: (&str, &str), document: &(String, Option<String>)) {
    let (title, url) = document;
    let mut body = json!({
        "command": "attach-document", "document": "DOC-1", "title": title, "category": "A02",
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "issued_on": "2012-09-01",
    });
    body[owner.0] = json!(owner.1);
    if let Some(url) = url {
        body["url"] = json!(url);
    }
    fixture.run("sec", body).await;
}

async fn load_grant(
    fixture: &Fixture,
    grant: &str,
    fund: &str,
    plan: &GrantPlan,
    money: &dyn Fn(i128) -> String,
) {
    let mut proposal = json!({
        "command": "submit-proposal", "fund": fund, "grant": grant, "title": plan.title,
        "amount": money(plan.requested), "regions": plan.regions, "activities": plan.activities,
    });
    if let Some(country) = plan.country {
        proposal["country"] = json!(country);
    }
    if !plan.sectors.is_empty() {
        proposal["sectors"] = sectors_json(&plan.sectors);
    }
    if let Some((month, months)) = plan.dates {
        proposal["starts_on"] = json!(format!("2013-{month:02}-01"));
        let end = month + months;
        proposal["ends_on"] = json!(format!(
            "{}-{:02}-28",
            2013 + (end - 1) / 12,
            (end - 1) % 12 + 1
        ));
    }
    fixture.run("sec", proposal).await;
    if let Some(document) = &plan.document {
        attach(fixture, ("grant", grant), document).await;
    }
    let run = |actor: &'static str, body: Value| fixture.run(actor, body);
    match plan.target {
        Target::Proposed => return,
        Target::Rejected => {
            run(
                "sec",
                json!({"command": "reject-proposal", "grant": grant, "reason": plan.reason}),
            )
            .await;
            return;
        }
        _ => {}
    }
    run(
        "approver",
        json!({"command": "approve-grant", "grant": grant, "decided_on": "2012-09-27"}),
    )
    .await;
    let allocation = plan.requested / (plan.agencies as i128 + 1);
    let agencies: Vec<String> = (0..plan.agencies).map(|j| format!("AG-{j}")).collect();
    for (j, agency) in agencies.iter().enumerate() {
        run("sec", json!({"command": "assign-agency", "grant": grant, "agency": agency, "allocation": money(allocation), "lead": plan.lead && j == 0})).await;
    }
    // Per agency: (disbursed, expended, refunded).
    let mut held: HashMap<String, (i128, i128, i128)> = HashMap::new();
    if plan.target.disburses() {
        for agency in &agencies {
            let disbursed = allocation * plan.disburse_pct / 100;
            if disbursed == 0 {
                continue;
            }
            run("finance", json!({"command": "record-disbursement", "grant": grant, "agency": agency, "amount": money(disbursed), "paid_on": "2013-02-01", "reference": plan.reason})).await;
            let expended = disbursed * plan.expend_pct / 100;
            if expended > 0 {
                run("finance", json!({"command": "record-expenditure", "grant": grant, "agency": agency, "amount": money(expended), "period_end": "2013-06-30"})).await;
            }
            let refunded = (disbursed - expended) * plan.refund_pct / 100;
            if refunded > 0 {
                run("finance", json!({"command": "record-refund", "grant": grant, "agency": agency, "amount": money(refunded), "received_on": "2013-07-15"})).await;
            }
            held.insert(agency.clone(), (disbursed, expended, refunded));
        }
    }
    if let Some(pct) = plan.revise_pct {
        let allocated = allocation * plan.agencies as i128;
        let revised = (plan.requested * (100 + pct) / 100).max(allocated).max(1);
        if revised != plan.requested {
            let mut body = json!({"command": "revise-grant", "grant": grant, "amount": money(revised), "reason": plan.reason});
            if pct % 2 == 0 {
                body["decided_on"] = json!("2013-03-01");
            }
            if let Some(sectors) = plan.revised_sectors.as_ref().filter(|s| !s.is_empty()) {
                body["sectors"] = sectors_json(sectors);
            }
            run("approver", body).await;
        }
    }
    match plan.target {
        Target::Suspended => {
            run(
                "sec",
                json!({"command": "suspend-grant", "grant": grant, "reason": plan.reason}),
            )
            .await
        }
        Target::Closed => {
            run(
                "sec",
                json!({"command": "close-grant", "grant": grant, "closed_on": "2015-09-30"}),
            )
            .await
        }
        Target::Finalized => {
            run(
                "sec",
                json!({"command": "close-grant", "grant": grant, "closed_on": "2015-09-30"}),
            )
            .await;
            settle(fixture, grant, &held, money).await;
            run(
                "finance",
                json!({"command": "finalize-grant", "grant": grant}),
            )
            .await;
        }
        Target::Cancelled => {
            run(
                "sec",
                json!({"command": "cancel-grant", "grant": grant, "reason": plan.reason}),
            )
            .await
        }
        Target::CancelledFinalized => {
            run(
                "sec",
                json!({"command": "cancel-grant", "grant": grant, "reason": plan.reason}),
            )
            .await;
            settle(fixture, grant, &held, money).await;
            run(
                "finance",
                json!({"command": "finalize-grant", "grant": grant}),
            )
            .await;
        }
        _ => {}
    }
}

fn sectors_json(sectors: &[(&str, String)]) -> Value {
    json!(sectors
        .iter()
        .map(|(code, percentage)| json!({"code": code, "percentage": percentage}))
        .collect::<Vec<_>>())
}

/// Spends what each agency still holds, so that the grant can be finalized.
async fn settle(
    fixture: &Fixture,
    grant: &str,
    held: &HashMap<String, (i128, i128, i128)>,
    money: &dyn Fn(i128) -> String,
) {
    for (agency, (disbursed, expended, refunded)) in held {
        let balance = disbursed - expended - refunded;
        if balance > 0 {
            fixture.run("finance", json!({"command": "record-expenditure", "grant": grant, "agency": agency, "amount": money(balance), "period_end": "2015-09-30"})).await;
        }
    }
}

fn iati_status(status: &str) -> &'static str {
    match status {
        "proposed" | "approved" => "1",
        "active" => "2",
        "suspended" => "6",
        "closed" => "3",
        "finalized" => "4",
        "cancelled" => "5",
        other => panic!("no IATI status for {other}"),
    }
}

/// A percentage as the export writes it: `"66.50"` is `66.5`, `"100.00"` is `100`.
fn trimmed(percentage: &str) -> String {
    match percentage.split_once('.') {
        Some((int, fraction)) => match fraction.trim_end_matches('0') {
            "" => int.to_string(),
            fraction => format!("{int}.{fraction}"),
        },
        None => percentage.to_string(),
    }
}

/// The sums of an organisation file's `total-budget` and `total-expenditure` values, in
/// minor units, and how many of each.
fn organisation_totals(xml: &str) -> ((i128, usize), (i128, usize)) {
    let document = roxmltree::Document::parse(xml).expect("well-formed XML");
    let total = |name: &str| -> (i128, usize) {
        let values: Vec<i128> = document
            .descendants()
            .filter(|n| n.has_tag_name(name))
            .filter_map(|n| n.children().find(|c| c.has_tag_name("value")))
            .map(|v| minor(v.text().unwrap_or_default()))
            .collect();
        (values.iter().sum(), values.len())
    };
    (total("total-budget"), total("total-expenditure"))
}

/// What XML 1.0 can hold of a text (the export drops the rest).
fn xml_text(text: &str) -> String {
    text.chars().filter(|c| *c != '\u{FFFF}').collect()
}

/// The document-links of an activity: one per document with an address, in order, with
/// its title and category.
fn check_documents(links: &[common::DocLink], documents: &[grantflow_domain::DocumentView]) {
    let published: Vec<&grantflow_domain::DocumentView> =
        documents.iter().filter(|d| d.url.is_some()).collect();
    assert_eq!(links.len(), published.len());
    for (link, document) in links.iter().zip(published) {
        assert_eq!(link.title, xml_text(&document.title));
        assert_eq!(link.category, document.category);
        assert_eq!(link.date, document.issued_on);
        assert!(link.url.is_ascii(), "{}", link.url);
        let pdf = document.url.as_deref().is_some_and(|url| {
            url.split(['?', '#'])
                .next()
                .unwrap_or_default()
                .to_lowercase()
                .ends_with(".pdf")
        });
        assert_eq!(link.format == "application/pdf", pdf, "{link:?}");
    }
}

async fn check_portfolio(portfolio: Portfolio) {
    let fixture = Fixture::new().await;
    let loaded = load(&fixture, &portfolio).await;
    let model = fixture.engine.snapshot();
    let world = &model.world;

    // The whole log: valid, one activity per fund and per grant not rejected.
    let (xml, summary) = fixture.iati(AsOf::Head, &[]).await;
    assert_valid_iati(&xml, fixture.dir.path(), "portfolio.xml");
    assert_passes_iati_rules(&xml, "portfolio.xml");
    let all = activities(&xml);
    let rejected = loaded
        .iter()
        .filter(|(_, p)| p.target == Target::Rejected)
        .count();
    assert_eq!(all.len(), portfolio.funds + loaded.len() - rejected);
    assert_eq!(summary.rejected_left_out, rejected as u64);
    let by_id: HashMap<&str, &common::Activity> =
        all.iter().map(|a| (a.identifier.as_str(), a)).collect();
    for fund in world.fund_ids() {
        let view = world.fund_view(&fund).expect("a fund");
        let activity = by_id[format!("{ORG_REF}-{fund}").as_str()];
        assert_eq!(activity.hierarchy, "1");
        assert_eq!(activity.title, xml_text(&view.name));
        assert_eq!(activity.sum("1"), minor(&view.received));
        assert_eq!(activity.sum("11"), minor(&view.pledged));
        assert_eq!(
            activity.transactions.len(),
            2,
            "one pledge, one contribution; no fee, no income"
        );
        check_documents(&activity.documents, &view.documents);
    }
    for (grant, plan) in &loaded {
        let view = world.grant_view(grant).expect("a grant");
        assert_eq!(
            view.status,
            plan.target.status(),
            "{grant} reached its target"
        );
        let fund = &view.fund;
        let identifier = format!("{ORG_REF}-{grant}");
        let Some(activity) = by_id.get(identifier.as_str()) else {
            assert_eq!(plan.target, Target::Rejected, "{grant} is missing");
            continue;
        };
        assert_eq!(activity.hierarchy, "2");
        assert_eq!(activity.status, iati_status(&view.status));
        assert_eq!(activity.title, xml_text(&plan.title));
        assert_eq!(activity.currency, portfolio.currency);
        assert_eq!(
            activity.sum("2"),
            minor(&view.amount),
            "{grant}: commitments = amount"
        );
        assert_eq!(
            activity.sum("3"),
            minor(&view.disbursed) - minor(&view.refunded),
            "{grant}: disbursements - refunds"
        );
        assert_eq!(
            activity.sum("4"),
            minor(&view.expended),
            "{grant}: expenditures"
        );
        let regions: Vec<String> = plan.regions.iter().map(|r| xml_text(r)).collect();
        assert_eq!(activity.locations, regions);
        assert!(!activity.dates.is_empty());
        assert_eq!(
            activity.related,
            vec![("1".to_string(), format!("{ORG_REF}-{fund}"))]
        );
        // Sectors as the grant names them (99810 when it names none), its country or
        // region 998.
        let sectors: Vec<(String, String, String)> = if view.sectors.is_empty() {
            vec![("99810".into(), "1".into(), "100".into())]
        } else {
            view.sectors
                .iter()
                .map(|s| (s.code.clone(), "1".into(), trimmed(&s.percentage)))
                .collect()
        };
        assert_eq!(activity.sectors, sectors, "{grant}");
        match plan.country {
            Some(country) => assert_eq!(
                activity.countries,
                vec![(country.to_string(), "100".to_string())]
            ),
            None => assert_eq!(
                activity.regions,
                vec![("998".to_string(), "1".to_string(), "100".to_string())]
            ),
        }
        // Budgets: periods of at most a year that add up to the original and the current
        // amount.
        if plan.dates.is_some() && plan.target.approved() {
            assert_eq!(
                activity.budget_sum("1"),
                plan.requested,
                "{grant}: original budget"
            );
            if activity.budgets.iter().any(|b| b.kind == "2") {
                assert_eq!(
                    activity.budget_sum("2"),
                    minor(&view.amount),
                    "{grant}: revised"
                );
            }
        } else {
            assert!(activity.budgets.is_empty(), "{grant}");
        }
        check_documents(&activity.documents, &view.documents);
        let agencies = view.agencies.len();
        assert_eq!(
            activity.orgs.iter().filter(|(role, _)| role == "4").count(),
            agencies
        );
    }

    // As of a position: equal to the export of the log cut there (at the end of a command:
    // import refuses a command's events cut short).
    let head = model.position;
    let mut lines = Vec::new();
    export_jsonl(fixture.store(), &mut lines, &|_, _| {})
        .await
        .expect("a JSON Lines export");
    let text = String::from_utf8(lines).expect("UTF-8");
    let command_ids: Vec<String> = text
        .lines()
        .map(|line| {
            let envelope: serde_json::Value = serde_json::from_str(line).expect("JSON");
            envelope["command_id"]
                .as_str()
                .expect("a command id")
                .to_string()
        })
        .collect();
    let mut cut = ((head as f64 * portfolio.cut) as u64).clamp(1, head);
    while cut < head && command_ids[cut as usize] == command_ids[cut as usize - 1] {
        cut += 1;
    }
    let (as_of, summary) = fixture.iati(AsOf::Position(cut), &[]).await;
    assert_eq!(summary.position, cut);
    assert_valid_iati(&as_of, fixture.dir.path(), "as-of.xml");
    assert_passes_iati_rules(&as_of, "as-of.xml");
    let prefix: String = text
        .lines()
        .take(cut as usize)
        .map(|line| format!("{line}\n"))
        .collect();
    let file = fixture.dir.path().join("cut.jsonl");
    std::fs::write(&file, prefix).expect("writing the cut log");
    let cut_store = SledStore::open(&fixture.dir.path().join("cut")).expect("a second store");
    let cut_store: Arc<dyn grantflow_store::EventStore> = Arc::new(cut_store);
    import_file(cut_store.as_ref(), &file, None, &|_, _| {})
        .await
        .expect("the cut log imports");
    let options = IatiOptions {
        generated_at: Some(GENERATED_AT.to_string()),
        ..IatiOptions::default()
    };
    let (of_cut_log, _) = iati_of(cut_store.as_ref(), &options).await;
    assert_eq!(
        as_of, of_cut_log,
        "as-of {cut} differs from the log cut at {cut}"
    );

    // The organisation file: valid, passing the rules; its yearly budgets add up to what the
    // grants hold of their funds, its yearly expenditure to what the funds paid out net.
    let (organisation, org_summary) = fixture.iati_org(AsOf::Head).await;
    assert_valid_iati_org(&organisation, fixture.dir.path(), "organisation.xml");
    assert_passes_iati_rules(&organisation, "organisation.xml");
    assert_eq!(org_summary.organisation, ORG_REF);
    assert_eq!(org_summary.funds, portfolio.funds as u64);
    let ((budgeted, budgets), (spent, expenditures)) = organisation_totals(&organisation);
    let held: i128 = loaded
        .iter()
        .filter_map(|(grant, _)| world.grant(grant))
        .map(|grant| grant.commitment().0)
        .sum();
    assert_eq!(budgeted, held, "total budgets = what the grants hold");
    let net: i128 = world
        .fund_ids()
        .iter()
        .filter_map(|fund| world.fund(fund))
        .map(|fund| (fund.disbursed - fund.refunded).0)
        .sum();
    assert_eq!(spent, net, "total expenditure = disbursed - refunded");
    assert_eq!(
        (budgets as u64, expenditures as u64),
        (org_summary.budgets, org_summary.expenditures)
    );
    let (org_as_of, _) = fixture.iati_org(AsOf::Position(cut)).await;
    assert_valid_iati_org(&org_as_of, fixture.dir.path(), "organisation-as-of.xml");
    assert_passes_iati_rules(&org_as_of, "organisation-as-of.xml");

    // CSV: one row per event, quoted so that every field reads back.
    let mut csv_bytes = Vec::new();
    let rows = write_events_csv(fixture.store(), &mut csv_bytes)
        .await
        .expect("the CSV export");
    assert_eq!(rows, head);
    let mut reader = csv::Reader::from_reader(csv_bytes.as_slice());
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header, CSV_COLUMNS);
    let records: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("every row parses");
    assert_eq!(records.len() as u64, head);
    let titles: HashMap<&str, &str> = loaded
        .iter()
        .map(|(grant, plan)| (grant.as_str(), plan.title.as_str()))
        .collect();
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.len(), CSV_COLUMNS.len());
        assert_eq!(&record[0], (index + 1).to_string());
        if &record[5] == "grant.proposed" {
            assert_eq!(&record[15], titles[&record[7]], "the title reads back");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: PORTFOLIO_CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_portfolios_export_valid_iati_and_csv(portfolio in portfolio()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(check_portfolio(portfolio));
    }
}
