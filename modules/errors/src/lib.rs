//! The unified error codes of go_example (the original's `errorAssets`) and the error envelope
//! every transport renders them in.
//!
//! The envelope keeps the original's wire shape, including its quirk of sending `code` and `level`
//! as JSON strings (`json:"code,string"` in Go), so clients written against the Go service keep
//! working: `{"error":{"code":"10000","level":"1","message":"参数错误","popup_title":"","popup_content":""}}`.
//! Messages exist in Chinese (the original's text, the default) and English, chosen per request.

use serde::Serialize;

/// How a client should present the error (the original's `Level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// A short toast with `message` (the original's `LevelToast`).
    Toast = 1,
    /// A dialog with `popup_title` and `popup_content` (the original's `LevelPopup`).
    Popup = 2,
}

/// The language an error message is rendered in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    /// Simplified Chinese, the original's language and the default.
    #[default]
    ZhCn,
    /// English.
    En,
}

impl Lang {
    /// Picks the language from an `Accept-Language` header value: the supported language with the
    /// highest quality wins; ties go to the one listed first; nothing supported means Chinese.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else if tag == "zh" || tag.starts_with("zh-") {
                Lang::ZhCn
            } else {
                continue;
            };
            if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, lang));
            }
        }
        best.map(|(_, lang)| lang).unwrap_or_default()
    }
}

/// One documented error code: its number, HTTP status and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode {
    /// The business code sent to clients.
    pub code: u32,
    /// The HTTP status the code is sent with.
    pub status: u16,
    /// The original's Chinese message.
    pub zh: &'static str,
    /// The English message.
    pub en: &'static str,
}

impl ErrorCode {
    const fn new(code: u32, status: u16, zh: &'static str, en: &'static str) -> Self {
        Self {
            code,
            status,
            zh,
            en,
        }
    }

    /// The message in `lang`.
    pub fn message(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::ZhCn => self.zh,
            Lang::En => self.en,
        }
    }

    /// The toast envelope (the original's `ToastError()`), with an optional detail such as the
    /// name of the offending field appended to the message.
    pub fn toast(&self, lang: Lang, detail: Option<&str>) -> Envelope {
        let base = self.message(lang);
        let message = match detail {
            Some(d) if !d.is_empty() => format!("{base}: {d}"),
            _ => base.to_owned(),
        };
        Envelope {
            error: EnvelopeBody {
                code: self.code.to_string(),
                level: (Level::Toast as u8).to_string(),
                message,
                popup_title: String::new(),
                popup_content: String::new(),
                refresh_url: None,
                request_id: None,
                trace_id: None,
                details: None,
            },
        }
    }

    /// The popup envelope (the original's `PopupError()`).
    pub fn popup(&self, title: &str, content: &str) -> Envelope {
        Envelope {
            error: EnvelopeBody {
                code: self.code.to_string(),
                level: (Level::Popup as u8).to_string(),
                message: String::new(),
                popup_title: title.to_owned(),
                popup_content: content.to_owned(),
                refresh_url: None,
                request_id: None,
                trace_id: None,
                details: None,
            },
        }
    }
}

/// The wire form `{"error":{...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = ErrorEnvelope)]
pub struct Envelope {
    /// The error itself.
    pub error: EnvelopeBody,
}

/// The inside of the envelope, field for field the original's `error` struct.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = ErrorBody)]
pub struct EnvelopeBody {
    /// The business code, as a string (the original's `json:"code,string"`).
    #[schema(pattern = "^[0-9]{5}$")]
    pub code: String,
    /// `"1"` toast or `"2"` popup.
    #[schema(pattern = "^[12]$")]
    pub level: String,
    /// The toast text.
    pub message: String,
    /// The dialog title (level 2).
    pub popup_title: String,
    /// The dialog text (level 2).
    pub popup_content: String,
    /// Where to get a new access token (code 20002 only, as the original's `refresh_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_url: Option<String>,
    /// The id of the request that failed (its `X-Request-Id`), for a user to quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The trace the failed request belongs to (32 hex digits), when tracing is on: the key
    /// to find its spans in Jaeger or Tempo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub trace_id: Option<String>,
    /// Structured detail some codes carry (30001: the refused import's report, its bad rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

impl Envelope {
    /// Serialises the envelope; it holds only strings, so this cannot fail.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

// The original's codes (internal/lib/errorAssets/error_list.go), with real HTTP statuses instead
// of the original's blanket 200.

/// 10000 参数错误: a parameter or body failed to parse or validate.
pub const ERR_PARAM: ErrorCode = ErrorCode::new(10000, 400, "参数错误", "Invalid parameters");
/// 10001 系统错误: an unexpected server-side failure.
pub const ERR_SYSTEM: ErrorCode = ErrorCode::new(10001, 500, "系统错误", "System error");
/// 10002 证书错误: a key or certificate could not be loaded or used.
pub const ERR_CERT: ErrorCode = ErrorCode::new(10002, 500, "证书错误", "Certificate error");
/// 10003 调用方法出错: a downstream call failed.
pub const ERR_CALL_FUNC: ErrorCode =
    ErrorCode::new(10003, 502, "调用方法出错", "Downstream call failed");
/// 10004 连接错误: a dependency (database, cache, RPC peer) cannot be reached.
pub const ERR_DIAL: ErrorCode = ErrorCode::new(10004, 503, "连接错误", "Connection error");

/// 10006 短信发送失败: the SMS provider refused the message or could not be reached.
pub const ERR_SMS_SEND: ErrorCode =
    ErrorCode::new(10006, 502, "短信发送失败", "Sending the SMS failed");

/// 20000 用户名或密码不正确.
pub const ERR_LOGIN: ErrorCode = ErrorCode::new(
    20000,
    401,
    "用户名或密码不正确",
    "Incorrect username or password",
);
/// 20001 账号已在其他设备登录.
pub const ERR_LOGIN_REMOTE: ErrorCode = ErrorCode::new(
    20001,
    401,
    "账号已在其他设备登录",
    "The account has signed in on another device",
);
/// 20002 当前登录已失效.
pub const ERR_LOGIN_FAILURE: ErrorCode = ErrorCode::new(
    20002,
    401,
    "当前登录已失效，请尝试请求refresh_token获取新令牌",
    "The login has expired; request /auth/refresh_token for a new token",
);
/// 20003 刷新令牌失败.
pub const ERR_REFRESH_TOKEN: ErrorCode = ErrorCode::new(
    20003,
    401,
    "刷新令牌失败，请重新登录",
    "Refreshing the token failed; please sign in again",
);

/// 20004 验证码错误或已失效: an SMS login with a wrong, expired or spent code (new in
/// go_example-rs: the original never checked codes).
pub const ERR_VERIFY_CODE: ErrorCode = ErrorCode::new(
    20004,
    401,
    "验证码错误或已失效",
    "The verification code is wrong or has expired",
);

/// 30000 导出失败.
pub const ERR_EXPORT: ErrorCode = ErrorCode::new(30000, 500, "导出失败", "Export failed");
/// 30001 导入失败.
pub const ERR_IMPORT: ErrorCode = ErrorCode::new(30001, 400, "导入失败", "Import failed");
/// 30002 文件解析失败.
pub const ERR_FILE_PARSE: ErrorCode =
    ErrorCode::new(30002, 400, "文件解析失败", "The file could not be parsed");

// Codes new in go_example-rs (docs/errors.md), for statuses the original answered with gin's
// plain-text defaults.

/// 10005 资源不存在: no route or no record matches.
pub const ERR_NOT_FOUND: ErrorCode = ErrorCode::new(10005, 404, "资源不存在", "Not found");
/// 10014 请求方法不允许: the route exists but not for this method. (10006 until the SMS feature
/// took the original's 10006 back.)
pub const ERR_METHOD_NOT_ALLOWED: ErrorCode =
    ErrorCode::new(10014, 405, "请求方法不允许", "Method not allowed");
/// 10007 请求体过大: the body exceeds `server.http.max_body_size`.
pub const ERR_PAYLOAD_TOO_LARGE: ErrorCode =
    ErrorCode::new(10007, 413, "请求体过大", "Request body too large");
/// 10008 请求过于频繁: a rate limit was hit.
pub const ERR_TOO_MANY_REQUESTS: ErrorCode = ErrorCode::new(
    10008,
    429,
    "请求过于频繁，请稍后再试",
    "Too many requests; try again later",
);
/// 10009 服务暂不可用: the service itself is not ready (starting or shutting down).
pub const ERR_UNAVAILABLE: ErrorCode =
    ErrorCode::new(10009, 503, "服务暂不可用", "Service unavailable");
/// 10010 未登录或令牌无效: authentication is missing or malformed.
pub const ERR_UNAUTHORIZED: ErrorCode = ErrorCode::new(
    10010,
    401,
    "未登录或令牌无效",
    "Not signed in or the token is invalid",
);
/// 10011 无权访问: authenticated but not allowed.
pub const ERR_FORBIDDEN: ErrorCode = ErrorCode::new(10011, 403, "无权访问", "Forbidden");
/// 10012 请求超时: the request body did not arrive within `server.http.body_timeout`.
pub const ERR_REQUEST_TIMEOUT: ErrorCode =
    ErrorCode::new(10012, 408, "请求超时", "Request timeout");
/// 10013 资源已存在: a record with the same unique key exists (a taken username).
pub const ERR_CONFLICT: ErrorCode = ErrorCode::new(10013, 409, "资源已存在", "Already exists");
/// 10015 服务繁忙: the process is overloaded and refused the request at once, without doing
/// its work (adaptive load shedding, docs/overload.md); retry after `Retry-After`.
pub const ERR_SERVER_BUSY: ErrorCode = ErrorCode::new(10015, 503, "服务繁忙", "Server busy");

/// Every code, for documentation checks and clients that want the table.
pub const ALL: &[ErrorCode] = &[
    ERR_PARAM,
    ERR_SYSTEM,
    ERR_CERT,
    ERR_CALL_FUNC,
    ERR_DIAL,
    ERR_SMS_SEND,
    ERR_NOT_FOUND,
    ERR_METHOD_NOT_ALLOWED,
    ERR_PAYLOAD_TOO_LARGE,
    ERR_TOO_MANY_REQUESTS,
    ERR_UNAVAILABLE,
    ERR_UNAUTHORIZED,
    ERR_FORBIDDEN,
    ERR_REQUEST_TIMEOUT,
    ERR_CONFLICT,
    ERR_SERVER_BUSY,
    ERR_LOGIN,
    ERR_LOGIN_REMOTE,
    ERR_LOGIN_FAILURE,
    ERR_REFRESH_TOKEN,
    ERR_VERIFY_CODE,
    ERR_EXPORT,
    ERR_IMPORT,
    ERR_FILE_PARSE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_statuses_are_errors() {
        let mut seen = std::collections::HashSet::new();
        for c in ALL {
            assert!(seen.insert(c.code), "duplicate code {}", c.code);
            assert!(
                (400..600).contains(&c.status),
                "{} has status {}",
                c.code,
                c.status
            );
        }
    }

    #[test]
    fn toast_keeps_the_original_wire_shape() {
        let json = ERR_PARAM.toast(Lang::ZhCn, None).to_json();
        assert_eq!(
            json,
            r#"{"error":{"code":"10000","level":"1","message":"参数错误","popup_title":"","popup_content":""}}"#
        );
        let en = ERR_PARAM.toast(Lang::En, Some("username")).to_json();
        assert!(
            en.contains(r#""message":"Invalid parameters: username""#),
            "{en}"
        );
    }

    #[test]
    fn popup_sets_level_two() {
        let e = ERR_SYSTEM.popup("t", "c");
        assert_eq!(e.error.level, "2");
        assert_eq!(e.error.popup_title, "t");
    }

    #[test]
    fn accept_language_picks_by_quality() {
        assert_eq!(Lang::from_accept_language(""), Lang::ZhCn);
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Lang::En);
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Lang::ZhCn
        );
        assert_eq!(Lang::from_accept_language("fr, en;q=0.5"), Lang::En);
        assert_eq!(Lang::from_accept_language("zh;q=0.2, EN;q=0.7"), Lang::En);
        assert_eq!(Lang::from_accept_language("en;q=0"), Lang::ZhCn);
        assert_eq!(Lang::from_accept_language("de"), Lang::ZhCn);
    }
}
