//! Authorised sellers (art. 2.2.11.3): operators and the regulator record who may sell
//! devices; the public searches them (`public.rs`). `registry::sellers` decides.

use serde_json::{Value, json};

use super::routes::Call;
use super::{ApiError, AppState, HttpResponse, json_body, json_value, off_worker_as};
use crate::registry::sellers::{Seller, SellerForm};

/// `POST /v1/sellers`: records an authorisation, or updates the one of the same NIT.
pub async fn record(call: Call) -> Result<HttpResponse, ApiError> {
    let who = call.who()?.clone();
    let form: SellerForm = json_body(&call.state, call.request).await?;
    off_worker_as(&call.state, &who, move |state, who| {
        let seller = state.registry.record_seller(who, form)?;
        Ok(json_value(&seller_json(state, &seller)))
    })
    .await
}

/// A seller as shown: its form and who authorised it.
pub fn seller_json(state: &AppState, seller: &Seller) -> Value {
    let mut value = serde_json::to_value(&seller.form).unwrap_or_default();
    value["authorised_by"] = json!({
        "org": seller.authorised_by,
        "name": state.accounts.org_name(seller.authorised_by),
    });
    value
}
