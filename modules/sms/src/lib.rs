//! Alibaba Cloud Short Message Service (`dysmsapi`, API version `2017-05-25`): the `SendSms`
//! call, signed with the current scheme, signature V3 `ACS3-HMAC-SHA256`
//! (<https://help.aliyun.com/zh/sdk/product-overview/v3-request-structure-and-signature>).
//!
//! The request is an RPC-style `POST /` with the parameters in the query string and an empty
//! body; the `x-acs-*` headers name the action, version, time and a one-time nonce, and the
//! `Authorization` header carries the HMAC-SHA256 of the canonical request. `SendSms` is not
//! idempotent: a send is never retried here (a retry after a lost answer could send twice).

mod signature;

use std::collections::BTreeMap;
use std::time::Duration;

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use signature::{Signed, sign};

/// The action and version of the one call this client makes.
pub const SEND_SMS: &str = "SendSms";
/// The `dysmsapi` API version.
pub const API_VERSION: &str = "2017-05-25";

/// `alibaba_sms.*`: the original's keys (`end_point`, `access_key_id`, `access_key_secret`) and a
/// timeout.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The endpoint: a host (`dysmsapi.aliyuncs.com`, reached over HTTPS) or a URL (a test double
    /// at `http://127.0.0.1:port`).
    pub end_point: String,
    /// The AccessKey id (the `Credential` of each request).
    pub access_key_id: String,
    /// The AccessKey secret (signs each request; never sent, never logged).
    pub access_key_secret: SecretString,
    /// The longest one call may take, connecting included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

/// What can go wrong sending a message.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The settings cannot make a client (an empty key, an unusable endpoint).
    #[error("alibaba_sms settings: {0}")]
    Settings(String),
    /// No connection could be made: the message was not sent.
    #[error("alibaba sms unreachable: {0}")]
    Unreachable(String),
    /// The request went out but no whole answer came back in time: the message may or may not
    /// have been sent.
    #[error("alibaba sms did not answer: {0}")]
    NoAnswer(String),
    /// Alibaba Cloud answered with a code other than `OK` (`isv.BUSINESS_LIMIT_CONTROL`,
    /// `SignatureDoesNotMatch`, ...).
    #[error("alibaba sms refused ({status}): {code}: {message} (request {request_id})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The answer's `Code`.
        code: String,
        /// The answer's `Message`.
        message: String,
        /// The answer's `RequestId`, for Alibaba Cloud support.
        request_id: String,
    },
    /// The answer is not the documented JSON.
    #[error("alibaba sms answer unreadable ({status}): {detail}")]
    Unreadable {
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        detail: String,
    },
}

impl SmsError {
    /// Whether the message surely did not go out (so its code can be dropped and the send not
    /// counted): a refusal, no connection, or no client. After [`SmsError::NoAnswer`] or
    /// [`SmsError::Unreadable`] it may have been delivered.
    pub fn surely_not_sent(&self) -> bool {
        matches!(
            self,
            SmsError::Settings(_) | SmsError::Unreachable(_) | SmsError::Refused { .. }
        )
    }

    /// Every [`SmsError::kind`], for metrics made ahead.
    pub const KINDS: [&'static str; 5] = [
        "settings",
        "unreachable",
        "no_answer",
        "refused",
        "unreadable",
    ];

    /// A fixed name of the error's kind (a metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            SmsError::Settings(_) => "settings",
            SmsError::Unreachable(_) => "unreachable",
            SmsError::NoAnswer(_) => "no_answer",
            SmsError::Refused { .. } => "refused",
            SmsError::Unreadable { .. } => "unreadable",
        }
    }
}

/// One message: `PhoneNumbers`, `SignName`, `TemplateCode` and `TemplateParam`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The receiving number (mainland numbers without `+86`).
    pub phone_numbers: &'a str,
    /// The approved signature name.
    pub sign_name: &'a str,
    /// The approved template (`SMS_...`).
    pub template_code: &'a str,
    /// The template's variables as a JSON object (`{"code":"123456"}`).
    pub template_param: &'a str,
}

/// A message Alibaba Cloud accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// `BizId`: the delivery receipt id.
    pub biz_id: String,
    /// `RequestId`.
    pub request_id: String,
}

/// The JSON answer of every `dysmsapi` call, success or not.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    code: Option<String>,
    message: Option<String>,
    biz_id: Option<String>,
    request_id: Option<String>,
}

/// A `SendSms` client: one connection pool, the credentials parsed once.
#[derive(Clone)]
pub struct AlibabaSms {
    http: reqwest::Client,
    /// `https://dysmsapi.aliyuncs.com` or the configured URL, without a trailing slash.
    base: String,
    /// The `host` header value signed (host and port when the URL names one).
    host: String,
    access_key_id: String,
    access_key_secret: SecretString,
}

impl std::fmt::Debug for AlibabaSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlibabaSms")
            .field("base", &self.base)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AlibabaSms {
    /// The server sent to: its host, and its port when the endpoint names one.
    pub fn server(&self) -> &str {
        &self.host
    }

    /// A client of `settings.end_point`. Nothing is sent until [`AlibabaSms::send`].
    ///
    /// # Errors
    /// [`SmsError::Settings`] for an empty key or an endpoint that is not a host or URL.
    pub fn new(settings: &Settings) -> Result<Self, SmsError> {
        if settings.access_key_id.trim().is_empty()
            || settings.access_key_secret.expose_secret().is_empty()
        {
            return Err(SmsError::Settings(
                "access_key_id and access_key_secret are required".into(),
            ));
        }
        let end_point = settings.end_point.trim().trim_end_matches('/');
        let base = if end_point.contains("://") {
            end_point.to_owned()
        } else {
            format!("https://{end_point}")
        };
        let url = reqwest::Url::parse(&base)
            .map_err(|e| SmsError::Settings(format!("end_point {end_point:?}: {e}")))?;
        // The signature covers the path `/`: an endpoint is a host, never a path.
        if url.path() != "/" || url.query().is_some() {
            return Err(SmsError::Settings(format!(
                "end_point {end_point:?}: a host or scheme://host[:port], without a path"
            )));
        }
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if url.scheme() != "https" && !loopback {
            return Err(SmsError::Settings(format!(
                "end_point {end_point:?}: https (plain http only to a loopback test double)"
            )));
        }
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => {
                return Err(SmsError::Settings(format!(
                    "end_point {end_point:?}: no host"
                )));
            }
        };
        // No redirects: SendSms is not idempotent, and a 307 would send it again.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .map_err(|e| SmsError::Settings(e.to_string()))?;
        Ok(Self {
            http,
            base,
            host,
            access_key_id: settings.access_key_id.trim().to_owned(),
            access_key_secret: settings.access_key_secret.clone(),
        })
    }

    /// Sends one message (once: never retried).
    ///
    /// # Errors
    /// [`SmsError::Refused`] when the answer's `Code` is not `OK`, [`SmsError::Unreachable`],
    /// [`SmsError::Unreadable`].
    pub async fn send(&self, message: &Message<'_>) -> Result<Receipt, SmsError> {
        let query: BTreeMap<&str, &str> = [
            ("PhoneNumbers", message.phone_numbers),
            ("SignName", message.sign_name),
            ("TemplateCode", message.template_code),
            ("TemplateParam", message.template_param),
        ]
        .into_iter()
        .collect();
        let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let signed = sign(&signature::Request {
            method: "POST",
            path: "/",
            query: &query,
            host: &self.host,
            action: SEND_SMS,
            version: API_VERSION,
            date: &date,
            nonce: &hex::encode(nonce),
            body: b"",
            access_key_id: &self.access_key_id,
            access_key_secret: self.access_key_secret.expose_secret(),
        });
        let url = format!("{}/?{}", self.base, signed.canonical_query);
        let mut request = self.http.post(url);
        for (name, value) in &signed.headers {
            // `host` is what reqwest sends from the URL; the signed value is the same.
            if name != "host" {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        let response = request
            .header("accept", "application/json")
            .send()
            .await
            .map_err(send_error)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(send_error)?;
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| SmsError::Unreadable {
            status,
            detail: format!(
                "{e}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        })?;
        let request_id = answer.request_id.unwrap_or_default();
        match answer.code.as_deref() {
            Some("OK") if (200..300).contains(&status) => Ok(Receipt {
                biz_id: answer.biz_id.unwrap_or_default(),
                request_id,
            }),
            code => Err(SmsError::Refused {
                status,
                code: code.unwrap_or("(none)").to_owned(),
                message: answer.message.unwrap_or_default(),
                request_id,
            }),
        }
    }
}

/// A failed exchange, without its URL (the query holds the number and the code).
fn send_error(e: reqwest::Error) -> SmsError {
    let connect = e.is_connect();
    let text = error_chain(&e.without_url());
    if connect {
        SmsError::Unreachable(text)
    } else {
        SmsError::NoAnswer(text)
    }
}

/// A phone number as logs show it: the first three and last four digits (`138****8000`).
pub fn masked(phone: &str) -> String {
    match (phone.get(..3), phone.get(phone.len().saturating_sub(4)..)) {
        (Some(head), Some(tail)) if phone.len() > 7 => format!("{head}****{tail}"),
        _ => "****".to_owned(),
    }
}

/// An error and its causes on one line (reqwest's own message omits the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_masked_in_logs() {
        assert_eq!(masked("13800138000"), "138****8000");
        assert_eq!(masked("1380"), "****");
    }

    const MESSAGE: Message<'static> = Message {
        phone_numbers: "13800138000",
        sign_name: "s",
        template_code: "SMS_1",
        template_param: r#"{"code":"123456"}"#,
    };

    fn settings(end_point: &str) -> Settings {
        Settings {
            end_point: end_point.into(),
            access_key_id: "LTAI-id".into(),
            access_key_secret: SecretString::from("the-secret"),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_bare_host_is_reached_over_https_and_a_url_as_given() {
        let c = AlibabaSms::new(&settings("dysmsapi.aliyuncs.com")).unwrap();
        assert_eq!(c.base, "https://dysmsapi.aliyuncs.com");
        assert_eq!(c.host, "dysmsapi.aliyuncs.com");
        let c = AlibabaSms::new(&settings("http://127.0.0.1:18080/")).unwrap();
        assert_eq!(c.base, "http://127.0.0.1:18080");
        assert_eq!(c.host, "127.0.0.1:18080");
    }

    #[test]
    fn an_endpoint_is_an_https_host_or_a_loopback_double() {
        for refused in [
            "https://dysmsapi.aliyuncs.com/sms",
            "https://dysmsapi.aliyuncs.com/?a=b",
            "http://dysmsapi.aliyuncs.com",
            "http://10.0.0.1:8080",
        ] {
            assert!(
                matches!(
                    AlibabaSms::new(&settings(refused)),
                    Err(SmsError::Settings(_))
                ),
                "{refused}"
            );
        }
        for accepted in [
            "http://localhost:1",
            "http://[::1]:1",
            "https://example.com:8443",
        ] {
            assert!(AlibabaSms::new(&settings(accepted)).is_ok(), "{accepted}");
        }
    }

    #[test]
    fn keys_are_required_and_the_secret_never_printed() {
        let mut s = settings("dysmsapi.aliyuncs.com");
        s.access_key_secret = SecretString::from("");
        assert!(matches!(AlibabaSms::new(&s), Err(SmsError::Settings(_))));
        let c = AlibabaSms::new(&settings("dysmsapi.aliyuncs.com")).unwrap();
        assert!(!format!("{c:?}").contains("the-secret"));
        assert!(!format!("{:?}", settings("x")).contains("the-secret"));
    }

    #[tokio::test]
    async fn a_silent_endpoint_may_have_sent() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let mut s = settings(&format!("http://127.0.0.1:{port}"));
        s.timeout = Duration::from_millis(300);
        let c = AlibabaSms::new(&s).unwrap();
        match c.send(&MESSAGE).await {
            Err(e @ SmsError::NoAnswer(_)) => {
                assert!(!e.surely_not_sent());
                assert!(!e.to_string().contains("13800138000"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        held.abort();
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let c = AlibabaSms::new(&settings(&format!("http://127.0.0.1:{port}"))).unwrap();
        match c.send(&MESSAGE).await {
            Err(e @ SmsError::Unreachable(_)) => {
                assert!(e.surely_not_sent());
                // The URL (number, code) is not in the error.
                let text = e.to_string();
                assert!(
                    !text.contains("13800138000") && !text.contains("123456"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
