//! Password hashing (argon2id) behind a bounded number of slots: each hash or verification
//! takes `auth.argon2_memory_kib` of memory and tens of milliseconds of a core, so without a
//! bound a burst of logins or registrations queues without limit on the blocking pool and
//! multiplies memory. A caller that cannot get a slot within `auth.hash_acquire_timeout` is
//! answered 503 / 10004 at once instead.
//!
//! Each slot owns one argon2 memory buffer, allocated on first use and reused: memory for
//! hashing is at most `slots × argon2_memory_kib`, whatever the allocator does (glibc keeps a
//! freed 19 MiB block per thread arena, so fresh buffers on a changing set of blocking threads
//! measured over 350 MiB for 300 registrations).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Argon2, Block, Params};
use async_trait::async_trait;
use shaku::{Component, Interface};
use tokio::sync::Semaphore;

use crate::meta::config::{AuthConfig, ExcelConfig};
use crate::service::error::ServiceError;

/// The dependency name in 503 answers when every hashing slot stays busy.
pub const PASSWORD_HASHER: &str = "password hasher";

/// Hashes and verifies passwords.
#[async_trait]
pub trait PasswordHasher: Interface {
    /// A PHC-format argon2id hash of `password` with a fresh salt.
    ///
    /// # Errors
    /// [`ServiceError::Unavailable`] when no slot frees up in time.
    async fn hash(&self, password: String) -> Result<String, ServiceError>;
    /// Whether `password` matches `hash`; with no hash (an unknown user), a hash of the same
    /// cost is verified anyway and the answer is `false`, so timing does not tell who exists.
    ///
    /// # Errors
    /// As [`PasswordHasher::hash`].
    async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ServiceError>;
    /// Verifications run so far (for tests and metrics).
    fn verifications(&self) -> u64;
}

/// Memory buffers of the free slots.
type Buffers = Arc<Mutex<Vec<Vec<Block>>>>;

/// [`PasswordHasher`] with argon2id on the blocking pool.
#[derive(Component)]
#[shaku(interface = PasswordHasher)]
pub struct Argon2PasswordHasher {
    /// The configured cost (see [`Argon2PasswordHasher::parameters`]).
    params: Params,
    slots: Arc<Semaphore>,
    buffers: Buffers,
    acquire_timeout: Duration,
    /// A hash of the same cost that no password matches, verified for unknown users.
    dummy_hash: String,
    /// Verifications run (counted in the blocking task, so a cancelled request still counts).
    verifications: Arc<AtomicU64>,
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Why hashing failed (a bug or a corrupt stored hash, never the caller's password).
type HashError = String;

/// The PHC string of `params` with `salt` and `output`.
fn phc(params: &Params, salt: &[u8; 16], output: &[u8; 32]) -> Result<String, HashError> {
    let salt = SaltString::encode_b64(salt).map_err(|e| e.to_string())?;
    let out = Output::new(output).map_err(|e| e.to_string())?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        out
    ))
}

/// A well-formed hash of the configured cost that no password matches, verified for unknown
/// users: a random salt and a random output. Verifying it costs what verifying a real hash
/// costs (argon2 computes the whole hash before comparing), and nothing is hashed to make it,
/// so start-up does not allocate the hashing memory (19 MiB at the default cost).
fn unmatchable_hash(params: &Params) -> Result<String, HashError> {
    let (mut salt, mut output) = ([0u8; 16], [0u8; 32]);
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut output);
    phc(params, &salt, &output)
}

/// Hashes `password` into a PHC string with `memory` as the argon2 state.
fn hash_with(params: &Params, password: &[u8], memory: &mut [Block]) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let mut out = [0u8; 32];
    argon2(params.clone())
        .hash_password_into_with_memory(password, &salt, &mut out, memory)
        .map_err(|e| e.to_string())?;
    phc(params, &salt, &out)
}

/// Whether `password` matches the PHC string `hash`, computed in `memory` when it is large
/// enough for the hash's own cost (a hash made under an older, larger cost gets a buffer of its
/// own). The comparison is constant-time (`Output`'s `PartialEq`).
fn verify_with(hash: &str, password: &[u8], memory: &mut [Block]) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    let (Ok(params), Some(salt), Some(expected)) =
        (Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut own;
    let blocks = if memory.len() >= params.block_count() {
        &mut memory[..params.block_count()]
    } else {
        own = vec![Block::default(); params.block_count()];
        &mut own[..]
    };
    let mut out = vec![0u8; expected.len()];
    argon2(params)
        .hash_password_into_with_memory(password, salt, &mut out, blocks)
        .is_ok()
        && Output::new(&out).is_ok_and(|o| o == expected)
}

impl Argon2PasswordHasher {
    /// The component's parameters: the cost and slots `auth.argon2_*`, `auth.hash_*` say.
    ///
    /// # Errors
    /// The argon2 parameters are invalid (the config check refuses them first).
    pub fn parameters(auth: &AuthConfig) -> Result<Argon2PasswordHasherParameters, String> {
        let params = Params::new(auth.argon2_memory_kib, auth.argon2_iterations, 1, None)
            .map_err(|e| e.to_string())?;
        let dummy_hash = unmatchable_hash(&params)?;
        let slots = match auth.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(Argon2PasswordHasherParameters {
            params,
            slots: Arc::new(Semaphore::new(slots)),
            // Slots allocate their buffers on first use: an idle process holds none.
            buffers: Arc::new(Mutex::new(Vec::new())),
            acquire_timeout: auth.hash_acquire_timeout,
            dummy_hash,
            verifications: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Runs `work` on the blocking pool with a slot's memory once a slot is free. The slot and
    /// its buffer move into the blocking task and come back when the hashing really ends, even
    /// when the request that asked for it has gone.
    async fn with_slot<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Params, &mut [Block]) -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let busy = || ServiceError::Unavailable {
            dependency: PASSWORD_HASHER,
            source: "every password hashing slot stayed busy".into(),
        };
        let permit = tokio::time::timeout(self.acquire_timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let params = self.params.clone();
        let buffers = self.buffers.clone();
        tokio::task::spawn_blocking(move || {
            let taken = buffers.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let mut memory = taken.unwrap_or_else(|| vec![Block::default(); params.block_count()]);
            let out = work(&params, &mut memory);
            buffers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(memory);
            drop(permit);
            out
        })
        .await
        .map_err(|e| ServiceError::Internal(Box::new(e)))
    }
}

#[async_trait]
impl PasswordHasher for Argon2PasswordHasher {
    async fn hash(&self, password: String) -> Result<String, ServiceError> {
        self.with_slot(move |params, memory| hash_with(params, password.as_bytes(), memory))
            .await?
            .map_err(|e| ServiceError::Internal(e.into()))
    }

    async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ServiceError> {
        // A user without a usable hash (none, or `model::excel::NO_PASSWORD` after an import)
        // costs a verification like anyone else: the answer's timing tells nothing.
        let hash = hash.filter(|h| {
            PasswordHash::new(h).is_ok_and(|parsed| parsed.algorithm == argon2::ARGON2ID_IDENT)
        });
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        let count = self.verifications.clone();
        let ok = self
            .with_slot(move |_, memory| {
                count.fetch_add(1, Ordering::Relaxed);
                verify_with(&hash, password.as_bytes(), memory)
            })
            .await?;
        Ok(ok && known)
    }

    fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

/// Hashes many passwords (an import's) apart from logins: on threads of its own at the lowest
/// OS priority, never on the slots logins and registrations wait for (issue 22: a large import
/// kept every core busy and logins answered 503).
#[async_trait]
pub trait BulkPasswordHasher: Interface {
    /// PHC-format argon2id hashes of `passwords`, in order. Imports hash one at a time; a
    /// dropped call stops its threads after the hash each is on.
    ///
    /// # Errors
    /// [`ServiceError::Internal`] when a thread fails.
    async fn hash_all(&self, passwords: Vec<String>) -> Result<Vec<String>, ServiceError>;
}

/// [`BulkPasswordHasher`] with argon2id at the logins' cost (so imported users sign in like
/// anyone), on `excel.password_hash_slots` threads niced to 19.
#[derive(Component)]
#[shaku(interface = BulkPasswordHasher)]
pub struct Argon2BulkPasswordHasher {
    /// The configured cost.
    params: Params,
    /// Threads one import hashes on.
    threads: usize,
    /// One import hashes at a time.
    running: Arc<Semaphore>,
}

impl Argon2BulkPasswordHasher {
    /// The component's parameters: `auth.argon2_*`'s cost on `excel.password_hash_slots`
    /// threads (at least 1).
    ///
    /// # Errors
    /// The argon2 parameters are invalid (the config check refuses them first).
    pub fn parameters(
        auth: &AuthConfig,
        excel: &ExcelConfig,
    ) -> Result<Argon2BulkPasswordHasherParameters, String> {
        Ok(Argon2BulkPasswordHasherParameters {
            params: Params::new(auth.argon2_memory_kib, auth.argon2_iterations, 1, None)
                .map_err(|e| e.to_string())?,
            threads: excel.password_hash_slots.max(1),
            running: Arc::new(Semaphore::new(1)),
        })
    }
}

/// Lowers the calling thread to the lowest scheduling priority (nice 19): whatever else the
/// machine runs (logins first) gets the cores before it. Best effort.
fn lowest_priority() {
    // SAFETY: setpriority with the calling thread's id changes only that thread's nice value.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

/// Sets `flag` when dropped: the blocking side of a call that went away stops.
struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[async_trait]
impl BulkPasswordHasher for Argon2BulkPasswordHasher {
    async fn hash_all(&self, passwords: Vec<String>) -> Result<Vec<String>, ServiceError> {
        if passwords.is_empty() {
            return Ok(Vec::new());
        }
        let _turn = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ServiceError::Internal(Box::new(e)))?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _guard = StopOnDrop(stop.clone());
        let (params, threads) = (self.params.clone(), self.threads.min(passwords.len()));
        let hashed = tokio::task::spawn_blocking(move || {
            let next = AtomicU64::new(0);
            let results: Vec<Mutex<Option<Result<String, HashError>>>> =
                passwords.iter().map(|_| Mutex::new(None)).collect();
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| {
                        lowest_priority();
                        let mut memory = vec![Block::default(); params.block_count()];
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                            if i >= passwords.len() || stop.load(Ordering::Relaxed) {
                                break;
                            }
                            let hash = hash_with(&params, passwords[i].as_bytes(), &mut memory);
                            *results[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(hash);
                        }
                    });
                }
            });
            results
                .into_iter()
                .map(
                    |r| match r.into_inner().unwrap_or_else(PoisonError::into_inner) {
                        Some(hash) => hash,
                        None => Err("stopped before this password was hashed".into()),
                    },
                )
                .collect::<Result<Vec<String>, HashError>>()
        })
        .await
        .map_err(|e| ServiceError::Internal(Box::new(e)))?;
        hashed.map_err(|e| ServiceError::Internal(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier};

    fn params() -> Params {
        Params::new(64, 1, 1, None).unwrap()
    }

    #[test]
    fn the_unknown_users_hash_has_the_configured_cost_and_matches_nothing() {
        let params = Params::new(256, 3, 1, None).unwrap();
        let dummy = unmatchable_hash(&params).unwrap();
        let parsed = PasswordHash::new(&dummy).unwrap();
        assert_eq!(parsed.algorithm, argon2::ARGON2ID_IDENT);
        let cost = Params::try_from(&parsed).unwrap();
        assert_eq!(
            (cost.m_cost(), cost.t_cost(), cost.p_cost()),
            (256, 3, 1),
            "verifying it costs a real verification"
        );
        assert_eq!(parsed.hash.unwrap().len(), 32);
        assert_ne!(
            dummy,
            unmatchable_hash(&params).unwrap(),
            "random per process"
        );
        let mut memory = vec![Block::default(); params.block_count()];
        for password in ["", "abc123"] {
            assert!(!verify_with(&dummy, password.as_bytes(), &mut memory));
        }
    }

    #[test]
    fn our_hashes_are_standard_phc_strings_and_standard_ones_verify() {
        let mut memory = vec![Block::default(); params().block_count()];
        let ours = hash_with(&params(), b"abc123", &mut memory).unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2(params()).verify_password(b"abc123", &parsed).is_ok());
        let stock = argon2(Params::new(128, 2, 1, None).unwrap())
            .hash_password(b"abc123", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify_with(&stock, b"abc123", &mut memory), "larger cost");
        assert!(verify_with(&ours, b"abc123", &mut memory));
        assert!(!verify_with(&ours, b"abc124", &mut memory));
        assert!(!verify_with(
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
            b"x",
            &mut memory
        ));
        assert!(!verify_with("not a hash", b"abc123", &mut memory));
    }

    #[tokio::test]
    async fn a_slot_that_stays_busy_answers_unavailable_and_memory_is_per_slot() {
        let hasher = Argon2PasswordHasher::parameters(&AuthConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            hash_concurrency: 1,
            hash_acquire_timeout: Duration::from_millis(50),
            ..crate::meta::config::shipped_test_profile().auth
        })
        .unwrap();
        let held = hasher.slots.clone().acquire_owned().await.unwrap();
        let h = Argon2PasswordHasher {
            params: hasher.params,
            slots: hasher.slots,
            buffers: hasher.buffers,
            acquire_timeout: hasher.acquire_timeout,
            dummy_hash: hasher.dummy_hash,
            verifications: hasher.verifications,
        };
        let e = h.hash("abc123".into()).await.unwrap_err();
        assert!(matches!(e, ServiceError::Unavailable { .. }), "{e:?}");
        drop(held);
        let hash = h.hash("abc123".into()).await.unwrap();
        assert!(h.verify("abc123".into(), Some(hash)).await.unwrap());
        assert!(
            !h.verify("abc123".into(), None).await.unwrap(),
            "unknown user"
        );
        assert_eq!(h.verifications(), 2);
        assert_eq!(h.buffers.lock().unwrap().len(), 1, "one slot, one buffer");
    }

    #[tokio::test]
    async fn a_user_without_a_password_matches_nothing_at_a_real_hashs_cost() {
        let p = Argon2PasswordHasher::parameters(&AuthConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            hash_concurrency: 1,
            hash_acquire_timeout: Duration::from_secs(5),
            ..crate::meta::config::shipped_test_profile().auth
        })
        .unwrap();
        let h = Argon2PasswordHasher {
            params: p.params,
            slots: p.slots,
            buffers: p.buffers,
            acquire_timeout: p.acquire_timeout,
            dummy_hash: p.dummy_hash.clone(),
            verifications: p.verifications,
        };
        let none = crate::model::excel::NO_PASSWORD.to_owned();
        for password in ["", "!", "abc123"] {
            assert!(!h.verify(password.into(), Some(none.clone())).await.unwrap());
        }
        // Not even the dummy hash's own password gets in through it.
        assert_eq!(h.verifications(), 3, "each one costs a verification");
        let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW".to_owned();
        assert!(!h.verify("abc123".into(), Some(bcrypt)).await.unwrap());
        assert_eq!(h.verifications(), 4);
    }
}
