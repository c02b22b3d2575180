//! Where a [`crate::PgStore`] connects: the URL, with the schema to use taken out of it.
//!
//! The schema comes, in this order, from a grantflow-specific query parameter
//! `?schema=NAME` (removed before the URL reaches PostgreSQL), from a `search_path` in the
//! URL's `options` (`?options=-csearch_path%3DNAME`, its first entry), or is
//! [`DEFAULT_SCHEMA`]. A schema name is 1 to [`SCHEMA_NAME_BYTES_MAX`] bytes of lowercase
//! ASCII letters, digits and `_`, not starting with a digit (so it never needs quoting
//! rules beyond double quotes and always fits a LISTEN channel name).

use std::str::FromStr;
use std::time::Duration;

use grantflow_store::StoreError;

/// The schema grantflow uses when the URL names none.
pub const DEFAULT_SCHEMA: &str = "grantflow";

/// The grantflow-specific query parameter naming the schema (`?schema=NAME`).
pub const SCHEMA_PARAM: &str = "schema";

/// The longest schema name accepted (the LISTEN channel `grantflow_head_<schema>` must stay
/// within PostgreSQL's 63-byte identifiers).
pub const SCHEMA_NAME_BYTES_MAX: usize = 48;

/// How long a connection attempt may take when the URL does not say
/// (`connect_timeout=` in the URL overrides it).
pub const CONNECT_TIMEOUT_SECS: u64 = 10;

/// A parsed target: the connection settings and the schema.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) schema: String,
}

impl Target {
    /// A human-readable name of the store for error messages (no password).
    pub(crate) fn describe(&self) -> String {
        let database = self.config.get_dbname().unwrap_or("(default database)");
        format!("PostgreSQL database {database}, schema {}", self.schema)
    }
}

/// Splits `url` into connection settings and the schema.
pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
    let (connect_url, schema_param) = strip_schema_param(url)?;
    let mut config = tokio_postgres::Config::from_str(&connect_url)
        .map_err(|error| StoreError::Invalid(format!("invalid PostgreSQL URL: {error}")))?;
    let schema = match schema_param {
        Some(schema) => schema,
        None => config
            .get_options()
            .and_then(search_path_schema)
            .unwrap_or_else(|| DEFAULT_SCHEMA.to_string()),
    };
    check_schema_name(&schema)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_SECS));
    }
    if config.get_application_name().is_none() {
        config.application_name("grantflow");
    }
    Ok(Target { config, schema })
}

/// Removes every `schema=` query parameter from a URL; returns the URL and the last value.
fn strip_schema_param(url: &str) -> Result<(String, Option<String>), StoreError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut schema = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((key, value)) if key == SCHEMA_PARAM => schema = Some(value.to_string()),
            _ if pair == SCHEMA_PARAM => {
                return Err(StoreError::Invalid(format!(
                    "the PostgreSQL URL's {SCHEMA_PARAM} parameter has no value"
                )))
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, schema))
}

/// The first schema of a `search_path` set in libpq-style `options`
/// (`-c search_path=a,b` or `-csearch_path=a`).
fn search_path_schema(options: &str) -> Option<String> {
    let (_, rest) = options.split_once("search_path=")?;
    let value = rest.split(|c: char| c.is_whitespace()).next()?;
    let first = value.split(',').next()?.trim().trim_matches('"');
    (!first.is_empty()).then(|| first.to_string())
}

/// Refuses a schema name outside `[a-z_][a-z0-9_]*`, at most [`SCHEMA_NAME_BYTES_MAX`] bytes.
pub(crate) fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let valid = !schema.is_empty()
        && schema.len() <= SCHEMA_NAME_BYTES_MAX
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid grantflow schema name {schema:?}: 1 to {SCHEMA_NAME_BYTES_MAX} lowercase \
             letters, digits and _, not starting with a digit"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn schema_param_is_stripped() {
        let target = parse("postgres://postgres@127.0.0.1:5432/test?schema=abc_1").unwrap();
        assert_eq!(target.schema, "abc_1");
        assert_eq!(target.config.get_dbname(), Some("test"));
        let target =
            parse("postgres://postgres@127.0.0.1:5432/test?sslmode=disable&schema=s2").unwrap();
        assert_eq!(target.schema, "s2");
        let (url, schema) = strip_schema_param("postgres://h/db?a=1&schema=x&b=2").unwrap();
        assert_eq!(url, "postgres://h/db?a=1&b=2");
        assert_eq!(schema.as_deref(), Some("x"));
    }

    #[test]
    fn schema_from_search_path_or_default() {
        let target =
            parse("postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dmine").unwrap();
        assert_eq!(target.schema, "mine");
        let target =
            parse("postgres://postgres@127.0.0.1/test?options=-c%20search_path%3Dfirst,public")
                .unwrap();
        assert_eq!(target.schema, "first");
        let target = parse("postgres://postgres@127.0.0.1:5432/test").unwrap();
        assert_eq!(target.schema, DEFAULT_SCHEMA);
        assert_eq!(target.config.get_application_name(), Some("grantflow"));
    }

    #[test]
    fn bad_schema_names_are_refused() {
        for bad in [
            "",
            "Upper",
            "1abc",
            "a-b",
            "a\"b",
            &"x".repeat(SCHEMA_NAME_BYTES_MAX + 1),
        ] {
            assert!(check_schema_name(bad).is_err(), "{bad:?}");
        }
        assert!(parse("postgres://h/db?schema").is_err());
        assert!(parse("postgres://h/db?schema=Bad").is_err());
        assert!(parse("not a url at all ===").is_err());
    }
}
