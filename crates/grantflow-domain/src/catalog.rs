//! The event catalog (docs/events.md, "Catalog"): a JSON Schema (draft 2020-12) of every
//! event type's payload at every schema version, generated from the types of
//! [`crate::event`] with schemars. The field types that serialize by hand ([`Money`],
//! [`Date`], [`Percent`], [`Currency`], [`Country`], [`StoredBudget`]) describe exactly what
//! they write in their own `JsonSchema` impls; everything serde derives, schemars derives.
//!
//! Versions: schema 1 is a type's first shape and does not allow the fields the type gained
//! ([`gained_fields`]); schema 2 allows them and carries at least one (an event without any
//! is written with schema 1, [`Event::schema`]). Every payload schema is closed
//! (`additionalProperties: false`, as the decoder denies unknown fields) and self-contained:
//! the shared definitions it refers to are in its own `$defs`.
//!
//! [`Money`]: crate::Money
//! [`Date`]: crate::Date
//! [`Percent`]: crate::Percent
//! [`Currency`]: crate::Currency
//! [`Country`]: crate::Country
//! [`StoredBudget`]: crate::terms::StoredBudget
//! [`Event::schema`]: crate::Event::schema

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::event::{Event, COMMITMENT_CAUSES, EVENT_SCHEMA, EVENT_SCHEMA_EXTENDED, EVENT_TYPES};

/// The JSON Schema dialect of every schema of the catalog.
pub const JSON_SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The fields each type gained after its first shape: an event that carries one of them is
/// written with schema [`EVENT_SCHEMA_EXTENDED`], any other with [`EVENT_SCHEMA`]. A type not
/// listed has one shape.
pub const GAINED_FIELDS: &[(&str, &[&str])] = &[
    (
        "fund.registered",
        &[
            "admin_fee_percent",
            "indirect_max_percent",
            "tranche_threshold_percent",
            "hold_on_overdue_reports",
            "iati_org_ref",
        ],
    ),
    ("fund.contribution_recorded", &["pledge"]),
    ("grant.proposed", &["sectors"]),
    ("grant.revised", &["sectors"]),
    ("grant.agency_assigned", &["budget"]),
    ("grant.allocation_revised", &["budget"]),
    ("grant.expenditure_recorded", &["category"]),
];

/// The fields `event_type` gained after its first shape (empty for a type of one shape).
pub fn gained_fields(event_type: &str) -> &'static [&'static str] {
    GAINED_FIELDS
        .iter()
        .find(|(name, _)| *name == event_type)
        .map_or(&[], |(_, fields)| fields)
}

/// Every (event type, schema version) of the catalog, in the order of [`EVENT_TYPES`].
pub fn catalog_versions() -> Vec<(&'static str, u32)> {
    EVENT_TYPES
        .iter()
        .flat_map(|event_type| {
            let last = if gained_fields(event_type).is_empty() {
                EVENT_SCHEMA
            } else {
                EVENT_SCHEMA_EXTENDED
            };
            (EVENT_SCHEMA..=last).map(move |version| (*event_type, version))
        })
        .collect()
}

/// The name of a payload schema: `<type>.v<version>`, e.g. `grant.approved.v1` (the file
/// `docs/schemas/grant.approved.v1.json`).
pub fn payload_schema_name(event_type: &str, version: u32) -> String {
    format!("{event_type}.v{version}")
}

/// The JSON Schema of `event_type`'s payload at schema `version`, or `None` for a type or
/// version the catalog does not hold.
pub fn payload_schema(event_type: &str, version: u32) -> Option<Value> {
    if !catalog_versions().contains(&(event_type, version)) {
        return None;
    }
    let root = event_schema();
    let variant =
        root.get("oneOf")?.as_array()?.iter().find(|variant| {
            variant.pointer("/properties/type/const") == Some(&json!(event_type))
        })?;
    let mut payload = variant.pointer("/properties/payload")?.clone();
    strip_null(&mut payload);
    let object = payload.as_object_mut()?;
    let gained = gained_fields(event_type);
    let properties = object.get_mut("properties")?.as_object_mut()?;
    if version == EVENT_SCHEMA {
        for field in gained {
            properties.shift_remove(*field);
        }
    } else if gained.iter().any(|field| !properties.contains_key(*field)) {
        return None;
    }
    if event_type == "fund.commitment_revised" {
        if let Some(Value::Object(cause)) = properties.get_mut("cause") {
            cause.insert("enum".to_string(), json!(COMMITMENT_CAUSES));
        }
    }
    let required: Vec<Value> = object
        .get("required")
        .and_then(Value::as_array)
        .map(|fields| {
            fields
                .iter()
                .filter(|field| version != EVENT_SCHEMA || !gained.iter().any(|g| *field == g))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let properties = object.remove("properties")?;
    let mut defs = BTreeSet::new();
    collect_refs(&properties, root, &mut defs);

    let mut schema = Map::new();
    schema.insert("$schema".into(), json!(JSON_SCHEMA_DIALECT));
    schema.insert(
        "title".into(),
        json!(format!("{event_type} payload, schema {version}")),
    );
    let mut description = variant
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or(event_type)
        .to_string();
    match (gained, version) {
        ([], _) => {}
        (fields, EVENT_SCHEMA) => description.push_str(&format!(
            ". Schema 1: the first shape, without {}.",
            fields.join(", ")
        )),
        (fields, _) => description.push_str(&format!(
            ". Schema {version}: carries at least one of {}.",
            fields.join(", ")
        )),
    }
    schema.insert("description".into(), json!(description));
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), properties);
    schema.insert("required".into(), Value::Array(required));
    schema.insert("additionalProperties".into(), json!(false));
    if version != EVENT_SCHEMA {
        let any: Vec<Value> = gained
            .iter()
            .map(|field| json!({ "required": [field] }))
            .collect();
        schema.insert("anyOf".into(), Value::Array(any));
    }
    if !defs.is_empty() {
        let all = root.get("$defs").and_then(Value::as_object);
        let mut subset = Map::new();
        for name in defs {
            let mut def = all.and_then(|all| all.get(&name)).cloned()?;
            strip_null(&mut def);
            subset.insert(name, def);
        }
        schema.insert("$defs".into(), Value::Object(subset));
    }
    Some(Value::Object(schema))
}

/// The schema schemars generates for [`Event`] (every variant, adjacently tagged), once.
fn event_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut settings = schemars::generate::SchemaSettings::draft2020_12();
        settings.contract = schemars::generate::Contract::Serialize;
        settings
            .into_generator()
            .into_root_schema_for::<Event>()
            .to_value()
    })
}

/// Removes what allows `null`: grantflow leaves an absent optional field out, never writes
/// `null` (`anyOf: [X, {"type": "null"}]` becomes X, `"type": [T, "null"]` becomes T).
fn strip_null(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            let nullable_any = map.get("anyOf").and_then(Value::as_array).and_then(|any| {
                let rest: Vec<&Value> = any
                    .iter()
                    .filter(|v| v.get("type") != Some(&json!("null")))
                    .collect();
                (rest.len() == 1 && any.len() == 2).then(|| rest[0].clone())
            });
            if let Some(Value::Object(inner)) = nullable_any {
                map.remove("anyOf");
                for (key, item) in inner {
                    map.entry(key).or_insert(item);
                }
            }
            map.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// The names of the `$defs` that `value` refers to, with those they refer to in turn.
fn collect_refs(value: &Value, root: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
            {
                if out.insert(name.to_string()) {
                    if let Some(def) = root.pointer(&format!("/$defs/{name}")) {
                        collect_refs(def, root, out);
                    }
                }
            }
            map.values().for_each(|v| collect_refs(v, root, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, root, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_its_versions_and_nothing_else() {
        let versions = catalog_versions();
        assert_eq!(versions.len(), EVENT_TYPES.len() + GAINED_FIELDS.len());
        for (event_type, gained) in GAINED_FIELDS {
            assert!(EVENT_TYPES.contains(event_type), "{event_type}");
            assert!(versions.contains(&(event_type, EVENT_SCHEMA_EXTENDED)));
            assert!(!gained.is_empty());
        }
        for (event_type, version) in &versions {
            assert!(
                payload_schema(event_type, *version).is_some(),
                "{event_type} {version}"
            );
        }
        assert_eq!(payload_schema("grant.approved", 2), None);
        assert_eq!(payload_schema("grant.approved", 0), None);
        assert_eq!(payload_schema("grant.unknown", 1), None);
    }

    #[test]
    fn payload_schemas_are_closed_and_version_the_gained_fields() {
        for (event_type, version) in catalog_versions() {
            let schema = payload_schema(event_type, version).expect("a schema");
            let name = payload_schema_name(event_type, version);
            assert_eq!(schema["additionalProperties"], json!(false), "{name}");
            assert_eq!(schema["$schema"], json!(JSON_SCHEMA_DIALECT), "{name}");
            let properties = schema["properties"].as_object().expect("properties");
            let key = if event_type.starts_with("fund.") {
                "fund"
            } else {
                "grant"
            };
            assert!(properties.contains_key(key), "{name}");
            assert!(
                schema["required"]
                    .as_array()
                    .expect("required")
                    .contains(&json!(key)),
                "{name}"
            );
            for field in gained_fields(event_type) {
                assert_eq!(
                    properties.contains_key(*field),
                    version == EVENT_SCHEMA_EXTENDED,
                    "{name}: {field}"
                );
            }
            let text = schema.to_string();
            assert!(!text.contains("\"null\""), "{name} allows null: {text}");
            // Every reference resolves inside the schema itself.
            for (at, _) in text.match_indices("\"$ref\":\"#/$defs/") {
                let name_start = at + "\"$ref\":\"#/$defs/".len();
                let def = &text[name_start..name_start + text[name_start..].find('"').unwrap()];
                assert!(schema["$defs"].get(def).is_some(), "{name}: {def}");
            }
        }
    }

    #[test]
    fn hand_written_field_schemas_say_what_is_serialized() {
        let schema = payload_schema("grant.agency_assigned", 2).unwrap();
        let defs = &schema["$defs"];
        assert_eq!(defs["Money"]["type"], json!("string"));
        assert_eq!(
            defs["StoredBudget"]["required"].as_array().unwrap().len(),
            8
        );
        let proposed = payload_schema("grant.proposed", 2).unwrap();
        assert_eq!(proposed["$defs"]["Date"]["format"], json!("date"));
        let currencies = proposed["$defs"]["Currency"]["enum"].as_array().unwrap();
        assert_eq!(currencies.len(), crate::codes::CURRENCIES.len());
        let countries = proposed["$defs"]["Country"]["enum"].as_array().unwrap();
        assert_eq!(countries.len(), crate::codes::COUNTRIES.len());
        let revised = payload_schema("fund.commitment_revised", 1).unwrap();
        assert_eq!(
            revised["properties"]["cause"]["enum"],
            json!(COMMITMENT_CAUSES)
        );
    }
}
