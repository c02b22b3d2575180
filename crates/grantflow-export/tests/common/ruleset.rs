//! IATI's published rules, applied as the IATI Validator applies them: the ruleset as IATI
//! publishes it (`docs/iati-2.03/rulesets/standard.json`, IATI-Rulesets, version 2.03) read
//! at run time, every rule type of the ruleset specification (IATI-Rulesets `SPEC.rst`)
//! implemented here over [`super::xpath`], the codelists the export writes codes from
//! (`docs/iati-2.03/codelists/`), and the Validator's one file-level rule (1.1.2: identifiers
//! unique in the file).
//!
//! Where the specification leaves a detail open, the IATI Validator's behaviour is followed
//! (`time_limit`: at most 365 days from start to end; `between_dates` and `date_order`
//! inclusive; `regex_*` pass an empty text; `NOW` is the moment of the check), with three
//! deliberate differences, all stricter: an XPath that selects nodes is true when it
//! selects at least one (XPath 1.0 `boolean()`, as IATI's Python reference implementation
//! reads it); `date_order` and `date_now` check every date their paths select, where the
//! Validator takes the first (so every transaction's date is checked, not only the first
//! transaction's); and `idCondition` (whether a value is an organisation identifier already
//! registered with the IATI Registry, which the Validator looks up) always holds, so the
//! rules it guards are always applied. A rule type this file does not know fails the check.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use roxmltree::{Document, Node};
use serde_json::{Map, Value as Json};

use super::xpath::{Item, XPath};

/// A rule that failed, or a code outside its codelist.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The rule's id (`6.2.2`), or `codelist:<Name>` for a codelist check.
    pub id: String,
    /// `error` or `warning` (codelist findings are errors).
    pub severity: String,
    /// The iati-identifier (or organisation-identifier) of the element's activity.
    pub at: String,
    /// The rule's message, and what failed.
    pub message: String,
}

impl Finding {
    pub fn is_error(&self) -> bool {
        self.severity == "error"
    }
}

/// The folder of the IATI 2.03 files: `docs/iati-2.03`.
pub fn iati_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/iati-2.03")
}

/// IATI's ruleset and the codelists, loaded once per check.
pub struct Rules {
    ruleset: Map<String, Json>,
    codelists: Codelists,
    now: DateTime<Utc>,
}

impl Rules {
    /// `standard.json` and the codelists as the repository keeps them.
    pub fn standard() -> Rules {
        let path = iati_dir().join("rulesets/standard.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Rules::from_json(&text)
    }

    /// A ruleset given as JSON text, with the repository's codelists.
    pub fn from_json(text: &str) -> Rules {
        let ruleset = match serde_json::from_str(text).expect("the ruleset is JSON") {
            Json::Object(map) => map,
            other => panic!("a ruleset is an object, not {other}"),
        };
        Rules {
            ruleset,
            codelists: Codelists::load(),
            now: Utc::now(),
        }
    }

    /// The rule types the ruleset uses (the keys under each context, `loop`'s `do` included).
    pub fn rule_types(&self) -> BTreeSet<String> {
        let mut types = BTreeSet::new();
        for rules in self.ruleset.values() {
            for (name, rule) in object(rules) {
                types.insert(name.clone());
                for case in cases(rule) {
                    if let Some(inner) = case.get("do") {
                        types.extend(object(inner).keys().cloned());
                    }
                }
            }
        }
        types
    }

    /// Every finding of the ruleset and the codelist checks on `xml`, sorted.
    pub fn check(&self, xml: &str) -> Vec<Finding> {
        let document = Document::parse(xml).expect("well-formed XML");
        let mut findings = Vec::new();
        for (context, rules) in &self.ruleset {
            let contexts = XPath::parse(context)
                .evaluate(Item::Node(document.root()))
                .nodes(context);
            for element in contexts {
                for (rule, body) in object(rules) {
                    for case in cases(body) {
                        self.check_case(rule, case, element.node(), &mut findings);
                    }
                }
            }
        }
        findings.extend(self.codelists.check(&document));
        findings.extend(duplicate_identifiers(&document));
        findings.sort();
        findings.dedup();
        findings
    }

    /// The error-level findings on `xml`.
    pub fn errors(&self, xml: &str) -> Vec<Finding> {
        self.check(xml)
            .into_iter()
            .filter(Finding::is_error)
            .collect()
    }

    fn check_case(
        &self,
        rule: &str,
        case: &Map<String, Json>,
        element: Node,
        findings: &mut Vec<Finding>,
    ) {
        if rule == "loop" {
            self.check_loop(case, element, findings);
            return;
        }
        if let Some(failure) = self.evaluate(rule, case, element) {
            let info = object(&case["ruleInfo"]);
            findings.push(Finding {
                id: text(info, "id"),
                severity: text(info, "severity"),
                at: identifier_of(element),
                message: format!("{} [{rule}: {failure}]", text(info, "message")),
            });
        }
    }

    /// `loop`: for each distinct value `foreach` selects, the `do` rules with `$1` replaced
    /// by the value in the keys `subs` names.
    fn check_loop(&self, case: &Map<String, Json>, element: Node, findings: &mut Vec<Finding>) {
        let foreach = text(case, "foreach");
        let mut groups: Vec<String> = Vec::new();
        for item in XPath::parse(&foreach)
            .evaluate(Item::Node(element))
            .nodes(&foreach)
        {
            let value = item.string_value();
            if !groups.contains(&value) {
                groups.push(value);
            }
        }
        let subs: Vec<String> = array(&case["subs"])
            .iter()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect();
        for (rule, body) in object(&case["do"]) {
            for inner in cases(body) {
                for group in &groups {
                    let mut substituted = inner.clone();
                    for key in &subs {
                        if let Some(value) = substituted.get_mut(key) {
                            substitute(value, group);
                        }
                    }
                    self.check_case(rule, &substituted, element, findings);
                }
            }
        }
    }

    /// `None` when the case passes or does not apply, else what failed.
    fn evaluate(&self, rule: &str, case: &Map<String, Json>, element: Node) -> Option<String> {
        let at = Item::Node(element);
        let xpath = |expression: &str| XPath::parse(expression).evaluate(at);
        if let Some(condition) = case.get("condition") {
            let condition = condition.as_str().expect("a condition is an XPath");
            if !xpath(condition).boolean() {
                return None;
            }
        }
        // idCondition: see the module's documentation (always holds here).
        let nested: Vec<Vec<Item>> = case
            .get("paths")
            .map(|paths| {
                array(paths)
                    .iter()
                    .map(|path| {
                        let path = path.as_str().expect("a path is an XPath");
                        xpath(path).nodes(path)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let matches: Vec<Item> = nested.iter().flatten().copied().collect();
        let texts: Vec<String> = matches.iter().map(Item::string_value).collect();
        let fail = |passed: bool, what: String| (!passed).then_some(what);
        match rule {
            "no_more_than_one" => fail(matches.len() <= 1, format!("{} found", matches.len())),
            "atleast_one" => fail(!matches.is_empty(), "none found".into()),
            "only_one_of" => {
                let excluded = array(&case["excluded"]);
                let passed = excluded.iter().all(|path| {
                    let path = path.as_str().unwrap_or_default();
                    if xpath(path).boolean() {
                        matches.is_empty()
                    } else {
                        matches.len() == 1
                    }
                });
                fail(passed, format!("{} found", matches.len()))
            }
            "one_or_all" => self.one_or_all(case, element),
            "dependent" => fail(
                nested.iter().all(|m| !m.is_empty()) || nested.iter().all(Vec::is_empty),
                "some paths present, others not".into(),
            ),
            "unique" => {
                let distinct: HashSet<&String> = texts.iter().collect();
                fail(distinct.len() == texts.len(), format!("{texts:?} repeat"))
            }
            "sum" if matches.is_empty() => None,
            "sum" | "strict_sum" => {
                let expected = decimal(&case["sum"].to_string());
                let total = texts
                    .iter()
                    .map(|t| decimal(t))
                    .try_fold(0i128, |sum, v| v.map(|v| sum + v));
                fail(
                    total.is_some() && total == expected,
                    format!("{texts:?} do not add up to {}", case["sum"]),
                )
            }
            "date_order" => {
                // Every date `less` selects against every date `more` selects (the Validator
                // compares the first of each: `transaction/transaction-date` would be the
                // first transaction's only).
                let less = self.dates(&text(case, "less"), element);
                let more = self.dates(&text(case, "more"), element);
                let late: Vec<String> = less
                    .iter()
                    .filter(|l| more.iter().any(|m| l > &m))
                    .map(NaiveDate::to_string)
                    .collect();
                fail(late.is_empty(), format!("{late:?} after {more:?}"))
            }
            "date_now" => {
                let path = text(case, "date");
                let ahead: Vec<String> = XPath::parse(&path)
                    .evaluate(Item::Node(element))
                    .nodes(&path)
                    .iter()
                    .map(Item::string_value)
                    .filter(|date| parse_moment(date).is_some_and(|moment| moment > self.now))
                    .collect();
                fail(ahead.is_empty(), format!("{ahead:?} in the future"))
            }
            "time_limit" => {
                let start = self.date(&text(case, "start"), element)?;
                let end = self.date(&text(case, "end"), element)?;
                let days = (end - start).num_days();
                fail(days <= 365, format!("{start} to {end} is {days} days"))
            }
            "between_dates" => {
                let date = self.date(&text(case, "date"), element)?;
                let start = self.date(&text(case, "start"), element);
                let end = self.date(&text(case, "end"), element);
                let passed = start.is_some_and(|s| s <= date) && end.is_some_and(|e| date <= e);
                fail(passed, format!("{date} is not within {start:?} to {end:?}"))
            }
            "regex_matches" | "regex_no_matches" => {
                let pattern = regex::Regex::new(&text(case, "regex")).expect("a valid regex");
                let wanted = rule == "regex_matches";
                let bad: Vec<&String> = texts
                    .iter()
                    .filter(|t| !t.is_empty() && pattern.is_match(t) != wanted)
                    .collect();
                fail(bad.is_empty(), format!("{bad:?}"))
            }
            "startswith" => self.starts_with(case, element, &texts),
            "if_then" => {
                let passed =
                    !xpath(&text(case, "if")).boolean() || xpath(&text(case, "then")).boolean();
                fail(passed, format!("{texts:?}"))
            }
            "range" => {
                let min = case.get("min").and_then(Json::as_f64);
                let max = case.get("max").and_then(Json::as_f64);
                let bad: Vec<&String> = texts
                    .iter()
                    .filter(|t| {
                        let value = super::xpath::string_to_number(t);
                        !(min.is_none_or(|m| m <= value) && max.is_none_or(|m| value <= m))
                    })
                    .collect();
                fail(bad.is_empty(), format!("{bad:?} out of range"))
            }
            "no_spaces" => {
                let bad: Vec<&String> = texts.iter().filter(|t| t.trim() != t.as_str()).collect();
                fail(bad.is_empty(), format!("{bad:?}"))
            }
            other => {
                panic!("rule type `{other}` is not implemented: the check cannot vouch for it")
            }
        }
    }

    /// `one_or_all`: `one` selects something, or every element `all` names qualifies.
    fn one_or_all(&self, case: &Map<String, Json>, element: Node) -> Option<String> {
        let one = text(case, "one");
        if XPath::parse(&one).evaluate(Item::Node(element)).boolean() {
            return None;
        }
        let all = text(case, "all");
        let lacking = |of: &str, wants: &str| -> usize {
            XPath::parse(of)
                .evaluate(Item::Node(element))
                .nodes(of)
                .iter()
                .filter(|item| !XPath::parse(wants).evaluate(**item).boolean())
                .count()
        };
        let missing = match all.as_str() {
            "lang" => lacking("descendant::narrative", "@xml:lang"),
            "sector" => lacking("transaction", "sector"),
            "recipient-country|recipient-region" => {
                lacking("transaction", "recipient-country | recipient-region")
            }
            "currency" => ["value", "forecast", "loan-status"]
                .iter()
                .map(|path| lacking(&format!("descendant::{path}"), "@currency"))
                .sum(),
            other => panic!("one_or_all `all` = `{other}` is not implemented"),
        };
        (missing > 0).then(|| format!("no {one}, and {missing} element(s) without {all}"))
    }

    /// `startswith`: every text starts with one of the prefixes (and the separator); the
    /// prefix `ORG-ID-PREFIX` stands for the registration agencies' codes, which an
    /// identifier's first two `-`-separated parts must be.
    fn starts_with(
        &self,
        case: &Map<String, Json>,
        element: Node,
        texts: &[String],
    ) -> Option<String> {
        let prefixes = array(&case["prefix"]);
        if prefixes.len() == 1 && prefixes[0].as_str() == Some("ORG-ID-PREFIX") {
            let bad: Vec<&String> = texts
                .iter()
                .filter(|t| !self.codelists.agencies.is_active(&agency_prefix(t)))
                .collect();
            return (!bad.is_empty()).then(|| format!("{bad:?} start with no registration agency"));
        }
        let separator = case
            .get("separator")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let starts: Vec<String> = prefixes
            .iter()
            .flat_map(|path| {
                let path = path.as_str().unwrap_or_default();
                XPath::parse(path).evaluate(Item::Node(element)).nodes(path)
            })
            .map(|item| item.string_value())
            .collect();
        let bad: Vec<&String> = texts
            .iter()
            .filter(|t| {
                !starts
                    .iter()
                    .any(|s| t.starts_with(&format!("{s}{separator}")))
            })
            .collect();
        (!bad.is_empty()).then(|| format!("{bad:?} do not start with any of {starts:?}"))
    }

    /// The dates the nodes `path` selects hold (`NOW`: today, UTC), those that are not
    /// dates left out.
    fn dates(&self, path: &str, element: Node) -> Vec<NaiveDate> {
        if path == "NOW" {
            return vec![self.now.date_naive()];
        }
        XPath::parse(path)
            .evaluate(Item::Node(element))
            .nodes(path)
            .iter()
            .filter_map(|item| {
                NaiveDate::parse_from_str(item.string_value().get(..10)?, "%Y-%m-%d").ok()
            })
            .collect()
    }

    /// The date the first node `path` selects holds (`NOW`: today, UTC); `None` when there
    /// is none or it is not a date (the rule does not apply).
    fn date(&self, path: &str, element: Node) -> Option<NaiveDate> {
        if path == "NOW" {
            return Some(self.now.date_naive());
        }
        let text = first_text(path, element)?;
        NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
    }
}

/// The Validator's file-level rule 1.1.2 (not in the ruleset): each activity's (or
/// organisation's) identifier is unique in the file.
fn duplicate_identifiers(document: &Document) -> Vec<Finding> {
    let path = "/iati-activities/iati-activity/iati-identifier | /iati-organisations/iati-organisation/organisation-identifier";
    let mut seen = HashSet::new();
    XPath::parse(path)
        .evaluate(Item::Node(document.root()))
        .nodes(path)
        .iter()
        .map(Item::string_value)
        .filter(|identifier| !seen.insert(identifier.clone()))
        .map(|identifier| Finding {
            id: "1.1.2".into(),
            severity: "error".into(),
            message: format!(
                "The activity identifier must be unique for each activity: `{identifier}` repeats"
            ),
            at: identifier,
        })
        .collect()
}

/// The registration agency part of an organisation identifier, as the Validator reads it:
/// everything before the second `-`.
pub fn agency_prefix(identifier: &str) -> String {
    let mut parts = identifier.split('-');
    format!(
        "{}-{}",
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default()
    )
}

fn first_text(path: &str, element: Node) -> Option<String> {
    XPath::parse(path)
        .evaluate(Item::Node(element))
        .nodes(path)
        .first()
        .map(Item::string_value)
}

/// An xsd:dateTime (or xsd:date, at midnight UTC).
fn parse_moment(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc())
        })
}

/// A decimal text in millionths, exactly; `None` if it is not a plain decimal.
fn decimal(text: &str) -> Option<i128> {
    const SCALE_DIGITS: usize = 6;
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = !(int.is_empty() && fraction.is_empty())
        && fraction.len() <= SCALE_DIGITS
        && int
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit());
    if !plain {
        return None;
    }
    let padded = format!("{int}{fraction:0<SCALE_DIGITS$}");
    let magnitude: i128 = padded.parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// The identifier of the activity or organisation `node` belongs to.
fn identifier_of(node: Node) -> String {
    node.ancestors()
        .find(|n| n.has_tag_name("iati-activity") || n.has_tag_name("iati-organisation"))
        .and_then(|n| {
            n.children().find(|c| {
                c.has_tag_name("iati-identifier") || c.has_tag_name("organisation-identifier")
            })
        })
        .and_then(|n| n.text())
        .unwrap_or("(file)")
        .to_string()
}

fn substitute(value: &mut Json, group: &str) {
    match value {
        Json::String(text) => *text = text.replace("$1", group),
        Json::Array(items) => items.iter_mut().for_each(|item| substitute(item, group)),
        _ => {}
    }
}

fn object(value: &Json) -> &Map<String, Json> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("expected an object: {value}"))
}

fn array(value: &Json) -> &Vec<Json> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected an array: {value}"))
}

fn cases(rule: &Json) -> impl Iterator<Item = &Map<String, Json>> {
    array(&object(rule)["cases"]).iter().map(object)
}

fn text(case: &Map<String, Json>, key: &str) -> String {
    case.get(key)
        .and_then(Json::as_str)
        .unwrap_or_else(|| panic!("`{key}` missing in {case:?}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Codelists

/// One IATI codelist: its active and withdrawn codes.
pub struct Codelist {
    pub name: String,
    active: HashSet<String>,
    withdrawn: HashSet<String>,
}

impl Codelist {
    /// `docs/iati-2.03/codelists/<name>.xml`.
    pub fn load(name: &str) -> Codelist {
        let path = iati_dir().join(format!("codelists/{name}.xml"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let document = Document::parse(&text).expect("a codelist is XML");
        let mut list = Codelist {
            name: name.to_string(),
            active: HashSet::new(),
            withdrawn: HashSet::new(),
        };
        for item in document
            .descendants()
            .filter(|n| n.has_tag_name("codelist-item"))
        {
            let Some(code) = item
                .children()
                .find(|c| c.has_tag_name("code"))
                .and_then(|c| c.text())
            else {
                continue;
            };
            if item.attribute("status") == Some("withdrawn") {
                list.withdrawn.insert(code.trim().to_string());
            } else {
                list.active.insert(code.trim().to_string());
            }
        }
        assert!(!list.active.is_empty(), "{name} has no codes");
        list
    }

    /// Whether `code` is in the list and not withdrawn.
    pub fn is_active(&self, code: &str) -> bool {
        self.active.contains(code)
    }
}

/// How the code to look up is read from a value (itself, or an identifier's agency part).
type CodeOf = fn(&str) -> String;

/// The codelists of the codes the export writes.
pub struct Codelists {
    pub sectors: Codelist,
    pub regions: Codelist,
    pub countries: Codelist,
    pub agencies: Codelist,
    pub document_categories: Codelist,
}

impl Codelists {
    pub fn load() -> Codelists {
        Codelists {
            sectors: Codelist::load("Sector"),
            regions: Codelist::load("Region"),
            countries: Codelist::load("Country"),
            agencies: Codelist::load("OrganisationRegistrationAgency"),
            document_categories: Codelist::load("DocumentCategory"),
        }
    }

    /// Every code of these lists that `document` writes, against its list: sectors and
    /// regions of vocabulary 1 (the default), countries, document categories, and the
    /// registration agency of the reporting organisation and the organisation identifier.
    fn check(&self, document: &Document) -> Vec<Finding> {
        let checks: [(&str, &Codelist, CodeOf); 6] = [
            (
                "//sector[@vocabulary = '1' or not(@vocabulary)]/@code",
                &self.sectors,
                str::to_string,
            ),
            (
                "//recipient-region[@vocabulary = '1' or not(@vocabulary)]/@code",
                &self.regions,
                str::to_string,
            ),
            ("//recipient-country/@code", &self.countries, str::to_string),
            (
                "//document-link/category/@code",
                &self.document_categories,
                str::to_string,
            ),
            ("//reporting-org/@ref", &self.agencies, agency_prefix_of),
            (
                "//organisation-identifier",
                &self.agencies,
                agency_prefix_of,
            ),
        ];
        let mut findings = Vec::new();
        for (path, list, code_of) in checks {
            for item in XPath::parse(path)
                .evaluate(Item::Node(document.root()))
                .nodes(path)
            {
                let value = item.string_value();
                let code = code_of(&value);
                if !list.is_active(&code) {
                    let state = if list.withdrawn.contains(&code) {
                        "withdrawn from"
                    } else {
                        "not in"
                    };
                    findings.push(Finding {
                        id: format!("codelist:{}", list.name),
                        severity: "error".into(),
                        at: identifier_of(item.node()),
                        message: format!(
                            "{path} = `{value}`: `{code}` is {state} IATI's {} codelist",
                            list.name
                        ),
                    });
                }
            }
        }
        findings
    }
}

fn agency_prefix_of(identifier: &str) -> String {
    agency_prefix(identifier)
}
