//! The regulator's user form (`formulario-usuarios-ser.txt`), made into data and validated
//! field by field.
//!
//! Every field is read as given (missing text is empty), then [`OrgForm::validate`] and
//! [`UserForm::validate`] collect *every* problem with the field's path, so a clerk fixes the
//! form in one round trip. Rules from the form:
//! - natural persons only, "la identificación debe estar completa al igual que el nombre",
//!   and "no se deben crear cuentas con números parecidos o usuarios ficticios": ID numbers
//!   are normalised (dots, spaces, dashes and leading zeros do not make a new number), and
//!   placeholder names and numbers are refused;
//! - contacts (section 4): at most three, "personas diferentes al Representante Legal y al
//!   Contador o Revisor Fiscal, y no repita direcciones electrónicas";
//! - the NIT carries its check digit (DIAN's modulo-11 rule), so a mistyped NIT is caught.
//!
//! The identity numbers' own rules (NIT, ID number) are Colombian rules, not the form's: they
//! live in [`crate::identity`], which the registry's owners and sellers use too.

use serde::{Deserialize, Serialize};

pub use crate::fields::FieldErrors;
use crate::identity::{self, all_digits};
pub use crate::identity::{check_nit, normalise_id_number};
use crate::roles::{OrgKind, Role};

/// A person named on the form with an ID number (legal representative, administrator).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Person {
    /// Identification number (cédula or foreign ID), as typed.
    pub id_number: String,
    /// Full name.
    pub full_name: String,
    /// E-mail 1.
    pub email: String,
    /// E-mail 2 (optional).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email_2: String,
}

/// The accountant or fiscal auditor (section 3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Accountant {
    /// Identification number.
    pub id_number: String,
    /// Full name.
    pub full_name: String,
    /// E-mail.
    pub email: String,
    /// Professional card number (tarjeta profesional).
    pub professional_card: String,
}

/// A contact with the regulator (section 4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Contact {
    /// Full name.
    pub full_name: String,
    /// E-mail.
    pub email: String,
}

/// An organisation's data (sections 1-4 of the form). The administrator (section 5) is a
/// user, created with the organisation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrgData {
    /// The date of the request the regulator received (the form's "Seleccione la fecha",
    /// `YYYY-MM-DD`), of the creation or of the latest change; optional.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub request_date: String,
    /// Identification number (NIT) with its check digit: `900123456-7`.
    pub nit: String,
    /// Legal name (razón social).
    pub legal_name: String,
    /// Correspondence address.
    pub address: String,
    /// E-mail 1.
    pub email: String,
    /// E-mail 2 (optional).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email_2: String,
    /// Department, DIVIPOLA code (2 digits, e.g. `11` Bogotá D.C.).
    pub department: String,
    /// Municipality, DIVIPOLA code (5 digits starting with the department's, e.g. `11001`).
    pub municipality: String,
    /// Phone numbers (at least one).
    pub phones: Vec<String>,
    /// Legal representative (section 2).
    pub legal_representative: Person,
    /// Accountant or fiscal auditor (section 3).
    pub accountant: Accountant,
    /// Up to three contacts (section 4).
    pub contacts: Vec<Contact>,
}

/// A new organisation: its kind, its data, and its administrator.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgForm {
    /// Kind of organisation; decides the roles its users may hold.
    pub kind: Option<OrgKind>,
    /// The form's sections 1-4.
    #[serde(flatten)]
    pub data: OrgData,
    /// The organisation administrator (section 5).
    #[serde(default)]
    pub administrator: Person,
}

/// A user: a natural person of one organisation, with roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserForm {
    /// Identification number, as typed.
    pub id_number: String,
    /// Full name.
    pub full_name: String,
    /// E-mail.
    pub email: String,
    /// Roles; each must be allowed for the organisation's kind.
    pub roles: Vec<Role>,
}

impl OrgForm {
    /// Every problem with the form, by field.
    pub fn validate(&self) -> FieldErrors {
        let mut errors = FieldErrors::default();
        if self.kind.is_none() {
            errors.add(
                "kind",
                "is required: regulator, operator, importer, manufacturer, authority or seller",
            );
        }
        self.data.validate_into(&mut errors);
        validate_person(&self.administrator, "administrator", false, &mut errors);
        errors
    }
}

impl OrgData {
    /// Every problem with sections 1-4, by field.
    pub fn validate(&self) -> FieldErrors {
        let mut errors = FieldErrors::default();
        self.validate_into(&mut errors);
        errors
    }

    fn validate_into(&self, errors: &mut FieldErrors) {
        if !self.request_date.is_empty() {
            request_date(&self.request_date, crate::timefmt::now_unix(), errors);
        }
        if let Err(reason) = check_nit(&self.nit) {
            errors.add("nit", reason);
        }
        required_text(&self.legal_name, "legal_name", 200, errors);
        required_text(&self.address, "address", 200, errors);
        email(&self.email, "email", true, errors);
        email(&self.email_2, "email_2", false, errors);
        let department_ok = self.department.len() == 2 && all_digits(&self.department);
        if !department_ok {
            errors.add(
                "department",
                "must be a 2-digit DIVIPOLA department code, e.g. 11",
            );
        }
        if !(self.municipality.len() == 5 && all_digits(&self.municipality)) {
            errors.add(
                "municipality",
                "must be a 5-digit DIVIPOLA municipality code, e.g. 11001",
            );
        } else if department_ok && !self.municipality.starts_with(&self.department) {
            errors.add(
                "municipality",
                format!(
                    "{} is not in department {}",
                    self.municipality, self.department
                ),
            );
        }
        if self.phones.is_empty() {
            errors.add("phones", "give at least one phone number");
        }
        for (i, phone) in self.phones.iter().enumerate() {
            let digits = phone.chars().filter(char::is_ascii_digit).count();
            let allowed = phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +-()".contains(c));
            if !allowed || !(7..=15).contains(&digits) {
                errors.add(
                    format!("phones[{i}]"),
                    "must be 7 to 15 digits (spaces, +, -, parentheses allowed)",
                );
            }
        }
        validate_person(
            &self.legal_representative,
            "legal_representative",
            true,
            errors,
        );
        let accountant = &self.accountant;
        id_number(&accountant.id_number, "accountant.id_number", errors);
        full_name(&accountant.full_name, "accountant.full_name", errors);
        email(&accountant.email, "accountant.email", true, errors);
        required_text(
            &accountant.professional_card,
            "accountant.professional_card",
            30,
            errors,
        );
        if self.contacts.len() > 3 {
            errors.add("contacts", "at most three contacts");
        }
        let taken_names = [
            normalise_name(&self.legal_representative.full_name),
            normalise_name(&accountant.full_name),
        ];
        let mut taken_emails: Vec<String> = [
            &self.legal_representative.email,
            &self.legal_representative.email_2,
            &accountant.email,
        ]
        .into_iter()
        .filter(|e| !e.is_empty())
        .map(|e| e.trim().to_lowercase())
        .collect();
        for (i, contact) in self.contacts.iter().enumerate() {
            let field = format!("contacts[{i}]");
            full_name(&contact.full_name, &format!("{field}.full_name"), errors);
            email(&contact.email, &format!("{field}.email"), true, errors);
            if taken_names.contains(&normalise_name(&contact.full_name)) {
                errors.add(
                    format!("{field}.full_name"),
                    "must be a person other than the legal representative and the accountant",
                );
            }
            let contact_email = contact.email.trim().to_lowercase();
            if !contact_email.is_empty() {
                if taken_emails.contains(&contact_email) {
                    errors.add(
                        format!("{field}.email"),
                        "repeats an e-mail already given on the form",
                    );
                }
                taken_emails.push(contact_email);
            }
        }
    }
}

impl UserForm {
    /// Every problem with the user, by field, for an organisation of `kind`.
    pub fn validate(&self, kind: OrgKind) -> FieldErrors {
        let mut errors = FieldErrors::default();
        id_number(&self.id_number, "id_number", &mut errors);
        full_name(&self.full_name, "full_name", &mut errors);
        email(&self.email, "email", true, &mut errors);
        validate_roles(&self.roles, kind, &mut errors);
        errors
    }
}

/// Roles must be given, not repeated, and allowed for the organisation's kind.
pub fn validate_roles(roles: &[Role], kind: OrgKind, errors: &mut FieldErrors) {
    if roles.is_empty() {
        errors.add("roles", "give at least one role");
    }
    for (i, role) in roles.iter().enumerate() {
        if !kind.allowed_roles().contains(role) {
            errors.add(
                format!("roles[{i}]"),
                format!(
                    "{} is not a role of {} organisations",
                    role.as_str(),
                    kind.as_str()
                ),
            );
        } else if roles[..i].contains(role) {
            errors.add(
                format!("roles[{i}]"),
                format!("{} is repeated", role.as_str()),
            );
        }
    }
}

fn validate_person(person: &Person, field: &str, second_email: bool, errors: &mut FieldErrors) {
    id_number(&person.id_number, &format!("{field}.id_number"), errors);
    full_name(&person.full_name, &format!("{field}.full_name"), errors);
    email(&person.email, &format!("{field}.email"), true, errors);
    if second_email {
        email(&person.email_2, &format!("{field}.email_2"), false, errors);
    } else if !person.email_2.is_empty() {
        errors.add(format!("{field}.email_2"), "is not a field of this section");
    }
}

/// The request's date: a calendar date, `YYYY-MM-DD`, not after tomorrow (UTC: a request
/// typed in a time zone ahead of UTC may carry tomorrow's UTC date).
fn request_date(text: &str, now: u64, errors: &mut FieldErrors) {
    let shaped = text.len() == 10
        && (text.bytes().enumerate()).all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let day = shaped.then(|| crate::timefmt::parse(text)).flatten();
    match day {
        None => errors.add("request_date", "must be a date YYYY-MM-DD, e.g. 2026-11-23"),
        Some(day) if day > now + 86_400 => {
            errors.add("request_date", format!("{text} is in the future"));
        }
        Some(_) => {}
    }
}

fn required_text(value: &str, field: &str, max: usize, errors: &mut FieldErrors) {
    let value = value.trim();
    if value.is_empty() {
        errors.add(field, "is required");
    } else if value.chars().count() > max {
        errors.add(field, format!("is longer than {max} characters"));
    } else if value.chars().any(char::is_control) {
        errors.add(field, "contains control characters");
    }
}

fn email(value: &str, field: &str, required: bool, errors: &mut FieldErrors) {
    let value = value.trim();
    if value.is_empty() {
        if required {
            errors.add(field, "is required");
        }
        return;
    }
    let valid = value.len() <= 254
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        });
    if !valid {
        errors.add(field, format!("{value:?} is not an e-mail address"));
    }
}

/// Words that make a name a placeholder rather than a person's ("usuarios ficticios").
const PLACEHOLDER_WORDS: &[&str] = &[
    "test",
    "prueba",
    "pruebas",
    "usuario",
    "user",
    "admin",
    "administrador",
    "demo",
    "ninguno",
    "none",
    "null",
    "xxx",
    "nn",
    "fulano",
    "mengano",
    "sutano",
    "perengano",
    "anonimo",
    "anónimo",
];

fn full_name(value: &str, field: &str, errors: &mut FieldErrors) {
    let value = value.trim();
    if value.is_empty() {
        errors.add(field, "is required");
        return;
    }
    let words: Vec<&str> = value.split_whitespace().collect();
    if value.chars().count() > 120 {
        errors.add(field, "is longer than 120 characters");
    } else if !value
        .chars()
        .all(|c| c.is_alphabetic() || c == ' ' || c == '\'' || c == '-' || c == '.')
    {
        errors.add(
            field,
            "may hold only letters, spaces, apostrophes, hyphens and dots",
        );
    } else if words.len() < 2 {
        errors.add(field, "give the full name: given name and surname");
    } else if words
        .iter()
        .any(|w| PLACEHOLDER_WORDS.contains(&w.to_lowercase().trim_matches('.')))
    {
        errors.add(field, "looks like a placeholder, not a person's name");
    }
}

fn normalise_name(name: &str) -> String {
    name.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

fn id_number(value: &str, field: &str, errors: &mut FieldErrors) {
    if let Err(reason) = identity::check_id_number(value) {
        errors.add(field, reason);
    }
}

#[cfg(test)]
pub(crate) mod tests;
