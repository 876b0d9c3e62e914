//! The socket app's controller (the original's `socket_controller.go`): `GET /socket_server`
//! admits a client before the upgrade (capacity, per-address and anonymous limits, address,
//! origin, token), then runs one task per connection (`connection`) that speaks the protocol
//! of docs/websocket.md (`protocol`): the original's text echo and JSON exchange, rooms,
//! heartbeat, limits (`limits`: frame size, message rate, bytes waiting to be written) and
//! the close codes. The HTTP app's two pages that talk to it are in `pages`.

mod connection;
mod limits;
pub mod pages;
mod protocol;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use async_trait::async_trait;
use goex_errors::Lang;
use serde_json::json;
use shaku::{Component, HasComponent, Interface, ModuleInterface};
use slog::Logger;

use self::connection::ConnectionTask;
use self::limits::{ConnectionBody, Flushed, Rate, Window, frame_limited};
use crate::meta::config::{CommonConfig, SocketAuth, SocketConfig};
use crate::service::auth::{AuthService, bearer};
use crate::service::error::ServiceError;
use crate::service::socket::{Connected, SocketHub};
use crate::web::auth::credentials;
use crate::web::client_addr::client_addr;
use crate::web::inject::Inject;

pub use self::pages::{PageTarget, page_routes};

/// The original's path.
pub const SOCKET_PATH: &str = "/socket_server";

/// The socket app's controller.
#[async_trait(?Send)]
pub trait SocketController: Interface {
    /// `GET /socket_server`: admission first (docs/websocket.md, "Admission"), every refusal
    /// an error the envelope renders (and counted by reason); then the upgrade and the
    /// connection's task.
    ///
    /// # Errors
    /// The refusal: 503 / 10009 at capacity, 429 / 10008 past the per-address or anonymous
    /// limits, 403 for an address or origin not allowed, 401 for a missing or bad token, 400
    /// for a request that is not an upgrade.
    async fn upgrade(
        &self,
        req: HttpRequest,
        body: web::Payload,
    ) -> Result<HttpResponse, ServiceError>;
}

/// [`SocketController`] over the hub and the auth service.
#[derive(Component)]
#[shaku(interface = SocketController)]
pub struct SocketControllerImpl {
    #[shaku(inject)]
    hub: Arc<dyn SocketHub>,
    #[shaku(inject)]
    auth: Arc<dyn AuthService>,
    /// `server.socket.*`, the logger and the metrics, shared with every connection's task.
    shared: Arc<SocketShared>,
    /// `common.*`: the client addresses admitted (`socket_white_ip_list`).
    common: CommonConfig,
}

/// What the controller and every connection task share, behind one `Arc`: a held connection
/// carries one pointer to it, not its own clones of the logger and the metric handles (the
/// bytes per held connection are a benchmarked figure).
pub struct SocketShared {
    /// `server.socket.*`: admission, frame and queue limits, timers.
    pub socket: SocketConfig,
    /// Where records go.
    pub logger: Logger,
    /// The socket series, when metrics are on.
    pub metrics: Option<goex_metrics::SocketMetrics>,
    /// The tracer: a span per message handled, linked to the upgrade's (docs/tracing.md,
    /// "The socket app").
    pub tracing: goex_tracing::Tracing,
}

#[async_trait(?Send)]
impl SocketController for SocketControllerImpl {
    async fn upgrade(
        &self,
        req: HttpRequest,
        body: web::Payload,
    ) -> Result<HttpResponse, ServiceError> {
        self.admit_and_upgrade(req, body)
            .await
            .map_err(|(reason, e)| {
                if let Some(m) = &self.shared.metrics {
                    m.refused(reason);
                }
                e
            })
    }
}

impl SocketControllerImpl {
    /// Admission and the upgrade; a refusal names its reason for the metrics.
    async fn admit_and_upgrade(
        &self,
        req: HttpRequest,
        body: web::Payload,
    ) -> Result<HttpResponse, (&'static str, ServiceError)> {
        let hub = self.hub.clone();
        let client = client_addr(&req);
        // Places taken before anything else is looked at, given back when `slot` drops (a refusal
        // below, a failed upgrade, or the connection's end).
        let mut slot = hub.reserve(client.ip).map_err(|e| match e {
            ServiceError::Limited(_) => ("per_address", e),
            e => ("capacity", e),
        })?;
        if !self.common.socket_white_ip_list.admits(client.ip) {
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
        let socket = &self.shared.socket;
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
            (_, Some(token)) => Some(
                self.auth
                    .authenticate(&token)
                    .await
                    .map_err(|e| ("token", e))?,
            ),
        };
        hub.identify(&mut slot, user.as_ref().map(|u| u.id))
            .map_err(|e| ("anonymous", e))?;
        let lang = req
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(Lang::from_accept_language)
            .unwrap_or_default();
        let body = frame_limited(&req, body, socket.max_frame_size)
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
        let metrics = self.shared.metrics.clone();
        let response = response.map_body(move |_, body| {
            ConnectionBody {
                inner: body,
                flushed: counted,
                rooms: outbox,
                metrics,
            }
            .boxed()
        });
        slog::debug!(self.shared.logger, "socket connected"; "connection" => connection.id(),
            "client" => %client, "user" => user.as_ref().map(|u| u.id));
        let window = Window {
            flushed,
            written: 0,
            bound: u64::try_from(socket.outbound_queue_bytes).unwrap_or(u64::MAX),
        };
        let rate = Rate::new(socket.max_messages_per_second);
        // The upgrade's span (the lifecycle serves it), which each message's span links to.
        let upgrade_span = self
            .shared
            .tracing
            .is_on()
            .then(goex_tracing::current)
            .flatten()
            .map(Box::new);
        let task = ConnectionTask {
            hub,
            connection,
            session,
            shared: self.shared.clone(),
            lang,
            client,
            window,
            rate,
            upgrade_span,
        };
        actix_web::rt::spawn(task.run(shutdown, stream));
        Ok(response)
    }
}

/// Registers the socket app's routes: the upgrade and a liveness probe (`/healthz`, for load
/// balancers and a registry's HTTP check).
pub fn routes<M>(cfg: &mut web::ServiceConfig)
where
    M: ModuleInterface + HasComponent<dyn SocketController> + ?Sized,
{
    cfg.route(SOCKET_PATH, web::get().to(socket_server::<M>))
        .route("/healthz", web::get().to(healthz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}

/// The upgrade, done by the controller.
async fn socket_server<M>(
    req: HttpRequest,
    body: web::Payload,
    controller: Inject<M, dyn SocketController>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn SocketController> + ?Sized,
{
    controller.upgrade(req, body).await
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
