//! Accounts as an operator manages them (`go_example users ...`; docs/security.md): listing users
//! with their roles, granting and revoking roles, resetting a password, signing a user out
//! everywhere. Every change ends the user's logins (so no token outlives the role or password
//! it was signed under) and leaves an audit record.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use shaku::{Component, Interface};
use slog::Logger;

use crate::model::role::Role;
use crate::model::user::{User, UserFilter};
use crate::repository::mysql::role::RoleRepository;
use crate::repository::mysql::user::UserRepository;
use crate::repository::redis::token::TokenRepository;
use crate::service::audit::{self, Actor};
use crate::service::error::ServiceError;
use crate::service::password::PasswordHasher;

/// A user as the operator's listing shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AccountView {
    /// User id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// 1 male, 2 female, 0 unknown.
    pub gender: i16,
    /// When it was created (UTC).
    pub created_at: String,
    /// Its roles.
    pub roles: Vec<&'static str>,
}

/// What an operator may do to accounts.
#[async_trait]
pub trait AccountService: Interface {
    /// Up to `limit` users with ids above `after_id`, by id, with their roles.
    ///
    /// # Errors
    /// [`ServiceError::Unavailable`] when the database does not answer.
    async fn list(&self, after_id: i64, limit: i64) -> Result<Vec<AccountView>, ServiceError>;

    /// Grants `role` to the user named `username` and ends its logins; `false` when it had
    /// the role already (nothing changed, no login ended).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown name; [`ServiceError::Unavailable`].
    async fn grant(&self, actor: &Actor, username: &str, role: Role) -> Result<bool, ServiceError>;

    /// Takes `role` from the user named `username` and ends its logins; `false` when it did
    /// not have it.
    ///
    /// # Errors
    /// As [`AccountService::grant`].
    async fn revoke(&self, actor: &Actor, username: &str, role: Role)
    -> Result<bool, ServiceError>;

    /// Sets the password of the user named `username` (validated with the registration rule,
    /// hashed with argon2id) and ends its logins.
    ///
    /// # Errors
    /// [`ServiceError::InvalidInput`] for a password the rule refuses; as
    /// [`AccountService::grant`].
    async fn reset_password(
        &self,
        actor: &Actor,
        username: &str,
        password: String,
    ) -> Result<(), ServiceError>;

    /// Ends the logins of the user named `username` on every device and process.
    ///
    /// # Errors
    /// As [`AccountService::grant`].
    async fn sign_out(&self, actor: &Actor, username: &str) -> Result<(), ServiceError>;
}

/// [`AccountService`] over the user, role and token repositories.
#[derive(Component)]
#[shaku(interface = AccountService)]
pub struct AccountServiceImpl {
    #[shaku(inject)]
    users: Arc<dyn UserRepository>,
    #[shaku(inject)]
    roles: Arc<dyn RoleRepository>,
    #[shaku(inject)]
    tokens: Arc<dyn TokenRepository>,
    #[shaku(inject)]
    passwords: Arc<dyn PasswordHasher>,
    /// The audit records.
    logger: Logger,
}

impl AccountServiceImpl {
    /// The user named `username`, read from the primary (it is about to be changed).
    async fn user(&self, username: &str) -> Result<User, ServiceError> {
        self.users
            .find_by_username_on_primary(username)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Runs `change`, records it, and ends the user's logins when it changed something.
    async fn audited<F, Fut>(
        &self,
        actor: &Actor,
        action: &str,
        username: &str,
        change: F,
    ) -> Result<bool, ServiceError>
    where
        F: FnOnce(User) -> Fut + Send,
        Fut: std::future::Future<Output = Result<(User, bool), ServiceError>> + Send,
    {
        let outcome = async {
            let (user, changed) = change(self.user(username).await?).await?;
            if changed {
                // After the change: a login that read the old state is ended by this.
                self.tokens.end_all(user.id).await?;
            }
            Ok(changed)
        }
        .await;
        let said = match &outcome {
            Ok(true) => "done",
            Ok(false) => "unchanged",
            Err(ServiceError::NotFound) => "no such user",
            Err(_) => "failed",
        };
        audit::record(&self.logger, actor, action, username, said);
        outcome
    }
}

#[async_trait]
impl AccountService for AccountServiceImpl {
    async fn list(&self, after_id: i64, limit: i64) -> Result<Vec<AccountView>, ServiceError> {
        let page = self
            .users
            .page(&UserFilter::default(), after_id, limit)
            .await?;
        let ids: Vec<i64> = page.iter().map(|u| u.id).collect();
        let roles = self.roles.roles_of_many(&ids).await?;
        Ok(page
            .into_iter()
            .map(|u| AccountView {
                roles: roles.get(&u.id).copied().unwrap_or_default().names(),
                id: u.id,
                username: u.username,
                gender: u.gender,
                created_at: u.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            })
            .collect())
    }

    async fn grant(&self, actor: &Actor, username: &str, role: Role) -> Result<bool, ServiceError> {
        let action = format!("grant-{role}");
        self.audited(actor, &action, username, |user| async move {
            let changed = self.roles.grant(user.id, role).await?;
            Ok((user, changed))
        })
        .await
    }

    async fn revoke(
        &self,
        actor: &Actor,
        username: &str,
        role: Role,
    ) -> Result<bool, ServiceError> {
        let action = format!("revoke-{role}");
        self.audited(actor, &action, username, |user| async move {
            let changed = self.roles.revoke(user.id, role).await?;
            Ok((user, changed))
        })
        .await
    }

    async fn reset_password(
        &self,
        actor: &Actor,
        username: &str,
        password: String,
    ) -> Result<(), ServiceError> {
        crate::meta::validator::validate_password(&password).map_err(|_| {
            ServiceError::invalid("password", "must be 6-16 letters and digits, with both")
        })?;
        self.audited(actor, "reset-password", username, |user| async move {
            let hash = self.passwords.hash(password).await?;
            self.users.set_password_hash(user.id, &hash).await?;
            Ok((user, true))
        })
        .await
        .map(|_| ())
    }

    async fn sign_out(&self, actor: &Actor, username: &str) -> Result<(), ServiceError> {
        self.audited(actor, "sign-out", username, |user| async move {
            Ok((user, true))
        })
        .await
        .map(|_| ())
    }
}
