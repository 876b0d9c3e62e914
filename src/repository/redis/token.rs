//! The latest login per user (the original's single sign-on record, a Redis hash per user):
//! the auth feature writes it at login and compares tokens against it. Every change after the
//! login is a compare-and-swap on the record, so a refresh can never resurrect a login that a
//! logout or a newer login ended.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shaku::{Component, Interface};

use crate::repository::cache::login::LoginCache;
use crate::repository::error::RepoError;
use crate::repository::kv::{HashSwap, KeyValueClient};

/// The login record of one user, field by field (`sid`, `refresh_jti`).
pub type LoginRecord = HashMap<String, String>;

/// The login (session) id field.
pub const SID: &str = "sid";
/// The id of the one refresh token that may be used next.
pub const REFRESH_JTI: &str = "refresh_jti";

/// What [`TokenRepository::rotate`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The presented refresh token was the current one; the next one is recorded.
    Rotated,
    /// The user signed in again since: the login is another one now.
    Superseded,
    /// The login is current but the presented refresh token was already spent.
    Reused,
    /// There is no login (signed out, revoked or expired).
    SignedOut,
}

/// What [`TokenRepository::check`] found for a presented login id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginCheck {
    /// It is the user's current login.
    Current,
    /// The user signed in again since (single sign-on): another login is current.
    Elsewhere,
    /// The user has no login (signed out, revoked or expired).
    SignedOut,
}

impl LoginCheck {
    /// `presented` against the login id of `record`.
    pub fn in_record(record: &LoginRecord, presented: &str) -> Self {
        Self::of(record.get(SID).map(String::as_str), presented)
    }

    /// `presented` against the `current` login id.
    pub fn of(current: Option<&str>, presented: &str) -> Self {
        match current {
            Some(sid) if sid == presented => LoginCheck::Current,
            Some(_) => LoginCheck::Elsewhere,
            None => LoginCheck::SignedOut,
        }
    }
}

/// Per-user login records.
#[async_trait]
pub trait TokenRepository: Interface {
    /// Starts a login: the record becomes `sid` with `refresh_jti`, for `ttl` (replacing any
    /// earlier login: single sign-on).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the store does not answer in time or is full.
    async fn start(
        &self,
        user_id: i64,
        sid: &str,
        refresh_jti: &str,
        ttl: Duration,
    ) -> Result<(), RepoError>;
    /// The record of `user_id` (empty when none).
    ///
    /// # Errors
    /// As [`TokenRepository::start`].
    async fn get(&self, user_id: i64) -> Result<LoginRecord, RepoError>;
    /// Whether `sid` is the user's current login: the single sign-on check of every protected
    /// request, answered from this process's [`LoginCache`] where the store allows it.
    ///
    /// # Errors
    /// As [`TokenRepository::start`].
    async fn check(&self, user_id: i64, sid: &str) -> Result<LoginCheck, RepoError> {
        Ok(LoginCheck::in_record(&self.get(user_id).await?, sid))
    }
    /// In one atomic step: when the record is login `sid` and its current refresh token is
    /// `presented`, records `next` and extends the record to `ttl`. Never writes `sid` and
    /// never creates a record.
    ///
    /// # Errors
    /// As [`TokenRepository::start`].
    async fn rotate(
        &self,
        user_id: i64,
        sid: &str,
        presented: &str,
        next: &str,
        ttl: Duration,
    ) -> Result<Rotation, RepoError>;
    /// Ends login `sid` if it is still the user's login (a newer one is left alone); returns
    /// whether it ended.
    ///
    /// # Errors
    /// As [`TokenRepository::start`].
    async fn revoke(&self, user_id: i64, sid: &str) -> Result<bool, RepoError>;
    /// Ends whatever login the user has (a role change, a password reset, signing out
    /// everywhere): every token of the user is refused from the next request on.
    ///
    /// # Errors
    /// As [`TokenRepository::start`].
    async fn end_all(&self, user_id: i64) -> Result<(), RepoError>;
}

/// [`TokenRepository`] over the key-value client. Keys carry a hash tag (`auth:token:{42}`) so
/// that every key of one user lands in one Cluster slot.
#[derive(Component)]
#[shaku(interface = TokenRepository)]
pub struct KvTokenRepository {
    #[shaku(inject)]
    kv: Arc<dyn KeyValueClient>,
    /// Records kept for [`TokenRepository::check`] (Redis: `LoginCache::timed`; the in-process
    /// store needs none).
    #[shaku(default)]
    cache: LoginCache,
}

fn key(user_id: i64) -> String {
    format!("auth:token:{{{user_id}}}")
}

#[async_trait]
impl TokenRepository for KvTokenRepository {
    async fn start(
        &self,
        user_id: i64,
        sid: &str,
        refresh_jti: &str,
        ttl: Duration,
    ) -> Result<(), RepoError> {
        let _forgotten_after = self.cache.changing(user_id);
        self.kv
            .hash_set(
                &key(user_id),
                &[(SID, sid), (REFRESH_JTI, refresh_jti)],
                ttl,
            )
            .await
    }

    async fn get(&self, user_id: i64) -> Result<LoginRecord, RepoError> {
        self.kv.hash_get_all(&key(user_id)).await
    }

    async fn check(&self, user_id: i64, sid: &str) -> Result<LoginCheck, RepoError> {
        self.cache.check(user_id, sid, || self.get(user_id)).await
    }

    async fn rotate(
        &self,
        user_id: i64,
        sid: &str,
        presented: &str,
        next: &str,
        ttl: Duration,
    ) -> Result<Rotation, RepoError> {
        let _forgotten_after = self.cache.changing(user_id);
        let swap = self
            .kv
            .hash_compare_and_swap(
                &key(user_id),
                &[(SID, sid), (REFRESH_JTI, presented)],
                Some(&[(REFRESH_JTI, next)]),
                ttl,
            )
            .await?;
        Ok(match swap {
            HashSwap::Swapped => Rotation::Rotated,
            HashSwap::Missing => Rotation::SignedOut,
            HashSwap::Mismatch(now) if now.get(SID).map(String::as_str) == Some(sid) => {
                Rotation::Reused
            }
            HashSwap::Mismatch(_) => Rotation::Superseded,
        })
    }

    async fn revoke(&self, user_id: i64, sid: &str) -> Result<bool, RepoError> {
        let _forgotten_after = self.cache.changing(user_id);
        let swap = self
            .kv
            .hash_compare_and_swap(&key(user_id), &[(SID, sid)], None, Duration::ZERO)
            .await?;
        Ok(swap == HashSwap::Swapped)
    }

    async fn end_all(&self, user_id: i64) -> Result<(), RepoError> {
        let _forgotten_after = self.cache.changing(user_id);
        self.kv.delete(&key(user_id)).await
    }
}
