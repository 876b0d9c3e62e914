//! The socket app (docs/websocket.md) over real TCP with an independent client
//! (tokio-tungstenite): echo and JSON, rooms, heartbeat, admission, limits, slow consumers,
//! shutdown; a Python `websockets` client, the CLI client and the page in Chromium.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use go_example::cmd::socket::SocketApplication;
use go_example::service::socket::SocketHub;
use goex_config::Profile;
use serde_json::{Value, json};
use shaku::HasComponent;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{eventually, manifest_dir, python_venv, test_config};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running socket app.
pub(crate) struct SocketApp {
    pub(crate) port: u16,
    pub(crate) metrics_port: Option<u16>,
    module: std::sync::Arc<go_example::assembly::AppModule>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: TempDir,
}

impl SocketApp {
    pub(crate) fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/socket_server", self.port)
    }

    fn open(&self) -> usize {
        let hub: &dyn SocketHub = self.module.resolve_ref();
        hub.open_connections()
    }

    /// SIGINT's path: the hub closes every connection, then the server stops.
    pub(crate) async fn shut_down(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), self.done)
            .await
            .expect("the app stops")
            .expect("the app task")
    }
}

pub(crate) async fn spawn_socket(extra: &[(&str, String)]) -> SocketApp {
    let dir = tempfile::tempdir().unwrap();
    let mut overrides = vec![
        ("APP__SERVER__SOCKET__ADDR", "127.0.0.1:0".to_owned()),
        ("APP__SERVER__SOCKET__WORKERS", "2".to_owned()),
        (
            "APP__SQLITE__PATH",
            dir.path().join("app.db").display().to_string(),
        ),
        (
            "APP__CERTS__DIR",
            dir.path().join("certs").display().to_string(),
        ),
        (
            "APP__GRPC_CLIENT__TLS__DIR",
            dir.path().join("grpc-certs").display().to_string(),
        ),
    ];
    overrides.extend(extra.iter().cloned());
    let config = test_config(&overrides);
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let app = SocketApplication::build(&config, Profile::Test, &logger)
        .await
        .expect("socket app builds");
    let (port, module, metrics_port) = (app.port(), app.module(), app.metrics_port());
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let done = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    SocketApp {
        port,
        metrics_port,
        module,
        stop: Some(stop),
        done,
        _dir: dir,
    }
}

pub(crate) async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("the upgrade succeeds")
        .0
}

/// An upgrade request to `url` with extra headers.
fn upgrade_request(
    url: &str,
    headers: &[(&str, &str)],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    request
}

/// Connects with extra headers; `Err((status, body))` when the upgrade is refused.
pub(crate) async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Result<Ws, (u16, Value)> {
    upgraded(tokio_tungstenite::connect_async(upgrade_request(url, headers)).await)
}

/// Connects from the local address `source` (another loopback address: 127.0.0.2, 127.0.1.1),
/// as a client on another host would.
async fn connect_from(url: &str, source: &str) -> Result<Ws, (u16, Value)> {
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("a port in the URL");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("TCP connect");
    upgraded(
        tokio_tungstenite::client_async(upgrade_request(url, &[]), MaybeTlsStream::Plain(stream))
            .await,
    )
}

fn upgraded<R>(result: Result<(Ws, R), WsError>) -> Result<Ws, (u16, Value)> {
    match result {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            Err((
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            ))
        }
        Err(e) => panic!("unexpected upgrade error: {e}"),
    }
}

/// The next text or binary message (pings are answered by the client as it reads).
pub(crate) async fn next_data(ws: &mut Ws) -> Message {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the connection is open")
            .expect("a frame");
        match message {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

pub(crate) async fn next_json(ws: &mut Ws) -> Value {
    match next_data(ws).await {
        Message::Text(text) => serde_json::from_str(&text).expect("JSON"),
        other => panic!("expected a JSON text frame, got {other:?}"),
    }
}

async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// Reads until the close frame; returns its code and reason.
async fn close_of(ws: &mut Ws) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a close within 15 s");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) => return (1005, String::new()),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_echo_and_json_exchange() {
    let app = spawn_socket(&[]).await;
    let mut ws = connect(&app.url()).await;
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("recv data:hello"));
    // Same frame type: binary in, binary out.
    ws.send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    let mut want = b"recv data:".to_vec();
    want.extend([0u8, 159, 146, 150]);
    assert_eq!(next_data(&mut ws).await, Message::binary(want));
    send_json(&mut ws, json!({"name": "张三", "age": "18"})).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"data": {"message": "recv msg：张三_18"}})
    );
    send_json(&mut ws, json!({"name": "李四", "age": 20})).await;
    assert_eq!(
        next_json(&mut ws).await["data"]["message"],
        "recv msg：李四_20"
    );
    // A JSON object that is neither: the text echo.
    ws.send(Message::text(r#"{"x":1}"#)).await.unwrap();
    assert_eq!(
        next_data(&mut ws).await,
        Message::text(r#"recv data:{"x":1}"#)
    );
    send_json(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut ws).await, json!({"type": "pong"}));
    // A protocol ping is answered with a pong carrying its payload.
    ws.send(Message::Ping(b"beat".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(Message::Pong(p))) = ws.next().await {
                return p;
            }
        }
    })
    .await
    .expect("a pong");
    assert_eq!(&pong[..], b"beat");
    ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    assert_eq!(
        close_of(&mut ws).await.0,
        1000,
        "the client's close is echoed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_deliver_to_the_other_members_with_documented_errors() {
    let app = spawn_socket(&[]).await;
    let mut a = connect(&app.url()).await;
    let mut b = connect(&app.url()).await;
    send_json(&mut a, json!({"type": "join", "room": "lobby"})).await;
    assert_eq!(
        next_json(&mut a).await,
        json!({"type": "joined", "room": "lobby", "members": 1})
    );
    send_json(&mut b, json!({"type": "join", "room": "lobby"})).await;
    assert_eq!(next_json(&mut b).await["members"], 2);
    send_json(
        &mut a,
        json!({"type": "publish", "room": "lobby", "data": {"text": "hi", "n": [1, 2]}}),
    )
    .await;
    assert_eq!(
        next_json(&mut a).await,
        json!({"type": "published", "room": "lobby", "delivered": 1})
    );
    let message = next_json(&mut b).await;
    assert_eq!(message["type"], "message");
    assert_eq!(message["room"], "lobby");
    assert_eq!(message["data"], json!({"text": "hi", "n": [1, 2]}));
    assert!(message["from"].as_str().unwrap().starts_with('c'));
    assert!(message.get("user").is_none(), "anonymous connection");

    send_json(&mut b, json!({"type": "leave", "room": "lobby"})).await;
    assert_eq!(
        next_json(&mut b).await,
        json!({"type": "left", "room": "lobby"})
    );
    // Not a member any more: 10011.
    send_json(
        &mut b,
        json!({"type": "publish", "room": "lobby", "data": 1}),
    )
    .await;
    let error = next_json(&mut b).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["code"], "10011");
    // An unknown type, a bad room name: 10000; the connection stays usable.
    send_json(&mut b, json!({"type": "dance"})).await;
    assert_eq!(next_json(&mut b).await["error"]["code"], "10000");
    send_json(&mut b, json!({"type": "join", "room": "no spaces"})).await;
    assert_eq!(next_json(&mut b).await["error"]["code"], "10000");
    b.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        next_data(&mut b).await,
        Message::text("recv data:still here")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_frames_follow_the_upgrade_language() {
    let app = spawn_socket(&[]).await;
    let mut ws = connect_with(&app.url(), &[("accept-language", "en-US,en;q=0.9")])
        .await
        .unwrap();
    send_json(&mut ws, json!({"type": "leave", "room": "nowhere"})).await;
    let error = next_json(&mut ws).await;
    assert_eq!(error["error"]["code"], "10011");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Forbidden"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_live_ones_kept() {
    let app = spawn_socket(&[
        ("APP__SERVER__SOCKET__PING_INTERVAL", "200ms".to_owned()),
        ("APP__SERVER__SOCKET__IDLE_TIMEOUT", "1s".to_owned()),
    ])
    .await;
    // Never reads, so never answers the server's pings.
    let mut silent = connect(&app.url()).await;
    // Reads (tungstenite answers each ping as it reads), sends nothing.
    let mut live = connect(&app.url()).await;
    let reader = tokio::spawn(async move {
        let mut pings = 0;
        let until = tokio::time::Instant::now() + Duration::from_millis(2500);
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, live.next()).await {
            if let Message::Ping(_) = message {
                pings += 1;
            }
        }
        (pings, live)
    });
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        close_of(&mut silent).await,
        (1000, "idle timeout".to_owned())
    );
    let (pings, mut live) = reader.await.unwrap();
    assert!(pings >= 5, "the server pings every 200 ms: {pings}");
    live.send(Message::text("alive")).await.unwrap();
    assert_eq!(next_data(&mut live).await, Message::text("recv data:alive"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pong_keeps_alive_only_messages_count() {
    let app = spawn_socket(&[
        ("APP__SERVER__SOCKET__PING_INTERVAL", "200ms".to_owned()),
        ("APP__SERVER__SOCKET__IDLE_TIMEOUT", "1s".to_owned()),
        ("APP__SERVER__SOCKET__PONG_KEEPS_ALIVE", "false".to_owned()),
    ])
    .await;
    let mut ws = connect(&app.url()).await;
    let started = std::time::Instant::now();
    // Reading answers pings, which no longer count: the original's 30 s-after-the-last-message.
    assert_eq!(close_of(&mut ws).await, (1000, "idle timeout".to_owned()));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_outside_the_allowlist_are_refused_before_the_upgrade() {
    // The test profile admits the hosts localhost, 127.0.0.1 and [::1].
    let app = spawn_socket(&[]).await;
    let (status, body) = connect_with(&app.url(), &[("origin", "http://evil.example")])
        .await
        .expect_err("refused");
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "10011");
    assert!(
        connect_with(&app.url(), &[("origin", "http://localhost.evil.example")])
            .await
            .is_err()
    );
    assert!(
        connect_with(&app.url(), &[("origin", "http://127.0.0.1:8080")])
            .await
            .is_ok()
    );
    // Required: a client without Origin is refused too.
    let strict = spawn_socket(&[("APP__SERVER__SOCKET__REQUIRE_ORIGIN", "true".to_owned())]).await;
    assert_eq!(connect_with(&strict.url(), &[]).await.err().unwrap().0, 403);
    // The server kept serving through every refusal (the original's process died).
    let mut ws = connect(&app.url()).await;
    ws.send(Message::text("after")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("recv data:after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ip_allowlist_matches_whole_addresses_and_ignores_untrusted_headers() {
    let refused = spawn_socket(&[(
        "APP__COMMON__SOCKET_WHITE_IP_LIST__0",
        "127.0.0.10".to_owned(),
    )])
    .await;
    // 127.0.0.1 is a prefix of the entry: the original's regex admitted it.
    let (status, body) = connect_with(&refused.url(), &[])
        .await
        .expect_err("refused");
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "10011");
    // A client cannot name itself: X-Forwarded-For from an untrusted peer is ignored.
    assert!(
        connect_with(&refused.url(), &[("x-forwarded-for", "127.0.0.10")])
            .await
            .is_err()
    );

    let wildcard = spawn_socket(&[(
        "APP__COMMON__SOCKET_WHITE_IP_LIST__0",
        "127.0.*.*".to_owned(),
    )])
    .await;
    assert!(connect_with(&wildcard.url(), &[]).await.is_ok());

    // Behind a trusted proxy, the forwarded address is the client.
    let proxied = spawn_socket(&[
        (
            "APP__COMMON__SOCKET_WHITE_IP_LIST__0",
            "10.1.0.*".to_owned(),
        ),
        (
            "APP__SERVER__SOCKET__TRUSTED_PROXIES__0",
            "127.0.0.1".to_owned(),
        ),
    ])
    .await;
    assert!(
        connect_with(&proxied.url(), &[("x-forwarded-for", "10.1.0.7")])
            .await
            .is_ok()
    );
    assert_eq!(
        connect_with(&proxied.url(), &[("x-forwarded-for", "110.1.0.7")])
            .await
            .err()
            .unwrap()
            .0,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_requests_get_an_envelope_and_the_server_keeps_serving() {
    let app = spawn_socket(&[]).await;
    let client = reqwest::Client::new();
    let res = client
        .get(format!("http://127.0.0.1:{}/socket_server", app.port))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "10000");
    let res = client
        .get(format!("http://127.0.0.1:{}/nowhere", app.port))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = client
        .get(format!("http://127.0.0.1:{}/healthz", app.port))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut ws = connect(&app.url()).await;
    ws.send(Message::text("ok")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("recv data:ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_get_503_even_when_fired_at_once() {
    let app = spawn_socket(&[("APP__SERVER__SOCKET__MAX_CONNECTIONS", "5".to_owned())]).await;
    let url = app.url();
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { connect_with(&url, &[]).await })
        })
        .collect();
    let mut open = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(ws) => open.push(ws),
            Err((status, body)) => {
                assert_eq!(status, 503);
                assert_eq!(body["error"]["code"], "10009");
                refused += 1;
            }
        }
    }
    assert_eq!((open.len(), refused), (5, 15));
    assert_eq!(app.open(), 5);
    // A place is given back when a connection ends.
    let mut first = open.pop().unwrap();
    first.close(None).await.unwrap();
    let _ = close_of(&mut first).await;
    assert!(eventually(Duration::from_secs(5), async || app.open() == 4).await);
    assert!(connect_with(&url, &[]).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frames_and_messages_close_with_1009() {
    let app = spawn_socket(&[
        ("APP__SERVER__SOCKET__MAX_FRAME_SIZE", "1024".to_owned()),
        ("APP__SERVER__SOCKET__MAX_MESSAGE_SIZE", "4096".to_owned()),
    ])
    .await;
    let mut ws = connect(&app.url()).await;
    ws.send(Message::text("x".repeat(2000))).await.unwrap();
    assert_eq!(close_of(&mut ws).await.0, 1009);

    // Continuation frames are aggregated: 3 × 1000 bytes is one message within the limit ...
    let mut ws = connect(&app.url()).await;
    send_fragments(&mut ws, 3, 1000).await;
    match next_data(&mut ws).await {
        Message::Text(text) => assert_eq!(text.len(), "recv data:".len() + 3000),
        other => panic!("{other:?}"),
    }
    // ... 5 × 1000 is over max_message_size, though every frame is within max_frame_size.
    send_fragments(&mut ws, 5, 1000).await;
    assert_eq!(close_of(&mut ws).await.0, 1009);
}

/// Sends one text message as `count` frames of `size` bytes.
async fn send_fragments(ws: &mut Ws, count: usize, size: usize) {
    for i in 0..count {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let frame = Frame::message("y".repeat(size), opcode, i + 1 == count);
        ws.send(Message::Frame(frame)).await.unwrap();
    }
}

/// A WebSocket client on a plain TCP socket, for frames and behaviour no library produces:
/// a header announcing a huge frame, reserved bits, a client that stops reading.
struct RawWs {
    tcp: TcpStream,
}

impl RawWs {
    /// Upgrades a fresh connection; `recv_buffer` shrinks its receive buffer first.
    async fn connect(port: u16, recv_buffer: Option<u32>) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut tcp = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        let request = format!(
            "GET /socket_server HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tcp.read_u8().await.expect("the upgrade answer"));
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        Self { tcp }
    }

    /// A masked client frame: `first` is the FIN, RSV and opcode byte.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        Self::header_length(&mut out, payload.len() as u64);
        let mask = [0x11, 0x22, 0x33, 0x44];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        out
    }

    /// The masked length field of a client frame announcing `len` bytes.
    fn header_length(out: &mut Vec<u8>, len: u64) {
        match len {
            0..=125 => out.push(0x80 | len as u8),
            126..=65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// Reads the server's frames (never masked) until its close; the close code.
    async fn close_code(&mut self, within: Duration) -> u16 {
        use tokio::io::AsyncReadExt;
        tokio::time::timeout(within, async {
            loop {
                let first = self.tcp.read_u8().await.expect("a frame");
                let len = match self.tcp.read_u8().await.expect("a length") & 0x7f {
                    126 => u64::from(self.tcp.read_u16().await.unwrap()),
                    127 => self.tcp.read_u64().await.unwrap(),
                    n => u64::from(n),
                };
                let mut payload = vec![0; usize::try_from(len).unwrap()];
                self.tcp.read_exact(&mut payload).await.unwrap();
                if first & 0x0f == 0x8 {
                    return u16::from_be_bytes([payload[0], payload[1]]);
                }
            }
        })
        .await
        .expect("a close frame in time")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_announcing_too_much_is_refused_on_its_header() {
    let app = spawn_socket(&[]).await;
    // A 1 GiB binary frame: only its header and a little of it are sent. The server closes
    // with 1009 on the header instead of buffering the frame (it never reaches max_frame_size
    // of data here, so a check after buffering would wait for ever).
    let mut raw = RawWs::connect(app.port, None).await;
    let mut header = vec![0x82];
    RawWs::header_length(&mut header, 1 << 30);
    header.extend_from_slice(&[1, 2, 3, 4]);
    raw.send(&header).await;
    raw.send(&[0; 1000]).await;
    assert_eq!(raw.close_code(Duration::from_secs(5)).await, 1009);
    // Frames before it were answered, bytes are not lost to the check.
    let mut raw = RawWs::connect(app.port, None).await;
    raw.send(&RawWs::frame(0x81, b"first")).await;
    let mut ws_bytes = RawWs::frame(0x81, b"second");
    ws_bytes.extend_from_slice(&header);
    raw.send(&ws_bytes).await;
    assert_eq!(raw.close_code(Duration::from_secs(5)).await, 1009);
    assert!(eventually(Duration::from_secs(5), async || app.open() == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_text_closes_with_1007_and_other_violations_with_1002() {
    let app = spawn_socket(&[]).await;
    let cases: [(&str, Vec<u8>, u16); 4] = [
        (
            "a text frame that is not UTF-8",
            RawWs::frame(0x81, b"ok \xff\xfe"),
            1007,
        ),
        (
            "fragments that are not UTF-8 together",
            [RawWs::frame(0x01, b"ok \xe2"), RawWs::frame(0x80, b"\x28")].concat(),
            1007,
        ),
        (
            "reserved bits without an extension",
            RawWs::frame(0xC1, b"hi"),
            1002,
        ),
        ("an unknown opcode", RawWs::frame(0x83, b"hi"), 1002),
    ];
    for (what, bytes, code) in cases {
        let mut raw = RawWs::connect(app.port, None).await;
        raw.send(&bytes).await;
        assert_eq!(raw.close_code(Duration::from_secs(5)).await, code, "{what}");
    }
}

/// Whether the server still has a socket of `port` connected to the client's `peer_port`
/// (`/proc/net/tcp`; TIME_WAIT is a socket already closed).
fn server_socket_open(port: u16, peer_port: u16) -> bool {
    let port_of = |addr: &str| {
        u16::from_str_radix(addr.rsplit(':').next().unwrap_or_default(), 16).unwrap_or(0)
    };
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .any(|f| {
                f.len() > 3
                    && port_of(f[1]) == port
                    && port_of(f[2]) == peer_port
                    && !matches!(f[3], "06" | "07")
            })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_loses_its_socket_and_holds_its_slot_until_then() {
    let app = spawn_socket(&[
        ("APP__SERVER__SOCKET__MAX_CONNECTIONS", "1".to_owned()),
        (
            "APP__SERVER__SOCKET__MAX_MESSAGES_PER_SECOND",
            "1000000".to_owned(),
        ),
        ("APP__SERVER__SOCKET__WRITE_TIMEOUT", "1s".to_owned()),
        ("APP__SERVER__SOCKET__TCP_USER_TIMEOUT", "2s".to_owned()),
    ])
    .await;
    let raw = RawWs::connect(app.port, Some(4096)).await;
    let peer_port = raw.tcp.local_addr().unwrap().port();
    assert!(server_socket_open(app.port, peer_port));
    // It sends 60 KB binary frames to be echoed and never reads: the echoes fill its window,
    // the server's socket buffer and the session's queue, and the server's write waits.
    let (_unread, mut writer) = raw.tcp.into_split();
    let frame = RawWs::frame(0x82, &vec![7; 60_000]);
    let flood = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for _ in 0..1000 {
            match tokio::time::timeout(Duration::from_secs(3), writer.write_all(&frame)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        writer
    });
    // The kernel aborts the stuck connection (TCP_USER_TIMEOUT); its slot comes back only
    // then, never while the server still holds the socket.
    let gone = eventually(Duration::from_secs(30), async || {
        let open = app.open();
        let held = server_socket_open(app.port, peer_port);
        assert!(
            !(held && open == 0),
            "the slot was given back while the server's socket is open"
        );
        !held && open == 0
    })
    .await;
    assert!(
        gone,
        "the server kept the socket of a client that stopped reading"
    );
    let _writer = flood.await.unwrap();
    // The slot is free for the next client.
    let mut ws = connect(&app.url()).await;
    ws.send(Message::text("after")).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::text("recv data:after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_sender_in_a_busy_room_is_not_taken_for_a_slow_reader() {
    let app = spawn_socket(&[
        ("APP__SERVER__SOCKET__OUTBOUND_QUEUE", "16".to_owned()),
        (
            "APP__SERVER__SOCKET__MAX_MESSAGES_PER_SECOND",
            "1000000".to_owned(),
        ),
    ])
    .await;
    let mut fast = connect(&app.url()).await;
    let mut room = connect(&app.url()).await;
    for ws in [&mut fast, &mut room] {
        send_json(ws, json!({"type": "join", "room": "lobby"})).await;
        assert_eq!(next_json(ws).await["type"], "joined");
    }
    // `fast` pipelines 30,000 echo requests and reads everything, while the room publishes 200
    // messages to it, one every 3 ms: the room's messages go out between the echoes.
    const ECHOES: usize = 30_000;
    const PUBLISHED: usize = 200;
    let (mut sink, mut replies) = fast.split();
    let sender = tokio::spawn(async move {
        for i in 0..ECHOES {
            sink.feed(Message::text(format!("m{i}"))).await.unwrap();
        }
        sink.flush().await.unwrap();
        sink
    });
    let publisher = tokio::spawn(async move {
        let (mut sink, mut acks) = room.split();
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = acks.next().await {} });
        for i in 0..PUBLISHED {
            let message = json!({"type": "publish", "room": "lobby", "data": i});
            sink.send(Message::text(message.to_string())).await.unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        (sink, reader)
    });
    let (mut echoes, mut from_room) = (0, 0);
    while echoes < ECHOES || from_room < PUBLISHED {
        let message = tokio::time::timeout(Duration::from_secs(30), replies.next())
            .await
            .expect("replies keep coming")
            .expect("the connection stays open")
            .expect("a frame");
        match message {
            Message::Text(text) if text.starts_with("recv data:m") => echoes += 1,
            Message::Text(text) if text.contains(r#""type":"message""#) => from_room += 1,
            Message::Close(frame) => {
                panic!("closed after {echoes} echoes, {from_room} room messages: {frame:?}")
            }
            _ => {}
        }
    }
    let _ = (sender.await.unwrap(), publisher.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_disconnected_with_1008_and_never_blocks_the_room() {
    let app = spawn_socket(&[
        ("APP__SERVER__SOCKET__OUTBOUND_QUEUE", "8".to_owned()),
        ("APP__SERVER__SOCKET__MAX_FRAME_SIZE", "65536".to_owned()),
        ("APP__SERVER__SOCKET__WRITE_TIMEOUT", "5s".to_owned()),
        (
            "APP__SERVER__SOCKET__MAX_MESSAGES_PER_SECOND",
            "1000000".to_owned(),
        ),
    ])
    .await;
    let mut publisher = connect(&app.url()).await;
    let mut slow = connect(&app.url()).await;
    for ws in [&mut publisher, &mut slow] {
        send_json(ws, json!({"type": "join", "room": "lobby"})).await;
        assert_eq!(next_json(ws).await["type"], "joined");
    }
    // `slow` stops reading. 60 KB messages fill the socket buffers, the session queue and
    // then its 8-message outbox; the publisher's answers keep coming all along.
    let payload = "z".repeat(60_000);
    let mut published = 0;
    let dropped_at = loop {
        send_json(
            &mut publisher,
            json!({"type": "publish", "room": "lobby", "data": payload}),
        )
        .await;
        let answer = next_json(&mut publisher).await;
        published += 1;
        if answer["delivered"] == 0 {
            break published;
        }
        assert!(published < 2000, "the slow consumer was never cut off");
    };
    assert!(dropped_at > 8, "{dropped_at}");
    // Reading again, it finds what was queued, then the 1008 close.
    let (code, reason) = close_of(&mut slow).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(eventually(Duration::from_secs(5), async || app.open() == 1).await);
    // The room goes on for the others.
    send_json(&mut publisher, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut publisher).await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_client_with_1001_and_stops() {
    let app = spawn_socket(&[]).await;
    let url = app.url();
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect(&url).await);
    }
    send_json(&mut clients[0], json!({"type": "join", "room": "lobby"})).await;
    assert_eq!(next_json(&mut clients[0]).await["type"], "joined");
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { close_of(&mut ws).await }))
        .collect();
    let port = app.port;
    app.shut_down().await.expect("the app exits cleanly");
    for reader in readers {
        assert_eq!(reader.await.unwrap().0, 1001);
    }
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_with_single_sign_on() {
    use go_example::model::forms::{LoginForm, RegisterForm};
    use go_example::service::auth::AuthService;
    let app = spawn_socket(&[("APP__SERVER__SOCKET__AUTH", "required".to_owned())]).await;
    let (status, body) = connect_with(&app.url(), &[]).await.expect_err("refused");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("10010"))
    );
    let auth: &dyn AuthService = app.module.resolve_ref();
    let form = || RegisterForm {
        username: "socketuser".into(),
        password: "Passw0rd!socket".into(),
        gender: 1,
    };
    auth.register(form(), "127.0.0.1").await.expect("register");
    let login = || LoginForm {
        username: "socketuser".into(),
        password: "Passw0rd!socket".into(),
    };
    let first = auth.login(login(), "127.0.0.1").await.expect("login");
    let token: String = form_urlencoded::byte_serialize(first.access_token.as_bytes()).collect();
    let url = format!("{}?token={token}", app.url());
    let mut a = connect(&url).await;
    let mut b = connect_with(
        &app.url(),
        // accessToken is "Bearer <jwt>", the Authorization value as it is.
        &[("authorization", &first.access_token)],
    )
    .await
    .expect("the header works too");
    for ws in [&mut a, &mut b] {
        send_json(ws, json!({"type": "join", "room": "signed"})).await;
        next_json(ws).await;
    }
    send_json(
        &mut a,
        json!({"type": "publish", "room": "signed", "data": 1}),
    )
    .await;
    next_json(&mut a).await;
    let message = next_json(&mut b).await;
    assert!(message["user"].as_i64().is_some(), "{message}");
    // Signing in again elsewhere retires the first login: its token no longer opens sockets.
    auth.login(login(), "127.0.0.1")
        .await
        .expect("second login");
    let (status, body) = connect_with(&url, &[]).await.expect_err("refused");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("20001"))
    );
    let (status, _) = connect_with(&format!("{}?token=garbage", app.url()), &[])
        .await
        .expect_err("refused");
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_optional_tokens_a_malformed_authorization_is_refused_not_ignored() {
    let app = spawn_socket(&[("APP__SERVER__SOCKET__AUTH", "optional".to_owned())]).await;
    // No credentials: admitted anonymously.
    connect_with(&app.url(), &[]).await.expect("anonymous");
    // Credentials that cannot be read are refused, never taken for none.
    for value in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer caf\u{e9}"] {
        let (status, body) = connect_with(&app.url(), &[("authorization", value)])
            .await
            .expect_err(value);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("10010")),
            "{value}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_websockets_client_talks_to_it() {
    // The client joins a room of its own, `socket-client-<pid>-<n>`, anonymously.
    let app = spawn_socket(&[(
        "APP__SERVER__SOCKET__PUBLIC_ROOMS__0",
        "socket-client-*".to_owned(),
    )])
    .await;
    let python = python_venv("socket", &[crate::helpers::WEBSOCKETS_PIN]);
    let url = app.url();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(manifest_dir().join("tests/clients/socket_client.py"))
            .arg(url)
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "socket_client.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_client_sends_stdin_lines_and_prints_replies() {
    use std::io::Write;
    let app = spawn_socket(&[]).await;
    let addr = format!("127.0.0.1:{}", app.port);
    let out = tokio::task::spawn_blocking(move || {
        let mut child = crate::helpers::app_command()
            .args(["socket-client", "--addr", &addr])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the client starts");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all("hello\n你好\n".as_bytes()).unwrap();
        // Give the replies time to arrive before the end of input closes the connection.
        std::thread::sleep(Duration::from_millis(500));
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("recv: recv data:hello"), "{stdout}");
    assert!(stdout.contains("recv: recv data:你好"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_in_a_real_browser() {
    // The page check joins a room of its own, `page-check-<n>`, anonymously.
    let socket = spawn_socket(&[(
        "APP__SERVER__SOCKET__PUBLIC_ROOMS__0",
        "page-check-*".to_owned(),
    )])
    .await;
    // The HTTP app serves the pages, pointed at this socket app.
    let http = crate::helpers::spawn_app_with(&[(
        "APP__SERVER__SOCKET__ADDR",
        format!("127.0.0.1:{}", socket.port),
    )])
    .await;
    let page = http.get("/socket/index2").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("ws://127.0.0.1:{}/socket_server", socket.port)),
        "the page points at the socket app"
    );
    let chromium = crate::helpers::browser();
    let python = python_venv("socket", &[crate::helpers::WEBSOCKETS_PIN]);
    let (page2, page1) = (
        format!("{}/socket/index2", http.address),
        format!("{}/socket/index", http.address),
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(manifest_dir().join("scripts/socket-page-check.py"))
            .args([page2, page1])
            .env("CHROMIUM", chromium)
            .output()
            .expect("the page check runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "socket-page-check.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `go_example socket --env test` in a process of its own (its figures are its own), with
/// `env` over the profile; its port once it listens.
pub(crate) fn spawn_socket_process(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, u16) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut command = crate::helpers::app_command();
    command
        .args(["socket", "--env", "test"])
        .env("APP__SERVER__SOCKET__ADDR", "127.0.0.1:0")
        .env("APP__SQLITE__PATH", dir.join("app.db"))
        .env("APP__CERTS__DIR", dir.join("certs"))
        .env("APP__LOG__FORMAT", "json");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn go_example socket");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("socket server listening") {
                let v: Value = serde_json::from_str(&line).unwrap();
                let addr = v["addr"].as_str().unwrap().to_owned();
                let _ = tx.send(addr.rsplit(':').next().unwrap().parse::<u16>().unwrap());
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server reports its port");
    (child, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_closes_clients_with_1001_on_sigterm_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = spawn_socket_process(dir.path(), &[]);
    let url = format!("ws://127.0.0.1:{port}/socket_server");
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut ws = connect(&url).await;
        ws.send(Message::text("hi")).await.unwrap();
        assert_eq!(next_data(&mut ws).await, Message::text("recv data:hi"));
        clients.push(ws);
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    for mut ws in clients {
        assert_eq!(
            close_of(&mut ws).await,
            (1001, "server shutting down".to_owned())
        );
    }
    let status = tokio::task::spawn_blocking(move || {
        let until = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < until {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    })
    .await
    .unwrap()
    .expect("the process exits within 15 s");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_messages_closes_and_refusals_are_counted() {
    let app = spawn_socket(&[]).await;
    let mut ws = connect(&app.url()).await;
    for text in ["a", "b"] {
        ws.send(Message::text(text)).await.unwrap();
        next_data(&mut ws).await;
    }
    assert!(
        connect_with(&app.url(), &[("origin", "http://evil.example")])
            .await
            .is_err()
    );
    let port = app
        .metrics_port
        .expect("metrics are on in the test profile");
    let scrape = async || crate::helpers::scrape_port(port).await;
    let text = scrape().await;
    for line in [
        "go_example_socket_connections 1",
        r#"go_example_socket_messages_total{direction="in"} 2"#,
        r#"go_example_socket_messages_total{direction="out"} 2"#,
        r#"go_example_socket_refusals_total{reason="origin"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    ws.close(None).await.unwrap();
    let _ = close_of(&mut ws).await;
    assert!(
        eventually(Duration::from_secs(5), async || {
            let text = scrape().await;
            text.lines().any(|l| l == "go_example_socket_connections 0")
                && text
                    .lines()
                    .any(|l| l == r#"go_example_socket_closes_total{code="peer"} 1"#)
        })
        .await,
        "{}",
        scrape().await
    );
}

/// Registers `name` and signs in through the module: the login's `accessToken`
/// (`Bearer <jwt>`, an `Authorization` value as it is).
async fn sign_in(app: &SocketApp, name: &str) -> String {
    use go_example::model::forms::{LoginForm, RegisterForm};
    use go_example::service::auth::AuthService;
    let auth: &dyn AuthService = app.module.resolve_ref();
    let password = format!("Passw0rd!{name}");
    auth.register(
        RegisterForm {
            username: name.into(),
            password: password.clone(),
            gender: 1,
        },
        "127.0.0.1",
    )
    .await
    .expect("register");
    auth.login(
        LoginForm {
            username: name.into(),
            password,
        },
        "127.0.0.1",
    )
    .await
    .expect("login")
    .access_token
}

/// Fires `count` upgrades at once from `source`; the admitted connections and the refusals.
async fn fire_from(url: &str, source: &'static str, count: usize) -> (Vec<Ws>, Vec<(u16, Value)>) {
    let attempts: Vec<_> = (0..count)
        .map(|_| {
            let url = url.to_owned();
            tokio::spawn(async move { connect_from(&url, source).await })
        })
        .collect();
    let (mut open, mut refused) = (Vec::new(), Vec::new());
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(ws) => open.push(ws),
            Err(refusal) => refused.push(refusal),
        }
    }
    (open, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_slot_even_when_fired_at_once() {
    // Test scale: 5 per host (IPv4 address), 8 per network (/24), 100 in all.
    let app = spawn_socket(&[
        ("APP__SERVER__SOCKET__MAX_PER_ADDRESS__HOST", "5".to_owned()),
        (
            "APP__SERVER__SOCKET__MAX_PER_ADDRESS__NETWORK",
            "8".to_owned(),
        ),
        ("APP__SERVER__SOCKET__MAX_CONNECTIONS", "100".to_owned()),
    ])
    .await;
    let url = app.url();
    let (mut held, refused) = fire_from(&url, "127.0.0.1", 20).await;
    assert_eq!((held.len(), refused.len()), (5, 15));
    for (status, body) in &refused {
        assert_eq!(
            (*status, body["error"]["code"].as_str()),
            (429, Some("10008"))
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("server.socket.max_per_address.host"),
            "{body}"
        );
    }
    // A neighbour in the same /24 gets what is left of the network's 8, fired at once too.
    let (neighbour, refused) = fire_from(&url, "127.0.0.2", 10).await;
    assert_eq!((neighbour.len(), refused.len()), (3, 7));
    assert!(
        refused[0].1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.socket.max_per_address.network"),
        "{:?}",
        refused[0]
    );
    // Another network is admitted: the limits are per address, not global.
    let (other, _) = fire_from(&url, "127.0.1.1", 2).await;
    assert_eq!(other.len(), 2);
    assert_eq!(app.open(), 10);
    // A place is given back when a connection ends.
    let mut first = held.pop().unwrap();
    first.close(None).await.unwrap();
    let _ = close_of(&mut first).await;
    assert!(eventually(Duration::from_secs(5), async || app.open() == 9).await);
    let mut again = connect_from(&url, "127.0.0.1")
        .await
        .expect("a place came back");
    again.send(Message::text("hi")).await.unwrap();
    assert_eq!(next_data(&mut again).await, Message::text("recv data:hi"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_places_are_never_leaked_by_refused_upgrades() {
    // Test scale: 2 per host.
    let app = spawn_socket(&[("APP__SERVER__SOCKET__MAX_PER_ADDRESS__HOST", "2".to_owned())]).await;
    let url = app.url();
    // Refused after the places were taken: a foreign Origin (403), a bad token (401), and
    // requests that are not upgrades (400).
    for _ in 0..5 {
        let (status, _) = connect_with(&url, &[("origin", "http://evil.example")])
            .await
            .expect_err("refused");
        assert_eq!(status, 403);
        let (status, _) = connect_with(&url, &[("authorization", "Bearer garbage")])
            .await
            .expect_err("refused");
        assert_eq!(status, 401);
        let res = reqwest::get(format!("http://127.0.0.1:{}/socket_server", app.port))
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
    }
    assert_eq!(app.open(), 0);
    let _a = connect(&url).await;
    let _b = connect(&url).await;
    assert_eq!(connect_with(&url, &[]).await.err().unwrap().0, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_are_counted_by_64_and_by_48() {
    // Test scale: 2 per /64, 3 per /48; the clients' addresses come from a trusted proxy.
    let app = spawn_socket(&[
        ("APP__SERVER__SOCKET__MAX_PER_ADDRESS__HOST", "2".to_owned()),
        (
            "APP__SERVER__SOCKET__MAX_PER_ADDRESS__NETWORK",
            "3".to_owned(),
        ),
        (
            "APP__SERVER__SOCKET__TRUSTED_PROXIES__0",
            "127.0.0.1".to_owned(),
        ),
    ])
    .await;
    let url = app.url();
    let from = |ip: &'static str| {
        let url = url.clone();
        async move { connect_with(&url, &[("x-forwarded-for", ip)]).await }
    };
    let mut held = Vec::new();
    for ip in ["2001:db8:0:1::1", "2001:db8:0:1:ffff::2"] {
        held.push(from(ip).await.expect(ip));
    }
    assert_eq!(
        from("2001:db8:0:1::3").await.err().unwrap().0,
        429,
        "the /64 is one host"
    );
    held.push(from("2001:db8:0:2::1").await.expect("another /64"));
    assert_eq!(
        from("2001:db8:0:3::1").await.err().unwrap().0,
        429,
        "the /48 is full"
    );
    held.push(from("2001:db8:1::1").await.expect("another /48"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_connections_are_capped_and_signed_in_users_still_admitted() {
    // Test scale: 3 anonymous connections at most, 100 in all.
    let app = spawn_socket(&[
        ("APP__SERVER__SOCKET__MAX_ANONYMOUS", "3".to_owned()),
        ("APP__SERVER__SOCKET__MAX_CONNECTIONS", "100".to_owned()),
        ("APP__SERVER__SOCKET__AUTH", "optional".to_owned()),
    ])
    .await;
    let url = app.url();
    let (anonymous, refused) = fire_from(&url, "127.0.0.1", 10).await;
    assert_eq!((anonymous.len(), refused.len()), (3, 7));
    for (status, body) in &refused {
        assert_eq!(
            (*status, body["error"]["code"].as_str()),
            (503, Some("10009"))
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("server.socket.max_anonymous"),
            "{body}"
        );
    }
    let token = sign_in(&app, "socketcapped").await;
    let mut signed = connect_with(&url, &[("authorization", &token)])
        .await
        .expect("a signed-in user is not anonymous");
    signed.send(Message::text("hi")).await.unwrap();
    assert_eq!(next_data(&mut signed).await, Message::text("recv data:hi"));
    assert_eq!(app.open(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_members_join_public_rooms_only_and_never_see_user_ids() {
    // The test profile's public rooms: `lobby`.
    let app = spawn_socket(&[("APP__SERVER__SOCKET__AUTH", "optional".to_owned())]).await;
    let token = sign_in(&app, "socketroomer").await;
    let mut anonymous = connect(&app.url()).await;
    let mut a = connect_with(&app.url(), &[("authorization", &token)])
        .await
        .unwrap();
    let mut b = connect_with(&app.url(), &[("authorization", &token)])
        .await
        .unwrap();
    send_json(&mut anonymous, json!({"type": "join", "room": "staff"})).await;
    let error = next_json(&mut anonymous).await;
    assert_eq!(error["error"]["code"], "10011", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.socket.public_rooms"),
        "{error}"
    );
    for ws in [&mut a, &mut b] {
        send_json(ws, json!({"type": "join", "room": "staff"})).await;
        assert_eq!(next_json(ws).await["type"], "joined");
    }
    for ws in [&mut anonymous, &mut a, &mut b] {
        send_json(ws, json!({"type": "join", "room": "lobby"})).await;
        assert_eq!(next_json(ws).await["type"], "joined");
    }
    send_json(
        &mut a,
        json!({"type": "publish", "room": "lobby", "data": "hi"}),
    )
    .await;
    assert_eq!(next_json(&mut a).await["delivered"], 2);
    let to_user = next_json(&mut b).await;
    assert!(to_user["user"].as_i64().is_some(), "{to_user}");
    let to_anonymous = next_json(&mut anonymous).await;
    assert_eq!(to_anonymous["data"], "hi");
    assert!(to_anonymous.get("user").is_none(), "{to_anonymous}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_is_held_to_its_message_rate() {
    // Test scale: 10 messages per second per connection.
    let app = spawn_socket(&[(
        "APP__SERVER__SOCKET__MAX_MESSAGES_PER_SECOND",
        "10".to_owned(),
    )])
    .await;
    // Three connections at once, each pipelining 30 messages: each gets its own 10.
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let url = app.url();
            tokio::spawn(async move {
                let mut ws = connect(&url).await;
                for i in 0..30 {
                    ws.feed(Message::text(format!("m{i}"))).await.unwrap();
                }
                ws.flush().await.unwrap();
                let (mut echoed, mut refused) = (0, 0);
                for _ in 0..30 {
                    match next_data(&mut ws).await {
                        Message::Text(t) if t.starts_with("recv data:m") => echoed += 1,
                        Message::Text(t) => {
                            let error: Value = serde_json::from_str(&t).unwrap();
                            assert_eq!(error["error"]["code"], "10008", "{error}");
                            refused += 1;
                        }
                        other => panic!("{other:?}"),
                    }
                }
                (echoed, refused, ws)
            })
        })
        .collect();
    let mut connections = Vec::new();
    for client in clients {
        let (echoed, refused, ws) = client.await.unwrap();
        // 10, and what a slow machine refills while the burst is read (1 every 100 ms).
        assert!((10..=12).contains(&echoed), "{echoed} echoed");
        assert_eq!(echoed + refused, 30);
        connections.push(ws);
    }
    // A second later the bucket is full again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ws = &mut connections[0];
    ws.send(Message::text("later")).await.unwrap();
    assert_eq!(next_data(ws).await, Message::text("recv data:later"));

    // A publish costs its deliveries: to 5 other members, two publishes spend the 10.
    let app = spawn_socket(&[(
        "APP__SERVER__SOCKET__MAX_MESSAGES_PER_SECOND",
        "10".to_owned(),
    )])
    .await;
    let mut members = Vec::new();
    for _ in 0..6 {
        let mut ws = connect(&app.url()).await;
        send_json(&mut ws, json!({"type": "join", "room": "lobby"})).await;
        assert_eq!(next_json(&mut ws).await["type"], "joined");
        members.push(ws);
    }
    let publisher = &mut members[0];
    for _ in 0..2 {
        send_json(
            publisher,
            json!({"type": "publish", "room": "lobby", "data": 1}),
        )
        .await;
        assert_eq!(next_json(publisher).await["delivered"], 5);
    }
    send_json(
        publisher,
        json!({"type": "publish", "room": "lobby", "data": 1}),
    )
    .await;
    assert_eq!(next_json(publisher).await["error"]["code"], "10008");
}

/// The `VmRSS` and `VmHWM` (peak) of process `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_reading_pins_a_bounded_number_of_bytes() {
    // Test scale: 1 MiB messages, an outbox of 256 frames but 2 MiB; the app in its own process
    // so that its memory is its own.
    /// Kills the process however the test ends.
    struct Process(std::process::Child);
    impl Drop for Process {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (child, port) = spawn_socket_process(
        dir.path(),
        &[
            ("APP__SERVER__SOCKET__OUTBOUND_QUEUE", "256"),
            ("APP__SERVER__SOCKET__OUTBOUND_QUEUE_BYTES", "2097152"),
            ("APP__SERVER__SOCKET__MAX_FRAME_SIZE", "2097152"),
            ("APP__SERVER__SOCKET__MAX_MESSAGE_SIZE", "2097152"),
            ("APP__SERVER__SOCKET__WRITE_TIMEOUT", "10s"),
        ],
    );
    let child = Process(child);
    let url = format!("ws://127.0.0.1:{port}/socket_server");
    let mut publisher = connect(&url).await;
    let mut slow = connect(&url).await;
    for ws in [&mut publisher, &mut slow] {
        send_json(ws, json!({"type": "join", "room": "lobby"})).await;
        assert_eq!(next_json(ws).await["type"], "joined");
    }
    // Warm up the publisher's path (buffers, allocator arenas) before the baseline.
    send_json(&mut publisher, json!({"type": "ping"})).await;
    next_json(&mut publisher).await;
    let (before, _) = rss_kib(child.0.id());
    // `slow` never reads. Each publish is 1 MiB; before the byte bound its 256-frame outbox
    // alone pinned 256 MiB.
    let payload = "z".repeat(1 << 20);
    let mut published = 0;
    loop {
        send_json(
            &mut publisher,
            json!({"type": "publish", "room": "lobby", "data": payload}),
        )
        .await;
        let answer = next_json(&mut publisher).await;
        published += 1;
        if answer["delivered"] == 0 {
            break;
        }
        assert!(published < 400, "the slow member was never cut off");
    }
    let (after, peak) = rss_kib(child.0.id());
    let grew_mib = peak.saturating_sub(before) / 1024;
    // The bound: 2 MiB outbox + 2 MiB in flight + one message read and encoded, and the
    // allocator's slack; kernel socket buffers are not the process's memory.
    assert!(
        grew_mib < 48,
        "peak RSS grew {grew_mib} MiB over {published} publishes \
         (VmRSS {before} KiB before, {after} KiB after, VmHWM {peak} KiB)"
    );
    // Reading again, it finds what was queued, then the 1008 close.
    let (code, reason) = close_of(&mut slow).await;
    assert_eq!(code, 1008, "{reason}");
    drop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_believe_forwarded_hosts_only_from_trusted_proxies() {
    let forged = [
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "https"),
        ("forwarded", "host=evil.example;proto=https"),
    ];
    let get = async |app: &crate::helpers::TestApp| {
        let mut request = app.client.get(format!("{}/socket/index2", app.address));
        for (name, value) in forged {
            request = request.header(name, value);
        }
        request.send().await.unwrap().text().await.unwrap()
    };
    let socket_addr = ("APP__SERVER__SOCKET__ADDR", "127.0.0.1:30999".to_owned());
    let app = crate::helpers::spawn_app_with(std::slice::from_ref(&socket_addr)).await;
    let page = get(&app).await;
    assert!(
        page.contains("ws://127.0.0.1:30999/socket_server") && !page.contains("evil"),
        "an untrusted client chose the page's socket: {page}"
    );
    // From a trusted proxy, its headers are the page's origin.
    let proxied = crate::helpers::spawn_app_with(&[
        socket_addr,
        (
            "APP__SERVER__HTTP__TRUSTED_PROXIES__0",
            "127.0.0.1".to_owned(),
        ),
    ])
    .await;
    let page = get(&proxied).await;
    assert!(
        page.contains("wss://evil.example:30999/socket_server"),
        "{page}"
    );
}

#[test]
fn prod_refuses_to_start_the_socket_app_without_allowed_origins() {
    let run = |extra: &[(&str, &str)]| {
        // Refused before any client is built: no database is needed.
        let dir = tempfile::tempdir().unwrap();
        let mut command = crate::helpers::app_command();
        command
            .args(["socket", "--env", "prod"])
            .env(
                "APP__MYSQL__DSN",
                "mysql://go_example:s3cret-pw@127.0.0.1:1/go_example",
            )
            .env("APP__SERVER__SOCKET__ADDR", "127.0.0.1:0")
            .env("APP__CERTS__DIR", dir.path().join("certs"))
            .env("APP__LOG__FILE__PATH", dir.path().join("app.log"));
        for (k, v) in extra {
            command.env(k, v);
        }
        let out = command.output().expect("run go_example socket");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("server.socket.allowed_origins") && stderr.contains("DNS rebinding"),
        "{stderr}"
    );
}
