//! `server.*` and `server.http.*`: the HTTP app's listener and limits, and what the three apps'
//! sections share; `server.grpc` and `server.socket` have their own files.

use std::time::Duration;

use goex_config::{ConfigError, Profile, invalid};
use serde::Deserialize;

use super::{GrpcConfig, SocketConfig, parse_addr, refuse_zero};

/// The `server` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Reported by `/hello` as `env` (the original's gin mode: debug, test, release).
    pub mode: String,
    /// Serve `/debug/*` helper routes (a slow route for shutdown tests, a panicking route).
    /// Must be off in prod; the loader refuses it there.
    pub debug_routes: bool,
    /// How long `/readyz` waits for each dependency before reporting it down.
    #[serde(with = "humantime_serde")]
    pub readiness_timeout: Duration,
    /// Name replicas and their addresses in `/readyz` (off: states only, by position).
    pub readiness_details: bool,
    /// Once a server listens, return start-up memory to the system (`server::memory`).
    pub release_startup_memory: bool,
    /// The HTTP application.
    pub http: HttpConfig,
    /// The gRPC application.
    pub grpc: GrpcConfig,
    /// The socket (WebSocket) application.
    pub socket: SocketConfig,
}

impl ServerConfig {
    /// `server.*`: prod's refusals, then each app's section.
    ///
    /// # Errors
    /// The first key whose value is unusable.
    pub(super) fn check(&self, profile: Profile) -> Result<(), ConfigError> {
        if profile.is_releasing() && self.debug_routes {
            return Err(invalid(
                "server.debug_routes",
                "must be false in the prod profile",
            ));
        }
        self.http.check(profile)?;
        self.grpc.check(profile)?;
        self.socket.check()
    }
}

/// The `server.http` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address; Go's `:8080` form means every interface.
    pub addr: String,
    /// Worker threads; 0 means one per CPU core available to the process.
    pub workers: usize,
    /// How long in-flight requests may run after SIGINT/SIGTERM (the original's 5 s).
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Largest accepted request body, in bytes (JSON, form or raw).
    pub max_body_size: usize,
    /// Keep-alive for idle client connections.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Time a client has to send its request head.
    #[serde(with = "humantime_serde")]
    pub client_request_timeout: Duration,
    /// Most connections served at once per worker.
    pub max_connections: usize,
    /// Send each answer at once (`TCP_NODELAY`, as Go's net/http does), instead of holding a
    /// small one until the client acknowledges the last (Nagle).
    pub tcp_nodelay: bool,
    /// Write one access-log record per request.
    pub access_log: bool,
    /// Time a client has to send a whole request body before 408 / 10012.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Reverse proxies (CIDRs or addresses) whose `X-Forwarded-For` / `Forwarded` is believed;
    /// empty: the peer address is the client. Parsed at load: a bad entry or a `/0` fails it.
    pub trusted_proxies: crate::meta::trusted_proxies::TrustedProxies,
    /// Serve the OpenAPI 3.1 document at `/openapi.json`.
    pub openapi: bool,
    /// Serve Swagger UI at `/swagger-ui/` (needs `openapi`). Never in prod; the loader refuses
    /// it there.
    pub swagger_ui: bool,
}

impl HttpConfig {
    /// `server.http.*`.
    fn check(&self, profile: Profile) -> Result<(), ConfigError> {
        parse_addr(&self.addr).map_err(|m| invalid("server.http.addr", m))?;
        if profile.is_releasing() && self.swagger_ui {
            return Err(invalid(
                "server.http.swagger_ui",
                "must be false in the prod profile",
            ));
        }
        if self.swagger_ui && !self.openapi {
            return Err(invalid(
                "server.http.swagger_ui",
                "needs server.http.openapi: the UI reads /openapi.json",
            ));
        }
        if self.max_body_size == 0 {
            return Err(invalid(
                "server.http.max_body_size",
                "must be greater than 0",
            ));
        }
        refuse_zero(&[
            ("server.http.body_timeout", self.body_timeout.is_zero()),
            // actix reads 0 as "no deadline" for the first request head.
            (
                "server.http.client_request_timeout",
                self.client_request_timeout.is_zero(),
            ),
        ])
    }
}
