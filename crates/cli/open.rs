//! Opening the store and the engine for a verb: sled in the data directory, or the shared
//! PostgreSQL store given with `--store`; and the progress bar of long folds.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use grantflow_engine::Engine;
use grantflow_store::EventStore;
use grantflow_store_sled::SledStore;
use indicatif::{ProgressBar, ProgressStyle};

/// The shared store's URL (`--store` / `GRANTFLOW_STORE`), set once at start; without one,
/// the embedded sled store in the data directory.
pub static STORE_URL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// How a verb uses the sled store in the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Writes; creates the store when the directory is absent or empty.
    Create,
    /// Writes to an existing store (`replay`: its projection snapshot).
    Existing,
    /// Only reads: opens a private copy, and never writes a byte to the data directory
    /// (opening sled writes, and after a crash so does recovery; `SledStore::open_read_only`).
    ReadOnly,
}

/// Opens the store: PostgreSQL when `--store postgres://...` is given, else sled in `data`
/// as `access` says.
pub async fn open_store(data: &Path, access: Access) -> anyhow::Result<Arc<dyn EventStore>> {
    if let Some(Some(url)) = STORE_URL.get() {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(anyhow!(
                "--store takes a PostgreSQL URL (postgres://user@host:port/db?schema=NAME); \
                 the embedded sled store is chosen with --data DIR"
            ));
        }
        let store = grantflow_store_pg::PgStore::connect(url)
            .await
            .with_context(|| format!("cannot open the PostgreSQL store at {}", redact(url)))?;
        return Ok(Arc::new(store));
    }
    let store = match access {
        Access::Create => SledStore::open(data),
        Access::Existing => SledStore::open_existing(data),
        Access::ReadOnly => SledStore::open_read_only(data),
    };
    let store = store.with_context(|| format!("cannot open the store at {}", data.display()))?;
    Ok(Arc::new(store))
}

/// The webhook subscriptions of the store: tables beside the log on PostgreSQL, files in
/// `<data>/webhooks/` beside a sled store.
pub async fn open_webhooks(data: &Path) -> anyhow::Result<Arc<dyn grantflow_webhooks::Registry>> {
    if let Some(Some(url)) = STORE_URL.get() {
        let registry = grantflow_webhooks::PgRegistry::connect(url)
            .await
            .with_context(|| format!("cannot open the webhooks of {}", redact(url)))?;
        return Ok(Arc::new(registry));
    }
    Ok(Arc::new(grantflow_webhooks::FileRegistry::new(data)))
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Opens the engine over the store, showing progress if the catch-up is long.
pub async fn open_engine(data: &Path, access: Access) -> anyhow::Result<Engine> {
    let store = open_store(data, access).await?;
    let bar = progress_bar("catching up");
    let engine = Engine::open_with_progress(store, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    Ok(engine)
}

/// A progress bar on standard error (drawn only when it is a terminal).
pub fn progress_bar(message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}
