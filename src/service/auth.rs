//! Registration, login, tokens and single sign-on (the original's JWT登录验证, 单点登录), fixed:
//! argon2id password hashes, no user row inside tokens, keys parsed once, algorithms pinned,
//! refresh tokens rotated with reuse detection, throttled logins.
//!
//! Under concurrency (issue 8): a login reserves its throttle slots before its password is
//! checked, so parallel guesses cannot all pass one check; a refresh is one compare-and-swap on
//! the login record and signs its tokens only after the swap, so one refresh token is good once
//! and a refresh never resurrects a login that ended; password hashing runs in bounded slots.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use async_trait::async_trait;
use goex_cache::ExpiringCache;
use goex_jwt::{JwtError, KeyRing};
use serde::{Deserialize, Serialize};
use shaku::{Component, Interface};
use slog::Logger;

use crate::meta::config::{AuthConfig, SmsConfig};
use crate::model::forms::{LoginForm, RegisterForm, SmsLoginForm};
use crate::model::role::{Role, Roles};
use crate::model::user::{NewUser, UserView};
use crate::repository::mysql::role::RoleRepository;
use crate::repository::mysql::user::UserRepository;
use crate::repository::redis::sms_code::{CodeCheck, VerificationCodeRepository};
use crate::repository::redis::throttle::LoginThrottleRepository;
use crate::repository::redis::token::{LoginCheck, Rotation, TokenRepository};
use crate::service::error::ServiceError;
use crate::service::password::PasswordHasher;

/// What every token carries: no password, no hash, no user row (the original put the whole row
/// in the token).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The login name.
    pub name: String,
    /// `access` or `refresh`.
    pub typ: String,
    /// This token's id.
    pub jti: String,
    /// The login (session) the token belongs to.
    pub sid: String,
    /// Issued at (seconds).
    pub iat: u64,
    /// Expires at (seconds).
    pub exp: u64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user's roles when the login started (a change ends the login, so they are never
    /// older than it). Absent in tokens of earlier builds: no role.
    #[serde(default)]
    pub roles: Roles,
}

/// A pair of tokens as the original returned them: `Bearer <jwt>`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    /// For `Authorization` on protected routes.
    pub access_token: String,
    /// For `GET /auth/refresh_token`.
    pub refresh_token: String,
}

/// The signed-in user of a request.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AuthUser {
    /// User id.
    pub id: i64,
    /// Login name.
    #[schema(value_type = String)]
    pub username: Arc<str>,
    /// The login (session) the request's token belongs to; never sent to clients.
    #[serde(skip)]
    #[schema(ignore)]
    pub sid: Arc<str>,
    /// The user's roles (`admin`), as the login was granted them.
    #[schema(value_type = Vec<String>)]
    pub roles: Roles,
}

impl AuthUser {
    /// Whether the user has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(role)
    }
}

/// The auth use cases.
#[async_trait]
pub trait AuthService: Interface {
    /// Creates a user with an argon2id hash of the password (throttled per `client`, the
    /// client address bucket).
    ///
    /// # Errors
    /// [`ServiceError::Conflict`] when the username is taken, [`ServiceError::TooManyRequests`].
    async fn register(&self, form: RegisterForm, client: &str) -> Result<UserView, ServiceError>;
    /// Checks credentials (throttled per username and per `client`) and starts a login,
    /// replacing any earlier one (single sign-on).
    ///
    /// # Errors
    /// [`ServiceError::LoginFailed`], [`ServiceError::TooManyRequests`].
    async fn login(&self, form: LoginForm, client: &str) -> Result<TokenPair, ServiceError>;
    /// Signs in with the code sent to a phone (`POST /auth/login_sms`): the code is spent by
    /// the first right try, throttled like a password login per phone and per `client`, and
    /// the phone's user is created on first use when policy allows.
    ///
    /// # Errors
    /// [`ServiceError::WrongCode`], [`ServiceError::TooManyRequests`],
    /// [`ServiceError::NotFound`] (no user and no registering).
    async fn login_sms(&self, form: SmsLoginForm, client: &str) -> Result<TokenPair, ServiceError>;
    /// Checks an access token against the keys and the user's latest login.
    ///
    /// # Errors
    /// [`ServiceError::LoginExpired`], [`ServiceError::LoginElsewhere`],
    /// [`ServiceError::Unauthorized`].
    async fn authenticate(&self, access_token: &str) -> Result<AuthUser, ServiceError>;
    /// Rotates a refresh token into a new pair; a refresh token used twice ends the login.
    /// `client` is logged when a reuse is detected.
    ///
    /// # Errors
    /// [`ServiceError::RefreshFailed`], [`ServiceError::LoginElsewhere`].
    async fn refresh(&self, refresh_token: &str, client: &str) -> Result<TokenPair, ServiceError>;
    /// Ends the user's login (only the request's own: a newer login stays).
    ///
    /// # Errors
    /// When the token store cannot be reached.
    async fn logout(&self, user: &AuthUser) -> Result<(), ServiceError>;
}

/// What a verified access token says, remembered until it expires.
#[derive(Clone, Debug)]
pub struct VerifiedToken {
    id: i64,
    sid: Arc<str>,
    name: Arc<str>,
    roles: Roles,
}

/// [`AuthService`] over the user, token and throttle repositories and the password hasher.
#[derive(Component)]
#[shaku(interface = AuthService)]
pub struct AuthServiceImpl {
    #[shaku(inject)]
    users: Arc<dyn UserRepository>,
    #[shaku(inject)]
    tokens: Arc<dyn TokenRepository>,
    #[shaku(inject)]
    throttle: Arc<dyn LoginThrottleRepository>,
    #[shaku(inject)]
    passwords: Arc<dyn PasswordHasher>,
    #[shaku(inject)]
    codes: Arc<dyn VerificationCodeRepository>,
    #[shaku(inject)]
    roles: Arc<dyn RoleRepository>,
    /// The signing and verifying keys, parsed once at start.
    keys: Arc<KeyRing>,
    /// `auth.*`: token lifetimes, throttling limits, as configured.
    auth: AuthConfig,
    /// `sms.*`: how many wrong tries a code allows and whether an SMS login registers.
    sms: SmsConfig,
    /// Access tokens whose signature and claims were verified and whose login was current,
    /// until they expire: an RSA verification costs far more than the rest of a request.
    /// Revocation is unaffected: the login record is checked on every request. Bounded, with
    /// O(1) eviction (moka).
    verified: Arc<ExpiringCache<String, VerifiedToken>>,
    /// Security events (failed logins, throttling, refresh reuse) at warn.
    logger: Logger,
    /// Login outcomes and throttle hits, when metrics are on.
    metrics: Option<goex_metrics::Metrics>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const ACCESS: &str = "access";
const REFRESH: &str = "refresh";
const BEARER: &str = "Bearer ";

/// The token ids of a pair, chosen before anything is recorded or signed.
struct PairIds {
    access: String,
    refresh: String,
}

impl PairIds {
    fn new() -> Self {
        Self {
            access: random_id(),
            refresh: random_id(),
        }
    }
}

impl AuthServiceImpl {
    /// Signs a pair for login `sid` with the chosen ids.
    fn sign_pair(
        &self,
        user_id: i64,
        username: &str,
        roles: Roles,
        sid: &str,
        ids: &PairIds,
    ) -> Result<TokenPair, ServiceError> {
        let iat = now();
        let claims = |typ: &str, jti: &str, ttl: Duration| Claims {
            sub: user_id.to_string(),
            name: username.to_owned(),
            typ: typ.to_owned(),
            jti: jti.to_owned(),
            sid: sid.to_owned(),
            iat,
            exp: iat + ttl.as_secs(),
            iss: self.keys.issuer().to_owned(),
            aud: self.keys.audience().to_owned(),
            roles,
        };
        let sign = |c: &Claims| {
            self.keys
                .sign(c)
                .map_err(|e| ServiceError::Internal(Box::new(e)))
        };
        Ok(TokenPair {
            access_token: format!(
                "{BEARER}{}",
                sign(&claims(ACCESS, &ids.access, self.auth.access_ttl))?
            ),
            refresh_token: format!(
                "{BEARER}{}",
                sign(&claims(REFRESH, &ids.refresh, self.auth.refresh_ttl))?
            ),
        })
    }

    /// Reserves one attempt on every subject, in order, refusing (and giving back what it
    /// reserved) as soon as one is over `limit`.
    async fn admit(
        &self,
        subjects: &[String],
        limit: i64,
        window: Duration,
        client: &str,
        throttle: &'static str,
    ) -> Result<(), ServiceError> {
        for (i, subject) in subjects.iter().enumerate() {
            let count = match self.throttle.reserve(subject, window).await {
                Ok(count) => count,
                Err(e) => {
                    self.release(&subjects[..i]).await;
                    return Err(e.into());
                }
            };
            if count > limit {
                self.release(&subjects[..=i]).await;
                slog::warn!(self.logger, "throttled";
                    "subject" => loggable(subject), "client" => client, "limit" => limit);
                if let Some(metrics) = &self.metrics {
                    metrics.throttled(throttle);
                }
                return Err(ServiceError::TooManyRequests);
            }
        }
        Ok(())
    }

    /// Gives reserved attempts back (best effort: a failure only leaves the count higher).
    async fn release(&self, subjects: &[String]) {
        for subject in subjects {
            if let Err(e) = self.throttle.release(subject).await {
                slog::warn!(self.logger, "throttle slot not released"; "subject" => loggable(subject), "error" => %e);
            }
        }
    }

    /// Starts a login of `user` (ending any other: single sign-on) and signs its pair.
    ///
    /// The roles are read after the login record is written: a role change writes the role,
    /// then ends the user's logins, so either this read sees the change or the change ends
    /// this login. A token never carries a role its login outlived.
    async fn start_login(&self, user_id: i64, username: &str) -> Result<TokenPair, ServiceError> {
        let sid = random_id();
        let ids = PairIds::new();
        self.tokens
            .start(user_id, &sid, &ids.refresh, self.auth.refresh_ttl)
            .await?;
        let roles = self.roles.roles_of(user_id).await?;
        self.sign_pair(user_id, username, roles, &sid, &ids)
    }

    /// The user an accepted SMS code signs in: the phone's, or a new one named by the phone
    /// (or, when that name is someone else's, a random one).
    async fn phone_user(&self, phone: &str) -> Result<crate::model::user::User, ServiceError> {
        if !self.sms.register_on_login {
            return self
                .users
                .find_by_phone(phone)
                .await?
                .ok_or(ServiceError::NotFound);
        }
        // Never the number: names are shown to other users (the export) and put in tokens.
        let names = [random_username(), random_username(), random_username()];
        Ok(self.users.find_or_create_by_phone(phone, &names).await?)
    }

    async fn check_credentials(
        &self,
        form: LoginForm,
    ) -> Result<crate::model::user::User, ServiceError> {
        let user = self.users.find_by_username(&form.username).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let ok = self.passwords.verify(form.password, hash).await?;
        user.filter(|_| ok).ok_or(ServiceError::LoginFailed)
    }

    /// The claims of a signature-verified access token.
    fn verify_access(&self, access_token: &str) -> Result<(VerifiedToken, u64), ServiceError> {
        let claims: Claims = self.keys.verify(access_token).map_err(|e| match e {
            JwtError::Expired => ServiceError::LoginExpired,
            other => ServiceError::Unauthorized(other.to_string()),
        })?;
        if claims.typ != ACCESS {
            return Err(ServiceError::Unauthorized("not an access token".into()));
        }
        let id: i64 = claims
            .sub
            .parse()
            .map_err(|_| ServiceError::Unauthorized("bad subject".into()))?;
        Ok((
            VerifiedToken {
                id,
                sid: claims.sid.into(),
                name: claims.name.into(),
                roles: claims.roles,
            },
            claims.exp,
        ))
    }
}

/// A throttle subject as logs show it: phone numbers masked.
fn loggable(subject: &str) -> String {
    match subject.strip_prefix("phone:") {
        Some(phone) => format!("phone:{}", goex_sms::masked(phone)),
        None => subject.to_owned(),
    }
}

/// `u` and 15 random letters and digits: a valid username nobody chose.
fn random_username() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 15];
    OsRng.fill_bytes(&mut bytes);
    std::iter::once('u')
        .chain(
            bytes
                .iter()
                .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char),
        )
        .collect()
}

/// A header value's text when it is visible ASCII (and tabs), as `HeaderValue::to_str` answers,
/// in a scan that vectorises: `to_str` tests byte by byte with an early exit, about 10
/// instructions a byte, and an access token is 700 bytes on every protected request and call.
pub fn header_text(bytes: &[u8]) -> Option<&str> {
    let invisible = bytes.iter().fold(false, |seen, &b| {
        seen | ((b < 0x20 && b != b'\t') || b >= 0x7f)
    });
    if invisible {
        return None;
    }
    // SAFETY: every byte is below 0x7f (checked above): ASCII, hence UTF-8. `from_utf8` would
    // scan the 700 bytes a second time.
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// Strips the `Bearer ` scheme (case-insensitively) the original's clients send.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

#[async_trait]
impl AuthService for AuthServiceImpl {
    async fn register(&self, form: RegisterForm, client: &str) -> Result<UserView, ServiceError> {
        let subject = [format!("register:{client}")];
        self.admit(
            &subject,
            self.auth.max_registrations,
            self.auth.registration_window,
            client,
            "registration",
        )
        .await?;
        // A taken name is refused before any hashing: it costs nothing to ask.
        let created = async {
            if self.users.find_by_username(&form.username).await?.is_some() {
                return Err(ServiceError::Conflict {
                    field: "username".into(),
                });
            }
            let hash = self.passwords.hash(form.password).await?;
            let user = self
                .users
                .create(NewUser {
                    username: &form.username,
                    password_hash: &hash,
                    gender: form.gender,
                })
                .await?;
            Ok(UserView::from(&user))
        }
        .await;
        // A registration that failed on our side does not count against the address; a taken
        // name does (it is how names would be enumerated).
        if matches!(
            created,
            Err(ServiceError::Unavailable { .. } | ServiceError::Internal(_))
        ) {
            self.release(&subject).await;
        }
        created
    }

    async fn login(&self, form: LoginForm, client: &str) -> Result<TokenPair, ServiceError> {
        let name = form.username.clone();
        // Address first: one address guessing across many names is held to the limit too.
        let subjects = [format!("ip:{client}"), format!("user:{name}")];
        let outcome = |what: &str| {
            if let Some(metrics) = &self.metrics {
                metrics.login(what);
            }
        };
        if let Err(e) = self
            .admit(
                &subjects,
                self.auth.max_failures,
                self.auth.failure_window,
                client,
                "login",
            )
            .await
        {
            outcome(if matches!(e, ServiceError::TooManyRequests) {
                "throttled"
            } else {
                "error"
            });
            return Err(e);
        }
        let user = match self.check_credentials(form).await {
            Ok(user) => user,
            Err(ServiceError::LoginFailed) => {
                // The reservations stay: they are the failures counted.
                slog::warn!(self.logger, "login failed"; "user" => name.as_str(), "client" => client);
                outcome("failure");
                return Err(ServiceError::LoginFailed);
            }
            Err(other) => {
                self.release(&subjects).await;
                outcome("error");
                return Err(other);
            }
        };
        // A success is no failure: give the slots back (not a reset, so guesses that others
        // made in parallel still count).
        self.release(&subjects).await;
        let pair = self.start_login(user.id, &user.username).await;
        outcome(if pair.is_ok() { "success" } else { "error" });
        pair
    }

    async fn login_sms(&self, form: SmsLoginForm, client: &str) -> Result<TokenPair, ServiceError> {
        let phone = form.phone;
        let subjects = [format!("ip:{client}"), format!("phone:{phone}")];
        let counted = |what: &str| {
            if let Some(metrics) = &self.metrics {
                metrics.sms_code_checked(what);
            }
        };
        self.admit(
            &subjects,
            self.auth.max_failures,
            self.auth.failure_window,
            client,
            "login_sms",
        )
        .await?;
        let check = match self
            .codes
            .check(&phone, &form.code, self.sms.max_attempts)
            .await
        {
            Ok(check) => check,
            Err(e) => {
                self.release(&subjects).await;
                return Err(e.into());
            }
        };
        let refused = match check {
            CodeCheck::Accepted => None,
            CodeCheck::Wrong { remaining } => {
                counted("wrong");
                Some(format!("wrong code; {remaining} tries left"))
            }
            CodeCheck::Exhausted => {
                counted("locked");
                Some("wrong code; no tries left: request a new code".to_owned())
            }
            CodeCheck::Missing => {
                counted("missing");
                Some("no valid code: request a new code".to_owned())
            }
        };
        if let Some(why) = refused {
            // The reservations stay: they are the failures counted.
            slog::warn!(self.logger, "sms login refused"; "phone" => goex_sms::masked(&phone), "client" => client, "why" => &why);
            return Err(ServiceError::WrongCode(why));
        }
        counted("accepted");
        self.release(&subjects).await;
        // The code is spent: whatever fails from here, a new code is needed.
        let user = self.phone_user(&phone).await?;
        self.start_login(user.id, &user.username).await
    }

    async fn authenticate(&self, access_token: &str) -> Result<AuthUser, ServiceError> {
        let (token, fresh) = match self.verified.get(access_token) {
            Some(token) => (token, None),
            None => {
                let (token, exp) = self.verify_access(access_token)?;
                (token, Some(exp))
            }
        };
        match self.tokens.check(token.id, &token.sid).await? {
            LoginCheck::Current => {}
            LoginCheck::Elsewhere => return Err(ServiceError::LoginElsewhere),
            LoginCheck::SignedOut => return Err(ServiceError::Unauthorized("signed out".into())),
        }
        if let Some(exp) = fresh {
            // Remembered only once it proved current, and never past its own validity.
            let valid_for =
                Duration::from_secs((exp + self.auth.leeway.as_secs()).saturating_sub(now()));
            self.verified.insert(
                access_token.to_owned(),
                token.clone(),
                valid_for.min(self.auth.verified_token_ttl),
            );
        }
        Ok(AuthUser {
            id: token.id,
            username: token.name,
            sid: token.sid,
            roles: token.roles,
        })
    }

    async fn refresh(&self, refresh_token: &str, client: &str) -> Result<TokenPair, ServiceError> {
        let claims: Claims = self
            .keys
            .verify(refresh_token)
            .map_err(|_| ServiceError::RefreshFailed("invalid"))?;
        if claims.typ != REFRESH {
            return Err(ServiceError::RefreshFailed("not a refresh token"));
        }
        let id: i64 = claims
            .sub
            .parse()
            .map_err(|_| ServiceError::RefreshFailed("bad subject"))?;
        let ids = PairIds::new();
        let rotation = self
            .tokens
            .rotate(
                id,
                &claims.sid,
                &claims.jti,
                &ids.refresh,
                self.auth.refresh_ttl,
            )
            .await?;
        match rotation {
            // Signed only now: a pair exists only for a refresh that won the swap.
            // The roles of the login's first pair: a role change ends the login instead.
            Rotation::Rotated => self.sign_pair(id, &claims.name, claims.roles, &claims.sid, &ids),
            Rotation::Superseded => Err(ServiceError::LoginElsewhere),
            Rotation::Reused => {
                // A spent refresh token came back: someone holds a copy. End this login (and
                // only this one).
                self.tokens.revoke(id, &claims.sid).await?;
                slog::warn!(self.logger, "refresh token reused; login revoked";
                    "user_id" => id, "user" => claims.name.as_str(), "client" => client);
                Err(ServiceError::RefreshFailed("reused"))
            }
            Rotation::SignedOut => Err(ServiceError::RefreshFailed("signed out")),
        }
    }

    async fn logout(&self, user: &AuthUser) -> Result<(), ServiceError> {
        self.tokens.revoke(user.id, &user.sid).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_accepts_what_to_str_accepts_byte_for_byte() {
        for b in 0..=255u8 {
            let bytes = [b'a', b, b'z'];
            if let Ok(value) = actix_web::http::header::HeaderValue::from_bytes(&bytes) {
                assert_eq!(header_text(&bytes), value.to_str().ok(), "byte {b:#04x}");
            }
            if let Ok(value) = http::HeaderValue::from_bytes(&bytes) {
                assert_eq!(header_text(&bytes), value.to_str().ok(), "byte {b:#04x}");
            }
        }
        let token = format!("Bearer {}", "e".repeat(700));
        assert_eq!(header_text(token.as_bytes()), Some(token.as_str()));
        assert_eq!(
            bearer(header_text(token.as_bytes()).unwrap()).map(str::len),
            Some(700)
        );
    }
}
