//! Login records kept in process for the single sign-on check of every protected request
//! (`auth.login_cache_*`, docs/auth.md): the token repositories answer
//! [`TokenRepository::check`](crate::repository::redis::token::TokenRepository::check) from here
//! when they may, and read their store when they may not.
//!
//! How fresh a kept record is depends on the store:
//! - **SQLite** ([`LoginCache::versioned`]): a record is kept with the file's
//!   [`DataVersion`] at the time it was read, and used only while the version is unchanged. Any
//!   commit to the file, by this process or another, changes it, so a logout, a newer login or a
//!   revocation made anywhere takes effect on the very next request. The version is read on
//!   every check (a few microseconds, in place): this is what replaces a query per request.
//! - **Redis** ([`LoginCache::timed`]): Redis says nothing when another process changes a
//!   record, so a kept record is trusted for at most `auth.login_cache_ttl` (≤ 1 s), and only
//!   to let its own login through: a token the record does not match is always checked against
//!   Redis, so a new login is never refused because of an old record.
//! - **MySQL** and the in-process store: nothing kept ([`LoginCache::off`]).
//!
//! Every write of this process forgets the user's record, and a read that raced with one is not
//! kept, so this process sees its own changes at once whatever the store.

use std::collections::HashMap;
use std::future::Future;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use goex_database::watch::{ChangeWatch, DataVersion};
use goex_metrics::CacheLookups;

use crate::repository::error::RepoError;
use crate::repository::redis::token::{LoginCheck, LoginRecord, SID};

/// See the module's documentation.
#[derive(Default)]
pub struct LoginCache {
    kept: Option<Kept>,
    /// Counts this process's writes: a read that saw it change may predate one and is not kept.
    writes: AtomicU64,
}

/// The records by user id. A plain map under a lock, not moka: a lookup is on every protected
/// request, and moka's costs about 900 instructions (profiled, issue 23) against ~100 here.
/// Bounded by `capacity`: a full map starts over (kept records are an optimisation, never
/// needed; the store answers the next check of each user).
type Records = HashMap<i64, Entry, foldhash::fast::RandomState>;

struct Kept {
    records: RwLock<Records>,
    capacity: usize,
    freshness: Freshness,
    lookups: Option<CacheLookups>,
}

impl Kept {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Records> {
        self.records.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Records> {
        self.records.write().unwrap_or_else(|e| e.into_inner())
    }
}

enum Freshness {
    /// Valid while the SQLite file's data version is the one the record was read at.
    Versioned(ChangeWatch),
    /// Valid for this long after it was read, and only for a token that matches it.
    Timed(Duration),
}

struct Entry {
    /// The current login's id; `None` when the user has none.
    sid: Option<String>,
    /// The data version the record was read at (`Versioned` only).
    version: Option<DataVersion>,
    /// When it was read (`Timed` only).
    read_at: Instant,
}

impl LoginCache {
    /// Keeps nothing: every check reads the store.
    pub fn off() -> Self {
        Self::default()
    }

    /// For the `logins` table of a SQLite file that `watch` watches: records are exact.
    pub fn versioned(watch: ChangeWatch, capacity: u64, lookups: Option<CacheLookups>) -> Self {
        Self::keeping(capacity, Freshness::Versioned(watch), lookups)
    }

    /// For Redis: a record lets its own login through for `ttl` after it was read.
    pub fn timed(ttl: Duration, capacity: u64, lookups: Option<CacheLookups>) -> Self {
        if ttl.is_zero() {
            return Self::off();
        }
        Self::keeping(capacity, Freshness::Timed(ttl), lookups)
    }

    fn keeping(capacity: u64, freshness: Freshness, lookups: Option<CacheLookups>) -> Self {
        if capacity == 0 {
            return Self::off();
        }
        Self {
            kept: Some(Kept {
                records: RwLock::new(Records::default()),
                capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
                freshness,
                lookups,
            }),
            writes: AtomicU64::new(0),
        }
    }

    /// Whether login `sid` is the user's current one, from a kept record when it is fresh
    /// enough, else from `load` (the store's record), which is then kept.
    ///
    /// # Errors
    /// `load`'s.
    pub async fn check<F, Fut>(
        &self,
        user_id: i64,
        sid: &str,
        load: F,
    ) -> Result<LoginCheck, RepoError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<LoginRecord, RepoError>>,
    {
        let Some(kept) = &self.kept else {
            return Ok(LoginCheck::in_record(&load().await?, sid));
        };
        let version = match &kept.freshness {
            Freshness::Versioned(watch) => match watch.version() {
                Some(version) => Some(version),
                // Unknown: the store answers, and nothing is kept.
                None => return Ok(LoginCheck::in_record(&load().await?, sid)),
            },
            Freshness::Timed(_) => None,
        };
        let kept_answer = kept.read().get(&user_id).and_then(|entry| {
            let answer = LoginCheck::of(entry.sid.as_deref(), sid);
            let fresh = match kept.freshness {
                Freshness::Versioned(_) => entry.version == version,
                Freshness::Timed(ttl) => {
                    answer == LoginCheck::Current && entry.read_at.elapsed() < ttl
                }
            };
            fresh.then_some(answer)
        });
        if let Some(answer) = kept_answer {
            Self::count(kept, true);
            return Ok(answer);
        }
        Self::count(kept, false);
        let writes = self.writes.load(Ordering::Acquire);
        let record = load().await?;
        let answer = LoginCheck::in_record(&record, sid);
        let entry = Entry {
            sid: record.get(SID).cloned(),
            version,
            read_at: Instant::now(),
        };
        let mut records = kept.write();
        // Checked under the lock `forget` takes: a write of this process after the load began
        // keeps the record out.
        if self.writes.load(Ordering::Acquire) == writes {
            if records.len() >= kept.capacity && !records.contains_key(&user_id) {
                records.clear();
            }
            records.insert(user_id, entry);
        }
        Ok(answer)
    }

    /// This process is changing the user's record: it is forgotten when the returned guard
    /// drops, after the write (or its failure or cancellation). Forgetting before the write would
    /// let a check that reads the old record during the write keep it.
    pub fn changing(&self, user_id: i64) -> Changing<'_> {
        Changing {
            cache: self,
            user_id,
        }
    }

    /// This process changed the user's record: forget it.
    pub fn forget(&self, user_id: i64) {
        if let Some(kept) = &self.kept {
            let mut records = kept.write();
            self.writes.fetch_add(1, Ordering::AcqRel);
            records.remove(&user_id);
        }
    }

    fn count(kept: &Kept, hit: bool) {
        if let Some(lookups) = &kept.lookups {
            lookups.record(hit);
        }
    }
}

/// See [`LoginCache::changing`].
pub struct Changing<'a> {
    cache: &'a LoginCache,
    user_id: i64,
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        self.cache.forget(self.user_id);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn record(sid: &str) -> LoginRecord {
        HashMap::from([(SID.to_owned(), sid.to_owned())])
    }

    #[tokio::test]
    async fn a_timed_record_lets_only_its_own_login_through() {
        let cache = LoginCache::timed(Duration::from_secs(1), 10, None);
        let loads = AtomicUsize::new(0);
        let load = |sid: &'static str| {
            let loads = &loads;
            move || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok(record(sid))
            }
        };
        assert_eq!(
            cache.check(1, "a", load("a")).await.unwrap(),
            LoginCheck::Current
        );
        assert_eq!(
            cache.check(1, "a", load("a")).await.unwrap(),
            LoginCheck::Current
        );
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "the second check is answered in process"
        );
        // Another process's newer login: the kept record says "elsewhere" for the new token,
        // which is therefore checked against the store, and let through.
        assert_eq!(
            cache.check(1, "b", load("b")).await.unwrap(),
            LoginCheck::Current
        );
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_write_of_this_process_is_seen_at_once_even_by_a_read_in_flight() {
        let cache = LoginCache::timed(Duration::from_secs(1), 10, None);
        // A read that started before this process's logout and ends after it.
        let answer = cache
            .check(1, "a", || async {
                cache.forget(1);
                Ok(record("a"))
            })
            .await
            .unwrap();
        assert_eq!(answer, LoginCheck::Current, "it answers what it read");
        let after = cache
            .check(1, "a", || async { Ok(LoginRecord::new()) })
            .await
            .unwrap();
        assert_eq!(after, LoginCheck::SignedOut, "but its record was not kept");
    }

    #[tokio::test]
    async fn a_record_read_while_this_process_changes_it_is_not_kept() {
        let cache = LoginCache::timed(Duration::from_secs(1), 10, None);
        let logout = cache.changing(1);
        // A check during the logout's write reads the record from before it.
        let during = cache
            .check(1, "a", || async { Ok(record("a")) })
            .await
            .unwrap();
        assert_eq!(during, LoginCheck::Current);
        drop(logout);
        let after = cache
            .check(1, "a", || async { Ok(LoginRecord::new()) })
            .await
            .unwrap();
        assert_eq!(after, LoginCheck::SignedOut, "the old record was forgotten");
    }

    #[tokio::test]
    async fn a_full_cache_starts_over_and_answers_as_the_store_does() {
        let cache = LoginCache::timed(Duration::from_secs(1), 2, None);
        for user in 1..=5 {
            let answer = cache
                .check(user, "a", || async { Ok(record("a")) })
                .await
                .unwrap();
            assert_eq!(answer, LoginCheck::Current);
            assert!(cache.kept.as_ref().unwrap().read().len() <= 2, "bounded");
        }
        let signed_out = cache
            .check(5, "b", || async { Ok(LoginRecord::new()) })
            .await
            .unwrap();
        assert_eq!(signed_out, LoginCheck::SignedOut);
    }

    #[tokio::test]
    async fn capacity_or_ttl_zero_keeps_nothing() {
        for cache in [
            LoginCache::timed(Duration::ZERO, 10, None),
            LoginCache::timed(Duration::from_secs(1), 0, None),
        ] {
            assert!(cache.kept.is_none());
        }
    }
}
