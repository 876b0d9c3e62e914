//! One request to Jenkins: the URL under the base, basic auth, the CSRF crumb on `POST`s (fetched
//! once, re-fetched once when Jenkins says it is no longer valid), and the answer's status turned
//! into a [`JenkinsError`] that says what Jenkins said.

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Method, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::message::short_message;
use crate::{Crumb, JenkinsError, JenkinsSettings};

/// The most bytes of an error answer read to find its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A request body, kept so a `POST` can be sent again with a new crumb.
pub(crate) enum Body {
    /// No body.
    Empty,
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
    /// `application/xml` (a job's `config.xml`).
    Xml(String),
}

/// What the client knows of the crumb.
#[derive(Clone)]
enum CrumbState {
    /// Not asked yet.
    Unknown,
    /// The crumb issuer answered 404: CSRF protection is off.
    Disabled,
    /// The crumb to send.
    Known(Crumb),
}

/// The crumb and its generation (bumped at each fetch), so concurrent requests refused with
/// the same stale crumb fetch a new one once between them.
struct CrumbSlot {
    state: CrumbState,
    generation: u64,
}

/// The connection, credentials and crumb shared by every clone of a client.
pub(crate) struct Transport {
    http: reqwest::Client,
    /// The base URL without a trailing slash (`http://h:8080/jenkins`).
    pub(crate) base: String,
    pub(crate) username: String,
    password: SecretString,
    pub(crate) max_console_bytes: usize,
    crumb: Mutex<CrumbSlot>,
}

impl Transport {
    pub(crate) fn new(settings: &JenkinsSettings) -> Result<Self, JenkinsError> {
        let base = base_url(&settings.host)?;
        if !settings.username.is_empty() {
            refuse_plain_http_off_loopback(&base)?;
        }
        if settings.connect_timeout.is_zero() || settings.request_timeout.is_zero() {
            return Err(JenkinsError::Settings(
                "jenkins.connect_timeout and jenkins.request_timeout must be above zero".into(),
            ));
        }
        if settings.max_console_bytes == 0 {
            return Err(JenkinsError::Settings(
                "jenkins.max_console_bytes must be above zero".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("goex-jenkins/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| JenkinsError::Settings(format!("cannot build the HTTP client: {e}")))?;
        Ok(Transport {
            http,
            base,
            username: settings.username.clone(),
            password: settings.password.clone(),
            max_console_bytes: settings.max_console_bytes,
            crumb: Mutex::new(CrumbSlot {
                state: CrumbState::Unknown,
                generation: 0,
            }),
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        if self.username.is_empty() {
            request
        } else {
            request.basic_auth(&self.username, Some(self.password.expose_secret()))
        }
    }

    /// Sends `request`, mapping transport failures; the status is not looked at.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Response, JenkinsError> {
        request
            .send()
            .await
            .map_err(|e| transport_error(method, path, &e))
    }

    /// `GET path?query`: the answer when its status is 2xx, else the error it means (`what`
    /// names the item for [`JenkinsError::NotFound`]).
    pub(crate) async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<Response, JenkinsError> {
        let request = self.request(Method::GET, path).query(query);
        let response = self.send(&Method::GET, path, request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.error_of(response, what).await)
    }

    /// `GET` and parse the JSON answer.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<T, JenkinsError> {
        let response = self.get(path, query, what).await?;
        json_of(response, path).await
    }

    /// `POST path?query` with `body` and the crumb: the answer when its status is 2xx or 3xx
    /// (Jenkins answers most `POST`s with a redirect), else the error it means.
    pub(crate) async fn post(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: Body,
        what: &str,
    ) -> Result<Response, JenkinsError> {
        let (mut crumb, mut generation) = self.crumb_for_post().await?;
        let mut retried = false;
        loop {
            let mut request = self.request(Method::POST, path).query(query);
            request = match &body {
                Body::Empty => request.body(Vec::new()),
                Body::Form(fields) => request.form(fields),
                Body::Xml(xml) => request
                    .header(CONTENT_TYPE, "application/xml; charset=utf-8")
                    .body(xml.clone()),
            };
            if let Some(crumb) = &crumb {
                request = request.header(crumb.crumb_request_field.as_str(), crumb.value());
            }
            let response = self.send(&Method::POST, path, request).await?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            if status.is_redirection() {
                return match refused_by_redirect(response.headers(), &self.base) {
                    Some(message) => Err(JenkinsError::Status {
                        status: status.as_u16(),
                        message,
                    }),
                    None => Ok(response),
                };
            }
            if status != StatusCode::FORBIDDEN {
                return Err(self.error_of(response, what).await);
            }
            let headers = response.headers().clone();
            let text = read_capped(response, MAX_ERROR_BODY)
                .await
                .unwrap_or_default();
            if retried || !mentions_crumb(&headers, &text) {
                return Err(status_error(status, &headers, &text, what));
            }
            // The crumb expired with its session, Jenkins restarted, or CSRF protection was
            // turned on since the crumb issuer said it was off: ask again, once.
            retried = true;
            (crumb, generation) = self.refresh_crumb(generation).await?;
        }
    }

    /// The crumb to send with a `POST`, fetching it the first time (one fetch however many
    /// `POST`s start together: they wait on the lock).
    async fn crumb_for_post(&self) -> Result<(Option<Crumb>, u64), JenkinsError> {
        let mut slot = self.crumb.lock().await;
        if matches!(slot.state, CrumbState::Unknown) {
            slot.state = self.fetch_crumb().await?;
            slot.generation += 1;
        }
        Ok((known(&slot.state), slot.generation))
    }

    /// A new crumb in place of the one of `stale` generation, unless another request already
    /// replaced it.
    async fn refresh_crumb(&self, stale: u64) -> Result<(Option<Crumb>, u64), JenkinsError> {
        let mut slot = self.crumb.lock().await;
        if slot.generation == stale {
            slot.state = CrumbState::Unknown;
            slot.state = self.fetch_crumb().await?;
            slot.generation += 1;
        }
        Ok((known(&slot.state), slot.generation))
    }

    /// The crumb for the next `POST` (fetched when not known yet); `None` when CSRF protection
    /// is off.
    pub(crate) async fn crumb(&self) -> Result<Option<Crumb>, JenkinsError> {
        self.crumb_for_post().await.map(|(crumb, _)| crumb)
    }

    async fn fetch_crumb(&self) -> Result<CrumbState, JenkinsError> {
        const PATH: &str = "/crumbIssuer/api/json";
        let request = self.request(Method::GET, PATH);
        let response = self.send(&Method::GET, PATH, request).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(CrumbState::Disabled);
        }
        if !response.status().is_success() {
            return Err(self.error_of(response, "the crumb issuer").await);
        }
        let crumb: Crumb = json_of(response, PATH).await?;
        if crumb.crumb_request_field.is_empty() {
            return Err(JenkinsError::BadResponse(format!(
                "{PATH}: no crumbRequestField"
            )));
        }
        Ok(CrumbState::Known(crumb))
    }

    /// The error a non-2xx answer means.
    pub(crate) async fn error_of(&self, response: Response, what: &str) -> JenkinsError {
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_redirection() {
            // A GET redirected: a proxy sending http to https, or a login page.
            let to = header(&headers, LOCATION).unwrap_or_default();
            return JenkinsError::Status {
                status: status.as_u16(),
                message: format!("redirected to {to} (is jenkins.host right?)"),
            };
        }
        let text = read_capped(response, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        status_error(status, &headers, &text, what)
    }
}

fn known(state: &CrumbState) -> Option<Crumb> {
    match state {
        CrumbState::Known(crumb) => Some(crumb.clone()),
        CrumbState::Unknown | CrumbState::Disabled => None,
    }
}

/// The base URL from `jenkins.host`: http or https, no credentials, query or fragment; without
/// its trailing slash.
fn base_url(host: &str) -> Result<String, JenkinsError> {
    let url = reqwest::Url::parse(host.trim()).map_err(|e| {
        JenkinsError::Settings(format!(
            "jenkins.host {:?} is not a URL ({e}): expected http://host:port[/prefix]",
            host.split('@').next_back().unwrap_or_default()
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(JenkinsError::Settings(format!(
            "jenkins.host: scheme {} (expected http or https)",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(JenkinsError::Settings(
            "jenkins.host carries credentials: put them in jenkins.username and jenkins.password"
                .into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(JenkinsError::Settings(
            "jenkins.host has a query or fragment".into(),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Basic auth is the password in clear on the wire: over `http://` it may only go to this
/// machine (a loopback address or `localhost`, which RFC 6761 keeps on loopback). Checked at
/// construction, so nothing is ever sent to such a host.
fn refuse_plain_http_off_loopback(base: &str) -> Result<(), JenkinsError> {
    let Ok(url) = reqwest::Url::parse(base) else {
        return Ok(()); // base_url parsed it already
    };
    if url.scheme() != "http" {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let name = bare.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    if loopback {
        return Ok(());
    }
    Err(JenkinsError::Settings(format!(
        "jenkins.host: basic auth over plain http to {} would send the password in clear; \
         use https (plain http is allowed to a loopback address only)",
        host
    )))
}

/// A transport failure in words, without the URL's query: connecting, timing out, reading.
fn transport_error(method: &Method, path: &str, e: &reqwest::Error) -> JenkinsError {
    if e.is_timeout() {
        return JenkinsError::Unreachable(format!("{method} {path}: timed out"));
    }
    let mut message = format!("{method} {path}");
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if e.source().is_none() {
        message.push_str(": ");
        message.push_str(&e.to_string());
    }
    JenkinsError::Unreachable(message)
}

/// The error of a status, with Jenkins's message: `X-Error` when sent, else the body's gist.
pub(crate) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    what: &str,
) -> JenkinsError {
    let message = header(headers, "X-Error")
        .map(|m| short_message(&m))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| short_message(body));
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        message
    };
    match status {
        StatusCode::UNAUTHORIZED => JenkinsError::Unauthorized(message),
        StatusCode::FORBIDDEN => JenkinsError::Forbidden(message),
        StatusCode::NOT_FOUND => JenkinsError::NotFound(what.to_owned()),
        _ => JenkinsError::Status {
            status: status.as_u16(),
            message,
        },
    }
}

/// Whether a 403 is about the crumb (Jetty's `No valid crumb was included in the request`).
fn mentions_crumb(headers: &HeaderMap, body: &str) -> bool {
    header(headers, "X-Error")
        .into_iter()
        .chain(std::iter::once(body.to_owned()))
        .any(|text| text.to_ascii_lowercase().contains("crumb"))
}

/// Why a redirect answering a `POST` means it was not carried out: a login page, or a move to
/// another scheme (a proxy redirecting http to https drops the `POST`).
fn refused_by_redirect(headers: &HeaderMap, base: &str) -> Option<String> {
    let to = header(headers, LOCATION)?;
    let lower = to.to_ascii_lowercase();
    let to_https = base.starts_with("http://") && lower.starts_with("https://");
    // The page's first path segment below the base (a job named `login-svc` lives under
    // `/job/`, never at `/login`).
    let path = lower.split_once("://").map_or(lower.as_str(), |(_, rest)| {
        rest.find('/').map_or("", |i| &rest[i..])
    });
    let base_path = base
        .split_once("://")
        .map_or("", |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]))
        .to_ascii_lowercase();
    let below = path.strip_prefix(base_path.as_str()).unwrap_or(path);
    let first = below
        .trim_start_matches('/')
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let to_login = matches!(first, "login" | "loginerror" | "securityrealm");
    (to_login || to_https).then(|| {
        format!("redirected to {to}: the request was not carried out (is jenkins.host right?)")
    })
}

/// A header's value as text: UTF-8 when it is, else ISO-8859-1 (what older Jetty writes).
pub(crate) fn header(
    headers: &HeaderMap,
    name: impl reqwest::header::AsHeaderName,
) -> Option<String> {
    headers.get(name).map(|v| {
        let bytes = v.as_bytes();
        match std::str::from_utf8(bytes) {
            Ok(text) => text.trim().to_owned(),
            Err(_) => bytes
                .iter()
                .map(|&b| char::from(b))
                .collect::<String>()
                .trim()
                .to_owned(),
        }
    })
}

/// Parses a JSON answer.
pub(crate) async fn json_of<T: DeserializeOwned>(
    response: Response,
    path: &str,
) -> Result<T, JenkinsError> {
    let (bytes, cut) = read_bytes_capped(response, MAX_JSON_BYTES).await?;
    if cut {
        return Err(JenkinsError::BadResponse(format!(
            "{path}: answer larger than {MAX_JSON_BYTES} bytes"
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| JenkinsError::BadResponse(format!("{path}: {e}")))
}

/// The most bytes of one JSON answer read (a job's `api/json` with its builds and actions is
/// far smaller; more is a broken or hostile peer).
pub(crate) const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// Reads at most `cap` bytes of the body as text (lossy), not reading the rest.
async fn read_capped(response: Response, cap: usize) -> Result<String, JenkinsError> {
    let (bytes, _) = read_bytes_capped(response, cap).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads the body chunk by chunk up to `cap` bytes; the flag says whether more was left unread.
pub(crate) async fn read_bytes_capped(
    mut response: Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), JenkinsError> {
    let path = response.url().path().to_owned();
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(&Method::GET, &path, &e))?
    {
        let room = cap - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok((bytes, true));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((bytes, false))
}

/// How long to wait before polling again: doubling from 100 ms up to 1 s.
pub(crate) fn next_poll(previous: Duration) -> Duration {
    (previous * 2).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_over_plain_http_goes_to_loopback_only() {
        // Refused at construction: nothing is dialled (10.1.2.3 is never contacted).
        for host in [
            "http://10.1.2.3:8080",
            "http://ci.example.com/jenkins",
            "http://[2001:db8::1]:8080",
        ] {
            let e = Transport::new(&JenkinsSettings::new(host, "admin", "t0k3n"))
                .err()
                .unwrap_or_else(|| panic!("{host} accepted"));
            assert!(
                matches!(&e, JenkinsError::Settings(m) if m.contains("jenkins.host")),
                "{host}: {e}"
            );
            // Anonymous access sends no credentials: allowed.
            assert!(Transport::new(&JenkinsSettings::new(host, "", "")).is_ok());
        }
        for host in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9:1",
            "http://[::1]:8080",
            "http://localhost:8080",
            "https://ci.example.com/jenkins",
            "https://10.1.2.3:8443",
        ] {
            assert!(
                Transport::new(&JenkinsSettings::new(host, "admin", "t0k3n")).is_ok(),
                "{host}"
            );
        }
    }

    #[test]
    fn hosts_become_bases() {
        assert_eq!(
            base_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url("https://ci.example.com/jenkins/").unwrap(),
            "https://ci.example.com/jenkins"
        );
        for bad in ["127.0.0.1:8080", "ftp://h", "http://h/?a=1", "not a url"] {
            assert!(
                matches!(base_url(bad), Err(JenkinsError::Settings(_))),
                "{bad}"
            );
        }
        let e = base_url("http://admin:hunter2@h:8080")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        let e = base_url("bad:/admin:hunter2@").unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn errors_say_what_jenkins_said() {
        let mut headers = HeaderMap::new();
        let said = "A job already exists with the name \u{2018}x\u{2019}";
        headers.insert(
            "X-Error",
            reqwest::header::HeaderValue::from_bytes(said.as_bytes()).unwrap(),
        );
        let e = status_error(
            StatusCode::BAD_REQUEST,
            &headers,
            "<html>...</html>",
            "job x",
        );
        assert!(
            matches!(&e, JenkinsError::Status { status: 400, message } if message == "A job already exists with the name \u{2018}x\u{2019}"),
            "{e:?}"
        );
        let e = status_error(StatusCode::NOT_FOUND, &HeaderMap::new(), "", "job a/b");
        assert!(
            matches!(&e, JenkinsError::NotFound(w) if w == "job a/b"),
            "{e:?}"
        );
        let e = status_error(StatusCode::UNAUTHORIZED, &HeaderMap::new(), "", "x");
        assert!(
            matches!(&e, JenkinsError::Unauthorized(m) if m == "Unauthorized"),
            "{e:?}"
        );
        let e = status_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &HeaderMap::new(),
            "<html><head><title>Jenkins</title></head><body><p>java.lang.NullPointerException</p></body></html>",
            "x",
        );
        assert_eq!(
            e.to_string(),
            "jenkins answered 500: java.lang.NullPointerException"
        );
    }

    #[test]
    fn latin1_headers_read() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "X-Error",
            reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        );
        assert_eq!(header(&headers, "X-Error").unwrap(), "caf\u{e9}");
    }

    #[test]
    fn crumb_refusals_are_told_from_permission_refusals() {
        let page = "<html><head><title>Error 403 No valid crumb was included in the request</title></head></html>";
        assert!(mentions_crumb(&HeaderMap::new(), page));
        assert!(!mentions_crumb(
            &HeaderMap::new(),
            "<p>alice is missing the Job/Build permission</p>"
        ));
    }

    #[test]
    fn redirects_to_login_or_https_refuse_a_post() {
        let with = |to: &str| {
            let mut h = HeaderMap::new();
            h.insert(LOCATION, to.parse().unwrap());
            h
        };
        assert!(refused_by_redirect(&with("http://h/job/x/"), "http://h").is_none());
        assert!(refused_by_redirect(&with("http://other/queue/"), "http://h").is_none());
        assert!(refused_by_redirect(&with("http://h/login?from=%2F"), "http://h").is_some());
        assert!(refused_by_redirect(&with("https://h/createItem"), "http://h").is_some());
        assert!(refused_by_redirect(&with("https://h/job/x/"), "https://h").is_none());
        // Names that start like the login page are not it.
        for moved in [
            "http://h/job/loginsvc/",
            "http://h/job/login2/configure",
            "/job/login/",
        ] {
            assert!(
                refused_by_redirect(&with(moved), "http://h").is_none(),
                "{moved}"
            );
        }
        let prefixed = "http://h/login-proxy/jenkins";
        assert!(
            refused_by_redirect(&with("http://h/login-proxy/jenkins/job/x/"), prefixed).is_none()
        );
        assert!(
            refused_by_redirect(&with("http://h/login-proxy/jenkins/login?from=x"), prefixed)
                .is_some()
        );
        assert!(
            refused_by_redirect(&with("http://h/securityRealm/commenceLogin"), "http://h")
                .is_some()
        );
    }

    #[test]
    fn polls_back_off_to_a_second() {
        let mut d = Duration::ZERO;
        let mut seen = vec![];
        for _ in 0..6 {
            d = next_poll(d);
            seen.push(d.as_millis());
        }
        assert_eq!(seen, [100, 200, 400, 800, 1000, 1000]);
    }
}
