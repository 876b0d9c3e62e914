//! A connection's task: reads the client's messages and answers them (`protocol`), pings a
//! quiet client and drops an idle one, writes within the limits (`limits`), and closes with
//! the code that says why (docs/websocket.md, "Close codes").

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use futures_util::{FutureExt, StreamExt};
use goex_errors::Lang;

use super::SocketShared;
use super::limits::{Rate, Window, encoded_len};
use super::protocol::{ECHO_PREFIX, protocol_end};
use crate::service::error::ServiceError;
use crate::service::socket::{Connection, Frame, SocketHub};
use crate::web::envelope::error_frame;

/// Why a connection ends.
#[derive(Debug)]
pub(super) enum End {
    /// Send this close frame.
    Close(CloseCode, &'static str),
    /// The peer closed (its close frame, echoed) or vanished.
    Peer(Option<CloseReason>),
    /// The peer stopped reading: nothing more can be written.
    Stuck,
}

/// One connection's task (spawned by the upgrade): what it reads, answers and writes.
pub(super) struct ConnectionTask {
    pub(super) hub: Arc<dyn SocketHub>,
    pub(super) connection: Arc<Connection>,
    pub(super) session: Session,
    /// `server.socket.*`, the logger and the metrics.
    pub(super) shared: Arc<SocketShared>,
    pub(super) lang: Lang,
    pub(super) client: crate::web::client_addr::ClientAddr,
    pub(super) window: Window,
    pub(super) rate: Rate,
    /// The upgrade's span when tracing is on (boxed: the bytes a held connection takes are a
    /// benchmarked figure).
    pub(super) upgrade_span: Option<Box<goex_tracing::SpanContext>>,
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
    pub(super) async fn run(
        mut self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
        mut stream: actix_ws::AggregatedMessageStream,
    ) {
        if let Some(m) = &self.shared.metrics {
            m.connected();
        }
        let registered = Registered {
            hub: self.hub.clone(),
            connection: self.connection.clone(),
            metrics: self.shared.metrics.clone(),
        };
        let connection = self.connection.clone();
        let shared = self.shared.clone();
        let cfg = &shared.socket;
        let metrics = &shared.metrics;
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
                        (metrics, &message)
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

    /// Answers one message; `Ok(Some(end))` when it ends the connection. A text or binary
    /// message is a span of its own when tracing is on, linked to the upgrade's.
    async fn answer<W: Future<Output = End>>(
        &mut self,
        message: AggregatedMessage,
        interrupted: Pin<&mut W>,
    ) -> Result<Option<End>, End> {
        if self.shared.tracing.is_on() {
            // Boxed: the span held across the write would grow every connection's task, traced
            // or not (the bytes a held connection takes are a benchmarked figure).
            return Box::pin(self.answer_traced(message, interrupted)).await;
        }
        self.answer_untraced(message, interrupted, None).await
    }

    /// [`Self::answer`] in the message's span.
    async fn answer_traced<W: Future<Output = End>>(
        &mut self,
        message: AggregatedMessage,
        interrupted: Pin<&mut W>,
    ) -> Result<Option<End>, End> {
        let mut span = self.message_span(&message);
        let answered = self
            .answer_untraced(message, interrupted, span.as_mut())
            .await;
        if let Some(span) = span {
            span.end();
        }
        answered
    }

    /// The span of a text or binary message, named by its type, with its size and the
    /// connection; `None` for a control frame.
    fn message_span(&self, message: &AggregatedMessage) -> Option<goex_tracing::Span> {
        use goex_tracing::KeyValue;
        let (name, kind, size) = match message {
            AggregatedMessage::Text(text) => ("socket text", "text", text.len()),
            AggregatedMessage::Binary(bytes) => ("socket binary", "binary", bytes.len()),
            _ => return None,
        };
        let mut span = self.shared.tracing.linked_span(
            name,
            goex_tracing::SpanKind::Server,
            self.upgrade_span.as_deref(),
        )?;
        if span.is_recording() {
            span.set_attributes([
                KeyValue::new("websocket.message.type", kind),
                KeyValue::new(
                    "websocket.message.size",
                    i64::try_from(size).unwrap_or(i64::MAX),
                ),
                KeyValue::new("websocket.connection.id", self.connection.id().to_string()),
            ]);
        }
        Some(span)
    }

    /// [`Self::answer`] itself; a refusal or an error reply marks `span` failed.
    async fn answer_untraced<W: Future<Output = End>>(
        &mut self,
        message: AggregatedMessage,
        interrupted: Pin<&mut W>,
        mut span: Option<&mut goex_tracing::Span>,
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
            failed(span.as_deref_mut(), &refused);
            self.write(
                Outgoing::Text(error_frame(&refused, self.lang)),
                interrupted,
            )
            .await?;
            return Ok(None);
        }
        match message {
            AggregatedMessage::Text(text) => {
                let reply = self.reply_to_text(&text).unwrap_or_else(|e| {
                    failed(span, &e);
                    error_frame(&e, self.lang)
                });
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

    /// Writes one frame. When the session's queue is full (the peer reads slowly), waits at
    /// most `server.socket.write_timeout`, and not past a shutdown or an overflow: a peer that
    /// stopped reading is dropped, never waited for forever.
    async fn write<W: Future<Output = End>>(
        &mut self,
        out: Outgoing,
        interrupted: Pin<&mut W>,
    ) -> Result<(), End> {
        let session = &mut self.session;
        if let (Some(m), Outgoing::Text(_) | Outgoing::Binary(_)) = (&self.shared.metrics, &out) {
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
        let write_timeout = self.shared.socket.write_timeout;
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
        let socket = &self.shared.socket;
        if let Some(m) = &self.shared.metrics {
            let code = match &end {
                End::Close(code, _) => close_label(*code),
                End::Peer(_) => "peer",
                End::Stuck => "dropped",
            };
            m.closed(code);
        }
        let reason = match end {
            End::Close(code, description) => {
                slog::debug!(self.shared.logger, "socket closing"; "connection" => self.connection.id(),
                    "code" => u16::from(code), "reason" => description);
                Some(CloseReason {
                    code,
                    description: Some(description.to_owned()),
                })
            }
            // Echo the peer's close (RFC 6455 §5.5.1).
            End::Peer(reason) => {
                slog::debug!(self.shared.logger, "socket closed by peer"; "connection" => self.connection.id(),
                    "code" => reason.as_ref().map(|r| u16::from(r.code)));
                reason.map(|r| CloseReason {
                    code: r.code,
                    description: None,
                })
            }
            End::Stuck => {
                slog::info!(self.shared.logger, "socket dropped: the client stopped reading";
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

/// Marks a message's span failed with the error's code (its kind; never the message).
fn failed(span: Option<&mut goex_tracing::Span>, error: &ServiceError) {
    if let Some(span) = span.filter(|span| span.is_recording()) {
        span.fail(error.code().code.to_string());
    }
}

/// A frame the task writes.
pub(super) enum Outgoing {
    Text(Frame),
    Binary(actix_web::web::Bytes),
    Ping,
    Pong(actix_web::web::Bytes),
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
