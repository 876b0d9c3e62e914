//! `go_example socket-client`: the original's Go client. Connects to the socket app, sends each
//! line of standard input as a text message, prints every reply as `recv: ...`, and on Ctrl-C
//! (or the end of its input) sends a normal close and waits up to a second for the server's.

use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The URL for `addr` (`host:port`; Go's `:port` is this machine).
pub fn url(addr: &str, path: &str, token: Option<&str>) -> String {
    let host = if addr.starts_with(':') {
        format!("127.0.0.1{addr}")
    } else {
        addr.to_owned()
    };
    let mut url = format!("ws://{host}{path}");
    if let Some(token) = token {
        url.push_str("?token=");
        url.extend(form_urlencoded::byte_serialize(token.as_bytes()));
    }
    url
}

/// Runs the client until the server closes, the input ends, or SIGINT.
///
/// # Errors
/// The connection cannot be made (the server's refusal is printed with its envelope).
pub fn run(url: &str, origin: Option<&str>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(session(url, origin))
}

async fn session(url: &str, origin: Option<&str>) -> anyhow::Result<()> {
    eprintln!("connecting to {url}");
    let mut request = url.into_client_request().context("the URL")?;
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).context("--origin")?);
    }
    let (socket, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(connected) => connected,
        Err(WsError::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            anyhow::bail!("dial: refused with {}: {body}", response.status());
        }
        Err(e) => return Err(e).context("dial"),
    };
    let (mut sink, mut stream) = socket.split();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => println!("recv: {text}"),
                Some(Ok(Message::Binary(bytes))) => {
                    println!("recv: {}", String::from_utf8_lossy(&bytes));
                }
                Some(Ok(Message::Close(frame))) => {
                    match frame {
                        Some(f) => eprintln!("closed by the server: {} {}", u16::from(f.code), f.reason),
                        None => eprintln!("closed by the server"),
                    }
                    return Ok(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    eprintln!("read: {e}");
                    return Ok(());
                }
                None => return Ok(()),
            },
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    let text = line.trim_end_matches('\r').to_owned();
                    sink.send(Message::text(text)).await.context("write")?;
                }
                // The end of the input: close as on Ctrl-C.
                Ok(None) | Err(_) => return close(&mut sink, &mut stream).await,
            },
            _ = &mut interrupt => {
                eprintln!("interrupt");
                return close(&mut sink, &mut stream).await;
            }
        }
    }
}

/// Sends a normal close and waits up to a second for the server's answer, printing what
/// arrives meanwhile.
async fn close<S, R>(sink: &mut S, stream: &mut R) -> anyhow::Result<()>
where
    S: futures_util::Sink<Message, Error = WsError> + Unpin,
    R: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
{
    sink.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    })))
    .await
    .context("write close")?;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Text(text) => println!("recv: {text}"),
                Message::Close(_) => break,
                _ => {}
            }
        }
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_original_address_form() {
        assert_eq!(
            url(":30000", "/socket_server", None),
            "ws://127.0.0.1:30000/socket_server"
        );
        assert_eq!(
            url("example.com:1", "/s", Some("a b+c")),
            "ws://example.com:1/s?token=a+b%2Bc"
        );
    }
}
