//! Room messages across socket app instances (docs/websocket.md, "Rooms across instances"):
//! a room's members may be connected to different instances of the socket app. The bus
//! carries each room message to the other instances as opaque bytes (the hub encodes and
//! decodes its frames); on Redis, one pub/sub channel per room, subscribed by each instance
//! while it holds a member of that room ([`crate::repository::redis::room_bus`]). Without
//! Redis there are no other instances to reach: [`LocalRoomBus`].

use async_trait::async_trait;
use bytes::Bytes;
use shaku::{Component, Interface};

/// What receives the other instances' messages: `(room, payload)`.
pub type Deliver<'d> = dyn for<'a, 'b> Fn(&'a str, &'b [u8]) + Send + Sync + 'd;

/// Carries room messages between the instances of the socket app.
#[async_trait]
pub trait RoomBus: Interface {
    /// Whether other instances can be reached (publishing costs nothing when not).
    fn spans_instances(&self) -> bool;

    /// `room` got its first member on this instance: hear the others' messages of it.
    fn opened(&self, room: &str);

    /// `room` lost its last member on this instance.
    fn closed(&self, room: &str);

    /// Queues `payload` of `room` for the other instances; `false` when it was dropped (the
    /// outgoing queue is full: the bus is slower than the rooms).
    fn publish(&self, room: &str, payload: Bytes) -> bool;

    /// Carries messages until the future is dropped: the other instances' payloads to
    /// `deliver(room, payload)`, and this instance's queued ones out.
    async fn run(&self, deliver: &Deliver<'_>);
}

/// The bus of one instance alone: nothing to carry.
#[derive(Component, Default)]
#[shaku(interface = RoomBus)]
pub struct LocalRoomBus;

#[async_trait]
impl RoomBus for LocalRoomBus {
    fn spans_instances(&self) -> bool {
        false
    }

    fn opened(&self, _room: &str) {}

    fn closed(&self, _room: &str) {}

    fn publish(&self, _room: &str, _payload: Bytes) -> bool {
        true
    }

    async fn run(&self, _deliver: &Deliver<'_>) {
        std::future::pending::<()>().await;
    }
}
