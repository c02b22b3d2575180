//! The OpenAPI description made exact: utoipa describes the routes and their parameters from
//! the handlers ([`crate::routes::api_router`]); this module completes the document with what
//! the handlers' annotations cannot say:
//!
//! - the body of `POST /v1/commands`: the command schema the parser is held to
//!   ([`grantflow_domain::command_schema`]), a `oneOf` of every command discriminated by
//!   `command`, without `actor` (over HTTP the actor is the token's), with examples;
//! - each answer's schema: the figures' ([`grantflow_domain::view::view_schemas`]), the
//!   envelope's ([`envelope_schema`]), a command's result, a checkpoint, a verification, a page
//!   of the log, an audit trail;
//! - every status each operation can answer, each with the error body and an example: 401
//!   where a token is needed, 400 where there is a query string, 500 everywhere, 503 (`timeout`
//!   on every route behind the request time limit, `busy` on expensive reads, `unavailable`);
//! - links from the list operations to the read operations (a grant of the list to its figures
//!   and its audit trail, a checkpoint to its verification, a page of the log to the next).

use grantflow_domain::command_schema::{command_schema, member_name};
use grantflow_domain::view::view_schemas;
use grantflow_domain::COMMAND_NAMES;
use grantflow_store::envelope::{envelope_schema, HASH_PATTERN};
use serde_json::{json, Map, Value};

/// Where the OpenAPI document keeps its schemas.
const COMPONENTS: &str = "#/components/schemas/";

/// Completes utoipa's document (see the module's documentation).
pub(crate) fn complete(document: &mut Value) {
    let mut schemas = Map::new();
    add_command_schemas(&mut schemas);
    for (name, schema) in view_schemas() {
        schemas.insert(name, schema);
    }
    add_answer_schemas(&mut schemas);
    for schema in schemas.values_mut() {
        to_components(schema);
    }
    // Every code an error body may carry: the commands' and the HTTP layer's.
    if let Some(code) = document.pointer_mut("/components/schemas/ErrorDetail/properties/code") {
        let codes: Vec<&str> = grantflow_domain::ERROR_CODES
            .iter()
            .map(|code| code.as_str())
            .chain(crate::error::HTTP_ERROR_CODES.iter().copied())
            .collect();
        code["enum"] = json!(codes);
    }
    if let Some(Value::Object(existing)) = document.pointer_mut("/components/schemas") {
        for (name, schema) in schemas {
            existing.insert(name, schema);
        }
    }
    if let Some(Value::Object(paths)) = document.get_mut("paths") {
        for (path, item) in paths.iter_mut() {
            let Value::Object(item) = item else { continue };
            for (method, operation) in item.iter_mut() {
                complete_operation(method, path, operation);
            }
        }
    }
}

/// `#/$defs/X` becomes `#/components/schemas/X`; a standalone schema's `$schema` goes.
fn to_components(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("$schema");
            if let Some(Value::String(reference)) = map.get_mut("$ref") {
                if let Some(name) = reference.strip_prefix("#/$defs/") {
                    *reference = format!("{COMPONENTS}{name}");
                }
            }
            map.values_mut().for_each(to_components);
        }
        Value::Array(items) => items.iter_mut().for_each(to_components),
        _ => {}
    }
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{COMPONENTS}{name}") })
}

/// The command schema's definitions, each member without `actor`, and `Command`, their
/// union discriminated by `command`.
fn add_command_schemas(schemas: &mut Map<String, Value>) {
    let schema = command_schema();
    let Some(Value::Object(defs)) = schema.get("$defs") else {
        return;
    };
    for (name, def) in defs {
        if name == "Actor" {
            continue;
        }
        let mut def = def.clone();
        if let Some(Value::Object(properties)) = def.get_mut("properties") {
            properties.remove("actor");
        }
        schemas.insert(name.clone(), def);
    }
    let mapping: Map<String, Value> = COMMAND_NAMES
        .iter()
        .map(|name| {
            (
                name.to_string(),
                json!(format!("{COMPONENTS}{}", member_name(name))),
            )
        })
        .collect();
    let one_of: Vec<Value> = COMMAND_NAMES
        .iter()
        .map(|name| reference(&member_name(name)))
        .collect();
    schemas.insert(
        "Command".into(),
        json!({
            "description": "One command (docs/commands.md), discriminated by `command`; no `actor`: over HTTP it is the token's. A command the schema allows may still be refused by the rules: 422 with the rule's code, 409 for `version_conflict` and `command_id_conflict`, and 400 for what a schema cannot say (`future_date`: a date of something that happened after today; a sector list whose percentages do not sum to 100 or that names a code twice; `ends_on` before `starts_on`, or before the grant's `starts_on`; `due_on` before `period_end`; `invalid_amount`: more decimals than the fund's currency has).",
            "oneOf": one_of,
            "discriminator": {"propertyName": "command", "mapping": mapping},
        }),
    );
}

/// The schemas of the answers that are not figures.
fn add_answer_schemas(schemas: &mut Map<String, Value>) {
    let position = json!({"type": "integer", "format": "int64", "minimum": 0});
    let hash = json!({"type": "string", "pattern": HASH_PATTERN});
    let mut envelope = envelope_schema();
    if let Value::Object(map) = &mut envelope {
        map.insert("title".into(), json!("Envelope"));
    }
    schemas.insert("Envelope".into(), envelope);
    schemas.insert(
        "EventRef".into(),
        json!({
            "description": "Where one event of the command landed.",
            "type": "object",
            "properties": {
                "position": position,
                "stream": {"type": "string"},
                "version": {"type": "integer", "format": "int64", "minimum": 1},
                "type": {"type": "string"},
            },
            "required": ["position", "stream", "version", "type"],
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "CommandResult".into(),
        json!({
            "description": "An accepted command (docs/commands.md, \"Results\"): its events; `replayed` when the same `command_id` and body were accepted before (nothing appended again).",
            "type": "object",
            "properties": {
                "ok": {"const": true},
                "command_id": {"type": "string"},
                "events": {"type": "array", "items": reference("EventRef")},
                "replayed": {"const": true},
            },
            "required": ["ok", "command_id", "events"],
            "additionalProperties": false,
        }),
    );
    let checkpoint_properties = json!({
        "position": position,
        "hash": hash,
        "recorded_at": {"type": "string", "description": "The head event's recorded time (empty for an empty log)."},
    });
    schemas.insert(
        "Checkpoint".into(),
        json!({
            "description": "The head of the log (`grantflow checkpoint`); `key_id` and `signature` when the server signs (`serve --signing-key`).",
            "type": "object",
            "properties": merge(&checkpoint_properties, &json!({
                "key_id": {"type": "string"},
                "signature": {"type": "string"},
            })),
            "required": ["position", "hash", "recorded_at"],
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "VerifyReport".into(),
        json!({
            "description": "What `grantflow verify --json` reports, plus `ok`.",
            "type": "object",
            "properties": {
                "ok": {"type": "boolean"},
                "events": {"type": "integer", "format": "int64", "minimum": 0},
                "head": {
                    "type": "object",
                    "properties": checkpoint_properties,
                    "required": ["position", "hash", "recorded_at"],
                    "additionalProperties": false,
                },
                "failure": {
                    "type": ["object", "null"],
                    "properties": {
                        "position": position,
                        "detail": {"type": "string"},
                        "code": {"type": "string"},
                    },
                    "required": ["position", "detail"],
                    "additionalProperties": false,
                },
                "checkpoint_checked": {"type": "boolean"},
            },
            "required": ["ok", "events", "head", "failure", "checkpoint_checked"],
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "EventsPage".into(),
        json!({
            "description": "A page of the log: the envelopes (their exact hashed bytes with their hash), `next` (ask `from=next` to go on) and the head's position.",
            "type": "object",
            "properties": {
                "events": {"type": "array", "items": reference("Envelope")},
                "next": position,
                "head": position,
            },
            "required": ["events", "next", "head"],
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "AuditEntry".into(),
        json!({
            "description": "One event of a grant's or fund's stream with who, when, which command, and the figures before and after it (`grantflow audit ID --json`).",
            "type": "object",
            "properties": {
                "position": position,
                "recorded_at": {"type": "string"},
                "actor": {"type": "string"},
                "command": {"type": "string"},
                "command_id": {"type": "string"},
                "type": {"type": "string"},
                "payload": {"type": "object"},
                "changes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string"},
                            "before": {"type": "string"},
                            "after": {"type": "string"},
                        },
                        "required": ["field", "before", "after"],
                        "additionalProperties": false,
                    },
                },
                "before": {"type": ["object", "null"], "description": "Every figure before the event (null before the stream began)."},
                "after": {"type": "object"},
            },
            "required": ["position", "recorded_at", "actor", "command", "command_id", "type", "payload", "changes", "before", "after"],
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "Reports".into(),
        json!({
            "type": "object",
            "properties": {"reports": {"type": "array", "items": reference("ReportRow")}},
            "required": ["reports"],
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "SchemaIndex".into(),
        json!({
            "description": "The event catalog: the envelope's schema and every event type at every schema version with its payload schema's path.",
            "type": "object",
            "properties": {
                "envelope": {"type": "string"},
                "events": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string"},
                            "version": {"type": "integer", "format": "int32", "minimum": 1},
                            "url": {"type": "string"},
                        },
                        "required": ["type", "version", "url"],
                        "additionalProperties": false,
                    },
                },
            },
            "required": ["envelope", "events"],
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "Health".into(),
        json!({
            "type": "object",
            "properties": {"ok": {"const": true}},
            "required": ["ok"],
            "additionalProperties": false,
        }),
    );
}

fn merge(a: &Value, b: &Value) -> Value {
    let mut out = a.as_object().cloned().unwrap_or_default();
    for (key, value) in b.as_object().into_iter().flatten() {
        out.insert(key.clone(), value.clone());
    }
    Value::Object(out)
}

/// The schema and example of an operation's 200 answer, and its links.
fn success(method: &str, path: &str) -> Option<(Value, Option<Value>, Option<Value>)> {
    let answer = match (method, path) {
        ("post", "/v1/commands") => (
            reference("CommandResult"),
            Some(
                json!({"ok": true, "command_id": "tranche-1-iom", "events": [{"position": 10, "stream": "grant-MEX-2012-01", "version": 4, "type": "grant.disbursement_recorded"}]}),
            ),
            None,
        ),
        ("get", "/v1/grants") => (
            json!({"type": "array", "items": reference("GrantView")}),
            None,
            Some(json!({
                "GetGrant": {
                    "operationId": "get_grant",
                    "parameters": {"id": "$response.body#/0/grant"},
                    "description": "The first grant's figures (any grant of the list by its `grant`).",
                },
                "GetGrantAudit": {
                    "operationId": "grant_audit",
                    "parameters": {"id": "$response.body#/0/grant"},
                    "description": "The first grant's audit trail.",
                },
                "GetFund": {
                    "operationId": "get_fund",
                    "parameters": {"id": "$response.body#/0/fund"},
                    "description": "The first grant's fund.",
                },
            })),
        ),
        ("get", "/v1/grants/{id}") => (
            reference("GrantView"),
            None,
            Some(json!({
                "GetGrantAudit": {"operationId": "grant_audit", "parameters": {"id": "$response.body#/grant"}},
                "GetFund": {"operationId": "get_fund", "parameters": {"id": "$response.body#/fund"}},
                "ListReports": {"operationId": "list_reports", "parameters": {"grant": "$response.body#/grant"}},
            })),
        ),
        ("get", "/v1/funds/{id}") => (
            reference("FundView"),
            None,
            Some(json!({
                "GetFundAudit": {"operationId": "fund_audit", "parameters": {"id": "$response.body#/fund"}},
                "ListGrants": {"operationId": "list_grants", "parameters": {"fund": "$response.body#/fund"}},
                "ListReports": {"operationId": "list_reports", "parameters": {"fund": "$response.body#/fund"}},
            })),
        ),
        ("get", "/v1/grants/{id}/audit") | ("get", "/v1/funds/{id}/audit") => (
            json!({"type": "array", "items": reference("AuditEntry")}),
            None,
            None,
        ),
        ("get", "/v1/reports") => (
            reference("Reports"),
            Some(
                json!({"reports": [{"grant": "MEX-2012-01", "report": "PR-2013", "kind": "progress", "period_end": "2013-12-31", "due_on": "2014-03-31", "status": "accepted"}]}),
            ),
            Some(json!({
                "GetGrant": {
                    "operationId": "get_grant",
                    "parameters": {"id": "$response.body#/reports/0/grant"},
                    "description": "The first report's grant.",
                },
            })),
        ),
        ("get", "/v1/events") => (
            reference("EventsPage"),
            None,
            Some(json!({
                "NextPage": {
                    "operationId": "list_events",
                    "parameters": {"from": "$response.body#/next"},
                    "description": "The next page of the log.",
                },
            })),
        ),
        ("get", "/v1/checkpoint") => (
            reference("Checkpoint"),
            Some(
                json!({"position": 41, "hash": "3f7a".repeat(16), "recorded_at": "2026-11-29T10:00:00.000000Z"}),
            ),
            Some(json!({
                "Verify": {
                    "operationId": "verify",
                    "parameters": {"position": "$response.body#/position", "hash": "$response.body#/hash"},
                    "description": "Verify the log against this checkpoint.",
                },
            })),
        ),
        ("get", "/v1/verify") => (reference("VerifyReport"), None, None),
        ("get", "/v1/schemas") => (
            reference("SchemaIndex"),
            None,
            Some(json!({
                "GetPayloadSchema": {
                    "operationId": "get_payload_schema",
                    "parameters": {
                        "type": "$response.body#/events/0/type",
                        "version": "$response.body#/events/0/version",
                    },
                    "description": "The first event type's payload schema.",
                },
            })),
        ),
        ("get", "/healthz") => (reference("Health"), Some(json!({"ok": true})), None),
        ("get", "/v1/events/stream") => (
            json!({
                "description": "One event of the stream (after a first `retry: 1000`; keep-alive comments between events).",
                "type": "object",
                "properties": {
                    "id": {"type": "string", "pattern": "^[1-9][0-9]*$", "description": "The event's position."},
                    "event": {"type": "string", "description": "The event's type, e.g. `grant.approved`."},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "description": "The envelope (`Envelope`), or with `format=cloudevents` a CloudEvent 1.0 whose `data` is the envelope.",
                    },
                    "retry": {"type": "integer", "minimum": 0},
                },
                "required": ["id", "event", "data"],
            }),
            None,
            None,
        ),
        _ => return None,
    };
    Some(answer)
}

/// Examples of commands, from the worked example (docs/domain.md).
fn command_examples() -> Value {
    json!({
        "register-fund": {"summary": "A fund (finance)", "value": {
            "command": "register-fund", "fund": "UNTFHS", "name": "UN Trust Fund for Human Security",
            "currency": "USD", "admin_fee_percent": "1", "iati_org_ref": "XM-DAC-41301",
            "command_id": "register-untfhs",
        }},
        "submit-proposal": {"summary": "A proposal (secretariat)", "value": {
            "command": "submit-proposal", "fund": "UNTFHS", "grant": "MEX-2012-01",
            "title": "Protecting migrants in transit in Chiapas and Oaxaca", "amount": "3209232.40",
            "country": "MX", "regions": ["Chiapas", "Oaxaca"],
            "sectors": [{"code": "15190", "percentage": "100"}],
        }},
        "approve-grant": {"summary": "An approval (approver)", "value": {
            "command": "approve-grant", "grant": "MEX-2012-01", "decided_on": "2012-09-27",
        }},
        "assign-agency": {"summary": "An agency with its budget (secretariat)", "value": {
            "command": "assign-agency", "grant": "MEX-2012-01", "agency": "IOM",
            "allocation": "500000.00", "lead": true,
            "budget": {"staff": "300000.00", "travel": "167289.72", "indirect": "32710.28"},
        }},
        "record-disbursement": {"summary": "A tranche (finance)", "value": {
            "command": "record-disbursement", "grant": "MEX-2012-01", "agency": "IOM",
            "amount": "100000.00", "paid_on": "2012-10-01", "command_id": "tranche-1-iom",
            "expected_version": 3,
        }},
    })
}

/// The body of an error answer, with an example.
fn error_response(description: &str, code: &str, example_message: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {
            "schema": reference("ErrorBody"),
            "example": {"ok": false, "command_id": null, "error": {"code": code, "message": example_message}},
        }},
    })
}

/// The answer `status` as documented, else an error answer with `description`; with an
/// example body of `code` either way.
fn ensure(
    responses: &mut Map<String, Value>,
    status: &str,
    description: &str,
    code: &str,
    message: &str,
) {
    let entry = responses
        .entry(status.to_string())
        .or_insert_with(|| error_response(description, code, message));
    if let Some(media) = entry.pointer_mut("/content/application~1json") {
        if media.get("example").is_none() {
            media["example"] = json!({"ok": false, "command_id": null, "error": {"code": code, "message": message}});
        }
    }
}

fn complete_operation(method: &str, path: &str, operation: &mut Value) {
    // A parameter is given or not; it is never `null` (utoipa writes an optional header's
    // type as `[T, "null"]`).
    if let Some(Value::Array(parameters)) = operation.get_mut("parameters") {
        for parameter in parameters.iter_mut() {
            // The same identifier as a fund's `iati_org_ref`, checked the same way.
            if parameter["name"] == "reporting_org" {
                let description = parameter["description"].clone();
                parameter["schema"] = reference("IatiOrgRef");
                parameter["description"] = description;
            }
            if let Some(Value::Array(types)) = parameter.pointer_mut("/schema/type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    parameter["schema"]["type"] = only;
                }
            }
        }
    }
    if (method, path) == ("post", "/v1/commands") {
        operation["requestBody"]["content"]["application/json"] = json!({
            "schema": reference("Command"),
            "examples": command_examples(),
        });
    }
    let secured = operation.get("security").is_some();
    let has_query = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|parameters| parameters.iter().any(|p| p["in"] == "query"));
    let Some(Value::Object(responses)) = operation.get_mut("responses") else {
        return;
    };
    if let Some((schema, example, links)) = success(method, path) {
        if let Some(Value::Object(ok)) = responses.get_mut("200") {
            let mut media = json!({"schema": schema});
            if let Some(example) = example {
                media["example"] = example;
            }
            let media_type = if path == "/v1/events/stream" {
                "text/event-stream"
            } else {
                "application/json"
            };
            ok.insert("content".into(), json!({ media_type: media }));
            if let Some(links) = links {
                ok.insert("links".into(), links);
            }
        }
    }
    if has_query || path == "/v1/commands" {
        ensure(
            responses,
            "400",
            "bad_request: an unknown query parameter or a value the server cannot use",
            if path == "/v1/commands" {
                "malformed_command"
            } else {
                "bad_request"
            },
            "a sentence naming the parameter or field and what it must be",
        );
    }
    if secured {
        ensure(
            responses,
            "401",
            "unauthorized: a missing, malformed, unknown or revoked token",
            "unauthorized",
            "a bearer token is needed: Authorization: Bearer <token>",
        );
        if let Some(Value::Object(unauthorized)) = responses.get_mut("401") {
            unauthorized.insert(
                "headers".into(),
                json!({"WWW-Authenticate": {"description": "Always `Bearer`.", "required": true, "schema": {"type": "string", "const": "Bearer"}}}),
            );
        }
    }
    for (status, code, message) in [
        ("403", "forbidden", "the token's roles (integrator) do not allow this; it needs auditor or admin"),
        ("404", "not_found", "no grant `MEX-2012-99`"),
        ("409", "version_conflict", "grant MEX-2012-01 is at version 5, not 4"),
        ("413", "payload_too_large", "the request body is larger than 1048576 bytes; send one command per request"),
        ("422", "over_disbursement", "UNDP holds 150,000.00 USD of an allocation of 200,000.00 USD; 100,000.00 USD more would exceed it by 50,000.00 USD"),
        ("429", "too_many_streams", "this token holds 16 open event streams already"),
    ] {
        if responses.contains_key(status) {
            ensure(responses, status, "", code, message);
        }
    }
    if responses.contains_key("503") {
        let (code, message) = if path == "/v1/events/stream" {
            ("too_many_streams", "256 event streams are open already")
        } else {
            ("busy", "too many expensive reads at once; retry after 1 s")
        };
        ensure(responses, "503", "", code, message);
    }
    ensure(
        responses,
        "500",
        "internal: an unexpected failure (the detail is in the server's log, never in the answer)",
        "internal",
        "internal server error; the detail is in the server's log",
    );
    if let Some(Value::Object(unavailable)) = responses.get_mut("503") {
        if let Some(Value::String(description)) = unavailable.get_mut("description") {
            description.push_str("; also `timeout` (the request took over 30 s) or `unavailable` (the server is shutting down)");
        }
    } else {
        responses.insert(
            "503".into(),
            error_response(
                "timeout: the request took over 30 s (a command may still take effect: resend it with its command_id); unavailable: the server is shutting down",
                "timeout",
                "the request took longer than 30 s; a command may still take effect: retry it with the same command_id",
            ),
        );
    }
    if let Some(Value::Object(unavailable)) = responses.get_mut("503") {
        unavailable.insert(
            "headers".into(),
            json!({"Retry-After": {"description": "With `busy`: seconds to wait before retrying.", "required": false, "schema": {"type": "integer", "minimum": 0}}}),
        );
    }
    if let Some(Value::Object(too_many)) = responses.get_mut("429") {
        too_many.insert(
            "headers".into(),
            json!({"Retry-After": {"description": "Seconds to wait before retrying.", "required": true, "schema": {"type": "integer", "minimum": 0}}}),
        );
    }
}
