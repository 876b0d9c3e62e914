//! `server.grpc.*`: the gRPC app's listener, TLS and per-call credentials.

use std::time::Duration;

use goex_config::{ConfigError, Profile, invalid};
use serde::Deserialize;

use super::{parse_addr, refuse_zero};

/// The shortest non-empty `server.grpc.auth.password` prod accepts.
pub const MIN_GRPC_PASSWORD: usize = 16;

/// The `server.grpc` section (the gRPC app, `go_example grpc`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Listen address; `:9090` (the original's) means every interface.
    pub addr: String,
    /// How long in-flight calls may run after SIGINT/SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Largest request message accepted, in bytes; a bigger one is `OUT_OF_RANGE` (tonic's answer).
    pub max_message_size: usize,
    /// Most calls served at once on one connection (HTTP/2 streams); more wait.
    pub max_concurrent_streams: u32,
    /// The static backstop under the adaptive shedder: calls one connection may have in the
    /// handlers at once (tonic's `concurrency_limit_per_connection`).
    pub concurrency_limit_per_connection: usize,
    /// A call over `concurrency_limit_per_connection` is answered `RESOURCE_EXHAUSTED` at once
    /// (tonic's `load_shed`) instead of waiting for a free slot.
    pub load_shed: bool,
    /// Transport security.
    pub tls: GrpcTlsConfig,
    /// Per-call credentials.
    pub auth: GrpcAuthConfig,
    /// Serve gRPC server reflection (v1 and v1alpha): the service list and descriptors, for
    /// grpcurl and the like. Off in prod by default: it maps the API for anyone.
    pub reflection: bool,
}

impl GrpcConfig {
    /// `server.grpc.*`.
    pub(super) fn check(&self, profile: Profile) -> Result<(), ConfigError> {
        parse_addr(&self.addr).map_err(|m| invalid("server.grpc.addr", m))?;
        let password = secrecy::ExposeSecret::expose_secret(&self.auth.password);
        // Empty keeps meaning password auth off; a short one is a guess away (it is a shared
        // secret of services, typed by nobody).
        if profile.is_releasing()
            && !password.is_empty()
            && password.chars().count() < MIN_GRPC_PASSWORD
        {
            return Err(invalid(
                "server.grpc.auth.password",
                format!(
                    "at least {MIN_GRPC_PASSWORD} characters in prod (or empty: no password auth)"
                ),
            ));
        }
        if profile.is_releasing() && self.tls.generate_missing {
            return Err(invalid(
                "server.grpc.tls.generate_missing",
                "must be false in the prod profile: provide certificates",
            ));
        }
        refuse_zero(&[
            ("server.grpc.max_message_size", self.max_message_size == 0),
            (
                "server.grpc.max_concurrent_streams",
                self.max_concurrent_streams == 0,
            ),
            (
                "server.grpc.concurrency_limit_per_connection",
                self.concurrency_limit_per_connection == 0,
            ),
        ])
    }
}

/// The `server.grpc.tls` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcTlsConfig {
    /// Serve TLS (off: plaintext HTTP/2, for a mesh that terminates TLS itself).
    pub enabled: bool,
    /// Folder with `server.pem`, `server.key` and `ca.crt` (what `go_example certs generate`
    /// writes; the original's `assets/certs/grpc_tls`).
    pub dir: String,
    /// Client certificates: `none`, `request` (asked for, verified when sent, not required: the
    /// original's, so health checkers connect) or `require` (mTLS).
    pub client_auth: ClientAuth,
    /// Write a development CA and certificates into `dir` when it has none (debug and dev
    /// profiles; refused in prod).
    pub generate_missing: bool,
}

/// How the gRPC server treats client certificates.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Not asked for.
    None,
    /// Asked for and verified against `ca.crt` when sent; a client without one is admitted.
    Request,
    /// Required and verified (mutual TLS).
    Require,
}

/// The `server.grpc.auth` section: every call carries the original's `user` / `password`
/// metadata, or an access token of the auth feature.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcAuthConfig {
    /// The `user` metadata value.
    pub user: String,
    /// The `password` metadata value (compared in constant time; required in prod).
    pub password: secrecy::SecretString,
    /// Also admit `authorization: Bearer <accessToken>` from `POST /auth/login` (the same
    /// keys and single sign-on check as the HTTP app).
    pub jwt: bool,
}
