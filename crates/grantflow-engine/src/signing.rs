//! Signed checkpoints (docs/events.md, "Signed checkpoints"): Ed25519 key pairs
//! (`grantflow key generate`), a checkpoint signed over a fixed canonical form of its fields
//! (`grantflow checkpoint --sign`, `GET /v1/checkpoint` of `serve --signing-key`), and the
//! check of a signed checkpoint against a trusted public key (`verify --trust`).
//!
//! Formats (each one line of text, so that an auditor can read them with other tools):
//! - the private key file: `grantflow-ed25519-secret <64 hex digits: the 32-byte seed>`,
//!   created with mode 0600 and refused when group or others may read or write it;
//! - the public key file: `grantflow-ed25519 <64 hex digits: the 32-byte public key>`;
//! - the key id: the first 16 hex digits of the SHA-256 of the 32 public key bytes;
//! - the signed message ([`canonical_form`]): `grantflow-checkpoint-v1\nposition <P>\nhash
//!   <H>\nrecorded_at <T>\n` in UTF-8, P in decimal, H the 64 lowercase hex digits;
//! - the signature: 128 lowercase hex digits (the 64-byte Ed25519 signature).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::Checkpoint;

/// The first word of a private key file.
pub const SECRET_KEY_TAG: &str = "grantflow-ed25519-secret";
/// The first word of a public key file.
pub const PUBLIC_KEY_TAG: &str = "grantflow-ed25519";
/// The first line of the signed message.
pub const CANONICAL_TAG: &str = "grantflow-checkpoint-v1";

/// Why a key could not be made, read or trusted, or a signature did not hold.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A key file could not be written (it exists already, or the directory refuses).
    #[error("cannot create {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file exists already.
    #[error("{0} exists: a key file is never overwritten")]
    Exists(PathBuf),
    /// A key file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file is not in its format, or a private key is readable by others.
    #[error("{path}: {detail}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The checkpoint carries no signature.
    #[error(
        "the checkpoint carries no signature (make one with `grantflow checkpoint --sign KEY`)"
    )]
    Unsigned,
    /// The checkpoint was signed by another key than the trusted one.
    #[error("the checkpoint is signed by key {signed_by}, not by the trusted key {trusted}")]
    WrongKey {
        /// The checkpoint's key id.
        signed_by: String,
        /// The trusted key's id.
        trusted: String,
    },
    /// The signature does not hold over the checkpoint's fields.
    #[error(
        "the signature does not match the checkpoint's fields (position, hash, recorded_at): {0}"
    )]
    BadSignature(String),
}

/// A checkpoint with, when signed, its signer's key id and the signature over
/// [`canonical_form`]. Serialized as the checkpoint's fields plus `key_id` and `signature`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    /// The checkpoint.
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
    /// The signer's key id (16 hex digits), when signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The Ed25519 signature over [`canonical_form`] (128 hex digits), when signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl SignedCheckpoint {
    /// A checkpoint without signature.
    pub fn unsigned(checkpoint: Checkpoint) -> Self {
        SignedCheckpoint {
            checkpoint,
            key_id: None,
            signature: None,
        }
    }
}

/// The exact bytes a checkpoint's signature covers.
pub fn canonical_form(checkpoint: &Checkpoint) -> String {
    format!(
        "{CANONICAL_TAG}\nposition {}\nhash {}\nrecorded_at {}\n",
        checkpoint.position, checkpoint.hash, checkpoint.recorded_at
    )
}

/// The id of a public key: the first 16 hex digits of SHA-256 of its 32 bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(&digest[..8])
}

/// A private key that signs checkpoints.
pub struct CheckpointSigner {
    key: SigningKey,
    id: String,
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key_id", &self.id)
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// Reads a private key file (refused when group or others have any access to it).
    pub fn load(path: &Path) -> Result<CheckpointSigner, SigningError> {
        let read = |source| SigningError::Read {
            path: path.to_path_buf(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(read)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(SigningError::BadKey {
                    path: path.to_path_buf(),
                    detail: format!(
                        "the private key's mode is {:04o}: group and others may not have any \
                         access to it (chmod 600)",
                        mode & 0o7777
                    ),
                });
            }
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let seed = parse_line(path, &text, SECRET_KEY_TAG)?;
        let key = SigningKey::from_bytes(&seed);
        let id = key_id(&key.verifying_key());
        Ok(CheckpointSigner { key, id })
    }

    /// This key's id.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The public half.
    pub fn public_key(&self) -> TrustedKey {
        TrustedKey::new(self.key.verifying_key())
    }

    /// The checkpoint signed.
    pub fn sign(&self, checkpoint: Checkpoint) -> SignedCheckpoint {
        let signature = self.key.sign(canonical_form(&checkpoint).as_bytes());
        SignedCheckpoint {
            checkpoint,
            key_id: Some(self.id.clone()),
            signature: Some(hex::encode(signature.to_bytes())),
        }
    }
}

/// A public key an auditor trusts.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    key: VerifyingKey,
    id: String,
}

impl TrustedKey {
    fn new(key: VerifyingKey) -> TrustedKey {
        TrustedKey {
            id: key_id(&key),
            key,
        }
    }

    /// Reads a public key file (`PATH.pub` of `grantflow key generate`).
    pub fn load(path: &Path) -> Result<TrustedKey, SigningError> {
        let text = std::fs::read_to_string(path).map_err(|source| SigningError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses a public key line (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<TrustedKey, SigningError> {
        let bytes = parse_line(path, text, PUBLIC_KEY_TAG)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|error| SigningError::BadKey {
            path: path.to_path_buf(),
            detail: format!("not an Ed25519 public key: {error}"),
        })?;
        Ok(TrustedKey::new(key))
    }

    /// This key's id.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The public key file's line (without its newline).
    pub fn to_line(&self) -> String {
        format!("{PUBLIC_KEY_TAG} {}", hex::encode(self.key.as_bytes()))
    }

    /// Checks that `signed` carries a signature by this key over its fields.
    pub fn check(&self, signed: &SignedCheckpoint) -> Result<(), SigningError> {
        let (Some(id), Some(signature)) = (&signed.key_id, &signed.signature) else {
            return Err(SigningError::Unsigned);
        };
        if *id != self.id {
            return Err(SigningError::WrongKey {
                signed_by: id.clone(),
                trusted: self.id.clone(),
            });
        }
        let bytes: [u8; 64] = hex::decode(signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                SigningError::BadSignature("the signature is not 128 hex digits".into())
            })?;
        let signature = Signature::from_bytes(&bytes);
        self.key
            .verify(canonical_form(&signed.checkpoint).as_bytes(), &signature)
            .map_err(|error| SigningError::BadSignature(error.to_string()))
    }
}

/// Makes a new key pair from the operating system's random source: the private key in
/// `path` (mode 0600, created only if absent, never following a symbolic link) and the public
/// key in `path.pub` (created only if absent). Returns the public key.
pub fn generate(path: &Path) -> Result<TrustedKey, SigningError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|error| SigningError::Create {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!("the OS random source failed: {error}")),
    })?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    let public = TrustedKey::new(key.verifying_key());
    let public_path = public_path(path);
    // Both must be new: refuse before writing either.
    for existing in [path, public_path.as_path()] {
        if std::fs::symlink_metadata(existing).is_ok() {
            return Err(SigningError::Exists(existing.to_path_buf()));
        }
    }
    let secret = format!(
        "{SECRET_KEY_TAG} {}\n",
        hex::encode(key.to_bytes().as_slice())
    );
    write_new(path, secret.as_bytes(), 0o600)?;
    if let Err(error) = write_new(
        &public_path,
        format!("{}\n", public.to_line()).as_bytes(),
        0o644,
    ) {
        let _ = std::fs::remove_file(path);
        return Err(error);
    }
    Ok(public)
}

/// `path` with `.pub` appended.
pub fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SigningError> {
    let create = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::AlreadyExists => SigningError::Exists(path.to_path_buf()),
        _ => SigningError::Create {
            path: path.to_path_buf(),
            source,
        },
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode).custom_flags(libc_o_nofollow());
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(create)?;
    file.write_all(bytes).map_err(create)?;
    file.sync_all().map_err(create)?;
    Ok(())
}

/// `O_NOFOLLOW` (create_new already refuses a symbolic link at the path itself; the flag
/// states it).
#[cfg(unix)]
fn libc_o_nofollow() -> i32 {
    libc::O_NOFOLLOW
}

fn parse_line(path: &Path, text: &str, tag: &str) -> Result<[u8; 32], SigningError> {
    let bad = |detail: String| SigningError::BadKey {
        path: path.to_path_buf(),
        detail,
    };
    let line = text.trim();
    let Some(hex_part) = line
        .strip_prefix(tag)
        .and_then(|rest| rest.strip_prefix(' '))
    else {
        return Err(bad(format!(
            "not a key file: expected one line `{tag} <64 hex digits>`"
        )));
    };
    hex::decode(hex_part.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| bad("the key is not 64 hex digits".into()))
}
