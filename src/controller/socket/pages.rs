//! The HTTP app's two pages that talk to the socket app (`/socket/index`, `/socket/index2`):
//! static pages with the socket's address filled in.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::SOCKET_PATH;
use crate::meta::trusted_proxies::TrustedProxies;
use crate::web::routes::Routes;

/// The target the pages connect to: `server.socket.public_url`, else the page's own host on
/// the socket app's port.
#[derive(Clone, Debug)]
pub struct PageTarget {
    /// `server.socket.public_url` (empty: derived).
    pub public_url: String,
    /// The socket app's port (`server.socket.addr`).
    pub port: u16,
}

const SOCKET_PAGE: &str = include_str!("../../../views/socket.html");
const SOCKET2_PAGE: &str = include_str!("../../../views/socket2.html");

/// Registers the HTTP app's pages of the socket app.
pub fn page_routes(routes: &mut Routes) {
    routes.add(__path_socket_index, &[], socket_index);
    routes.add(__path_socket_index2, &[], socket_index2);
}

/// The original's JSON example page: sends `{"name":"张三","age":"18"}` on open.
#[utoipa::path(
    get,
    path = "/socket/index",
    tag = "socket",
    operation_id = "socket_index",
    responses((status = 200, description = "An HTML page that talks to the socket app (docs/websocket.md).", content_type = "text/html")),
)]
async fn socket_index(req: HttpRequest, target: web::Data<PageTarget>) -> HttpResponse {
    page(SOCKET_PAGE, &req, &target)
}

/// The original's Open / Close / Send page.
#[utoipa::path(
    get,
    path = "/socket/index2",
    tag = "socket",
    operation_id = "socket_index2",
    responses((status = 200, description = "An HTML page with Open, Close and Send buttons that talks to the socket app.", content_type = "text/html")),
)]
async fn socket_index2(req: HttpRequest, target: web::Data<PageTarget>) -> HttpResponse {
    page(SOCKET2_PAGE, &req, &target)
}

fn page(template: &str, req: &HttpRequest, target: &PageTarget) -> HttpResponse {
    let url = if target.public_url.is_empty() {
        let (scheme, host) = page_origin(req);
        // The page's host without its port; [v6] keeps its brackets.
        let host = match host.rfind(':') {
            Some(i) if !host[i..].contains(']') => &host[..i],
            _ => host.as_str(),
        };
        let scheme = if scheme == "https" { "wss" } else { "ws" };
        format!("{scheme}://{host}:{}{SOCKET_PATH}", target.port)
    } else {
        target.public_url.clone()
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(template.replace("{{socket_url}}", &html_escape(&url)))
}

/// The scheme and host the page was asked for. `Forwarded` / `X-Forwarded-Host` /
/// `X-Forwarded-Proto` are read only from a peer in `server.http.trusted_proxies` (the rule of
/// the client address); from anyone else they are ignored, so a client cannot point the page's
/// socket elsewhere: the request's own `Host` and the listener's scheme.
fn page_origin(req: &HttpRequest) -> (String, String) {
    let trusted = req
        .app_data::<Arc<TrustedProxies>>()
        .zip(req.peer_addr())
        .is_some_and(|(trusted, peer)| trusted.contains(peer.ip()));
    if trusted {
        let info = req.connection_info();
        return (info.scheme().to_owned(), info.host().to_owned());
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_else(|| req.app_config().host())
        .to_owned();
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    (scheme.to_owned(), host)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_urls_are_escaped() {
        assert_eq!(html_escape(r#"ws://a"b<c>"#), "ws://a&quot;b&lt;c&gt;");
    }
}
