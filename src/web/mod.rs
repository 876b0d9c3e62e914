//! The edge kit: what controllers, middleware and servers share at the edge, below all three.
//! The route registrar ([`routes`]), errors on the wire ([`envelope`]: the HTTP envelope, the
//! gRPC `Status`, the socket error frame), the extractors ([`extract`], [`inject`]), who calls
//! ([`auth`]: `Authenticated`, `Admin` and the bearer credentials), the client's address
//! ([`client_addr`]), the rate-limit headers and the user buckets the extractors spend
//! ([`rate_limit`]), and the socket frame-size guard ([`socket_frame_limit`]).
//!
//! It uses service traits, models and `meta`; it never imports `server`, `assembly`,
//! `controller` or `middleware` (tests/layering.rs).

pub mod auth;
pub mod client_addr;
pub mod envelope;
pub mod extract;
pub mod inject;
pub mod rate_limit;
pub mod routes;
pub mod socket_frame_limit;
