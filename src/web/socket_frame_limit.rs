//! `server.socket.max_frame_size` enforced on a frame's header, before its payload is read.
//!
//! actix-http's WebSocket codec compares a frame's length with its limit only once the whole
//! frame is buffered, so a client announcing a 1 GiB frame and sending it slowly would make the
//! server buffer it all. [`FrameLimit`] sits between the connection's byte stream and the codec:
//! it follows the frame boundaries (a header, then its payload skipped by count, never copied),
//! and fails the stream with [`PayloadError::Overflow`] as soon as a header announces more than
//! the limit. The controller closes such a connection with 1009.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::Stream;

/// Longest client frame header: 2 bytes, a 64-bit length, the 4-byte mask.
const MAX_HEADER: usize = 14;

/// A byte stream of client WebSocket frames whose headers are checked against a size limit.
pub struct FrameLimit<S> {
    inner: S,
    max_frame_size: u64,
    header: [u8; MAX_HEADER],
    /// Header bytes of the current frame seen so far (0 while inside a payload).
    have: usize,
    /// Payload bytes of the current frame still to pass.
    skip: u64,
    failed: bool,
}

impl<S> FrameLimit<S> {
    /// Checks the frames of `inner` against `max_frame_size` bytes of payload.
    pub fn new(inner: S, max_frame_size: usize) -> Self {
        Self {
            inner,
            max_frame_size: u64::try_from(max_frame_size).unwrap_or(u64::MAX),
            header: [0; MAX_HEADER],
            have: 0,
            skip: 0,
            failed: false,
        }
    }

    /// Follows the frames through `chunk`; false when a header announces too much.
    fn admit(&mut self, chunk: &[u8]) -> bool {
        let mut at = 0;
        while at < chunk.len() {
            if self.skip > 0 {
                let left = chunk.len() - at;
                let step = usize::try_from(self.skip).map_or(left, |skip| skip.min(left));
                self.skip -= step as u64;
                at += step;
                continue;
            }
            self.header[self.have] = chunk[at];
            self.have += 1;
            at += 1;
            if let Some(length) = self.announced_length() {
                if length > self.max_frame_size {
                    return false;
                }
                self.skip = length;
                self.have = 0;
            }
        }
        true
    }

    /// The payload length once the header is complete.
    fn announced_length(&self) -> Option<u64> {
        if self.have < 2 {
            return None;
        }
        let short = self.header[1] & 0x7f;
        let extended = match short {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        if self.have < 2 + extended + mask {
            return None;
        }
        Some(match short {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut be = [0; 8];
                be.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(be)
            }
            n => u64::from(n),
        })
    }
}

impl<S> Stream for FrameLimit<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if this.admit(&chunk) {
                    Poll::Ready(Some(Ok(chunk)))
                } else {
                    this.failed = true;
                    Poll::Ready(Some(Err(PayloadError::Overflow)))
                }
            }
            other => other,
        }
    }
}

/// Whether a read error is [`FrameLimit`]'s refusal (actix-ws wraps payload errors in
/// `io::Error::other`).
pub fn is_frame_limit_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<PayloadError>())
        .is_some_and(|p| matches!(p, PayloadError::Overflow))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use proptest::prelude::*;

    /// A masked client frame with `len` payload bytes.
    fn frame(len: usize) -> Vec<u8> {
        let mut out = vec![0x82];
        match len {
            0..=125 => out.push(0x80 | len as u8),
            126..=65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out.resize(out.len() + len, 7);
        out
    }

    /// Runs `bytes`, cut into `chunks` of at most `cut` bytes, through a limit of `max`:
    /// the bytes passed and whether it failed.
    async fn run(bytes: &[u8], cut: usize, max: usize) -> (usize, bool) {
        let chunks: Vec<Result<Bytes, PayloadError>> = bytes
            .chunks(cut)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut limited = FrameLimit::new(futures_util::stream::iter(chunks), max);
        let mut passed = 0;
        while let Some(item) = limited.next().await {
            match item {
                Ok(chunk) => passed += chunk.len(),
                Err(e) => {
                    assert!(matches!(e, PayloadError::Overflow));
                    assert!(
                        limited.next().await.is_none(),
                        "the stream ends after its error"
                    );
                    return (passed, true);
                }
            }
        }
        (passed, false)
    }

    #[actix_web::test]
    async fn frames_within_the_limit_pass_untouched() {
        let mut bytes = Vec::new();
        for len in [0, 1, 125, 126, 1000, 65535, 65536, 70000] {
            bytes.extend(frame(len));
        }
        for cut in [1, 2, 3, 7, 14, 4096, bytes.len()] {
            assert_eq!(
                run(&bytes, cut, 70000).await,
                (bytes.len(), false),
                "cut {cut}"
            );
        }
    }

    #[actix_web::test]
    async fn a_header_announcing_too_much_fails_before_its_payload() {
        // Only the header of a 1 GiB frame: refused on it, nothing of the payload needed.
        let mut big = vec![0x82, 0x80 | 127];
        big.extend_from_slice(&(1u64 << 30).to_be_bytes());
        big.extend_from_slice(&[1, 2, 3, 4]);
        let mut bytes = frame(10);
        let first = bytes.len();
        bytes.extend(&big);
        for cut in [1, 5, first, bytes.len()] {
            let (passed, failed) = run(&bytes, cut, 1024).await;
            assert!(failed, "cut {cut}");
            assert!(passed <= first + big.len(), "cut {cut}");
        }
        // One byte over a 16-bit length.
        assert!(run(&frame(1025), 3, 1024).await.1);
        assert!(!run(&frame(1024), 3, 1024).await.1);
    }

    #[test]
    fn only_overflow_read_errors_are_the_limits() {
        assert!(is_frame_limit_error(&std::io::Error::other(
            PayloadError::Overflow
        )));
        assert!(!is_frame_limit_error(&std::io::Error::other(
            PayloadError::Incomplete(None)
        )));
        assert!(!is_frame_limit_error(&std::io::Error::other("other")));
    }

    proptest! {
        #[test]
        fn any_cut_sees_the_same_frames(
            lens in proptest::collection::vec(0usize..3000, 1..8),
            cut in 1usize..600,
            max in 0usize..3000,
        ) {
            let bytes: Vec<u8> = lens.iter().flat_map(|&l| frame(l)).collect();
            let over = lens.iter().any(|&l| l > max);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (passed, failed) = rt.block_on(run(&bytes, cut, max));
            prop_assert_eq!(failed, over);
            if !over {
                prop_assert_eq!(passed, bytes.len());
            }
        }
    }
}
