//! Login records in the database (`logins`), for deployments without Redis: the embedded
//! default's apps run as separate processes (http, grpc, later socket), and a login made through
//! one must be checkable by the others, so the records live where they all look, not in one
//! process's memory. Every change after the login is one conditional statement, so a refresh
//! can never resurrect a login that a logout or a newer login ended (as the Redis scripts).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use goex_database::{Database, DbError, with_write_connection};

use crate::model::login::LoginRow;
use crate::model::schema::logins;
use crate::repository::cache::login::LoginCache;
use crate::repository::error::RepoError;
use crate::repository::redis::token::{
    LoginCheck, LoginRecord, REFRESH_JTI, Rotation, SID, TokenRepository,
};

/// [`TokenRepository`] over the `logins` table (MySQL or SQLite). Reads go to the primary too:
/// a replica's lag would let a superseded login pass the single sign-on check.
pub struct DieselTokenRepository {
    db: Database,
    /// Records kept for [`TokenRepository::check`]: exact ones for SQLite
    /// ([`LoginCache::versioned`]), none for MySQL.
    cache: LoginCache,
}

impl DieselTokenRepository {
    /// The repository over `db`, keeping records in `cache`.
    pub fn new(db: Database, cache: LoginCache) -> Self {
        Self { db, cache }
    }
}

/// InnoDB may end one of two statements that lock the same rows in opposite orders (MySQL error
/// 1213, which diesel reports by message only); each statement here is idempotent on its own,
/// so the victim is run again.
pub(super) fn is_deadlock(e: &DbError) -> bool {
    matches!(e, DbError::Query(diesel::result::Error::DatabaseError(_, info))
        if info.message().contains("Deadlock found"))
}

/// Runs `statement` again while InnoDB picks it as a deadlock victim (three tries).
pub(super) async fn retrying<T, F, Fut>(mut statement: F) -> Result<T, DbError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbError>>,
{
    let mut tries = 1;
    loop {
        match statement().await {
            Err(e) if is_deadlock(&e) && tries < 3 => tries += 1,
            other => return other,
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn expiry(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

impl DieselTokenRepository {
    async fn current(&self, user_id: i64) -> Result<Option<LoginRow>, RepoError> {
        let db = &self.db;
        let now = now_ms();
        Ok(with_write_connection!(db, |conn| {
            logins::table
                .find(user_id)
                .filter(logins::expires_at.gt(now))
                .select(LoginRow::as_select())
                .first(conn)
                .await
                .optional()
        })?)
    }
}

#[async_trait]
impl TokenRepository for DieselTokenRepository {
    async fn start(
        &self,
        user_id: i64,
        sid: &str,
        refresh_jti: &str,
        ttl: Duration,
    ) -> Result<(), RepoError> {
        let _forgotten_after = self.cache.changing(user_id);
        let db = &self.db;
        let now = now_ms();
        let row = LoginRow {
            user_id,
            sid: sid.to_owned(),
            refresh_jti: refresh_jti.to_owned(),
            expires_at: expiry(now, ttl),
        };
        retrying(|| async {
            with_write_connection!(db, |conn| {
                diesel::replace_into(logins::table)
                    .values(&row)
                    .execute(conn)
                    .await
            })
        })
        .await?;
        // Anyone's expired records, best effort (indexed): the table keeps live logins only.
        // A failure here loses nothing; the next login tries again.
        let _ = with_write_connection!(db, |conn| {
            diesel::delete(logins::table.filter(logins::expires_at.le(now)))
                .execute(conn)
                .await
        });
        Ok(())
    }

    async fn get(&self, user_id: i64) -> Result<LoginRecord, RepoError> {
        Ok(self
            .current(user_id)
            .await?
            .map(|row| {
                HashMap::from([
                    (SID.to_owned(), row.sid),
                    (REFRESH_JTI.to_owned(), row.refresh_jti),
                ])
            })
            .unwrap_or_default())
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
        let db = &self.db;
        let now = now_ms();
        let swapped = retrying(|| async {
            with_write_connection!(db, |conn| {
                diesel::update(
                    logins::table
                        .find(user_id)
                        .filter(logins::sid.eq(sid))
                        .filter(logins::refresh_jti.eq(presented))
                        .filter(logins::expires_at.gt(now)),
                )
                .set((
                    logins::refresh_jti.eq(next),
                    logins::expires_at.eq(expiry(now, ttl)),
                ))
                .execute(conn)
                .await
            })
        })
        .await?;
        if swapped == 1 {
            return Ok(Rotation::Rotated);
        }
        Ok(match self.current(user_id).await? {
            None => Rotation::SignedOut,
            Some(row) if row.sid == sid => Rotation::Reused,
            Some(_) => Rotation::Superseded,
        })
    }

    async fn revoke(&self, user_id: i64, sid: &str) -> Result<bool, RepoError> {
        let _forgotten_after = self.cache.changing(user_id);
        let db = &self.db;
        let now = now_ms();
        let deleted = retrying(|| async {
            with_write_connection!(db, |conn| {
                diesel::delete(
                    logins::table
                        .find(user_id)
                        .filter(logins::sid.eq(sid))
                        .filter(logins::expires_at.gt(now)),
                )
                .execute(conn)
                .await
            })
        })
        .await?;
        Ok(deleted == 1)
    }

    async fn end_all(&self, user_id: i64) -> Result<(), RepoError> {
        let _forgotten_after = self.cache.changing(user_id);
        let db = &self.db;
        retrying(|| async {
            with_write_connection!(db, |conn| {
                diesel::delete(logins::table.find(user_id))
                    .execute(conn)
                    .await
            })
        })
        .await?;
        Ok(())
    }
}
