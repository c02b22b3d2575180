//! The registry of a sled store: files in `<data>/webhooks/` (0700), each 0600 and replaced
//! whole (temporary file, fdatasync, rename, directory fsync), so that `grantflow webhook`
//! works while `grantflow serve` holds the store:
//!
//! - `subscriptions.json`: every subscription with its secret; changed by the CLI (add,
//!   remove, enable) and by the server (disable), each read-modify-write under an exclusive
//!   lock on `subscriptions.lock`;
//! - `state-<id>.json`: a subscription's cursor, failures in a row and recent attempts,
//!   written by the server's worker only (one per subscription); the CLI reads it and
//!   removes it with the subscription.
//!
//! The server notices changes by reading `subscriptions.json` again every second.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use grantflow_store_sled::SledStore;
use serde::{Deserialize, Serialize};

use crate::registry::{Lease, Loaded, Progress, Registry, Sole};
use crate::signature::Secret;
use crate::subscription::{check_id, new_id, Attempt, NewSubscription, Subscription};
use crate::{WebhookError, ATTEMPTS_KEPT};

/// The directory of the registry inside the data directory.
pub const WEBHOOKS_DIR_NAME: &str = "webhooks";
/// The subscriptions' file.
pub const SUBSCRIPTIONS_FILE_NAME: &str = "subscriptions.json";
/// The lock serialising changes to the subscriptions' file.
const LOCK_FILE_NAME: &str = "subscriptions.lock";
/// The format of the files.
const FORMAT: u32 = 1;
/// The largest file read.
const FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSubscription {
    id: String,
    url: String,
    types: Vec<String>,
    fund: Option<String>,
    secret: String,
    start_after: u64,
    enabled: bool,
    disabled_reason: Option<String>,
    generation: u64,
    created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionsFile {
    format: u32,
    subscriptions: Vec<StoredSubscription>,
}

/// A subscription's delivery state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    format: u32,
    generation: u64,
    cursor: u64,
    failures: u32,
    attempts: Vec<Attempt>,
}

/// The registry in `<data>/webhooks/`.
#[derive(Debug, Clone)]
pub struct FileRegistry {
    data: PathBuf,
    dir: PathBuf,
}

impl FileRegistry {
    /// The registry of the data directory `data` (nothing is read or created yet).
    pub fn new(data: &Path) -> FileRegistry {
        FileRegistry {
            data: data.to_path_buf(),
            dir: data.join(WEBHOOKS_DIR_NAME),
        }
    }

    fn io(&self, what: String) -> impl FnOnce(std::io::Error) -> WebhookError {
        move |source| WebhookError::Io {
            context: what,
            source,
        }
    }

    /// An exclusive lock on `subscriptions.lock`, released when dropped; creates the
    /// directory.
    fn lock(&self) -> Result<fs::File, WebhookError> {
        grantflow_store_sled::create_private_dir(&self.dir)
            .map_err(self.io(format!("creating {}", self.dir.display())))?;
        let path = self.dir.join(LOCK_FILE_NAME);
        grantflow_store_sled::lock_private_file(&path)
            .map_err(self.io(format!("locking {}", path.display())))
    }

    fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, WebhookError> {
        let meta = match fs::symlink_metadata(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io(format!("reading {}", path.display()))(source)),
            Ok(meta) => meta,
        };
        let user = rustix_uid();
        let mode = meta.mode() & 0o7777;
        if !meta.is_file() || mode & 0o022 != 0 || meta.uid() != user {
            return Err(WebhookError::Unsafe {
                path: path.to_path_buf(),
                detail: format!(
                    "it must be a regular file owned by uid {user} that only its owner may \
                     write (it is uid {}, mode {mode:04o}): whoever can write it can send \
                     the log anywhere",
                    meta.uid()
                ),
            });
        }
        if meta.len() > FILE_BYTES_MAX {
            return Err(WebhookError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("larger than {FILE_BYTES_MAX} bytes"),
            });
        }
        fs::read(path)
            .map(Some)
            .map_err(self.io(format!("reading {}", path.display())))
    }

    fn load_subscriptions(&self) -> Result<Vec<StoredSubscription>, WebhookError> {
        let path = self.dir.join(SUBSCRIPTIONS_FILE_NAME);
        let Some(bytes) = self.read_file(&path)? else {
            return Ok(Vec::new());
        };
        let file: SubscriptionsFile =
            serde_json::from_slice(&bytes).map_err(|error| WebhookError::Corrupt {
                path: path.clone(),
                detail: error.to_string(),
            })?;
        if file.format != FORMAT {
            return Err(WebhookError::Corrupt {
                path,
                detail: format!("format {} (this build reads format {FORMAT})", file.format),
            });
        }
        Ok(file.subscriptions)
    }

    fn save_subscriptions(&self, subscriptions: &[StoredSubscription]) -> Result<(), WebhookError> {
        let file = SubscriptionsFile {
            format: FORMAT,
            subscriptions: subscriptions.to_vec(),
        };
        self.replace(SUBSCRIPTIONS_FILE_NAME, &file)
    }

    fn replace<T: Serialize>(&self, name: &str, value: &T) -> Result<(), WebhookError> {
        let mut bytes =
            serde_json::to_vec_pretty(value).map_err(|error| WebhookError::Corrupt {
                path: self.dir.join(name),
                detail: error.to_string(),
            })?;
        bytes.push(b'\n');
        grantflow_store_sled::replace_durably(&self.dir, name, &[&bytes])
            .map_err(WebhookError::Store)
    }

    fn state_name(id: &str) -> String {
        format!("state-{id}.json")
    }

    /// The state of `stored`: its file's, or the start when there is none; failures count
    /// from 0 again in a newer generation.
    fn state(&self, stored: &StoredSubscription) -> Result<State, WebhookError> {
        let path = self.dir.join(Self::state_name(&stored.id));
        let fresh = State {
            format: FORMAT,
            generation: stored.generation,
            cursor: stored.start_after,
            failures: 0,
            attempts: Vec::new(),
        };
        let Some(bytes) = self.read_file(&path)? else {
            return Ok(fresh);
        };
        let mut state: State =
            serde_json::from_slice(&bytes).map_err(|error| WebhookError::Corrupt {
                path: path.clone(),
                detail: error.to_string(),
            })?;
        if state.generation != stored.generation {
            state.failures = 0;
            state.generation = stored.generation;
        }
        state.cursor = state.cursor.max(stored.start_after);
        Ok(state)
    }

    fn listing(&self, stored: &StoredSubscription) -> Result<Subscription, WebhookError> {
        let state = self.state(stored)?;
        Ok(Subscription {
            id: stored.id.clone(),
            url: stored.url.clone(),
            types: stored.types.clone(),
            fund: stored.fund.clone(),
            start_after: stored.start_after,
            cursor: state.cursor,
            failures: state.failures,
            enabled: stored.enabled,
            disabled_reason: stored.disabled_reason.clone(),
            generation: stored.generation,
            created_at: stored.created_at.clone(),
        })
    }

    fn find<'a>(
        subscriptions: &'a mut [StoredSubscription],
        id: &str,
    ) -> Result<&'a mut StoredSubscription, WebhookError> {
        let wanted = id.trim().to_ascii_lowercase();
        check_id(&wanted)?;
        subscriptions
            .iter_mut()
            .find(|stored| stored.id == wanted)
            .ok_or_else(|| WebhookError::UnknownSubscription(id.to_string()))
    }

    fn add_blocking(&self, new: &NewSubscription) -> Result<(Subscription, String), WebhookError> {
        new.check()?;
        // The registry lives in the data directory: the store claims it first.
        SledStore::ensure(&self.data).map_err(WebhookError::Store)?;
        let _lock = self.lock()?;
        let mut subscriptions = self.load_subscriptions()?;
        let id = loop {
            let id = new_id()?;
            if subscriptions.iter().all(|stored| stored.id != id) {
                break id;
            }
        };
        let (_, secret) = Secret::generate()?;
        // The head now, from the redo log: the server may hold the store.
        let start_after =
            SledStore::acknowledged_position(&self.data).map_err(WebhookError::Store)?;
        let stored = StoredSubscription {
            id,
            url: new.url.clone(),
            types: new.types.clone(),
            fund: new.fund.clone(),
            secret: secret.clone(),
            start_after,
            enabled: true,
            disabled_reason: None,
            generation: 1,
            created_at: crate::now(),
        };
        // A state file left by an earlier subscription of the same id is not this one's.
        let _ = fs::remove_file(self.dir.join(Self::state_name(&stored.id)));
        subscriptions.push(stored.clone());
        self.save_subscriptions(&subscriptions)?;
        Ok((self.listing(&stored)?, secret))
    }

    fn list_blocking(&self) -> Result<Vec<Subscription>, WebhookError> {
        self.load_subscriptions()?
            .iter()
            .map(|stored| self.listing(stored))
            .collect()
    }

    fn remove_blocking(&self, id: &str) -> Result<Subscription, WebhookError> {
        let _lock = self.lock()?;
        let mut subscriptions = self.load_subscriptions()?;
        let stored = Self::find(&mut subscriptions, id)?.clone();
        let listing = self.listing(&stored)?;
        subscriptions.retain(|other| other.id != stored.id);
        self.save_subscriptions(&subscriptions)?;
        self.remove_state(&stored.id)?;
        Ok(listing)
    }

    fn remove_state(&self, id: &str) -> Result<(), WebhookError> {
        let path = self.dir.join(Self::state_name(id));
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(self.io(format!("removing {}", path.display()))(source)),
        }
    }

    fn enable_blocking(&self, id: &str) -> Result<Subscription, WebhookError> {
        let _lock = self.lock()?;
        let mut subscriptions = self.load_subscriptions()?;
        let stored = Self::find(&mut subscriptions, id)?;
        stored.enabled = true;
        stored.disabled_reason = None;
        stored.generation += 1;
        let stored = stored.clone();
        self.save_subscriptions(&subscriptions)?;
        self.listing(&stored)
    }

    fn stored(&self, id: &str) -> Result<StoredSubscription, WebhookError> {
        let mut subscriptions = self.load_subscriptions()?;
        Self::find(&mut subscriptions, id).cloned()
    }

    fn record_blocking(&self, id: &str, progress: Progress) -> Result<bool, WebhookError> {
        let stored = match self.stored(id) {
            Ok(stored) => stored,
            Err(WebhookError::UnknownSubscription(_)) => return Ok(false),
            Err(error) => return Err(error),
        };
        if stored.generation != progress.generation {
            return Ok(false);
        }
        let mut state = self.state(&stored)?;
        state.cursor = progress.cursor;
        state.failures = progress.failures;
        if let Some(attempt) = progress.attempt {
            state.attempts.push(attempt);
            let excess = state.attempts.len().saturating_sub(ATTEMPTS_KEPT);
            state.attempts.drain(..excess);
        }
        self.replace(&Self::state_name(&stored.id), &state)?;
        Ok(true)
    }

    fn disable_blocking(
        &self,
        id: &str,
        generation: u64,
        reason: &str,
    ) -> Result<(), WebhookError> {
        let _lock = self.lock()?;
        let mut subscriptions = self.load_subscriptions()?;
        let stored = match Self::find(&mut subscriptions, id) {
            Ok(stored) => stored,
            Err(WebhookError::UnknownSubscription(_)) => return Ok(()),
            Err(error) => return Err(error),
        };
        if stored.generation != generation {
            return Ok(());
        }
        stored.enabled = false;
        stored.disabled_reason = Some(reason.to_string());
        self.save_subscriptions(&subscriptions)
    }

    fn prune_blocking(&self, known: &[String]) -> Result<(), WebhookError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(self.io(format!("reading {}", self.dir.display()))(source)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|name| name.strip_prefix("state-"))
                .and_then(|rest| rest.strip_suffix(".json"))
            else {
                continue;
            };
            if !known.iter().any(|known| known == id) {
                self.remove_state(id)?;
            }
        }
        Ok(())
    }
}

fn rustix_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Runs blocking file work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    registry: &FileRegistry,
    work: impl FnOnce(FileRegistry) -> Result<T, WebhookError> + Send + 'static,
) -> Result<T, WebhookError> {
    let registry = registry.clone();
    tokio::task::spawn_blocking(move || work(registry))
        .await
        .map_err(|error| WebhookError::Io {
            context: "a file task of the webhook registry".into(),
            source: std::io::Error::other(error.to_string()),
        })?
}

#[async_trait]
impl Registry for FileRegistry {
    async fn add(&self, new: &NewSubscription) -> Result<(Subscription, String), WebhookError> {
        let new = new.clone();
        blocking(self, move |registry| registry.add_blocking(&new)).await
    }

    async fn list(&self) -> Result<Vec<Subscription>, WebhookError> {
        blocking(self, |registry| registry.list_blocking()).await
    }

    async fn remove(&self, id: &str) -> Result<Subscription, WebhookError> {
        let id = id.to_string();
        blocking(self, move |registry| registry.remove_blocking(&id)).await
    }

    async fn enable(&self, id: &str) -> Result<Subscription, WebhookError> {
        let id = id.to_string();
        blocking(self, move |registry| registry.enable_blocking(&id)).await
    }

    async fn deliveries(&self, id: &str) -> Result<Vec<Attempt>, WebhookError> {
        let id = id.to_string();
        blocking(self, move |registry| {
            let stored = registry.stored(&id)?;
            Ok(registry.state(&stored)?.attempts)
        })
        .await
    }

    async fn load(&self, id: &str) -> Result<Option<Loaded>, WebhookError> {
        let id = id.to_string();
        blocking(self, move |registry| {
            let stored = match registry.stored(&id) {
                Ok(stored) => stored,
                Err(WebhookError::UnknownSubscription(_)) => return Ok(None),
                Err(error) => return Err(error),
            };
            Ok(Some(Loaded {
                subscription: registry.listing(&stored)?,
                secret: Secret::parse(&stored.secret)?,
            }))
        })
        .await
    }

    async fn record(&self, id: &str, progress: Progress) -> Result<bool, WebhookError> {
        let id = id.to_string();
        blocking(self, move |registry| {
            registry.record_blocking(&id, progress)
        })
        .await
    }

    async fn disable(&self, id: &str, generation: u64, reason: &str) -> Result<(), WebhookError> {
        let (id, reason) = (id.to_string(), reason.to_string());
        blocking(self, move |registry| {
            registry.disable_blocking(&id, generation, &reason)
        })
        .await
    }

    async fn lease(&self, _id: &str) -> Result<Option<Box<dyn Lease>>, WebhookError> {
        // One process holds a sled store: the server that runs the worker.
        Ok(Some(Box::new(Sole)))
    }

    async fn prune(&self, known: &[String]) -> Result<(), WebhookError> {
        let known = known.to_vec();
        blocking(self, move |registry| registry.prune_blocking(&known)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn new() -> NewSubscription {
        NewSubscription::new("http://127.0.0.1:9/hook", &["grant.*".into()], None)
    }

    #[tokio::test]
    async fn add_list_record_disable_enable_remove() {
        let dir = tempfile::tempdir().unwrap();
        let registry = FileRegistry::new(dir.path());
        let (added, secret) = registry.add(&new()).await.unwrap();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(
            (added.start_after, added.cursor, added.enabled),
            (0, 0, true)
        );
        let text = fs::read_to_string(dir.path().join("webhooks/subscriptions.json")).unwrap();
        assert!(text.contains(&secret), "the server needs the key");
        use std::os::unix::fs::PermissionsExt;
        for name in ["webhooks/subscriptions.json", "webhooks"] {
            let mode = fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{name}: {mode:o}");
        }
        let attempt = Attempt {
            position: 3,
            attempt: 1,
            status: Some(500),
            error: None,
            duration_ms: 2,
            at: crate::now(),
        };
        for _ in 0..ATTEMPTS_KEPT + 5 {
            let progress = Progress {
                generation: 1,
                cursor: 2,
                failures: 7,
                attempt: Some(attempt.clone()),
            };
            assert!(registry.record(&added.id, progress).await.unwrap());
        }
        assert_eq!(
            registry.deliveries(&added.id).await.unwrap().len(),
            ATTEMPTS_KEPT
        );
        registry.disable(&added.id, 1, "7 failures").await.unwrap();
        let listed = registry.list().await.unwrap();
        assert_eq!((listed[0].cursor, listed[0].failures), (2, 7));
        assert!(!listed[0].enabled);
        let enabled = registry.enable(&added.id).await.unwrap();
        assert_eq!(
            (enabled.enabled, enabled.failures, enabled.cursor),
            (true, 0, 2)
        );
        // A worker of the older generation may no longer record.
        let stale = Progress {
            generation: 1,
            cursor: 9,
            failures: 0,
            attempt: None,
        };
        assert!(!registry.record(&added.id, stale).await.unwrap());
        let loaded = registry.load(&added.id).await.unwrap().unwrap();
        assert_eq!(loaded.subscription.generation, 2);
        registry.remove(&added.id).await.unwrap();
        assert!(registry.list().await.unwrap().is_empty());
        assert!(matches!(
            registry.remove(&added.id).await,
            Err(WebhookError::UnknownSubscription(_))
        ));
        assert!(!dir
            .path()
            .join(format!("webhooks/state-{}.json", added.id))
            .exists());
    }
}
