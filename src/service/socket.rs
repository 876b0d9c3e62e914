//! The socket app's state: open connections (counted against `server.socket.max_connections`,
//! per client address at two widths, and anonymous ones apart), rooms and their members (who
//! may join which), connections by user, and the shutdown broadcast. The controller owns the
//! wire protocol; this hub only moves already-encoded frames.
//!
//! A room may have members on other instances of the socket app: with Redis, each room message
//! is also handed to the room bus (`repository::room_bus`), and the other instances' messages
//! arrive through [`SocketHub::relay`], delivered to this instance's members like local ones.
//!
//! Every delivery to another connection is a `try_send` into that connection's outbox,
//! bounded in frames and in bytes: a publisher never waits for a slow consumer, and a consumer
//! whose outbox is full is told to close (1008) instead of buffering without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytestring::ByteString;
use futures_util::task::AtomicWaker;
use shaku::{Component, Interface};
use tokio::sync::{mpsc, watch};

#[cfg(test)]
use crate::meta::config::SocketAddressLimits;
use crate::meta::config::SocketConfig;
use crate::repository::room_bus::{LocalRoomBus, RoomBus};
use crate::service::error::ServiceError;

/// An encoded text frame, shared by every member it goes to (no copy per member).
pub type Frame = ByteString;

/// The most characters in a room name.
pub const MAX_ROOM_NAME: usize = 64;

/// The two widths a client address is counted at (`server.socket.max_per_address`): its host
/// (IPv4 /32, IPv6 /64) and its network (IPv4 /24, IPv6 /48). The tag keeps the four kinds of
/// keys apart in one map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct AddressKey {
    prefix_len: u8,
    bits: u128,
}

impl AddressKey {
    /// `(host, network)` of `ip` (IPv4-mapped IPv6 already made IPv4 by the caller).
    fn of(ip: IpAddr) -> (Self, Self) {
        let key = |prefix_len: u8, bits: u128| Self { prefix_len, bits };
        match ip {
            IpAddr::V4(v4) => {
                let bits = u128::from(u32::from(v4));
                (key(32, bits), key(24, bits & !0xff))
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                (
                    key(64, bits & !(u128::MAX >> 64)),
                    key(48, bits & !(u128::MAX >> 48)),
                )
            }
        }
    }
}

/// Open connections by host and by network.
type AddressCounts = Arc<Mutex<HashMap<AddressKey, usize>>>;

/// The places an admitted client holds in the per-address counts.
#[derive(Debug)]
struct AddressHold {
    counts: AddressCounts,
    keys: [AddressKey; 2],
}

impl Drop for AddressHold {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for key in &self.keys {
            if let Some(n) = counts.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(key);
                }
            }
        }
    }
}

/// One place in a count, given back when dropped.
#[derive(Debug)]
struct CountHold(Arc<AtomicUsize>);

impl CountHold {
    /// Takes a place in `count` when it is below `max`.
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(count.clone()))
    }
}

impl Drop for CountHold {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A place among the open connections, held from admission to disconnection: in the global
/// count, its address's counts, and (for a connection without a user) the anonymous count.
/// Every place is taken atomically before the upgrade and given back when the slot drops,
/// however the upgrade or the connection ends.
#[derive(Debug)]
pub struct ConnectionSlot {
    _open: CountHold,
    _address: Option<AddressHold>,
    _anonymous: Option<CountHold>,
    user: Option<i64>,
}

/// One open connection as the hub sees it.
#[derive(Debug)]
pub struct Connection {
    id: u64,
    user: Option<i64>,
    /// Made on the first join (or at connect for a signed-in user): a connection that only
    /// echoes never allocates one.
    outbox: OnceLock<mpsc::Sender<Frame>>,
    overflowed: AtomicBool,
    /// The connection's task, waiting for an overflow. An `AtomicWaker` rather than a
    /// `Notify`: the task polls this on every message it handles, and a `Notified` takes the
    /// notifier's lock on each poll (~450 instructions a message under callgrind).
    overflow: AtomicWaker,
    rooms: Mutex<Vec<Arc<str>>>,
    /// Bytes of the frames in the outbox now.
    queued_bytes: Arc<AtomicUsize>,
    max_queued_bytes: usize,
    _slot: ConnectionSlot,
}

/// The receiving end of a connection's outbox: frames others sent it, their bytes given back
/// to the outbox's byte bound as they are taken.
#[derive(Debug)]
pub struct Outbox {
    frames: mpsc::Receiver<Frame>,
    queued_bytes: Arc<AtomicUsize>,
}

impl Outbox {
    /// The next frame; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Frame> {
        let frame = self.frames.recv().await?;
        self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
    }

    /// The next frame, polled (the connection's response body takes its frames so).
    pub fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Frame>> {
        let polled = self.frames.poll_recv(cx);
        if let std::task::Poll::Ready(Some(frame)) = &polled {
            self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        }
        polled
    }

    /// A frame queued now, if any.
    pub fn try_recv(&mut self) -> Option<Frame> {
        let frame = self.frames.try_recv().ok()?;
        self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
    }

    /// Frames queued now.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// What a delivery did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    Queued,
    /// The outbox is full: the connection is told to close as a slow consumer.
    Overflowed,
    /// The connection is going away.
    Gone,
}

impl Connection {
    /// The id the server gave this connection (`from` in room messages).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The signed-in user, when the connection carried a token.
    pub fn user(&self) -> Option<i64> {
        self.user
    }

    /// Completes once a delivery found this connection's outbox full.
    pub async fn overflowed(&self) {
        std::future::poll_fn(|cx| {
            if self.overflowed.load(Ordering::Acquire) {
                return std::task::Poll::Ready(());
            }
            self.overflow.register(cx.waker());
            // Checked again after registering: an overflow in between has woken no one.
            if self.overflowed.load(Ordering::Acquire) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
    }

    fn deliver(&self, frame: &Frame) -> Delivery {
        let Some(outbox) = self.outbox.get() else {
            return Delivery::Gone;
        };
        let len = frame.len();
        // Bytes first: a frame into an empty outbox is always taken, any other only within
        // the bound.
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.max_queued_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return self.overflow();
        }
        match outbox.try_send(frame.clone()) {
            Ok(()) => Delivery::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                self.overflow()
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                Delivery::Gone
            }
        }
    }

    /// Marks a slow consumer: its task closes it with 1008.
    fn overflow(&self) -> Delivery {
        if !self.overflowed.swap(true, Ordering::AcqRel) {
            self.overflow.wake();
        }
        Delivery::Overflowed
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, Vec<Arc<str>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a newly admitted connection needs: its hub handle, the frames others send it, and
/// the shutdown signal (`true` once the server is stopping).
pub struct Connected {
    /// The connection.
    pub connection: Arc<Connection>,
    /// Frames pushed to its user, for a signed-in connection (others get theirs on the first
    /// join: [`Joined::outbox`]).
    pub outbox: Option<Outbox>,
    /// Turns `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// A room message encoded for each kind of member: signed-in members may see who sent it,
/// anonymous ones never see a user id.
#[derive(Clone, Debug)]
pub struct RoomFrame {
    /// For members with a signed-in user.
    pub for_users: Frame,
    /// For anonymous members.
    pub for_anonymous: Frame,
}

impl From<Frame> for RoomFrame {
    /// The same frame for every member (it names no user).
    fn from(frame: Frame) -> Self {
        Self {
            for_users: frame.clone(),
            for_anonymous: frame,
        }
    }
}

/// The socket app's shared state.
pub trait SocketHub: Interface {
    /// Reserves a place for a new connection from `client`, counted globally and against its
    /// address at both widths, all or nothing.
    ///
    /// # Errors
    /// [`ServiceError::AtCapacity`] at `max_connections` or while shutting down;
    /// [`ServiceError::Limited`] at `max_per_host` or `max_per_network` for `client`.
    fn reserve(&self, client: IpAddr) -> Result<ConnectionSlot, ServiceError>;

    /// Records who holds `slot` (`None`: anonymous, counted against `max_anonymous`).
    ///
    /// # Errors
    /// [`ServiceError::AtCapacity`] at `max_anonymous` for an anonymous connection.
    fn identify(&self, slot: &mut ConnectionSlot, user: Option<i64>) -> Result<(), ServiceError>;

    /// Registers an admitted connection (of the slot's user, when it carried a token).
    fn connect(&self, slot: ConnectionSlot) -> Connected;

    /// Adds `conn` to `room` (created by its first member); joining twice is a no-op.
    ///
    /// # Errors
    /// An invalid room name, or more rooms than `max_rooms_per_connection` (10000); an
    /// anonymous connection and a room outside `public_rooms` (10011).
    fn join(&self, conn: &Arc<Connection>, room: &str) -> Result<Joined, ServiceError>;

    /// Removes `conn` from `room` (removed with its last member).
    ///
    /// # Errors
    /// `conn` is not in `room` (10011).
    fn leave(&self, conn: &Connection, room: &str) -> Result<(), ServiceError>;

    /// Queues `frame` for every member of `room` but `from`; returns how many got it
    /// (members whose outbox is full are told to close instead).
    ///
    /// # Errors
    /// `from` is not in `room` (10011).
    fn publish(
        &self,
        from: &Connection,
        room: &str,
        frame: RoomFrame,
    ) -> Result<usize, ServiceError>;

    /// Queues `frame` for every connection of `user`; returns how many got it.
    fn send_to_user(&self, user: i64, frame: Frame) -> usize;

    /// The users with a connection open now.
    fn connected_users(&self) -> Vec<i64>;

    /// Removes `conn` from its rooms and the user index (when its task ends, however).
    fn disconnect(&self, conn: &Connection);

    /// Refuses new connections and tells every open one to close (1001).
    fn shut_down(&self);

    /// Connections open now.
    fn open_connections(&self) -> usize;

    /// Delivers the other instances' room messages to this instance's members, and carries
    /// this instance's out, until dropped (the socket app runs it; the other apps hold no
    /// rooms).
    fn relay(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

/// Connections by their id.
type Members = HashMap<u64, Arc<Connection>>;

/// A join's result.
#[derive(Debug)]
pub struct Joined {
    /// Members of the room, the new one included.
    pub members: usize,
    /// The connection's outbox, made by this join (its first): frames from the room arrive here.
    pub outbox: Option<Outbox>,
}

/// The hub's mutable state, created empty with the module.
#[derive(Debug)]
pub struct HubState {
    open: Arc<AtomicUsize>,
    anonymous: Arc<AtomicUsize>,
    addresses: AddressCounts,
    next_id: AtomicU64,
    rooms: RwLock<HashMap<Arc<str>, Members>>,
    users: RwLock<HashMap<i64, Members>>,
    closing: watch::Sender<bool>,
}

impl Default for HubState {
    fn default() -> Self {
        Self {
            open: Arc::default(),
            anonymous: Arc::default(),
            addresses: AddressCounts::default(),
            next_id: AtomicU64::new(1),
            rooms: RwLock::default(),
            users: RwLock::default(),
            closing: watch::channel(false).0,
        }
    }
}

/// The in-process hub: one per socket app process.
#[derive(Component)]
#[shaku(interface = SocketHub)]
pub struct SocketHubImpl {
    /// `server.socket.*`: the hub's limits and public rooms, as configured.
    socket: Arc<SocketConfig>,
    #[shaku(default)]
    state: HubState,
    /// The room messages of the other instances (Redis), or none.
    #[shaku(inject)]
    bus: Arc<dyn RoomBus>,
}

impl SocketHubImpl {
    /// A hub held to `socket` on one instance (tests; the module builds its own).
    pub fn new(socket: SocketConfig) -> Self {
        Self::with_bus(socket, Arc::new(LocalRoomBus))
    }

    /// A hub held to `socket` whose rooms span the instances `bus` reaches (tests).
    pub fn with_bus(socket: SocketConfig, bus: Arc<dyn RoomBus>) -> Self {
        Self {
            socket: Arc::new(socket),
            state: HubState::default(),
            bus,
        }
    }

    /// Queues `frame` (from another instance) for every member of `room` here; how many got it.
    fn deliver_remote(&self, room: &str, frame: &RoomFrame) -> usize {
        let rooms = read(&self.state.rooms);
        rooms.get(room).map_or(0, |members| {
            members
                .values()
                .filter(|m| {
                    let frame = match m.user {
                        Some(_) => &frame.for_users,
                        None => &frame.for_anonymous,
                    };
                    m.deliver(frame) == Delivery::Queued
                })
                .count()
        })
    }
}

/// The bus encoding of a room frame: the users' frame's length (4 bytes, little-endian; all
/// ones when both frames are the same), the users' frame, then the anonymous members' one.
pub fn encode_room_frame(frame: &RoomFrame) -> bytes::Bytes {
    let (users, anonymous) = (frame.for_users.as_bytes(), frame.for_anonymous.as_bytes());
    let same = users == anonymous;
    let mut out = Vec::with_capacity(4 + users.len() + if same { 0 } else { anonymous.len() });
    match u32::try_from(users.len()) {
        Ok(len) if !same && len != u32::MAX => {
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(users);
            out.extend_from_slice(anonymous);
        }
        _ => {
            out.extend_from_slice(&u32::MAX.to_le_bytes());
            out.extend_from_slice(anonymous);
        }
    }
    bytes::Bytes::from(out)
}

/// [`encode_room_frame`]'s inverse; `None` for bytes it did not make (short, or not UTF-8).
pub fn decode_room_frame(payload: &[u8]) -> Option<RoomFrame> {
    let (len, rest) = payload.split_first_chunk::<4>()?;
    let text = |bytes: &[u8]| ByteString::try_from(bytes::Bytes::copy_from_slice(bytes)).ok();
    match u32::from_le_bytes(*len) {
        u32::MAX => Some(RoomFrame::from(text(rest)?)),
        len => {
            let (users, anonymous) = rest.split_at_checked(usize::try_from(len).ok()?)?;
            Some(RoomFrame {
                for_users: text(users)?,
                for_anonymous: text(anonymous)?,
            })
        }
    }
}

/// The shipped section with the limits the hub's tests assume unless they set their own
/// (roomy, and no public room).
#[cfg(test)]
pub(crate) fn test_section() -> SocketConfig {
    SocketConfig {
        max_connections: 25_000,
        max_per_address: SocketAddressLimits {
            host: 256,
            network: 2048,
        },
        max_anonymous: 20_000,
        max_rooms_per_connection: 32,
        outbound_queue: 256,
        outbound_queue_bytes: 1 << 20,
        public_rooms: Vec::new(),
        ..crate::meta::config::shipped_test_profile().server.socket
    }
}

/// Checks a room name: 1–64 of `A-Z a-z 0-9 _ . : -`.
///
/// # Errors
/// 10000 naming `room`.
pub fn check_room(room: &str) -> Result<(), ServiceError> {
    let ok = !room.is_empty()
        && room.len() <= MAX_ROOM_NAME
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "room",
            format!("1 to {MAX_ROOM_NAME} characters of A-Z a-z 0-9 _ . : -"),
        ))
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn not_a_member(room: &str) -> ServiceError {
    ServiceError::Forbidden(format!("not a member of room `{room}`"))
}

impl SocketHubImpl {
    /// Makes `conn`'s outbox if it has none yet; the receiver goes to its task.
    fn open_outbox(&self, conn: &Connection) -> Option<Outbox> {
        let mut receiver = None;
        conn.outbox.get_or_init(|| {
            let (tx, rx) = mpsc::channel(self.socket.outbound_queue);
            receiver = Some(Outbox {
                frames: rx,
                queued_bytes: conn.queued_bytes.clone(),
            });
            tx
        });
        receiver
    }

    /// Takes a place for `client` at both widths, or none.
    fn hold_address(&self, client: IpAddr) -> Result<AddressHold, ServiceError> {
        let (host, network) = AddressKey::of(client);
        let mut counts = self
            .state
            .addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if counts.get(&host).copied().unwrap_or(0) >= self.socket.max_per_address.host {
            return Err(ServiceError::Limited(
                "socket connections from one address (server.socket.max_per_address.host)",
            ));
        }
        if counts.get(&network).copied().unwrap_or(0) >= self.socket.max_per_address.network {
            return Err(ServiceError::Limited(
                "socket connections from one network (server.socket.max_per_address.network)",
            ));
        }
        *counts.entry(host).or_default() += 1;
        *counts.entry(network).or_default() += 1;
        Ok(AddressHold {
            counts: self.state.addresses.clone(),
            keys: [host, network],
        })
    }
}

impl SocketHub for SocketHubImpl {
    fn reserve(&self, client: IpAddr) -> Result<ConnectionSlot, ServiceError> {
        if *self.state.closing.borrow() {
            return Err(ServiceError::AtCapacity("socket server shutting down"));
        }
        // Atomic admission: concurrent upgrades never take more than max_connections places.
        let open = CountHold::take(&self.state.open, self.socket.max_connections).ok_or(
            ServiceError::AtCapacity("socket connections (server.socket.max_connections)"),
        )?;
        // A refusal here drops `open`: the global place is given back.
        let address = self.hold_address(client)?;
        Ok(ConnectionSlot {
            _open: open,
            _address: Some(address),
            _anonymous: None,
            user: None,
        })
    }

    fn identify(&self, slot: &mut ConnectionSlot, user: Option<i64>) -> Result<(), ServiceError> {
        slot.user = user;
        slot._anonymous = match user {
            Some(_) => None,
            None => Some(
                CountHold::take(&self.state.anonymous, self.socket.max_anonymous).ok_or(
                    ServiceError::AtCapacity(
                        "anonymous socket connections (server.socket.max_anonymous)",
                    ),
                )?,
            ),
        };
        Ok(())
    }

    fn connect(&self, slot: ConnectionSlot) -> Connected {
        let user = slot.user;
        let connection = Arc::new(Connection {
            id: self.state.next_id.fetch_add(1, Ordering::Relaxed),
            user,
            outbox: OnceLock::new(),
            overflowed: AtomicBool::new(false),
            overflow: AtomicWaker::new(),
            rooms: Mutex::default(),
            queued_bytes: Arc::default(),
            max_queued_bytes: self.socket.outbound_queue_bytes,
            _slot: slot,
        });
        let outbox = user.and_then(|_| self.open_outbox(&connection));
        if let Some(user) = user {
            write(&self.state.users)
                .entry(user)
                .or_default()
                .insert(connection.id, connection.clone());
        }
        Connected {
            connection,
            outbox,
            shutdown: self.state.closing.subscribe(),
        }
    }

    fn join(&self, conn: &Arc<Connection>, room: &str) -> Result<Joined, ServiceError> {
        check_room(room)?;
        if conn.user.is_none() && !self.socket.is_public_room(room) {
            return Err(ServiceError::Forbidden(format!(
                "room `{room}` needs a signed-in connection (an access token); anonymous \
                 connections join only server.socket.public_rooms"
            )));
        }
        let mut rooms = write(&self.state.rooms);
        let mut mine = conn.rooms();
        if let Some(members) = rooms.get(room)
            && members.contains_key(&conn.id)
        {
            return Ok(Joined {
                members: members.len(),
                outbox: None,
            });
        }
        if mine.len() >= self.socket.max_rooms_per_connection {
            return Err(ServiceError::invalid(
                "room",
                format!(
                    "at most {} rooms per connection (server.socket.max_rooms_per_connection)",
                    self.socket.max_rooms_per_connection
                ),
            ));
        }
        let outbox = self.open_outbox(conn);
        let name: Arc<str> = Arc::from(room);
        if !rooms.contains_key(room) {
            // The room's first member here: hear it on the other instances.
            self.bus.opened(room);
        }
        let members = rooms.entry(name.clone()).or_default();
        members.insert(conn.id, conn.clone());
        mine.push(name);
        Ok(Joined {
            members: members.len(),
            outbox,
        })
    }

    fn leave(&self, conn: &Connection, room: &str) -> Result<(), ServiceError> {
        let mut rooms = write(&self.state.rooms);
        let mut mine = conn.rooms();
        let Some(at) = mine.iter().position(|r| &**r == room) else {
            return Err(not_a_member(room));
        };
        mine.swap_remove(at);
        if let Some(members) = rooms.get_mut(room) {
            members.remove(&conn.id);
            if members.is_empty() {
                rooms.remove(room);
                self.bus.closed(room);
            }
        }
        Ok(())
    }

    fn publish(
        &self,
        from: &Connection,
        room: &str,
        frame: RoomFrame,
    ) -> Result<usize, ServiceError> {
        let rooms = read(&self.state.rooms);
        let members = rooms
            .get(room)
            .filter(|m| m.contains_key(&from.id))
            .ok_or_else(|| not_a_member(room))?;
        let delivered = members
            .values()
            .filter(|m| m.id != from.id)
            .filter(|m| {
                let frame = match m.user {
                    Some(_) => &frame.for_users,
                    None => &frame.for_anonymous,
                };
                m.deliver(frame) == Delivery::Queued
            })
            .count();
        drop(rooms);
        // The members on other instances (their count is not known here).
        if self.bus.spans_instances() {
            self.bus.publish(room, encode_room_frame(&frame));
        }
        Ok(delivered)
    }

    fn send_to_user(&self, user: i64, frame: Frame) -> usize {
        read(&self.state.users).get(&user).map_or(0, |conns| {
            conns
                .values()
                .filter(|c| c.deliver(&frame) == Delivery::Queued)
                .count()
        })
    }

    fn connected_users(&self) -> Vec<i64> {
        read(&self.state.users).keys().copied().collect()
    }

    fn disconnect(&self, conn: &Connection) {
        let mine = std::mem::take(&mut *conn.rooms());
        if !mine.is_empty() {
            let mut rooms = write(&self.state.rooms);
            for room in mine {
                if let Some(members) = rooms.get_mut(&room) {
                    members.remove(&conn.id);
                    if members.is_empty() {
                        rooms.remove(&room);
                        self.bus.closed(&room);
                    }
                }
            }
        }
        if let Some(user) = conn.user {
            let mut users = write(&self.state.users);
            if let Some(conns) = users.get_mut(&user) {
                conns.remove(&conn.id);
                if conns.is_empty() {
                    users.remove(&user);
                }
            }
        }
    }

    fn shut_down(&self) {
        self.state.closing.send_replace(true);
    }

    fn open_connections(&self) -> usize {
        self.state.open.load(Ordering::Acquire)
    }

    fn relay(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let deliver = |room: &str, payload: &[u8]| {
                // Bytes that are not a frame of ours (another writer on the channel) are skipped.
                if let Some(frame) = decode_room_frame(payload) {
                    self.deliver_remote(room, &frame);
                }
            };
            self.bus.run(&deliver).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(max_connections: usize, outbound_queue: usize) -> SocketHubImpl {
        SocketHubImpl::new(SocketConfig {
            max_connections,
            max_per_address: SocketAddressLimits {
                host: usize::MAX,
                network: usize::MAX,
            },
            max_anonymous: usize::MAX,
            max_rooms_per_connection: 2,
            outbound_queue,
            outbound_queue_bytes: usize::MAX,
            public_rooms: vec!["*".to_owned()],
            ..test_section()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn localhost() -> IpAddr {
        ip("127.0.0.1")
    }

    fn connect(hub: &SocketHubImpl, user: Option<i64>) -> Connected {
        let mut slot = hub.reserve(localhost()).unwrap();
        hub.identify(&mut slot, user).unwrap();
        hub.connect(slot)
    }

    fn frame(text: &str) -> RoomFrame {
        Frame::from(text.to_owned()).into()
    }

    /// A bus that records what the hub told it.
    #[derive(Default)]
    struct RecordingBus(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl RoomBus for RecordingBus {
        fn spans_instances(&self) -> bool {
            true
        }
        fn opened(&self, room: &str) {
            self.0.lock().unwrap().push(format!("opened {room}"));
        }
        fn closed(&self, room: &str) {
            self.0.lock().unwrap().push(format!("closed {room}"));
        }
        fn publish(&self, room: &str, payload: bytes::Bytes) -> bool {
            let frame = decode_room_frame(&payload).unwrap();
            self.0
                .lock()
                .unwrap()
                .push(format!("publish {room} {}", frame.for_anonymous));
            true
        }
        async fn run(&self, _deliver: &crate::repository::room_bus::Deliver<'_>) {}
    }

    #[test]
    fn a_room_is_opened_on_the_bus_by_its_first_member_here_and_closed_by_its_last() {
        let bus = Arc::new(RecordingBus::default());
        let hub = SocketHubImpl::with_bus(
            SocketConfig {
                public_rooms: vec!["*".to_owned()],
                ..test_section()
            },
            bus.clone(),
        );
        let (a, b) = (connect(&hub, None), connect(&hub, None));
        let _a_outbox = hub.join(&a.connection, "r").unwrap().outbox;
        let _b_outbox = hub.join(&b.connection, "r").unwrap().outbox;
        hub.join(&a.connection, "s").unwrap();
        assert_eq!(hub.publish(&a.connection, "r", frame("hi")).unwrap(), 1);
        hub.leave(&a.connection, "r").unwrap();
        hub.leave(&b.connection, "r").unwrap();
        hub.disconnect(&a.connection);
        // Another instance's message reaches the members here, the sender's instance not.
        let c = connect(&hub, None);
        let mut outbox = hub.join(&c.connection, "t").unwrap().outbox.unwrap();
        assert_eq!(hub.deliver_remote("t", &frame("from afar")), 1);
        assert_eq!(outbox.try_recv().unwrap(), "from afar");
        assert_eq!(hub.deliver_remote("nobody-here", &frame("x")), 0);
        assert_eq!(
            *bus.0.lock().unwrap(),
            [
                "opened r",
                "opened s",
                "publish r hi",
                "closed r",
                "closed s",
                "opened t"
            ]
        );
    }

    #[test]
    fn room_frames_cross_the_bus_unchanged_and_foreign_bytes_are_refused() {
        let both = RoomFrame {
            for_users: Frame::from(r#"{"user":7,"data":"é"}"#),
            for_anonymous: Frame::from(r#"{"data":"é"}"#),
        };
        let decoded = decode_room_frame(&encode_room_frame(&both)).unwrap();
        assert_eq!(
            (decoded.for_users, decoded.for_anonymous),
            (both.for_users, both.for_anonymous)
        );
        let one = frame("same for everyone");
        let encoded = encode_room_frame(&one);
        assert_eq!(encoded.len(), 4 + "same for everyone".len(), "one copy");
        let decoded = decode_room_frame(&encoded).unwrap();
        assert_eq!(decoded.for_users, decoded.for_anonymous);
        for foreign in [
            &b""[..],
            b"abc",
            b"\x05\x00\x00\x00ab",
            b"\xff\xff\xff\xff\xc3",
        ] {
            assert!(decode_room_frame(foreign).is_none(), "{foreign:?}");
        }
    }

    #[test]
    fn reservations_stop_at_the_limit_and_are_given_back() {
        let hub = hub(2, 4);
        let a = hub.reserve(localhost()).unwrap();
        let _b = hub.reserve(localhost()).unwrap();
        assert!(matches!(
            hub.reserve(localhost()),
            Err(ServiceError::AtCapacity(_))
        ));
        drop(a);
        assert_eq!(hub.open_connections(), 1);
        assert!(hub.reserve(localhost()).is_ok());
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_limit() {
        let hub = Arc::new(hub(50, 4));
        let start = Arc::new(std::sync::Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (hub, start) = (hub.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    (0..10)
                        .filter_map(|_| hub.reserve(localhost()).ok())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let held: Vec<_> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(held.len(), 50);
        assert_eq!(hub.open_connections(), 50);
        drop(held);
        assert_eq!(hub.open_connections(), 0);
    }

    #[test]
    fn shutting_down_refuses_new_connections_and_signals_open_ones() {
        let hub = hub(10, 4);
        let open = connect(&hub, None);
        hub.shut_down();
        assert!(*open.shutdown.borrow());
        assert!(matches!(
            hub.reserve(localhost()),
            Err(ServiceError::AtCapacity(_))
        ));
    }

    #[test]
    fn rooms_count_members_and_deliver_to_the_others() {
        let hub = hub(10, 4);
        let a = connect(&hub, None);
        let b = connect(&hub, None);
        assert!(a.outbox.is_none(), "no outbox before the first join");
        let joined = hub.join(&a.connection, "lobby").unwrap();
        assert_eq!(joined.members, 1);
        let mut a_outbox = joined.outbox.expect("made by the first join");
        let joined = hub.join(&b.connection, "lobby").unwrap();
        assert_eq!(joined.members, 2);
        let mut b_outbox = joined.outbox.unwrap();
        let again = hub.join(&b.connection, "lobby").unwrap();
        assert_eq!(
            (again.members, again.outbox.is_none()),
            (2, true),
            "joining twice"
        );
        assert_eq!(hub.publish(&a.connection, "lobby", frame("hi")).unwrap(), 1);
        assert_eq!(b_outbox.try_recv().unwrap(), "hi");
        assert!(a_outbox.try_recv().is_none(), "not echoed to the sender");
        hub.leave(&b.connection, "lobby").unwrap();
        assert_eq!(hub.publish(&a.connection, "lobby", frame("x")).unwrap(), 0);
        assert!(matches!(
            hub.leave(&b.connection, "lobby"),
            Err(ServiceError::Forbidden(_))
        ));
        assert!(matches!(
            hub.publish(&b.connection, "lobby", frame("x")),
            Err(ServiceError::Forbidden(_))
        ));
    }

    #[test]
    fn room_names_and_counts_are_limited() {
        let hub = hub(10, 4);
        let a = connect(&hub, None);
        for bad in ["", "a b", "é", &"r".repeat(MAX_ROOM_NAME + 1)] {
            assert!(hub.join(&a.connection, bad).is_err(), "{bad:?}");
        }
        hub.join(&a.connection, "one").unwrap();
        hub.join(&a.connection, "two").unwrap();
        assert!(matches!(
            hub.join(&a.connection, "three"),
            Err(ServiceError::InvalidInput { .. })
        ));
    }

    #[tokio::test]
    async fn a_full_outbox_marks_a_slow_consumer_and_never_blocks_the_publisher() {
        let hub = hub(10, 2);
        let a = connect(&hub, None);
        let slow = connect(&hub, None);
        hub.join(&a.connection, "r").unwrap();
        let _slow_outbox = hub.join(&slow.connection, "r").unwrap().outbox;
        let delivered: usize = (0..5)
            .map(|_| hub.publish(&a.connection, "r", frame("m")).unwrap())
            .sum();
        assert_eq!(delivered, 2, "the outbox holds two");
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            slow.connection.overflowed(),
        )
        .await
        .expect("told to close");
    }

    #[test]
    fn disconnecting_leaves_rooms_and_the_user_index() {
        let hub = hub(10, 4);
        let a = connect(&hub, Some(7));
        let mut b = connect(&hub, Some(7));
        let c = connect(&hub, None);
        hub.join(&a.connection, "r").unwrap();
        hub.join(&c.connection, "r").unwrap();
        assert_eq!(hub.send_to_user(7, "p".into()), 2);
        assert_eq!(hub.connected_users(), vec![7]);
        assert_eq!(b.outbox.as_mut().unwrap().try_recv().unwrap(), "p");
        hub.disconnect(&a.connection);
        hub.disconnect(&c.connection);
        assert_eq!(hub.send_to_user(7, "p".into()), 1);
        assert!(read(&hub.state.rooms).is_empty(), "empty rooms are removed");
        drop((a, c));
        assert_eq!(hub.open_connections(), 1);
    }

    #[test]
    fn addresses_are_counted_per_host_and_per_network() {
        let hub = SocketHubImpl::new(SocketConfig {
            max_per_address: SocketAddressLimits {
                host: 2,
                network: 3,
            },
            ..test_section()
        });
        let a1 = hub.reserve(ip("10.0.0.1")).unwrap();
        let _a2 = hub.reserve(ip("10.0.0.1")).unwrap();
        let refused = hub.reserve(ip("10.0.0.1")).unwrap_err();
        assert!(
            refused.to_string().contains("max_per_address.host"),
            "{refused}"
        );
        // A neighbour in the same /24 until the network's limit; another /24 apart.
        let _b = hub.reserve(ip("10.0.0.2")).unwrap();
        let refused = hub.reserve(ip("10.0.0.3")).unwrap_err();
        assert!(
            refused.to_string().contains("max_per_address.network"),
            "{refused}"
        );
        hub.reserve(ip("10.0.1.1")).unwrap();
        // A refusal by address gives the global place back.
        assert_eq!(hub.open_connections(), 3);
        drop(a1);
        let _a3 = hub.reserve(ip("10.0.0.1")).unwrap();
        // IPv6: one /64 is one host; /48 the network.
        let _v1 = hub.reserve(ip("2001:db8:1:1::1")).unwrap();
        let _v2 = hub.reserve(ip("2001:db8:1:1::2")).unwrap();
        assert!(hub.reserve(ip("2001:db8:1:1:ffff::3")).is_err());
        let _v3 = hub.reserve(ip("2001:db8:1:2::1")).unwrap();
        assert!(
            hub.reserve(ip("2001:db8:1:3::1")).is_err(),
            "the /48 is full"
        );
        hub.reserve(ip("2001:db8:2::1")).unwrap();
    }

    #[test]
    fn address_counts_are_given_back_to_the_last() {
        let hub = SocketHubImpl::new(SocketConfig {
            max_per_address: SocketAddressLimits {
                host: 1,
                network: 2048,
            },
            ..test_section()
        });
        let slots: Vec<_> = (0..100)
            .map(|i| hub.reserve(ip(&format!("10.0.{i}.1"))).unwrap())
            .collect();
        drop(slots);
        assert!(
            hub.state.addresses.lock().unwrap().is_empty(),
            "no key outlives its connections"
        );
    }

    #[test]
    fn anonymous_connections_have_their_own_limit() {
        let hub = SocketHubImpl::new(SocketConfig {
            max_anonymous: 1,
            ..test_section()
        });
        let mut first = hub.reserve(localhost()).unwrap();
        hub.identify(&mut first, None).unwrap();
        let mut second = hub.reserve(localhost()).unwrap();
        assert!(matches!(
            hub.identify(&mut second, None),
            Err(ServiceError::AtCapacity(_))
        ));
        hub.identify(&mut second, Some(7))
            .expect("a user is not anonymous");
        drop(first);
        let mut third = hub.reserve(localhost()).unwrap();
        hub.identify(&mut third, None).unwrap();
    }

    #[test]
    fn anonymous_connections_join_public_rooms_only_and_never_see_users() {
        let hub = SocketHubImpl::new(SocketConfig {
            public_rooms: vec!["lobby".to_owned(), "open-*".to_owned()],
            ..test_section()
        });
        let anonymous = connect(&hub, None);
        let user = connect(&hub, Some(1));
        let other = connect(&hub, Some(2));
        for room in ["private", "lobby2", "open"] {
            assert!(matches!(
                hub.join(&anonymous.connection, room),
                Err(ServiceError::Forbidden(_))
            ));
        }
        let mut anon_outbox = hub
            .join(&anonymous.connection, "open-1")
            .unwrap()
            .outbox
            .unwrap();
        hub.join(&user.connection, "private").unwrap();
        hub.join(&user.connection, "open-1").unwrap();
        hub.join(&other.connection, "open-1").unwrap();
        let mut other_outbox = other.outbox.unwrap();
        let sent = RoomFrame {
            for_users: "with user".into(),
            for_anonymous: "without".into(),
        };
        assert_eq!(hub.publish(&user.connection, "open-1", sent).unwrap(), 2);
        assert_eq!(anon_outbox.try_recv().unwrap(), "without");
        assert_eq!(other_outbox.try_recv().unwrap(), "with user");
    }

    #[test]
    fn the_outbox_is_bounded_in_bytes() {
        let hub = SocketHubImpl::new(SocketConfig {
            outbound_queue_bytes: 10,
            public_rooms: vec!["*".to_owned()],
            ..test_section()
        });
        let a = connect(&hub, None);
        let b = connect(&hub, None);
        hub.join(&a.connection, "r").unwrap();
        let mut outbox = hub.join(&b.connection, "r").unwrap().outbox.unwrap();
        // Into an empty outbox a frame is taken whatever its size.
        assert_eq!(
            hub.publish(&a.connection, "r", frame(&"x".repeat(50)))
                .unwrap(),
            1
        );
        assert_eq!(outbox.try_recv().unwrap().len(), 50);
        // Then within 10 bytes: 6 + 4 fit, one more byte does not.
        assert_eq!(hub.publish(&a.connection, "r", frame("123456")).unwrap(), 1);
        assert_eq!(hub.publish(&a.connection, "r", frame("1234")).unwrap(), 1);
        assert!(!b.connection.overflowed.load(Ordering::Acquire));
        assert_eq!(hub.publish(&a.connection, "r", frame("1")).unwrap(), 0);
        assert!(
            b.connection.overflowed.load(Ordering::Acquire),
            "a slow consumer"
        );
        // Taking frames gives their bytes back.
        outbox.try_recv().unwrap();
        outbox.try_recv().unwrap();
        assert_eq!(b.connection.queued_bytes.load(Ordering::Acquire), 0);
    }
}
