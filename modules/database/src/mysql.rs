//! MySQL specifics: a node's pool and its connection setup, and the reaper that enforces the
//! original's idle and lifetime limits.

use std::time::Duration;

use diesel::result::ConnectionError;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};
use slog::Logger;

use std::sync::Arc;

use crate::observe::Instruments;
use crate::{
    DatabaseSettings, DbError, MysqlSettings, StatementObserver, mysql_url, node_label, recycle,
};

/// The pool of one MySQL node (the primary or a replica): UTC sessions, made on first use,
/// with Go's `max_idle` and `max_lifetime` enforced beside it; each connection's statements
/// go to `statements` when given.
pub(crate) fn mysql_pool(
    settings: &DatabaseSettings,
    mysql: &MysqlSettings,
    dsn: &str,
    logger: &Logger,
    statements: Option<&Arc<dyn StatementObserver>>,
) -> Result<recycle::MysqlPool, DbError> {
    let url = mysql_url(dsn)?;
    let sql_log = mysql
        .is_debug
        .then(|| logger.new(slog::o!("db" => "mysql")));
    let statements = statements.map(|s| (s.clone(), Arc::<str>::from(node_label(dsn))));
    let mut config = ManagerConfig::<AsyncMysqlConnection>::default();
    config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        let instruments = Instruments::new(sql_log.clone(), statements.clone());
        Box::pin(async move {
            let mut conn = AsyncMysqlConnection::establish(&url).await?;
            // Sessions in UTC: TIMESTAMP defaults (CURRENT_TIMESTAMP) and the values the
            // application writes (chrono's UTC) then agree, as they do on SQLite, whatever the
            // server's own time zone.
            conn.batch_execute("SET time_zone = '+00:00'")
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            if instruments.any() {
                conn.set_instrumentation(instruments);
            }
            Ok(conn)
        })
    });
    let manager = recycle::MysqlManager::new(
        AsyncDieselConnectionManager::<AsyncMysqlConnection>::new_with_config(url, config),
        settings.verify_idle_after,
    );
    let pool = deadpool::managed::Pool::builder(manager)
        .max_size(mysql.max_open.max(1))
        .wait_timeout(Some(settings.acquire_timeout))
        .create_timeout(Some(mysql.connect_timeout))
        .recycle_timeout(Some(mysql.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Settings(e.to_string()))?;
    spawn_reaper(pool.clone(), mysql.max_idle, mysql.max_lifetime);
    Ok(pool)
}

/// Enforces `max_idle` and `max_lifetime` on idle connections once a second, the way Go's
/// `database/sql` does (deadpool itself only bounds the total).
fn spawn_reaper(pool: recycle::MysqlPool, max_idle: usize, max_lifetime: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if pool.is_closed() {
                break;
            }
            let mut kept = 0usize;
            pool.retain(|_, metrics| {
                let keep =
                    (max_lifetime.is_zero() || metrics.age() < max_lifetime) && kept < max_idle;
                kept += usize::from(keep);
                keep
            });
        }
    });
}
