//! Questions about the past: figures as of a log position or a recorded time, and the audit
//! trail of a grant or fund with the figures before and after every event.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use grantflow_domain::{command_of_event, World};
use grantflow_store::EventStore;
use serde::Serialize;
use serde_json::Value;

use crate::{Engine, EngineError, ReadModel, FOLD_PAGE_EVENTS};

/// Which moment a query is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsOf {
    /// Now (the durable head).
    Head,
    /// After the event at this position (0: before the first event).
    Position(u64),
    /// After every event recorded at or before this time (`recorded_at` order).
    Time(String),
}

impl AsOf {
    /// From the CLI's `--at` and `--as-of` (at most one of them).
    pub fn from_options(at: Option<u64>, as_of: Option<&str>) -> Result<AsOf, EngineError> {
        match (at, as_of) {
            (Some(_), Some(_)) => Err(EngineError::BadQuery(
                "give either a position (--at) or a time (--as-of), not both".into(),
            )),
            (Some(position), None) => Ok(AsOf::Position(position)),
            (None, Some(time)) => Ok(AsOf::Time(normalize_time(time)?)),
            (None, None) => Ok(AsOf::Head),
        }
    }
}

/// Parses an RFC 3339 time and writes it as the log does (UTC, microseconds), truncating
/// finer precision so that string order is time order.
pub fn normalize_time(text: &str) -> Result<String, EngineError> {
    let parsed = DateTime::parse_from_rfc3339(text).map_err(|error| {
        EngineError::BadQuery(format!(
            "`{text}` is not an RFC 3339 time such as 2012-09-27T00:00:00Z: {error}"
        ))
    })?;
    Ok(parsed
        .with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// The read model as of a moment: the live one for now, else a fold of the log's prefix.
pub async fn model_as_of(engine: &Engine, as_of: &AsOf) -> Result<ReadModel, EngineError> {
    let current = engine.snapshot();
    // A time from anywhere (not only `from_options`) is read as a time, never as text.
    let as_of = match as_of {
        AsOf::Time(time) => AsOf::Time(normalize_time(time)?),
        other => other.clone(),
    };
    match as_of {
        AsOf::Head => Ok(current),
        AsOf::Position(position) if position >= current.position => Ok(current),
        _ => {
            let mut model = ReadModel::default();
            fold_until(engine.store().as_ref(), &mut model, &as_of).await?;
            Ok(model)
        }
    }
}

/// The read model as of a moment, enough to answer about `subject`: its figures (and, for a
/// grant, its details) are those of [`model_as_of`], but only the streams they depend on are
/// read. A grant's figures follow from its own stream alone; a fund's from its stream and its
/// grants' streams, or, where the fund checkpoints reach ([`crate::checkpoint`]), from the
/// checkpoint at or before the moment and the few events after it. So the cost grows with
/// the subject's history, not with the log's. Other grants and funds in the returned model
/// are incomplete: read only `subject` from it.
pub async fn subject_as_of(
    engine: &Engine,
    subject: &Subject,
    as_of: &AsOf,
) -> Result<ReadModel, EngineError> {
    let as_of = match as_of {
        AsOf::Time(time) => AsOf::Time(normalize_time(time)?),
        other => other.clone(),
    };
    let head = engine.with_model(|model| model.position);
    let store = engine.store().as_ref();
    let until = match &as_of {
        AsOf::Head => head,
        AsOf::Position(position) => (*position).min(head),
        AsOf::Time(time) => position_at_time(store, head, time).await?,
    };
    if let Subject::Fund(fund) = subject {
        if until < head {
            let checkpointed = crate::checkpoint::fund_as_of(
                store,
                &engine.read_model,
                &engine.checkpoints,
                fund,
                until,
            )
            .await?;
            if let Some(model) = checkpointed {
                return Ok(model);
            }
        }
    }
    // The streams, from the live model (a grant or fund created after the moment has no
    // event up to it, and one that does not exist now never did). A fund's are found among
    // all grants: only when no checkpoint answered.
    let streams = engine.with_model(|model| subject_streams(&model.world, subject));
    let mut model = ReadModel::default();
    for envelope in &streams_until(store, &streams, until).await? {
        model.apply(envelope)?;
    }
    model.position = until;
    Ok(model)
}

/// The streams a subject's figures depend on: a grant's own; a fund's and its grants'.
fn subject_streams(world: &World, subject: &Subject) -> Vec<String> {
    match subject {
        Subject::Grant(id) => vec![format!("grant-{id}")],
        Subject::Fund(id) => {
            let mut streams = vec![format!("fund-{id}")];
            streams.extend(
                world
                    .fund_grant_ids(id)
                    .into_iter()
                    .map(|grant| format!("grant-{grant}")),
            );
            streams
        }
    }
}

/// The events of `streams` up to position `until`, in log order.
async fn streams_until(
    store: &dyn EventStore,
    streams: &[String],
    until: u64,
) -> Result<Vec<grantflow_store::Envelope>, EngineError> {
    let mut events = Vec::new();
    for stream in streams {
        let mut next_version = 1;
        'stream: loop {
            let page = store
                .read_stream(stream, next_version, FOLD_PAGE_EVENTS)
                .await?;
            if page.is_empty() {
                break;
            }
            next_version += page.len() as u64;
            for envelope in page {
                if envelope.position > until {
                    break 'stream;
                }
                events.push(envelope);
            }
        }
    }
    events.sort_unstable_by_key(|envelope| envelope.position);
    Ok(events)
}

/// The last position recorded at or before `time` (0 when none is): a binary search over
/// the log, whose `recorded_at` never goes back.
async fn position_at_time(
    store: &dyn EventStore,
    head: u64,
    time: &str,
) -> Result<u64, EngineError> {
    let (mut low, mut high) = (0u64, head);
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        let page = store.read(middle, 1).await?;
        let Some(envelope) = page.first() else {
            return Err(EngineError::BadQuery(format!(
                "the log has no event at position {middle} below its head {head}"
            )));
        };
        if envelope.recorded_at.as_str() <= time {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    Ok(low)
}

/// Folds the log from the model's position while events are within `as_of`.
async fn fold_until(
    store: &dyn EventStore,
    model: &mut ReadModel,
    as_of: &AsOf,
) -> Result<(), EngineError> {
    let head = store.head().await?.position;
    let end = match as_of {
        AsOf::Position(position) => (*position).min(head),
        _ => head,
    };
    while model.position < end {
        let want = (end - model.position).min(FOLD_PAGE_EVENTS as u64) as usize;
        let page = store.read(model.position + 1, want).await?;
        if page.is_empty() {
            break;
        }
        for envelope in &page {
            if let AsOf::Time(time) = as_of {
                if envelope.recorded_at.as_str() > time.as_str() {
                    return Ok(());
                }
            }
            model.apply(envelope)?;
        }
    }
    Ok(())
}

/// One line of an audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Log position.
    pub position: u64,
    /// When the engine recorded it.
    pub recorded_at: String,
    /// Who issued the command.
    pub actor: String,
    /// The command (kebab-case) that appended it.
    pub command: String,
    /// The command id.
    pub command_id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's own fields (reason, dates, amounts).
    pub payload: Value,
    /// The figures that changed: field, before, after.
    pub changes: Vec<Change>,
    /// All figures before the event (null before the stream began).
    pub before: Value,
    /// All figures after it.
    pub after: Value,
}

/// One changed figure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The figure, e.g. `allocated` or `agencies.IOM.disbursed`.
    pub field: String,
    /// Its value before (empty when it did not exist).
    pub before: String,
    /// Its value after (empty when it no longer exists).
    pub after: String,
}

/// The subject of an audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A grant id.
    Grant(String),
    /// A fund id.
    Fund(String),
}

impl Subject {
    /// Resolves an id (or a stream name `grant-X` / `fund-X`) against the current world.
    pub fn resolve(world: &World, id: &str) -> Result<Subject, EngineError> {
        if world.grant_view(id).is_some() {
            return Ok(Subject::Grant(id.to_string()));
        }
        if world.fund_view(id).is_some() {
            return Ok(Subject::Fund(id.to_string()));
        }
        if let Some(grant) = id.strip_prefix("grant-") {
            if world.grant_view(grant).is_some() {
                return Ok(Subject::Grant(grant.to_string()));
            }
        }
        if let Some(fund) = id.strip_prefix("fund-") {
            if world.fund_view(fund).is_some() {
                return Ok(Subject::Fund(fund.to_string()));
            }
        }
        Err(EngineError::NotFound(format!(
            "no grant or fund with id `{id}`"
        )))
    }

    /// The stream whose events make the trail.
    pub fn stream(&self) -> String {
        match self {
            Subject::Grant(id) => format!("grant-{id}"),
            Subject::Fund(id) => format!("fund-{id}"),
        }
    }

    fn view(&self, world: &World) -> Value {
        let view = match self {
            Subject::Grant(id) => world.grant_view(id).map(serde_json::to_value),
            Subject::Fund(id) => world.fund_view(id).map(serde_json::to_value),
        };
        match view {
            Some(Ok(value)) => value,
            _ => Value::Null,
        }
    }
}

/// The audit trail of a grant or fund: every event of its stream, with the figures before
/// and after it (figures include the effect of every earlier event of the log).
///
/// A grant's figures follow from its own stream alone (no event of another stream changes
/// them), so a grant's trail reads that stream only; a fund's figures also count its grants'
/// movements, so its trail reads its stream and its grants'. Either way the cost grows with
/// the subject's history, not with the log.
pub async fn audit_trail(
    engine: &Engine,
    subject: &Subject,
) -> Result<Vec<AuditEntry>, EngineError> {
    match subject {
        Subject::Grant(_) => grant_trail(engine, subject).await,
        Subject::Fund(_) => folded_trail(engine, subject).await,
    }
}

/// One stream's trail, folding that stream's events only.
async fn grant_trail(engine: &Engine, subject: &Subject) -> Result<Vec<AuditEntry>, EngineError> {
    let store = engine.store().as_ref();
    let stream = subject.stream();
    let mut model = ReadModel::default();
    let mut entries = Vec::new();
    let mut next_version = 1;
    loop {
        let page = store
            .read_stream(&stream, next_version, FOLD_PAGE_EVENTS)
            .await?;
        if page.is_empty() {
            break;
        }
        next_version += page.len() as u64;
        for envelope in &page {
            entries.push(audit_entry(&mut model, subject, envelope)?);
        }
    }
    Ok(entries)
}

/// The trail entry of `envelope`, folded into `model`.
fn audit_entry(
    model: &mut ReadModel,
    subject: &Subject,
    envelope: &grantflow_store::Envelope,
) -> Result<AuditEntry, EngineError> {
    let before = subject.view(&model.world);
    let event = model.apply(envelope)?;
    let after = subject.view(&model.world);
    Ok(AuditEntry {
        position: envelope.position,
        recorded_at: envelope.recorded_at.clone(),
        actor: envelope.actor.clone(),
        command: command_of_event(&event).to_string(),
        command_id: envelope.command_id.clone(),
        event_type: envelope.event_type.clone(),
        payload: serde_json::from_str(&envelope.payload).unwrap_or(Value::Null),
        changes: changes(&before, &after),
        before,
        after,
    })
}

/// A fund's trail: its figures also count its grants' movements, so the fund's stream and
/// its grants' streams are folded together, in log order (not the whole log).
async fn folded_trail(engine: &Engine, subject: &Subject) -> Result<Vec<AuditEntry>, EngineError> {
    let store = engine.store().as_ref();
    let stream = subject.stream();
    let (head, streams) =
        engine.with_model(|model| (model.position, subject_streams(&model.world, subject)));
    let mut model = ReadModel::default();
    let mut entries = Vec::new();
    for envelope in &streams_until(store, &streams, head).await? {
        if envelope.stream == stream {
            entries.push(audit_entry(&mut model, subject, envelope)?);
        } else {
            model.apply(envelope)?;
        }
    }
    Ok(entries)
}

/// The figures that differ between two views (version and position left out).
pub fn changes(before: &Value, after: &Value) -> Vec<Change> {
    let before = flatten(before);
    let after = flatten(after);
    let mut fields: Vec<&String> = before.keys().chain(after.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter(|field| !matches!(field.as_str(), "version" | "position"))
        .filter_map(|field| {
            let old = before.get(field).cloned().unwrap_or_default();
            let new = after.get(field).cloned().unwrap_or_default();
            (old != new).then(|| Change {
                field: field.clone(),
                before: old,
                after: new,
            })
        })
        .collect()
}

/// Flattens a view: scalars by name; objects by path (`terms.admin_fee_percent`); lists of
/// records by their id (`agencies.<agency>.<field>`, `agencies.<agency>.budget.<category>.
/// expended`, `reports.<report>.status`, `documents.<document>.sha256`,
/// `pledges.<pledge>.paid`).
fn flatten(view: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    flatten_into(&mut out, "", view);
    out
}

/// The fields that name a record in a list of a view.
const RECORD_IDS: &[&str] = &["agency", "report", "document", "pledge", "category"];

fn flatten_into(out: &mut BTreeMap<String, String>, prefix: &str, value: &Value) {
    let path = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        Value::Object(object) => {
            for (key, value) in object {
                flatten_into(out, &path(key), value);
            }
        }
        Value::Array(items) if items.iter().all(Value::is_object) && !prefix.is_empty() => {
            for (index, item) in items.iter().enumerate() {
                let id_field = RECORD_IDS
                    .iter()
                    .find(|field| item.get(**field).is_some_and(Value::is_string));
                let (name, skip) = match id_field {
                    Some(field) => (
                        item[*field].as_str().unwrap_or("?").to_string(),
                        Some(*field),
                    ),
                    None => (index.to_string(), None),
                };
                if let Some(fields) = item.as_object() {
                    for (field, v) in fields.iter().filter(|(f, _)| Some(f.as_str()) != skip) {
                        flatten_into(out, &format!("{}.{field}", path(&name)), v);
                    }
                }
            }
        }
        other => {
            out.insert(prefix.to_string(), scalar(other));
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
