//! The socket app's state: open connections (counted against `server.socket.max_connections`),
//! rooms and their members, connections by user, and the shutdown broadcast. The controller
//! owns the wire protocol; this hub only moves already-encoded frames.
//!
//! Every delivery to another connection is a `try_send` into that connection's bounded
//! outbox: a publisher never waits for a slow consumer, and a consumer whose outbox is full is
//! told to close (1008) instead of buffering without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytestring::ByteString;
use shaku::{Component, Interface};
use tokio::sync::{Notify, mpsc, watch};

use crate::service::error::ServiceError;

/// An encoded text frame, shared by every member it goes to (no copy per member).
pub type Frame = ByteString;

/// The most characters in a room name.
pub const MAX_ROOM_NAME: usize = 64;

/// The hub's configured limits (`server.socket.*`).
#[derive(Clone, Copy, Debug)]
pub struct HubLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Rooms one connection may be in.
    pub max_rooms_per_connection: usize,
    /// Frames waiting in one connection's outbox.
    pub outbound_queue: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        Self {
            max_connections: 25_000,
            max_rooms_per_connection: 32,
            outbound_queue: 256,
        }
    }
}

/// A place among the open connections, held from admission to disconnection.
#[derive(Debug)]
pub struct ConnectionSlot {
    open: Arc<AtomicUsize>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
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
    overflow: Notify,
    rooms: Mutex<Vec<Arc<str>>>,
    _slot: ConnectionSlot,
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
        loop {
            let notified = self.overflow.notified();
            if self.overflowed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    fn deliver(&self, frame: &Frame) -> Delivery {
        let Some(outbox) = self.outbox.get() else {
            return Delivery::Gone;
        };
        match outbox.try_send(frame.clone()) {
            Ok(()) => Delivery::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.overflowed.swap(true, Ordering::AcqRel) {
                    self.overflow.notify_one();
                }
                Delivery::Overflowed
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Gone,
        }
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
    pub outbox: Option<mpsc::Receiver<Frame>>,
    /// Turns `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// The socket app's shared state.
pub trait SocketHub: Interface {
    /// Reserves a place for a new connection.
    ///
    /// # Errors
    /// [`ServiceError::AtCapacity`] at `max_connections` or while shutting down.
    fn reserve(&self) -> Result<ConnectionSlot, ServiceError>;

    /// Registers an admitted connection (of `user`, when it carried a token).
    fn connect(&self, slot: ConnectionSlot, user: Option<i64>) -> Connected;

    /// Adds `conn` to `room` (created by its first member); joining twice is a no-op.
    ///
    /// # Errors
    /// An invalid room name, or more rooms than `max_rooms_per_connection` (10000).
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
    fn publish(&self, from: &Connection, room: &str, frame: Frame) -> Result<usize, ServiceError>;

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
}

/// Connections by their id.
type Members = HashMap<u64, Arc<Connection>>;

/// A join's result.
#[derive(Debug)]
pub struct Joined {
    /// Members of the room, the new one included.
    pub members: usize,
    /// The connection's outbox, made by this join (its first): frames from the room arrive here.
    pub outbox: Option<mpsc::Receiver<Frame>>,
}

/// The hub's mutable state, created empty with the module.
#[derive(Debug)]
pub struct HubState {
    open: Arc<AtomicUsize>,
    next_id: AtomicU64,
    rooms: RwLock<HashMap<Arc<str>, Members>>,
    users: RwLock<HashMap<i64, Members>>,
    closing: watch::Sender<bool>,
}

impl Default for HubState {
    fn default() -> Self {
        Self {
            open: Arc::default(),
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
    limits: HubLimits,
    #[shaku(default)]
    state: HubState,
}

impl SocketHubImpl {
    /// A hub with `limits` (tests; the module builds its own).
    pub fn new(limits: HubLimits) -> Self {
        Self {
            limits,
            state: HubState::default(),
        }
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
    fn open_outbox(&self, conn: &Connection) -> Option<mpsc::Receiver<Frame>> {
        let mut receiver = None;
        conn.outbox.get_or_init(|| {
            let (tx, rx) = mpsc::channel(self.limits.outbound_queue);
            receiver = Some(rx);
            tx
        });
        receiver
    }
}

impl SocketHub for SocketHubImpl {
    fn reserve(&self) -> Result<ConnectionSlot, ServiceError> {
        if *self.state.closing.borrow() {
            return Err(ServiceError::AtCapacity("socket server shutting down"));
        }
        let open = &self.state.open;
        // Atomic admission: concurrent upgrades never take more than max_connections places.
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < self.limits.max_connections).then_some(n + 1)
        })
        .map_err(|_| {
            ServiceError::AtCapacity("socket connections (server.socket.max_connections)")
        })?;
        Ok(ConnectionSlot { open: open.clone() })
    }

    fn connect(&self, slot: ConnectionSlot, user: Option<i64>) -> Connected {
        let connection = Arc::new(Connection {
            id: self.state.next_id.fetch_add(1, Ordering::Relaxed),
            user,
            outbox: OnceLock::new(),
            overflowed: AtomicBool::new(false),
            overflow: Notify::new(),
            rooms: Mutex::default(),
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
        if mine.len() >= self.limits.max_rooms_per_connection {
            return Err(ServiceError::invalid(
                "room",
                format!(
                    "at most {} rooms per connection (server.socket.max_rooms_per_connection)",
                    self.limits.max_rooms_per_connection
                ),
            ));
        }
        let outbox = self.open_outbox(conn);
        let name: Arc<str> = Arc::from(room);
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
            }
        }
        Ok(())
    }

    fn publish(&self, from: &Connection, room: &str, frame: Frame) -> Result<usize, ServiceError> {
        let rooms = read(&self.state.rooms);
        let members = rooms
            .get(room)
            .filter(|m| m.contains_key(&from.id))
            .ok_or_else(|| not_a_member(room))?;
        Ok(members
            .values()
            .filter(|m| m.id != from.id)
            .filter(|m| m.deliver(&frame) == Delivery::Queued)
            .count())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(max_connections: usize, outbound_queue: usize) -> SocketHubImpl {
        SocketHubImpl::new(HubLimits {
            max_connections,
            max_rooms_per_connection: 2,
            outbound_queue,
        })
    }

    fn connect(hub: &SocketHubImpl, user: Option<i64>) -> Connected {
        hub.connect(hub.reserve().unwrap(), user)
    }

    #[test]
    fn reservations_stop_at_the_limit_and_are_given_back() {
        let hub = hub(2, 4);
        let a = hub.reserve().unwrap();
        let _b = hub.reserve().unwrap();
        assert!(matches!(hub.reserve(), Err(ServiceError::AtCapacity(_))));
        drop(a);
        assert_eq!(hub.open_connections(), 1);
        assert!(hub.reserve().is_ok());
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
                        .filter_map(|_| hub.reserve().ok())
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
        assert!(matches!(hub.reserve(), Err(ServiceError::AtCapacity(_))));
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
        assert_eq!(hub.publish(&a.connection, "lobby", "hi".into()).unwrap(), 1);
        assert_eq!(b_outbox.try_recv().unwrap(), "hi");
        assert!(a_outbox.try_recv().is_err(), "not echoed to the sender");
        hub.leave(&b.connection, "lobby").unwrap();
        assert_eq!(hub.publish(&a.connection, "lobby", "x".into()).unwrap(), 0);
        assert!(matches!(
            hub.leave(&b.connection, "lobby"),
            Err(ServiceError::Forbidden(_))
        ));
        assert!(matches!(
            hub.publish(&b.connection, "lobby", "x".into()),
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
            .map(|_| hub.publish(&a.connection, "r", "m".into()).unwrap())
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
}
