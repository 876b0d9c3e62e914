//! The `database`, `sqlite` and `mysql` config sections, as the application's YAML spells them.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{DbError, MysqlAccount, group, mysql_account, recycle};

/// Which database backs the repositories (`database.driver`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// The embedded default: a SQLite file, no server.
    Sqlite,
    /// A MySQL or MariaDB server.
    Mysql,
}

/// The `database` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite` or `mysql`.
    pub driver: Driver,
    /// Apply pending migrations when the app starts (on for the embedded default).
    pub migrate_on_start: bool,
    /// Longest wait for a free pooled connection before the request fails with 503.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Longest a statement may run before the request fails with 503 (a hung server must not
    /// hang requests).
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// A MySQL connection idle longer than this is checked (`SELECT 1`) before it is handed
    /// out; one used more recently is trusted (a dead one is dropped by the statement that
    /// finds it: `recycle`).
    #[serde(with = "humantime_serde", default = "default_verify_idle_after")]
    pub verify_idle_after: Duration,
}

fn default_verify_idle_after() -> Duration {
    recycle::VERIFY_AFTER
}

/// The `sqlite` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSettings {
    /// The database file; its folder is created if missing.
    pub path: PathBuf,
    /// Pooled connections (SQLite serialises writers; readers run in parallel under WAL).
    pub max_open: usize,
    /// How long a writer waits for the lock before failing (`PRAGMA busy_timeout`).
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// Log every SQL statement at debug level.
    pub is_debug: bool,
}

/// The `mysql` section (the original's `SingleConfig`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSettings {
    /// `mysql://user:password@host:port/database`; the Go form
    /// `user:password@tcp(host:port)/database?charset=utf8mb4` is accepted too.
    pub dsn: SecretString,
    /// Most connections open at once (`SetMaxOpenConns`).
    pub max_open: usize,
    /// Most idle connections kept (`SetMaxIdleConns`); extra idle ones are closed.
    pub max_idle: usize,
    /// Connections older than this are closed and replaced (`SetConnMaxLifetime`).
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Duration,
    /// Longest wait for a new connection to be established.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Log every SQL statement at debug level (xorm `ShowSQL`).
    pub is_debug: bool,
    /// Read replicas; empty means a single node. `mysql.dsn` is the primary.
    pub replicas: Vec<ReplicaSettings>,
    /// How reads are spread over healthy replicas.
    pub read_policy: group::ReadPolicy,
    /// How often replicas are pinged; a failing one leaves the rotation until it answers again.
    #[serde(with = "humantime_serde")]
    pub health_check_interval: Duration,
    /// After a session writes, its reads stay on the primary this long (0 = off).
    #[serde(with = "humantime_serde")]
    pub read_your_writes: Duration,
}

impl MysqlSettings {
    /// Who each DSN signs in as, by config key: `mysql.dsn`, then `mysql.replicas[i].dsn`
    /// (see [`mysql_account`]; the passwords stay inside).
    pub fn accounts(&self) -> Vec<(String, Result<MysqlAccount, DbError>)> {
        std::iter::once(("mysql.dsn".to_owned(), &self.dsn))
            .chain(
                self.replicas
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (format!("mysql.replicas[{i}].dsn"), &r.dsn)),
            )
            .map(|(key, dsn)| (key, mysql_account(dsn.expose_secret())))
            .collect()
    }
}

/// One read replica (`mysql.replicas[]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaSettings {
    /// Its DSN. Use an account without write privileges: a write applied on a replica breaks
    /// GTID replication.
    pub dsn: SecretString,
    /// Share of reads under the `weighted` policy.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}
