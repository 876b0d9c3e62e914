//! Write batching for the gRPC server's connections (issue 23): the HTTP/2 writes of many calls
//! leave in one TLS record and one system call, as grpc-go's writer does.
//!
//! hyper runs each HTTP/2 stream in its own task, and tokio runs a task woken by the one that is
//! running next (its LIFO slot): so the connection task, woken by the first call to answer,
//! wrote that answer alone before the other calls of the same read had run, and every answer
//! cost a TLS record and a `writev` (0.75 per call under `h2load -m8`). [`BatchedWrites`] sits
//! under TLS, keeps what is written, and at the first flush of a small batch yields the task
//! once (a self-wake puts it at the back of the run queue, behind the calls in flight), then
//! writes everything queued by then in one system call. grpc-go's loopy writer does the same
//! (`runtime.Gosched()` before flushing a batch under 1000 bytes).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// A batch this large is written without yielding: the yield is for small answers that more
/// answers can join.
const YIELD_BELOW: usize = 16 * 1024;

/// Writes this large go straight through when nothing is held (bulk data is not copied).
const DIRECT_FROM: usize = 16 * 1024;

/// An I/O object whose writes are held until a flush, and whose first flush of a small batch
/// yields the task once.
pub struct BatchedWrites<T> {
    inner: T,
    /// Bytes written and not yet handed to `inner`; `buf[sent..]` are still to go.
    buf: Vec<u8>,
    sent: usize,
    /// The current batch's flush has yielded already.
    yielded: bool,
}

impl<T> BatchedWrites<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            sent: 0,
            yielded: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> BatchedWrites<T> {
    /// Hands every held byte to `inner`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for BatchedWrites<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(data)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let len: usize = data.iter().map(|d| d.len()).sum();
        if this.buf.len() + len > YIELD_BELOW + DIRECT_FROM {
            ready!(this.poll_drain(cx))?;
        }
        if this.buf.is_empty() && len >= DIRECT_FROM {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, data);
        }
        for d in data {
            this.buf.extend_from_slice(d);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.yielded && this.sent == 0 && !this.buf.is_empty() && this.buf.len() < YIELD_BELOW {
            // Once per batch: to the back of the run queue, behind the calls in flight.
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(this.poll_drain(cx))?;
        this.yielded = false;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for BatchedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Connected> Connected for BatchedWrites<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each write it is handed.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl AsyncWrite for Writes {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn small_writes_leave_together_after_one_yield_and_bulk_goes_straight_through() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut io = BatchedWrites::new(Writes::default());
        let mut io = Pin::new(&mut io);
        for chunk in [&b"one"[..], b"two", b"three"] {
            assert!(
                matches!(io.as_mut().poll_write(&mut cx, chunk), Poll::Ready(Ok(n)) if n == chunk.len())
            );
        }
        assert!(
            io.as_mut().poll_flush(&mut cx).is_pending(),
            "the first flush yields"
        );
        assert!(io.inner.0.is_empty());
        let more = [IoSlice::new(b"four"), IoSlice::new(b"five")];
        assert!(matches!(
            io.as_mut().poll_write_vectored(&mut cx, &more),
            Poll::Ready(Ok(8))
        ));
        assert!(io.as_mut().poll_flush(&mut cx).is_ready());
        assert_eq!(
            io.inner.0,
            vec![b"onetwothreefourfive".to_vec()],
            "one write"
        );

        let bulk = vec![7u8; DIRECT_FROM];
        assert!(
            matches!(io.as_mut().poll_write(&mut cx, &bulk), Poll::Ready(Ok(n)) if n == bulk.len())
        );
        assert_eq!(io.inner.0.len(), 2, "bulk is written at once, uncopied");
        assert!(
            io.as_mut().poll_flush(&mut cx).is_ready(),
            "nothing held: no yield"
        );
    }
}
