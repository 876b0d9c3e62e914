//! The limits a connection is held to (docs/websocket.md, "Limits"): frame headers checked
//! before their payloads are read, `server.socket.max_messages_per_second`, and the write
//! window over the response body that takes the session's frames and the room frames.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Instant;

use actix_http::BoxedPayloadStream;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::{FromRequest, HttpRequest, dev, web};
use futures_util::StreamExt;
use tokio::sync::Notify;

use crate::service::socket::Outbox;
use crate::web::socket_frame_limit::FrameLimit;

/// The upgrade's body with frame headers checked before their payloads are read
/// (`socket_frame_limit`, `server.socket.max_frame_size`). Each chunk is copied out of the
/// HTTP layer's read buffer: the patched actix-http gives that buffer back when the connection
/// parks (docs/decisions.md), and a chunk still pointing into it would keep its 8 KiB alive in
/// actix-ws's frame buffer until the next message.
///
/// # Errors
/// The payload cannot be taken again (actix's own error).
pub(super) async fn frame_limited(
    req: &HttpRequest,
    body: web::Payload,
    max_frame_size: usize,
) -> Result<web::Payload, actix_web::Error> {
    let owned = body
        .into_inner()
        .map(|chunk| chunk.map(|c| actix_web::web::Bytes::copy_from_slice(&c)));
    let limited = FrameLimit::new(owned, max_frame_size);
    let mut limited = dev::Payload::from(Box::pin(limited) as BoxedPayloadStream);
    web::Payload::from_request(req, &mut limited).await
}

/// Bytes the HTTP layer has taken from the connection's session (encoded frames), and a
/// wake-up for a write waiting on them (signalled only while one waits: the notifier's lock
/// stays off the path of a connection whose writes fit). Also the hand-over of the outbox a
/// first join makes, from the connection's task to its body.
#[derive(Debug, Default)]
pub(super) struct Flushed {
    pub(super) bytes: AtomicU64,
    pub(super) waiting: AtomicBool,
    pub(super) taken: Notify,
    pub(super) new_outbox: std::sync::Mutex<Option<Outbox>>,
    pub(super) has_new_outbox: AtomicBool,
}

impl Flushed {
    /// Gives the body the outbox a first join made. The join's answer, written next, wakes
    /// the body, which takes it then.
    pub(super) fn hand_over(&self, outbox: Outbox) {
        *self.new_outbox.lock().unwrap_or_else(|e| e.into_inner()) = Some(outbox);
        self.has_new_outbox.store(true, Ordering::Release);
    }
}

/// Room frames written into one chunk at most (more wait for the next poll).
const ROOM_CHUNK: usize = 16 * 1024;

/// The response body of an upgrade: the session's frames (answers, pings, the close), counted
/// as the HTTP layer takes them, and the room frames, taken straight from the connection's
/// outbox. A delivery thus wakes only the HTTP layer, not the connection's task as well (one
/// hop, as gorilla's hub → writer), and the outbox's bounds still hold: a frame leaves the
/// outbox only when the HTTP layer asks for more, which it does only when its write buffer is
/// nearly empty; a member that stops reading leaves its frames in the outbox until it
/// overflows (1008).
///
/// actix-ws's session queues 32 messages and its body encodes every queued one into a chunk,
/// each up to `max_message_size`: without a window, a peer that stops reading would pin 64
/// such messages per connection past the outbox. What the HTTP layer has taken is what went
/// (or is about to go) to the socket.
pub(super) struct ConnectionBody {
    pub(super) inner: BoxBody,
    pub(super) flushed: Arc<Flushed>,
    /// The connection's outbox once it has one.
    pub(super) rooms: Option<Outbox>,
    pub(super) metrics: Option<goex_metrics::SocketMetrics>,
}

impl ConnectionBody {
    /// The room frames queued now, encoded into one chunk (none: `Pending`, or the outbox is
    /// gone).
    fn poll_rooms(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<actix_web::web::Bytes>> {
        if self.rooms.is_none() && self.flushed.has_new_outbox.load(Ordering::Acquire) {
            self.rooms = self
                .flushed
                .new_outbox
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
        }
        let Some(rooms) = self.rooms.as_mut() else {
            return Poll::Pending;
        };
        let mut chunk = actix_web::web::BytesMut::new();
        while chunk.len() < ROOM_CHUNK {
            match rooms.poll_recv(cx) {
                Poll::Ready(Some(frame)) => {
                    if let Some(m) = &self.metrics {
                        m.message_out();
                    }
                    actix_http::ws::Parser::write_message(
                        &mut chunk,
                        frame.as_bytes(),
                        actix_http::ws::OpCode::Text,
                        true,
                        false,
                    );
                }
                Poll::Ready(None) => {
                    self.rooms = None;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if chunk.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(Some(chunk.freeze()))
        }
    }

    /// The session's next chunk, counted.
    fn poll_session(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<actix_web::web::Bytes, Box<dyn std::error::Error>>>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            let flushed = &self.flushed;
            // SeqCst with the waiter's store and load: either it sees these bytes, or this
            // sees it waiting.
            flushed
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            if flushed.waiting.swap(false, Ordering::SeqCst) {
                flushed.taken.notify_waiters();
            }
        }
        polled
    }
}

impl MessageBody for ConnectionBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<actix_web::web::Bytes, Self::Error>>> {
        // The session first, the rooms only while it has nothing: once it has written its
        // close frame it ends, and nothing follows. Neither starves the other: the connection's
        // task runs on this thread, so while the HTTP layer polls, the session can only empty
        // (one chunk takes all it holds) and the rooms get the next poll.
        let this = self.get_mut();
        match this.poll_session(cx) {
            Poll::Pending => this.poll_rooms(cx).map(|c| c.map(Ok)),
            polled => polled,
        }
    }
}

/// The write window: frame bytes handed to the session and not yet taken by the HTTP layer
/// stay within `server.socket.outbound_queue_bytes` (a frame is always let through when none
/// are in flight). Both sides count encoded frames ([`encoded_len`]), headers included.
pub(super) struct Window {
    pub(super) flushed: Arc<Flushed>,
    pub(super) written: u64,
    pub(super) bound: u64,
}

impl Window {
    pub(super) fn admits(&self, len: u64) -> bool {
        let in_flight = self
            .written
            .saturating_sub(self.flushed.bytes.load(Ordering::SeqCst));
        in_flight == 0 || in_flight + len <= self.bound
    }

    /// Completes once a frame of `len` bytes fits.
    pub(super) async fn room_for(&self, len: u64) {
        loop {
            let taken = self.flushed.taken.notified();
            tokio::pin!(taken);
            taken.as_mut().enable();
            self.flushed.waiting.store(true, Ordering::SeqCst);
            if self.admits(len) {
                return;
            }
            taken.await;
        }
    }
}

/// `server.socket.max_messages_per_second`: a token bucket holding one second's worth. A
/// message is taken while the bucket holds a token; a publish then costs its deliveries, and
/// may leave the bucket in debt, which the next messages wait out.
pub(super) struct Rate {
    per_second: f64,
    tokens: f64,
    refilled: Instant,
}

impl Rate {
    pub(super) fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second);
        Self {
            per_second,
            tokens: per_second,
            refilled: Instant::now(),
        }
    }

    /// Whether a message arriving `now` may be acted on; it costs one token.
    pub(super) fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        self.refilled = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// A publish that reached `deliveries` members costs them (one already taken).
    pub(super) fn charge(&mut self, deliveries: usize) {
        self.tokens -= deliveries.saturating_sub(1) as f64;
    }
}

/// The bytes of a server frame (unmasked) carrying `payload` bytes, as actix-http encodes it:
/// the write window counts exactly what the HTTP layer will take, so the two never drift.
pub(super) fn encoded_len(payload: usize) -> u64 {
    let header = match payload {
        0..126 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    (header + payload) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::socket::{Connection, Frame, SocketHub};

    #[test]
    fn the_rate_holds_a_seconds_worth_and_publishes_cost_their_deliveries() {
        let start = Instant::now();
        let mut rate = Rate::new(3);
        assert!((0..3).all(|_| rate.admit(start)));
        assert!(!rate.admit(start), "the bucket is empty");
        let later = start + std::time::Duration::from_millis(340);
        assert!(rate.admit(later), "a third of a second refills one");
        assert!(!rate.admit(later));
        // A publish to 10 members leaves the bucket in debt: the next messages wait it out.
        let full = later + std::time::Duration::from_secs(5);
        assert!(rate.admit(full));
        rate.charge(10);
        assert!(!rate.admit(full + std::time::Duration::from_secs(2)));
        assert!(rate.admit(full + std::time::Duration::from_millis(3400)));
    }

    #[test]
    fn frames_are_counted_as_actix_encodes_them() {
        for (payload, encoded) in [
            (0, 2),
            (125, 127),
            (126, 130),
            (65_535, 65_539),
            (65_536, 65_546),
        ] {
            assert_eq!(encoded_len(payload), encoded, "{payload}");
            let mut buf = actix_web::web::BytesMut::new();
            actix_http::ws::Parser::write_message(
                &mut buf,
                vec![0u8; payload],
                actix_http::ws::OpCode::Text,
                true,
                false,
            );
            assert_eq!(buf.len() as u64, encoded, "{payload}");
        }
    }

    /// A member of room `r` (its outbox) and another that publishes there.
    fn room_of_two() -> (
        crate::service::socket::SocketHubImpl,
        Arc<Connection>,
        Outbox,
    ) {
        let hub = crate::service::socket::SocketHubImpl::new(crate::meta::config::SocketConfig {
            public_rooms: vec!["r".to_owned()],
            ..crate::service::socket::test_section()
        });
        let mut members = (0..2).map(|_| {
            let mut slot = hub.reserve("127.0.0.1".parse().unwrap()).unwrap();
            hub.identify(&mut slot, None).unwrap();
            let connection = hub.connect(slot).connection;
            let outbox = hub.join(&connection, "r").unwrap().outbox.unwrap();
            (connection, outbox)
        });
        let (_, member) = members.next().unwrap();
        let (publisher, _) = members.next().unwrap();
        (hub, publisher, member)
    }

    #[tokio::test]
    async fn the_body_writes_room_frames_while_the_session_has_none() {
        let (hub, publisher, member) = room_of_two();
        let flushed = Arc::new(Flushed::default());
        flushed.hand_over(member);
        let session =
            futures_util::stream::pending::<Result<actix_web::web::Bytes, std::io::Error>>();
        let mut body = ConnectionBody {
            inner: BoxBody::new(actix_web::body::BodyStream::new(session)),
            flushed: flushed.clone(),
            rooms: None,
            metrics: None,
        };
        let mut next = || {
            futures_util::FutureExt::now_or_never(std::future::poll_fn(|cx| {
                Poll::Ready(Pin::new(&mut body).poll_next(cx))
            }))
            .unwrap()
        };
        assert!(next().is_pending(), "nothing yet");
        for text in ["one", "two"] {
            assert_eq!(
                hub.publish(&publisher, "r", Frame::from(text).into())
                    .unwrap(),
                1
            );
        }
        let Poll::Ready(Some(Ok(chunk))) = next() else {
            panic!("the room frames")
        };
        // Both frames in one chunk, as actix-http encodes a server's text frames.
        assert_eq!(&chunk[..], b"\x81\x03one\x81\x03two");
        assert!(next().is_pending());
        assert_eq!(
            flushed.bytes.load(Ordering::SeqCst),
            0,
            "the window counts the session only"
        );
    }

    #[tokio::test]
    async fn nothing_follows_the_end_of_the_session() {
        let (hub, publisher, member) = room_of_two();
        assert_eq!(
            hub.publish(&publisher, "r", Frame::from("late").into())
                .unwrap(),
            1
        );
        let mut body = ConnectionBody {
            // A session that writes one chunk (its close frame, say) and ends.
            inner: BoxBody::new(actix_web::web::Bytes::from_static(b"\x88\x00")),
            flushed: Arc::default(),
            rooms: Some(member),
            metrics: None,
        };
        let mut next = || {
            futures_util::FutureExt::now_or_never(std::future::poll_fn(|cx| {
                Poll::Ready(Pin::new(&mut body).poll_next(cx))
            }))
            .unwrap()
        };
        assert!(matches!(next(), Poll::Ready(Some(Ok(c))) if &c[..] == b"\x88\x00"));
        assert!(
            matches!(next(), Poll::Ready(None)),
            "the room frame is not written"
        );
    }

    #[tokio::test]
    async fn the_write_window_waits_for_the_http_layer() {
        let flushed = Arc::new(Flushed::default());
        let mut window = Window {
            flushed: flushed.clone(),
            written: 0,
            bound: 100,
        };
        assert!(window.admits(1_000), "nothing in flight: any frame goes");
        window.written = 1_000;
        assert!(!window.admits(1));
        let waiter = window.room_for(50);
        tokio::pin!(waiter);
        assert!(futures_util::poll!(waiter.as_mut()).is_pending());
        // The HTTP layer takes 950 bytes: 50 in flight, 50 more fit.
        let mut body = ConnectionBody {
            inner: BoxBody::new(actix_web::web::Bytes::from(vec![0u8; 950])),
            flushed,
            rooms: None,
            metrics: None,
        };
        let _ = futures_util::poll!(std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)));
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("woken when the bytes were taken");
    }
}
