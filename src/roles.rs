//! Who may do what: the kinds of organisation, the roles their users can hold, and the one
//! table of what each role permits.
//!
//! The table is the whole policy for *actions*; scope (an organisation administrator acts only
//! on its own organisation, an operator recovers only its own reports) is checked by the
//! domain call that knows the target. Everything is denied unless the table lists it.

use serde::{Deserialize, Serialize};

/// The kinds of organisation that use the registry (DOMAIN.md, "Actors").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    /// The regulator (MinTIC / CRC): administers organisations and accounts.
    Regulator,
    /// A mobile network operator.
    Operator,
    /// A device importer.
    Importer,
    /// A device manufacturer (or assembler).
    Manufacturer,
    /// Police, prosecutors, judges.
    Authority,
    /// An authorised seller of devices.
    Seller,
}

impl OrgKind {
    /// Every kind.
    pub const ALL: [OrgKind; 6] = [
        OrgKind::Regulator,
        OrgKind::Operator,
        OrgKind::Importer,
        OrgKind::Manufacturer,
        OrgKind::Authority,
        OrgKind::Seller,
    ];

    /// The snake_case name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgKind::Regulator => "regulator",
            OrgKind::Operator => "operator",
            OrgKind::Importer => "importer",
            OrgKind::Manufacturer => "manufacturer",
            OrgKind::Authority => "authority",
            OrgKind::Seller => "seller",
        }
    }

    /// The roles a user of this kind of organisation may hold. Every organisation has an
    /// administrator for its own users (the regulator's form, section 5).
    pub fn allowed_roles(self) -> &'static [Role] {
        match self {
            OrgKind::Regulator => &[Role::RegulatorAdmin, Role::OrgAdmin, Role::Auditor],
            OrgKind::Operator => &[Role::OrgAdmin, Role::Operator],
            OrgKind::Importer => &[Role::OrgAdmin, Role::Importer],
            OrgKind::Manufacturer => &[Role::OrgAdmin, Role::Manufacturer],
            OrgKind::Authority => &[Role::OrgAdmin, Role::Authority, Role::Auditor],
            OrgKind::Seller => &[Role::OrgAdmin],
        }
    }
}

/// A role a user holds. A user may hold several (the form: operator, organisation
/// administrator and legal representative may be the same person with several roles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The regulator's administrator: organisations, and suspension of any account.
    RegulatorAdmin,
    /// An organisation's administrator: creates, changes and deactivates its users, nothing
    /// else (the form: "su función es únicamente de administración").
    OrgAdmin,
    /// A mobile operator's staff: network checks, activations, reports, recoveries,
    /// registrations of devices it sells, authorised sellers.
    Operator,
    /// An importer's staff: registrations.
    Importer,
    /// A manufacturer's staff: registrations.
    Manufacturer,
    /// Police or judicial staff: record-by-record negative-list consultation, theft reports.
    Authority,
    /// Reads the audit trail.
    Auditor,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 7] = [
        Role::RegulatorAdmin,
        Role::OrgAdmin,
        Role::Operator,
        Role::Importer,
        Role::Manufacturer,
        Role::Authority,
        Role::Auditor,
    ];

    /// The snake_case name used in the API and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::RegulatorAdmin => "regulator_admin",
            Role::OrgAdmin => "org_admin",
            Role::Operator => "operator",
            Role::Importer => "importer",
            Role::Manufacturer => "manufacturer",
            Role::Authority => "authority",
            Role::Auditor => "auditor",
        }
    }

    /// Whether this role permits `permission` (the table below).
    pub fn permits(self, permission: Permission) -> bool {
        PERMISSIONS
            .iter()
            .any(|(role, permissions)| *role == self && permissions.contains(&permission))
    }
}

/// An action the API can be asked to do. Handlers name the permission a route needs; the
/// table says which roles have it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Create, change, suspend and reactivate organisations; suspend and reactivate any
    /// account.
    AdministerOrgs,
    /// Read every organisation's data.
    ReadOrgs,
    /// Create, change, deactivate and reactivate users, and issue or revoke their tokens
    /// (scope: the own organisation, or any for the regulator's administrator).
    AdministerUsers,
    /// The network checks: N5g-eir, native single and batch checks.
    Check,
    /// Read the audit trail.
    ReadAudit,
    /// Register devices on the positive list (importers, manufacturers; operators for the
    /// devices they sell).
    Register,
    /// Report a device stolen or lost (art. 2.2.11.6).
    Report,
    /// Exclude one's own organisation's report when the device is recovered (art. 2.2.11.6
    /// par. 2; the scope "own report" is checked by the domain call).
    Recover,
    /// Activate a device on the network and bind its owner (art. 2.2.11.8).
    Activate,
    /// Record who may sell devices (art. 2.2.11.3).
    ManageSellers,
    /// Consult the negative list record by record (art. 2.2.11.6); every lookup is audited.
    ConsultNegative,
    /// Export the negative list to affiliates abroad and import foreign lists (art. 2.2.11.6
    /// par. 1).
    Exchange,
    /// Take an online backup of the whole registry, and list the backups taken.
    Backup,
    /// Fetch a snapshot of both lists (IMEIs only) to start a read replica.
    Replicate,
}

impl Permission {
    /// Every permission, in declaration order.
    pub const ALL: [Permission; 14] = [
        Permission::AdministerOrgs,
        Permission::ReadOrgs,
        Permission::AdministerUsers,
        Permission::Check,
        Permission::ReadAudit,
        Permission::Register,
        Permission::Report,
        Permission::Recover,
        Permission::Activate,
        Permission::ManageSellers,
        Permission::ConsultNegative,
        Permission::Exchange,
        Permission::Backup,
        Permission::Replicate,
    ];

    /// Its snake-case name, as the API's description names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::AdministerOrgs => "administer_orgs",
            Permission::ReadOrgs => "read_orgs",
            Permission::AdministerUsers => "administer_users",
            Permission::Check => "check",
            Permission::ReadAudit => "read_audit",
            Permission::Register => "register",
            Permission::Report => "report",
            Permission::Recover => "recover",
            Permission::Activate => "activate",
            Permission::ManageSellers => "manage_sellers",
            Permission::ConsultNegative => "consult_negative",
            Permission::Exchange => "exchange",
            Permission::Backup => "backup",
            Permission::Replicate => "replicate",
        }
    }
}

/// The one table of what each role permits (DOMAIN.md, "Actors"; issue #3). Routes that do
/// not exist yet (registrations, reports, recoveries, activations, sellers, consultation) use
/// their row here when they come.
const PERMISSIONS: &[(Role, &[Permission])] = &[
    (
        Role::RegulatorAdmin,
        &[
            Permission::AdministerOrgs,
            Permission::ReadOrgs,
            Permission::AdministerUsers,
            Permission::ReadAudit,
            Permission::ManageSellers,
            Permission::Exchange,
            Permission::Backup,
            Permission::Replicate,
        ],
    ),
    (Role::OrgAdmin, &[Permission::AdministerUsers]),
    (
        Role::Operator,
        &[
            Permission::Check,
            Permission::Activate,
            Permission::Report,
            Permission::Recover,
            Permission::Register,
            Permission::ManageSellers,
            Permission::Replicate,
        ],
    ),
    (Role::Importer, &[Permission::Register]),
    (Role::Manufacturer, &[Permission::Register]),
    (
        Role::Authority,
        &[Permission::ConsultNegative, Permission::Report],
    ),
    (
        Role::Auditor,
        &[Permission::ReadOrgs, Permission::ReadAudit],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_a_row() {
        for role in Role::ALL {
            assert_eq!(
                PERMISSIONS.iter().filter(|(r, _)| *r == role).count(),
                1,
                "{role:?}"
            );
        }
    }

    /// The whole table, written out as the issue states it: any change to who may do what
    /// must change this test too.
    #[test]
    fn the_matrix_of_roles_and_permissions() {
        use Permission as P;
        let expected: [(Role, &[Permission]); 7] = [
            (
                Role::RegulatorAdmin,
                &[
                    P::AdministerOrgs,
                    P::ReadOrgs,
                    P::AdministerUsers,
                    P::ReadAudit,
                    P::ManageSellers,
                    P::Exchange,
                    P::Backup,
                    P::Replicate,
                ],
            ),
            (Role::OrgAdmin, &[P::AdministerUsers]),
            (
                Role::Operator,
                &[
                    P::Check,
                    P::Register,
                    P::Report,
                    P::Recover,
                    P::Activate,
                    P::ManageSellers,
                    P::Replicate,
                ],
            ),
            (Role::Importer, &[P::Register]),
            (Role::Manufacturer, &[P::Register]),
            (Role::Authority, &[P::Report, P::ConsultNegative]),
            (Role::Auditor, &[P::ReadOrgs, P::ReadAudit]),
        ];
        for (role, allowed) in expected {
            for permission in Permission::ALL {
                assert_eq!(
                    role.permits(permission),
                    allowed.contains(&permission),
                    "{role:?} {permission:?}"
                );
            }
        }
    }

    #[test]
    fn the_org_admin_only_administers() {
        for permission in Permission::ALL {
            assert_eq!(
                Role::OrgAdmin.permits(permission),
                permission == Permission::AdministerUsers,
                "{permission:?}"
            );
        }
    }

    #[test]
    fn only_operators_check_and_only_the_regulator_administers_orgs() {
        for role in Role::ALL {
            assert_eq!(role.permits(Permission::Check), role == Role::Operator);
            assert_eq!(
                role.permits(Permission::AdministerOrgs),
                role == Role::RegulatorAdmin
            );
        }
    }

    #[test]
    fn regulator_roles_are_held_only_in_the_regulator() {
        for kind in OrgKind::ALL {
            assert_eq!(
                kind.allowed_roles().contains(&Role::RegulatorAdmin),
                kind == OrgKind::Regulator
            );
            assert!(kind.allowed_roles().contains(&Role::OrgAdmin));
        }
    }
}
