//! `/sms/*` (the original's `SendCode` route): sending verification codes (docs/sms.md).

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse};
use async_trait::async_trait;
use serde::Serialize;
use shaku::{Component, HasComponent, Interface, ModuleInterface};
use utoipa::ToSchema;

use crate::model::forms::SendCodeForm;
use crate::service::error::ServiceError;
use crate::service::sms::{SentCode, SmsService};
use crate::web::client_addr::{client_bucket, client_network};
use crate::web::extract::ValidatedBody;
use crate::web::inject::Inject;
use crate::web::routes::Routes;

/// The SMS controller.
#[async_trait(?Send)]
pub trait SmsController: Interface {
    /// `POST /sms/send-code`: sends a code to the form's phone for the client of `req` (its
    /// address bucket and network, each held to its allowance), and answers when it expires
    /// and when another may be sent.
    ///
    /// # Errors
    /// As the service.
    async fn send_code(
        &self,
        req: &HttpRequest,
        form: SendCodeForm,
    ) -> Result<HttpResponse, ServiceError>;
}

/// [`SmsController`] over the SMS service.
#[derive(Component)]
#[shaku(interface = SmsController)]
pub struct SmsControllerImpl {
    #[shaku(inject)]
    sms: Arc<dyn SmsService>,
}

#[async_trait(?Send)]
impl SmsController for SmsControllerImpl {
    async fn send_code(
        &self,
        req: &HttpRequest,
        form: SendCodeForm,
    ) -> Result<HttpResponse, ServiceError> {
        let sent: SentCode = self
            .sms
            .send_code(&form.phone, &client_bucket(req), &client_network(req))
            .await?;
        Ok(HttpResponse::Ok().json(CodeSentResponse {
            data: CodeSent {
                message: "OK",
                expires_in: sent.expires_in,
                resend_after: sent.resend_after,
            },
        }))
    }
}

/// Registers `/sms/*`.
pub fn routes<M>(routes: &mut Routes)
where
    M: ModuleInterface + HasComponent<dyn SmsController> + ?Sized,
{
    use goex_errors::{ERR_DIAL, ERR_SMS_SEND, ERR_TOO_MANY_REQUESTS};
    routes.add(
        __path_send_code,
        &[ERR_SMS_SEND, ERR_TOO_MANY_REQUESTS, ERR_DIAL],
        send_code::<M>,
    );
}

/// `{"data": {"message": "OK", "expires_in", "resend_after"}}`.
#[derive(Serialize, ToSchema)]
struct CodeSentResponse {
    data: CodeSent,
}

#[derive(Serialize, ToSchema)]
struct CodeSent {
    /// `OK`.
    #[schema(pattern = "^OK$")]
    message: &'static str,
    /// Seconds the code is good for (`sms.code_ttl`).
    expires_in: u64,
    /// Seconds before another code can be sent to this phone (`sms.resend_interval`).
    resend_after: u64,
}

/// Sends a six-digit code to the phone, for `POST /auth/login_sms`. The code is never in the
/// answer (the original returned it). One code per phone per `sms.resend_interval`,
/// `sms.max_per_phone` per `sms.phone_window`, `sms.max_per_address` per
/// `sms.address_window` (429 / 10008); a provider refusal is 502 / 10006.
#[utoipa::path(
    post,
    path = "/sms/send-code",
    tag = "sms",
    operation_id = "send_code",
    request_body(content(
        (SendCodeForm = "application/json"),
        (SendCodeForm = "application/x-www-form-urlencoded"),
    )),
    responses((status = 200, description = "The code was sent.", body = CodeSentResponse)),
)]
async fn send_code<M>(
    req: HttpRequest,
    controller: Inject<M, dyn SmsController>,
    ValidatedBody(form): ValidatedBody<SendCodeForm>,
) -> Result<HttpResponse, ServiceError>
where
    M: ModuleInterface + HasComponent<dyn SmsController> + ?Sized,
{
    controller.send_code(&req, form).await
}
