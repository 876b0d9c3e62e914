//! JWT signing and verification over a key ring (the original's `certs.curKey` / `certs.keys`),
//! fixed: keys are parsed once, each key's algorithm is pinned, the `kid` header picks the key,
//! and only listed keys verify. The current key signs; every listed key verifies, so rotating
//! keys logs nobody out.
//!
//! jsonwebtoken 11 needs exactly one crypto backend; this crate enables `rust_crypto` (pure
//! Rust, no C toolchain). Key files live in `<dir>/<key name>/`: `rsa_private_key.pem` and
//! `rsa_public_key.pem` (the original's names) or `ed25519_private_key.pem` and
//! `ed25519_public_key.pem`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Signature algorithms a key may use (`certs.algorithm`).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-512 (the original's choice, the default).
    RS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    fn file_prefix(self) -> &'static str {
        match self {
            Algorithm::RS512 | Algorithm::RS256 => "rsa",
            Algorithm::EdDSA => "ed25519",
        }
    }
}

/// Errors of this crate. Verification failures are kept apart so callers can answer with the
/// right code (expired → refresh, anything else → sign in again).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// A key could not be read, parsed or written.
    #[error("key {name}: {message}")]
    Key {
        /// The key's name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// The key ring's settings are inconsistent.
    #[error("key ring: {0}")]
    Settings(String),
    /// A private key file may be read by its group or by others: refused, since whoever reads
    /// it can sign tokens for any user.
    #[error(
        "private key {} is readable by group or others (mode {mode:03o}); {}",
        .path.display(),
        goex_secrets::HINT
    )]
    InsecureKey {
        /// The private key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The token is well formed and correctly signed but past its `exp` (plus leeway).
    #[error("token expired")]
    Expired,
    /// Anything else that makes a token unacceptable: malformed, unknown or removed key, wrong
    /// algorithm, bad signature, wrong issuer or audience, not yet valid, too large.
    #[error("invalid token: {0}")]
    Invalid(String),
}

struct KeyPair {
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
}

/// The parsed keys and the rules every token must meet.
pub struct KeyRing {
    current: String,
    keys: HashMap<String, KeyPair>,
    issuer: String,
    audience: String,
    leeway: Duration,
    max_token_bytes: usize,
}

/// What a key ring is built from.
#[derive(Clone, Debug)]
pub struct KeyRingSettings {
    /// Folder with one sub-folder per key.
    pub dir: PathBuf,
    /// The key that signs.
    pub current: String,
    /// Every key that verifies (must include `current`).
    pub keys: Vec<String>,
    /// The algorithm of newly generated keys and of every key in the ring.
    pub algorithm: Algorithm,
    /// `iss` written and required.
    pub issuer: String,
    /// `aud` written and required.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Longer tokens are refused before any parsing.
    pub max_token_bytes: usize,
}

/// Key names are folder names: letters, digits, `-` and `_` only (no paths).
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn key_paths(dir: &Path, name: &str, algorithm: Algorithm) -> (PathBuf, PathBuf) {
    let folder = if name.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(name)
    };
    let prefix = algorithm.file_prefix();
    (
        folder.join(format!("{prefix}_private_key.pem")),
        folder.join(format!("{prefix}_public_key.pem")),
    )
}

impl KeyRing {
    /// Reads and parses every listed key once.
    ///
    /// # Errors
    /// A key name that is not a plain name, `current` not listed, a missing or unparsable key
    /// file, a missing private key for the current key, or a private key file that its group
    /// or others may read ([`JwtError::InsecureKey`]).
    pub fn load(settings: &KeyRingSettings) -> Result<Self, JwtError> {
        if !settings.keys.contains(&settings.current) {
            return Err(JwtError::Settings(format!(
                "the current key {} is not listed in keys",
                settings.current
            )));
        }
        let mut keys = HashMap::new();
        for name in &settings.keys {
            if !valid_key_name(name) {
                return Err(JwtError::Settings(format!(
                    "key name {name:?} must be letters, digits, - or _"
                )));
            }
            let fail = |message: String| JwtError::Key {
                name: name.clone(),
                message,
            };
            let (private, public) = key_paths(&settings.dir, name, settings.algorithm);
            let public_pem =
                std::fs::read(&public).map_err(|e| fail(format!("{}: {e}", public.display())))?;
            let decoding = match settings.algorithm {
                Algorithm::RS512 | Algorithm::RS256 => DecodingKey::from_rsa_pem(&public_pem),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&public_pem),
            }
            .map_err(|e| fail(format!("{}: {e}", public.display())))?;
            // Only the current key needs its private half; older keys may be verify-only.
            let encoding = match read_private(&private) {
                Ok(pem) => Some(
                    match settings.algorithm {
                        Algorithm::RS512 | Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
                        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                    }
                    .map_err(|e| fail(format!("{}: {e}", private.display())))?,
                ),
                Err(PrivateRead::Insecure(e)) => return Err(e),
                Err(PrivateRead::Io(_)) if name != &settings.current => None,
                Err(PrivateRead::Io(e)) => {
                    return Err(fail(format!("{}: {e}", private.display())));
                }
            };
            keys.insert(
                name.clone(),
                KeyPair {
                    algorithm: settings.algorithm,
                    encoding,
                    decoding,
                },
            );
        }
        Ok(Self {
            current: settings.current.clone(),
            keys,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway: settings.leeway,
            max_token_bytes: settings.max_token_bytes,
        })
    }

    /// The name of the signing key.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The configured audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Signs `claims` with the current key; the header names it in `kid`.
    ///
    /// # Errors
    /// [`JwtError::Key`] when signing fails.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, JwtError> {
        let pair = &self.keys[&self.current];
        let encoding = pair.encoding.as_ref().ok_or_else(|| JwtError::Key {
            name: self.current.clone(),
            message: "no private key".into(),
        })?;
        let mut header = Header::new(pair.algorithm.jwt());
        header.kid = Some(self.current.clone());
        jsonwebtoken::encode(&header, claims, encoding).map_err(|e| JwtError::Key {
            name: self.current.clone(),
            message: e.to_string(),
        })
    }

    /// Verifies `token`: size, `kid` naming a listed key, that key's pinned algorithm, the
    /// signature, `exp` and `nbf` (with leeway), `iss` and `aud`.
    ///
    /// # Errors
    /// [`JwtError::Expired`] for a token past `exp`, [`JwtError::Invalid`] for everything else.
    pub fn verify<C: DeserializeOwned>(&self, token: &str) -> Result<C, JwtError> {
        if token.len() > self.max_token_bytes {
            return Err(JwtError::Invalid(format!(
                "longer than {} bytes",
                self.max_token_bytes
            )));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| JwtError::Invalid(e.to_string()))?;
        let kid = header
            .kid
            .ok_or_else(|| JwtError::Invalid("no kid".into()))?;
        let pair = self
            .keys
            .get(&kid)
            .ok_or_else(|| JwtError::Invalid("unknown key".into()))?;
        if header.alg != pair.algorithm.jwt() {
            return Err(JwtError::Invalid(format!(
                "algorithm {:?} is not the key's",
                header.alg
            )));
        }
        let mut validation = Validation::new(pair.algorithm.jwt());
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        match jsonwebtoken::decode::<C>(token, &pair.decoding, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                Err(JwtError::Expired)
            }
            Err(e) => Err(JwtError::Invalid(e.to_string())),
        }
    }
}

/// Loads the ring; when `generate_missing` (dev profiles) and the current key does not exist
/// yet, generates it first. Safe when several processes start at once.
///
/// # Errors
/// As [`KeyRing::load`] and [`generate`].
pub fn load_or_generate(
    settings: &KeyRingSettings,
    generate_missing: bool,
) -> Result<KeyRing, JwtError> {
    let (_, public) = key_paths(&settings.dir, &settings.current, settings.algorithm);
    if generate_missing
        && valid_key_name(&settings.current)
        && !public.exists()
        && let Err(e) = generate(&settings.dir, &settings.current, settings.algorithm)
        // Another process may have won the race; loading below tells.
        && !public.exists()
    {
        return Err(e);
    }
    KeyRing::load(settings)
}

/// Writes a new key pair `<dir>/<name>/` for `algorithm` (RSA keys are 2048 bits); the private
/// key file is readable by its owner only. Refuses to overwrite an existing key.
///
/// # Errors
/// A bad name, an existing key, or a file that cannot be written.
pub fn generate(dir: &Path, name: &str, algorithm: Algorithm) -> Result<PathBuf, JwtError> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    use rsa::pkcs8::LineEnding;
    let fail = |message: String| JwtError::Key {
        name: name.to_owned(),
        message,
    };
    if !valid_key_name(name) {
        return Err(JwtError::Settings(format!(
            "key name {name:?} must be letters, digits, - or _"
        )));
    }
    let (private, public) = key_paths(dir, name, algorithm);
    if private.exists() || public.exists() {
        return Err(fail("already exists; choose a new name".into()));
    }
    let (private_pem, public_pem) = match algorithm {
        Algorithm::RS512 | Algorithm::RS256 => {
            let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
                .map_err(|e| fail(e.to_string()))?;
            let private_pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, LineEnding::LF)
                .map_err(|e| fail(e.to_string()))?
                .to_string();
            let public_pem = rsa::pkcs8::EncodePublicKey::to_public_key_pem(
                &key.to_public_key(),
                LineEnding::LF,
            )
            .map_err(|e| fail(e.to_string()))?;
            (private_pem, public_pem)
        }
        Algorithm::EdDSA => {
            let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let private_pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| fail(e.to_string()))?
                .to_string();
            let public_pem = key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| fail(e.to_string()))?;
            (private_pem, public_pem)
        }
    };
    // Written into a temporary folder and renamed into place, so a concurrent reader (another
    // process starting with the same dev key) never sees half a key pair.
    let folder = dir.join(name);
    let staging = dir.join(format!(
        ".{name}.tmp-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&staging).map_err(|e| fail(format!("{}: {e}", staging.display())))?;
    let (private_staged, public_staged) = key_paths(&staging, "", algorithm);
    let written = write_private(&private_staged, private_pem.as_bytes())
        .and_then(|()| std::fs::write(&public_staged, public_pem))
        .and_then(|()| std::fs::rename(&staging, &folder));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        let message = if folder.exists() {
            "already exists; choose a new name".into()
        } else {
            e.to_string()
        };
        return Err(fail(message));
    }
    Ok(folder)
}

/// Why a private key file was not read.
enum PrivateRead {
    /// It is missing or unreadable.
    Io(std::io::Error),
    /// Group or others may read it.
    Insecure(JwtError),
}

/// Reads a private key, refusing one whose mode [`goex_secrets::check_private`] refuses (group
/// or others may read it, unless it is a root-owned, group-read file of the process's group: a
/// Kubernetes secret mounted with fsGroup); the mode is taken from the opened file, so a symlink
/// (a Kubernetes secret mount) is judged by its target. Public keys are not checked.
fn read_private(path: &Path) -> Result<Vec<u8>, PrivateRead> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(PrivateRead::Io)?;
    let meta = file.metadata().map_err(PrivateRead::Io)?;
    if let Err(refused) = goex_secrets::check_private(&meta) {
        return Err(PrivateRead::Insecure(JwtError::InsecureKey {
            path: path.to_path_buf(),
            mode: refused.mode,
        }));
    }
    let mut pem = Vec::new();
    file.read_to_end(&mut pem).map_err(PrivateRead::Io)?;
    Ok(pem)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests;
