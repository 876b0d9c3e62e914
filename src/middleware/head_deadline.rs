//! A deadline for the head of every request after the first on a kept-alive connection.
//!
//! actix-http 3 bounds a connection's *first* request head (`client_request_timeout`: 408, then
//! close) and the *idle* time between requests (`keep_alive`), but nothing in between: its
//! h1 dispatcher arms the head timer once per connection and clears it for good with the first
//! request, and the keep-alive timer is cleared by the first byte of the next request. A client
//! that sends one request and then dribbles the next head a byte at a time holds the connection
//! (and a slot of `max_connections`) for as long as it likes.
//!
//! [`DeadlineStream`] wraps every accepted connection and closes it (end of input: actix then
//! shuts the connection down) when the next request's head is not complete within
//! `keep_alive + client_request_timeout` of the last byte of the previous response. The
//! lifecycle middleware tells it that a head is complete ([`HeadClock::request_started`],
//! reached through the connection data). While a request is being handled nothing here
//! applies: bodies have `server.http.body_timeout` (`web::extract`), handlers their own
//! timeouts.
//!
//! The hot path is two `Cell` writes and one clock read per request; the timer is allocated
//! once per connection and re-armed only when it fires, never per request.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep, sleep_until};

/// Where a connection is between requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before the first request: actix's own head timer (`client_request_timeout`) applies.
    First,
    /// A request's head is complete and the request is being handled.
    Request,
    /// Bytes of a response went out; the next read fixes the deadline of the next head (one
    /// clock read per request, not one per write).
    Written,
    /// Waiting for the next head, which must be complete by then.
    Waiting(Instant),
}

/// The connection's clock, shared by its stream and (as connection data) its requests.
#[derive(Clone, Debug)]
pub struct HeadClock(Rc<Cell<Phase>>);

impl HeadClock {
    /// A request's head is complete: no head deadline until its response is written.
    pub fn request_started(&self) {
        self.0.set(Phase::Request);
    }
}

/// A TCP connection whose next request head has a deadline (see the module documentation).
#[derive(Debug)]
pub struct DeadlineStream {
    io: TcpStream,
    clock: Rc<Cell<Phase>>,
    /// `keep_alive + client_request_timeout`.
    next_head: Duration,
    /// Created at the first deadline; may lag behind it (re-armed when it fires).
    timer: Option<Pin<Box<Sleep>>>,
}

impl DeadlineStream {
    /// Wraps `io`; the next head after each response must arrive within `next_head`.
    pub fn new(io: TcpStream, next_head: Duration) -> Self {
        Self {
            io,
            clock: Rc::new(Cell::new(Phase::First)),
            next_head,
            timer: None,
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.io.peer_addr().ok()
    }

    /// The clock the connection's requests report to.
    pub fn clock(&self) -> HeadClock {
        HeadClock(self.clock.clone())
    }

    /// Makes sure the timer wakes the task by `deadline`. The timer is polled (registering the
    /// task's waker) only when it is (re-)armed, not on every read: deadlines only move forward,
    /// so a timer armed for an earlier one still wakes the task in time, and the read then
    /// re-arms it for the current deadline or ends the connection.
    fn arm(&mut self, cx: &mut Context<'_>, deadline: Instant, now: Instant) {
        let timer = match &mut self.timer {
            None => self.timer.insert(Box::pin(sleep_until(deadline))),
            Some(timer) if timer.is_elapsed() || now >= timer.deadline() => {
                timer.as_mut().reset(deadline);
                timer
            }
            Some(_) => return,
        };
        // The deadline is in the future: this registers the waker and is pending.
        let _ = timer.as_mut().poll(cx);
    }
}

impl AsyncRead for DeadlineStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.clock.get() {
            Phase::Written => {
                let now = Instant::now();
                let deadline = now + this.next_head;
                this.clock.set(Phase::Waiting(deadline));
                this.arm(cx, deadline, now);
            }
            // Only a timer that fired makes the clock worth reading.
            Phase::Waiting(deadline) if this.timer.as_ref().is_some_and(|t| t.is_elapsed()) => {
                let now = Instant::now();
                if now >= deadline {
                    // End of input: actix stops reading and closes the connection.
                    return Poll::Ready(Ok(()));
                }
                this.arm(cx, deadline, now);
            }
            _ => {}
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl DeadlineStream {
    /// Bytes of a response went out: the next read starts the next head's deadline.
    fn wrote(&self, n: usize) {
        if n > 0 && self.clock.get() != Phase::First {
            self.clock.set(Phase::Written);
        }
    }
}

impl AsyncWrite for DeadlineStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.wrote(n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.wrote(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
