//! The event catalog over HTTP through `oneshot`: `/v1/schemas`, `/v1/schemas/envelope`,
//! `/v1/schemas/{type}/{version}` and the AsyncAPI description at `/asyncapi.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use common::*;
use grantflow_domain::catalog::{catalog_versions, payload_schema};
use grantflow_domain::EVENT_TYPES;
use serde_json::{json, Value};

#[tokio::test]
async fn the_index_lists_every_type_and_version_and_each_url_answers_its_schema() {
    let h = harness().await;
    let (status, index) = h
        .call("GET", "/v1/schemas", Some(h.token("integrator")), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{index}");
    assert_eq!(index["envelope"], json!("/v1/schemas/envelope"));
    let listed: Vec<(String, u32)> = index["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                u32::try_from(e["version"].as_u64().unwrap()).unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u32)> = catalog_versions()
        .into_iter()
        .map(|(t, v)| (t.to_string(), v))
        .collect();
    assert_eq!(listed, expected);
    let types: BTreeSet<&str> = listed.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types.len(), EVENT_TYPES.len());
    for entry in index["events"].as_array().unwrap() {
        let url = entry["url"].as_str().unwrap();
        let (status, schema) = h.call("GET", url, Some(h.token("secretariat")), None).await;
        assert_eq!(status, StatusCode::OK, "{url}: {schema}");
        let (event_type, version) = (
            entry["type"].as_str().unwrap(),
            u32::try_from(entry["version"].as_u64().unwrap()).unwrap(),
        );
        assert_eq!(Some(schema), payload_schema(event_type, version), "{url}");
    }
    let (status, envelope) = h
        .call(
            "GET",
            "/v1/schemas/envelope",
            Some(h.token("auditor")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(envelope, grantflow_store::envelope::envelope_schema());
    assert_eq!(
        envelope["$schema"],
        json!("https://json-schema.org/draft/2020-12/schema")
    );
}

#[tokio::test]
async fn unknown_types_and_versions_are_not_found_and_a_token_is_needed() {
    let h = harness().await;
    let token = Some(h.token("integrator"));
    for path in [
        "/v1/schemas/grant.approved/2",
        "/v1/schemas/grant.approved/0",
        "/v1/schemas/grant.approved/one",
        "/v1/schemas/fund.registered/3",
        "/v1/schemas/grant.nothing/1",
        "/v1/schemas/grant.approved",
    ] {
        let (status, body) = h.call("GET", path, token, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["ok"], json!(false), "{path}");
        assert_eq!(body["error"]["code"], json!("not_found"), "{path}");
    }
    for path in [
        "/v1/schemas",
        "/v1/schemas/envelope",
        "/v1/schemas/grant.approved/1",
    ] {
        let (status, body) = h.call("GET", path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(body["error"]["code"], json!("unauthorized"));
    }
}

/// Every `$ref` of the document, with where it is.
fn refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                out.push((at.clone(), target));
            }
            for (key, item) in map {
                refs(item, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                refs(item, format!("{at}/{index}"), out);
            }
        }
        _ => {}
    }
}

fn resolve<'a>(document: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("{reference} is not local"));
    document
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{reference} does not resolve"))
}

#[tokio::test]
async fn asyncapi_describes_every_channel_with_resolvable_payloads() {
    let h = harness().await;
    let (status, bytes) = h.call_raw("GET", "/asyncapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let document: Value = serde_json::from_slice(&bytes).expect("valid JSON");
    assert_eq!(document, grantflow_server::asyncapi());
    assert_eq!(document["asyncapi"], json!("3.0.0"));

    // Every reference anywhere resolves inside the document.
    let mut all = Vec::new();
    refs(&document, String::new(), &mut all);
    assert!(all.len() > 100, "{} references", all.len());
    for (at, target) in &all {
        assert!(
            target.starts_with("#/") && document.pointer(&target[1..]).is_some(),
            "{at}: {target} does not resolve"
        );
    }

    let channels = document["channels"].as_object().unwrap();
    assert_eq!(
        channels.keys().collect::<Vec<_>>(),
        ["eventStream", "relay", "webhook"]
    );
    assert_eq!(
        channels["eventStream"]["address"],
        json!("/v1/events/stream")
    );
    for (name, channel) in channels {
        let messages = channel["messages"].as_object().unwrap();
        let types: Vec<&str> = messages.keys().map(String::as_str).collect();
        assert_eq!(types, EVENT_TYPES, "{name}");
        for (event_type, message) in messages {
            let message = resolve(&document, message["$ref"].as_str().unwrap());
            let payload = resolve(&document, message["payload"]["$ref"].as_str().unwrap());
            // The envelope of this type: the envelope's schema, the type fixed, one payload
            // schema per version.
            let envelope = if name == "relay" || name == "webhook" {
                assert_eq!(
                    message["contentType"],
                    json!("application/cloudevents+json")
                );
                let headers = resolve(&document, message["headers"]["$ref"].as_str().unwrap());
                let expected: &[&str] = if name == "relay" {
                    &["Nats-Msg-Id", "Nats-Expected-Last-Msg-Id", "Grantflow-Hash"]
                } else {
                    &["webhook-id", "webhook-timestamp", "webhook-signature"]
                };
                for header in expected {
                    assert!(headers["properties"].get(header).is_some(), "{header}");
                }
                assert_eq!(payload["properties"]["type"]["const"], json!(event_type));
                resolve(
                    &document,
                    payload["properties"]["data"]["$ref"].as_str().unwrap(),
                )
            } else {
                payload
            };
            let all_of = envelope["allOf"].as_array().unwrap();
            assert_eq!(all_of[0]["$ref"], json!("#/components/schemas/envelope"));
            assert_eq!(all_of[1]["properties"]["type"]["const"], json!(event_type));
            let shapes = all_of[1]["oneOf"].as_array().unwrap();
            let versions: Vec<u32> = catalog_versions()
                .into_iter()
                .filter(|(t, _)| t == event_type)
                .map(|(_, v)| v)
                .collect();
            assert_eq!(shapes.len(), versions.len(), "{event_type}");
            for (shape, version) in shapes.iter().zip(versions) {
                assert_eq!(shape["properties"]["schema"]["const"], json!(version));
                let schema = resolve(
                    &document,
                    shape["properties"]["payload"]["$ref"].as_str().unwrap(),
                );
                let catalog = payload_schema(event_type, version).unwrap();
                assert_eq!(
                    schema["properties"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .collect::<Vec<_>>(),
                    catalog["properties"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .collect::<Vec<_>>()
                );
                assert_eq!(schema["additionalProperties"], json!(false));
            }
        }
    }
}
