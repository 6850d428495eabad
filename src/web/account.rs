//! "Mi cuenta": every signed-in person sees its own live API tokens, who issued each, and
//! revokes them; and asks for a new password code for itself. So a token an administrator
//! issued for the account (its first credential) is in front of its holder, who can end it.

use maud::html;

use super::layout::{csrf, shell, token_table};
use super::{PageResult, Visit, page, redirect};
use crate::api::off_worker_as;

/// `GET /consola/cuenta`.
///
/// # Errors
/// To sign-in.
pub fn page_of(visit: Visit) -> PageResult {
    let session = visit.signed_in()?;
    let me = session.principal.user;
    let tokens = visit.state.accounts.list_tokens(&session.principal, me)?;
    let roles = super::es::roles(&session.principal.roles);
    let body = html! {
        p { (session.full_name) " · " (session.org_name) " · roles: " (roles) }
        h2 { "Mis tokens de API" }
        p { "Los tokens sirven a máquinas y programas. Si no reconoce uno, revóquelo: deja de funcionar al instante." }
        (token_table(&tokens, (me, "usted"), &session.csrf, "/consola/cuenta/revocar"))
        h2 { "Contraseña" }
        p { "Para cambiarla, pida un código: su contraseña actual deja de servir y esta sesión termina; cree la nueva en " a href="/clave" { "/clave" } " con el código." }
        form method="post" action="/consola/cuenta/clave" {
            (csrf(&session.csrf)) button.secondary type="submit" { "Pedir código para una nueva contraseña" }
        }
    };
    page(&shell(&visit.chrome(), "Mi cuenta", body))
}

/// `POST /consola/cuenta/revocar` (field `token`): revokes one of the person's own tokens.
///
/// # Errors
/// To sign-in; the CSRF page; a refusal (the last regulator administrator's last token) as
/// an error page.
pub async fn revoke(visit: Visit) -> PageResult {
    let (parts, fields) = visit.form().await?;
    let session = parts.signed_in()?.clone();
    let token = fields.get("token").to_owned();
    let me = session.principal.user;
    off_worker_as(&parts.state, &session.principal, move |state, who| {
        Ok(state.accounts.revoke_token(who, me, &token)?)
    })
    .await?;
    Ok(redirect("/consola/cuenta"))
}

/// `POST /consola/cuenta/clave`: a one-time code for the person's own new password. Its
/// password is cleared and its sessions end (this one too), so the page shows the code once,
/// signed out.
///
/// # Errors
/// To sign-in; the CSRF page.
pub async fn new_password(visit: Visit) -> PageResult {
    let (parts, _) = visit.form().await?;
    let session = parts.signed_in()?.clone();
    let me = session.principal.user;
    let code = off_worker_as(&parts.state, &session.principal, move |state, who| {
        Ok(state.accounts.issue_password_setup(who, me)?)
    })
    .await?;
    let chrome = super::layout::Chrome { session: None };
    let body = html! {
        div.notice role="status" {
            p { "Su contraseña anterior ya no sirve y su sesión terminó. Cree la nueva con este código (sirve una vez, por 72 horas):" }
            p.secret { (code) }
            p { a href=(format!("/clave?codigo={code}")) { "Crear la nueva contraseña" } }
        }
    };
    let mut response = super::html(
        hyper::StatusCode::OK,
        &shell(&chrome, "Nueva contraseña", body),
    );
    super::clear_cookie(
        &mut response,
        super::session_cookie(parts.secure),
        parts.secure,
    );
    Ok(response)
}
