//! The IATI export against IATI's published rules, not only the XSD: the 2.03 ruleset as IATI
//! publishes it (docs/iati-2.03/rulesets/standard.json) and the codelists of the codes the
//! export writes, applied by the project's own implementation of the ruleset's rule types
//! (tests/common/ruleset.rs). The demo's export passes every rule; a known-bad file and a
//! broken copy of the demo's export are flagged, rule by rule; each rule type and the XPath
//! evaluator are checked on small cases.
//!
//! `IATI_RULES_FILE=path[,path...] cargo test -p grantflow-export --test iati_rules` checks
//! the named files too (e.g. `grantflow export --format iati` of your own store): every
//! finding is printed, and an error-level one fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;

use common::ruleset::{agency_prefix, Finding, Rules};
use common::xpath::{eval, string_to_number, Value};
use common::{
    activities, assert_passes_iati_rules, assert_valid_iati, assert_valid_iati_org, load_demo,
    Fixture, ORG_REF,
};
use grantflow_engine::query::AsOf;
use serde_json::{json, Value as Json};

fn ids(findings: &[Finding]) -> BTreeSet<String> {
    findings.iter().map(|f| f.id.clone()).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

#[test]
fn the_ruleset_uses_only_rule_types_the_check_implements() {
    let rules = Rules::standard();
    assert_eq!(
        rules.rule_types(),
        set(&[
            "atleast_one",
            "between_dates",
            "date_now",
            "date_order",
            "if_then",
            "loop",
            "no_more_than_one",
            "no_spaces",
            "one_or_all",
            "range",
            "regex_matches",
            "startswith",
            "strict_sum",
            "time_limit",
            "unique",
        ]),
        "IATI's ruleset changed: implement the new rule types in tests/common/ruleset.rs"
    );
}

/// A file that breaks one rule after another (each element's comment names the rule).
const BAD_ACTIVITIES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<iati-activities version="2.03" generated-datetime="2015-10-01T00:00:00Z">
  <!-- No xml:lang (4.1.1), no default-currency (7.8.1), updated in 2999 (11.1.1). -->
  <iati-activity last-updated-datetime="2999-01-01T00:00:00Z" hierarchy="1">
    <!-- The same as the reporting org (1.1.3), not starting with it (1.1.21, warning). -->
    <iati-identifier>ZZ-NOPE-1</iati-identifier>
    <!-- No such registration agency (1.14.8, warning; the codelist). -->
    <reporting-org ref="ZZ-NOPE-1" type="40"><narrative>Nobody</narrative></reporting-org>
    <!-- A title without text (4.3.1). -->
    <title><narrative/></title>
    <description><narrative>d</narrative></description>
    <activity-status code="2"/>
    <!-- Planned end before the start (11.1.2); an actual start ahead (11.1.4). -->
    <activity-date type="1" iso-date="2014-01-01"/>
    <activity-date type="3" iso-date="2013-01-01"/>
    <activity-date type="2" iso-date="2999-01-01"/>
    <!-- 366 days (7.5.3). -->
    <budget type="1" status="2">
      <period-start iso-date="2013-01-01"/><period-end iso-date="2014-01-02"/>
      <value value-date="2013-01-01">10</value>
    </budget>
    <!-- Dated ahead (11.2.1, 11.2.2); no sector anywhere (6.2.2, 6.7.2); no recipient
         anywhere (3.7.1, 3.7.2). -->
    <transaction>
      <transaction-type code="3"/><transaction-date iso-date="2999-01-01"/>
      <value value-date="2999-01-01">5</value>
    </transaction>
  </iati-activity>
  <iati-activity xml:lang="en" default-currency="USD" hierarchy="2">
    <iati-identifier>XM-DAC-41301-A</iati-identifier>
    <reporting-org ref="XM-DAC-41301" type="40"><narrative>Somebody</narrative></reporting-org>
    <title><narrative>t</narrative></title>
    <description><narrative>d</narrative></description>
    <activity-status code="2"/>
    <activity-date type="1" iso-date="2013-01-01"/>
    <!-- No such country (the codelist); 90 % (3.1.2). -->
    <recipient-country code="XX" percentage="60"/>
    <recipient-country code="MX" percentage="30"/>
    <!-- No such sector (the codelist); 90 % (2.1.2). -->
    <sector vocabulary="1" code="15190" percentage="50"/>
    <sector vocabulary="1" code="12345" percentage="40"/>
    <!-- A sector (6.6.2) and a recipient (3.6.2) on the transaction as well. -->
    <transaction>
      <transaction-type code="3"/><transaction-date iso-date="2013-02-01"/>
      <value value-date="2013-02-01">5</value>
      <sector vocabulary="1" code="15190"/>
      <recipient-country code="MX"/>
    </transaction>
    <!-- No such document category (the codelist). -->
    <document-link url="https://example.org/a.pdf" format="application/pdf">
      <title><narrative>doc</narrative></title><category code="Z01"/>
    </document-link>
  </iati-activity>
  <iati-activity xml:lang="en" default-currency="USD">
    <iati-identifier>XM-DAC-41301-B</iati-identifier>
    <reporting-org ref="XM-DAC-41301" type="40"><narrative>x</narrative></reporting-org>
    <title><narrative>t</narrative></title>
    <activity-status code="2"/>
    <activity-date type="1" iso-date="2013-01-01"/>
    <!-- No such region (the codelist). -->
    <recipient-region code="999" vocabulary="1" percentage="100"/>
    <!-- One sector, at 80 % (2.1.4). -->
    <sector vocabulary="1" code="15190" percentage="80"/>
  </iati-activity>
  <iati-activity xml:lang="en" default-currency="USD">
    <iati-identifier>XM-DAC-41301-C</iati-identifier>
    <reporting-org ref="XM-DAC-41301" type="40"><narrative>x</narrative></reporting-org>
    <title><narrative>t</narrative></title>
    <activity-status code="2"/>
    <!-- No start date at all (6.11.1). Two countries, two sectors, no percentages (3.1.1,
         3.1.2, 2.1.1). -->
    <recipient-country code="MX"/>
    <recipient-country code="GT"/>
    <sector vocabulary="1" code="15190"/>
    <sector vocabulary="1" code="15110"/>
  </iati-activity>
</iati-activities>
"#;

#[test]
fn a_known_bad_file_is_flagged_rule_by_rule() {
    let findings = Rules::standard().check(BAD_ACTIVITIES);
    let errors: Vec<Finding> = findings.iter().filter(|f| f.is_error()).cloned().collect();
    assert_eq!(
        ids(&errors),
        set(&[
            "1.1.3",
            "11.1.1",
            "11.1.2",
            "11.1.4",
            "11.2.1",
            "11.2.2",
            "2.1.1",
            "2.1.2",
            "2.1.4",
            "3.1.1",
            "3.1.2",
            "3.6.2",
            "3.7.1",
            "3.7.2",
            "4.1.1",
            "4.3.1",
            "6.11.1",
            "6.2.2",
            "6.6.2",
            "6.7.2",
            "7.5.3",
            "7.8.1",
            "codelist:Country",
            "codelist:DocumentCategory",
            "codelist:OrganisationRegistrationAgency",
            "codelist:Region",
            "codelist:Sector",
        ]),
        "{findings:#?}"
    );
    let warnings: Vec<Finding> = findings.iter().filter(|f| !f.is_error()).cloned().collect();
    assert_eq!(ids(&warnings), set(&["1.1.21", "1.14.8"]), "{warnings:#?}");
    // Each finding names its activity.
    let at = |id: &str| -> BTreeSet<String> {
        findings
            .iter()
            .filter(|f| f.id == id)
            .map(|f| f.at.clone())
            .collect()
    };
    assert_eq!(at("6.2.2"), set(&["ZZ-NOPE-1"]));
    assert_eq!(at("2.1.4"), set(&["XM-DAC-41301-B"]));
    assert_eq!(at("6.11.1"), set(&["XM-DAC-41301-C"]));
    assert_eq!(at("codelist:Sector"), set(&["XM-DAC-41301-A"]));
}

/// A small file that passes every rule, warnings included.
const GOOD_ACTIVITY: &str = r#"<iati-activities version="2.03">
  <iati-activity xml:lang="en" default-currency="USD" last-updated-datetime="2014-01-01T00:00:00Z">
    <iati-identifier>XM-DAC-41301-A</iati-identifier>
    <reporting-org ref="XM-DAC-41301" type="40"><narrative>Somebody</narrative></reporting-org>
    <title><narrative>t</narrative></title>
    <description><narrative>d</narrative></description>
    <activity-status code="2"/>
    <activity-date type="1" iso-date="2013-01-01"/>
    <activity-date type="2" iso-date="2013-01-01"/>
    <activity-date type="3" iso-date="2013-01-01"/>
    <recipient-country code="MX" percentage="66.67"/>
    <recipient-region code="998" vocabulary="1" percentage="33.33"/>
    <sector vocabulary="1" code="15190" percentage="33.34"/>
    <sector vocabulary="1" code="99810" percentage="66.66"/>
    <budget type="1" status="2">
      <period-start iso-date="2013-01-01"/><period-end iso-date="2014-01-01"/>
      <value value-date="2013-01-01">10</value>
    </budget>
    <transaction>
      <transaction-type code="3"/><transaction-date iso-date="2013-02-01"/>
      <value value-date="2013-02-01">5</value>
      <receiver-org><narrative>r</narrative></receiver-org>
    </transaction>
    <document-link url="https://example.org/a.pdf" format="application/pdf">
      <title><narrative>doc</narrative></title><category code="A02"/>
    </document-link>
  </iati-activity>
</iati-activities>"#;

#[test]
fn a_good_file_has_no_finding() {
    let rules = Rules::standard();
    let findings = rules.check(GOOD_ACTIVITY);
    assert!(findings.is_empty(), "{findings:#?}");
    // The same activity twice: its identifier repeats (1.1.2).
    let start = GOOD_ACTIVITY.find("  <iati-activity ").unwrap();
    let end = GOOD_ACTIVITY.find("</iati-activities>").unwrap();
    let twice = format!("{}{}", &GOOD_ACTIVITY[..end], &GOOD_ACTIVITY[start..]);
    assert_eq!(ids(&rules.check(&twice)), set(&["1.1.2"]));
}

/// The findings of one case of `rule` on one activity holding `inner`, codelists aside.
fn check(rule: &str, mut case: Json, inner: &str) -> Vec<String> {
    case["ruleInfo"] = json!({"id": "T", "severity": "error", "message": "test"});
    let ruleset = json!({"/iati-activities/iati-activity": {rule: {"cases": [case]}}});
    let xml = format!(
        "<iati-activities version=\"2.03\"><iati-activity xml:lang=\"en\"><iati-identifier>X-1</iati-identifier>{inner}</iati-activity></iati-activities>"
    );
    Rules::from_json(&ruleset.to_string())
        .check(&xml)
        .into_iter()
        .filter(|f| !f.id.starts_with("codelist:"))
        .map(|f| f.message)
        .collect()
}

fn passes(rule: &str, case: Json, inner: &str) -> bool {
    check(rule, case, inner).is_empty()
}

fn period(start: &str, end: &str) -> String {
    format!("<budget><period-start iso-date=\"{start}\"/><period-end iso-date=\"{end}\"/></budget>")
}

#[test]
fn each_rule_type_behaves_as_the_specification_says() {
    let span = json!({"paths": ["budget"]});
    // no_more_than_one, atleast_one, dependent.
    assert!(passes(
        "no_more_than_one",
        span.clone(),
        &period("2013-01-01", "2013-02-01")
    ));
    let two = format!(
        "{}{}",
        period("2013-01-01", "2013-02-01"),
        period("2014-01-01", "2014-02-01")
    );
    assert!(!passes("no_more_than_one", span.clone(), &two));
    assert!(passes("atleast_one", span.clone(), &two));
    assert!(!passes("atleast_one", span.clone(), ""));
    let pair = json!({"paths": ["budget", "sector"]});
    assert!(passes("dependent", pair.clone(), ""));
    assert!(!passes("dependent", pair.clone(), &two));
    assert!(passes(
        "dependent",
        pair,
        &format!("{two}<sector code=\"1\"/>")
    ));
    // A condition that does not hold: the rule does not apply.
    let conditional = json!({"paths": ["budget"], "condition": "count(sector) > 0"});
    assert!(passes("atleast_one", conditional.clone(), ""));
    assert!(!passes("atleast_one", conditional, "<sector code=\"1\"/>"));

    // time_limit: at most 365 days from start to end; date_order inclusive; NOW.
    let limit =
        json!({"start": "budget/period-start/@iso-date", "end": "budget/period-end/@iso-date"});
    assert!(passes(
        "time_limit",
        limit.clone(),
        &period("2013-01-01", "2014-01-01")
    ));
    assert!(!passes(
        "time_limit",
        limit.clone(),
        &period("2013-01-01", "2014-01-02")
    ));
    assert!(passes(
        "time_limit",
        limit.clone(),
        &period("2015-03-01", "2016-02-29")
    ));
    assert!(!passes(
        "time_limit",
        limit,
        &period("2015-03-01", "2016-03-01")
    ));
    let order =
        json!({"less": "budget/period-start/@iso-date", "more": "budget/period-end/@iso-date"});
    assert!(passes(
        "date_order",
        order.clone(),
        &period("2013-01-01", "2013-01-01")
    ));
    assert!(!passes(
        "date_order",
        order.clone(),
        &period("2013-01-02", "2013-01-01")
    ));
    assert!(passes(
        "date_order",
        order,
        "<budget><period-end iso-date=\"2013-01-01\"/></budget>"
    ));
    let now = json!({"less": "budget/period-start/@iso-date", "more": "NOW"});
    let today = chrono::Utc::now().date_naive();
    let tomorrow = today + chrono::Days::new(1);
    assert!(passes(
        "date_order",
        now.clone(),
        &period(&today.to_string(), "2999-01-01")
    ));
    assert!(!passes(
        "date_order",
        now,
        &period(&tomorrow.to_string(), "2999-01-01")
    ));
    let updated = |at: &str| format!("<budget><period-start iso-date=\"{at}\"/></budget>");
    let date_now = json!({"date": "budget/period-start/@iso-date"});
    assert!(passes(
        "date_now",
        date_now.clone(),
        &updated(&today.to_string())
    ));
    assert!(!passes(
        "date_now",
        date_now,
        &updated(&tomorrow.to_string())
    ));
    let between = json!({"date": "value/@value-date", "start": "budget/period-start/@iso-date", "end": "budget/period-end/@iso-date"});
    let valued = |date: &str| {
        format!(
            "{}<value value-date=\"{date}\">1</value>",
            period("2013-01-01", "2013-12-31")
        )
    };
    assert!(passes(
        "between_dates",
        between.clone(),
        &valued("2013-12-31")
    ));
    assert!(!passes("between_dates", between, &valued("2014-01-01")));

    // strict_sum exactly; sum only when something is there; range.
    let shares = json!({"paths": ["sector/@percentage"], "sum": 100});
    let sectors = |pcts: &[&str]| -> String {
        pcts.iter()
            .map(|p| format!("<sector code=\"1\" percentage=\"{p}\"/>"))
            .collect()
    };
    assert!(passes(
        "strict_sum",
        shares.clone(),
        &sectors(&["33.33", "33.33", "33.34"])
    ));
    assert!(!passes(
        "strict_sum",
        shares.clone(),
        &sectors(&["33.33", "33.33", "33.33"])
    ));
    assert!(!passes(
        "strict_sum",
        shares.clone(),
        &sectors(&["50", "fifty"])
    ));
    assert!(!passes("strict_sum", shares.clone(), ""));
    assert!(passes("sum", shares.clone(), ""));
    assert!(!passes("sum", shares, &sectors(&["99.99"])));
    let range = json!({"paths": ["sector/@percentage"], "min": 0.0, "max": 100.0});
    assert!(passes("range", range.clone(), &sectors(&["0", "100"])));
    assert!(!passes("range", range.clone(), &sectors(&["100.01"])));
    assert!(!passes("range", range, &sectors(&["-1"])));

    // unique, no_spaces, regex_matches, regex_no_matches (an empty text passes both).
    let codes = json!({"paths": ["sector/@code"]});
    let coded = |codes: &[&str]| -> String {
        codes
            .iter()
            .map(|c| format!("<sector code=\"{c}\"/>"))
            .collect()
    };
    assert!(passes("unique", codes.clone(), &coded(&["1", "2"])));
    assert!(!passes("unique", codes.clone(), &coded(&["1", "1"])));
    assert!(passes("no_spaces", codes.clone(), &coded(&["a b"])));
    assert!(!passes("no_spaces", codes, &coded(&[" a"])));
    let symbols = json!({"paths": ["sector/@code"], "regex": "^[^\\/\\&\\|\\?]+$"});
    assert!(passes(
        "regex_matches",
        symbols.clone(),
        &coded(&["XM-DAC-1", ""])
    ));
    assert!(!passes("regex_matches", symbols.clone(), &coded(&["a/b"])));
    assert!(passes(
        "regex_no_matches",
        symbols.clone(),
        &coded(&["a/b", ""])
    ));
    assert!(!passes("regex_no_matches", symbols, &coded(&["ab"])));

    // startswith: a prefix and its separator; the registration agencies.
    let starts =
        json!({"prefix": ["reporting-org/@ref"], "separator": "-", "paths": ["sector/@code"]});
    let reporting = "<reporting-org ref=\"XM-DAC-41301\"/>";
    assert!(passes(
        "startswith",
        starts.clone(),
        &format!("{reporting}{}", coded(&["XM-DAC-41301-A"]))
    ));
    assert!(!passes(
        "startswith",
        starts,
        &format!("{reporting}{}", coded(&["XM-DAC-41301A"]))
    ));
    let agency = json!({"prefix": ["ORG-ID-PREFIX"], "paths": ["sector/@code"]});
    assert!(passes(
        "startswith",
        agency.clone(),
        &coded(&["XM-DAC-41301", "GB-CHC-1"])
    ));
    assert!(!passes("startswith", agency, &coded(&["XI-GRANTFLOW-F"])));
    assert_eq!(agency_prefix("XM-DAC-41301-X"), "XM-DAC");

    // if_then: a node-set is true when it selects something.
    let then = json!({"if": "sector", "then": "transaction[sector]", "paths": ["sector"]});
    assert!(passes("if_then", then.clone(), ""));
    assert!(!passes("if_then", then.clone(), &coded(&["1"])));
    assert!(passes(
        "if_then",
        then,
        &format!("{}<transaction><sector/></transaction>", coded(&["1"]))
    ));

    // one_or_all: `one` there, or every element `all` names qualifies.
    let currency = json!({"one": "@default-currency", "all": "currency"});
    assert!(passes(
        "one_or_all",
        currency.clone(),
        "<value currency=\"USD\">1</value>"
    ));
    assert!(!passes("one_or_all", currency, "<value>1</value>"));
    let sector = json!({"one": "sector", "all": "sector"});
    assert!(passes(
        "one_or_all",
        sector.clone(),
        "<transaction><sector/></transaction>"
    ));
    assert!(!passes(
        "one_or_all",
        sector,
        "<transaction><sector/></transaction><transaction/>"
    ));

    // only_one_of: none of `paths` when `excluded` is there, else exactly one.
    let only = json!({"excluded": ["transaction"], "paths": ["sector"]});
    assert!(passes("only_one_of", only.clone(), &coded(&["1"])));
    assert!(!passes("only_one_of", only.clone(), ""));
    assert!(!passes(
        "only_one_of",
        only,
        &format!("<transaction/>{}", coded(&["1"]))
    ));

    // loop: each distinct value of `foreach`, substituted for $1.
    let per_vocabulary = json!({
        "foreach": "sector/@vocabulary",
        "do": {"strict_sum": {"cases": [{
            "paths": ["sector[@vocabulary = '$1']/@percentage"], "sum": 100,
            "ruleInfo": {"id": "L", "severity": "error", "message": "loop"}
        }]}},
        "subs": ["paths"]
    });
    let vocabularies = "<sector vocabulary=\"1\" percentage=\"100\"/><sector vocabulary=\"2\" percentage=\"40\"/><sector vocabulary=\"2\" percentage=\"60\"/>";
    assert!(passes("loop", per_vocabulary.clone(), vocabularies));
    let failed = check(
        "loop",
        per_vocabulary,
        "<sector vocabulary=\"1\" percentage=\"100\"/><sector vocabulary=\"2\" percentage=\"40\"/>",
    );
    assert_eq!(failed.len(), 1, "{failed:?}");
}

#[test]
#[should_panic(expected = "rule type `no_such_rule` is not implemented")]
fn an_unknown_rule_type_fails_the_check() {
    check("no_such_rule", json!({"paths": ["sector"]}), "");
}

#[test]
fn the_xpath_evaluator_follows_xpath_1() {
    let document = roxmltree::Document::parse(
        r#"<a xml:lang="en"><b v="1" w=""/><b v="2"><c>x</c><c>y</c></b><d>10.50</d><e/></a>"#,
    )
    .unwrap();
    let a = document.root_element();
    let number = |expression: &str| match eval(expression, a) {
        Value::Number(n) => n,
        other => panic!("{expression}: {other:?}"),
    };
    let boolean = |expression: &str| eval(expression, a).boolean();
    assert_eq!(number("count(b)"), 2.0);
    assert_eq!(number("count(b/c) + count(d)"), 3.0);
    assert_eq!(number("count(//c)"), 2.0);
    assert_eq!(number("count(b[@v = '2']/c)"), 2.0);
    assert_eq!(number("count(b[2]/c[1])"), 1.0);
    assert_eq!(number("count(b | d | b)"), 3.0);
    assert_eq!(number("count(b/c/../..)"), 1.0);
    assert_eq!(number("count(descendant::c)"), 2.0);
    assert_eq!(number("count(b/c/text())"), 2.0);
    assert_eq!(number("count(e/text())"), 0.0);
    assert_eq!(number("sum(b/@v)"), 3.0);
    // Node-set comparisons: "there is a node such that".
    assert!(boolean("b/@v = 2"));
    assert!(boolean("b/@v != 2"));
    assert!(!boolean("b/@v = 3"));
    assert!(boolean("d = 10.5"));
    assert!(boolean("d > 10 and d < 11"));
    assert!(!boolean("e/@missing = ''"));
    assert!(boolean("b[@w = '' or not(@w)]"));
    assert!(boolean("count(b[not(@w='')]) + count(b[not(@w='1')]) > 2"));
    assert!(boolean("@xml:lang"));
    assert!(!boolean("@lang"));
    assert!(boolean("number(d) = d"));
    assert!(!boolean("number(b/c) = b/c"));
    assert!(boolean("not(f) and e"));
    assert_eq!(string_to_number(" 12.5 "), 12.5);
    assert!(string_to_number("1e3").is_nan());
    assert!(string_to_number("+1").is_nan());
    // Absolute paths start at the root, whatever the context.
    let c = a.descendants().find(|n| n.has_tag_name("c")).unwrap();
    assert!(eval("/a/d", c).boolean());
    assert!(!eval("/d", c).boolean());
}

#[tokio::test]
async fn the_demo_passes_every_rule_and_its_organisation_file_too() {
    let fixture = Fixture::new().await;
    load_demo(&fixture).await;
    let (xml, _) = fixture.iati(AsOf::Head, &[]).await;
    assert_valid_iati(&xml, fixture.dir.path(), "demo.xml");
    let findings = assert_passes_iati_rules(&xml, "demo.xml");
    assert!(findings.is_empty(), "not even a warning: {findings:#?}");
    let all = activities(&xml);
    assert_eq!(all[0].identifier, format!("{ORG_REF}-UNTFHS"));
    for activity in &all {
        assert_eq!(
            activity.sectors,
            vec![("15190".to_string(), "1".to_string(), "100".to_string())],
            "{}",
            activity.identifier
        );
        assert_eq!(
            activity.countries,
            vec![("MX".to_string(), "100".to_string())]
        );
    }

    let (organisation, _) = fixture.iati_org(AsOf::Head).await;
    assert_valid_iati_org(&organisation, fixture.dir.path(), "demo-org.xml");
    let findings = assert_passes_iati_rules(&organisation, "demo-org.xml");
    assert!(findings.is_empty(), "not even a warning: {findings:#?}");
}

#[tokio::test]
async fn a_broken_copy_of_the_demos_export_is_flagged() {
    let fixture = Fixture::new().await;
    load_demo(&fixture).await;
    let (xml, _) = fixture.iati(AsOf::Head, &[]).await;
    let rules = Rules::standard();
    let broken = |from: &str, to: &str| -> BTreeSet<String> {
        assert!(xml.contains(from), "{from}");
        ids(&rules.errors(&xml.replacen(from, to, 1)))
    };
    let sector = r#"<sector vocabulary="1" code="15190" percentage="100"/>"#;
    let without_sectors: String = xml
        .lines()
        .filter(|line| line.trim() != sector)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        ids(&rules.errors(&without_sectors)),
        set(&["6.2.2", "6.7.2"])
    );
    assert_eq!(
        ids(&rules.errors(&xml.replace(r#"<recipient-country code="MX" percentage="100"/>"#, ""))),
        set(&["3.7.1", "3.7.2"])
    );
    assert_eq!(
        broken(r#"code="15190""#, r#"code="15199""#),
        set(&["codelist:Sector"])
    );
    assert_eq!(
        broken(
            r#"code="15190" percentage="100""#,
            r#"code="15190" percentage="99""#
        ),
        set(&["2.1.4"])
    );
    assert_eq!(
        broken(
            r#"<transaction-date iso-date="2013-01-15"/>"#,
            r#"<transaction-date iso-date="2999-01-15"/>"#
        ),
        set(&["11.2.1"])
    );
    assert_eq!(
        broken(
            r#"<period-end iso-date="2013-12-31"/>"#,
            r#"<period-end iso-date="2014-12-31"/>"#
        ),
        set(&["7.5.3"])
    );
    assert_eq!(
        broken(
            &format!(r#"ref="{ORG_REF}""#),
            r#"ref="XI-GRANTFLOW-UNTFHS""#
        ),
        set(&["codelist:OrganisationRegistrationAgency"])
    );
}

#[test]
fn files_named_in_iati_rules_file_pass() {
    let Ok(paths) = std::env::var("IATI_RULES_FILE") else {
        return;
    };
    let rules = Rules::standard();
    let mut errors = 0;
    for path in paths.split(',').filter(|p| !p.is_empty()) {
        let xml = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let findings = rules.check(&xml);
        println!("{path}: {} finding(s)", findings.len());
        for finding in &findings {
            println!(
                "  {} {} at {}: {}",
                finding.severity, finding.id, finding.at, finding.message
            );
        }
        errors += findings.iter().filter(|f| f.is_error()).count();
    }
    assert_eq!(errors, 0, "error-level findings (listed above)");
}
