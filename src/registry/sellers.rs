//! Authorised sellers (art. 2.2.11.3): who may sell mobile devices to the public.
//!
//! Operators authorise sellers (2), and so does the ministry (3); either records the seller
//! here with the authorisation's number and validity. The paragraph requires the list to be
//! public and kept up to date, so anyone may search it (`GET /v1/public/sellers`), which shows
//! only authorisations valid today.
//!
//! A seller is keyed by the authorising organisation and the authorisation number: recording
//! the same number again updates it (to extend or end its validity), and the change is audited.

use serde::{Deserialize, Serialize};

use super::{Registry, RegistryError};
use crate::accounts::Principal;
use crate::audit::{self, Action, Event, Outcome};
use crate::fields::FieldErrors;
use crate::identity::{check_nit, normalise_id_number};
use crate::roles::Permission;
use crate::store::{Mutation, Store};
use crate::timefmt;
use crate::timefmt::now_unix;

const PREFIX: &str = "seller/";
const VERSION: u8 = 1;
/// Most results of one public search.
pub const MAX_RESULTS: usize = 100;

/// A seller as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SellerForm {
    /// The seller's NIT with check digit (a company) or ID number (a natural person).
    pub id_number: String,
    /// Name or legal name.
    pub name: String,
    /// Address of the point of sale.
    pub address: String,
    /// Municipality, DIVIPOLA code (5 digits).
    pub municipality: String,
    /// The authorisation's number, as displayed at the point of sale.
    pub authorisation_number: String,
    /// First day of validity (`YYYY-MM-DD`).
    pub valid_from: String,
    /// Last day of validity (`YYYY-MM-DD`).
    pub valid_until: String,
}

/// A stored seller: the form and who authorised it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seller {
    /// What was recorded.
    #[serde(flatten)]
    pub form: SellerForm,
    /// The authorising organisation.
    pub authorised_by: u64,
    /// When it was last recorded, Unix seconds.
    pub recorded_at: u64,
}

impl Seller {
    /// Whether the authorisation is valid at `now` (through the whole of its last day).
    pub fn is_valid_at(&self, now: u64) -> bool {
        let from = timefmt::parse(&self.form.valid_from).unwrap_or(u64::MAX);
        let until = timefmt::parse(&self.form.valid_until).map_or(0, |t| t + 86_400);
        from <= now && now < until
    }
}

fn key(org: u64, number: &str) -> Vec<u8> {
    format!("{PREFIX}{org:016x}/{number}").into_bytes()
}

fn validate(form: &SellerForm) -> FieldErrors {
    let mut errors = FieldErrors::default();
    let mut field = |name: &str, reason: &str| errors.0.push((name.into(), reason.into()));
    let id = form.id_number.trim();
    let is_nit = id.contains('-');
    let id_ok = if is_nit {
        check_nit(id).is_ok()
    } else {
        (5..=15).contains(&normalise_id_number(id).len())
    };
    if !id_ok {
        field(
            "id_number",
            "a NIT with its check digit (900123456-7) or an ID number of 5 to 15 characters",
        );
    }
    for (name, value, max) in [
        ("name", &form.name, 200),
        ("address", &form.address, 200),
        ("authorisation_number", &form.authorisation_number, 60),
    ] {
        let value = value.trim();
        if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
            field(name, "is required (printable text)");
        }
    }
    if form.authorisation_number.contains('/') {
        field("authorisation_number", "may not contain '/'");
    }
    if !(form.municipality.len() == 5 && form.municipality.bytes().all(|b| b.is_ascii_digit())) {
        field(
            "municipality",
            "must be a 5-digit DIVIPOLA municipality code, e.g. 11001",
        );
    }
    let date = |text: &str| (text.len() == 10).then(|| timefmt::parse(text)).flatten();
    let from = date(form.valid_from.trim());
    let until = date(form.valid_until.trim());
    if from.is_none() {
        field("valid_from", "a date, YYYY-MM-DD");
    }
    if until.is_none() {
        field("valid_until", "a date, YYYY-MM-DD");
    }
    if let (Some(from), Some(until)) = (from, until)
        && until < from
    {
        field("valid_until", "is before valid_from");
    }
    errors
}

fn decode(bytes: &[u8]) -> Option<Seller> {
    match bytes.split_first() {
        Some((&VERSION, json)) => serde_json::from_slice(json).ok(),
        _ => None,
    }
}

impl Registry {
    /// Records (or updates) a seller authorised by the caller's organisation.
    ///
    /// # Errors
    /// [`RegistryError::Forbidden`] without the sellers permission (audited),
    /// [`RegistryError::Invalid`] naming every wrong field, [`RegistryError::Store`].
    pub fn record_seller(
        &self,
        principal: &Principal,
        form: SellerForm,
    ) -> Result<Seller, RegistryError> {
        self.require(
            principal,
            Permission::ManageSellers,
            Action::SellerRecord,
            "seller/new",
        )?;
        validate(&form)
            .into_result()
            .map_err(RegistryError::Invalid)?;
        let form = SellerForm {
            id_number: form.id_number.trim().to_owned(),
            name: form.name.trim().to_owned(),
            address: form.address.trim().to_owned(),
            municipality: form.municipality,
            authorisation_number: form.authorisation_number.trim().to_owned(),
            valid_from: form.valid_from.trim().to_owned(),
            valid_until: form.valid_until.trim().to_owned(),
        };
        let now = now_unix();
        let seller = Seller {
            form,
            authorised_by: principal.org,
            recorded_at: now,
        };
        let mut bytes = vec![VERSION];
        serde_json::to_writer(&mut bytes, &seller).expect("a seller always serialises");
        let event = Event {
            actor: principal.actor(),
            action: Action::SellerRecord,
            target: format!(
                "seller/{}/{}",
                principal.org, seller.form.authorisation_number
            ),
            outcome: Outcome::Done,
            reason: None,
            detail: Some(format!(
                "valid {} to {}",
                seller.form.valid_from, seller.form.valid_until
            )),
        };
        let key = key(principal.org, &seller.form.authorisation_number);
        self.store.transact(|_: &Store| {
            Ok::<_, RegistryError>((
                Mutation {
                    records: vec![(key, bytes)],
                    audit: Some(audit::seal_owned(event, now)),
                    ..Mutation::default()
                },
                (),
            ))
        })?;
        Ok(seller)
    }

    /// Sellers valid today whose name contains `query` (case-insensitive), or whose ID or
    /// authorisation number equals it; at most [`MAX_RESULTS`], by name.
    ///
    /// # Errors
    /// [`RegistryError::Store`], [`RegistryError::Corrupt`].
    pub fn search_sellers(&self, query: &str) -> Result<Vec<Seller>, RegistryError> {
        let query = query.trim().to_lowercase();
        let now = now_unix();
        let mut found = Vec::new();
        for (_, bytes) in self.store.records_with_prefix(PREFIX.as_bytes())? {
            let seller = decode(&bytes).ok_or(RegistryError::Corrupt("seller"))?;
            let matches = query.is_empty()
                || seller.form.name.to_lowercase().contains(&query)
                || normalise_id_number(&seller.form.id_number) == normalise_id_number(&query)
                || seller.form.authorisation_number.to_lowercase() == query;
            if matches && seller.is_valid_at(now) {
                found.push(seller);
            }
        }
        found.sort_by(|a, b| a.form.name.cmp(&b.form.name));
        found.truncate(MAX_RESULTS);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Credential;
    use crate::accounts::token::TokenId;
    use crate::registry::tests::fixture;
    use crate::roles::{OrgKind, Role};

    fn who(org: u64, role: Role) -> Principal {
        Principal {
            user: 10 + org,
            org,
            org_kind: OrgKind::Operator,
            roles: vec![role],
            credential: Credential::Token(TokenId(1)),
            issued_by: None,
        }
    }

    fn form(number: &str, name: &str, until: &str) -> SellerForm {
        SellerForm {
            id_number: "800197268-4".into(),
            name: name.into(),
            address: "Cra. 7 # 32-16, Bogotá".into(),
            municipality: "11001".into(),
            authorisation_number: number.into(),
            valid_from: "2026-01-01".into(),
            valid_until: until.into(),
        }
    }

    #[test]
    fn recorded_sellers_are_searchable_while_valid_and_updates_replace() {
        let f = fixture();
        let r = &f.registry;
        let op = who(3, Role::Operator);
        r.record_seller(
            &op,
            form("AUT-1", "Celulares El Centro S.A.S.", "2099-12-31"),
        )
        .unwrap();
        r.record_seller(&op, form("AUT-2", "Tienda Móvil Norte", "2099-12-31"))
            .unwrap();
        assert_eq!(r.search_sellers("centro").unwrap().len(), 1);
        assert_eq!(
            r.search_sellers("AUT-2").unwrap()[0].form.name,
            "Tienda Móvil Norte"
        );
        assert_eq!(r.search_sellers("800.197.268-4").unwrap().len(), 2);
        assert_eq!(r.search_sellers("").unwrap().len(), 2);
        // ending an authorisation: record it again with a past end date
        r.record_seller(&op, form("AUT-2", "Tienda Móvil Norte", "2026-02-01"))
            .unwrap();
        assert_eq!(r.search_sellers("").unwrap().len(), 1);
        // another organisation's AUT-1 is its own record
        r.record_seller(
            &who(4, Role::Operator),
            form("AUT-1", "Otra Tienda", "2099-12-31"),
        )
        .unwrap();
        assert_eq!(r.search_sellers("").unwrap().len(), 2);
    }

    #[test]
    fn only_operators_and_the_regulator_record_and_bad_forms_name_their_fields() {
        let f = fixture();
        let r = &f.registry;
        assert!(matches!(
            r.record_seller(&who(5, Role::Importer), form("A", "X Y", "2099-12-31")),
            Err(RegistryError::Forbidden)
        ));
        assert!(
            r.record_seller(
                &who(1, Role::RegulatorAdmin),
                form("MIN-1", "Tienda", "2099-12-31")
            )
            .is_ok()
        );
        let bad = SellerForm {
            id_number: "800197268-5".into(),
            municipality: "110".into(),
            valid_from: "2026-05-01".into(),
            valid_until: "2026-04-01".into(),
            ..SellerForm::default()
        };
        let Err(RegistryError::Invalid(errors)) = r.record_seller(&who(3, Role::Operator), bad)
        else {
            panic!("expected field errors");
        };
        let fields: Vec<&str> = errors.0.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "id_number",
                "name",
                "address",
                "authorisation_number",
                "municipality",
                "valid_until"
            ]
        );
    }
}
