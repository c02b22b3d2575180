//! Money: ISO 4217 currencies, exact amounts in minor units, and the exact decimal text a
//! command carries until the fund's currency is known. Never a float.

use crate::codes::{currency_index, CURRENCIES};
use crate::error::DomainError;
use crate::values::deserialize_text;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// Most digits an amount may have before the decimal point (docs/commands.md).
pub const AMOUNT_INTEGER_DIGITS_MAX: usize = 15;
/// Most decimals any supported currency has (CLF, UYW).
pub const CURRENCY_DECIMALS_MAX: u8 = 4;

/// An ISO 4217 currency: its code and its minor-unit decimals.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    /// Index into [`CURRENCIES`]; always valid, so a `Currency` cannot hold an unknown code.
    index: u16,
}

impl Currency {
    /// The currency for an upper-case ISO 4217 code, e.g. `"USD"`.
    pub fn parse(code: &str) -> Option<Currency> {
        let index = currency_index(code)?;
        Some(Currency {
            index: u16::try_from(index).ok()?,
        })
    }

    /// The three-letter code.
    pub fn code(&self) -> &'static str {
        CURRENCIES
            .get(usize::from(self.index))
            .map_or("XXX", |(code, _)| code)
    }

    /// How many decimals its minor unit has (USD 2, JPY 0, BHD 3).
    pub fn decimals(&self) -> u8 {
        CURRENCIES
            .get(usize::from(self.index))
            .map_or(0, |(_, decimals)| *decimals)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

/// A three-letter ISO 4217 code, one of [`CURRENCIES`].
impl schemars::JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let codes: Vec<&str> = CURRENCIES.iter().map(|(code, _)| *code).collect();
        schemars::json_schema!({
            "description": "An ISO 4217 currency code (upper case), one that has minor units.",
            "type": "string",
            "enum": codes,
        })
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Currency, D::Error> {
        deserialize_text(deserializer, "unknown currency", Currency::parse)
    }
}

/// An exact amount in minor units (cents for USD, yen for JPY).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Amount(pub i128);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// The plain decimal text with exactly `decimals` fraction digits: `"3209232.40"`, `"-5.00"`.
    pub fn format(self, decimals: u8) -> String {
        let (int, frac) = self.split(decimals);
        let sign = if self.0 < 0 { "-" } else { "" };
        join(sign, &int.to_string(), &frac)
    }

    /// Like [`Amount::format`] with thousands separators: `"3,209,232.40"`.
    pub fn format_human(self, decimals: u8) -> String {
        let (int, frac) = self.split(decimals);
        let sign = if self.0 < 0 { "-" } else { "" };
        join(sign, &group_thousands(&int.to_string()), &frac)
    }

    /// Whether the amount is above zero.
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    fn split(self, decimals: u8) -> (u128, String) {
        let decimals = decimals.min(CURRENCY_DECIMALS_MAX);
        let scale = 10u128.pow(u32::from(decimals));
        let magnitude = self.0.unsigned_abs();
        let frac = magnitude % scale;
        // The fraction's digits, zero-padded to `decimals` (every amount printed goes here:
        // by hand rather than through `format!`).
        let mut digits = vec![b'0'; usize::from(decimals)];
        let mut rest = frac;
        for digit in digits.iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let frac_text = String::from_utf8_lossy(&digits).into_owned();
        (magnitude / scale, frac_text)
    }
}

fn join(sign: &str, int: &str, frac: &str) -> String {
    let mut out = String::with_capacity(sign.len() + int.len() + 1 + frac.len());
    out.push_str(sign);
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

impl Add for Amount {
    type Output = Amount;
    fn add(self, other: Amount) -> Amount {
        Amount(self.0 + other.0)
    }
}

impl Sub for Amount {
    type Output = Amount;
    fn sub(self, other: Amount) -> Amount {
        Amount(self.0 - other.0)
    }
}

impl Neg for Amount {
    type Output = Amount;
    fn neg(self) -> Amount {
        Amount(-self.0)
    }
}

impl AddAssign for Amount {
    fn add_assign(&mut self, other: Amount) {
        self.0 += other.0;
    }
}

impl SubAssign for Amount {
    fn sub_assign(&mut self, other: Amount) {
        self.0 -= other.0;
    }
}

impl std::iter::Sum for Amount {
    fn sum<I: Iterator<Item = Amount>>(iter: I) -> Amount {
        iter.fold(Amount::ZERO, Add::add)
    }
}

/// The exact text of a positive decimal amount, checked for syntax but not yet for the
/// currency's decimals (those need the fund). `int` and `frac` hold ASCII digits only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecimalText {
    /// Digits before the point (1 to [`AMOUNT_INTEGER_DIGITS_MAX`]).
    pub int: String,
    /// Digits after the point (possibly empty).
    pub frac: String,
}

impl DecimalText {
    /// Checks the syntax of an amount: digits, an optional point and fraction; no sign, no
    /// exponent, not zero, at most 15 digits before the point. `field` names it in messages.
    pub fn parse(text: &str, field: &str) -> Result<DecimalText, DomainError> {
        let (int, frac) = match text.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (text, None),
        };
        check_syntax(text, int, frac, field)?;
        let frac = frac.unwrap_or("");
        if int.len() > AMOUNT_INTEGER_DIGITS_MAX {
            return Err(DomainError::invalid_amount(format!(
                "{field} {text:?} has {} digits before the decimal point; at most {AMOUNT_INTEGER_DIGITS_MAX} are allowed",
                int.len()
            )));
        }
        if int.bytes().chain(frac.bytes()).all(|b| b == b'0') {
            return Err(DomainError::invalid_amount(format!(
                "{field} {text:?} is zero; an amount must be positive"
            )));
        }
        Ok(DecimalText {
            int: int.to_string(),
            frac: frac.to_string(),
        })
    }

    /// The exact amount in minor units of a currency with `decimals` decimals.
    pub fn to_amount(&self, decimals: u8, field: &str) -> Result<Amount, DomainError> {
        self.to_amount_named(decimals, || field.to_string())
    }

    /// As [`DecimalText::to_amount`], the field's name made only for a message.
    fn to_amount_named(
        &self,
        decimals: u8,
        field: impl FnOnce() -> String,
    ) -> Result<Amount, DomainError> {
        let decimals_count = usize::from(decimals);
        if self.frac.len() > decimals_count {
            return Err(DomainError::invalid_amount(format!(
                "{} {:?} has {}; the currency has {}",
                field(),
                self.text(),
                decimals_text(self.frac.len()),
                decimals_text(decimals_count)
            )));
        }
        // The digits, then the fraction padded with zeros to the currency's decimals.
        let padding = std::iter::repeat_n(b'0', decimals_count - self.frac.len());
        let digits = self.int.bytes().chain(self.frac.bytes()).chain(padding);
        let mut value: Option<i128> = None;
        for byte in digits {
            value = byte
                .is_ascii_digit()
                .then(|| {
                    value
                        .unwrap_or(0)
                        .checked_mul(10)?
                        .checked_add(i128::from(byte - b'0'))
                })
                .flatten();
            if value.is_none() {
                break;
            }
        }
        value.map(Amount).ok_or_else(|| {
            DomainError::invalid_amount(format!("{} {:?} is not a number", field(), self.text()))
        })
    }

    /// The exact amount in minor units of `currency`, naming the currency in the message.
    pub fn to_amount_in(&self, currency: Currency, field: &str) -> Result<Amount, DomainError> {
        self.to_amount_in_named(currency, || field.to_string())
    }

    /// As [`DecimalText::to_amount_in`], the field's name (`field`) made only for a message:
    /// every amount of every command comes here.
    pub fn to_amount_in_named(
        &self,
        currency: Currency,
        field: impl FnOnce() -> String,
    ) -> Result<Amount, DomainError> {
        if self.frac.len() > usize::from(currency.decimals()) {
            let field = field();
            let allowed = match currency.decimals() {
                0 => format!("{currency} amounts have no decimals"),
                decimals => format!(
                    "{currency} amounts have at most {}",
                    decimals_text(usize::from(decimals))
                ),
            };
            return Err(DomainError::invalid_amount(format!(
                "{field} {:?} has {}; {allowed}",
                self.text(),
                decimals_text(self.frac.len()),
            )));
        }
        self.to_amount_named(currency.decimals(), field)
    }

    /// The amount as the client wrote it.
    pub fn text(&self) -> String {
        join("", &self.int, &self.frac)
    }
}

fn decimals_text(count: usize) -> String {
    match count {
        0 => "no decimals".to_string(),
        1 => "1 decimal".to_string(),
        _ => format!("{count} decimals"),
    }
}

fn check_syntax(text: &str, int: &str, frac: Option<&str>, field: &str) -> Result<(), DomainError> {
    let problem = if text.is_empty() {
        Some("is empty")
    } else if text.starts_with(['-', '+']) {
        Some("has a sign; amounts are positive decimals without a sign")
    } else if text.contains(['e', 'E']) {
        Some("has an exponent; write the decimal digits out")
    } else if int.is_empty() {
        Some("has no digit before the decimal point")
    } else if frac == Some("") {
        Some("ends with a decimal point; drop it or add the decimals")
    } else if !int
        .bytes()
        .chain(frac.unwrap_or("").bytes())
        .all(|b| b.is_ascii_digit())
    {
        Some("is not a decimal number (digits, an optional '.' and decimals)")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(DomainError::invalid_amount(format!(
            "{field} {} {problem}",
            shown(text)
        ))),
        None => Ok(()),
    }
}

/// Bound on how much of a bad input a message repeats.
const SHOWN_CHARS_MAX: usize = 64;

fn shown(text: &str) -> String {
    let cut: String = text.chars().take(SHOWN_CHARS_MAX).collect();
    if cut.len() < text.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

/// Parses an amount exactly for a currency with `decimals` decimals (`invalid_amount` on any
/// problem, naming the field `amount`).
pub fn parse_amount(text: &str, decimals: u8) -> Result<Amount, DomainError> {
    parse_amount_field(text, decimals, "amount")
}

/// Like [`parse_amount`], naming `field` in the message.
pub fn parse_amount_field(text: &str, decimals: u8, field: &str) -> Result<Amount, DomainError> {
    DecimalText::parse(text, field)?.to_amount(decimals, field)
}

/// An amount together with its currency's decimals, as stored in event payloads: it
/// serializes as the decimal string (`"3209232.40"`) and reads back exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    /// Minor units.
    pub amount: Amount,
    /// Fraction digits in the text form (the currency's decimals).
    pub decimals: u8,
}

impl Money {
    /// An amount with its decimals.
    pub fn new(amount: Amount, decimals: u8) -> Money {
        Money { amount, decimals }
    }

    /// Reads a signed plain decimal, as [`Money`]'s serialization writes it.
    pub fn parse_stored(text: &str) -> Option<Money> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let well_formed = !int.is_empty()
            && int.len() <= AMOUNT_INTEGER_DIGITS_MAX + 1
            && (digits.contains('.') != frac.is_empty())
            && frac.len() <= usize::from(CURRENCY_DECIMALS_MAX)
            && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit());
        if !well_formed {
            return None;
        }
        // At most 16 + 4 digits: no overflow in i128.
        let magnitude = int
            .bytes()
            .chain(frac.bytes())
            .fold(0i128, |value, digit| value * 10 + i128::from(digit - b'0'));
        let decimals = u8::try_from(frac.len()).ok()?;
        // Only the canonical text reads back, so that a re-serialization is byte-identical:
        // no leading zero (but "0" itself) and no negative zero; the digits after the point
        // are as many as the decimals, as written.
        let canonical = (int == "0" || !int.starts_with('0')) && !(negative && magnitude == 0);
        canonical.then(|| {
            Money::new(
                Amount(if negative { -magnitude } else { magnitude }),
                decimals,
            )
        })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.amount.format(self.decimals))
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.amount.format(self.decimals))
    }
}

/// The pattern of a stored amount, as [`Money`] serializes it: an optional `-`, 1 to 16
/// digits without a leading zero (but `0` itself), then `.` and 1 to 4 decimals when the
/// currency has decimals; never a negative zero.
pub const MONEY_PATTERN: &str = "^(?!-0(\\.0+)?$)-?(0|[1-9][0-9]{0,15})(\\.[0-9]{1,4})?$";

impl schemars::JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An exact amount as a decimal string with exactly as many decimals as \
                the currency's minor unit (the fund's currency, unless a currency is named beside \
                it): \"3209232.40\" in USD, \"260000000\" in JPY. Never a number.",
            "type": "string",
            "pattern": MONEY_PATTERN,
            "examples": ["3209232.40", "260000000"],
        })
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        deserialize_text(deserializer, "not a stored amount", Money::parse_stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_stored_reads_exactly_the_canonical_texts() {
        // The reference: parse loosely, then keep only what formats back to the same text.
        fn reference(text: &str) -> Option<Money> {
            let (negative, digits) = match text.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text),
            };
            let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
            if int.is_empty()
                || int.len() > AMOUNT_INTEGER_DIGITS_MAX + 1
                || digits.contains('.') == frac.is_empty()
                || frac.len() > usize::from(CURRENCY_DECIMALS_MAX)
                || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let magnitude: i128 = format!("{int}{frac}").parse().ok()?;
            let amount = Amount(if negative { -magnitude } else { magnitude });
            let money = Money::new(amount, u8::try_from(frac.len()).ok()?);
            (money.to_string() == text).then_some(money)
        }
        let ints = ["0", "00", "01", "1", "10", "9999999999999999", "09", "123"];
        let fracs = ["", ".", ".0", ".00", ".05", ".50", ".1234", ".12345", ".x"];
        for sign in ["", "-", "+", "--"] {
            for int in ints {
                for frac in fracs {
                    let text = format!("{sign}{int}{frac}");
                    assert_eq!(Money::parse_stored(&text), reference(&text), "{text:?}");
                }
            }
        }
        for text in ["", "-", ".5", "1e3", " 1", "1 ", "١٢"] {
            assert_eq!(Money::parse_stored(text), None, "{text:?}");
        }
        let money: Money = serde_json::from_str("\"3209232.40\"").unwrap();
        assert_eq!(money, Money::new(Amount(320923240), 2));
        assert!(serde_json::from_str::<Money>("\"3209232.4\\u0030\"").is_ok());
        assert!(serde_json::from_str::<Money>("\"03.00\"").is_err());
        assert!(serde_json::from_str::<Money>("3.00").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(Amount(320923240).format(2), "3209232.40");
        assert_eq!(Amount(-500).format(2), "-5.00");
        assert_eq!(Amount(0).format(2), "0.00");
        assert_eq!(Amount(260000000).format(0), "260000000");
        assert_eq!(Amount(320923240).format_human(2), "3,209,232.40");
        assert_eq!(Amount(-100000).format_human(0), "-100,000");
        assert_eq!(Amount(12345).format_human(3), "12.345");
    }

    #[test]
    fn currencies() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!((usd.code(), usd.decimals()), ("USD", 2));
        assert_eq!(Currency::parse("JPY").unwrap().decimals(), 0);
        assert_eq!(Currency::parse("BHD").unwrap().decimals(), 3);
        assert_eq!(Currency::parse("CLF").unwrap().decimals(), 4);
        assert_eq!(Currency::parse("usd"), None);
        assert_eq!(serde_json::to_string(&usd).unwrap(), "\"USD\"");
        assert_eq!(
            serde_json::from_str::<Currency>("\"MXN\"").unwrap().code(),
            "MXN"
        );
    }

    #[test]
    fn stored_money_reads_back_only_canonical_text() {
        for text in ["0.00", "-5.00", "3209232.40", "260000000", "1.2345"] {
            assert_eq!(Money::parse_stored(text).unwrap().to_string(), text);
        }
        for text in ["-0.00", "01.00", "1.", ".5", "+1", "1e5", ""] {
            assert_eq!(Money::parse_stored(text), None, "{text}");
        }
    }

    proptest::proptest! {
        /// The hand-written digit paths agree with `format!` and `str::parse`, which they
        /// replaced: amounts to text and back, any magnitude and number of decimals.
        #[test]
        fn amounts_format_and_parse_as_format_and_parse_did(
            value in proptest::prelude::any::<i64>(),
            wide in proptest::prelude::any::<bool>(),
            decimals in 0u8..=CURRENCY_DECIMALS_MAX,
            int in "[0-9]{1,20}",
            frac in "[0-9]{0,5}",
            places in 0u8..=6,
        ) {
            let amount = Amount(if wide { i128::from(value) * 1_000_000_007 } else { i128::from(value) });
            let scale = 10u128.pow(u32::from(decimals));
            let magnitude = amount.0.unsigned_abs();
            let sign = if amount.0 < 0 { "-" } else { "" };
            let expected = if decimals == 0 {
                format!("{sign}{}", magnitude / scale)
            } else {
                format!("{sign}{}.{:0width$}", magnitude / scale, magnitude % scale, width = usize::from(decimals))
            };
            proptest::prop_assert_eq!(amount.format(decimals), expected);

            let text = DecimalText { int: int.clone(), frac: frac.clone() };
            let old = if frac.len() > usize::from(places) {
                None
            } else {
                format!("{int}{frac:0<width$}", width = usize::from(places)).parse::<i128>().ok()
            };
            proptest::prop_assert_eq!(text.to_amount(places, "amount").ok().map(|a| a.0), old);
        }
    }
}
