//! Partners as data: profiles, entitlements and the user directory.
//!
//! A partner is a record, not code. The launch partners ship in
//! `seed/partners.json`; adding a partner is adding a record there (or in a
//! file of the host's own, loaded with [`Directory::from_json`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Error, PartnerId, Role, RoleGrant, UserId};

/// The seed data that ships with the crate: the four launch partners.
pub const LAUNCH_SEED: &str = include_str!("../seed/partners.json");

/// A capability inside a partner. Roles map to entitlements per partner profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Entitlement {
    /// See the partner workspace page.
    ViewWorkspace,
    /// Place and manage orders.
    Trade,
    /// List and force-revoke other users' sessions.
    ManageSessions,
    /// List credential metadata.
    ViewCredentials,
    /// Create, rotate and revoke credentials.
    ManageCredentials,
    /// Reveal a credential's secret.
    RevealCredentials,
    /// Read the audit log.
    ViewAudit,
    /// Export the audit log.
    ExportAudit,
    /// Add or remove broker connections.
    ManageBrokers,
    /// Grant delegated access to another party.
    GrantDelegation,
}

impl Entitlement {
    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Entitlement::ViewWorkspace => "view_workspace",
            Entitlement::Trade => "trade",
            Entitlement::ManageSessions => "manage_sessions",
            Entitlement::ViewCredentials => "view_credentials",
            Entitlement::ManageCredentials => "manage_credentials",
            Entitlement::RevealCredentials => "reveal_credentials",
            Entitlement::ViewAudit => "view_audit",
            Entitlement::ExportAudit => "export_audit",
            Entitlement::ManageBrokers => "manage_brokers",
            Entitlement::GrantDelegation => "grant_delegation",
        }
    }
}

/// What a partner mainly does; shapes the workspace page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Persona {
    /// Latency-sensitive execution desk.
    Execution,
    /// High-volume order flow.
    Throughput,
    /// Research and analytics; read-only.
    Analytics,
    /// Platform architecture and administration.
    Architecture,
}

/// Where a partner's alerts go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertChannel {
    /// A Slack incoming webhook.
    SlackWebhook {
        /// The webhook URL.
        url: String,
    },
    /// An e-mail address.
    Email {
        /// The address.
        address: String,
    },
    /// An SMS gateway number.
    Sms {
        /// The number, E.164.
        number: String,
    },
}

/// How often a partner's credentials must be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationPolicy {
    /// Age at which a credential is overdue.
    pub max_age_days: u32,
    /// How many days before that it is reported as due.
    #[serde(default = "RotationPolicy::default_warn_days")]
    pub warn_before_days: u32,
    /// Whether an overdue credential is blocked from use.
    #[serde(default)]
    pub block_when_overdue: bool,
}

impl RotationPolicy {
    /// The default and the recommended ceiling: 30 days.
    pub const DEFAULT_MAX_AGE_DAYS: u32 = 30;

    fn default_warn_days() -> u32 {
        7
    }
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            max_age_days: Self::DEFAULT_MAX_AGE_DAYS,
            warn_before_days: Self::default_warn_days(),
            block_when_overdue: false,
        }
    }
}

/// A partner (tenant) and what each role may do inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerProfile {
    /// The partner's id.
    pub id: PartnerId,
    /// Name shown to people.
    pub display_name: String,
    /// What the partner mainly does.
    pub persona: Persona,
    /// Entitlements per role inside this partner.
    pub entitlements: BTreeMap<Role, BTreeSet<Entitlement>>,
    /// Where alerts go.
    #[serde(default)]
    pub alert_channels: Vec<AlertChannel>,
    /// Credential rotation policy.
    #[serde(default)]
    pub credential_rotation: RotationPolicy,
}

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Stable id, also accepted by the mock login.
    pub id: UserId,
    /// E-mail address as the directory knows it.
    pub email: String,
    /// Name shown to people.
    pub display_name: String,
    /// The partner the user belongs to.
    pub partner: PartnerId,
    /// Roles, each global or scoped to a partner.
    pub grants: Vec<RoleGrant>,
    /// A disabled user can not sign in.
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    partners: Vec<PartnerProfile>,
    users: Vec<User>,
}

/// Partners and users, loaded from seed data.
#[derive(Debug, Clone)]
pub struct Directory {
    partners: BTreeMap<PartnerId, PartnerProfile>,
    users: Vec<User>,
}

impl Directory {
    /// The four launch partners and their users.
    pub fn launch() -> Result<Self, Error> {
        Self::from_json(LAUNCH_SEED)
    }

    /// Parses and checks a seed file: unique ids and e-mails, every user in a
    /// known partner, every scoped grant naming a known partner.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let seed: SeedFile =
            serde_json::from_str(text).map_err(|e| Error::Seed(format!("not valid: {e}")))?;

        let mut partners = BTreeMap::new();
        for profile in seed.partners {
            let id = profile.id.clone();
            if profile.credential_rotation.max_age_days == 0 {
                return Err(Error::Seed(format!(
                    "partner {id}: max_age_days must be positive"
                )));
            }
            if partners.insert(id.clone(), profile).is_some() {
                return Err(Error::Seed(format!("partner {id} listed twice")));
            }
        }

        let mut ids = BTreeSet::new();
        let mut emails = BTreeSet::new();
        for user in &seed.users {
            if !ids.insert(user.id.clone()) {
                return Err(Error::Seed(format!("user {} listed twice", user.id)));
            }
            if !emails.insert(user.email.to_ascii_lowercase()) {
                return Err(Error::Seed(format!(
                    "e-mail of user {} listed twice",
                    user.id
                )));
            }
            if !partners.contains_key(&user.partner) {
                return Err(Error::Seed(format!("user {}: unknown partner", user.id)));
            }
            for grant in &user.grants {
                if let Some(p) = &grant.partner
                    && !partners.contains_key(p)
                {
                    return Err(Error::Seed(format!(
                        "user {}: grant for unknown partner",
                        user.id
                    )));
                }
            }
        }

        Ok(Self {
            partners,
            users: seed.users,
        })
    }

    /// A partner's profile.
    pub fn partner(&self, id: &PartnerId) -> Option<&PartnerProfile> {
        self.partners.get(id)
    }

    /// Every partner.
    pub fn partners(&self) -> impl Iterator<Item = &PartnerProfile> {
        self.partners.values()
    }

    /// A user by id.
    pub fn user(&self, id: &UserId) -> Option<&User> {
        self.users.iter().find(|u| &u.id == id)
    }

    /// Every user.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// A user by e-mail, compared ASCII case-insensitively only (so a Kelvin
    /// sign or a Cyrillic look-alike never matches a Latin letter).
    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
    }

    /// A user by id or, failing that, by e-mail.
    pub fn find_user(&self, id_or_email: &str) -> Option<&User> {
        if id_or_email.contains('@') {
            return self.user_by_email(id_or_email);
        }
        UserId::new(id_or_email).ok().and_then(|id| self.user(&id))
    }

    /// The entitlements that `grants` give inside `partner`, per its profile.
    pub fn entitlements(&self, grants: &[RoleGrant], partner: &PartnerId) -> BTreeSet<Entitlement> {
        let Some(profile) = self.partner(partner) else {
            return BTreeSet::new();
        };
        grants
            .iter()
            .filter(|g| g.partner.as_ref().is_none_or(|p| p == partner))
            .filter_map(|g| profile.entitlements.get(&g.role))
            .flatten()
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(s: &str) -> PartnerId {
        PartnerId::new(s).unwrap()
    }

    #[test]
    fn launch_seed_has_the_four_partners_and_their_users() {
        let dir = Directory::launch().unwrap();
        let ids: Vec<_> = dir.partners().map(|p| p.id.as_str().to_owned()).collect();
        assert_eq!(ids, ["mukesh", "nikhil", "nitin", "raja"]);
        for name in ["nikhil", "mukesh", "raja", "nitin"] {
            let user = dir.find_user(&format!("{name}@example.com")).unwrap();
            assert_eq!(user.id.as_str(), name);
            assert_eq!(dir.find_user(name).unwrap().partner, pid(name));
        }
        let nitin = dir.find_user("nitin").unwrap();
        assert!(nitin.grants.contains(&RoleGrant::global(Role::SuperAdmin)));
    }

    #[test]
    fn raja_is_read_only() {
        let dir = Directory::launch().unwrap();
        let raja = dir.find_user("raja").unwrap();
        let ents = dir.entitlements(&raja.grants, &pid("raja"));
        assert!(ents.contains(&Entitlement::ViewWorkspace));
        for write in [
            Entitlement::Trade,
            Entitlement::ManageSessions,
            Entitlement::ManageCredentials,
            Entitlement::RevealCredentials,
            Entitlement::ManageBrokers,
            Entitlement::GrantDelegation,
        ] {
            assert!(!ents.contains(&write), "raja has {write:?}");
        }
    }

    #[test]
    fn email_lookup_is_ascii_case_insensitive_only() {
        let dir = Directory::launch().unwrap();
        assert!(dir.find_user("NIKHIL@Example.COM").is_some());
        // U+212A KELVIN SIGN lower-cases to 'k' under Unicode rules; it must not match.
        assert!(dir.find_user("ni\u{212A}hil@example.com").is_none());
        assert!(dir.find_user("nikhil@ex\u{0430}mple.com").is_none());
    }

    #[test]
    fn scoped_grants_do_not_leak_entitlements_into_other_partners() {
        let dir = Directory::launch().unwrap();
        let nikhil = dir.find_user("nikhil").unwrap();
        assert!(dir.entitlements(&nikhil.grants, &pid("mukesh")).is_empty());
    }

    #[test]
    fn bad_seed_files_are_refused_with_a_reason() {
        let unknown_role = r#"{"partners":[{"id":"a","display_name":"A","persona":"execution",
            "entitlements":{"owner":["trade"]}}],"users":[]}"#;
        assert!(matches!(
            Directory::from_json(unknown_role),
            Err(Error::Seed(_))
        ));
        let orphan = r#"{"partners":[],"users":[{"id":"u","email":"u@x","display_name":"U",
            "partner":"nope","grants":[]}]}"#;
        let err = Directory::from_json(orphan).unwrap_err().to_string();
        assert!(err.contains("unknown partner"), "{err}");
    }
}
