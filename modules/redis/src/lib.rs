//! Redis for the repositories, single node or Cluster (the original's go-redis single client and
//! `ClusterClient`). Every command is bounded by `command_timeout`, so a node that is down or
//! failing over answers an error in time, never a hang.
//!
//! Connections are made by deadpool-redis's managers and are multiplexed: `pool_size` of them
//! are shared round-robin by every request, without a checkout. deadpool's pool sends a `PING`
//! round trip before every command (its recycle check), which cost the Cluster path 40 % of its
//! throughput (docs/benchmarks.md); here a connection that fails is dropped instead, and the
//! next command on its slot makes a fresh one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub mod pubsub;

use deadpool::managed::Manager as _;
use deadpool_redis::cluster::ClusterConnection;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, FromRedisValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use deadpool_redis::redis::{Cmd, Pipeline, Script, ScriptInvocation, cmd, pipe};

/// `single` or `cluster`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One server (`addrs[0]`), with `db`.
    Single,
    /// A Redis Cluster reached through any of `addrs` (db 0 only, by Redis's design).
    Cluster,
}

/// The `redis` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Use Redis at all; off means the in-process stores of the embedded default.
    pub enabled: bool,
    /// `single` or `cluster`.
    pub mode: Mode,
    /// `host:port` of the server, or seed nodes of the cluster.
    pub addrs: Vec<String>,
    /// The `AUTH` password; empty for none.
    pub password: SecretString,
    /// Database number (single mode).
    pub db: i64,
    /// Multiplexed connections shared by all requests of the process.
    pub pool_size: usize,
    /// Longest wait to connect.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest a command may take, retries and cluster redirections included.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
}

impl Settings {
    /// Whether an `AUTH` password is configured (without exposing it).
    pub fn has_password(&self) -> bool {
        !self.password.expose_secret().is_empty()
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// No node answered in time, the connection broke, or the cluster is failing over.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// The server refused the command (wrong type, bad arguments).
    #[error("redis command failed: {0}")]
    Command(String),
    /// The settings cannot make a client.
    #[error("redis settings: {0}")]
    Settings(String),
}

impl RedisError {
    /// The kinds a command can fail with (settings errors happen only at build time).
    pub const COMMAND_KINDS: [&'static str; 2] = ["unavailable", "command"];

    /// `unavailable`, `command` or `settings`: a bounded name of the variant, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RedisError::Unavailable(_) => "unavailable",
            RedisError::Command(_) => "command",
            RedisError::Settings(_) => "settings",
        }
    }
}

impl From<redis::RedisError> for RedisError {
    fn from(e: redis::RedisError) -> Self {
        use redis::ErrorKind;
        let unavailable = e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_timeout()
            || e.is_cluster_error()
            || matches!(
                e.kind(),
                ErrorKind::Server(_) if matches!(
                    e.code(),
                    Some("CLUSTERDOWN" | "TRYAGAIN" | "MASTERDOWN" | "LOADING" | "READONLY" | "MOVED" | "ASK")
                )
            );
        if unavailable {
            RedisError::Unavailable(e.to_string())
        } else {
            RedisError::Command(e.to_string())
        }
    }
}

enum Factory {
    Single(deadpool_redis::Manager),
    Cluster(deadpool_redis::cluster::Manager),
}

#[derive(Clone)]
enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Factory {
    async fn create(&self) -> Result<Connection, redis::RedisError> {
        Ok(match self {
            Factory::Single(m) => Connection::Single(m.create().await?),
            Factory::Cluster(m) => Connection::Cluster(m.create().await?),
        })
    }
}

/// `pool_size` lazily made connections, handed out round-robin.
struct Connections {
    factory: Factory,
    slots: Vec<Mutex<Option<Connection>>>,
    /// One connect at a time per slot: the commands that find a slot empty wait for its one
    /// new connection instead of each making their own (a burst of 200 first commands would
    /// otherwise open 200 connections, each reaching every node of a Cluster, and time out).
    connecting: Vec<tokio::sync::Mutex<()>>,
    next: AtomicUsize,
    connect_timeout: Duration,
}

impl Connections {
    fn cached(&self, slot: usize) -> Option<Connection> {
        self.slots[slot]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn get(&self) -> Result<(usize, Connection), RedisError> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        if let Some(conn) = self.cached(slot) {
            return Ok((slot, conn));
        }
        let _connecting = self.connecting[slot].lock().await;
        if let Some(conn) = self.cached(slot) {
            return Ok((slot, conn));
        }
        let conn = match tokio::time::timeout(self.connect_timeout, self.factory.create()).await {
            Ok(conn) => conn?,
            Err(_) => {
                return Err(RedisError::Unavailable(format!(
                    "no connection within {:?}",
                    self.connect_timeout
                )));
            }
        };
        *self.slots[slot]
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(conn.clone());
        Ok((slot, conn))
    }

    fn discard(&self, slot: usize) {
        *self.slots[slot]
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Told of every command the client sends (the application's tracing implements it: a span per
/// command). Called on the request path, inside the future that sends the command, so the
/// request's task-locals are there; implementations must be cheap when they do not follow it.
pub trait CommandObserver: Send + Sync {
    /// `command` is about to be sent: what to tell when it is answered, or `None`.
    fn start(&self, command: &Command<'_>) -> Option<Box<dyn CommandEnd>>;
}

/// The end of a command a [`CommandObserver`] follows.
pub trait CommandEnd: Send {
    /// It was answered, or failed with `error`.
    fn end(self: Box<Self>, error: Option<&RedisError>);
}

/// A command as it is sent: its name only ([`Command::name`]), never a key or a value.
pub struct Command<'a> {
    sent: Sent<'a>,
    /// The server, `host:port`, in single mode; `None` in cluster mode (any node may answer).
    pub server: Option<&'a str>,
}

/// What is sent, read only when the observer asks its name.
#[derive(Clone, Copy)]
enum Sent<'a> {
    Command(&'a Cmd),
    Pipeline(&'a Pipeline),
    Script,
}

impl Command<'_> {
    /// The command's name, upper-cased (`GET`, `SET`, `EVALSHA`), `PIPELINE` or `MULTI` for a
    /// pipeline (atomic or not), or `OTHER` for a name that is not plain letters. Made on
    /// demand: an observer that does not follow the command never pays for it.
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        match self.sent {
            Sent::Command(cmd) => match cmd.args_iter().next() {
                Some(redis::Arg::Simple(name)) => command_name(name),
                _ => NAME_OTHER.into(),
            },
            Sent::Pipeline(pipeline) => {
                // A `MULTI` transaction's first command is `MULTI`.
                let atomic = pipeline.cmd_iter().next().is_some_and(|c| {
                    matches!(c.args_iter().next(), Some(redis::Arg::Simple(n)) if n.eq_ignore_ascii_case(b"MULTI"))
                });
                (if atomic { "MULTI" } else { "PIPELINE" }).into()
            }
            Sent::Script => "EVALSHA".into(),
        }
    }
}

/// A cheap-to-clone Redis client.
#[derive(Clone)]
pub struct RedisClient {
    connections: Arc<Connections>,
    command_timeout: Duration,
    observer: Option<Arc<dyn CommandObserver>>,
    server: Option<Arc<str>>,
}

impl RedisClient {
    /// Builds the client. Nothing connects yet: a Redis that is down fails commands, not the
    /// start.
    ///
    /// # Errors
    /// No address, or an address that is not `host:port`.
    pub fn new(settings: &Settings) -> Result<Self, RedisError> {
        if settings.addrs.is_empty() {
            return Err(RedisError::Settings("redis.addrs is empty".into()));
        }
        let auth = userinfo("", settings.password.expose_secret());
        let bad = |e: redis::RedisError| RedisError::Settings(e.to_string());
        let factory = match settings.mode {
            Mode::Single => {
                let url = format!("redis://{auth}{}/{}", settings.addrs[0], settings.db);
                Factory::Single(deadpool_redis::Manager::new(url).map_err(bad)?)
            }
            Mode::Cluster => {
                let urls: Vec<String> = settings
                    .addrs
                    .iter()
                    .map(|a| format!("redis://{auth}{a}"))
                    .collect();
                Factory::Cluster(deadpool_redis::cluster::Manager::new(urls, false).map_err(bad)?)
            }
        };
        let connections = Connections {
            factory,
            slots: (0..settings.pool_size.max(1))
                .map(|_| Mutex::new(None))
                .collect(),
            connecting: (0..settings.pool_size.max(1))
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            next: AtomicUsize::new(0),
            connect_timeout: settings.connect_timeout,
        };
        Ok(Self {
            connections: Arc::new(connections),
            command_timeout: settings.command_timeout,
            observer: None,
            server: (settings.mode == Mode::Single).then(|| Arc::from(settings.addrs[0].as_str())),
        })
    }

    /// This client with every command reported to `observer` (before it is cloned).
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn CommandObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Runs one command within `command_timeout`.
    ///
    /// # Errors
    /// [`RedisError::Unavailable`] on timeouts and connection or cluster failures,
    /// [`RedisError::Command`] when the server refuses it.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        self.observed(
            Sent::Command(cmd),
            async |conn: &mut Connection| match conn {
                Connection::Single(c) => cmd.query_async(c).await,
                Connection::Cluster(c) => cmd.query_async(c).await,
            },
        )
        .await
    }

    /// Runs a pipeline (a `MULTI` transaction when built with `.atomic()`) within
    /// `command_timeout`. In cluster mode every key must hash to one slot: use hash tags.
    ///
    /// # Errors
    /// As [`RedisClient::query`].
    pub async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipeline: &Pipeline,
    ) -> Result<T, RedisError> {
        self.observed(
            Sent::Pipeline(pipeline),
            async |conn: &mut Connection| match conn {
                Connection::Single(c) => pipeline.query_async(c).await,
                Connection::Cluster(c) => pipeline.query_async(c).await,
            },
        )
        .await
    }

    /// Runs a Lua script by its SHA1 (`EVALSHA`) within `command_timeout`. A node that does not
    /// hold it (`NOSCRIPT`: restarted, failed over, flushed, or new to the cluster) gets it with
    /// `SCRIPT LOAD` (in cluster mode on every master) and the call is sent once more, so the
    /// script's text crosses the wire only when a node lacks it. In cluster mode the script's
    /// keys must share one slot.
    ///
    /// # Errors
    /// As [`RedisClient::query`].
    pub async fn invoke_script<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        self.observed(Sent::Script, async |conn: &mut Connection| match conn {
            Connection::Single(c) => invocation.invoke_async(c).await,
            Connection::Cluster(c) => invocation.invoke_async(c).await,
        })
        .await
    }

    /// `PING`.
    ///
    /// # Errors
    /// As [`RedisClient::query`].
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.query::<String>(&cmd("PING")).await.map(|_| ())
    }

    /// Drops every connection.
    pub fn close(&self) {
        for slot in 0..self.connections.slots.len() {
            self.connections.discard(slot);
        }
    }

    /// [`RedisClient::bounded`], reported to the observer as `sent`.
    async fn observed<T>(
        &self,
        sent: Sent<'_>,
        op: impl AsyncFnOnce(&mut Connection) -> Result<T, redis::RedisError>,
    ) -> Result<T, RedisError> {
        let Some(observer) = &self.observer else {
            return self.bounded(op).await;
        };
        let end = observer.start(&Command {
            sent,
            server: self.server.as_deref(),
        });
        let result = self.bounded(op).await;
        if let Some(end) = end {
            end.end(result.as_ref().err());
        }
        result
    }

    /// Runs `op` on a shared connection within `command_timeout`; a connection that fails is
    /// dropped so the next command on its slot reconnects (and re-reads the cluster's slots).
    async fn bounded<T>(
        &self,
        op: impl AsyncFnOnce(&mut Connection) -> Result<T, redis::RedisError>,
    ) -> Result<T, RedisError> {
        let started = tokio::time::Instant::now();
        let (slot, mut conn) = tokio::time::timeout(self.command_timeout, self.connections.get())
            .await
            .map_err(|_| {
                RedisError::Unavailable(format!("no connection within {:?}", self.command_timeout))
            })??;
        let left = self.command_timeout.saturating_sub(started.elapsed());
        let result = match tokio::time::timeout(left, op(&mut conn)).await {
            Ok(result) => result.map_err(RedisError::from),
            Err(_) => Err(RedisError::Unavailable(format!(
                "no answer within {:?}",
                self.command_timeout
            ))),
        };
        if matches!(result, Err(RedisError::Unavailable(_))) {
            self.connections.discard(slot);
        }
        result
    }
}

/// The name a command is reported as when it is not plain letters.
const NAME_OTHER: &str = "OTHER";

/// A command's name as reported: its first argument upper-cased when it is 1 to 32 ASCII
/// letters (every Redis command's is; a key or value never comes first), else `OTHER`.
fn command_name(first: &[u8]) -> std::borrow::Cow<'static, str> {
    if first.is_empty() || first.len() > 32 || !first.iter().all(u8::is_ascii_alphabetic) {
        return NAME_OTHER.into();
    }
    // Letters only (checked above): one allocation for the upper-cased copy.
    first
        .iter()
        .map(|b| char::from(b.to_ascii_uppercase()))
        .collect::<String>()
        .into()
}

/// The `user:password@` part of a `redis://` URL, empty without credentials. Both halves are
/// percent-encoded (RFC 3986: everything but unreserved characters), so a password holding `@`,
/// `/`, `:`, `%` or `#` reaches `AUTH` unchanged instead of breaking the URL; the redis crate
/// percent-decodes them back.
fn userinfo(username: &str, password: &str) -> String {
    if username.is_empty() && password.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(username.len() + password.len() + 2);
    percent_encode(&mut out, username);
    if !password.is_empty() {
        out.push(':');
        percent_encode(&mut out, password);
    }
    out.push('@');
    out
}

fn percent_encode(out: &mut String, text: &str) {
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_reported_by_its_name_alone() {
        assert_eq!(command_name(b"get"), "GET");
        assert_eq!(command_name(b"EVALSHA"), "EVALSHA");
        for not_a_name in [
            &b""[..],
            b"user:1",
            b"12",
            b"a b",
            &[b'A'; 33],
            "é".as_bytes(),
        ] {
            assert_eq!(command_name(not_a_name), NAME_OTHER, "{not_a_name:?}");
        }
    }
    use deadpool_redis::redis::IntoConnectionInfo;

    #[test]
    fn credentials_survive_the_url() {
        for password in [
            "plain",
            "p@ss/w:rd%41#frag?q=1 &[]é",
            "@",
            "%",
            ":",
            "#",
            "/",
        ] {
            for username in ["", "app", "us:er@x"] {
                let url = format!("redis://{}127.0.0.1:6379/3", userinfo(username, password));
                let info = url
                    .as_str()
                    .into_connection_info()
                    .unwrap_or_else(|e| panic!("{url}: {e}"));
                let redis = info.redis_settings();
                assert_eq!(redis.password(), Some(password), "{url}");
                assert_eq!(
                    redis.username(),
                    (!username.is_empty()).then_some(username),
                    "{url}"
                );
                assert_eq!(redis.db(), 3, "{url}");
            }
        }
        assert_eq!(userinfo("", ""), "");
        assert_eq!(userinfo("", "a@b"), ":a%40b@");
    }

    #[test]
    fn a_password_with_url_characters_makes_a_client() {
        let mut s = settings(Mode::Single, &["127.0.0.1:6379"]);
        s.password = SecretString::from("p@ss/w:rd%#");
        assert!(RedisClient::new(&s).is_ok());
        s.mode = Mode::Cluster;
        assert!(RedisClient::new(&s).is_ok());
    }

    fn settings(mode: Mode, addrs: &[&str]) -> Settings {
        Settings {
            enabled: true,
            mode,
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
            password: SecretString::from(""),
            db: 0,
            pool_size: 2,
            connect_timeout: Duration::from_millis(300),
            command_timeout: Duration::from_millis(500),
        }
    }

    #[test]
    fn empty_addresses_are_refused() {
        assert!(matches!(
            RedisClient::new(&settings(Mode::Single, &[])),
            Err(RedisError::Settings(_))
        ));
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_unavailable_in_time() {
        for mode in [Mode::Single, Mode::Cluster] {
            let client = RedisClient::new(&settings(mode, &["127.0.0.1:1"])).unwrap();
            let started = std::time::Instant::now();
            let err = client.ping().await.unwrap_err();
            assert!(matches!(err, RedisError::Unavailable(_)), "{mode:?}: {err}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{mode:?} bounded"
            );
        }
    }
}
