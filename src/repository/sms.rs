//! SMS providers (the original's `NewAlibabaSmsClient` + `SendCode`): Alibaba Cloud `SendSms`
//! in production, and a provider that only logs, for development. Which one the module gets is
//! `sms.provider`.

use async_trait::async_trait;
use goex_metrics::CallMetrics;
use goex_sms::{AlibabaSms, Message, SmsError};
use shaku::{Component, Interface};
use slog::Logger;

use crate::meta::config::AlibabaSmsCodeConfig;

/// Sends verification codes.
#[async_trait]
pub trait SmsSender: Interface {
    /// `alibaba` or `log`.
    fn provider(&self) -> &'static str;
    /// Sends `code` to `phone` (once: a failed send is not retried, it may have arrived).
    ///
    /// # Errors
    /// The provider refused the message, could not be reached, or answered nonsense.
    async fn send_code(&self, phone: &str, code: &str) -> Result<(), SmsError>;
}

/// [`SmsSender`] over Alibaba Cloud: the template gets `{"code":"123456"}`, as the original's.
#[derive(Component)]
#[shaku(interface = SmsSender)]
pub struct AlibabaSmsSender {
    /// The client; `Err` when `alibaba_sms.*` cannot make one (every send fails with it, the
    /// app still starts).
    client: std::sync::Arc<Result<AlibabaSms, String>>,
    /// `alibaba_sms_code.*`: the approved signature and template.
    code: AlibabaSmsCodeConfig,
    /// Latency and failures, when metrics are on.
    metrics: Option<CallMetrics>,
    /// A refused send is logged with the provider's code and request id.
    logger: Logger,
    /// A span per send of a sampled request (never the number or the code).
    tracing: goex_tracing::Tracing,
}

#[async_trait]
impl SmsSender for AlibabaSmsSender {
    fn provider(&self) -> &'static str {
        "alibaba"
    }

    async fn send_code(&self, phone: &str, code: &str) -> Result<(), SmsError> {
        let client = self
            .client
            .as_ref()
            .as_ref()
            .map_err(|e| SmsError::Settings(e.clone()))?;
        let template_param = serde_json::json!({ "code": code }).to_string();
        let message = Message {
            phone_numbers: phone,
            // Trimmed: an approved name pasted with a stray space would be refused.
            sign_name: self.code.sign_name.trim(),
            template_code: self.code.template_code.trim(),
            template_param: &template_param,
        };
        let send =
            goex_metrics::timed(self.metrics.as_ref(), SmsError::kind, client.send(&message));
        let describe = |span: &mut goex_tracing::Span| {
            span.rename("alibaba_sms SendSms".to_owned());
            span.set_attributes([
                goex_tracing::KeyValue::new("rpc.system", "alibaba_cloud"),
                goex_tracing::KeyValue::new("rpc.service", "Dysmsapi"),
                goex_tracing::KeyValue::new("rpc.method", "SendSms"),
            ]);
            span.set_server(client.server());
        };
        let sent = self
            .tracing
            .traced("sms", describe, SmsError::kind, send)
            .await;
        match &sent {
            Ok(receipt) => slog::info!(self.logger, "sms sent";
                "provider" => "alibaba", "biz_id" => &receipt.biz_id,
                "request_id" => &receipt.request_id),
            Err(e) => {
                slog::warn!(self.logger, "sms not sent"; "provider" => "alibaba", "error" => %e)
            }
        }
        sent.map(drop)
    }
}

/// [`SmsSender`] for development (`sms.provider: log`): nothing is sent; the code is logged at
/// info so a developer can sign in. Refused in the prod profile.
#[derive(Component)]
#[shaku(interface = SmsSender)]
pub struct LogSmsSender {
    logger: Logger,
    metrics: Option<CallMetrics>,
}

#[async_trait]
impl SmsSender for LogSmsSender {
    fn provider(&self) -> &'static str {
        "log"
    }

    async fn send_code(&self, phone: &str, code: &str) -> Result<(), SmsError> {
        let logged = async {
            slog::info!(self.logger, "sms code (log provider: not sent)";
                "phone" => goex_sms::masked(phone), "code" => code);
            Ok(())
        };
        goex_metrics::timed(self.metrics.as_ref(), SmsError::kind, logged).await
    }
}

impl LogSmsSender {
    /// The log provider writing to `logger`.
    pub fn new(logger: Logger, metrics: Option<CallMetrics>) -> Self {
        Self { logger, metrics }
    }
}
