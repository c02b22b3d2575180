//! A command on its way in: parsing at the edge, the actor, the idempotency key and body
//! hash, and the result shape of docs/commands.md.

use grantflow_domain::{
    parse_command, parse_command_on, CommandRequest, Date, DomainError, ErrorCode,
};
use grantflow_store::{EventRef, Hash};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Where the actor of a command comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorSource {
    /// The command line: the body's `actor`, else this default (`--actor`, `GRANTFLOW_ACTOR`).
    BodyOr(Option<String>),
    /// HTTP: the token's actor; a body that names one is malformed.
    Fixed(String),
}

/// A command as it arrives: a JSON value and where its actor comes from.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The command body (the command JSON of docs/commands.md).
    pub body: Value,
    /// Who issues it.
    pub actor: ActorSource,
}

impl Submission {
    /// A command-line submission.
    pub fn cli(body: Value, default_actor: Option<String>) -> Self {
        Submission {
            body,
            actor: ActorSource::BodyOr(default_actor),
        }
    }
}

/// Why a command was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The error code (docs/errors.md), e.g. `over_disbursement`.
    pub code: String,
    /// A sentence a person can act on.
    pub message: String,
}

impl From<DomainError> for Rejection {
    fn from(error: DomainError) -> Self {
        Rejection {
            code: error.code.as_str().to_string(),
            message: error.message,
        }
    }
}

/// The result of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Appended and durable (or, with `replayed`, appended earlier under the same id).
    Accepted {
        /// The command id.
        command_id: String,
        /// Where its events landed.
        events: Vec<EventRef>,
        /// An idempotent repeat: nothing new was appended.
        replayed: bool,
    },
    /// Rejected; the log is untouched.
    Rejected {
        /// The command id, when one was given or made.
        command_id: Option<String>,
        /// Why.
        rejection: Rejection,
    },
}

impl CommandOutcome {
    /// Whether the command was accepted.
    pub fn is_ok(&self) -> bool {
        matches!(self, CommandOutcome::Accepted { .. })
    }

    /// The error code of a rejection.
    pub fn code(&self) -> Option<&str> {
        match self {
            CommandOutcome::Accepted { .. } => None,
            CommandOutcome::Rejected { rejection, .. } => Some(&rejection.code),
        }
    }

    /// The result JSON (docs/commands.md), as a value (its [`serde::Serialize`] writes the same
    /// JSON straight to bytes).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub(crate) fn rejected(command_id: Option<String>, error: DomainError) -> Self {
        CommandOutcome::Rejected {
            command_id,
            rejection: error.into(),
        }
    }
}

/// The result JSON of docs/commands.md: `{"ok": true, "command_id", "events"[, "replayed": true]}` or
/// `{"ok": false, "command_id", "error": {"code", "message"}}`, keys in that order.
impl serde::Serialize for CommandOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            CommandOutcome::Accepted {
                command_id,
                events,
                replayed,
            } => {
                let mut map = serializer.serialize_map(Some(3 + usize::from(*replayed)))?;
                map.serialize_entry("ok", &true)?;
                map.serialize_entry("command_id", command_id)?;
                map.serialize_entry("events", events)?;
                if *replayed {
                    map.serialize_entry("replayed", &true)?;
                }
                map.end()
            }
            CommandOutcome::Rejected {
                command_id,
                rejection,
            } => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("ok", &false)?;
                map.serialize_entry("command_id", command_id)?;
                map.serialize_entry(
                    "error",
                    &ErrorBody {
                        code: &rejection.code,
                        message: &rejection.message,
                    },
                )?;
                map.end()
            }
        }
    }
}

/// A rejection's `error` object.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

/// A parsed command ready for the writer.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub request: CommandRequest,
    pub actor: String,
    pub command_id: String,
    /// Whether the client chose the id (only then can it be a repeat).
    pub client_id: bool,
    pub body_hash: Hash,
}

/// Parses and checks a submission on the caller's task, off the writer's critical path.
pub(crate) fn prepare(submission: Submission) -> Result<Prepared, CommandOutcome> {
    // A rejected command still gets an id: the client's, or one the engine makes.
    let reply_id = submission
        .body
        .get("command_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(new_command_id);
    // Today by the engine's clock (UTC): the `future_date` rule.
    let today = Date::from_naive(chrono::Utc::now().date_naive());
    let mut request = parse_command_on(&submission.body, today)
        .map_err(|error| CommandOutcome::rejected(Some(reply_id.clone()), error))?;
    let actor = resolve_actor(&request, submission.actor)
        .map(|actor| grantflow_domain::actor::normalise_actor(&actor))
        .map_err(|error| CommandOutcome::rejected(Some(reply_id.clone()), error))?;
    request.actor = Some(actor.clone());
    let (command_id, client_id) = match request.command_id.clone() {
        Some(id) => (id, true),
        None => (reply_id, false),
    };
    let body_hash = body_hash(&submission.body, &actor);
    Ok(Prepared {
        request,
        actor,
        command_id,
        client_id,
        body_hash,
    })
}

/// A fresh command id for a command sent without one: a version 7 UUID (RFC 9562), whose
/// first bits are the time in milliseconds, so that the ids the engine makes sort in the
/// order they were made and the command index takes them as appends (a random id lands in a
/// random leaf of sled's tree: a leaf rewritten, and read back from disk once the index
/// outgrows the cache, for each command). 74 random bits keep two ids from meeting.
pub fn new_command_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn resolve_actor(request: &CommandRequest, source: ActorSource) -> Result<String, DomainError> {
    match (source, &request.actor) {
        (ActorSource::Fixed(_), Some(_)) => Err(DomainError {
            code: ErrorCode::MalformedCommand,
            message: "field `actor` is not allowed over HTTP: the actor is the bearer token's"
                .into(),
        }),
        (ActorSource::Fixed(actor), None) => Ok(actor),
        (ActorSource::BodyOr(_), Some(actor)) => Ok(actor.clone()),
        (ActorSource::BodyOr(Some(actor)), None) => {
            let request_like = serde_json::json!({"actor": actor});
            // The default actor obeys the same rules as one in the body.
            match parse_actor(&request_like) {
                Some(error) => Err(error),
                None => Ok(actor),
            }
        }
        (ActorSource::BodyOr(None), None) => Err(DomainError {
            code: ErrorCode::MalformedCommand,
            message: "missing field `actor`: name who issues the command in the body, with \
                      --actor, or with GRANTFLOW_ACTOR"
                .into(),
        }),
    }
}

/// Checks a default actor by the parser's own rules (by parsing a minimal command).
fn parse_actor(actor: &Value) -> Option<DomainError> {
    let mut probe = json!({"command": "finalize-grant", "grant": "probe"});
    probe["actor"] = actor["actor"].clone();
    parse_command(&probe).err()
}

/// SHA-256 of the body as canonical JSON (keys sorted), with the resolved actor in it:
/// "equal JSON values, actor included". A body that is not an object hashes as `{"actor":..}`.
/// Nothing is cloned: the body's fields (its own `actor` replaced) are sorted by reference.
fn body_hash(body: &Value, actor: &str) -> Hash {
    let actor = Value::String(actor.to_string());
    let mut fields: Vec<(&str, &Value)> = match body.as_object() {
        Some(map) => map
            .iter()
            .filter(|(key, _)| key.as_str() != "actor")
            .map(|(key, value)| (key.as_str(), value))
            .collect(),
        None => Vec::new(),
    };
    fields.push(("actor", &actor));
    let mut bytes = Vec::with_capacity(256);
    write_canonical_fields(&mut fields, &mut bytes);
    Sha256::digest(&bytes).into()
}

/// Compact JSON with object keys sorted at every level, whatever map order serde_json keeps.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(&str, &Value)> = map
                .iter()
                .map(|(key, value)| (key.as_str(), value))
                .collect();
            write_canonical_fields(&mut fields, out);
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_json(scalar, out),
    }
}

/// An object's fields (keys unique), sorted by key (bytewise, as `str` orders), as JSON.
fn write_canonical_fields(fields: &mut [(&str, &Value)], out: &mut Vec<u8>) {
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (index, (key, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_json(*key, out);
        out.push(b':');
        write_canonical(value, out);
    }
    out.push(b'}');
}

/// serde_json's compact text of a string or a scalar (what `Value`'s `Display` prints).
fn write_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Infallible: a string or a JSON scalar always serializes (a Value holds no NaN), and a
    // Vec takes every byte. The tests compare every byte with `Value`'s own Display.
    let written = serde_json::to_writer(out, value);
    debug_assert!(written.is_ok(), "a JSON string or scalar serializes");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Map;

    #[test]
    fn outcomes_serialize_as_contract_results_keys_in_order() {
        let event = EventRef {
            position: 7,
            stream: "grant-G".to_string(),
            version: 2,
            event_type: "grant.approved".to_string(),
        };
        let accepted = |replayed| CommandOutcome::Accepted {
            command_id: "c-1".to_string(),
            events: vec![event.clone()],
            replayed,
        };
        let expected = r#"{"ok":true,"command_id":"c-1","events":[{"position":7,"stream":"grant-G","version":2,"type":"grant.approved"}]"#;
        assert_eq!(
            serde_json::to_string(&accepted(false)).unwrap(),
            format!("{expected}}}")
        );
        assert_eq!(
            serde_json::to_string(&accepted(true)).unwrap(),
            format!(r#"{expected},"replayed":true}}"#)
        );
        let rejected = |command_id: Option<&str>| CommandOutcome::Rejected {
            command_id: command_id.map(str::to_string),
            rejection: Rejection {
                code: "over_disbursement".to_string(),
                message: "too \"much\"".to_string(),
            },
        };
        assert_eq!(
            serde_json::to_string(&rejected(None)).unwrap(),
            r#"{"ok":false,"command_id":null,"error":{"code":"over_disbursement","message":"too \"much\""}}"#
        );
        let value = rejected(Some("c-2")).to_json();
        assert_eq!(value["command_id"], "c-2");
        assert_eq!(value["error"]["code"], "over_disbursement");
        assert_eq!(
            accepted(true).to_json()["events"][0]["type"],
            "grant.approved"
        );
    }

    /// The body hash as grantflow computed it before it stopped cloning the body (stored
    /// command records hold such hashes, so the bytes hashed must never change).
    fn reference_body_hash(body: &Value, actor: &str) -> Hash {
        fn write(value: &Value, out: &mut Vec<u8>) {
            match value {
                Value::Object(map) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    out.push(b'{');
                    for (index, key) in keys.into_iter().enumerate() {
                        if index > 0 {
                            out.push(b',');
                        }
                        write(&Value::String(key.clone()), out);
                        out.push(b':');
                        write(&map[key], out);
                    }
                    out.push(b'}');
                }
                Value::Array(items) => {
                    out.push(b'[');
                    for (index, item) in items.iter().enumerate() {
                        if index > 0 {
                            out.push(b',');
                        }
                        write(item, out);
                    }
                    out.push(b']');
                }
                scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
            }
        }
        let mut object: Map<String, Value> = body.as_object().cloned().unwrap_or_default();
        object.insert("actor".into(), Value::String(actor.to_string()));
        let mut bytes = Vec::new();
        write(&Value::Object(object), &mut bytes);
        Sha256::digest(&bytes).into()
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,12}|[\"\\\\\u{0}-\u{1f}é€😀]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("[a-zA-Z_é\"\\\\]{0,8}|actor", inner), 0..6)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_body_hash_is_the_one_grantflow_always_computed(
            body in json_value(),
            actor in "[a-z.]{1,20}|\\PC{0,8}",
        ) {
            prop_assert_eq!(body_hash(&body, &actor), reference_body_hash(&body, &actor));
        }
    }

    #[test]
    fn engine_made_ids_are_distinct_and_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..10_000).map(|_| new_command_id()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        let first = uuid::Uuid::parse_str(&ids[0]).unwrap();
        assert_eq!(first.get_version_num(), 7);
        assert_eq!(ids[0].len(), 36, "the hyphenated form");
    }

    #[test]
    fn the_body_hash_of_a_known_command_is_pinned() {
        let body = json!({
            "command": "record-disbursement", "grant": "g-1", "agency": "UNHCR",
            "amount": "1000.00", "actor": "someone.else", "nested": {"b": [1, {"z": 2, "a": "é"}], "a": null}
        });
        let hash = body_hash(&body, "finance.a.ruiz");
        let text = r#"{"actor":"finance.a.ruiz","agency":"UNHCR","amount":"1000.00","command":"record-disbursement","grant":"g-1","nested":{"a":null,"b":[1,{"a":"é","z":2}]}}"#;
        let expected: Hash = Sha256::digest(text.as_bytes()).into();
        assert_eq!(hash, expected);
    }
}
