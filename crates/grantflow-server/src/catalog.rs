//! The event catalog over HTTP (docs/http.md, docs/events.md "Catalog"): the JSON Schemas of
//! the envelope and of every event type's payload at every schema version
//! (`grantflow_domain::catalog`, `grantflow_store::envelope::envelope_schema`), and the
//! AsyncAPI 3.0 description of the event stream and of the JetStream relay's subjects, whose
//! messages refer to those schemas.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use grantflow_domain::catalog::{catalog_versions, payload_schema, payload_schema_name};
use grantflow_domain::EVENT_TYPES;
use grantflow_store::envelope::{envelope_schema, HASH_PATTERN};
use serde_json::{json, Map, Value};

use crate::auth::{Access, Caller};
use crate::error::{ApiError, ErrorBody};

/// The path of the catalog's index.
pub const SCHEMAS_PATH: &str = "/v1/schemas";
/// The path of the envelope's schema.
pub const ENVELOPE_SCHEMA_PATH: &str = "/v1/schemas/envelope";
/// The AsyncAPI version of [`asyncapi`].
pub const ASYNCAPI_VERSION: &str = "3.0.0";
/// The relay's default subject prefix (`grantflow_relay::DEFAULT_SUBJECT_PREFIX`).
pub const RELAY_SUBJECT_PREFIX: &str = "grantflow";
/// The relay's header carrying each event's hash (`grantflow_relay::HASH_HEADER`).
pub const RELAY_HASH_HEADER: &str = "Grantflow-Hash";

/// The path of the schema of `event_type`'s payload at schema `version`.
pub fn payload_schema_path(event_type: &str, version: u32) -> String {
    format!("{SCHEMAS_PATH}/{event_type}/{version}")
}

/// The catalog's index: `{"envelope": URL, "events": [{"type", "version", "url"}]}`.
#[utoipa::path(
    get,
    path = "/v1/schemas",
    tag = "events",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "{\"envelope\": URL, \"events\": [{\"type\", \"version\", \"url\"}]}: every event type at every schema version, with the path of its payload's JSON Schema", body = Object),
        (status = 401, description = "unauthorized", body = ErrorBody),
    )
)]
pub(crate) async fn list_schemas(caller: Caller) -> Result<Response, ApiError> {
    caller.require(Access::Figures)?;
    let events: Vec<Value> = catalog_versions()
        .into_iter()
        .map(|(event_type, version)| {
            json!({
                "type": event_type,
                "version": version,
                "url": payload_schema_path(event_type, version),
            })
        })
        .collect();
    Ok(Json(json!({"envelope": ENVELOPE_SCHEMA_PATH, "events": events})).into_response())
}

/// The JSON Schema of the envelope.
#[utoipa::path(
    get,
    path = "/v1/schemas/envelope",
    tag = "events",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The JSON Schema (draft 2020-12) of an envelope (docs/schemas/envelope.json)", body = Object, content_type = "application/schema+json"),
        (status = 401, description = "unauthorized", body = ErrorBody),
    )
)]
pub(crate) async fn get_envelope_schema(caller: Caller) -> Result<Response, ApiError> {
    caller.require(Access::Figures)?;
    Ok(schema_response(envelope_schema()))
}

/// The JSON Schema of one event type's payload at one schema version.
#[utoipa::path(
    get,
    path = "/v1/schemas/{type}/{version}",
    tag = "events",
    security(("bearer" = [])),
    params(
        ("type" = String, Path, description = "The event type, e.g. grant.approved", example = "grant.approved"),
        ("version" = u32, Path, description = "The envelope's `schema`: 1, or 2 for a type that gained fields", example = 1),
    ),
    responses(
        (status = 200, description = "The JSON Schema (draft 2020-12) of the payload (docs/schemas/<type>.v<version>.json)", body = Object, content_type = "application/schema+json"),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "not_found: no such type, or no such version of it", body = ErrorBody),
    )
)]
pub(crate) async fn get_payload_schema(
    caller: Caller,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    caller.require(Access::Figures)?;
    let Path((event_type, version)) =
        path.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let schema = version
        .parse::<u32>()
        .ok()
        .and_then(|version| payload_schema(&event_type, version));
    match schema {
        Some(schema) => Ok(schema_response(schema)),
        None if EVENT_TYPES.contains(&event_type.as_str()) => Err(ApiError::not_found(format!(
            "`{event_type}` has no schema version {version:?}: see {SCHEMAS_PATH}"
        ))),
        None => Err(ApiError::not_found(format!(
            "no event type `{event_type}`: see {SCHEMAS_PATH}"
        ))),
    }
}

fn schema_response(schema: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/schema+json")],
        Json(schema),
    )
        .into_response()
}

/// The AsyncAPI 3.0 description of the event stream and the relay's subjects.
#[utoipa::path(
    get,
    path = "/asyncapi.json",
    tag = "operations",
    responses((status = 200, description = "The AsyncAPI 3.0 description of the event stream (Server-Sent Events) and of the JetStream relay's subjects (docs/asyncapi.json)", body = Object))
)]
pub(crate) async fn asyncapi_json() -> Response {
    static SPEC: OnceLock<String> = OnceLock::new();
    let spec = SPEC.get_or_init(|| asyncapi().to_string());
    ([(header::CONTENT_TYPE, "application/json")], spec.clone()).into_response()
}

/// The AsyncAPI 3.0 document: the channel `/v1/events/stream` (Server-Sent Events, `data`
/// the envelope), the relay's subjects `<prefix>.<fund|grant>.<id>.<type after its first
/// dot>` and the webhook deliveries (both CloudEvents 1.0 in structured JSON mode, `data` the
/// envelope; the deliveries with their Standard Webhooks headers), one message per event type
/// on each. Its schemas are the catalog's, self-contained under
/// `components.schemas` (`envelope`, `<type>.v<version>`, their shared definitions, and per
/// type the envelope of that type, `event.<type>`, and its CloudEvent, `cloudevent.<type>`).
pub fn asyncapi() -> Value {
    let mut schemas = Map::new();
    schemas.insert(
        "envelope".into(),
        component(envelope_schema(), &mut Map::new()),
    );
    let mut defs = Map::new();
    for (event_type, version) in catalog_versions() {
        if let Some(schema) = payload_schema(event_type, version) {
            schemas.insert(
                payload_schema_name(event_type, version),
                component(schema, &mut defs),
            );
        }
    }
    schemas.extend(defs);

    let mut sse_messages = Map::new();
    let mut relay_messages = Map::new();
    let mut webhook_messages = Map::new();
    let mut sse_refs = Vec::new();
    let mut relay_refs = Vec::new();
    let mut webhook_refs = Vec::new();
    let mut components_messages = Map::new();
    for event_type in EVENT_TYPES {
        let shapes: Vec<Value> = catalog_versions()
            .into_iter()
            .filter(|(name, _)| name == event_type)
            .map(|(_, version)| {
                json!({
                    "properties": {
                        "schema": {"const": version},
                        "payload": {"$ref": schema_ref(&payload_schema_name(event_type, version))},
                    }
                })
            })
            .collect();
        schemas.insert(
            format!("event.{event_type}"),
            json!({
                "title": format!("{event_type} envelope"),
                "description": format!("An envelope of type {event_type}: its payload is the catalog's schema of the envelope's `schema` version."),
                "allOf": [
                    {"$ref": schema_ref("envelope")},
                    {"properties": {"type": {"const": event_type}}, "oneOf": shapes},
                ],
            }),
        );
        schemas.insert(
            format!("cloudevent.{event_type}"),
            cloud_event_schema(event_type),
        );
        let sse_name = format!("sse.{event_type}");
        components_messages.insert(
            sse_name.clone(),
            json!({
                "name": event_type,
                "title": format!("{event_type} (Server-Sent Event)"),
                "summary": format!("One {event_type} event of the log: SSE `id` is its position, `event` its type, `data` its envelope."),
                "contentType": "application/json",
                "payload": {"$ref": schema_ref(&format!("event.{event_type}"))},
                "correlationId": {"location": "$message.payload#/correlation_id"},
            }),
        );
        let relay_name = format!("cloudevent.{event_type}");
        components_messages.insert(
            relay_name.clone(),
            json!({
                "name": event_type,
                "title": format!("{event_type} (CloudEvent on JetStream)"),
                "summary": format!("One {event_type} event of the log as a CloudEvent 1.0 (structured JSON mode): `id` is its position, `data` its envelope."),
                "contentType": "application/cloudevents+json",
                "headers": {"$ref": "#/components/schemas/relayHeaders"},
                "payload": {"$ref": schema_ref(&relay_name)},
                "correlationId": {"location": "$message.payload#/data/correlation_id"},
            }),
        );
        let webhook_name = format!("webhook.{event_type}");
        components_messages.insert(
            webhook_name.clone(),
            json!({
                "name": event_type,
                "title": format!("{event_type} (webhook delivery)"),
                "summary": format!("One {event_type} event POSTed to a subscription's URL as a CloudEvent 1.0 (structured JSON mode), signed as Standard Webhooks says: `id` is its position, `data` its envelope."),
                "contentType": "application/cloudevents+json",
                "headers": {"$ref": "#/components/schemas/webhookHeaders"},
                "payload": {"$ref": schema_ref(&relay_name)},
                "correlationId": {"location": "$message.payload#/data/correlation_id"},
            }),
        );
        webhook_messages.insert(
            (*event_type).to_string(),
            json!({"$ref": format!("#/components/messages/{webhook_name}")}),
        );
        webhook_refs.push(json!({"$ref": format!("#/channels/webhook/messages/{event_type}")}));
        sse_messages.insert(
            (*event_type).to_string(),
            json!({"$ref": format!("#/components/messages/{sse_name}")}),
        );
        relay_messages.insert(
            (*event_type).to_string(),
            json!({"$ref": format!("#/components/messages/{relay_name}")}),
        );
        sse_refs.push(json!({"$ref": format!("#/channels/eventStream/messages/{event_type}")}));
        relay_refs.push(json!({"$ref": format!("#/channels/relay/messages/{event_type}")}));
    }
    schemas.insert(
        "relayHeaders".into(),
        json!({
            "type": "object",
            "properties": {
                "Nats-Msg-Id": {"type": "string", "pattern": "^[1-9][0-9]*$", "description": "The event's position: JetStream stores each position once."},
                "Nats-Expected-Last-Msg-Id": {"type": "string", "pattern": "^[1-9][0-9]*$", "description": "The position before (from position 2): JetStream stores a message only right after its predecessor."},
                RELAY_HASH_HEADER: {"type": "string", "pattern": HASH_PATTERN, "description": "The event's hash (the envelope's `hash`)."},
                "Content-Type": {"const": "application/cloudevents+json"},
            },
            "required": ["Nats-Msg-Id", RELAY_HASH_HEADER, "Content-Type"],
        }),
    );
    schemas.insert(
        "webhookHeaders".into(),
        json!({
            "type": "object",
            "properties": {
                "webhook-id": {"type": "string", "pattern": "^msg_[0-9a-f]{8}_[1-9][0-9]*$", "description": "`msg_<subscription id>_<position>`: the same for every attempt of one event to one subscription (deduplicate on it)."},
                "webhook-timestamp": {"type": "string", "pattern": "^[0-9]+$", "description": "When the attempt was signed, in Unix seconds (refuse one too far from now)."},
                "webhook-signature": {"type": "string", "pattern": "^v1,[A-Za-z0-9+/]+=*$", "description": "`v1,<base64 of HMAC-SHA256(key, \"<webhook-id>.<webhook-timestamp>.<body>\")>`, the key being the base64-decoded part of the subscription's secret after `whsec_`."},
                "Content-Type": {"const": "application/cloudevents+json"},
            },
            "required": ["webhook-id", "webhook-timestamp", "webhook-signature", "Content-Type"],
        }),
    );
    let event_suffixes: Vec<String> = EVENT_TYPES
        .iter()
        .map(|t| t.split_once('.').map_or(*t, |(_, rest)| rest).to_string())
        .collect();

    json!({
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "grantflow events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every event of grantflow's hash-chained log, once and in position order: \
                over HTTP as Server-Sent Events (`GET /v1/events/stream`), published to NATS \
                JetStream by the relay (`grantflow relay nats`, `serve --relay-nats`), and POSTed \
                by `grantflow serve` to webhook subscriptions (`grantflow webhook add`). Each message \
                carries the envelope exactly as `grantflow events` prints it; the payload's JSON \
                Schema is the catalog's for its `type` and `schema` (`GET /v1/schemas`). Reference: \
                docs/events.md, docs/http.md, docs/relay.md and docs/webhooks.md in the grantflow \
                repository.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "http": {
                "host": "127.0.0.1:8080",
                "protocol": "http",
                "description": "`grantflow serve --addr ADDR`",
                "security": [{"$ref": "#/components/securitySchemes/bearer"}],
            },
            "nats": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "The NATS server the relay publishes to (`--url` / `--relay-nats`); \
                    JetStream stream `GRANTFLOW` by default (`--stream`), subjects `<prefix>.>`.",
            },
            "webhookReceiver": {
                "host": "receiver.example.org",
                "protocol": "https",
                "description": "A webhook subscriber's server: `grantflow serve` POSTs to the URL of each \
                    subscription (`grantflow webhook add --url URL`, http or https).",
            },
        },
        "channels": {
            "eventStream": {
                "address": "/v1/events/stream",
                "title": "The event stream (Server-Sent Events)",
                "description": "`GET /v1/events/stream?from=&stream=`: catch-up then live, every event \
                    exactly once in position order. Each SSE event is `id: <position>`, \
                    `event: <type>`, `data: <envelope>`; resume with `Last-Event-ID` (the last \
                    position seen) or `?from=`. Needs an auditor, integrator or admin token \
                    (`Authorization: Bearer`, or `?access_token=` on this route only).",
                "servers": [{"$ref": "#/servers/http"}],
                "messages": sse_messages,
            },
            "relay": {
                "address": "{prefix}.{kind}.{id}.{event}",
                "title": "The JetStream relay's subjects",
                "description": "`<prefix>.<fund|grant>.<id>.<type after its first dot>`, e.g. \
                    `grantflow.grant.MEX-2012-01.disbursement_recorded`; a `.`, `*`, `>` or white \
                    space in an id becomes `_`. Message sequence k of the stream is the log's \
                    position k.",
                "servers": [{"$ref": "#/servers/nats"}],
                "parameters": {
                    "prefix": {"default": RELAY_SUBJECT_PREFIX, "description": "`--subject-prefix` / `--relay-subject-prefix`: the first token(s) of every subject."},
                    "kind": {"enum": ["fund", "grant"], "description": "The stream's kind: the part of the envelope's `stream` before its first `-`."},
                    "id": {"description": "The fund's or grant's id (the rest of the envelope's `stream`)."},
                    "event": {"enum": event_suffixes, "description": "The event type after its first dot."},
                },
                "messages": relay_messages,
            },
            "webhook": {
                "address": null,
                "title": "Webhook deliveries",
                "description": "`POST` to each subscription's URL (`grantflow webhook add --url URL \
                    [--types PATTERNS] [--fund F]`), the events after the log's head when it was \
                    added, of its types and fund: one at a time in position order, at least once, \
                    retried with a doubling jittered pause until a 2xx answer (a subscription is \
                    disabled after 20 failed attempts in a row). Signed per the Standard Webhooks \
                    specification (headers `webhook-id`, `webhook-timestamp`, `webhook-signature`).",
                "servers": [{"$ref": "#/servers/webhookReceiver"}],
                "messages": webhook_messages,
            },
        },
        "operations": {
            "receiveEventStream": {
                "action": "receive",
                "channel": {"$ref": "#/channels/eventStream"},
                "summary": "Follow the log over HTTP.",
                "messages": sse_refs,
            },
            "receiveRelay": {
                "action": "receive",
                "channel": {"$ref": "#/channels/relay"},
                "summary": "Consume the log from JetStream.",
                "messages": relay_refs,
            },
            "receiveWebhook": {
                "action": "receive",
                "channel": {"$ref": "#/channels/webhook"},
                "summary": "Receive the log's events as signed webhook deliveries.",
                "messages": webhook_refs,
            },
        },
        "components": {
            "schemas": schemas,
            "messages": components_messages,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A token of `grantflow token add`."},
            },
        },
    })
}

fn schema_ref(name: &str) -> String {
    format!("#/components/schemas/{name}")
}

/// A catalog schema as a component: without `$schema`, its `$defs` moved into `defs` (the
/// catalog's definitions are shared by name) and its references pointed there.
fn component(mut schema: Value, defs: &mut Map<String, Value>) -> Value {
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        if let Some(Value::Object(own)) = map.remove("$defs") {
            for (name, mut def) in own {
                point_refs(&mut def);
                defs.entry(name).or_insert(def);
            }
        }
    }
    point_refs(&mut schema);
    schema
}

fn point_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref") {
                if let Some(name) = reference.strip_prefix("#/$defs/") {
                    *reference = schema_ref(name);
                }
            }
            map.values_mut().for_each(point_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(point_refs),
        _ => {}
    }
}

/// A CloudEvent of the relay (`grantflow_relay::cloud_event`) whose `data` is an envelope of
/// `event_type`.
fn cloud_event_schema(event_type: &str) -> Value {
    json!({
        "title": format!("{event_type} CloudEvent"),
        "type": "object",
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "pattern": "^[1-9][0-9]*$", "description": "The event's position."},
            "source": {"type": "string", "description": "`urn:grantflow:log:<hash of the log's first event>` unless `--source` names another."},
            "type": {"const": event_type},
            "subject": {"type": "string", "description": "The envelope's `stream`."},
            "time": {"type": "string", "format": "date-time", "description": "The envelope's `recorded_at`."},
            "datacontenttype": {"const": "application/json"},
            "data": {"$ref": schema_ref(&format!("event.{event_type}"))},
        },
        "required": ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"],
        "additionalProperties": false,
    })
}
