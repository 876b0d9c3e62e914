//! SMS verification codes, one per phone: a keyed digest of the code (never the code) and the
//! count of wrong tries, in one hash that expires with the code (Redis, or in process).
//!
//! A check is a compare-and-swap on that hash: a right code deletes it only if nobody changed
//! it since it was read (so of parallel checks with the right code exactly one wins), a wrong
//! one raises the count the same way and deletes the hash at the limit. Digests are compared in
//! constant time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use shaku::{Component, Interface};
use subtle::ConstantTimeEq;

use crate::repository::error::RepoError;
use crate::repository::kv::{HashSwap, KeyValueClient};

/// What a check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    /// The code was right; it is spent now.
    Accepted,
    /// The code was wrong; `remaining` more tries are allowed before the code is spent.
    Wrong {
        /// Tries left.
        remaining: u32,
    },
    /// The code was wrong and that was the last try: the code is spent.
    Exhausted,
    /// No code for this phone: never sent, expired, or spent.
    Missing,
}

/// Stores and checks codes.
#[async_trait]
pub trait VerificationCodeRepository: Interface {
    /// Stores `code` for `phone` for `ttl`, replacing an earlier one (and its count).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store does not answer in time.
    async fn save(&self, phone: &str, code: &str, ttl: Duration) -> Result<(), RepoError>;
    /// Checks `code` against the stored one, atomically, allowing `max_attempts` tries.
    ///
    /// # Errors
    /// As [`VerificationCodeRepository::save`].
    async fn check(
        &self,
        phone: &str,
        code: &str,
        max_attempts: u32,
    ) -> Result<CodeCheck, RepoError>;
    /// Forgets `code` of `phone` (its send failed), unless another code replaced it meanwhile.
    ///
    /// # Errors
    /// As [`VerificationCodeRepository::save`].
    async fn discard(&self, phone: &str, code: &str) -> Result<(), RepoError>;
}

const DIGEST: &str = "digest";
const ATTEMPTS: &str = "attempts";
/// Compare-and-swap rounds lost to other checks before giving up (each loss means another
/// check changed the count, so this bounds contention, not progress).
const MAX_ROUNDS: usize = 64;

/// [`VerificationCodeRepository`] over the key-value client.
#[derive(Component)]
#[shaku(interface = VerificationCodeRepository)]
pub struct KvVerificationCodeRepository {
    #[shaku(inject)]
    kv: Arc<dyn KeyValueClient>,
    /// The HMAC key of the digests (`sms.code_secret`, or random per process): a leaked store
    /// does not give the codes away, not even to a search of the million possible ones.
    secret: SecretSlice<u8>,
}

fn key(phone: &str) -> String {
    format!("sms:code:{phone}")
}

impl KvVerificationCodeRepository {
    fn digest(&self, phone: &str, code: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(phone.as_bytes());
        mac.update(b":");
        mac.update(code.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[async_trait]
impl VerificationCodeRepository for KvVerificationCodeRepository {
    async fn save(&self, phone: &str, code: &str, ttl: Duration) -> Result<(), RepoError> {
        // Both fields and the expiry are written: the earlier code and its count go.
        let digest = self.digest(phone, code);
        self.kv
            .hash_set(&key(phone), &[(DIGEST, &digest), (ATTEMPTS, "0")], ttl)
            .await
    }

    async fn check(
        &self,
        phone: &str,
        code: &str,
        max_attempts: u32,
    ) -> Result<CodeCheck, RepoError> {
        let key = key(phone);
        let offered = self.digest(phone, code);
        let mut stored = self.kv.hash_get_all(&key).await?;
        for _ in 0..MAX_ROUNDS {
            let (Some(digest), Some(attempts)) = (stored.get(DIGEST), stored.get(ATTEMPTS)) else {
                return Ok(CodeCheck::Missing);
            };
            let expect = [(DIGEST, digest.as_str()), (ATTEMPTS, attempts.as_str())];
            let tried: u32 = attempts.parse().unwrap_or(u32::MAX);
            let right: bool = digest.as_bytes().ct_eq(offered.as_bytes()).into();
            let (update, outcome) = if right {
                (None, CodeCheck::Accepted)
            } else if tried.saturating_add(1) >= max_attempts {
                (None, CodeCheck::Exhausted)
            } else {
                let now = (tried + 1).to_string();
                (
                    Some(now),
                    CodeCheck::Wrong {
                        remaining: max_attempts - tried - 1,
                    },
                )
            };
            let update_fields = update.as_deref().map(|n| [(ATTEMPTS, n)]);
            // Expiry zero: the code keeps its own.
            match self
                .kv
                .hash_compare_and_swap(
                    &key,
                    &expect,
                    update_fields.as_ref().map(|f| f.as_slice()),
                    Duration::ZERO,
                )
                .await?
            {
                HashSwap::Swapped => return Ok(outcome),
                HashSwap::Missing => return Ok(CodeCheck::Missing),
                // Another check (or a new code) came first: decide again on what is there now.
                HashSwap::Mismatch(now) => stored = now,
            }
        }
        Err(RepoError::Unavailable {
            dependency: self.kv.backend(),
            source: "verification code contended past its retry bound".into(),
        })
    }

    async fn discard(&self, phone: &str, code: &str) -> Result<(), RepoError> {
        let digest = self.digest(phone, code);
        self.kv
            .hash_compare_and_swap(&key(phone), &[(DIGEST, &digest)], None, Duration::ZERO)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::kv::{LocalKeyValueClient, LocalStoreLimits};

    fn repository() -> KvVerificationCodeRepository {
        KvVerificationCodeRepository {
            kv: Arc::new(LocalKeyValueClient::new(LocalStoreLimits {
                values: 100,
                logins: 100,
                counters: 100,
            })),
            secret: SecretSlice::from(b"test secret".to_vec()),
        }
    }

    #[tokio::test]
    async fn a_right_code_is_good_once_and_wrong_ones_spend_it_at_the_limit() {
        let codes = repository();
        let ttl = Duration::from_secs(60);
        codes.save("13800138000", "123456", ttl).await.unwrap();
        assert_eq!(
            codes.check("13800138000", "654321", 3).await.unwrap(),
            CodeCheck::Wrong { remaining: 2 }
        );
        assert_eq!(
            codes.check("13800138000", "123456", 3).await.unwrap(),
            CodeCheck::Accepted
        );
        assert_eq!(
            codes.check("13800138000", "123456", 3).await.unwrap(),
            CodeCheck::Missing
        );
        codes.save("13800138000", "111111", ttl).await.unwrap();
        for remaining in [2, 1] {
            assert_eq!(
                codes.check("13800138000", "000000", 3).await.unwrap(),
                CodeCheck::Wrong { remaining }
            );
        }
        assert_eq!(
            codes.check("13800138000", "000000", 3).await.unwrap(),
            CodeCheck::Exhausted
        );
        // Spent: even the right code is refused now.
        assert_eq!(
            codes.check("13800138000", "111111", 3).await.unwrap(),
            CodeCheck::Missing
        );
    }

    #[tokio::test]
    async fn discarding_spares_a_code_that_replaced_it() {
        let codes = repository();
        let ttl = Duration::from_secs(60);
        codes.save("13800138000", "111111", ttl).await.unwrap();
        codes.save("13800138000", "222222", ttl).await.unwrap();
        codes.discard("13800138000", "111111").await.unwrap();
        assert_eq!(
            codes.check("13800138000", "222222", 3).await.unwrap(),
            CodeCheck::Accepted
        );
        codes.save("13800138000", "333333", ttl).await.unwrap();
        codes.discard("13800138000", "333333").await.unwrap();
        assert_eq!(
            codes.check("13800138000", "333333", 3).await.unwrap(),
            CodeCheck::Missing
        );
    }

    #[tokio::test]
    async fn the_store_holds_a_digest_not_the_code() {
        let codes = repository();
        codes
            .save("13800138000", "123456", Duration::from_secs(60))
            .await
            .unwrap();
        let stored = codes.kv.hash_get_all("sms:code:13800138000").await.unwrap();
        let digest = &stored[DIGEST];
        assert_eq!(digest.len(), 64);
        assert!(!digest.contains("123456"));
        // Keyed: another secret gives another digest, and the phone is part of it.
        let other = KvVerificationCodeRepository {
            secret: SecretSlice::from(b"another".to_vec()),
            ..repository()
        };
        assert_ne!(other.digest("13800138000", "123456"), *digest);
        assert_ne!(codes.digest("13800138001", "123456"), *digest);
    }

    #[tokio::test]
    async fn a_code_expires_and_a_wrong_try_does_not_extend_it() {
        let codes = repository();
        codes
            .save("13800138000", "123456", Duration::from_millis(400))
            .await
            .unwrap();
        // A wrong try rewrites the hash; the code's expiry stays.
        assert_eq!(
            codes.check("13800138000", "000000", 3).await.unwrap(),
            CodeCheck::Wrong { remaining: 2 }
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            codes.check("13800138000", "123456", 3).await.unwrap(),
            CodeCheck::Missing
        );
    }
}
