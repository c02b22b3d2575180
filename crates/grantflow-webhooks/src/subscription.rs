//! Subscriptions as listed, delivery attempts, and which events a subscription takes.

use std::collections::HashMap;

use grantflow_domain::event::EVENT_TYPES;
use grantflow_store::{Envelope, EventStore};
use serde::{Deserialize, Serialize};

use crate::WebhookError;

/// Characters of a subscription id (hex digits), as made by [`new_id`].
const ID_BYTES: usize = 4;
/// The longest URL a subscription takes.
pub const URL_CHARS_MAX: usize = 2_048;
/// The most type patterns a subscription takes.
pub const TYPE_PATTERNS_MAX: usize = 64;
/// Grants whose fund a worker remembers before it forgets them all and looks them up again.
const GRANT_FUNDS_MAX: usize = 100_000;

/// A subscription as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Its id (8 hex digits).
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it takes, as patterns (`*` matches any run of characters); empty:
    /// every type.
    pub types: Vec<String>,
    /// Only the events of this fund's stream and of its grants' streams.
    pub fund: Option<String>,
    /// The log's head when it was added: it delivers events after this position.
    pub start_after: u64,
    /// The last position delivered or passed over (not of its types or fund).
    pub cursor: u64,
    /// Failed attempts in a row (0 after a success, and after `webhook enable`).
    pub failures: u32,
    /// Whether it is delivered.
    pub enabled: bool,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Raised by every `webhook enable`: a worker of an older generation stops.
    pub generation: u64,
    /// When it was added (RFC 3339 UTC).
    pub created_at: String,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The event's position.
    pub position: u64,
    /// 1 for the first attempt of this position, then 2, 3, ...
    pub attempt: u32,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// What went wrong when it did not answer, or answered other than 2xx.
    pub error: Option<String>,
    /// How long the attempt took, in milliseconds.
    pub duration_ms: u64,
    /// When it started (RFC 3339 UTC, milliseconds).
    pub at: String,
}

impl Attempt {
    /// Whether the receiver took it (a 2xx status).
    pub fn ok(&self) -> bool {
        self.status
            .is_some_and(|status| (200..300).contains(&status))
    }
}

/// What `webhook add` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Type patterns (each `grant.*`, `fund.contribution_recorded`, ...); empty: every type.
    pub types: Vec<String>,
    /// A fund id.
    pub fund: Option<String>,
}

impl NewSubscription {
    /// `types` may hold comma-separated lists (`grant.*,fund.contribution_recorded`).
    pub fn new(url: &str, types: &[String], fund: Option<String>) -> NewSubscription {
        let mut patterns: Vec<String> = types
            .iter()
            .flat_map(|text| text.split(','))
            .map(|pattern| pattern.trim().to_string())
            .filter(|pattern| !pattern.is_empty())
            .collect();
        patterns.dedup();
        NewSubscription {
            url: url.trim().to_string(),
            types: patterns,
            fund: fund.map(|fund| fund.trim().to_string()),
        }
    }

    /// Refuses what cannot be delivered: a URL that is not http(s), a pattern that matches
    /// no event type, a fund id that cannot be one.
    pub fn check(&self) -> Result<(), WebhookError> {
        if self.url.chars().count() > URL_CHARS_MAX {
            return Err(WebhookError::Invalid(format!(
                "--url is longer than {URL_CHARS_MAX} characters"
            )));
        }
        let url: hyper::Uri = self
            .url
            .parse()
            .map_err(|error| WebhookError::Invalid(format!("--url {:?}: {error}", self.url)))?;
        let scheme = url.scheme_str().unwrap_or_default();
        let host = url.host().unwrap_or_default();
        if !matches!(scheme, "http" | "https") || host.is_empty() {
            return Err(WebhookError::Invalid(format!(
                "--url {:?}: a webhook URL is http:// or https:// with a host",
                self.url
            )));
        }
        if self.types.len() > TYPE_PATTERNS_MAX {
            return Err(WebhookError::Invalid(format!(
                "--types names {} patterns; at most {TYPE_PATTERNS_MAX}",
                self.types.len()
            )));
        }
        for pattern in &self.types {
            let known = pattern
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._*".contains(c));
            if !known || !EVENT_TYPES.iter().any(|name| glob(pattern, name)) {
                return Err(WebhookError::Invalid(format!(
                    "--types {pattern:?} matches no event type (e.g. grant.*, \
                     fund.contribution_recorded; every type is in docs/events.md)"
                )));
            }
        }
        if let Some(fund) = &self.fund {
            if !grantflow_domain::is_valid_id(fund) {
                return Err(WebhookError::Invalid(format!(
                    "--fund {fund:?} is not a fund id (letters, digits, '.', '_' and '-')"
                )));
            }
        }
        Ok(())
    }
}

/// A new subscription id: 8 random hex digits.
pub(crate) fn new_id() -> Result<String, WebhookError> {
    let mut bytes = [0u8; ID_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| WebhookError::Random(error.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Whether `id` can be a subscription id (what file names and messages may hold).
pub(crate) fn check_id(id: &str) -> Result<(), WebhookError> {
    if id.len() == ID_BYTES * 2 && id.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(WebhookError::UnknownSubscription(id.to_string()))
    }
}

/// `pattern` matches `text`, `*` standing for any run of characters (none included).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    // Greedy matching with backtracking to the last star.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Which events one subscription takes: its types, and its fund (whose grants it learns
/// as it goes, reading a grant's first event when it meets one it does not know).
pub(crate) struct Filter {
    types: Vec<String>,
    fund: Option<String>,
    /// Grant id -> its fund.
    grant_funds: HashMap<String, String>,
}

impl Filter {
    pub(crate) fn new(subscription: &Subscription) -> Filter {
        Filter {
            types: subscription.types.clone(),
            fund: subscription.fund.clone(),
            grant_funds: HashMap::new(),
        }
    }

    /// Whether the subscription takes `envelope`.
    pub(crate) async fn takes(
        &mut self,
        store: &dyn EventStore,
        envelope: &Envelope,
    ) -> Result<bool, WebhookError> {
        let typed = self.types.is_empty()
            || self
                .types
                .iter()
                .any(|pattern| glob(pattern, &envelope.event_type));
        if !typed {
            return Ok(false);
        }
        let Some(fund) = &self.fund else {
            return Ok(true);
        };
        if let Some(id) = envelope.stream.strip_prefix("fund-") {
            return Ok(id == fund);
        }
        let Some(grant) = envelope.stream.strip_prefix("grant-") else {
            return Ok(false);
        };
        if let Some(owner) = self.grant_funds.get(grant) {
            return Ok(owner == fund);
        }
        // A grant's first event (`grant.proposed`) names its fund.
        let first = if envelope.version == 1 {
            Some(envelope.clone())
        } else {
            store
                .read_stream(&envelope.stream, 1, 1)
                .await?
                .into_iter()
                .next()
        };
        let owner = first
            .and_then(|first| payload_fund(&first.payload))
            .ok_or_else(|| {
                WebhookError::Store(grantflow_store::StoreError::Corrupt {
                    position: envelope.position,
                    detail: format!(
                        "the first event of {} does not name its fund",
                        envelope.stream
                    ),
                })
            })?;
        if self.grant_funds.len() >= GRANT_FUNDS_MAX {
            self.grant_funds.clear();
        }
        let takes = &owner == fund;
        self.grant_funds.insert(grant.to_string(), owner);
        Ok(takes)
    }
}

fn payload_fund(payload: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    value.get("fund")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob("grant.*", "grant.disbursement_recorded"));
        assert!(!glob("grant.*", "fund.grant_committed"));
        assert!(glob("*", "fund.registered"));
        assert!(glob("*.document_attached", "fund.document_attached"));
        assert!(glob("grant.report_*ed", "grant.report_accepted"));
        assert!(!glob("grant.report_*ed", "grant.report_scheduled_x"));
        assert!(glob("fund.registered", "fund.registered"));
        assert!(!glob("fund.registered", "fund.registered2"));
    }

    #[test]
    fn new_subscriptions_are_checked() {
        let ok = NewSubscription::new(
            "https://example.org/hook",
            &["grant.*,fund.contribution_recorded".to_string()],
            Some("UNTFHS".into()),
        );
        assert_eq!(ok.types, vec!["grant.*", "fund.contribution_recorded"]);
        ok.check().unwrap();
        for (url, types, fund, expected) in [
            ("ftp://example.org", "", None, "http:// or https://"),
            ("not a url", "", None, "--url"),
            ("http://h", "grant.approve", None, "matches no event type"),
            ("http://h", "Grant.*", None, "matches no event type"),
            ("http://h", "", Some("a b"), "not a fund id"),
        ] {
            let error = NewSubscription::new(url, &[types.to_string()], fund.map(Into::into))
                .check()
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
