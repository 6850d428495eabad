//! The pages' Spanish for what the domain says in English (the API's language): organisation
//! kinds, roles and audit actions by exhaustive matches, so a new one cannot reach a page
//! unnamed; and the domain's reasons (a field's error, a refusal's detail) through one
//! catalogue of English templates and their Spanish, as gettext does with its message ids.
//! The rules stay where they are; this file only says in Spanish what they said. A reason the
//! catalogue does not know is shown as it came (`tests` walk every form's validation so that
//! none is left).

use std::borrow::Cow;

use crate::audit::{Action, Outcome};
use crate::registry::RefusalCause;
use crate::roles::{OrgKind, Role};

/// An organisation kind's name.
pub fn kind(kind: OrgKind) -> &'static str {
    match kind {
        OrgKind::Regulator => "Regulador",
        OrgKind::Operator => "Operador",
        OrgKind::Importer => "Importador",
        OrgKind::Manufacturer => "Fabricante",
        OrgKind::Authority => "Autoridad",
        OrgKind::Seller => "Vendedor autorizado",
    }
}

/// A role's name.
pub fn role(role: Role) -> &'static str {
    match role {
        Role::RegulatorAdmin => "Administrador del regulador",
        Role::OrgAdmin => "Administrador de la organización",
        Role::Operator => "Operador",
        Role::Importer => "Importador",
        Role::Manufacturer => "Fabricante",
        Role::Authority => "Autoridad",
        Role::Auditor => "Auditor",
    }
}

/// Roles' names, joined.
pub fn roles(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| role(*r))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an audit entry's action did.
pub fn action(action: Action) -> &'static str {
    match action {
        Action::Bootstrap => "registro iniciado",
        Action::OrgCreate => "organización creada",
        Action::OrgUpdate => "organización cambiada",
        Action::OrgSuspend => "organización suspendida",
        Action::OrgReactivate => "organización reactivada",
        Action::UserCreate => "usuario creado",
        Action::UserUpdate => "usuario cambiado",
        Action::UserDeactivate => "usuario desactivado",
        Action::UserActivate => "usuario activado",
        Action::UserSuspend => "usuario suspendido",
        Action::UserReactivate => "usuario reactivado",
        Action::TokenCreate => "token emitido",
        Action::TokenRevoke => "token revocado",
        Action::ListImport => "lista importada",
        Action::ReportCreate => "reporte de hurto o extravío",
        Action::ReportRecover => "recuperación",
        Action::NegativeConsult => "consulta de una autoridad",
        Action::Activation => "activación",
        Action::OwnerTransfer => "traspaso",
        Action::SellerRecord => "vendedor autorizado registrado",
        Action::Registration => "registro de equipos",
        Action::ExchangeExport => "lista negativa exportada",
        Action::ExchangeImport => "lista extranjera importada",
        Action::AccessThrottle => "solicitudes rechazadas limitadas",
        Action::PasswordSetup => "código de contraseña emitido",
        Action::PasswordSet => "contraseña establecida",
        Action::SignIn => "entrada a la consola",
        Action::SignOut => "salida de la consola",
        Action::BackupCreate => "copia de seguridad",
        Action::ReplicationSnapshot => "instantánea para una réplica",
    }
}

/// How an audit entry's attempt ended.
pub fn outcome(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Done => "hecho",
        Outcome::Denied => "negado (sin permiso)",
        Outcome::Refused => "rechazado (por una regla)",
        Outcome::Failed => "falló",
    }
}

/// What a registry refusal means, for the person who met it.
pub fn refusal(cause: RefusalCause) -> &'static str {
    match cause {
        RefusalCause::EquipmentReported => {
            "El IMEI está en la lista negativa (reportado como hurtado o extraviado): no se puede activar."
        }
        RefusalCause::EquipmentNotRegistered => {
            "El IMEI no está registrado: se necesita una prueba de adquisición legal (una factura, o el recibo y la homologación de una importación personal)."
        }
        RefusalCause::OwnerConflict => {
            "El IMEI está asociado a otro propietario: el último propietario debe autorizar primero un traspaso."
        }
        RefusalCause::OwnerMismatch => {
            "El propietario actual indicado no es el que consta en el registro."
        }
        RefusalCause::FullExportRequired => {
            "Una carga masiva cambió la lista negativa: pida la lista completa y luego los cambios posteriores."
        }
    }
}

/// English templates (`{}` a value) and their Spanish (`{0}`, `{1}`... the values in the
/// English order). A value that is an organisation kind's or a role's code is named in Spanish.
const CATALOGUE: &[(&str, &str)] = &[
    // accounts: the user form (SER)
    ("is required", "es obligatorio"),
    (
        "must be a date YYYY-MM-DD, e.g. 2026-11-23",
        "debe ser una fecha AAAA-MM-DD (p. ej. 2026-11-23)",
    ),
    ("{} is in the future", "{0} es una fecha futura"),
    (
        "is required: regulator, operator, importer, manufacturer, authority or seller",
        "es obligatorio: regulador, operador, importador, fabricante, autoridad o vendedor autorizado",
    ),
    (
        "must be a 2-digit DIVIPOLA department code, e.g. 11",
        "debe ser el código DIVIPOLA del departamento, de 2 dígitos (p. ej. 11)",
    ),
    (
        "must be a 5-digit DIVIPOLA municipality code, e.g. 11001",
        "debe ser el código DIVIPOLA del municipio, de 5 dígitos (p. ej. 11001)",
    ),
    (
        "{} is not in department {}",
        "el municipio {0} no está en el departamento {1}",
    ),
    (
        "give at least one phone number",
        "escriba al menos un teléfono",
    ),
    (
        "must be 7 to 15 digits (spaces, +, -, parentheses allowed)",
        "debe tener de 7 a 15 dígitos (se admiten espacios, +, - y paréntesis)",
    ),
    ("at most three contacts", "a lo sumo tres contactos"),
    (
        "must be a person other than the legal representative and the accountant",
        "debe ser una persona distinta del representante legal y del contador",
    ),
    (
        "repeats an e-mail already given on the form",
        "repite un correo electrónico ya escrito en el formulario",
    ),
    ("give at least one role", "elija al menos un rol"),
    (
        "{} is not a role of {} organisations",
        "{0} no es un rol de una organización de tipo {1}",
    ),
    ("{} is repeated", "{0} está repetido"),
    (
        "is not a field of this section",
        "no es un campo de esta sección",
    ),
    (
        "is longer than {} characters",
        "tiene más de {0} caracteres",
    ),
    (
        "contains control characters",
        "contiene caracteres de control",
    ),
    (
        "{} is not an e-mail address",
        "{0} no es una dirección de correo electrónico",
    ),
    (
        "may hold only letters, spaces, apostrophes, hyphens and dots",
        "solo puede tener letras, espacios, apóstrofos, guiones y puntos",
    ),
    (
        "give the full name: given name and surname",
        "escriba el nombre completo: nombres y apellidos",
    ),
    (
        "looks like a placeholder, not a person's name",
        "parece un nombre de relleno, no el de una persona",
    ),
    // identity: ID numbers and NITs
    (
        "may hold only digits and letters (dots, spaces, dashes ignored)",
        "solo puede tener dígitos y letras (se ignoran puntos, espacios y guiones)",
    ),
    (
        "must have 5 to 15 digits or letters",
        "debe tener de 5 a 15 dígitos o letras",
    ),
    (
        "looks like a placeholder, not a real identification number",
        "parece un número de relleno, no una identificación real",
    ),
    (
        "{} lacks its check digit: write it as 900123456-7",
        "a {0} le falta el dígito de verificación: escríbalo como 900123456-7",
    ),
    (
        "{}: the number must be 5 to 15 digits",
        "{0}: el número debe tener de 5 a 15 dígitos",
    ),
    (
        "{}: the check digit of {} is {}",
        "{0}: el dígito de verificación de {1} es {2}",
    ),
    // accounts: users, credentials
    (
        "an account is personal and not transferable: create a new user instead",
        "una cuenta es personal e intransferible: cree un usuario nuevo",
    ),
    ("is assigned by the registry", "lo asigna el registro"),
    (
        "a user cannot move to another organisation",
        "un usuario no puede pasar a otra organización",
    ),
    (
        "give the token a name of 1 to 64 characters, e.g. core-network-1",
        "dé al token un nombre de 1 a 64 caracteres, p. ej. core-network-1",
    ),
    ("use at least {} characters", "use al menos {0} caracteres"),
    ("use at most {} characters", "use a lo sumo {0} caracteres"),
    (
        "must not be your e-mail",
        "no puede ser su correo electrónico",
    ),
    (
        "the code is wrong, already used or expired: ask your administrator for a new one",
        "el código es incorrecto, ya se usó o venció: pida uno nuevo a su administrador",
    ),
    (
        "you do not administer the users of this organisation",
        "usted no administra los usuarios de esta organización",
    ),
    ("you may not grant {}", "usted no puede otorgar el rol {0}"),
    (
        "the account holds {}, which you may not grant, so you may not act on it",
        "la cuenta tiene el rol {0}, que usted no puede otorgar; por eso no puede actuar sobre ella",
    ),
    (
        "nobody changes its own roles: another administrator must make the change",
        "nadie cambia sus propios roles: otro administrador debe hacer el cambio",
    ),
    (
        "the user holds a live credential (a token, or a web password for a token): only that user issues more (revoke its tokens, or issue a new password code, first to issue a replacement)",
        "el usuario tiene una credencial vigente (un token, o una contraseña web): solo él emite otras (para emitirle una de reemplazo, revoque primero sus tokens o emita un nuevo código de contraseña)",
    ),
    (
        "a user holds at most {} live tokens: revoke one first",
        "un usuario tiene a lo sumo {0} tokens vigentes: revoque uno primero",
    ),
    (
        "this is the last active regulator administrator: make another one first",
        "es el último administrador activo del regulador: cree otro primero",
    ),
    (
        "an organisation with NIT {} exists already (org/{})",
        "ya existe una organización con el NIT {0} (organización {1})",
    ),
    (
        "NIT {} belongs to org/{}",
        "el NIT {0} es de la organización {1}",
    ),
    (
        "this ID number already holds an account; accounts are personal, one per person",
        "ese número de identificación ya tiene una cuenta; las cuentas son personales, una por persona",
    ),
    (
        "the e-mail {} already signs in another account: give each person its own",
        "con el correo {0} ya entra otra cuenta: cada persona necesita el suyo",
    ),
    (
        "the e-mail {} already signs in another account: ask the regulator to correct one of them",
        "con el correo {0} ya entra otra cuenta: pida al regulador que corrija una de ellas",
    ),
    (
        "an administrator cannot suspend itself",
        "un administrador no puede suspenderse a sí mismo",
    ),
    // registry: reports, activations, transfers, sellers
    (
        "must be \"stolen\" or \"lost\"",
        "debe ser hurto (\"stolen\") o extravío (\"lost\")",
    ),
    (
        "an authority reports as \"authority\"",
        "una autoridad reporta como autoridad (\"authority\")",
    ),
    (
        "must be \"user\" or \"authority\"",
        "debe ser usuario (\"user\") o autoridad (\"authority\")",
    ),
    (
        "the reporting user's identification number is required",
        "se requiere el número de identificación del usuario que reporta",
    ),
    (
        "must be 5 to 15 digits or letters",
        "debe tener de 5 a 15 dígitos o letras",
    ),
    (
        "only for reports by a user; an authority's report carries its case reference",
        "solo en reportes de un usuario; el de una autoridad lleva la referencia de su caso",
    ),
    (
        "the case or report reference is required",
        "se requiere la referencia del caso o del reporte",
    ),
    (
        "at most 100 printable characters",
        "a lo sumo 100 caracteres imprimibles",
    ),
    (
        "when it happened is required (e.g. 2026-11-20T18:30:00Z)",
        "se requiere cuándo ocurrió (p. ej. 2026-11-20T18:30:00Z)",
    ),
    ("is in the future", "está en el futuro"),
    (
        "expected RFC 3339 UTC (2026-11-20T18:30:00Z), a date, or Unix seconds",
        "se espera fecha y hora RFC 3339 en UTC (2026-11-20T18:30:00Z), una fecha o segundos Unix",
    ),
    ("must be one of {}", "debe ser uno de {0}"),
    (
        "is required (at most 100 printable characters)",
        "es obligatorio (a lo sumo 100 caracteres imprimibles)",
    ),
    (
        "must be the owner's identification number",
        "debe ser el número de identificación del propietario",
    ),
    (
        "must be the IMEI being activated",
        "debe ser el IMEI que se activa",
    ),
    (
        "must be \"invoice\" or \"personal_import\"",
        "debe ser factura (\"invoice\") o importación personal (\"personal_import\")",
    ),
    (
        "the last owner's authorisation is required: \"letter\" (with letter_reference and purchase_proof) or \"owner_present\"",
        "se requiere la autorización del último propietario: carta (\"letter\", con su referencia y la prueba de compra) o propietario presente (\"owner_present\")",
    ),
    (
        "a NIT with its check digit (900123456-7) or an ID number of 5 to 15 characters",
        "un NIT con su dígito de verificación (900123456-7) o un número de identificación de 5 a 15 caracteres",
    ),
    (
        "is required (printable text)",
        "es obligatorio (texto imprimible)",
    ),
    ("may not contain '/'", "no puede contener '/'"),
    ("a date, YYYY-MM-DD", "una fecha, AAAA-MM-DD"),
    (
        "is before valid_from",
        "es anterior al inicio de la vigencia",
    ),
    // the audit trail's filters (`api/admin.rs`)
    (
        "expected a user id",
        "se espera el número (id) de un usuario",
    ),
    (
        "expected an organisation id",
        "se espera el número (id) de una organización",
    ),
    (
        "expected an action name such as org.create",
        "se espera una acción de la lista",
    ),
    (
        "expected RFC 3339 UTC (2026-11-23T00:00:00Z), a date, or Unix seconds",
        "se espera fecha y hora RFC 3339 en UTC (2026-11-23T00:00:00Z), una fecha o segundos Unix",
    ),
    (
        "expected an entry number",
        "se espera el número de una entrada",
    ),
    ("expected 1 to 1000", "se espera de 1 a 1000"),
    ("unknown parameter", "no es un filtro de esta página"),
    // IMEI and IMSI (`imei.rs`, `imsi.rs`)
    ("IMEI is empty", "el IMEI está vacío"),
    (
        "IMEI has a non-digit character at position {}",
        "el IMEI tiene un carácter que no es un dígito en la posición {0}",
    ),
    (
        "IMEI has {} digits; expected 14 (TAC+SNR), 15 (with check digit) or 16 (IMEISV)",
        "el IMEI tiene {0} dígitos; se esperan 14 (TAC y número de serie), 15 (con el dígito de verificación) o 16 (IMEISV)",
    ),
    (
        "PEI '{}-' must be followed by {} digits, found {}",
        "tras '{0}-' deben venir {1} dígitos; hay {2}",
    ),
    (
        "IMEI check digit is {}, but the first 14 digits require {}",
        "el dígito de verificación del IMEI es {0}, pero los 14 primeros dígitos exigen {1}",
    ),
    (
        "IMSI has {} digits; expected 5 to 15",
        "el IMSI tiene {0} dígitos; se esperan de 5 a 15",
    ),
    (
        "IMSI has a non-digit character at position {}",
        "el IMSI tiene un carácter que no es un dígito en la posición {0}",
    ),
    // uploads: a line's reason after its column (`line_reason`), and the upload's own
    (
        "duplicate of line {} of this upload",
        "repetido: es el de la línea {0} de esta carga",
    ),
    ("duplicate of line {}", "repetido: es el de la línea {0}"),
    (
        "on the negative list (reported stolen or lost)",
        "está en la lista negativa (reportado como hurtado o extraviado)",
    ),
    (
        "registered by another registrant",
        "lo registró otro registrante",
    ),
    ("the line is not UTF-8 text", "la línea no es texto UTF-8"),
    (
        "not a JSON object with string fields: {}",
        "no es un objeto JSON con campos de texto: {0}",
    ),
    (
        "has {} fields, the header has {}",
        "tiene {0} campos y el encabezado {1}",
    ),
    ("not valid UTF-8", "no es texto UTF-8 válido"),
    ("longer than 200 bytes", "tiene más de 200 bytes"),
    (
        "contains a control character",
        "contiene un carácter de control",
    ),
    (
        "the CSV header must name imei, manufacturer, model and reference; missing: {}",
        "el encabezado del CSV debe nombrar las columnas imei, manufacturer, model y reference; falta: {0}",
    ),
    (
        "the upload is larger than {} bytes (registrations.max_upload_mb); the first {} lines were processed (job {})",
        "el archivo pasa de {0} bytes (registrations.max_upload_mb); se procesaron sus primeras {1} líneas (carga {2}) y quedaron registradas las aceptadas",
    ),
    (
        "after line {}: {}; the batches before it are registered",
        "después de la línea {0}: {1}; los lotes anteriores quedaron registrados",
    ),
    (
        "the form could not be read: it was cut off, or held more than 1 MiB before its file",
        "no se pudo leer el formulario: llegó cortado, o traía más de 1 MiB antes del archivo",
    ),
    (
        "the form carries no file: choose the CSV file and send it again",
        "el formulario no trae ningún archivo: elija el archivo CSV y envíelo de nuevo",
    ),
];

/// Why an uploaded line was rejected, in Spanish: `column: reason` with the reason
/// translated (the column is the file's own header name), or the whole reason.
pub fn line_reason(text: &str) -> String {
    if let Some((column, rest)) = text.split_once(": ")
        && !column.is_empty()
        && column.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        && let Some(spanish) = translate(rest)
    {
        return format!("{column}: {spanish}");
    }
    reason(text).into_owned()
}

/// A domain reason in Spanish, or as it came if the catalogue does not know it.
pub fn reason(text: &str) -> Cow<'_, str> {
    match translate(text) {
        Some(spanish) => Cow::Owned(spanish),
        None => Cow::Borrowed(text),
    }
}

/// A domain reason in Spanish, if the catalogue knows it.
fn translate(text: &str) -> Option<String> {
    CATALOGUE.iter().find_map(|(english, spanish)| {
        let values = capture(english, text)?;
        Some(fill(spanish, &values))
    })
}

/// `spanish` with each `{i}` replaced by value `i`, in one pass: a value that itself holds
/// `{1}` (typed by someone) stays as typed.
fn fill(spanish: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(spanish.len() + 32);
    let mut rest = spanish;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let slot = after
            .find('}')
            .and_then(|close| Some((after[..close].parse::<usize>().ok()?, close)));
        match slot.and_then(|(i, close)| Some((values.get(i)?, close))) {
            Some((value, close)) => {
                out.push_str(code(value));
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The values of `template`'s `{}`s in `text`, if `text` is the template filled in (each
/// value not empty, and as short as lets the rest match).
fn capture<'a>(template: &str, text: &'a str) -> Option<Vec<&'a str>> {
    let mut parts = template.split("{}");
    let first = parts.next().unwrap_or("");
    let mut rest = text.strip_prefix(first)?;
    let mut values = Vec::new();
    let parts: Vec<&str> = parts.collect();
    for (i, literal) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let at = if last {
            // the last literal ends the text
            rest.len()
                .checked_sub(literal.len())
                .filter(|&at| rest.get(at..) == Some(*literal))?
        } else if literal.is_empty() {
            return None; // two values side by side: ambiguous, not in the catalogue
        } else {
            rest.find(literal)?
        };
        if at == 0 {
            return None;
        }
        values.push(&rest[..at]);
        rest = &rest[at + literal.len()..];
    }
    (rest.is_empty()).then_some(values)
}

/// A kind's or a role's code named in Spanish; anything else as it is.
fn code(value: &str) -> &str {
    if let Some(k) = OrgKind::ALL.iter().find(|k| k.as_str() == value) {
        return kind(*k);
    }
    if let Some(r) = Role::ALL.iter().find(|r| r.as_str() == value) {
        return role(*r);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::forms::{OrgForm, UserForm};
    use crate::identity;
    use crate::imei::Imei;

    #[test]
    fn a_template_takes_its_values_and_nothing_else() {
        assert_eq!(reason("is required"), "es obligatorio");
        assert_eq!(reason("is required!"), "is required!");
        assert_eq!(
            reason("11001 is not in department 05"),
            "el municipio 11001 no está en el departamento 05"
        );
        assert_eq!(
            reason("auditor is not a role of seller organisations"),
            "Auditor no es un rol de una organización de tipo Vendedor autorizado"
        );
        assert_eq!(
            reason("\"800197268-5\": the check digit of 800197268 is 4"),
            "\"800197268-5\": el dígito de verificación de 800197268 es 4"
        );
        // an empty value is not a value
        assert_eq!(reason(" is repeated"), " is repeated");
        assert_eq!(reason("something new"), "something new");
        // a value is put in once, as typed
        assert_eq!(
            reason("\"9001{1}\": the check digit of 9001 is 4"),
            "\"9001{1}\": el dígito de verificación de 9001 es 4"
        );
    }

    proptest::proptest! {
        /// Any text, typed values inside a reason included (accents, symbols, braces): a
        /// translation or the text itself, never a panic.
        #[test]
        fn any_text_is_translated_or_kept(value in "\\PC{0,40}", tail in "\\PC{0,12}") {
            for (english, _) in CATALOGUE {
                let filled = english.replace("{}", &value);
                let _ = reason(&filled);
                let _ = reason(&format!("{filled}{tail}"));
                let _ = reason(&format!("{tail}{filled}"));
            }
            let _ = reason(&value);
        }
    }

    #[test]
    fn a_value_with_multibyte_letters_near_a_template_end_is_no_panic() {
        for text in [
            "\"1-éééééaa\": the number must be 5 to 15 digits",
            "Policía 1234567",
            "ñ is repeated",
            "ééééééééééééééééééééééééééééééééééééééééééé",
        ] {
            let _ = reason(text);
        }
        assert_eq!(
            reason("\"1-éééééaa\": the number must be 5 to 15 digits"),
            "\"1-éééééaa\": el número debe tener de 5 a 15 dígitos"
        );
    }

    #[test]
    fn every_reason_an_upload_rejects_a_line_for_is_in_spanish() {
        use crate::registry::import::RejectReason;
        let reasons = [
            RejectReason::Imei(Imei::parse("35-20930").unwrap_err()),
            RejectReason::Imei(Imei::parse("490154203237519").unwrap_err()),
            RejectReason::Duplicate { first: 7 },
            RejectReason::OnNegativeList,
            RejectReason::Field {
                column: "model",
                problem: "not valid UTF-8",
            },
            RejectReason::Field {
                column: "reference",
                problem: "longer than 200 bytes",
            },
            RejectReason::Field {
                column: "manufacturer",
                problem: "contains a control character",
            },
            RejectReason::Field {
                column: "kind",
                problem: "must be \"stolen\" or \"lost\"",
            },
            RejectReason::Field {
                column: "reference",
                problem: "at most 100 printable characters",
            },
            RejectReason::RegisteredByAnother,
            RejectReason::DuplicateInUpload { first: 12 },
            RejectReason::NotUtf8,
            RejectReason::Json("expected value".into()),
            RejectReason::FieldCount {
                found: 3,
                expected: 4,
            },
        ];
        for why in reasons {
            let english = why.to_string();
            let spanish = line_reason(&english);
            assert_ne!(spanish, english, "not in the catalogue: {english}");
        }
        assert_eq!(
            line_reason("imei: duplicate of line 12 of this upload"),
            "imei: repetido: es el de la línea 12 de esta carga"
        );
        // what the catalogue does not know stays as it came
        assert_eq!(line_reason("imei: <b>x</b>"), "imei: <b>x</b>");
    }

    #[test]
    fn every_template_is_well_formed() {
        for (english, spanish) in CATALOGUE {
            let values = english.matches("{}").count();
            for i in 0..values {
                assert!(spanish.contains(&format!("{{{i}}}")), "{english}: {{{i}}}");
            }
            assert!(!spanish.contains(&format!("{{{values}}}")), "{english}");
            assert!(!english.contains("{}{}"), "{english}");
            // a template is reached by its own text filled in
            let filled = english.replace("{}", "7");
            assert!(translate(&filled).is_some(), "{english}");
        }
    }

    /// Every reason the forms' validation gives, for forms with every field wrong, is in the
    /// catalogue.
    #[test]
    fn the_catalogue_knows_every_reason_the_forms_give() {
        let mut reasons: Vec<String> = Vec::new();
        let wrong_org = serde_json::json!({
            "nit": "800197268", "legal_name": "", "address": "a\u{7}b", "email": "no-es-correo",
            "email_2": "x@", "department": "1", "municipality": "05001", "phones": ["12"],
            "legal_representative": { "id_number": "1111111", "full_name": "Ana", "email": "" , "email_2": "y" },
            "accountant": { "id_number": "12.3", "full_name": "Usuario Prueba", "email": "c@d.co", "professional_card": "" },
            "contacts": [
                { "full_name": "Ana María Gómez Ruiz1", "email": "c@d.co" },
                { "full_name": "Ana", "email": "e@f.co" },
                { "full_name": "Luis Pérez", "email": "g@h.co" },
                { "full_name": "Luis Gómez", "email": "i@j.co" }
            ],
            "administrator": { "id_number": "", "full_name": "", "email": "", "email_2": "z@w.co" }
        });
        let org: OrgForm = serde_json::from_value(wrong_org).unwrap();
        reasons.extend(org.validate().0.into_iter().map(|(_, r)| r));
        let mut other = org.data.clone();
        other.nit = "800197268-5".into();
        other.department = "11".into();
        other.municipality = "05001".into();
        other.phones.clear();
        other.legal_name = "x".repeat(201);
        reasons.extend(other.validate().0.into_iter().map(|(_, r)| r));
        other.nit = "12-3".into();
        other.request_date = "3/12/2026".into();
        reasons.extend(other.validate().0.into_iter().map(|(_, r)| r));
        other.request_date = "9999-12-31".into();
        reasons.extend(other.validate().0.into_iter().map(|(_, r)| r));
        for kind in OrgKind::ALL {
            let user: UserForm = serde_json::from_value(serde_json::json!({
                "id_number": "abc$", "full_name": "x".repeat(121), "email": "", "roles": ["auditor", "auditor", "regulator_admin"],
            }))
            .unwrap();
            reasons.extend(user.validate(kind).0.into_iter().map(|(_, r)| r));
        }
        let no_roles: UserForm = serde_json::from_value(serde_json::json!({
            "id_number": "1020304050", "full_name": "Ana María Gómez", "email": "a@b.co", "roles": [],
        }))
        .unwrap();
        reasons.extend(
            no_roles
                .validate(OrgKind::Operator)
                .0
                .into_iter()
                .map(|(_, r)| r),
        );
        for number in ["", "abc$", "123", "123456789"] {
            reasons.extend(identity::check_id_number(number).err().map(str::to_owned));
        }
        for typed in ["", "35-20930", "1234", "490154203237519", "imei-12345"] {
            reasons.extend(Imei::parse(typed).err().map(|e| e.to_string()));
        }
        for typed in ["12", "31015012345678x"] {
            reasons.extend(crate::imsi::Imsi::parse(typed).err().map(|e| e.to_string()));
        }
        assert!(reasons.len() > 40, "{reasons:?}");
        let unknown: Vec<&String> = reasons.iter().filter(|r| translate(r).is_none()).collect();
        assert!(unknown.is_empty(), "not in the catalogue: {unknown:#?}");
    }
}
