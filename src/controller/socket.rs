//! The socket app's controller (the original's `socket_controller.go`): `GET /socket_server`
//! admits a client before the upgrade (capacity, per-address and anonymous limits, address,
//! origin, token), then runs one task per connection that speaks the protocol of
//! docs/websocket.md: the original's text echo and JSON exchange, rooms, heartbeat, limits
//! (message rate, bytes waiting to be written) and the close codes. Also the HTTP app's two
//! pages that talk to it (`/socket/index`, `/socket/index2`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;

use actix_http::BoxedPayloadStream;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
use bytestring::ByteString;
use futures_util::{FutureExt, StreamExt};
use goex_errors::Lang;
use serde_json::{Map, Value, json};
use shaku::HasComponent;
use slog::Logger;

use crate::meta::config::{SocketAuth, SocketConfig};
use crate::meta::socket_admission::IpAllowList;
use crate::meta::trusted_proxies::TrustedProxies;
use crate::service::auth::{AuthService, bearer};
use crate::service::error::ServiceError;
use crate::service::socket::{Connected, Connection, Frame, Outbox, RoomFrame, SocketHub};
use crate::web::auth::credentials;
use crate::web::client_addr::client_addr;
use crate::web::envelope::error_frame;
use crate::web::routes::Routes;
use crate::web::socket_frame_limit::{FrameLimit, is_frame_limit_error};
use tokio::sync::Notify;

/// The original's path.
pub const SOCKET_PATH: &str = "/socket_server";

/// Everything the handler needs from config, shared by the workers.
#[derive(Clone, Debug)]
pub struct SocketSettings {
    /// `server.socket.*`.
    pub socket: SocketConfig,
    /// `common.socket_white_ip_list`.
    pub white_ips: IpAllowList,
    /// Where records go.
    pub logger: Logger,
    /// The socket series, when metrics are on.
    pub metrics: Option<goex_metrics::SocketMetrics>,
}

/// Registers the socket app's routes: the upgrade and a liveness probe (`/healthz`, for load
/// balancers and a registry's HTTP check).
pub fn routes<M>(cfg: &mut web::ServiceConfig)
where
    M: HasComponent<dyn SocketHub> + HasComponent<dyn AuthService> + 'static,
{
    cfg.route(SOCKET_PATH, web::get().to(socket_server::<M>))
        .route("/healthz", web::get().to(healthz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}

/// The upgrade: admission first (docs/websocket.md, "Admission"), every refusal an HTTP answer
/// with the envelope (and counted by reason); then the connection's task.
async fn socket_server<M>(
    req: HttpRequest,
    body: web::Payload,
    settings: web::Data<SocketSettings>,
) -> Result<HttpResponse, ServiceError>
where
    M: HasComponent<dyn SocketHub> + HasComponent<dyn AuthService> + 'static,
{
    let metrics = settings.metrics.clone();
    upgrade::<M>(req, body, settings)
        .await
        .map_err(|(reason, e)| {
            if let Some(m) = &metrics {
                m.refused(reason);
            }
            e
        })
}

/// Admission and the upgrade; a refusal names its reason for the metrics.
async fn upgrade<M>(
    req: HttpRequest,
    body: web::Payload,
    settings: web::Data<SocketSettings>,
) -> Result<HttpResponse, (&'static str, ServiceError)>
where
    M: HasComponent<dyn SocketHub> + HasComponent<dyn AuthService> + 'static,
{
    let module = req.app_data::<Arc<M>>().ok_or_else(|| {
        (
            "internal",
            ServiceError::Internal("the module is not registered".into()),
        )
    })?;
    let hub: Arc<dyn SocketHub> = module.resolve();
    let client = client_addr(&req);
    // Places taken before anything else is looked at, given back when `slot` drops (a refusal
    // below, a failed upgrade, or the connection's end).
    let mut slot = hub.reserve(client.ip).map_err(|e| match e {
        ServiceError::Limited(_) => ("per_address", e),
        e => ("capacity", e),
    })?;
    if !settings.white_ips.admits(client.ip) {
        return Err((
            "address",
            ServiceError::Forbidden("client address not in common.socket_white_ip_list".into()),
        ));
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let socket = &settings.socket;
    if !socket
        .allowed_origins
        .admits(origin, host, socket.require_origin)
    {
        return Err((
            "origin",
            ServiceError::Forbidden("origin not in server.socket.allowed_origins".into()),
        ));
    }
    let token = match socket.auth {
        SocketAuth::None => None,
        SocketAuth::Optional | SocketAuth::Required => token(&req).map_err(|e| ("token", e))?,
    };
    let user = match (socket.auth, token) {
        (SocketAuth::None, _) | (SocketAuth::Optional, None) => None,
        (SocketAuth::Required, None) => {
            return Err((
                "token",
                ServiceError::Unauthorized(
                    "an access token (query `token` or Authorization: Bearer)".into(),
                ),
            ));
        }
        (_, Some(token)) => {
            let auth: Arc<dyn AuthService> = module.resolve();
            Some(auth.authenticate(&token).await.map_err(|e| ("token", e))?)
        }
    };
    hub.identify(&mut slot, user.as_ref().map(|u| u.id))
        .map_err(|e| ("anonymous", e))?;
    let lang = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(Lang::from_accept_language)
        .unwrap_or_default();
    // Frame headers checked before their payloads are read (socket_frame_limit). Each chunk is
    // copied out of the HTTP layer's read buffer: the patched actix-http gives that buffer
    // back when the connection parks (docs/decisions.md), and a chunk still pointing into
    // it would keep its 8 KiB alive in actix-ws's frame buffer until the next message.
    let owned = body
        .into_inner()
        .map(|chunk| chunk.map(|c| actix_web::web::Bytes::copy_from_slice(&c)));
    let limited = FrameLimit::new(owned, socket.max_frame_size);
    let mut limited = dev::Payload::from(Box::pin(limited) as BoxedPayloadStream);
    let body = web::Payload::from_request(&req, &mut limited)
        .await
        .map_err(|e| ("internal", ServiceError::Internal(e.to_string().into())))?;
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        (
            "not_upgrade",
            ServiceError::invalid("upgrade", format!("not a WebSocket upgrade: {e}")),
        )
    })?;
    let stream = stream
        .max_frame_size(socket.max_frame_size)
        .aggregate_continuations()
        .max_continuation_size(socket.max_message_size);
    let Connected {
        connection,
        outbox,
        shutdown,
    } = hub.connect(slot);
    // What the HTTP layer has taken of the frames written, for the write window; the body
    // also takes the room frames straight from the outbox.
    let flushed = Arc::new(Flushed::default());
    let counted = flushed.clone();
    let metrics = settings.metrics.clone();
    let response = response.map_body(move |_, body| {
        ConnectionBody {
            inner: body,
            flushed: counted,
            rooms: outbox,
            metrics,
        }
        .boxed()
    });
    slog::debug!(settings.logger, "socket connected"; "connection" => connection.id(),
        "client" => %client, "user" => user.as_ref().map(|u| u.id));
    let window = Window {
        flushed,
        written: 0,
        bound: u64::try_from(socket.outbound_queue_bytes).unwrap_or(u64::MAX),
    };
    let rate = Rate::new(socket.max_messages_per_second);
    let task = ConnectionTask {
        hub,
        connection,
        session,
        settings: settings.into_inner(),
        lang,
        client,
        window,
        rate,
    };
    actix_web::rt::spawn(task.run(shutdown, stream));
    Ok(response)
}

/// The access token of an upgrade: query `token` (browsers cannot set headers on a
/// WebSocket), else `Authorization: Bearer`.
///
/// # Errors
/// An `Authorization` header that is not `Bearer <token>` (not text, another scheme): the
/// client meant to authenticate, so it is refused rather than admitted anonymously.
fn token(req: &HttpRequest) -> Result<Option<String>, ServiceError> {
    let from_query = form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "token")
        // The login's `accessToken` as it comes ("Bearer ..."), or the bare token.
        .map(|(_, v)| bearer(&v).unwrap_or(&v).to_owned())
        .filter(|v| !v.is_empty());
    if from_query.is_some() || !req.headers().contains_key(header::AUTHORIZATION) {
        return Ok(from_query);
    }
    // The HTTP app's reading of the header, its refusals included.
    credentials(req).map(Some)
}

/// Why a connection ends.
#[derive(Debug)]
enum End {
    /// Send this close frame.
    Close(CloseCode, &'static str),
    /// The peer closed (its close frame, echoed) or vanished.
    Peer(Option<CloseReason>),
    /// The peer stopped reading: nothing more can be written.
    Stuck,
}

struct ConnectionTask {
    hub: Arc<dyn SocketHub>,
    connection: Arc<Connection>,
    session: Session,
    settings: Arc<SocketSettings>,
    lang: Lang,
    client: crate::web::client_addr::ClientAddr,
    window: Window,
    rate: Rate,
}

/// Bytes the HTTP layer has taken from the connection's session (encoded frames), and a
/// wake-up for a write waiting on them (signalled only while one waits: the notifier's lock
/// stays off the path of a connection whose writes fit). Also the hand-over of the outbox a
/// first join makes, from the connection's task to its body.
#[derive(Debug, Default)]
struct Flushed {
    bytes: AtomicU64,
    waiting: AtomicBool,
    taken: Notify,
    new_outbox: std::sync::Mutex<Option<Outbox>>,
    has_new_outbox: AtomicBool,
}

impl Flushed {
    /// Gives the body the outbox a first join made. The join's answer, written next, wakes
    /// the body, which takes it then.
    fn hand_over(&self, outbox: Outbox) {
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
struct ConnectionBody {
    inner: BoxBody,
    flushed: Arc<Flushed>,
    /// The connection's outbox once it has one.
    rooms: Option<Outbox>,
    metrics: Option<goex_metrics::SocketMetrics>,
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
struct Window {
    flushed: Arc<Flushed>,
    written: u64,
    bound: u64,
}

impl Window {
    fn admits(&self, len: u64) -> bool {
        let in_flight = self
            .written
            .saturating_sub(self.flushed.bytes.load(Ordering::SeqCst));
        in_flight == 0 || in_flight + len <= self.bound
    }

    /// Completes once a frame of `len` bytes fits.
    async fn room_for(&self, len: u64) {
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
struct Rate {
    per_second: f64,
    tokens: f64,
    refilled: Instant,
}

impl Rate {
    fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second);
        Self {
            per_second,
            tokens: per_second,
            refilled: Instant::now(),
        }
    }

    /// Whether a message arriving `now` may be acted on; it costs one token.
    fn admit(&mut self, now: Instant) -> bool {
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
    fn charge(&mut self, deliveries: usize) {
        self.tokens -= deliveries.saturating_sub(1) as f64;
    }
}

/// Removes the connection from the hub and the open-connections gauge however its task ends
/// (a panic included).
struct Registered {
    hub: Arc<dyn SocketHub>,
    connection: Arc<Connection>,
    metrics: Option<goex_metrics::SocketMetrics>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.hub.disconnect(&self.connection);
        if let Some(m) = &self.metrics {
            m.disconnected();
        }
    }
}

/// The close of a slow consumer.
const SLOW_CONSUMER: End = End::Close(CloseCode::Policy, "slow consumer: outbound queue full");

impl ConnectionTask {
    async fn run(
        mut self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
        mut stream: actix_ws::AggregatedMessageStream,
    ) {
        if let Some(m) = &self.settings.metrics {
            m.connected();
        }
        let registered = Registered {
            hub: self.hub.clone(),
            connection: self.connection.clone(),
            metrics: self.settings.metrics.clone(),
        };
        let connection = self.connection.clone();
        let settings = self.settings.clone();
        let cfg = &settings.socket;
        let (ping_every, idle) = (cfg.ping_interval, cfg.idle_timeout);
        let mut last_heard = Instant::now();
        let mut next_ping = last_heard + ping_every;
        let timer = tokio::time::sleep_until(next_ping.into());
        // What ends a connection from outside, the server's shutdown or its outbox's overflow,
        // armed once for the connection's life, not per message (each arming registers a
        // waiter under a lock), and raced by every write that has to wait.
        let interrupted = async {
            let stopping = async {
                while !*shutdown.borrow_and_update() {
                    if shutdown.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                biased;
                () = stopping => End::Close(CloseCode::Away, "server shutting down"),
                () = connection.overflowed() => SLOW_CONSUMER,
            }
        }
        .fuse();
        tokio::pin!(timer, interrupted);
        let end = loop {
            tokio::select! {
                biased;
                end = &mut interrupted => break end,
                message = stream.next() => {
                    let message = match message {
                        None => break End::Peer(None),
                        Some(Err(e)) => break protocol_end(&e),
                        Some(Ok(m)) => m,
                    };
                    if !matches!(message, AggregatedMessage::Pong(_)) || cfg.pong_keeps_alive {
                        last_heard = Instant::now();
                    }
                    if let (Some(m), AggregatedMessage::Text(_) | AggregatedMessage::Binary(_)) =
                        (&settings.metrics, &message)
                    {
                        m.message_in();
                    }
                    // Room frames do not pass here: the response body takes them from the
                    // outbox (ConnectionBody).
                    match self.answer(message, interrupted.as_mut()).await {
                        Ok(None) => {}
                        Ok(Some(end)) | Err(end) => break end,
                    }
                }
                () = &mut timer => {
                    let now = Instant::now();
                    if now.duration_since(last_heard) >= idle {
                        break End::Close(CloseCode::Normal, "idle timeout");
                    }
                    if now >= next_ping {
                        if let Err(end) = self.write(Outgoing::Ping, interrupted.as_mut()).await {
                            break end;
                        }
                        next_ping = now + ping_every;
                    }
                    timer.as_mut().reset(next_ping.min(last_heard + idle).into());
                }
            }
        };
        self.finish(end, stream).await;
        drop(registered);
    }

    /// Answers one message; `Ok(Some(end))` when it ends the connection.
    async fn answer<W: Future<Output = End>>(
        &mut self,
        message: AggregatedMessage,
        interrupted: Pin<&mut W>,
    ) -> Result<Option<End>, End> {
        if matches!(
            message,
            AggregatedMessage::Text(_) | AggregatedMessage::Binary(_) | AggregatedMessage::Ping(_)
        ) && !self.rate.admit(Instant::now())
        {
            // Not acted on: answered with one small error frame (a client that floods and
            // does not read is then dropped by the write bound).
            let refused = ServiceError::Limited(
                "messages per second (server.socket.max_messages_per_second)",
            );
            self.write(
                Outgoing::Text(error_frame(&refused, self.lang)),
                interrupted,
            )
            .await?;
            return Ok(None);
        }
        match message {
            AggregatedMessage::Text(text) => {
                let reply = self.reply_to_text(&text);
                self.write(Outgoing::Text(reply), interrupted).await?;
            }
            AggregatedMessage::Binary(bytes) => {
                let mut echo = Vec::with_capacity(ECHO_PREFIX.len() + bytes.len());
                echo.extend_from_slice(ECHO_PREFIX.as_bytes());
                echo.extend_from_slice(&bytes);
                self.write(Outgoing::Binary(echo.into()), interrupted)
                    .await?;
            }
            AggregatedMessage::Ping(payload) => {
                self.write(Outgoing::Pong(payload), interrupted).await?;
            }
            AggregatedMessage::Pong(_) => {}
            AggregatedMessage::Close(reason) => return Ok(Some(End::Peer(reason))),
        }
        Ok(None)
    }

    /// The reply to a text message (docs/websocket.md, "Messages").
    fn reply_to_text(&mut self, text: &str) -> Frame {
        if text.trim_start().starts_with('{')
            && let Ok(object) = serde_json::from_str::<Map<String, Value>>(text)
        {
            return match self.reply_to_object(object) {
                Ok(reply) => reply,
                Err(e) => error_frame(&e, self.lang),
            };
        }
        echo(text)
    }

    fn reply_to_object(&mut self, mut object: Map<String, Value>) -> Result<Frame, ServiceError> {
        let connection = &self.connection;
        let Some(kind) = object.get("type") else {
            // The original's JSON exchange: {"name","age"} -> {"data":{"message":...}}.
            return Ok(
                match (scalar(object.get("name")), scalar(object.get("age"))) {
                    (Some(name), Some(age)) => json!({
                        "data": {"message": format!("recv msg：{name}_{age}")}
                    })
                    .to_string()
                    .into(),
                    _ => echo(&Value::Object(object).to_string()),
                },
            );
        };
        let kind = kind
            .as_str()
            .ok_or_else(|| ServiceError::invalid("type", "must be a string"))?
            .to_owned();
        if kind == "ping" {
            return Ok(ByteString::from_static(r#"{"type":"pong"}"#));
        }
        let room = match object.get("room") {
            Some(Value::String(room)) => room.clone(),
            _ => return Err(ServiceError::invalid("room", "a string is required")),
        };
        match kind.as_str() {
            "join" => {
                let joined = self.hub.join(connection, &room)?;
                if let Some(outbox) = joined.outbox {
                    self.window.flushed.hand_over(outbox);
                }
                Ok(
                    json!({"type": "joined", "room": room, "members": joined.members})
                        .to_string()
                        .into(),
                )
            }
            "leave" => {
                self.hub.leave(connection, &room)?;
                Ok(json!({"type": "left", "room": room}).to_string().into())
            }
            "publish" => {
                let data = object.remove("data").unwrap_or(Value::Null);
                let mut message = json!({
                    "type": "message",
                    "room": room,
                    "from": format!("c{}", connection.id()),
                    "data": data,
                });
                // Anonymous members never see a user id.
                let anonymous: Frame = message.to_string().into();
                let frame = match connection.user() {
                    Some(user) => {
                        message["user"] = json!(user);
                        RoomFrame {
                            for_users: message.to_string().into(),
                            for_anonymous: anonymous,
                        }
                    }
                    None => anonymous.into(),
                };
                let delivered = self.hub.publish(connection, &room, frame)?;
                self.rate.charge(delivered);
                Ok(
                    json!({"type": "published", "room": room, "delivered": delivered})
                        .to_string()
                        .into(),
                )
            }
            other => Err(ServiceError::invalid(
                "type",
                format!("unknown message type `{other}` (ping, join, leave, publish)"),
            )),
        }
    }

    /// Writes one frame. When the session's queue is full (the peer reads slowly), waits at
    /// most `server.socket.write_timeout`, and not past a shutdown or an overflow: a peer that
    /// stopped reading is dropped, never waited for forever.
    async fn write<W: Future<Output = End>>(
        &mut self,
        out: Outgoing,
        interrupted: Pin<&mut W>,
    ) -> Result<(), End> {
        let session = &mut self.session;
        if let (Some(m), Outgoing::Text(_) | Outgoing::Binary(_)) = (&self.settings.metrics, &out) {
            m.message_out();
        }
        // Data frames wait for the write window; control frames (at most 127 bytes) never do.
        let (len, data) = match &out {
            Outgoing::Text(t) => (encoded_len(t.len()), true),
            Outgoing::Binary(b) => (encoded_len(b.len()), true),
            Outgoing::Ping => (encoded_len(0), false),
            Outgoing::Pong(p) => (encoded_len(p.len().min(125)), false),
        };
        let window = &self.window;
        let fits = !data || window.admits(len);
        let write_timeout = self.settings.socket.write_timeout;
        let sent = {
            let mut send = pin!(async move {
                if !fits {
                    window.room_for(len).await;
                }
                match out {
                    Outgoing::Text(t) => session.text(t).await,
                    Outgoing::Binary(b) => session.binary(b).await,
                    Outgoing::Ping => session.ping(b"").await,
                    Outgoing::Pong(p) => session.pong(&p).await,
                }
            });
            // Most writes find room at once: no timer, no race.
            match std::future::poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await {
                Poll::Ready(sent) => sent,
                Poll::Pending => tokio::select! {
                    biased;
                    end = interrupted => return Err(end),
                    sent = tokio::time::timeout(write_timeout, send) => {
                        sent.map_err(|_elapsed| End::Stuck)?
                    }
                },
            }
        };
        self.window.written += len;
        sent.map_err(|_closed| End::Peer(None))
    }

    /// Sends the close (unless the peer is stuck), then holds the connection's slot until its
    /// socket is gone: a peer that stopped reading keeps its socket open in the HTTP layer
    /// until the kernel gives up on it (`server.socket.tcp_user_timeout`), and until then it
    /// counts against `server.socket.max_connections`.
    async fn finish(self, end: End, stream: actix_ws::AggregatedMessageStream) {
        let socket = &self.settings.socket;
        if let Some(m) = &self.settings.metrics {
            let code = match &end {
                End::Close(code, _) => close_label(*code),
                End::Peer(_) => "peer",
                End::Stuck => "dropped",
            };
            m.closed(code);
        }
        let reason = match end {
            End::Close(code, description) => {
                slog::debug!(self.settings.logger, "socket closing"; "connection" => self.connection.id(),
                    "code" => u16::from(code), "reason" => description);
                Some(CloseReason {
                    code,
                    description: Some(description.to_owned()),
                })
            }
            // Echo the peer's close (RFC 6455 §5.5.1).
            End::Peer(reason) => {
                slog::debug!(self.settings.logger, "socket closed by peer"; "connection" => self.connection.id(),
                    "code" => reason.as_ref().map(|r| u16::from(r.code)));
                reason.map(|r| CloseReason {
                    code: r.code,
                    description: None,
                })
            }
            End::Stuck => {
                slog::info!(self.settings.logger, "socket dropped: the client stopped reading";
                    "connection" => self.connection.id(), "client" => %self.client);
                drop(self.session);
                Self::linger(stream, socket.write_timeout + socket.tcp_user_timeout * 2).await;
                return;
            }
        };
        let queued = tokio::time::timeout(socket.write_timeout, self.session.close(reason))
            .await
            .is_ok();
        let bound = if queued {
            socket.write_timeout
        } else {
            socket.write_timeout + socket.tcp_user_timeout * 2
        };
        Self::linger(stream, bound).await;
    }

    /// Waits, at most `bound`, for the stream to end: the HTTP layer let the socket go.
    async fn linger(mut stream: actix_ws::AggregatedMessageStream, bound: std::time::Duration) {
        let _ = tokio::time::timeout(bound, async {
            while let Some(Ok(_)) = stream.next().await {}
        })
        .await;
    }
}

enum Outgoing {
    Text(Frame),
    Binary(actix_web::web::Bytes),
    Ping,
    Pong(actix_web::web::Bytes),
}

/// The bytes of a server frame (unmasked) carrying `payload` bytes, as actix-http encodes it:
/// the write window counts exactly what the HTTP layer will take, so the two never drift.
fn encoded_len(payload: usize) -> u64 {
    let header = match payload {
        0..126 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    (header + payload) as u64
}

/// The metrics label of a close code the server sends.
fn close_label(code: CloseCode) -> &'static str {
    match code {
        CloseCode::Normal => "1000",
        CloseCode::Away => "1001",
        CloseCode::Protocol => "1002",
        CloseCode::Invalid => "1007",
        CloseCode::Policy => "1008",
        CloseCode::Size => "1009",
        _ => "other",
    }
}

/// The original's echo prefix.
const ECHO_PREFIX: &str = "recv data:";

fn echo(text: &str) -> Frame {
    let mut reply = String::with_capacity(ECHO_PREFIX.len() + text.len());
    reply.push_str(ECHO_PREFIX);
    reply.push_str(text);
    reply.into()
}

/// A string or a number as text (the original read both fields as strings).
fn scalar(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The close for a read error: 1009 past a size limit, 1007 for text that is not UTF-8,
/// 1002 for any other protocol violation (reserved bits, bad opcodes, unmasked frames).
fn protocol_end(e: &ProtocolError) -> End {
    match e {
        ProtocolError::Overflow => End::Close(CloseCode::Size, "message too big"),
        ProtocolError::Io(io)
            if io.to_string() == CONTINUATION_OVERFLOW || is_frame_limit_error(io) =>
        {
            End::Close(CloseCode::Size, "message too big")
        }
        ProtocolError::Io(io) if is_utf8_error(io) => {
            End::Close(CloseCode::Invalid, "text is not UTF-8")
        }
        ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            End::Close(CloseCode::Protocol, "protocol error")
        }
        ProtocolError::Io(_) => End::Peer(None),
        _ => End::Close(CloseCode::Protocol, "protocol error"),
    }
}

/// Whether a read error is text that is not UTF-8: actix-ws wraps the `Utf8Error` of a single
/// frame, and the text of one for an aggregated message (the tests pin both).
fn is_utf8_error(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::InvalidData
        && io.get_ref().is_some_and(|inner| {
            inner.is::<std::str::Utf8Error>() || inner.to_string().contains("utf-8")
        })
}

/// actix-ws's error text for an aggregated message over its limit (no variant of its own;
/// the oversize tests pin it).
const CONTINUATION_OVERFLOW: &str = "Exceeded maximum continuation size";

/// The target the pages connect to: `server.socket.public_url`, else the page's own host on
/// the socket app's port.
#[derive(Clone, Debug)]
pub struct PageTarget {
    /// `server.socket.public_url` (empty: derived).
    pub public_url: String,
    /// The socket app's port (`server.socket.addr`).
    pub port: u16,
}

const SOCKET_PAGE: &str = include_str!("../../views/socket.html");
const SOCKET2_PAGE: &str = include_str!("../../views/socket2.html");

/// Registers the HTTP app's pages of the socket app.
pub fn page_routes(routes: &mut Routes) {
    routes.add(__path_socket_index, &[], socket_index);
    routes.add(__path_socket_index2, &[], socket_index2);
}

/// The original's JSON example page: sends `{"name":"张三","age":"18"}` on open.
#[utoipa::path(
    get,
    path = "/socket/index",
    tag = "socket",
    operation_id = "socket_index",
    responses((status = 200, description = "An HTML page that talks to the socket app (docs/websocket.md).", content_type = "text/html")),
)]
async fn socket_index(req: HttpRequest, target: web::Data<PageTarget>) -> HttpResponse {
    page(SOCKET_PAGE, &req, &target)
}

/// The original's Open / Close / Send page.
#[utoipa::path(
    get,
    path = "/socket/index2",
    tag = "socket",
    operation_id = "socket_index2",
    responses((status = 200, description = "An HTML page with Open, Close and Send buttons that talks to the socket app.", content_type = "text/html")),
)]
async fn socket_index2(req: HttpRequest, target: web::Data<PageTarget>) -> HttpResponse {
    page(SOCKET2_PAGE, &req, &target)
}

fn page(template: &str, req: &HttpRequest, target: &PageTarget) -> HttpResponse {
    let url = if target.public_url.is_empty() {
        let (scheme, host) = page_origin(req);
        // The page's host without its port; [v6] keeps its brackets.
        let host = match host.rfind(':') {
            Some(i) if !host[i..].contains(']') => &host[..i],
            _ => host.as_str(),
        };
        let scheme = if scheme == "https" { "wss" } else { "ws" };
        format!("{scheme}://{host}:{}{SOCKET_PATH}", target.port)
    } else {
        target.public_url.clone()
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(template.replace("{{socket_url}}", &html_escape(&url)))
}

/// The scheme and host the page was asked for. `Forwarded` / `X-Forwarded-Host` /
/// `X-Forwarded-Proto` are read only from a peer in `server.http.trusted_proxies` (the rule of
/// the client address); from anyone else they are ignored, so a client cannot point the page's
/// socket elsewhere: the request's own `Host` and the listener's scheme.
fn page_origin(req: &HttpRequest) -> (String, String) {
    let trusted = req
        .app_data::<Arc<TrustedProxies>>()
        .zip(req.peer_addr())
        .is_some_and(|(trusted, peer)| trusted.contains(peer.ip()));
    if trusted {
        let info = req.connection_info();
        return (info.scheme().to_owned(), info.host().to_owned());
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_else(|| req.app_config().host())
        .to_owned();
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    (scheme.to_owned(), host)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_keeps_the_original_prefix() {
        assert_eq!(echo("hi"), "recv data:hi");
    }

    #[test]
    fn scalars_read_strings_and_numbers() {
        assert_eq!(scalar(Some(&json!("18"))).as_deref(), Some("18"));
        assert_eq!(scalar(Some(&json!(18))).as_deref(), Some("18"));
        assert_eq!(scalar(Some(&json!([1]))), None);
        assert_eq!(scalar(None), None);
    }

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
        let hub = crate::service::socket::SocketHubImpl::new(crate::service::socket::HubLimits {
            public_rooms: crate::service::socket::PublicRooms::new(&["r".to_owned()]),
            ..Default::default()
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

    #[test]
    fn page_urls_are_escaped() {
        assert_eq!(html_escape(r#"ws://a"b<c>"#), "ws://a&quot;b&lt;c&gt;");
    }

    #[test]
    fn read_errors_map_to_close_codes() {
        let size = std::io::Error::other(CONTINUATION_OVERFLOW);
        assert!(matches!(
            protocol_end(&ProtocolError::Io(size)),
            End::Close(CloseCode::Size, _)
        ));
        assert!(matches!(
            protocol_end(&ProtocolError::Overflow),
            End::Close(CloseCode::Size, _)
        ));
        let limit = std::io::Error::other(actix_web::error::PayloadError::Overflow);
        assert!(matches!(
            protocol_end(&ProtocolError::Io(limit)),
            End::Close(CloseCode::Size, _)
        ));
        let bytes = vec![b'a', 0xff];
        let invalid = std::str::from_utf8(&bytes).unwrap_err();
        // One frame (actix-ws wraps the error) and an aggregated message (its text).
        for utf8 in [
            std::io::Error::new(std::io::ErrorKind::InvalidData, invalid),
            std::io::Error::new(std::io::ErrorKind::InvalidData, invalid.to_string()),
        ] {
            assert!(matches!(
                protocol_end(&ProtocolError::Io(utf8)),
                End::Close(CloseCode::Invalid, _)
            ));
        }
        // actix-http's error for reserved bits: a protocol error, not bad text.
        let reserved = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "Received a frame with non-zero reserved bits",
        );
        assert!(matches!(
            protocol_end(&ProtocolError::Io(reserved)),
            End::Close(CloseCode::Protocol, _)
        ));
        assert!(matches!(
            protocol_end(&ProtocolError::UnmaskedFrame),
            End::Close(CloseCode::Protocol, _)
        ));
    }
}
