//! Registration, login, tokens and single sign-on (the original's JWT登录验证, 单点登录), fixed:
//! argon2id password hashes, no user row inside tokens, keys parsed once, algorithms pinned,
//! refresh tokens rotated with reuse detection, throttled logins.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use async_trait::async_trait;
use goex_cache::TtlMap;
use goex_jwt::{JwtError, KeyRing};
use serde::{Deserialize, Serialize};
use shaku::{Component, Interface};

use crate::model::forms::{LoginForm, RegisterForm};
use crate::model::user::{NewUser, UserView};
use crate::repository::mysql::user::UserRepository;
use crate::repository::redis::throttle::LoginThrottleRepository;
use crate::repository::redis::token::TokenRepository;
use crate::service::error::ServiceError;

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
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AuthUser {
    /// User id.
    pub id: i64,
    /// Login name.
    pub username: String,
}

/// Token lifetimes and throttling limits (`auth.*`).
#[derive(Clone, Debug)]
pub struct AuthPolicy {
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// Failures per username and per address before 429.
    pub max_failures: i64,
    /// Their window.
    pub failure_window: Duration,
    /// argon2id memory (KiB) and passes.
    pub argon2: (u32, u32),
    /// Clock skew tolerated on `exp`.
    pub leeway: Duration,
    /// How long a verified access token is remembered at most.
    pub verified_for: Duration,
}

/// The auth use cases.
#[async_trait]
pub trait AuthService: Interface {
    /// Creates a user with an argon2id hash of the password.
    ///
    /// # Errors
    /// [`ServiceError::Conflict`] when the username is taken.
    async fn register(&self, form: RegisterForm) -> Result<UserView, ServiceError>;
    /// Checks credentials (throttled per username and per `client`) and starts a login,
    /// replacing any earlier one (single sign-on).
    ///
    /// # Errors
    /// [`ServiceError::LoginFailed`], [`ServiceError::TooManyRequests`].
    async fn login(&self, form: LoginForm, client: &str) -> Result<TokenPair, ServiceError>;
    /// Checks an access token against the keys and the user's latest login.
    ///
    /// # Errors
    /// [`ServiceError::LoginExpired`], [`ServiceError::LoginElsewhere`],
    /// [`ServiceError::Unauthorized`].
    async fn authenticate(&self, access_token: &str) -> Result<AuthUser, ServiceError>;
    /// Rotates a refresh token into a new pair; a refresh token used twice ends the login.
    ///
    /// # Errors
    /// [`ServiceError::RefreshFailed`], [`ServiceError::LoginElsewhere`].
    async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, ServiceError>;
    /// Ends the user's login.
    ///
    /// # Errors
    /// When the token store cannot be reached.
    async fn logout(&self, user: &AuthUser) -> Result<(), ServiceError>;
}

/// [`AuthService`] over the user, token and throttle repositories.
#[derive(Component)]
#[shaku(interface = AuthService)]
pub struct AuthServiceImpl {
    #[shaku(inject)]
    users: Arc<dyn UserRepository>,
    #[shaku(inject)]
    tokens: Arc<dyn TokenRepository>,
    #[shaku(inject)]
    throttle: Arc<dyn LoginThrottleRepository>,
    /// The signing and verifying keys, parsed once at start.
    keys: Arc<KeyRing>,
    /// Lifetimes and limits.
    policy: AuthPolicy,
    /// A hash with the configured cost, verified against for unknown users (see `dummy_hash`).
    dummy_hash: String,
    /// Access tokens whose signature and claims were verified, until they expire: an RSA
    /// verification costs far more than the rest of a request. Revocation is unaffected: the
    /// login record is checked on every request.
    verified: Arc<TtlMap<String, Claims>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_id() -> String {
    use argon2::password_hash::rand_core::RngCore;
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const ACCESS: &str = "access";
const REFRESH: &str = "refresh";
const BEARER: &str = "Bearer ";

impl AuthServiceImpl {
    fn argon2(&self) -> Result<Argon2<'static>, ServiceError> {
        let (memory, passes) = self.policy.argon2;
        let params = Params::new(memory, passes, 1, None)
            .map_err(|e| ServiceError::Internal(e.to_string().into()))?;
        Ok(Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }

    /// Hashing is CPU-bound for tens of milliseconds: off the async workers.
    async fn hash(&self, password: String) -> Result<String, ServiceError> {
        let argon2 = self.argon2()?;
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .await
        .map_err(|e| ServiceError::Internal(Box::new(e)))?
        .map_err(|e| ServiceError::Internal(e.to_string().into()))
    }

    async fn verify_password(&self, password: String, hash: String) -> Result<bool, ServiceError> {
        let argon2 = self.argon2()?;
        tokio::task::spawn_blocking(move || match PasswordHash::new(&hash) {
            Ok(parsed) => argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        })
        .await
        .map_err(|e| ServiceError::Internal(Box::new(e)))
    }

    fn issue(
        &self,
        user_id: i64,
        username: &str,
        login: &str,
    ) -> Result<(TokenPair, String), ServiceError> {
        let iat = now();
        let claims = |typ: &str, ttl: Duration| Claims {
            sub: user_id.to_string(),
            name: username.to_owned(),
            typ: typ.to_owned(),
            jti: random_id(),
            sid: login.to_owned(),
            iat,
            exp: iat + ttl.as_secs(),
            iss: self.keys.issuer().to_owned(),
            aud: self.keys.audience().to_owned(),
        };
        let access = claims(ACCESS, self.policy.access_ttl);
        let refresh = claims(REFRESH, self.policy.refresh_ttl);
        let sign = |c: &Claims| {
            self.keys
                .sign(c)
                .map_err(|e| ServiceError::Internal(Box::new(e)))
        };
        let pair = TokenPair {
            access_token: format!("{BEARER}{}", sign(&access)?),
            refresh_token: format!("{BEARER}{}", sign(&refresh)?),
        };
        Ok((pair, refresh.jti))
    }

    async fn record_login(
        &self,
        user_id: i64,
        login: &str,
        refresh_jti: &str,
    ) -> Result<(), ServiceError> {
        self.tokens
            .save(
                user_id,
                &[("sid", login), ("refresh_jti", refresh_jti)],
                self.policy.refresh_ttl,
            )
            .await?;
        Ok(())
    }

    async fn throttled(&self, subjects: &[String]) -> Result<bool, ServiceError> {
        for subject in subjects {
            if self.throttle.failures(subject).await? >= self.policy.max_failures {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Strips the `Bearer ` scheme (case-insensitively) the original's clients send.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

#[async_trait]
impl AuthService for AuthServiceImpl {
    async fn register(&self, form: RegisterForm) -> Result<UserView, ServiceError> {
        let hash = self.hash(form.password).await?;
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

    async fn login(&self, form: LoginForm, client: &str) -> Result<TokenPair, ServiceError> {
        let subjects = [format!("user:{}", form.username), format!("ip:{client}")];
        if self.throttled(&subjects).await? {
            return Err(ServiceError::TooManyRequests);
        }
        let user = self.users.find_by_username(&form.username).await?;
        // Unknown users cost a full verification too, so timing does not tell who exists.
        let hash = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let ok = self.verify_password(form.password, hash).await? && user.is_some();
        let Some(user) = user.filter(|_| ok) else {
            for subject in &subjects {
                self.throttle
                    .record_failure(subject, self.policy.failure_window)
                    .await?;
            }
            return Err(ServiceError::LoginFailed);
        };
        let login = random_id();
        let (pair, refresh_jti) = self.issue(user.id, &user.username, &login)?;
        self.record_login(user.id, &login, &refresh_jti).await?;
        Ok(pair)
    }

    async fn authenticate(&self, access_token: &str) -> Result<AuthUser, ServiceError> {
        let claims = match self.verified.get(access_token) {
            Some(claims) => claims,
            None => {
                let claims: Claims = self.keys.verify(access_token).map_err(|e| match e {
                    JwtError::Expired => ServiceError::LoginExpired,
                    other => ServiceError::Unauthorized(other.to_string()),
                })?;
                // Remembered no longer than the token itself is valid (leeway included).
                let valid_for = Duration::from_secs(
                    (claims.exp + self.policy.leeway.as_secs()).saturating_sub(now()),
                );
                self.verified.insert(
                    access_token.to_owned(),
                    claims.clone(),
                    valid_for.min(self.policy.verified_for),
                );
                claims
            }
        };
        if claims.typ != ACCESS {
            return Err(ServiceError::Unauthorized("not an access token".into()));
        }
        let id: i64 = claims
            .sub
            .parse()
            .map_err(|_| ServiceError::Unauthorized("bad subject".into()))?;
        let record = self.tokens.get(id).await?;
        match record.get("sid") {
            Some(sid) if *sid == claims.sid => Ok(AuthUser {
                id,
                username: claims.name,
            }),
            Some(_) => Err(ServiceError::LoginElsewhere),
            None => Err(ServiceError::Unauthorized("signed out".into())),
        }
    }

    async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, ServiceError> {
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
        let record = self.tokens.get(id).await?;
        match (record.get("sid"), record.get("refresh_jti")) {
            (Some(sid), _) if *sid != claims.sid => Err(ServiceError::LoginElsewhere),
            (Some(_), Some(jti)) if *jti == claims.jti => {
                let (pair, refresh_jti) = self.issue(id, &claims.name, &claims.sid)?;
                self.record_login(id, &claims.sid, &refresh_jti).await?;
                Ok(pair)
            }
            (Some(_), _) => {
                // A spent refresh token came back: someone holds a copy. End the whole login.
                self.tokens.revoke(id).await?;
                Err(ServiceError::RefreshFailed("reused"))
            }
            (None, _) => Err(ServiceError::RefreshFailed("signed out")),
        }
    }

    async fn logout(&self, user: &AuthUser) -> Result<(), ServiceError> {
        self.tokens.revoke(user.id).await?;
        Ok(())
    }
}

/// A hash of a random password with the configured cost: logins of unknown users verify
/// against it, so they take as long as logins of known users.
///
/// # Errors
/// The argon2 parameters are invalid.
pub fn dummy_hash(policy: &AuthPolicy) -> Result<String, String> {
    let (memory, passes) = policy.argon2;
    let params = Params::new(memory, passes, 1, None).map_err(|e| e.to_string())?;
    let argon2 = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    argon2
        .hash_password(random_id().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}
