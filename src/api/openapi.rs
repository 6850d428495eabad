//! The OpenAPI 3.1 description of the native API, generated from the route table
//! ([`super::routes::ROUTES`]), so operators' and importers' engineers can generate clients
//! from a document that cannot disagree with the server. Served at `GET /openapi.json`;
//! `docs/openapi.yaml` is the same document, and a test fails when it is not.
//!
//! The N5g-eir route is described by 3GPP (TS 29.511's own OpenAPI document); this one names
//! it and points there rather than copying it.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use super::routes::{Access, Handler, Payload, ROUTES, Route};

/// Where 3GPP publishes the N5g-eir OpenAPI document.
const N5G_EIR_DOCUMENT: &str = "https://forge.3gpp.org/rep/all/5G_APIs/-/blob/REL-17/TS29511_N5g-eir_EquipmentIdentityCheck.yaml";

/// The document as compact JSON bytes, built once (`docs/openapi.yaml` is for reading).
pub fn json() -> &'static [u8] {
    static JSON: LazyLock<Vec<u8>> =
        LazyLock::new(|| serde_json::to_vec(&document()).unwrap_or_default());
    &JSON
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES.iter() {
        let path = paths
            .entry(route.path)
            .or_insert_with(|| Value::Object(Map::new()));
        path[route.method.as_str().to_ascii_lowercase()] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "imeidb",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "The national IMEI registry of Decree 1078 of 2015, Title 11: its native API.",
            "description": "Every route of the server. Errors are RFC 7807 problem+json. \
                x-imeidb-access says who may call a route (open, public: no token, limited per \
                client; check: a token that may check unless auth.open_checks; token: a valid \
                token, the domain then requiring x-imeidb-permission); x-imeidb-answers says \
                whether it answers from memory or may wait on the disk.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "description": "RFC 7807; invalidParams names each wrong field, parameter or line.",
                    "properties": {
                        "type": { "type": "string" },
                        "title": { "type": "string" },
                        "status": { "type": "integer" },
                        "detail": { "type": "string" },
                        "cause": { "type": "string" },
                        "invalidParams": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "param": { "type": "string" },
                                    "reason": { "type": "string" },
                                },
                            },
                        },
                    },
                },
            },
        },
    })
}

/// One operation.
fn operation(route: &Route) -> Value {
    let mut op = json!({
        "operationId": operation_id(route),
        "summary": route.summary,
        "tags": [tag(route.path).unwrap_or("operations")],
        "x-imeidb-access": match route.access {
            Access::Open => "open",
            Access::Public => "public",
            Access::Check => "check",
            Access::Token => "token",
        },
        "x-imeidb-answers": match route.handler {
            Handler::Now(_) => "from memory",
            Handler::Waits(_) => "may wait",
        },
        "security": match route.access {
            Access::Open | Access::Public => json!([]),
            Access::Check | Access::Token => json!([{ "bearer": [] }]),
        },
        "responses": {
            "2XX": { "description": "Done", "content": { success_type(route.path): {} } },
            "default": {
                "description": "A problem",
                "content": {
                    "application/problem+json": {
                        "schema": { "$ref": "#/components/schemas/Problem" },
                    },
                },
            },
        },
    });
    if let Some(permission) = route.permission {
        op["x-imeidb-permission"] = json!(permission.as_str());
    }
    if route.path == super::eir::PATH {
        op["description"] = json!(
            "Defined by 3GPP TS 29.511 (N5g-eir_EquipmentIdentityCheck): its parameters, answers and problems are those of 3GPP's document."
        );
        op["externalDocs"] = json!({ "url": N5G_EIR_DOCUMENT });
    }
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
        })
        .collect();
    parameters.extend(route.query.iter().map(|(name, meaning)| {
        json!({ "name": name, "in": "query", "description": meaning, "schema": { "type": "string" } })
    }));
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    let body = match route.payload {
        Payload::None => None,
        Payload::Json => Some(json!({ "required": true, "content": { "application/json": {} } })),
        Payload::Reason => Some(json!({
            "required": false,
            "content": { "application/json": { "schema": {
                "type": "object",
                "properties": { "reason": { "type": "string" } },
            } } },
        })),
        Payload::Devices => Some(json!({
            "required": true,
            "content": { "text/csv": {}, "application/x-ndjson": {} },
        })),
        Payload::Csv => Some(json!({ "required": true, "content": { "text/csv": {} } })),
    };
    if let Some(body) = body {
        op["requestBody"] = body;
    }
    op
}

/// `get_v1_orgs_org_users`: the method and the path's words.
fn operation_id(route: &Route) -> String {
    let mut id = route.method.as_str().to_ascii_lowercase();
    for word in route.path.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !word.is_empty() {
            id.push('_');
            id.push_str(word);
        }
    }
    id
}

/// The area a route belongs to, by the start of its path: every route has one (a test says
/// so), so a new route is filed where it belongs, never under another area by default.
fn tag(path: &str) -> Option<&'static str> {
    const AREAS: [(&str, &str); 23] = [
        ("/n5g-eir-eic/", "checks"),
        ("/v1/checks", "checks"),
        ("/v1/imeis/{imei}/status", "checks"),
        ("/v1/public/", "public"),
        ("/v1/me", "accounts"),
        ("/v1/orgs", "accounts"),
        ("/v1/users/", "accounts"),
        ("/v1/audit", "audit"),
        ("/v1/registrations", "registrations"),
        ("/v1/exchange/", "exchange"),
        ("/v1/sellers", "sellers"),
        ("/v1/activations", "owners"),
        ("/v1/imeis/{imei}/owner", "owners"),
        ("/v1/reports", "reports"),
        ("/v1/imeis/{imei}/recovery", "reports"),
        ("/v1/imeis/{imei}/history", "reports"),
        ("/v1/negative/", "reports"),
        ("/v1/admin/backups", "backups"),
        ("/v1/replication/", "replication"),
        ("/healthz", "operations"),
        ("/readyz", "operations"),
        ("/metrics", "operations"),
        ("/openapi.json", "operations"),
    ];
    AREAS
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix))
        .map(|&(_, tag)| tag)
}

/// The media type of a route's success (`tests/e2e/authz.rs` compares it with what each
/// route answers).
pub fn success_type(path: &str) -> &'static str {
    match path {
        "/metrics" => "text/plain",
        "/v1/replication/snapshot" => "application/octet-stream",
        p if p.starts_with("/v1/exchange/negative") => "text/csv",
        _ => "application/json",
    }
}

/// `value` as YAML (block style; strings quoted as JSON, which YAML reads alike), for
/// `docs/openapi.yaml`.
pub fn yaml(value: &Value) -> String {
    let mut out = String::new();
    write_yaml(value, 0, &mut out);
    out
}

fn write_yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                out.push_str(&pad);
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_nested(item, indent, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&pad);
                out.push('-');
                write_nested(item, indent, out);
            }
        }
        scalar => {
            out.push_str(&pad);
            out.push_str(&scalar.to_string());
            out.push('\n');
        }
    }
}

/// After `key:` or `-`: a scalar or an empty collection on the same line, anything else below.
fn write_nested(item: &Value, indent: usize, out: &mut String) {
    match item {
        Value::Object(map) if map.is_empty() => out.push_str(" {}\n"),
        Value::Array(items) if items.is_empty() => out.push_str(" []\n"),
        Value::Object(_) | Value::Array(_) => {
            out.push('\n');
            write_yaml(item, indent + 1, out);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar.to_string());
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_filed_under_its_area() {
        for route in ROUTES.iter() {
            assert!(
                tag(route.path).is_some(),
                "{}: add its area to tag()",
                route.path
            );
        }
        assert_eq!(tag("/v1/admin/backups"), Some("backups"));
        assert_eq!(tag("/v1/replication/snapshot"), Some("replication"));
        assert_eq!(tag("/v1/imeis/{imei}/history"), Some("reports"));
    }

    #[test]
    fn every_route_is_described_once_with_its_access() {
        let doc = document();
        let mut operations = 0;
        for route in ROUTES.iter() {
            let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
            assert_eq!(
                op["summary"], route.summary,
                "{} {}",
                route.method, route.path
            );
            let secured = !op["security"].as_array().unwrap().is_empty();
            assert_eq!(
                secured,
                matches!(route.access, Access::Check | Access::Token),
                "{}",
                route.path
            );
            operations += 1;
        }
        let described: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(described, operations);
        let ids: std::collections::HashSet<String> = ROUTES.iter().map(operation_id).collect();
        assert_eq!(ids.len(), ROUTES.len(), "operation ids are unique");
        assert_eq!(
            doc["paths"][super::super::eir::PATH]["get"]["externalDocs"]["url"],
            N5G_EIR_DOCUMENT
        );
    }

    #[test]
    fn the_yaml_reads_back_as_the_document() {
        // a YAML reader is not a dependency: check the emitter on the shapes it writes
        let value = json!({ "a": { "b": [1, "x: y", { "c": true }], "d": {} }, "e": [] });
        assert_eq!(
            yaml(&value),
            "\"a\":\n  \"b\":\n    - 1\n    - \"x: y\"\n    -\n      \"c\": true\n  \"d\": {}\n\"e\": []\n"
        );
    }

    /// `docs/openapi.yaml` is this document. After changing a route, write it anew with
    /// `IMEIDB_WRITE_OPENAPI=1 cargo test --release --lib openapi`.
    #[test]
    fn docs_openapi_yaml_is_the_route_table_s() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml");
        let generated = format!(
            "# Generated from src/api/routes.rs by src/api/openapi.rs; served as GET /openapi.json.\n\
             # Do not edit: IMEIDB_WRITE_OPENAPI=1 cargo test --release --lib openapi writes it.\n{}",
            yaml(&document())
        );
        if std::env::var_os("IMEIDB_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.yaml differs from the route table: run \
             IMEIDB_WRITE_OPENAPI=1 cargo test --release --lib openapi"
        );
    }
}
