//! The secretariat's vocabulary (docs/domain.md, part two): percentages, a fund's terms,
//! budget categories, report kinds and statuses, income kinds, document references.

use crate::money::{Amount, Money};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A percentage from 0 to 100 with at most 2 decimals, kept exactly as hundredths of a
/// percent (`"1"` is 100, `"70.00"` 7,000, `"100"` 10,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Percent(u16);

impl Percent {
    /// 0%.
    pub const ZERO: Percent = Percent(0);
    /// The largest percentage, 100%.
    pub const HUNDRED: Percent = Percent(10_000);

    /// From hundredths of a percent (at most 10,000).
    pub fn from_hundredths(hundredths: u16) -> Option<Percent> {
        (hundredths <= 10_000).then_some(Percent(hundredths))
    }

    /// Hundredths of a percent.
    pub fn hundredths(self) -> u16 {
        self.0
    }

    /// Reads `"0"` to `"100"` with at most 2 decimals; `None` for anything else.
    pub fn parse(text: &str) -> Option<Percent> {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let well_formed = !int.is_empty()
            && int.len() <= 3
            && frac.len() <= 2
            && (text.contains('.') != frac.is_empty())
            && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit());
        if !well_formed {
            return None;
        }
        let int: u32 = int.parse().ok()?;
        let frac: u32 = format!("{frac:0<2}").parse().ok()?;
        Percent::from_hundredths(u16::try_from(int * 100 + frac).ok()?)
    }

    /// `amount` x this percentage / 100, rounded half to even to a minor unit.
    pub fn of_half_even(self, amount: Amount) -> Amount {
        let product = amount.0 * i128::from(self.0);
        let (quotient, remainder) = (product.div_euclid(10_000), product.rem_euclid(10_000));
        let up = match remainder.cmp(&5_000) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => quotient % 2 != 0,
            std::cmp::Ordering::Less => false,
        };
        Amount(quotient + i128::from(up))
    }

    /// `amount` x this percentage / 100, rounded down (a cap).
    pub fn of_floor(self, amount: Amount) -> Amount {
        Amount((amount.0 * i128::from(self.0)).div_euclid(10_000))
    }

    /// `part` as a percentage of `whole` with 2 decimals, rounded down (so that a share
    /// shown as "70.00" has truly reached 70%); `whole` must be above 0.
    pub fn share(part: Amount, whole: Amount) -> String {
        if whole.0 <= 0 {
            return "0.00".to_string();
        }
        let hundredths = (part.0 * 10_000).div_euclid(whole.0);
        format!("{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

impl fmt::Display for Percent {
    /// With 2 decimals: `"1.00"`, `"70.00"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The pattern of a percentage as [`Percent`] serializes it: `0.00` to `100.00`.
pub const PERCENT_PATTERN: &str = "^(100\\.00|[1-9]?[0-9]\\.[0-9]{2})$";

impl schemars::JsonSchema for Percent {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Percent".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A percentage from 0 to 100 as a decimal string with 2 decimals.",
            "type": "string",
            "pattern": PERCENT_PATTERN,
            "examples": ["1.00", "70.00"],
        })
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Percent, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Percent::parse(&text).ok_or_else(|| D::Error::custom("not a percentage from 0 to 100"))
    }
}

/// A fund's terms (docs/domain.md, "Fund terms"); every default is "off".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundTerms {
    /// The administrative agent's fee on each contribution.
    pub admin_fee_percent: Percent,
    /// The cap on indirect support costs, as a percentage of direct costs.
    pub indirect_max_percent: Percent,
    /// The share of what an agency holds that it must have spent before a further tranche.
    pub tranche_threshold_percent: Percent,
    /// No disbursement while a report of the grant is overdue.
    pub hold_on_overdue_reports: bool,
}

impl Default for FundTerms {
    fn default() -> Self {
        FundTerms {
            admin_fee_percent: Percent::ZERO,
            indirect_max_percent: Percent(700),
            tranche_threshold_percent: Percent::ZERO,
            hold_on_overdue_reports: false,
        }
    }
}

/// Terms as a command or an event gives them: any of the four, each optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TermsChange {
    /// A new fee percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_fee_percent: Option<Percent>,
    /// A new indirect cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indirect_max_percent: Option<Percent>,
    /// A new tranche threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tranche_threshold_percent: Option<Percent>,
    /// A new hold on overdue reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_on_overdue_reports: Option<bool>,
}

impl TermsChange {
    /// Whether no term is given.
    pub fn is_empty(&self) -> bool {
        *self == TermsChange::default()
    }

    /// `terms` with the given ones replaced.
    pub fn apply(&self, terms: FundTerms) -> FundTerms {
        FundTerms {
            admin_fee_percent: self.admin_fee_percent.unwrap_or(terms.admin_fee_percent),
            indirect_max_percent: self
                .indirect_max_percent
                .unwrap_or(terms.indirect_max_percent),
            tranche_threshold_percent: self
                .tranche_threshold_percent
                .unwrap_or(terms.tranche_threshold_percent),
            hold_on_overdue_reports: self
                .hold_on_overdue_reports
                .unwrap_or(terms.hold_on_overdue_reports),
        }
    }
}

/// The four terms' field names, in the documented order.
pub const TERM_FIELDS: &[&str] = &[
    "admin_fee_percent",
    "indirect_max_percent",
    "tranche_threshold_percent",
    "hold_on_overdue_reports",
];

/// A budget category (the UN's harmonized categories); the first seven are direct costs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Staff and other personnel costs.
    Staff,
    /// Supplies, commodities, materials.
    Supplies,
    /// Equipment, vehicles and furniture, including depreciation.
    Equipment,
    /// Contractual services.
    Contractual,
    /// Travel.
    Travel,
    /// Transfers and grants to counterparts.
    Transfers,
    /// General operating and other direct costs.
    Operating,
    /// Indirect support costs.
    Indirect,
}

/// Every category, in the documented order.
pub const CATEGORIES: [Category; 8] = [
    Category::Staff,
    Category::Supplies,
    Category::Equipment,
    Category::Contractual,
    Category::Travel,
    Category::Transfers,
    Category::Operating,
    Category::Indirect,
];

impl Category {
    /// The category as the documents spell it, e.g. `"staff"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Staff => "staff",
            Category::Supplies => "supplies",
            Category::Equipment => "equipment",
            Category::Contractual => "contractual",
            Category::Travel => "travel",
            Category::Transfers => "transfers",
            Category::Operating => "operating",
            Category::Indirect => "indirect",
        }
    }

    /// The category for its spelling.
    pub fn parse(text: &str) -> Option<Category> {
        CATEGORIES.iter().copied().find(|c| c.as_str() == text)
    }

    /// The field that names its amount in a command: `"budget.staff"`.
    pub fn budget_field(self) -> &'static str {
        match self {
            Category::Staff => "budget.staff",
            Category::Supplies => "budget.supplies",
            Category::Equipment => "budget.equipment",
            Category::Contractual => "budget.contractual",
            Category::Travel => "budget.travel",
            Category::Transfers => "budget.transfers",
            Category::Operating => "budget.operating",
            Category::Indirect => "budget.indirect",
        }
    }

    /// Its index in [`CATEGORIES`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// An agency's budget: one amount per category (in [`CATEGORIES`] order), in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Budget(pub [Amount; 8]);

impl Budget {
    /// The sum of every category.
    pub fn total(&self) -> Amount {
        self.0.iter().copied().sum()
    }

    /// The sum of the seven direct categories.
    pub fn direct(&self) -> Amount {
        self.total() - self.get(Category::Indirect)
    }

    /// One category's amount.
    pub fn get(&self, category: Category) -> Amount {
        self.0[category.index()]
    }
}

/// A budget as stored in an event: every category, in order, as decimal strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBudget {
    /// The amounts.
    pub budget: Budget,
    /// The currency's decimals.
    pub decimals: u8,
}

impl Serialize for StoredBudget {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(CATEGORIES.len()))?;
        for category in CATEGORIES {
            map.serialize_entry(
                category.as_str(),
                &Money::new(self.budget.get(category), self.decimals),
            )?;
        }
        map.end()
    }
}

impl schemars::JsonSchema for StoredBudget {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StoredBudget".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let amount = generator.subschema_for::<Money>().to_value();
        let mut properties = serde_json::Map::new();
        for category in CATEGORIES {
            properties.insert(category.as_str().to_string(), amount.clone());
        }
        let names: Vec<&str> = CATEGORIES.iter().map(|c| c.as_str()).collect();
        schemars::json_schema!({
            "description": "An agency's budget by category: every category, in this order, each \
                an amount in the fund's currency.",
            "type": "object",
            "properties": properties,
            "required": names,
            "additionalProperties": false,
        })
    }
}

impl<'de> Deserialize<'de> for StoredBudget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StoredBudget, D::Error> {
        let entries = Vec::<(Category, Money)>::deserialize(MapAsPairs(deserializer))
            .map_err(D::Error::custom)?;
        let mut budget = Budget::default();
        let mut decimals = None;
        for (category, money) in entries {
            if decimals.is_some_and(|d| d != money.decimals) {
                return Err(D::Error::custom("budget amounts with different decimals"));
            }
            decimals = Some(money.decimals);
            budget.0[category.index()] = money.amount;
        }
        Ok(StoredBudget {
            budget,
            decimals: decimals.unwrap_or(0),
        })
    }
}

/// Reads a JSON object as a list of (key, value) pairs, in order.
struct MapAsPairs<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for MapAsPairs<D> {
    type Error = D::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        struct Pairs<V>(V);
        impl<'de, V: serde::de::Visitor<'de>> serde::de::Visitor<'de> for Pairs<V> {
            type Value = V::Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of category to amount")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
                self.0.visit_seq(PairSeq(map))
            }
        }
        struct PairSeq<A>(A);
        impl<'de, A: serde::de::MapAccess<'de>> serde::de::SeqAccess<'de> for PairSeq<A> {
            type Error = A::Error;
            fn next_element_seed<T: serde::de::DeserializeSeed<'de>>(
                &mut self,
                seed: T,
            ) -> Result<Option<T::Value>, A::Error> {
                match self.0.next_key::<String>()? {
                    None => Ok(None),
                    Some(key) => {
                        let value: serde_json::Value = self.0.next_value()?;
                        let pair = serde_json::Value::Array(vec![key.into(), value]);
                        seed.deserialize(pair).map(Some).map_err(A::Error::custom)
                    }
                }
            }
        }
        self.0.deserialize_map(Pairs(visitor))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

/// A report's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// A progress (narrative) report.
    Progress,
    /// A financial report.
    Financial,
    /// The final report.
    Final,
}

impl ReportKind {
    /// The kind as the documents spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Progress => "progress",
            ReportKind::Financial => "financial",
            ReportKind::Final => "final",
        }
    }

    /// The kind for its spelling.
    pub fn parse(text: &str) -> Option<ReportKind> {
        [
            ReportKind::Progress,
            ReportKind::Financial,
            ReportKind::Final,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// A report's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportStatus {
    /// Scheduled, not yet submitted.
    Scheduled,
    /// Submitted, awaiting a decision.
    Submitted,
    /// Accepted.
    Accepted,
    /// Returned: to be submitted again.
    Returned,
}

impl ReportStatus {
    /// The status as the documents spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Scheduled => "scheduled",
            ReportStatus::Submitted => "submitted",
            ReportStatus::Accepted => "accepted",
            ReportStatus::Returned => "returned",
        }
    }
}

/// A kind of fund income.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IncomeKind {
    /// Interest earned.
    Interest,
    /// Investment income.
    Investment,
    /// Other income.
    Other,
}

impl IncomeKind {
    /// The kind as the documents spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            IncomeKind::Interest => "interest",
            IncomeKind::Investment => "investment",
            IncomeKind::Other => "other",
        }
    }

    /// The kind for its spelling.
    pub fn parse(text: &str) -> Option<IncomeKind> {
        [
            IncomeKind::Interest,
            IncomeKind::Investment,
            IncomeKind::Other,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// One sector of a grant: a DAC 5-digit purpose code (IATI Sector vocabulary 1) and its
/// share of the grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SectorShare {
    /// The DAC 5-digit code, e.g. `"15190"`.
    #[schemars(pattern("^[0-9]{5}$"))]
    pub code: String,
    /// Its share; a grant's shares sum to exactly 100.
    pub percentage: Percent,
}

/// A document as a report submission names it: a title and the file's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentRef {
    /// The title.
    pub title: String,
    /// SHA-256 of the file, 64 lowercase hex digits.
    #[schemars(pattern(SHA256_PATTERN))]
    pub sha256: String,
}

/// The pattern of a SHA-256 written as 64 lowercase hex digits.
pub const SHA256_PATTERN: &str = "^[0-9a-f]{64}$";

/// The pattern of an IATI DocumentCategory code ([`is_document_category`]).
pub const DOCUMENT_CATEGORY_PATTERN: &str = "^(A(0[1-9]|1[0-2])|B(0[1-9]|1[0-8]))$";

/// Whether `text` is a SHA-256 written as 64 lowercase hex digits.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The IATI DocumentCategory codes (codelist of the IATI Standard 2.03): A01-A12 for an
/// activity, B01-B18 for an organisation.
pub fn is_document_category(code: &str) -> bool {
    let Some((series, number)) = code.split_at_checked(1) else {
        return false;
    };
    let Some(number) = (number.len() == 2)
        .then(|| number.parse::<u8>().ok())
        .flatten()
    else {
        return false;
    };
    match series {
        "A" => (1..=12).contains(&number),
        "B" => (1..=18).contains(&number),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_parse_exactly() {
        assert_eq!(Percent::parse("0"), Some(Percent(0)));
        assert_eq!(Percent::parse("1"), Some(Percent(100)));
        assert_eq!(Percent::parse("7.5"), Some(Percent(750)));
        assert_eq!(Percent::parse("70.00"), Some(Percent(7_000)));
        assert_eq!(Percent::parse("100"), Some(Percent(10_000)));
        assert_eq!(
            Percent::parse("100.00").map(|p| p.to_string()),
            Some("100.00".into())
        );
        for bad in [
            "", ".", "1.", ".5", "100.01", "101", "1.234", "-1", "+1", "1e2", " 1",
        ] {
            assert_eq!(Percent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fees_round_half_to_even_and_caps_round_down() {
        let one = Percent::parse("1").unwrap();
        // 1% of 0.50 is 0.005: half, to the even 0.00; of 1.50, 0.015 to 0.02.
        assert_eq!(one.of_half_even(Amount(50)), Amount(0));
        assert_eq!(one.of_half_even(Amount(150)), Amount(2));
        assert_eq!(one.of_half_even(Amount(249)), Amount(2));
        assert_eq!(one.of_half_even(Amount(251)), Amount(3));
        let seven = Percent::parse("7").unwrap();
        assert_eq!(seven.of_floor(Amount(199)), Amount(13));
        assert_eq!(Percent::share(Amount(69_999), Amount(100_000)), "69.99");
        assert_eq!(Percent::share(Amount(70_000), Amount(100_000)), "70.00");
    }

    #[test]
    fn document_categories_follow_the_codelist() {
        for good in ["A01", "A02", "A09", "A12", "B01", "B18"] {
            assert!(is_document_category(good), "{good}");
        }
        for bad in ["A00", "A13", "B19", "C01", "a01", "A1", "A001", ""] {
            assert!(!is_document_category(bad), "{bad}");
        }
    }

    #[test]
    fn a_stored_budget_reads_back() {
        let mut budget = Budget::default();
        budget.0[0] = Amount(100);
        budget.0[7] = Amount(7);
        let stored = StoredBudget {
            budget,
            decimals: 2,
        };
        let json = serde_json::to_string(&stored).unwrap();
        assert_eq!(
            json,
            r#"{"staff":"1.00","supplies":"0.00","equipment":"0.00","contractual":"0.00","travel":"0.00","transfers":"0.00","operating":"0.00","indirect":"0.07"}"#
        );
        assert_eq!(serde_json::from_str::<StoredBudget>(&json).unwrap(), stored);
        assert!(serde_json::from_str::<StoredBudget>(r#"{"food":"1.00"}"#).is_err());
    }
}
