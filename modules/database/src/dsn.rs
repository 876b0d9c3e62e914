//! MySQL DSNs: the URL form and the Go driver's form, who a DSN signs in as, and a node's name
//! without credentials.

use crate::DbError;

/// Accepts the URL form and the Go driver's `user:pass@tcp(host:port)/db?params` form.
///
/// # Errors
/// The DSN is in neither form.
pub fn mysql_url(dsn: &str) -> Result<String, DbError> {
    if dsn.starts_with("mysql://") {
        return Ok(dsn.to_owned());
    }
    let bad = || {
        DbError::Settings("mysql.dsn is neither mysql://... nor user:pass@tcp(host:port)/db".into())
    };
    let (credentials, rest) = dsn.rsplit_once("@tcp(").ok_or_else(bad)?;
    let (host, rest) = rest.split_once(')').ok_or_else(bad)?;
    let (db, params) = rest
        .trim_start_matches('/')
        .split_once('?')
        .unwrap_or((rest.trim_start_matches('/'), ""));
    // Go's parseTime/charset/loc are driver hints mysql_async does not take.
    let _ = params;
    Ok(format!("mysql://{credentials}@{host}/{db}"))
}

/// Who a DSN signs in as. The password itself is left out, so a check or a message built from
/// this cannot print it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MysqlAccount {
    /// The user name, percent-decoded; empty when the DSN names none.
    pub user: String,
    /// Whether the DSN carries a non-empty password.
    pub has_password: bool,
}

/// The account of a DSN in either form [`mysql_url`] accepts: Go's `user:pass@tcp(...)/db`
/// (the password runs from the first `:` to the last `@tcp(`, as the Go driver reads it) or
/// `mysql://user:pass@host/db` (the user information is what precedes the last `@` of the
/// authority, as URL parsers read it).
///
/// # Errors
/// The DSN is in neither form (the message does not repeat it).
pub fn mysql_account(dsn: &str) -> Result<MysqlAccount, DbError> {
    mysql_url(dsn)?;
    let userinfo = match dsn.strip_prefix("mysql://") {
        Some(rest) => {
            let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
            authority
                .rsplit_once('@')
                .map_or("", |(userinfo, _)| userinfo)
        }
        None => dsn
            .rsplit_once("@tcp(")
            .map_or("", |(credentials, _)| credentials),
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let user = if dsn.starts_with("mysql://") {
        percent_decode(user)
    } else {
        user.to_owned()
    };
    Ok(MysqlAccount {
        user,
        has_password: !password.is_empty(),
    })
}

/// `%XX` sequences decoded (invalid ones kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `host:port` of a DSN, to name a node in logs and stats without its credentials.
pub fn node_label(dsn: &str) -> String {
    let url = mysql_url(dsn).unwrap_or_else(|_| dsn.to_owned());
    let after_at = url.rsplit_once('@').map_or(url.as_str(), |(_, rest)| rest);
    let after_scheme = after_at.strip_prefix("mysql://").unwrap_or(after_at);
    after_scheme.split('/').next().unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_dsn_becomes_a_url() {
        assert_eq!(
            mysql_url("root:root@tcp(127.0.0.1:3306)/go_example?charset=utf8mb4").unwrap(),
            "mysql://root:root@127.0.0.1:3306/go_example"
        );
        assert_eq!(mysql_url("mysql://u@h:1/d").unwrap(), "mysql://u@h:1/d");
        assert!(mysql_url("nonsense").is_err());
    }

    #[test]
    fn accounts_are_read_from_both_forms() {
        let account = |dsn: &str| mysql_account(dsn).unwrap();
        let user = |u: &str, has_password| MysqlAccount {
            user: u.into(),
            has_password,
        };
        assert_eq!(
            account("mysql://root@127.0.0.1:3306/go_example"),
            user("root", false)
        );
        assert_eq!(account("mysql://root:pw@h:1/d"), user("root", true));
        assert_eq!(account("mysql://%72oot:pw@h:1/d"), user("root", true));
        assert_eq!(account("mysql://app:@h:1/d"), user("app", false));
        assert_eq!(account("mysql://app:p%40ss@h:1/d?x=a@b"), user("app", true));
        assert_eq!(account("mysql://h:1/d"), user("", false));
        assert_eq!(
            account("root:root@tcp(127.0.0.1:3306)/x"),
            user("root", true)
        );
        assert_eq!(account("app:p@ss:w@tcp(db:3306)/x"), user("app", true));
        assert_eq!(account("app@tcp(db:3306)/x"), user("app", false));
        assert_eq!(account("@tcp(db:3306)/x"), user("", false));
        let err = mysql_account("secret-in-nonsense").unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn nodes_are_named_without_credentials() {
        assert_eq!(
            node_label("mysql://app:s3cret@db:3307/go_example"),
            "db:3307"
        );
        assert_eq!(node_label("app:s3cret@tcp(db:3306)/x"), "db:3306");
    }
}
