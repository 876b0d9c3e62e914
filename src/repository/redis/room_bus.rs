//! [`RoomBus`] on Redis pub/sub: the channel `go_example:room:<room>` per room, subscribed by
//! each instance while it holds a member of the room (one subscribing connection per instance,
//! to one node: a Cluster propagates every classic `PUBLISH` to all its nodes), published to
//! through the pooled client. Each message starts with the publishing instance's random id, so
//! an instance skips its own (its members got them already). At most once, as Redis pub/sub
//! is: a message published while an instance reconnects does not reach it.
//!
//! Bounded: the outgoing queue (`server.socket.bus_queue` messages; a message past it is
//! dropped and counted), and a payload from Redis larger than
//! [`RedisRoomBus::MAX_PAYLOAD_FACTOR`] × `server.socket.max_message_size` is dropped unread.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use goex_redis::RedisClient;
use goex_redis::pubsub::{Event, Subscriptions};
use shaku::Component;
use tokio::sync::mpsc;

use crate::repository::room_bus::{Deliver, RoomBus};

/// The channel of `room`.
fn channel(room: &str) -> String {
    format!("{CHANNEL_PREFIX}{room}")
}

/// Every room channel starts so.
pub const CHANNEL_PREFIX: &str = "go_example:room:";

/// The bus's counters (`go_example_socket_bus_messages_total`), when metrics are on.
pub type BusMetrics = goex_metrics::SocketMetrics;

/// The outgoing side: messages waiting for `PUBLISH`.
pub struct Outgoing {
    queue: mpsc::Sender<(String, Bytes)>,
    /// Taken by [`RoomBus::run`] (one runner).
    waiting: Mutex<Option<mpsc::Receiver<(String, Bytes)>>>,
}

/// [`RoomBus`] over Redis.
#[derive(Component)]
#[shaku(interface = RoomBus)]
pub struct RedisRoomBus {
    client: RedisClient,
    subscriptions: Arc<Subscriptions>,
    /// This instance's id, the first 8 bytes of each message it publishes.
    origin: [u8; 8],
    /// Larger payloads from Redis are dropped unread.
    max_payload: usize,
    outgoing: Outgoing,
    metrics: Option<BusMetrics>,
    logger: slog::Logger,
}

impl RedisRoomBus {
    /// A payload from Redis may be at most this many times `server.socket.max_message_size`
    /// (a room frame is two encodings of one message, plus its envelope).
    pub const MAX_PAYLOAD_FACTOR: usize = 3;

    fn outgoing(capacity: usize) -> Outgoing {
        let (queue, waiting) = mpsc::channel(capacity.max(1));
        Outgoing {
            queue,
            waiting: Mutex::new(Some(waiting)),
        }
    }

    /// The component's parameters: the pooled `client` publishes, `subscriptions` (on the
    /// same settings) listens; `queue` messages may wait to be published; payloads from Redis
    /// above [`Self::MAX_PAYLOAD_FACTOR`] × `max_message_size` are dropped.
    pub fn parameters(
        client: RedisClient,
        subscriptions: Subscriptions,
        queue: usize,
        max_message_size: usize,
        metrics: Option<BusMetrics>,
        logger: slog::Logger,
    ) -> RedisRoomBusParameters {
        RedisRoomBusParameters {
            client,
            subscriptions: Arc::new(subscriptions),
            origin: random_id().to_le_bytes(),
            max_payload: max_message_size.saturating_mul(Self::MAX_PAYLOAD_FACTOR),
            outgoing: Self::outgoing(queue),
            metrics,
            logger,
        }
    }

    /// Publishes what is queued, one `PUBLISH` at a time (in order), until the queue closes.
    async fn publish_queued(&self, mut waiting: mpsc::Receiver<(String, Bytes)>) {
        let mut failing = false;
        while let Some((channel, payload)) = waiting.recv().await {
            let mut command = goex_redis::cmd("PUBLISH");
            command.arg(&channel).arg(payload.as_ref());
            match self.client.query::<i64>(&command).await {
                Ok(_) => {
                    if failing {
                        slog::info!(self.logger, "room bus: publishing again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if let Some(metrics) = &self.metrics {
                        metrics.bus_dropped();
                    }
                    if !failing {
                        slog::warn!(self.logger, "room bus: a message could not be published: the other instances' members miss it";
                            "error" => %e);
                        failing = true;
                    }
                }
            }
        }
    }
}

#[async_trait]
impl RoomBus for RedisRoomBus {
    fn spans_instances(&self) -> bool {
        true
    }

    fn opened(&self, room: &str) {
        self.subscriptions.want(&channel(room));
    }

    fn closed(&self, room: &str) {
        self.subscriptions.forget(&channel(room));
    }

    fn publish(&self, room: &str, payload: Bytes) -> bool {
        let mut message = Vec::with_capacity(8 + payload.len());
        message.extend_from_slice(&self.origin);
        message.extend_from_slice(&payload);
        let queued = self
            .outgoing
            .queue
            .try_send((channel(room), Bytes::from(message)))
            .is_ok();
        if let Some(metrics) = &self.metrics {
            if queued {
                metrics.bus_out();
            } else {
                metrics.bus_dropped();
            }
        }
        queued
    }

    async fn run(&self, deliver: &Deliver<'_>) {
        let waiting = self
            .outgoing
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let publishing = async {
            match waiting {
                Some(waiting) => self.publish_queued(waiting).await,
                // Another runner has it.
                None => std::future::pending().await,
            }
        };
        let on_message = |channel: &str, payload: &[u8]| {
            let Some(room) = channel.strip_prefix(CHANNEL_PREFIX) else {
                return;
            };
            let Some((origin, frame)) = payload.split_first_chunk::<8>() else {
                return;
            };
            if *origin == self.origin {
                return;
            }
            if frame.len() > self.max_payload {
                if let Some(metrics) = &self.metrics {
                    metrics.bus_dropped();
                }
                return;
            }
            if let Some(metrics) = &self.metrics {
                metrics.bus_in();
            }
            deliver(room, frame);
        };
        let logger = &self.logger;
        let on_event = |event: Event<'_>| match event {
            Event::Connected { node } => {
                slog::info!(logger, "room bus: subscribed"; "node" => node);
            }
            Event::Lost {
                node,
                error,
                retry_in,
            } => {
                slog::warn!(logger, "room bus: subscription lost: members on other instances are not heard until it is back";
                    "node" => node, "error" => error, "retry_in" => ?retry_in);
            }
        };
        tokio::join!(publishing, self.subscriptions.run(on_message, on_event));
    }
}

/// A random instance id: std's per-process random hash keys, through one hash.
fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}
