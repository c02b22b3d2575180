//! Schema evolution on read: which payload schema versions this release reads, and the
//! chain of upcasters that brings a payload of an older schema to the shape the decoder
//! reads ([`decode`]). Stored bytes are never rewritten: the log keeps each event as it was
//! written and hashed, and the chain runs each time an event is read.
//!
//! Each step of the chain takes one event type from schema `n` to `n + 1`, in one of two
//! ways:
//! - [`Step::Added`]: schema `n + 1` added optional fields and nothing else. A payload of
//!   schema `n` reads as it is, and must not hold any of the added fields (its `schema`
//!   number is part of the hashed envelope: a payload that holds a field its schema does not
//!   have is refused, not silently read). Every change grantflow has made so far is of this
//!   kind ([`crate::catalog::GAINED_FIELDS`]).
//! - [`Step::Rewrite`]: schema `n + 1` renamed, moved or restructured fields; the step's
//!   function turns the older payload into the newer one.
//!
//! A payload of a schema above what this release reads was written by a newer grantflow:
//! [`decode`] refuses it with [`ReadError::Newer`], naming both versions.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde_json::Value;

use crate::catalog::GAINED_FIELDS;
use crate::error::DomainError;
use crate::event::{Event, EVENT_SCHEMA, EVENT_SCHEMA_EXTENDED, EVENT_TYPES};

/// How one step of the chain brings a payload from its schema to the next.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// The next schema only added these optional fields.
    Added(&'static [&'static str]),
    /// The next schema changed the payload's shape: this function rewrites an older payload
    /// (compact JSON) into the newer shape, or says why it cannot.
    Rewrite(fn(&str) -> Result<String, String>),
}

/// One step of the chain: `event_type`'s payload from schema `from` to `from + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    /// The event type.
    pub event_type: &'static str,
    /// The schema the step reads.
    pub from: u32,
    /// What it does.
    pub step: Step,
}

/// Why a stored payload cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Written by a newer grantflow: its schema is above the newest this release reads.
    #[error(
        "{event_type} schema {found} was written by a newer grantflow; this release reads {event_type} up to schema {supported}"
    )]
    Newer {
        /// The event type.
        event_type: String,
        /// The payload's schema.
        found: u32,
        /// The newest schema of the type this release reads.
        supported: u32,
    },
    /// The event type is not one this release knows.
    #[error("unknown event type {0:?} (written by a newer grantflow, or not a grantflow event)")]
    UnknownType(String),
    /// The payload does not fit its schema, or does not decode.
    #[error("{0}")]
    Malformed(String),
}

impl From<DomainError> for ReadError {
    fn from(error: DomainError) -> ReadError {
        ReadError::Malformed(error.message)
    }
}

/// The chain this release applies, one step per type and schema: each type that gained
/// fields went from its first shape to schema 2 by adding them.
pub fn upcasters() -> &'static [Upcaster] {
    static CHAIN: OnceLock<Vec<Upcaster>> = OnceLock::new();
    CHAIN.get_or_init(|| {
        GAINED_FIELDS
            .iter()
            .map(|(event_type, fields)| Upcaster {
                event_type,
                from: EVENT_SCHEMA,
                step: Step::Added(fields),
            })
            .collect()
    })
}

/// The newest schema of `event_type` this release reads (and writes), or `None` for a type
/// it does not know.
pub fn newest_schema(event_type: &str) -> Option<u32> {
    if !EVENT_TYPES.contains(&event_type) {
        return None;
    }
    let gained = GAINED_FIELDS.iter().any(|(name, _)| *name == event_type);
    Some(if gained {
        EVENT_SCHEMA_EXTENDED
    } else {
        EVENT_SCHEMA
    })
}

/// Brings `payload`, stored with `schema`, through `chain` to `newest`: the payload in the
/// shape of schema `newest`. Borrowed when no step rewrites it.
pub fn upcast_with<'a>(
    chain: &[Upcaster],
    event_type: &str,
    schema: u32,
    newest: u32,
    payload: &'a str,
) -> Result<Cow<'a, str>, ReadError> {
    if schema == 0 {
        return Err(ReadError::Malformed(format!(
            "{event_type} has schema 0; schemas start at 1"
        )));
    }
    if schema > newest {
        return Err(ReadError::Newer {
            event_type: event_type.to_string(),
            found: schema,
            supported: newest,
        });
    }
    let mut current = Cow::Borrowed(payload);
    for from in schema..newest {
        let step = chain
            .iter()
            .find(|step| step.event_type == event_type && step.from == from)
            .ok_or_else(|| {
                ReadError::Malformed(format!(
                    "{event_type} schema {from} has no upcaster to schema {}",
                    from + 1
                ))
            })?;
        match step.step {
            Step::Added(fields) => {
                if let Some(field) = held_field(&current, fields) {
                    return Err(ReadError::Malformed(format!(
                        "{event_type} schema {from} holds `{field}`, a field of schema {}",
                        from + 1
                    )));
                }
            }
            Step::Rewrite(rewrite) => {
                let next = rewrite(&current).map_err(|why| {
                    ReadError::Malformed(format!(
                        "{event_type} schema {from} cannot be brought to schema {}: {why}",
                        from + 1
                    ))
                })?;
                current = Cow::Owned(next);
            }
        }
    }
    Ok(current)
}

/// The first of `fields` that `payload`'s top-level object holds. The common case (none)
/// costs a substring search per field; only a payload that mentions one as a quoted string
/// is parsed.
fn held_field(payload: &str, fields: &[&'static str]) -> Option<&'static str> {
    let quoted = |field: &str| {
        payload.match_indices(field).any(|(at, _)| {
            let bytes = payload.as_bytes();
            at > 0 && bytes[at - 1] == b'"' && bytes.get(at + field.len()) == Some(&b'"')
        })
    };
    if !fields.iter().any(|field| quoted(field)) {
        return None;
    }
    match serde_json::from_str::<Value>(payload) {
        Ok(Value::Object(object)) => fields
            .iter()
            .copied()
            .find(|field| object.contains_key(*field)),
        // Not an object: the decoder says what is wrong with it.
        _ => None,
    }
}

/// Reads a stored event: its payload brought by this release's chain from its `schema` to
/// the newest of its type, then decoded. Every fold decodes every event through here, so
/// the common case (an event of its type's newest schema) costs a look at the few types
/// that gained fields and nothing else.
pub fn decode(event_type: &str, schema: u32, payload: &str) -> Result<Event, ReadError> {
    let newest = if crate::catalog::gained_fields(event_type).is_empty() {
        EVENT_SCHEMA
    } else {
        EVENT_SCHEMA_EXTENDED
    };
    if schema == newest {
        return Event::from_parts(event_type, payload).map_err(|error| {
            if EVENT_TYPES.contains(&event_type) {
                ReadError::from(error)
            } else {
                ReadError::UnknownType(event_type.to_string())
            }
        });
    }
    if !EVENT_TYPES.contains(&event_type) {
        return Err(ReadError::UnknownType(event_type.to_string()));
    }
    let payload = upcast_with(upcasters(), event_type, schema, newest, payload)?;
    Ok(Event::from_parts(event_type, &payload)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::catalog_versions;

    #[test]
    fn the_newest_schema_of_each_type_is_the_catalogs_last() {
        for event_type in EVENT_TYPES {
            let last = catalog_versions()
                .into_iter()
                .filter(|(name, _)| name == event_type)
                .map(|(_, version)| version)
                .max();
            assert_eq!(newest_schema(event_type), last, "{event_type}");
        }
        assert_eq!(newest_schema("grant.teleported"), None);
    }

    #[test]
    fn the_chain_has_a_step_for_every_older_schema_of_every_type() {
        let chain = upcasters();
        for (event_type, version) in catalog_versions() {
            let newest = newest_schema(event_type).unwrap();
            for from in version..newest {
                assert!(
                    chain
                        .iter()
                        .any(|step| step.event_type == event_type && step.from == from),
                    "{event_type} schema {from}"
                );
            }
        }
    }

    const CONTRIBUTION: &str =
        r#"{"fund":"F","donor":"D","amount":"10.00","received_on":"2012-01-02"}"#;

    #[test]
    fn a_first_shape_payload_reads_as_it_is_and_must_not_hold_a_gained_field() {
        let event = decode("fund.contribution_recorded", 1, CONTRIBUTION).unwrap();
        assert_eq!(event.schema(), 1);
        let with_pledge = CONTRIBUTION.replace('}', r#","pledge":"P1"}"#);
        let error = decode("fund.contribution_recorded", 1, &with_pledge).unwrap_err();
        assert_eq!(
            error.to_string(),
            "fund.contribution_recorded schema 1 holds `pledge`, a field of schema 2"
        );
        let event = decode("fund.contribution_recorded", 2, &with_pledge).unwrap();
        assert_eq!(event.schema(), 2);
        // The field's name inside a string value is not the field.
        let mentions = CONTRIBUTION.replace(r#""D""#, r#""\"pledge\"""#);
        assert!(decode("fund.contribution_recorded", 1, &mentions).is_ok());
    }

    #[test]
    fn a_newer_schema_or_type_is_refused_naming_both_versions() {
        let error = decode("grant.rejected", 2, r#"{"grant":"G","reason":"r"}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "grant.rejected schema 2 was written by a newer grantflow; this release reads grant.rejected up to schema 1"
        );
        let error = decode("fund.contribution_recorded", 3, CONTRIBUTION).unwrap_err();
        assert!(matches!(
            error,
            ReadError::Newer {
                found: 3,
                supported: 2,
                ..
            }
        ));
        let error = decode("grant.teleported", 1, "{}").unwrap_err();
        assert!(error.to_string().contains("unknown event type"), "{error}");
        let error = decode("grant.rejected", 0, r#"{"grant":"G","reason":"r"}"#).unwrap_err();
        assert!(error.to_string().contains("schema 0"), "{error}");
    }

    /// A chain with a rewriting step, as a change that renames a field would register:
    /// `donor` renamed `contributor` in schema 2, then `note` added in schema 3.
    #[test]
    fn a_chain_of_rewrites_and_additions_runs_in_order() {
        fn rename(payload: &str) -> Result<String, String> {
            let mut value: Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
            let object = value.as_object_mut().ok_or("not an object")?;
            let donor = object.remove("donor").ok_or("no `donor`")?;
            object.insert("contributor".into(), donor);
            Ok(value.to_string())
        }
        let chain = [
            Upcaster {
                event_type: "t",
                from: 1,
                step: Step::Rewrite(rename),
            },
            Upcaster {
                event_type: "t",
                from: 2,
                step: Step::Added(&["note"]),
            },
        ];
        let out = upcast_with(&chain, "t", 1, 3, r#"{"donor":"D"}"#).unwrap();
        assert_eq!(out, r#"{"contributor":"D"}"#);
        let out = upcast_with(&chain, "t", 3, 3, r#"{"contributor":"D","note":"n"}"#).unwrap();
        assert!(matches!(out, Cow::Borrowed(_)));
        let error = upcast_with(&chain, "t", 2, 3, r#"{"contributor":"D","note":"n"}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "t schema 2 holds `note`, a field of schema 3");
        let error = upcast_with(&chain, "t", 1, 3, r#"{"contributor":"D"}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "t schema 1 cannot be brought to schema 2: no `donor`"
        );
        let error = upcast_with(&chain[1..], "t", 1, 3, r#"{"donor":"D"}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "t schema 1 has no upcaster to schema 2");
    }
}
