//! Classic Redis pub/sub for fan-out across instances: [`Subscriptions`] keeps one subscribing
//! connection to one node (a Redis Cluster propagates every classic `PUBLISH` to all its
//! nodes, so any node hears every channel), subscribed to exactly the channels wanted now,
//! and reconnects to the next address with backoff when the node goes away (re-subscribing
//! every wanted channel). Messages are at most once: one published while no connection
//! stood is lost, as Redis pub/sub always is.
//!
//! Publishing goes through the pooled [`crate::RedisClient`] like any command (`PUBLISH`).

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use secrecy::ExposeSecret;

use crate::{Mode, RedisError, Settings};

/// What the subscribing loop reports (for logs and metrics of its owner).
#[derive(Debug)]
pub enum Event<'a> {
    /// Subscribed on `node` to the channels wanted (after a start or a reconnect).
    Connected {
        /// `host:port`.
        node: &'a str,
    },
    /// The connection to `node` failed or broke; the next try is after `retry_in`.
    Lost {
        /// `host:port`.
        node: &'a str,
        /// Why.
        error: String,
        /// The pause before the next address is tried.
        retry_in: Duration,
    },
}

/// The channels wanted, and the loop that keeps a connection subscribed to them.
pub struct Subscriptions {
    nodes: Vec<(String, String)>,
    connect_timeout: Duration,
    wanted: Mutex<BTreeSet<String>>,
    changed: tokio::sync::Notify,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriptions")
            .field(
                "nodes",
                &self.nodes.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Subscriptions {
    /// Subscriptions on the nodes of `settings` (single: its server; cluster: each seed node
    /// in turn). Nothing connects until [`Subscriptions::run`].
    ///
    /// # Errors
    /// No address.
    pub fn new(settings: &Settings) -> Result<Self, RedisError> {
        if settings.addrs.is_empty() {
            return Err(RedisError::Settings("redis.addrs is empty".into()));
        }
        let auth = crate::userinfo("", settings.password.expose_secret());
        let nodes = match settings.mode {
            Mode::Single => vec![(
                settings.addrs[0].clone(),
                format!("redis://{auth}{}/{}", settings.addrs[0], settings.db),
            )],
            Mode::Cluster => settings
                .addrs
                .iter()
                .map(|a| (a.clone(), format!("redis://{auth}{a}")))
                .collect(),
        };
        Ok(Self {
            nodes,
            connect_timeout: settings.connect_timeout,
            wanted: Mutex::default(),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// Subscribes to `channel` (at once when connected, else on connecting).
    pub fn want(&self, channel: &str) {
        if self.lock().insert(channel.to_owned()) {
            self.changed.notify_one();
        }
    }

    /// Unsubscribes from `channel`.
    pub fn forget(&self, channel: &str) {
        if self.lock().remove(channel) {
            self.changed.notify_one();
        }
    }

    /// The channels wanted now.
    pub fn wanted(&self) -> BTreeSet<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.wanted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a connection subscribed to the wanted channels, calling `on_message(channel,
    /// payload)` for each message and `on_event` when it connects or loses its node. Never
    /// returns; drop the future to stop.
    pub async fn run(
        &self,
        mut on_message: impl FnMut(&str, &[u8]),
        mut on_event: impl FnMut(Event<'_>),
    ) {
        const FIRST_PAUSE: Duration = Duration::from_millis(250);
        let mut pause = FIRST_PAUSE;
        for (node, url) in self.nodes.iter().cycle() {
            let mut subscribed = false;
            let result = self
                .serve(url, node, &mut on_message, &mut |event| {
                    subscribed |= matches!(event, Event::Connected { .. });
                    on_event(event);
                })
                .await;
            // A connection that stood starts the backoff over.
            if subscribed {
                pause = FIRST_PAUSE;
            }
            let error = match result {
                Ok(()) => "the connection closed".to_owned(),
                Err(e) => e.to_string(),
            };
            on_event(Event::Lost {
                node,
                error,
                retry_in: pause,
            });
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// One connection's life: subscribe to what is wanted, then follow both the messages and
    /// the changes of what is wanted, until the connection ends.
    async fn serve(
        &self,
        url: &str,
        node: &str,
        on_message: &mut impl FnMut(&str, &[u8]),
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<(), redis::RedisError> {
        let client = redis::Client::open(url)?;
        let connect = client.get_async_pubsub();
        let pubsub = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| {
                redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
            })??;
        let (mut sink, mut stream) = pubsub.split();
        let mut subscribed = BTreeSet::new();
        self.sync(&mut sink, &mut subscribed).await?;
        on_event(Event::Connected { node });
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => on_message(message.get_channel_name(), message.get_payload_bytes()),
                    None => return Ok(()),
                },
                () = self.changed.notified() => self.sync(&mut sink, &mut subscribed).await?,
            }
        }
    }

    /// Subscribes to the wanted channels not yet subscribed, unsubscribes from the others.
    async fn sync(
        &self,
        sink: &mut redis::aio::PubSubSink,
        subscribed: &mut BTreeSet<String>,
    ) -> Result<(), redis::RedisError> {
        let wanted = self.wanted();
        let new: Vec<&String> = wanted.difference(subscribed).collect();
        if !new.is_empty() {
            sink.subscribe(&new).await?;
        }
        let gone: Vec<&String> = subscribed.difference(&wanted).collect();
        if !gone.is_empty() {
            sink.unsubscribe(&gone).await?;
        }
        *subscribed = wanted;
        Ok(())
    }
}
