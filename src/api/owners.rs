//! Activation and owners (art. 2.2.11.8): an operator activates a device and binds its owner
//! (with proof of legal acquisition for a device on neither list), and changes the owner with
//! the last owner's authorisation. Handlers parse and render; `registry::owners` decides.

use serde_json::json;

use super::routes::Call;
use super::{ApiError, HttpResponse, json_body, json_value, off_worker_as};
use crate::registry::owners::{Activated, ActivationForm, TransferForm};

/// `POST /v1/activations`.
pub async fn activate(call: Call) -> Result<HttpResponse, ApiError> {
    let who = call.who()?.clone();
    let form: ActivationForm = json_body(&call.state, call.request).await?;
    off_worker_as(&call.state, &who, move |state, who| {
        let Activated::Activated { bound, added } = state.registry.activate(who, form)?;
        Ok(json_value(
            &json!({ "activated": true, "ownerBound": bound, "addedToPositiveList": added }),
        ))
    })
    .await
}

/// `POST /v1/imeis/{imei}/owner`.
pub async fn transfer(call: Call) -> Result<HttpResponse, ApiError> {
    let (imei, who) = (call.imei()?, call.who()?.clone());
    let form: TransferForm = json_body(&call.state, call.request).await?;
    off_worker_as(&call.state, &who, move |state, who| {
        state.registry.transfer(who, imei, form)?;
        Ok(json_value(
            &json!({ "imei": imei.to_string(), "ownerChanged": true }),
        ))
    })
    .await
}
