//! The token registry: bearer tokens with an actor and roles, kept in `<data>/tokens.json`;
//! and `TokenCache`, the registry as the server last read it, re-read when the file changes.
//!
//! Invariants:
//! - A token's plaintext is shown once, by [`Tokens::add`]; the file holds only its SHA-256.
//! - The file is replaced atomically (temporary file, fsync, rename, fsync of the directory),
//!   readable by its owner only (0600), and read-modify-write cycles hold an exclusive lock
//!   on `<data>/tokens.lock`, so two `grantflow token add` never lose each other's token.
//! - A revoked token stays listed (who had it, when it was revoked) but never authenticates.

use foldhash::HashMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use grantflow_domain::parse::ACTOR_CHARS_MAX;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The registry's file name inside the data directory.
pub const TOKENS_FILE_NAME: &str = "tokens.json";
/// The lock file serialising changes to the registry.
pub const TOKENS_LOCK_FILE_NAME: &str = "tokens.lock";
/// Version of the registry's file format.
pub const TOKENS_FORMAT: u32 = 1;
/// Every token starts with this, so that a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "gf_";
/// Random bytes in a token's public id.
const TOKEN_ID_BYTES: usize = 4;
/// Random bytes in a token's secret part (256 bits).
const TOKEN_SECRET_BYTES: usize = 32;
/// The largest registry file read, in bytes (a bound on a file the server re-reads).
pub const TOKENS_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// A role: a set of rights (docs/http.md, "Tokens and roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Proposals, rejections, agencies and allocations, suspensions, cancellations, closure.
    Secretariat,
    /// Approvals and grant revisions.
    Approver,
    /// Funds, contributions, disbursements, expenditures, refunds, financial closure.
    Finance,
    /// Reads, the event log, checkpoints and verification.
    Auditor,
    /// Reads and the event log (paged and streamed).
    Integrator,
    /// Every read, the event log, verification and metrics; no command rights by itself.
    Admin,
}

/// Every role, in the order of docs/http.md.
pub const ROLES: &[Role] = &[
    Role::Secretariat,
    Role::Approver,
    Role::Finance,
    Role::Auditor,
    Role::Integrator,
    Role::Admin,
];

impl Role {
    /// The role as spelled on the command line and in the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Secretariat => "secretariat",
            Role::Approver => "approver",
            Role::Finance => "finance",
            Role::Auditor => "auditor",
            Role::Integrator => "integrator",
            Role::Admin => "admin",
        }
    }

    /// Parses a comma-separated list (`secretariat,approver`), sorted and without repeats.
    pub fn parse_list(text: &str) -> Result<Vec<Role>, TokenError> {
        let mut roles = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(Role::from_str)
            .collect::<Result<Vec<Role>, TokenError>>()?;
        roles.sort();
        roles.dedup();
        Ok(roles)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = TokenError;

    fn from_str(text: &str) -> Result<Role, TokenError> {
        ROLES
            .iter()
            .copied()
            .find(|role| role.as_str() == text.trim().to_ascii_lowercase())
            .ok_or_else(|| TokenError::UnknownRole(text.to_string()))
    }
}

/// Errors of the token registry.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A role name that does not exist.
    #[error(
        "unknown role `{0}`: roles are secretariat, approver, finance, auditor, integrator, admin"
    )]
    UnknownRole(String),
    /// A token needs at least one role.
    #[error("a token needs at least one role (secretariat, approver, finance, auditor, integrator, admin)")]
    NoRole,
    /// The actor name is not usable.
    #[error("the actor must be a non-empty name of at most {ACTOR_CHARS_MAX} characters without control characters")]
    InvalidActor,
    /// No token has that id.
    #[error("no token with id `{0}` (see `grantflow token list`)")]
    UnknownToken(String),
    /// The registry file is not readable as one.
    #[error("{path} is not a grantflow token registry: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The data directory holds no grantflow store and one cannot be created there.
    #[error("cannot use {path} as a data directory: {detail}")]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Reading or writing the registry failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The system's random source failed.
    #[error("cannot draw random bytes for a token: {0}")]
    Random(String),
    /// The registry file may be changed by someone else than the user running grantflow.
    #[error("refusing the token registry {path}: {detail}")]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        detail: String,
    },
}

/// A token as listed (never its plaintext nor its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The token's public id (8 hex digits); the token itself reads `gf_<id>_<secret>`.
    pub id: String,
    /// The actor recorded on every event its holder appends.
    pub actor: String,
    /// Its roles.
    pub roles: Vec<Role>,
    /// When it was issued (RFC 3339 UTC).
    pub created_at: String,
    /// Whether it was revoked.
    pub revoked: bool,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl TokenInfo {
    /// How the token's plaintext begins, for recognising it: `gf_<id>_`.
    pub fn prefix(&self) -> String {
        format!("{TOKEN_PREFIX}{}_", self.id)
    }

    /// Whether the token holds a role.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredToken {
    #[serde(flatten)]
    info: TokenInfo,
    /// SHA-256 of the whole token text, lowercase hex.
    sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    format: u32,
    tokens: Vec<StoredToken>,
}

/// The token registry of one data directory.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Vec<StoredToken>,
    /// SHA-256 (hex) of a live token -> its index in `tokens`.
    live: HashMap<String, usize>,
}

impl Tokens {
    /// Reads `<dir>/tokens.json`; no file is an empty registry. A file that group or others
    /// may write, or that another user owns, is refused ([`TokenError::Unsafe`]): whoever
    /// can write it can issue themselves any role.
    pub fn load(dir: &Path) -> Result<Tokens, TokenError> {
        let path = dir.join(TOKENS_FILE_NAME);
        let bytes = match fs::metadata(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Tokens::default())
            }
            Err(source) => return Err(io(format!("reading {}", path.display()), source)),
            Ok(meta) if unsafe_registry(&meta).is_some() => {
                let detail = unsafe_registry(&meta).unwrap_or_default();
                return Err(TokenError::Unsafe { path, detail });
            }
            Ok(meta) if meta.len() > TOKENS_FILE_BYTES_MAX => {
                return Err(TokenError::Corrupt {
                    path,
                    detail: format!("larger than {TOKENS_FILE_BYTES_MAX} bytes"),
                })
            }
            Ok(_) => fs::read(&path).map_err(|e| io(format!("reading {}", path.display()), e))?,
        };
        let file: TokensFile =
            serde_json::from_slice(&bytes).map_err(|error| TokenError::Corrupt {
                path: path.clone(),
                detail: error.to_string(),
            })?;
        if file.format != TOKENS_FORMAT {
            return Err(TokenError::Corrupt {
                path,
                detail: format!(
                    "format {} (this build reads format {TOKENS_FORMAT})",
                    file.format
                ),
            });
        }
        Ok(Tokens::from_stored(file.tokens))
    }

    /// Issues a token for `actor` with `roles` (names such as `"finance"`, or comma-separated
    /// lists). Returns its listing and its plaintext, which is shown once and never stored.
    /// Creates the store in `dir` when there is none yet, so that `grantflow serve` can open it.
    pub fn add<R: AsRef<str>>(
        dir: &Path,
        actor: &str,
        roles: &[R],
    ) -> Result<(TokenInfo, String), TokenError> {
        let mut parsed = Vec::new();
        for text in roles {
            parsed.extend(Role::parse_list(text.as_ref())?);
        }
        parsed.sort();
        parsed.dedup();
        if parsed.is_empty() {
            return Err(TokenError::NoRole);
        }
        let actor_ok = !actor.trim().is_empty()
            && actor.chars().count() <= ACTOR_CHARS_MAX
            && !actor.chars().any(char::is_control);
        if !actor_ok {
            return Err(TokenError::InvalidActor);
        }
        ensure_store(dir)?;
        let _lock = lock_registry(dir)?;
        let mut registry = Tokens::load(dir)?;
        let (id, token) = loop {
            let id = hex::encode(random_bytes::<TOKEN_ID_BYTES>()?);
            if registry.tokens.iter().all(|stored| stored.info.id != id) {
                let secret = hex::encode(random_bytes::<TOKEN_SECRET_BYTES>()?);
                break (id.clone(), format!("{TOKEN_PREFIX}{id}_{secret}"));
            }
        };
        let info = TokenInfo {
            id,
            actor: actor.to_string(),
            roles: parsed,
            created_at: now(),
            revoked: false,
            revoked_at: None,
        };
        registry.tokens.push(StoredToken {
            info: info.clone(),
            sha256: token_hash(&token),
        });
        registry.save(dir)?;
        Ok((info, token))
    }

    /// Every token of `<dir>/tokens.json`, revoked ones included, in order of issue.
    pub fn list(dir: &Path) -> Result<Vec<TokenInfo>, TokenError> {
        Ok(Tokens::load(dir)?.infos())
    }

    /// Revokes a token by its id (or its full text, or its `gf_<id>` prefix); revoking it
    /// again changes nothing. A running server stops accepting it at its next request.
    pub fn revoke(dir: &Path, id: &str) -> Result<TokenInfo, TokenError> {
        if !dir.join(TOKENS_FILE_NAME).exists() {
            return Err(TokenError::UnknownToken(id.to_string()));
        }
        let _lock = lock_registry(dir)?;
        let mut registry = Tokens::load(dir)?;
        let wanted = normalize_id(id);
        let hash = token_hash(id);
        let Some(stored) = registry
            .tokens
            .iter_mut()
            .find(|stored| stored.info.id == wanted || stored.sha256 == hash)
        else {
            return Err(TokenError::UnknownToken(id.to_string()));
        };
        if stored.info.revoked {
            return Ok(stored.info.clone());
        }
        stored.info.revoked = true;
        stored.info.revoked_at = Some(now());
        let info = stored.info.clone();
        registry.save(dir)?;
        Ok(info)
    }

    /// The live (not revoked) token with this plaintext.
    pub fn authenticate(&self, token: &str) -> Option<&TokenInfo> {
        let index = *self.live.get(&token_hash(token))?;
        self.tokens.get(index).map(|stored| &stored.info)
    }

    /// The live (not revoked) token whose SHA-256 (lowercase hex) is `sha256`: how a console
    /// session, which keeps only that hash, finds its token again at every request.
    pub fn authenticate_hash(&self, sha256: &str) -> Option<&TokenInfo> {
        let index = *self.live.get(sha256)?;
        self.tokens.get(index).map(|stored| &stored.info)
    }

    /// The listing of every token.
    pub fn infos(&self) -> Vec<TokenInfo> {
        self.tokens
            .iter()
            .map(|stored| stored.info.clone())
            .collect()
    }

    /// How many tokens are live.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    fn from_stored(tokens: Vec<StoredToken>) -> Tokens {
        let live = tokens
            .iter()
            .enumerate()
            .filter(|(_, stored)| !stored.info.revoked)
            .map(|(index, stored)| (stored.sha256.clone(), index))
            .collect();
        Tokens { tokens, live }
    }

    /// Replaces the file atomically, owner-only.
    fn save(&self, dir: &Path) -> Result<(), TokenError> {
        let path = dir.join(TOKENS_FILE_NAME);
        let file = TokensFile {
            format: TOKENS_FORMAT,
            tokens: self.tokens.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).map_err(|error| TokenError::Corrupt {
            path: path.clone(),
            detail: error.to_string(),
        })?;
        bytes.push(b'\n');
        // The rename durable before the change is reported: without the directory's fsync a
        // power cut may bring the old file back (a revoked token live again).
        write_private_atomically(dir, TOKENS_FILE_NAME, &bytes)
            .map_err(|source| io(format!("writing {}", path.display()), source))
    }
}

/// Why a registry file with this metadata is not to be trusted, or `None`: writable by
/// group or others, or owned by another user than the one running grantflow.
fn unsafe_registry(meta: &fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Some(format!(
            "it is writable by its group or by others (mode {mode:04o}), so anyone who can \
             write it can issue themselves a token; run `chmod 600` on it"
        ));
    }
    let user = rustix::process::geteuid().as_raw();
    if meta.uid() != user {
        return Some(format!(
            "it is owned by uid {}, not by the user running grantflow (uid {user}); give it \
             to that user (`chown`) or run grantflow as its owner",
            meta.uid()
        ));
    }
    None
}

/// Replaces `<dir>/<name>` by `bytes`: a temporary file created owner-only (0600) with
/// `O_EXCL` and `O_NOFOLLOW` (never through a link, never an existing file), written and
/// fsynced, renamed over the file, then the directory fsynced. The token registry and the
/// console's sessions are written so.
pub(crate) fn write_private_atomically(
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let path = dir.join(name);
    let temp = dir.join(format!(
        "{name}.tmp-{}-{}",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .and_then(|mut out| {
            out.write_all(bytes)?;
            out.sync_all()
        })
        .and_then(|()| fs::rename(&temp, &path));
    if let Err(error) = written {
        // Only a file this call created: an existing one was refused before any write.
        if error.kind() != std::io::ErrorKind::AlreadyExists {
            let _ = fs::remove_file(&temp);
        }
        return Err(error);
    }
    fs::File::open(dir).and_then(|dir_file| dir_file.sync_all())
}

/// SHA-256 of a token's text, lowercase hex: what the registry stores.
pub fn token_hash(token: &str) -> String {
    // Every request hashes its token: hex into a buffer, not char by char as `hex::encode`.
    let digest = Sha256::digest(token.as_bytes());
    let mut text = [0u8; 64];
    match hex::encode_to_slice(digest, &mut text) {
        Ok(()) => String::from_utf8_lossy(&text).into_owned(),
        Err(_) => hex::encode(digest),
    }
}

/// `gf_1a2b3c4d`, `gf_1a2b3c4d_` and `1a2b3c4d` all name token `1a2b3c4d`.
fn normalize_id(id: &str) -> String {
    let id = id.trim();
    let id = id.strip_prefix(TOKEN_PREFIX).unwrap_or(id);
    id.trim_end_matches('_').to_ascii_lowercase()
}

/// The token file lives in the data directory; a directory holding files but no store
/// would then be refused by the store, so the store is created first when it is missing.
fn ensure_store(dir: &Path) -> Result<(), TokenError> {
    grantflow_store_sled::SledStore::ensure(dir).map_err(|error| TokenError::NotAStore {
        path: dir.to_path_buf(),
        detail: error.to_string(),
    })
}

/// An exclusive lock on `<dir>/tokens.lock`, released when dropped.
fn lock_registry(dir: &Path) -> Result<fs::File, TokenError> {
    let path = dir.join(TOKENS_LOCK_FILE_NAME);
    grantflow_store_sled::lock_private_file(&path)
        .map_err(|source| io(format!("locking {}", path.display()), source))
}

fn random_bytes<const N: usize>() -> Result<[u8; N], TokenError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| TokenError::Random(error.to_string()))?;
    Ok(bytes)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn io(context: String, source: std::io::Error) -> TokenError {
    TokenError::Io { context, source }
}

/// Identifies a version of the registry file.
type FileStamp = Option<(SystemTime, u64, u64)>;

/// The registry as last read, re-read when the file changes.
#[derive(Debug)]
pub(crate) struct TokenCache {
    path: PathBuf,
    loaded: RwLock<(FileStamp, Arc<Tokens>)>,
}

impl TokenCache {
    /// A cache of `<dir>/tokens.json`, read at the first request.
    pub(crate) fn new(dir: PathBuf) -> TokenCache {
        TokenCache {
            path: dir.join(TOKENS_FILE_NAME),
            loaded: RwLock::new((Some((SystemTime::UNIX_EPOCH, u64::MAX, 0)), Arc::default())),
        }
    }

    /// The registry as the file holds it now.
    pub(crate) fn current(&self) -> Arc<Tokens> {
        let stamp = self.stamp();
        if let Ok(loaded) = self.loaded.read() {
            if loaded.0 == stamp {
                return loaded.1.clone();
            }
        }
        let tokens = match self.path.parent().map(Tokens::load) {
            Some(Ok(tokens)) => Arc::new(tokens),
            Some(Err(error)) => {
                tracing::error!(%error, "cannot read the token registry; refusing every token");
                Arc::new(Tokens::default())
            }
            None => Arc::new(Tokens::default()),
        };
        if let Ok(mut loaded) = self.loaded.write() {
            *loaded = (stamp, tokens.clone());
        }
        tokens
    }

    fn stamp(&self) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&self.path).ok()?;
        Some((meta.modified().ok()?, meta.len(), meta.ino()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn add_list_authenticate_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let (info, token) = Tokens::add(dir.path(), "alice", &["secretariat,approver"]).unwrap();
        assert!(token.starts_with(&info.prefix()));
        assert_eq!(info.roles, vec![Role::Secretariat, Role::Approver]);
        let text = fs::read_to_string(dir.path().join(TOKENS_FILE_NAME)).unwrap();
        assert!(!text.contains(&token), "the plaintext is never stored");
        let mode = fs::metadata(dir.path().join(TOKENS_FILE_NAME))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let tokens = Tokens::load(dir.path()).unwrap();
        assert_eq!(tokens.authenticate(&token).unwrap().actor, "alice");
        assert!(tokens.authenticate("gf_nope").is_none());
        let revoked = Tokens::revoke(dir.path(), &info.prefix()).unwrap();
        assert!(revoked.revoked);
        assert!(Tokens::load(dir.path())
            .unwrap()
            .authenticate(&token)
            .is_none());
        assert_eq!(Tokens::list(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn unknown_role_and_bad_actor_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = Tokens::add(dir.path(), "bob", &["boss"]).unwrap_err();
        assert!(error.to_string().contains("unknown role `boss`"), "{error}");
        assert!(matches!(
            Tokens::add(dir.path(), " ", &["admin"]),
            Err(TokenError::InvalidActor)
        ));
        assert!(matches!(
            Tokens::add(dir.path(), "bob", &[""]),
            Err(TokenError::NoRole)
        ));
        assert!(matches!(
            Tokens::revoke(dir.path(), "ffffffff"),
            Err(TokenError::UnknownToken(_))
        ));
    }
}
