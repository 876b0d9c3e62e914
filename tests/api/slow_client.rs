//! Slow clients over a raw TCP connection: a head or body sent a byte at a time is cut off
//! within its bound, on the first request of a connection and on later ones alike.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

use crate::helpers::{TestApp, assert_envelope, spawn_app_with};

/// Scheduling noise allowed on top of a configured bound.
const SLACK: Duration = Duration::from_secs(3);

/// A dribble slower than any bound here: a byte every 200 ms.
const DRIBBLE: Duration = Duration::from_millis(200);

/// A head that takes 20 s at [`DRIBBLE`] pace.
fn slow_head() -> Vec<u8> {
    format!(
        "GET /hello HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(60)
    )
    .into_bytes()
}

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.address.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// Writes `bytes` one at a time every [`DRIBBLE`], in the background, until done or the
/// server closes.
fn dribble(mut writer: OwnedWriteHalf, bytes: Vec<u8>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for b in bytes {
            if writer.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(DRIBBLE).await;
        }
    })
}

/// Reads until the server closes (or an error), at most `limit`; returns what arrived and
/// whether the connection was closed within `limit`.
async fn read_until_closed(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    limit: Duration,
) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + limit;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, reader.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0) | Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one whole response with a `Content-Length` body; returns (status, body).
async fn read_response(reader: &mut tokio::net::tcp::OwnedReadHalf) -> (u16, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if data.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                return (status, data[end + 4..end + 4 + len].to_vec());
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf))
            .await
            .expect("response in time")
            .expect("read");
        assert!(n > 0, "closed mid-response: {data:?}");
        data.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_first_head_is_cut_off_with_408() {
    let app =
        spawn_app_with(&[("APP__SERVER__HTTP__CLIENT_REQUEST_TIMEOUT", "1s".to_owned())]).await;
    let (mut reader, writer) = connect(&app).await.into_split();
    let started = Instant::now();
    let writing = dribble(writer, slow_head());
    let (data, closed) = read_until_closed(&mut reader, Duration::from_secs(1) + SLACK).await;
    let elapsed = started.elapsed();
    writing.abort();
    assert!(closed, "still open after {elapsed:?}");
    let text = String::from_utf8_lossy(&data);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "answer: {text:?}"
    );
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_later_head_on_a_kept_alive_connection_is_cut_off() {
    let app = spawn_app_with(&[
        ("APP__SERVER__HTTP__CLIENT_REQUEST_TIMEOUT", "1s".to_owned()),
        ("APP__SERVER__HTTP__KEEP_ALIVE", "1s".to_owned()),
    ])
    .await;
    let (mut reader, mut writer) = connect(&app).await.into_split();
    let request = b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n";
    // Requests at a normal pace keep being served on the connection.
    for pause in [0, 300, 600] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        writer.write_all(request).await.unwrap();
        let (status, _) = read_response(&mut reader).await;
        assert_eq!(status, 200, "after a {pause} ms pause");
    }
    // A head sent in a few pieces within the bound is served too.
    for piece in request.chunks(15) {
        writer.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(read_response(&mut reader).await.0, 200);

    // The next head, dribbled: actix's keep-alive timer stops at its first byte and its head
    // timer covered only the first request; the connection's own bound is
    // keep_alive + client_request_timeout = 2 s.
    let started = Instant::now();
    let writing = dribble(writer, slow_head());
    let bound = Duration::from_secs(2);
    let (data, closed) = read_until_closed(&mut reader, bound + SLACK).await;
    let elapsed = started.elapsed();
    writing.abort();
    assert!(closed, "still open after {elapsed:?}");
    assert!(
        data.is_empty() || data.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&data)
    );
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_dribbled_body_is_a_408_envelope() {
    let app = spawn_app_with(&[("APP__SERVER__HTTP__BODY_TIMEOUT", "1s".to_owned())]).await;
    let (mut reader, mut writer) = connect(&app).await.into_split();
    writer
        .write_all(
            b"POST /debug/validate HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let writing = dribble(writer, vec![b' '; 100]);
    let (data, closed) = read_until_closed(&mut reader, Duration::from_secs(1) + SLACK).await;
    let elapsed = started.elapsed();
    writing.abort();
    let text = String::from_utf8_lossy(&data).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 408"),
        "{text:?} after {elapsed:?}"
    );
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(closed, "the connection is closed after the 408");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(assert_envelope(&body, "10012"), "请求超时");
    assert!(elapsed >= Duration::from_millis(800), "{elapsed:?}");
}
