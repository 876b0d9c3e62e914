//! Request ids: a sane client-supplied `X-Request-Id` is kept, otherwise one is generated. The
//! `access_log` middleware applies them and echoes them on every response.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::header::{HeaderName, HeaderValue};

/// The header name.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A client's session key for read-your-writes (same rules as request ids).
pub const SESSION_ID_HEADER: HeaderName = HeaderName::from_static("x-session-id");

/// Longest client-supplied id accepted; longer (or non-token) ids are replaced.
const MAX_CLIENT_ID_LEN: usize = 128;

/// Makes ids `<12 hex digits of process prefix>-<hex counter>`: unique within the process,
/// distinct across restarts, and far cheaper than a UUID per request.
#[derive(Debug)]
pub struct RequestIdGenerator {
    prefix: [u8; 12],
    next: AtomicU64,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl RequestIdGenerator {
    /// A generator with a random per-process prefix.
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS per process: enough to tell restarts apart.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let seed = h.finish();
        let mut prefix = [0u8; 12];
        for (i, b) in prefix.iter_mut().enumerate() {
            *b = HEX[((seed >> (4 * i)) & 0xf) as usize];
        }
        Self {
            prefix,
            next: AtomicU64::new(1),
        }
    }

    /// The next generated id.
    pub fn next_id(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 12 + 1 + 16];
        buf[..12].copy_from_slice(&self.prefix);
        buf[12] = b'-';
        let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
        for i in 0..digits {
            buf[13 + digits - 1 - i] = HEX[((n >> (4 * i)) & 0xf) as usize];
        }
        HeaderValue::from_bytes(&buf[..13 + digits]).unwrap_or(HeaderValue::from_static("-"))
    }

    /// The client's id when it is acceptable, else a generated one.
    pub fn accept_or_generate(&self, client: Option<&HeaderValue>) -> HeaderValue {
        match client {
            Some(v) if acceptable(v) => v.clone(),
            _ => self.next_id(),
        }
    }
}

impl Default for RequestIdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

/// At most 128 characters of letters, digits and `-_.:`: safe to log and to echo.
pub fn acceptable(v: &HeaderValue) -> bool {
    acceptable_id(v.as_bytes())
}

/// [`acceptable`] for an id's bytes (the gRPC app's metadata is http 1's).
pub fn acceptable_id(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= MAX_CLIENT_ID_LEN
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_client_ids_are_screened() {
        let g = RequestIdGenerator::new();
        let (a, b) = (g.next_id(), g.next_id());
        assert_ne!(a, b);
        assert!(
            a.to_str().unwrap().ends_with("-1") && b.to_str().unwrap().ends_with("-2"),
            "{a:?} {b:?}"
        );
        assert_eq!(a.len(), 14);
        for _ in 0..300 {
            g.next_id();
        }
        assert!(g.next_id().to_str().unwrap().ends_with("-12f"));
        let good = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(g.accept_or_generate(Some(&good)), good);
        assert!(!acceptable(&HeaderValue::from_static("has space")));
        assert!(!acceptable(
            &HeaderValue::from_str(&"a".repeat(129)).unwrap()
        ));
    }
}
