//! Roles (issue 22: roles, not names): what a user may do beyond their own data. Stored in
//! `user_roles` (a row per user and role), carried in access tokens, checked by one extractor
//! per role. `admin` is the role the routes check today: the Excel import and export, the
//! Jenkins routes and any record over gRPC.

use std::fmt;

use diesel::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::schema::user_roles;

/// One role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Runs the Excel import and export, the Jenkins routes, reads any user over gRPC.
    Admin,
}

impl Role {
    /// Every role, in the order listings show them.
    pub const ALL: [Role; 1] = [Role::Admin];

    /// The name stored in `user_roles.role` and in tokens.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
        }
    }

    /// The role named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    const fn bit(self) -> u8 {
        match self {
            Role::Admin => 1,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles: a bitset, so every request's user carries it for free. In tokens and JSON
/// a list of names; names this build does not know are dropped (a newer build's role grants
/// nothing here).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Roles(u8);

impl Roles {
    /// No role.
    pub const NONE: Roles = Roles(0);

    /// Whether `role` is in the set.
    pub const fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// The set with `role` added.
    #[must_use]
    pub const fn with(self, role: Role) -> Roles {
        Roles(self.0 | role.bit())
    }

    /// The roles in the set, in [`Role::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// The set of the roles named in `names` (unknown names dropped).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Roles {
        names
            .into_iter()
            .filter_map(Role::parse)
            .fold(Roles::NONE, Roles::with)
    }

    /// The names, for listings.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Role::as_str).collect()
    }
}

impl FromIterator<Role> for Roles {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        iter.into_iter().fold(Roles::NONE, Roles::with)
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for Roles {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Role::as_str))
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        Ok(Roles::from_names(names.iter().map(String::as_str)))
    }
}

/// A row of `user_roles`.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = user_roles)]
pub struct NewUserRole<'a> {
    /// The user.
    pub user_id: i64,
    /// [`Role::as_str`].
    pub role: &'a str,
    /// When it was granted (unix milliseconds).
    pub granted_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_as_names_and_drop_unknown_ones() {
        let roles = Roles::NONE.with(Role::Admin);
        assert!(roles.contains(Role::Admin));
        assert!(!Roles::NONE.contains(Role::Admin));
        let json = serde_json::to_string(&roles).unwrap();
        assert_eq!(json, r#"["admin"]"#);
        assert_eq!(serde_json::from_str::<Roles>(&json).unwrap(), roles);
        assert_eq!(
            serde_json::from_str::<Roles>(r#"["auditor","admin"]"#).unwrap(),
            roles
        );
        assert_eq!(serde_json::from_str::<Roles>("[]").unwrap(), Roles::NONE);
        assert_eq!(Role::parse("Admin"), None, "names are exact");
    }
}
