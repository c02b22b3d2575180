//! Events as CloudEvents 1.0 in structured JSON mode: what the JetStream relay publishes and
//! what the event stream sends with `?format=cloudevents`.

use crate::{Envelope, EventStore, StoreError};

/// The event as a CloudEvent 1.0 in structured JSON mode; `data` is the envelope's export
/// line, byte for byte.
pub fn cloud_event(source: &str, envelope: &Envelope) -> String {
    let head = serde_json::json!({
        "specversion": "1.0",
        "id": envelope.position.to_string(),
        "source": source,
        "type": envelope.event_type,
        "subject": envelope.stream,
        "time": envelope.recorded_at,
        "datacontenttype": "application/json",
    })
    .to_string();
    // `head` is a JSON object: replace its closing brace with the data member.
    let mut event = head;
    event.pop();
    event.push_str(",\"data\":");
    event.push_str(&envelope.to_line());
    event.push('}');
    event
}

/// The CloudEvents `source` of a log: `urn:grantflow:log:<hash of its first event>` (every
/// log starts with a different event, so two logs never share a source); `None` while the
/// log is empty.
pub async fn log_source(store: &dyn EventStore) -> Result<Option<String>, StoreError> {
    let first = store.read(1, 1).await?;
    Ok(first
        .first()
        .map(|envelope| format!("urn:grantflow:log:{}", hex::encode(envelope.hash))))
}
