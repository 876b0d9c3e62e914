//! `database.*`, `sqlite.*` and `mysql.*`: their settings types live in `goex_database`; what
//! this app requires of them (prod's MySQL accounts, read-your-writes) is here.

use goex_config::{ConfigError, Profile, invalid};
use goex_database::{DatabaseSettings, Driver, MysqlSettings};

use super::AppConfig;

impl AppConfig {
    /// Whether requests run as read-your-writes sessions: MySQL with replicas and a window.
    pub fn read_your_writes_enabled(&self) -> bool {
        self.database.driver == Driver::Mysql
            && !self.mysql.replicas.is_empty()
            && !self.mysql.read_your_writes.is_zero()
    }
}

/// `mysql.dsn` and `mysql.replicas[i].dsn` in the prod profile with MySQL selected: an
/// application account with a password, never root. Only the account is looked at and named:
/// the DSN and its password never reach the message.
pub(super) fn check_mysql_accounts(
    database: &DatabaseSettings,
    mysql: &MysqlSettings,
    profile: Profile,
) -> Result<(), ConfigError> {
    if !profile.is_releasing() || database.driver != Driver::Mysql {
        return Ok(());
    }
    for (key, account) in mysql.accounts() {
        let account = account.map_err(|_| {
            invalid(
                &key,
                "is neither mysql://user:pass@host/db nor user:pass@tcp(host:port)/db",
            )
        })?;
        if account.user.is_empty() || account.user == "root" {
            return Err(invalid(
                &key,
                "must not sign in as root (or no user) in the prod profile: use an \
                 application account with only the privileges it needs",
            ));
        }
        if !account.has_password {
            return Err(invalid(
                &key,
                "has an empty password; the prod profile requires one",
            ));
        }
    }
    Ok(())
}
