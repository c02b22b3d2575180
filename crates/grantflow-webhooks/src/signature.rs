//! Signing as the Standard Webhooks specification says (<https://www.standardwebhooks.com>):
//! a secret `whsec_<base64 of the key>`, and `webhook-signature: v1,<base64 of
//! HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::WebhookError;

/// Every signing secret starts with this.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret's key (256 bits).
pub const SECRET_BYTES: usize = 32;
/// The signature scheme's version tag in `webhook-signature`.
pub const SIGNATURE_VERSION: &str = "v1";
/// How far a `webhook-timestamp` may be from the receiver's clock, by default, before
/// [`Secret::verify`] refuses it (the specification's suggestion: five minutes).
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// A subscription's signing key.
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a delivery's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `webhook-timestamp` is not a number of seconds.
    #[error("webhook-timestamp {0:?} is not a Unix time in seconds")]
    BadTimestamp(String),
    /// `webhook-timestamp` is too far from now (a replay, or a clock off).
    #[error("webhook-timestamp {timestamp} is {skew} s away from now (at most {tolerance} s)")]
    Stale {
        /// The header's time.
        timestamp: i64,
        /// Its distance from now, in seconds.
        skew: i64,
        /// The tolerance.
        tolerance: i64,
    },
    /// No `v1,` signature of the header matches.
    #[error("no signature in webhook-signature matches this secret and body")]
    Mismatch,
}

impl Secret {
    /// A new random secret and its text (`whsec_<base64>`), from the OS random source.
    pub fn generate() -> Result<(Secret, String), WebhookError> {
        let mut key = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut key).map_err(|error| WebhookError::Random(error.to_string()))?;
        let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(&key));
        Ok((Secret { key }, text))
    }

    /// The secret of its text: `whsec_<base64>` (the prefix may be left out); the key is
    /// the decoded bytes.
    pub fn parse(text: &str) -> Result<Secret, WebhookError> {
        let text = text.trim();
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let key = STANDARD.decode(encoded).map_err(|error| {
            WebhookError::Invalid(format!(
                "a signing secret reads {SECRET_PREFIX}<base64>: {error}"
            ))
        })?;
        if key.is_empty() {
            return Err(WebhookError::Invalid(format!(
                "a signing secret reads {SECRET_PREFIX}<base64> of at least one byte"
            )));
        }
        Ok(Secret { key })
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable_mac(),
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` of a delivery: `v1,<base64 of the HMAC-SHA256>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(msg_id, timestamp, body).finalize().into_bytes();
        format!("{SIGNATURE_VERSION},{}", STANDARD.encode(tag))
    }

    /// Checks a delivery as a receiver does: `timestamp` (the `webhook-timestamp` header)
    /// within `tolerance_secs` of `now` (Unix seconds), and one of the space-separated
    /// signatures of `signatures` (the `webhook-signature` header) a `v1` signature of
    /// `msg_id.timestamp.body` under this secret (compared in constant time).
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now: i64,
        tolerance_secs: i64,
    ) -> Result<(), VerifyError> {
        let time: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::BadTimestamp(timestamp.to_string()))?;
        let skew = (now - time).abs();
        if skew > tolerance_secs {
            return Err(VerifyError::Stale {
                timestamp: time,
                skew,
                tolerance: tolerance_secs,
            });
        }
        let mac = self.mac(msg_id, time, body);
        let matched = signatures
            .split(' ')
            .filter_map(|part| part.split_once(','))
            .filter(|(version, _)| *version == SIGNATURE_VERSION)
            .filter_map(|(_, encoded)| STANDARD.decode(encoded).ok())
            .any(|tag| mac.clone().verify_slice(&tag).is_ok());
        if matched {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

/// `Hmac::new_from_slice` refuses no key length; this is never reached.
#[cold]
fn unreachable_mac() -> ! {
    panic!("HMAC-SHA256 accepts keys of every length")
}

/// The `webhook-id` of the delivery of `position` to subscription `id`: the same for every
/// attempt, so a receiver can drop a delivery it already processed.
pub fn message_id(subscription: &str, position: u64) -> String {
    format!("msg_{subscription}_{position}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    // The Standard Webhooks reference libraries' test vector.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    #[test]
    fn the_specifications_test_vector_signs_and_verifies() {
        let secret = Secret::parse(SECRET).unwrap();
        assert_eq!(secret.sign(MSG_ID, TIMESTAMP, BODY), SIGNATURE);
        secret
            .verify(MSG_ID, "1649367553", SIGNATURE, BODY, TIMESTAMP + 10, 300)
            .unwrap();
        // Among several signatures (a receiver during a secret rotation).
        let several = format!("v1,bm90IHRoaXMgb25l {SIGNATURE} v2,abc");
        secret
            .verify(MSG_ID, "1649367553", &several, BODY, TIMESTAMP, 300)
            .unwrap();
    }

    #[test]
    fn a_wrong_secret_body_id_or_time_fails() {
        let secret = Secret::parse(SECRET).unwrap();
        let (other, text) = Secret::generate().unwrap();
        assert!(text.starts_with(SECRET_PREFIX));
        assert_eq!(Secret::parse(&text).unwrap().key, other.key);
        assert_eq!(
            other.verify(MSG_ID, "1649367553", SIGNATURE, BODY, TIMESTAMP, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            secret.verify(MSG_ID, "1649367553", SIGNATURE, b"{}", TIMESTAMP, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            secret.verify("msg_other", "1649367553", SIGNATURE, BODY, TIMESTAMP, 300),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            secret.verify(MSG_ID, "1649367553", SIGNATURE, BODY, TIMESTAMP + 301, 300),
            Err(VerifyError::Stale { skew: 301, .. })
        ));
        assert!(matches!(
            secret.verify(MSG_ID, "soon", SIGNATURE, BODY, TIMESTAMP, 300),
            Err(VerifyError::BadTimestamp(_))
        ));
    }

    #[test]
    fn secrets_are_base64_after_the_prefix() {
        assert!(Secret::parse("whsec_not base64!").is_err());
        assert!(Secret::parse("whsec_").is_err());
        assert_eq!(message_id("1a2b3c4d", 41), "msg_1a2b3c4d_41");
    }
}
