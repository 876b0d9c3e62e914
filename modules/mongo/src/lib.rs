//! MongoDB for the repositories (the original's `mongoClient`): one URI for a single node, a
//! replica set (`?replicaSet=`) or a sharded cluster (several `mongos` hosts), with a bounded
//! pool and timeouts so a server that is down answers an error in time.

use std::time::Duration;

use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use mongodb::{Collection, Database, IndexModel, bson, options};

/// The `mongodb` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Use MongoDB at all (the user documents of `/hello`).
    pub enabled: bool,
    /// `mongodb://user:password@host1:port1,host2:port2/?replicaSet=rs0` (the original's `addr`).
    pub addr: SecretString,
    /// The database the repositories use.
    pub database: String,
    /// Most pooled connections per server (the original's `max_open`).
    pub max_open: u32,
    /// Longest wait to connect, and to find a suitable server.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest an operation may take; then the request fails with 503.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum MongoError {
    /// No suitable server answered in time, or the connection broke.
    #[error("mongodb unavailable: {0}")]
    Unavailable(String),
    /// A unique index refused the write (code 11000).
    #[error("duplicate key: {0}")]
    Duplicate(String),
    /// The server refused the operation.
    #[error("mongodb operation failed: {0}")]
    Operation(String),
    /// The URI or options are unusable.
    #[error("mongodb settings: {0}")]
    Settings(String),
}

impl MongoError {
    /// The kinds an operation can fail with (settings errors happen only at build time).
    pub const OPERATION_KINDS: [&'static str; 3] = ["unavailable", "duplicate", "operation"];

    /// `unavailable`, `duplicate`, `operation` or `settings`: a bounded name of the variant,
    /// for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            MongoError::Unavailable(_) => "unavailable",
            MongoError::Duplicate(_) => "duplicate",
            MongoError::Operation(_) => "operation",
            MongoError::Settings(_) => "settings",
        }
    }
}

impl From<mongodb::error::Error> for MongoError {
    fn from(e: mongodb::error::Error) -> Self {
        use mongodb::error::{ErrorKind, WriteFailure};
        match e.kind.as_ref() {
            ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. } => MongoError::Unavailable(e.to_string()),
            ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000 => {
                MongoError::Duplicate(w.message.clone())
            }
            // `findAndModify` reports a duplicate key as a command error.
            ErrorKind::Command(c) if c.code == 11000 => MongoError::Duplicate(c.message.clone()),
            _ if e.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR) => {
                MongoError::Unavailable(e.to_string())
            }
            _ => MongoError::Operation(e.to_string()),
        }
    }
}

/// A cheap-to-clone client bound to the configured database.
#[derive(Clone)]
pub struct MongoClient {
    client: mongodb::Client,
    database: Database,
    command_timeout: Duration,
}

impl MongoClient {
    /// Parses the URI and builds the pool. Nothing connects yet: a server that is down fails
    /// operations, not the start.
    ///
    /// # Errors
    /// The URI or its options are invalid.
    pub async fn new(settings: &Settings) -> Result<Self, MongoError> {
        let mut options = ClientOptions::parse(settings.addr.expose_secret())
            .await
            .map_err(|e| MongoError::Settings(e.to_string()))?;
        options.max_pool_size = Some(settings.max_open.max(1));
        options.connect_timeout = Some(settings.connect_timeout);
        options.server_selection_timeout = Some(settings.connect_timeout);
        options.app_name = Some("go_example".into());
        let client = mongodb::Client::with_options(options)
            .map_err(|e| MongoError::Settings(e.to_string()))?;
        let database = client.database(&settings.database);
        Ok(Self {
            client,
            database,
            command_timeout: settings.command_timeout,
        })
    }

    /// The configured database.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Runs one operation within `command_timeout`.
    ///
    /// # Errors
    /// [`MongoError::Unavailable`] when it takes longer; the operation's own error otherwise.
    pub async fn bounded<T>(
        &self,
        op: impl IntoFuture<Output = Result<T, mongodb::error::Error>>,
    ) -> Result<T, MongoError> {
        match tokio::time::timeout(self.command_timeout, op.into_future()).await {
            Ok(result) => result.map_err(MongoError::from),
            Err(_) => Err(MongoError::Unavailable(format!(
                "no answer within {:?}",
                self.command_timeout
            ))),
        }
    }

    /// `{ping: 1}` on the database.
    ///
    /// # Errors
    /// As [`MongoClient::bounded`].
    pub async fn ping(&self) -> Result<(), MongoError> {
        self.bounded(self.database.run_command(doc! { "ping": 1 }))
            .await
            .map(|_| ())
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        self.client.clone().shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_that_is_down_is_unavailable_in_time() {
        let client = MongoClient::new(&Settings {
            enabled: true,
            addr: SecretString::from("mongodb://127.0.0.1:1/?directConnection=true"),
            database: "x".into(),
            max_open: 2,
            connect_timeout: Duration::from_millis(300),
            command_timeout: Duration::from_millis(800),
        })
        .await
        .unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(
            client.ping().await,
            Err(MongoError::Unavailable(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_bad_uri_is_a_settings_error() {
        let err = MongoClient::new(&Settings {
            enabled: true,
            addr: SecretString::from("postgres://nope"),
            database: "x".into(),
            max_open: 2,
            connect_timeout: Duration::from_millis(300),
            command_timeout: Duration::from_millis(300),
        })
        .await
        .err()
        .unwrap();
        assert!(matches!(err, MongoError::Settings(_)));
    }
}
