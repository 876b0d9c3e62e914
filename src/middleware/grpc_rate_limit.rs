//! The rate limits of the gRPC app (`rate_limit.rules` with `grpc:`, docs/overload.md): a
//! tower layer inside the auth layer, so the caller is known. A refused call is
//! `RESOURCE_EXHAUSTED` with 10008 in `x-error-code` and `retry-after` (seconds) in its
//! metadata.
//!
//! A call is keyed by its peer address, or by its user for `user` / `both` rules when it came
//! with an access token. A call made with the shared service credentials (the HTTP app's
//! `GET /grpc/hello`, `repository::rpc`) is keyed by the end user's address the HTTP app
//! forwards in [`FORWARDED_CLIENT_KEY`]; that claim is believed from such a caller only, and
//! ignored from anyone else (a client cannot choose its own bucket).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::metadata::MetadataValue;

use crate::meta::config::RuleKey;
use crate::proto::FORWARDED_CLIENT_KEY;
use crate::service::caller::Caller;
use crate::service::error::ServiceError;
use crate::service::rate_limit::{RateLimitService, RuleId, Subject};
use crate::web::envelope::status;

/// Services never counted: health checkers call them on a timer.
const NEVER_COUNTED: &str = "/grpc.health.v1.Health/";

/// The layer; `service` holds the rules.
#[derive(Clone)]
pub struct GrpcRateLimitLayer {
    service: Arc<dyn RateLimitService>,
}

impl GrpcRateLimitLayer {
    /// Limits calls by `service`'s rules (a pass-through when rate limits are off).
    pub fn new(service: Arc<dyn RateLimitService>) -> Self {
        Self { service }
    }
}

impl<S> tower::Layer<S> for GrpcRateLimitLayer {
    type Service = GrpcRateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcRateLimit {
            inner,
            service: self.service.clone(),
        }
    }
}

/// [`GrpcRateLimitLayer`]'s service.
#[derive(Clone)]
pub struct GrpcRateLimit<S> {
    inner: S,
    service: Arc<dyn RateLimitService>,
}

/// The TCP peer of a call, from the connection tonic recorded.
pub(crate) fn peer<B>(request: &http::Request<B>) -> IpAddr {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let extensions = request.extensions();
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.get_ref().remote_addr())
        .or_else(|| {
            extensions
                .get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr)
        })
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.ip())
}

/// Who a call counts as: its client address (the forwarded end user's for a service caller)
/// and its user, if it came with an access token.
fn subject_of<B>(request: &http::Request<B>) -> (IpAddr, Option<i64>) {
    match request.extensions().get::<Caller>() {
        Some(Caller::Service) => {
            let forwarded = request
                .headers()
                .get(FORWARDED_CLIENT_KEY)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
            (forwarded.unwrap_or_else(|| peer(request)), None)
        }
        Some(Caller::User(user)) => (peer(request), Some(user.id)),
        None => (peer(request), None),
    }
}

/// The buckets `rules` spend for a call from `client` by `user`.
fn spends(
    service: &dyn RateLimitService,
    rules: &[RuleId],
    client: IpAddr,
    user: Option<i64>,
) -> Vec<(RuleId, Subject)> {
    let mut out = Vec::with_capacity(rules.len() + 1);
    for rule in rules {
        match (service.key(*rule), user) {
            (RuleKey::Address, _) | (RuleKey::User, None) | (RuleKey::Both, None) => {
                out.push((*rule, Subject::Address(client)));
            }
            (RuleKey::User, Some(id)) => out.push((*rule, Subject::User(id))),
            (RuleKey::Both, Some(id)) => {
                out.push((*rule, Subject::Address(client)));
                out.push((*rule, Subject::User(id)));
            }
        }
    }
    out
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for GrpcRateLimit<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let rules = match self.service.enabled() && !path.starts_with(NEVER_COUNTED) {
            true => self.service.grpc_rules(path),
            false => Vec::new(),
        };
        if rules.is_empty() {
            return Box::pin(self.inner.call(request));
        }
        let (client, user) = subject_of(&request);
        let spends = spends(self.service.as_ref(), &rules, client, user);
        // The ready service goes with this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let service = self.service.clone();
        Box::pin(async move {
            match service.spend(&spends).await {
                Some(decision) if !decision.allowed => {
                    let wait = decision.retry_after.as_secs()
                        + u64::from(decision.retry_after.subsec_nanos() > 0);
                    let mut refused = status(&ServiceError::RateLimited(decision));
                    if let Ok(value) = MetadataValue::try_from(wait.max(1).to_string()) {
                        refused.metadata_mut().insert("retry-after", value);
                    }
                    Ok(refused.into_http())
                }
                _ => inner.call(request).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::auth::AuthUser;

    fn request(caller: Option<Caller>, forwarded: Option<&str>) -> http::Request<()> {
        let mut request = http::Request::new(());
        if let Some(caller) = caller {
            request.extensions_mut().insert(caller);
        }
        if let Some(addr) = forwarded {
            request
                .headers_mut()
                .insert(FORWARDED_CLIENT_KEY, addr.parse().unwrap());
        }
        request
    }

    #[test]
    fn the_forwarded_address_is_believed_only_from_the_service_credentials() {
        let end_user: IpAddr = "198.51.100.7".parse().unwrap();
        let unknown = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let service = request(Some(Caller::Service), Some("198.51.100.7"));
        assert_eq!(subject_of(&service), (end_user, None));
        // Garbage falls back to the peer.
        let garbage = request(Some(Caller::Service), Some("not-an-ip"));
        assert_eq!(subject_of(&garbage), (unknown, None));
        let user = AuthUser {
            id: 42,
            username: "u42".into(),
            sid: "s".into(),
            roles: Default::default(),
        };
        let with_token = request(Some(Caller::User(user)), Some("198.51.100.7"));
        assert_eq!(subject_of(&with_token), (unknown, Some(42)));
        let anonymous = request(None, Some("198.51.100.7"));
        assert_eq!(subject_of(&anonymous), (unknown, None));
    }
}
