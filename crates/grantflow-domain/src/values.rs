//! Small value types parsed at the edge: ids, dates and country codes.

use crate::codes::is_country;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Deserializes a value written as a string by parsing the text where it lies (no `String`
/// is allocated: replay reads millions of amounts, dates and codes). `what` names the value
/// in the error, e.g. "not a date".
pub(crate) fn deserialize_text<'de, D, T>(
    deserializer: D,
    what: &'static str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Text<T> {
        what: &'static str,
        parse: fn(&str) -> Option<T>,
    }
    impl<T> serde::de::Visitor<'_> for Text<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a string ({})", self.what)
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
            (self.parse)(text).ok_or_else(|| E::custom(format!("{}: {text:?}", self.what)))
        }
    }
    deserializer.deserialize_str(Text { what, parse })
}

/// Longest id (fund, grant, agency, donor), in characters.
pub const ID_CHARS_MAX: usize = 64;
/// Length of a date's text, `YYYY-MM-DD`.
pub const DATE_CHARS: usize = 10;
/// Earliest year a date may name (there is no year 0 in the calendar people write).
pub const DATE_YEAR_MIN: i32 = 1;

/// Whether `text` is a valid id: 1 to 64 of letters, digits, `-`, `_` and `.`.
pub fn is_valid_id(text: &str) -> bool {
    (1..=ID_CHARS_MAX).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A real calendar date, written `YYYY-MM-DD`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(NaiveDate);

impl Date {
    /// Parses exactly `YYYY-MM-DD` naming a real day (2012-02-30 is not one).
    pub fn parse(text: &str) -> Option<Date> {
        let bytes = text.as_bytes();
        let shape_ok = bytes.len() == DATE_CHARS
            && bytes.iter().enumerate().all(|(index, byte)| match index {
                4 | 7 => *byte == b'-',
                _ => byte.is_ascii_digit(),
            });
        if !shape_ok {
            return None;
        }
        let year: i32 = text.get(0..4)?.parse().ok()?;
        let month: u32 = text.get(5..7)?.parse().ok()?;
        let day: u32 = text.get(8..10)?.parse().ok()?;
        if year < DATE_YEAR_MIN {
            return None;
        }
        NaiveDate::from_ymd_opt(year, month, day).map(Date)
    }

    /// A calendar date (the engine's clock gives today's this way).
    pub fn from_naive(date: NaiveDate) -> Date {
        Date(date)
    }

    /// The calendar date.
    pub fn naive(&self) -> NaiveDate {
        self.0
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = (self.0.year(), self.0.month(), self.0.day());
        if let Ok(year @ 0..=9999) = u32::try_from(year) {
            // Every event carries dates: `YYYY-MM-DD` by hand rather than through `write!`.
            let digit = |value: u32, scale: u32| b'0' + (value / scale % 10) as u8;
            let text = [
                digit(year, 1000),
                digit(year, 100),
                digit(year, 10),
                digit(year, 1),
                b'-',
                digit(month, 10),
                digit(month, 1),
                b'-',
                digit(day, 10),
                digit(day, 1),
            ];
            return f.write_str(&String::from_utf8_lossy(&text));
        }
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            self.0.month(),
            self.0.day()
        )
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The pattern of a date as [`Date`] serializes it: `YYYY-MM-DD`, year 0001 to 9999.
pub const DATE_PATTERN: &str = "^(?!0000)[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";

impl schemars::JsonSchema for Date {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Date".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A calendar date, YYYY-MM-DD (a real day: 2012-02-30 is not one).",
            "type": "string",
            "format": "date",
            "pattern": DATE_PATTERN,
        })
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
        deserialize_text(deserializer, "not a date", Date::parse)
    }
}

/// An ISO 3166-1 alpha-2 country code, e.g. `MX`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Country(String);

impl Country {
    /// The country for an upper-case alpha-2 code.
    pub fn parse(code: &str) -> Option<Country> {
        is_country(code).then(|| Country(code.to_string()))
    }

    /// The two-letter code.
    pub fn code(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Country {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl schemars::JsonSchema for Country {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Country".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An ISO 3166-1 alpha-2 country code (upper case).",
            "type": "string",
            "enum": crate::codes::COUNTRIES,
        })
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Country, D::Error> {
        deserialize_text(deserializer, "not a country code", Country::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(Date::parse("2012-09-27").unwrap().to_string(), "2012-09-27");
        assert_eq!(Date::parse("2012-02-29").unwrap().to_string(), "2012-02-29");
        for bad in [
            "2012-02-30",
            "2011-02-29",
            "2012-2-3",
            "2012-13-01",
            "0000-01-01",
            "2012-09-27T00",
            "２012-01-01",
            "",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids() {
        assert!(is_valid_id("MEX-1") && is_valid_id("UN_Women.2") && is_valid_id(&"a".repeat(64)));
        for bad in ["", "a b", "a/b", "a\u{7}", "é", &"a".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    proptest::proptest! {
        /// The hand-written `YYYY-MM-DD` is what `write!("{:04}-{:02}-{:02}")` gave, and
        /// reads back as the same date wherever `parse` accepts the year (year 0 prints, but
        /// is not a year people write, so it does not parse).
        #[test]
        fn dates_print_as_write_printed(days in -800_000i64..4_000_000) {
            let date = Date(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days));
            let expected = format!("{:04}-{:02}-{:02}", date.0.year(), date.0.month(), date.0.day());
            proptest::prop_assert_eq!(date.to_string(), expected.clone());
            proptest::prop_assert_eq!(serde_json::to_string(&date).unwrap(), format!("\"{expected}\""));
            let parsed = Date::parse(&expected);
            if (DATE_YEAR_MIN..=9999).contains(&date.0.year()) {
                proptest::prop_assert_eq!(parsed, Some(date));
            } else {
                proptest::prop_assert_eq!(parsed, None);
            }
        }
    }
}
