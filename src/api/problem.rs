//! API errors and their RFC 7807 / TS 29.571 `ProblemDetails` bodies.
//!
//! One exhaustive `match` maps each error to its HTTP status and machine-readable `cause`
//! (TS 29.500 table 5.2.7.2-1 names where one exists), and the body's `status` comes from that
//! same match, so the two can never disagree. 5xx bodies say little; details go to the log.

use hyper::StatusCode;
use hyper::header::HeaderValue;
use serde::Serialize;

use super::Reply;
use crate::accounts::AccountsError;
use crate::accounts::authority::Refusal;
use crate::registry::{RefusalCause, RegistryError};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Everything a request can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// A query parameter is missing (TS 29.500 `MANDATORY_QUERY_PARAM_MISSING`).
    MissingQueryParam {
        /// Parameter name.
        param: &'static str,
    },
    /// Query, path or body parameters are malformed; each names its parameter.
    InvalidParams {
        /// Where the parameters are: `query`, `path` or `body`, which picks the cause.
        location: ParamLocation,
        /// `(param, reason)` pairs, `param` formatted as TS 29.571 `InvalidParam` says.
        params: Vec<(String, String)>,
    },
    /// The body is not the JSON this endpoint takes (`INVALID_MSG_FORMAT`).
    MalformedBody {
        /// What the parser said.
        detail: String,
    },
    /// The body or batch is larger than allowed.
    PayloadTooLarge {
        /// What the limit is.
        detail: String,
    },
    /// The body's media type is not accepted.
    UnsupportedMediaType {
        /// What is accepted.
        detail: &'static str,
    },
    /// The PEI is on neither list and the interface answers "unknown".
    EquipmentUnknown,
    /// No valid bearer token (missing, malformed, unknown, revoked, deactivated user).
    Unauthenticated,
    /// The token is valid but its user or organisation is suspended.
    Suspended {
        /// `user` or `organisation`.
        what: &'static str,
    },
    /// The caller's roles or scope do not allow this.
    Forbidden,
    /// The caller's rights do not allow this, and the reason is the caller's to know (who may
    /// act on whose account).
    Denied {
        /// Why.
        detail: String,
    },
    /// The named record does not exist.
    ResourceNotFound {
        /// What was looked for (`organisation`, `user`, `token`).
        what: &'static str,
    },
    /// The request would duplicate or contradict existing data.
    Conflict {
        /// What conflicts.
        detail: String,
    },
    /// The decree's rules refuse the request; `cause` names the rule.
    Refused {
        /// Which rule.
        cause: RefusalCause,
        /// The reason.
        detail: String,
    },
    /// The body is well-formed JSON but its fields are not valid; each names its field.
    Unprocessable {
        /// `(field, reason)` pairs.
        params: Vec<(String, String)>,
    },
    /// No such resource.
    NotFound,
    /// The resource exists but not with this method.
    MethodNotAllowed {
        /// Methods that are allowed.
        allow: &'static str,
    },
    /// The caller's requests were refused too often this minute; the rest are refused unread.
    TooManyRefusals {
        /// Seconds until the minute ends.
        retry_after: u64,
    },
    /// The caller's organisation (or everyone) runs as many uploads as allowed at once.
    TooManyUploads {
        /// How many run, and the limits.
        detail: String,
    },
    /// The client sent too many requests to a rate-limited route.
    TooManyRequests {
        /// Seconds until it may try again.
        retry_after: u64,
    },
    /// The server holds as much of a resource as it may (request bodies being read).
    Busy {
        /// What, and what to do.
        detail: &'static str,
    },
    /// The server is a read replica: it answers checks only; everything else goes to the
    /// central.
    ReadOnlyReplica {
        /// The central's base URL.
        central: String,
    },
    /// The server is starting or stopping.
    NotReady,
    /// Something failed inside; details are in the log.
    Internal,
}

/// Where a malformed parameter was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamLocation {
    /// The query string.
    Query,
    /// A path segment.
    Path,
    /// The JSON body.
    Body,
}

#[derive(Serialize)]
struct InvalidParam<'a> {
    param: &'a str,
    reason: &'a str,
}

#[derive(Serialize)]
struct ProblemDetails<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    cause: &'static str,
    #[serde(rename = "invalidParams", skip_serializing_if = "Vec::is_empty")]
    invalid_params: Vec<InvalidParam<'a>>,
}

/// The problem `cause` of each of the registry's refusals: one exhaustive match, so a new
/// refusal cannot reach a client unnamed.
fn refusal_cause(cause: RefusalCause) -> &'static str {
    match cause {
        RefusalCause::EquipmentReported => "EQUIPMENT_REPORTED",
        RefusalCause::EquipmentNotRegistered => "EQUIPMENT_NOT_REGISTERED",
        RefusalCause::OwnerConflict => "OWNER_CONFLICT",
        RefusalCause::OwnerMismatch => "OWNER_MISMATCH",
        RefusalCause::FullExportRequired => "FULL_EXPORT_REQUIRED",
    }
}

impl From<AccountsError> for ApiError {
    /// The one mapping of account errors to HTTP; failures inside are logged here.
    fn from(error: AccountsError) -> ApiError {
        match error {
            AccountsError::Unauthenticated => ApiError::Unauthenticated,
            AccountsError::Suspended(what) => ApiError::Suspended { what },
            AccountsError::Forbidden => ApiError::Forbidden,
            AccountsError::Refused(refusal) => match refusal {
                Refusal::RoleNotForKind { index, .. } => ApiError::Unprocessable {
                    params: vec![(format!("roles[{index}]"), refusal.to_string())],
                },
                Refusal::TooManyTokens | Refusal::LastRegulatorAdmin => ApiError::Conflict {
                    detail: refusal.to_string(),
                },
                Refusal::NotAdministrator
                | Refusal::CannotGrant(_)
                | Refusal::Outranks(_)
                | Refusal::OwnRoles
                | Refusal::HoldsLiveToken => ApiError::Denied {
                    detail: refusal.to_string(),
                },
            },
            AccountsError::NotFound(what) => ApiError::ResourceNotFound { what },
            AccountsError::Conflict(detail) => ApiError::Conflict { detail },
            AccountsError::Invalid(errors) => ApiError::Unprocessable { params: errors.0 },
            AccountsError::AlreadyBootstrapped => ApiError::Conflict {
                detail: error.to_string(),
            },
            AccountsError::Corrupt { .. }
            | AccountsError::Random(_)
            | AccountsError::Store(_)
            | AccountsError::Audit(_) => {
                tracing::error!(error = %error, source = ?std::error::Error::source(&error), "accounts request failed");
                ApiError::Internal
            }
        }
    }
}

impl From<RegistryError> for ApiError {
    /// The one mapping of registry errors to HTTP; failures inside are logged here.
    fn from(error: RegistryError) -> ApiError {
        match error {
            RegistryError::Forbidden => ApiError::Forbidden,
            RegistryError::Invalid(errors) => ApiError::Unprocessable { params: errors.0 },
            RegistryError::Conflict(detail) => ApiError::Conflict { detail },
            RegistryError::NotFound(what) => ApiError::ResourceNotFound { what },
            RegistryError::Refused { cause, detail } => ApiError::Refused { cause, detail },
            RegistryError::Store(_) | RegistryError::Corrupt(_) => {
                tracing::error!(error = %error, source = ?std::error::Error::source(&error), "registry request failed");
                ApiError::Internal
            }
        }
    }
}

impl ApiError {
    /// HTTP status, `cause` and `title`: the one place they are decided.
    pub fn status_and_cause(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::MissingQueryParam { .. } => (
                StatusCode::BAD_REQUEST,
                "MANDATORY_QUERY_PARAM_MISSING",
                "A mandatory query parameter is missing",
            ),
            ApiError::InvalidParams { location, .. } => (
                StatusCode::BAD_REQUEST,
                match location {
                    ParamLocation::Query => "INVALID_QUERY_PARAM",
                    ParamLocation::Path | ParamLocation::Body => "MANDATORY_IE_INCORRECT",
                },
                "Invalid parameters",
            ),
            ApiError::MalformedBody { .. } => (
                StatusCode::BAD_REQUEST,
                "INVALID_MSG_FORMAT",
                "The request body is malformed",
            ),
            ApiError::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "The request is too large",
            ),
            ApiError::UnsupportedMediaType { .. } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "Unsupported media type",
            ),
            ApiError::EquipmentUnknown => (
                StatusCode::NOT_FOUND,
                "ERROR_EQUIPMENT_UNKNOWN",
                "Equipment unknown",
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "RESOURCE_URI_STRUCTURE_NOT_FOUND",
                "No such resource",
            ),
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "A valid API token is required",
            ),
            ApiError::Suspended { .. } => (
                StatusCode::FORBIDDEN,
                "ACCOUNT_SUSPENDED",
                "The account is suspended",
            ),
            ApiError::Forbidden | ApiError::Denied { .. } => (
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "Your roles do not allow this",
            ),
            ApiError::ResourceNotFound { .. } => (
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_FOUND",
                "No such record",
            ),
            ApiError::Conflict { .. } => (
                StatusCode::CONFLICT,
                "RESOURCE_CONFLICT",
                "Conflict with existing data",
            ),
            ApiError::Refused { cause, .. } => (
                StatusCode::CONFLICT,
                refusal_cause(*cause),
                "Refused by the registry's rules",
            ),
            ApiError::Unprocessable { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_INPUT",
                "Invalid fields",
            ),
            ApiError::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "Method not allowed",
            ),
            ApiError::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "Too many requests",
            ),
            ApiError::TooManyRefusals { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REFUSALS",
                "Too many refused requests",
            ),
            ApiError::TooManyUploads { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_UPLOADS",
                "Too many uploads running",
            ),
            ApiError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "NF_CONGESTION", "Busy"),
            ApiError::ReadOnlyReplica { .. } => (
                StatusCode::MISDIRECTED_REQUEST,
                "READ_ONLY_REPLICA",
                "Read replica",
            ),
            ApiError::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                "NF_SERVICE_FAILOVER",
                "Not ready",
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "SYSTEM_FAILURE",
                "Internal error",
            ),
        }
    }

    /// The problem+json reply.
    pub fn into_reply(self) -> Reply {
        let (status, cause, title) = self.status_and_cause();
        let detail = match &self {
            ApiError::MissingQueryParam { param } => {
                Some(format!("query parameter {param} is required"))
            }
            ApiError::MalformedBody { detail }
            | ApiError::PayloadTooLarge { detail }
            | ApiError::Conflict { detail }
            | ApiError::Denied { detail }
            | ApiError::TooManyUploads { detail }
            | ApiError::Refused { detail, .. } => Some(detail.clone()),
            ApiError::Suspended { what } => Some(format!(
                "the {what} is suspended by the regulator; every request is refused until it is reactivated"
            )),
            ApiError::ResourceNotFound { what } => Some(format!("no such {what}")),
            ApiError::TooManyRequests { retry_after } => {
                Some(format!("try again in {retry_after} s"))
            }
            ApiError::TooManyRefusals { retry_after } => Some(format!(
                "too many of your requests were refused this minute (auth.refusals_per_minute); every request of yours but the network checks is refused for {retry_after} s"
            )),
            ApiError::UnsupportedMediaType { detail } | ApiError::Busy { detail } => {
                Some((*detail).to_owned())
            }
            ApiError::MethodNotAllowed { allow } => Some(format!("allowed: {allow}")),
            ApiError::ReadOnlyReplica { central } => Some(format!(
                "this server is a read replica: it answers network checks and public lookups only; send reports, registrations, activations and administration to the central registry at {central}"
            )),
            ApiError::InvalidParams { .. }
            | ApiError::Unprocessable { .. }
            | ApiError::Unauthenticated
            | ApiError::Forbidden
            | ApiError::EquipmentUnknown
            | ApiError::NotFound
            | ApiError::NotReady
            | ApiError::Internal => None,
        };
        let invalid_params = match &self {
            ApiError::InvalidParams { params, .. } | ApiError::Unprocessable { params } => params
                .iter()
                .map(|(param, reason)| InvalidParam { param, reason })
                .collect(),
            _ => Vec::new(),
        };
        let body = ProblemDetails {
            kind: "about:blank",
            title,
            status: status.as_u16(),
            detail: detail.as_deref(),
            cause,
            invalid_params,
        };
        let header = match self {
            ApiError::MethodNotAllowed { allow } => {
                Some((hyper::header::ALLOW, HeaderValue::from_static(allow)))
            }
            ApiError::Unauthenticated => Some((
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"imeidb\""),
            )),
            ApiError::TooManyRequests { retry_after }
            | ApiError::TooManyRefusals { retry_after } => {
                Some((hyper::header::RETRY_AFTER, HeaderValue::from(retry_after)))
            }
            ApiError::TooManyUploads { .. } => {
                Some((hyper::header::RETRY_AFTER, HeaderValue::from_static("10")))
            }
            ApiError::Busy { .. } => {
                Some((hyper::header::RETRY_AFTER, HeaderValue::from_static("1")))
            }
            _ => None,
        };
        Reply {
            status,
            content_type: PROBLEM_JSON,
            header,
            body: serde_json::to_vec(&body).unwrap_or_default().into(),
        }
    }

    /// The problem+json response for hyper.
    pub fn into_response(self) -> super::HttpResponse {
        self.into_reply().into_response()
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::CONTENT_TYPE;

    use super::*;

    #[test]
    fn body_status_matches_http_status() {
        let errors = [
            ApiError::MissingQueryParam { param: "pei" },
            ApiError::InvalidParams {
                location: ParamLocation::Query,
                params: vec![("query pei".into(), "bad".into())],
            },
            ApiError::MalformedBody { detail: "x".into() },
            ApiError::PayloadTooLarge { detail: "x".into() },
            ApiError::UnsupportedMediaType { detail: "x" },
            ApiError::EquipmentUnknown,
            ApiError::Unauthenticated,
            ApiError::TooManyRequests { retry_after: 5 },
            ApiError::TooManyUploads { detail: "x".into() },
            ApiError::TooManyRefusals { retry_after: 9 },
            ApiError::Suspended { what: "user" },
            ApiError::Forbidden,
            ApiError::Denied { detail: "x".into() },
            ApiError::ResourceNotFound { what: "user" },
            ApiError::Conflict { detail: "x".into() },
            ApiError::Refused {
                cause: RefusalCause::OwnerConflict,
                detail: "x".into(),
            },
            ApiError::Unprocessable {
                params: vec![("nit".into(), "bad".into())],
            },
            ApiError::NotFound,
            ApiError::MethodNotAllowed { allow: "GET" },
            ApiError::Busy { detail: "x" },
            ApiError::NotReady,
            ApiError::Internal,
        ];
        for e in errors {
            let response = e.into_response();
            let status = response.status().as_u16();
            assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
            let body = response.into_body();
            let bytes = futures_body(body);
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(json["status"], status);
            assert!(json["cause"].is_string());
        }
    }

    fn futures_body(body: super::super::Body) -> bytes::Bytes {
        use http_body_util::BodyExt;
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(body.collect())
            .unwrap()
            .to_bytes()
    }
}
