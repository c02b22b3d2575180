//! What both exports share: their error, and the fold of the log up to the export's moment.

use grantflow_domain::{Event, World};
use grantflow_engine::query::{normalize_time, AsOf};
use grantflow_engine::{EngineError, ReadModel, FOLD_PAGE_EVENTS};
use grantflow_store::{Envelope, EventStore, StoreError};

/// Errors of an export. Nothing is written before the log has been read and the options
/// checked, so an error other than [`ExportError::Io`] leaves the output untouched.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading or decoding the log failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Writing the output failed.
    #[error("writing the export failed: {0}")]
    Io(#[from] std::io::Error),
    /// A grant named in the options does not exist (as of the export's moment).
    #[error("no grant with id `{0}` (as of the export's moment)")]
    UnknownGrant(String),
    /// The export would hold no activity: IATI requires at least one.
    #[error("nothing to export: no fund is registered as of position {position}")]
    NothingToExport {
        /// The log position the export was taken at.
        position: u64,
    },
    /// An option is malformed (reporting org, generated time, as-of time).
    #[error("{0}")]
    BadOption(String),
}

impl From<StoreError> for ExportError {
    fn from(error: StoreError) -> Self {
        ExportError::Engine(EngineError::Store(error))
    }
}

/// Folds the log from position 1 up to `as_of`, calling `visit` with every envelope, its
/// event and the world after it. Returns the read model at the end (its `position` is the
/// last event folded in).
pub(crate) async fn fold_log<F>(
    store: &dyn EventStore,
    as_of: &AsOf,
    mut visit: F,
) -> Result<ReadModel, ExportError>
where
    F: FnMut(&Envelope, &Event, &World) -> Result<(), ExportError> + Send,
{
    let head = store.head().await?.position;
    let (end, until_time) = match as_of {
        AsOf::Head => (head, None),
        AsOf::Position(position) => ((*position).min(head), None),
        AsOf::Time(time) => (
            head,
            Some(normalize_time(time).map_err(|e| ExportError::BadOption(e.to_string()))?),
        ),
    };
    let mut model = ReadModel::default();
    while model.position < end {
        let want = (end - model.position).min(FOLD_PAGE_EVENTS as u64) as usize;
        let page = store.read(model.position + 1, want).await?;
        if page.is_empty() {
            return Err(EngineError::Corrupt {
                position: model.position + 1,
                detail: format!("the log ends at {} but its head is {end}", model.position),
            }
            .into());
        }
        for envelope in &page {
            if envelope.position != model.position + 1 {
                return Err(EngineError::Corrupt {
                    position: model.position + 1,
                    detail: format!(
                        "expected position {}, found {}",
                        model.position + 1,
                        envelope.position
                    ),
                }
                .into());
            }
            if let Some(time) = &until_time {
                if envelope.recorded_at.as_str() > time.as_str() {
                    return Ok(model);
                }
            }
            let event = model.apply(envelope)?;
            visit(envelope, &event, &model.world)?;
        }
    }
    Ok(model)
}
