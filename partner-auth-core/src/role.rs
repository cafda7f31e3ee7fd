//! Roles and role grants.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, PartnerId};

/// What a user may do. The spelling here (`super_admin`, `admin`, `trader`,
/// `viewer`) is the one used in JSON, in SQL and in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Platform staff: administers every partner.
    SuperAdmin,
    /// Administers one partner: its users, sessions and credentials.
    Admin,
    /// Trades on the partner's accounts.
    Trader,
    /// Reads only.
    Viewer,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [Role::SuperAdmin, Role::Admin, Role::Trader, Role::Viewer];

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::Admin => "admin",
            Role::Trader => "trader",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::UnknownRole {
                value: s.chars().take(32).collect(),
            })
    }
}

/// A role, either global (platform staff) or scoped to one partner.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoleGrant {
    /// The role granted.
    pub role: Role,
    /// The partner it applies to; `None` means every partner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<PartnerId>,
}

impl RoleGrant {
    /// A grant inside one partner.
    pub fn scoped(role: Role, partner: PartnerId) -> Self {
        Self {
            role,
            partner: Some(partner),
        }
    }

    /// A grant across all partners.
    pub fn global(role: Role) -> Self {
        Self {
            role,
            partner: None,
        }
    }

    /// Whether this grant gives `role` inside `partner`.
    pub fn covers(&self, role: Role, partner: &PartnerId) -> bool {
        self.role == role && self.partner.as_ref().is_none_or(|p| p == partner)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn every_role_round_trips_through_text_and_json(i in 0usize..4) {
            let role = Role::ALL[i];
            prop_assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            let json = serde_json::to_string(&role).unwrap();
            prop_assert_eq!(json.clone(), format!("\"{}\"", role.as_str()));
            prop_assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }

        #[test]
        fn unknown_role_strings_are_clear_errors(s in "\\PC{0,40}") {
            prop_assume!(!Role::ALL.iter().any(|r| r.as_str() == s));
            let err = s.parse::<Role>().unwrap_err();
            let is_unknown_role = matches!(err, Error::UnknownRole { .. });
            prop_assert!(is_unknown_role);
            prop_assert!(err.to_string().contains("unknown role"));
            let json = serde_json::to_string(&s).unwrap();
            prop_assert!(serde_json::from_str::<Role>(&json).is_err());
        }
    }

    #[test]
    fn near_misses_are_refused() {
        for s in ["SuperAdmin", "super-admin", "Admin", " admin", "admin ", ""] {
            assert!(s.parse::<Role>().is_err(), "{s:?}");
        }
    }

    #[test]
    fn scoped_grants_cover_only_their_partner() {
        let nikhil = PartnerId::new("nikhil").unwrap();
        let raja = PartnerId::new("raja").unwrap();
        let grant = RoleGrant::scoped(Role::Admin, nikhil.clone());
        assert!(grant.covers(Role::Admin, &nikhil));
        assert!(!grant.covers(Role::Admin, &raja));
        assert!(!grant.covers(Role::Trader, &nikhil));
        assert!(RoleGrant::global(Role::SuperAdmin).covers(Role::SuperAdmin, &raja));
    }
}
