//! `server.socket.*`: the socket app's listener, admission and per-connection limits
//! (docs/websocket.md).

use std::time::Duration;

use goex_config::{ConfigError, Profile, invalid};
use serde::Deserialize;

use super::{parse_addr, refuse_zero};

/// Whether the socket app asks for an access token.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SocketAuth {
    /// Tokens are not read.
    None,
    /// A token is checked when one is sent; anonymous clients are admitted.
    Optional,
    /// Every connection needs a valid access token.
    Required,
}

/// The `server.socket` section (docs/websocket.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketConfig {
    /// Listen address; Go's `:30000` form means every interface.
    pub addr: String,
    /// The URL the HTTP app's pages connect to; empty: `ws://<the page's host>:<addr's
    /// port>/socket_server`.
    pub public_url: String,
    /// Worker threads; 0 means one per CPU core available to the process.
    pub workers: usize,
    /// How long clients have to answer the 1001 close after SIGINT/SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Connections open at once; more are refused with 503 before the upgrade.
    pub max_connections: usize,
    /// How often the server pings each client.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A connection silent this long gets close 1000 `idle timeout` (the original's 30 s).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Pongs count as activity (off: only client messages do, the original's rule).
    pub pong_keeps_alive: bool,
    /// Largest frame read, in bytes; larger: close 1009.
    pub max_frame_size: usize,
    /// Largest message (continuation frames aggregated), in bytes; larger: close 1009.
    pub max_message_size: usize,
    /// Messages waiting to be written to one connection; more: close 1008 (slow consumer).
    pub outbound_queue: usize,
    /// How long a write may wait for a client that reads slowly before it is dropped.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// `TCP_USER_TIMEOUT` of every connection: the kernel aborts one whose data stays
    /// unacknowledged or unsent (the client's window closed) this long.
    #[serde(with = "humantime_serde")]
    pub tcp_user_timeout: Duration,
    /// Rooms one connection may be in at once.
    pub max_rooms_per_connection: usize,
    /// Origins admitted (docs/websocket.md): full origins, hosts, `*.` subdomains, or `*`.
    /// Empty: same-origin requests only.
    pub allowed_origins: crate::meta::socket_admission::OriginAllowList,
    /// Refuse requests without an `Origin` header (non-browser clients send none).
    pub require_origin: bool,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` is believed (as
    /// `server.http.trusted_proxies`).
    pub trusted_proxies: crate::meta::trusted_proxies::TrustedProxies,
    /// none | optional | required: access tokens (query `token` or `Authorization: Bearer`).
    pub auth: SocketAuth,
    /// Connections open at once from one client, at two widths; more: 429 / 10008.
    pub max_per_address: SocketAddressLimits,
    /// Connections open at once without an access token; more: 503 / 10009.
    pub max_anonymous: usize,
    /// Bytes of frames waiting for one connection (its outbox, and as much again handed to the
    /// HTTP layer but not yet written); more: close 1008 (slow consumer).
    pub outbound_queue_bytes: usize,
    /// With Redis: room messages waiting to be published to the other instances; past it a
    /// message is dropped (counted) and only this instance's members get it.
    pub bus_queue: usize,
    /// Messages one connection may send per second (a publish counts its deliveries, at least
    /// one); past it a message is answered with an error frame (10008) and not acted on.
    pub max_messages_per_second: u32,
    /// Rooms anonymous connections may join; every other room needs a signed-in connection.
    /// Names, or prefixes ending in `*` (`public-*`).
    pub public_rooms: Vec<String>,
}

/// `server.socket.max_per_address`: connections open at once per client address.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketAddressLimits {
    /// Per IPv4 address or IPv6 /64 (one host).
    pub host: usize,
    /// Per IPv4 /24 or IPv6 /48 (one network: a host cannot get round `host` by using its
    /// neighbours' addresses).
    pub network: usize,
}

impl SocketConfig {
    /// Whether anonymous connections may join `room`: `public_rooms` names it, or one of its
    /// entries ending in `*` is a prefix of it (`*` alone: every room).
    pub fn is_public_room(&self, room: &str) -> bool {
        self.public_rooms
            .iter()
            .any(|entry| match entry.strip_suffix('*') {
                Some(prefix) => room.starts_with(prefix),
                None => entry == room,
            })
    }

    /// What the socket app alone needs of its section, checked when it starts (the HTTP and
    /// gRPC apps load the same file and do not serve sockets).
    ///
    /// # Errors
    /// In the prod profile, an empty `server.socket.allowed_origins`: the same-origin rule it
    /// falls back to compares `Origin` with `Host`, both of which a DNS-rebinding page
    /// controls.
    pub fn check_for_socket_app(&self, profile: Profile) -> Result<(), ConfigError> {
        if profile.is_releasing() && self.allowed_origins.is_empty() {
            return Err(invalid(
                "server.socket.allowed_origins",
                "must list the origins of the pages that open sockets in the prod profile \
                 (e.g. https://app.example.com): the same-origin rule of an empty list \
                 compares Origin with Host, which DNS rebinding passes",
            ));
        }
        Ok(())
    }

    /// `server.socket.*`, checked by every app (they all load the same file).
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        parse_addr(&self.addr).map_err(|m| invalid("server.socket.addr", m))?;
        let url = &self.public_url;
        if !(url.is_empty() || url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(invalid(
                "server.socket.public_url",
                "must be empty or a ws:// or wss:// URL",
            ));
        }
        if self.idle_timeout <= self.ping_interval {
            return Err(invalid(
                "server.socket.idle_timeout",
                "must be longer than server.socket.ping_interval: a live client answers pings",
            ));
        }
        refuse_zero(&[
            ("server.socket.max_connections", self.max_connections == 0),
            ("server.socket.ping_interval", self.ping_interval.is_zero()),
            ("server.socket.max_frame_size", self.max_frame_size == 0),
            ("server.socket.max_message_size", self.max_message_size == 0),
            ("server.socket.outbound_queue", self.outbound_queue == 0),
            ("server.socket.write_timeout", self.write_timeout.is_zero()),
            (
                "server.socket.tcp_user_timeout",
                self.tcp_user_timeout.is_zero(),
            ),
            (
                "server.socket.max_rooms_per_connection",
                self.max_rooms_per_connection == 0,
            ),
            (
                "server.socket.max_per_address.host",
                self.max_per_address.host == 0,
            ),
            (
                "server.socket.max_per_address.network",
                self.max_per_address.network == 0,
            ),
            ("server.socket.max_anonymous", self.max_anonymous == 0),
            ("server.socket.bus_queue", self.bus_queue == 0),
            (
                "server.socket.outbound_queue_bytes",
                self.outbound_queue_bytes == 0,
            ),
            (
                "server.socket.max_messages_per_second",
                self.max_messages_per_second == 0,
            ),
        ])?;
        for (i, room) in self.public_rooms.iter().enumerate() {
            let name = room.strip_suffix('*').unwrap_or(room);
            let valid = (!name.is_empty() || room == "*")
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
            if !valid {
                return Err(invalid(
                    &format!("server.socket.public_rooms[{i}]"),
                    "a room name (1 to 64 of A-Z a-z 0-9 _ . : -), a prefix ending in `*`, or `*`",
                ));
            }
        }
        if self.max_frame_size > self.max_message_size {
            return Err(invalid(
                "server.socket.max_frame_size",
                "must not exceed server.socket.max_message_size: a message is one or more frames",
            ));
        }
        Ok(())
    }
}

/// The `common` section (the original's keys).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonConfig {
    /// Client addresses the socket app admits: addresses, CIDRs, or IPv4 with whole-octet `*`
    /// (`192.168.163.*`). Empty admits everyone (the original's rule).
    pub socket_white_ip_list: crate::meta::socket_admission::IpAllowList,
}
