//! Who is calling the RPC, and what it may do (`specs/rpc-clients.md`).
//!
//! A call carries one credential: the vendor's `rpc.token` (admin), or the token of one of the
//! `[[rpc.clients]]`, scoped to the hosted organisations it names (or admin). Every route has a
//! class ([`class_of`]): *open* routes (reads of public network state) serve any credential,
//! *tenant* routes serve any credential but their handler checks that the caller may act as the
//! organisation the request names (`Caller::act_as`, in [`super::tenancy`]), and every other
//! route is admin-only.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;
use sha2::{Digest, Sha256};

use crate::config::RpcConfig;

/// What a credential may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every route, as every hosted organisation.
    Admin,
    /// Open and tenant routes, acting only as these DIDs.
    Tenants(BTreeSet<String>),
}

/// The authenticated caller of one request (in the request's extensions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The client's name (`admin` for `rpc.token`, and for every call when no credential is
    /// configured).
    pub name: String,
    pub scope: Scope,
    /// The request's method and route, for the audit log.
    pub route: String,
}

impl Caller {
    /// The caller of a node that asks for no credential (loopback, nothing configured).
    pub fn unauthenticated_admin() -> Self {
        Caller {
            name: "admin".into(),
            scope: Scope::Admin,
            route: String::new(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.scope == Scope::Admin
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    /// The caller the authentication put in the request; a request that did not pass it (none
    /// does on the router) would be the least privileged caller: no tenant.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned().unwrap_or(Caller {
            name: "unknown".into(),
            scope: Scope::Tenants(BTreeSet::new()),
            route: String::new(),
        }))
    }
}

/// The credentials the RPC accepts, by the SHA-256 of their tokens.
#[derive(Debug, Default)]
pub struct Clients {
    by_hash: HashMap<[u8; 32], Caller>,
}

impl Clients {
    pub fn from_config(rpc: &RpcConfig) -> Self {
        let mut by_hash = HashMap::new();
        for c in &rpc.clients {
            let mut h = [0u8; 32];
            if hex::decode_to_slice(&c.token_sha256, &mut h).is_err() {
                continue; // the config's validation refuses such a client first
            }
            let scope = if c.admin {
                Scope::Admin
            } else {
                Scope::Tenants(c.tenants.iter().cloned().collect())
            };
            by_hash.insert(
                h,
                Caller {
                    name: c.name.clone(),
                    scope,
                    route: String::new(),
                },
            );
        }
        if let Some(t) = &rpc.token {
            by_hash.insert(
                sha256(t),
                Caller {
                    name: "admin".into(),
                    scope: Scope::Admin,
                    route: String::new(),
                },
            );
        }
        Clients { by_hash }
    }

    /// Whether calls need a credential at all.
    pub fn required(&self) -> bool {
        !self.by_hash.is_empty()
    }

    /// The caller holding `token`, if any.
    pub fn caller(&self, token: &str) -> Option<&Caller> {
        self.by_hash.get(&sha256(token))
    }
}

/// The SHA-256 of a token, as `token_sha256` holds it in hex.
pub fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Any credential: reads of what the network publishes anyway.
    Open,
    /// Any credential; the handler checks the organisation it acts as.
    Tenant,
    /// The admin scope only.
    Admin,
}

/// Open routes: (method, route as the router names it).
pub const OPEN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/openapi.yaml"),
    ("GET", "/status"),
    ("GET", "/v1/status"),
    ("GET", "/v1/node"),
    ("GET", "/v1/transactions"),
    ("GET", "/v1/transactions/{id}"),
    ("GET", "/v1/events"),
    ("GET", "/v1/dids/{did}"),
    ("GET", "/v1/dids/{did}/history"),
    ("GET", "/v1/dids/{did}/endpoints/{type}"),
    ("POST", "/v1/credentials/verify"),
    ("POST", "/v1/presentations/verify"),
    ("GET", "/v1/trust"),
    ("GET", "/v1/directory"),
    ("POST", "/oauth2/introspect"),
    ("POST", "/internal/auth/v2/accesstoken/introspect"),
    ("POST", "/nuts/auth/v2/accesstoken/introspect"),
    ("POST", "/pdp"),
    ("POST", "/pdp/v1/data/{package}/{rule}"),
    ("GET", "/fhir/metadata"),
    ("GET", "/fhir/_history"),
    ("GET", "/fhir/{type}"),
    ("POST", "/fhir/{type}/_search"),
    ("GET", "/fhir/{type}/_history"),
    ("GET", "/fhir/{type}/{id}"),
    ("GET", "/fhir/{type}/{id}/_history"),
    ("GET", "/fhir/{type}/{id}/_history/{vid}"),
];

/// Tenant routes, each with what names the organisation it acts as.
pub const TENANT_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/dids/{did}/keys"),
    ("DELETE", "/v1/dids/{did}/keys/{fragment}"),
    ("POST", "/v1/dids/{did}/keys/{fragment}/rotate"),
    ("PUT", "/v1/dids/{did}/services/{fragment}"),
    ("DELETE", "/v1/dids/{did}/services/{fragment}"),
    ("PUT", "/v1/dids/{did}/controllers"),
    ("POST", "/v1/dids/{did}/deactivate"),
    ("POST", "/v1/credentials"),
    ("POST", "/v1/credentials/publish"),
    ("POST", "/v1/credentials/revoke"),
    ("POST", "/v1/presentations"),
    ("POST", "/v1/private"),
    ("POST", "/v1/localisation/register"),
    ("POST", "/v1/localisation/withdraw"),
    ("POST", "/v1/localisation/lookup"),
    ("POST", "/v1/data/fetch"),
    ("POST", "/v1/consent"),
    ("POST", "/v1/consent/revoke"),
    ("POST", "/v1/access-tokens"),
    ("POST", "/v1/dpop-proofs"),
    (
        "POST",
        "/internal/auth/v2/{subject_id}/request-service-access-token",
    ),
    (
        "POST",
        "/nuts/auth/v2/{subject_id}/request-service-access-token",
    ),
    ("POST", "/internal/auth/v2/dpop/{kid}"),
    ("POST", "/nuts/auth/v2/dpop/{kid}"),
    ("POST", "/v1/credential-offers"),
    ("POST", "/v1/wallet/offers"),
    ("POST", "/v1/wallet/credentials"),
    ("GET", "/v1/wallet/credentials"),
    ("DELETE", "/v1/wallet/credentials"),
    ("POST", "/nvi"),
    ("POST", "/nvi/List"),
    ("GET", "/nvi/List"),
    ("DELETE", "/nvi/List"),
    ("POST", "/nvi/List/_search"),
    ("GET", "/nvi/List/{id}"),
    ("DELETE", "/nvi/List/{id}"),
    ("GET", "/fhir/Consent"),
    ("POST", "/fhir/Consent"),
    ("GET", "/fhir/Consent/{id}"),
    ("PUT", "/fhir/Consent/{id}"),
    ("POST", "/mitz/Subscription"),
    ("GET", "/mitz/Subscription/{id}"),
    ("DELETE", "/mitz/Subscription/{id}"),
    ("POST", "/admin-directory/{ura}"),
    ("POST", "/admin-directory/{ura}/"),
    ("POST", "/admin-directory/{ura}/{type}"),
    ("PUT", "/admin-directory/{ura}/{type}/{id}"),
    ("DELETE", "/admin-directory/{ura}/{type}/{id}"),
];

/// The class of a route (`path` as the router names it); admin-only unless listed.
pub fn class_of(method: &Method, path: &str) -> Class {
    let listed = |table: &[(&str, &str)]| {
        table.iter().any(|(m, p)| {
            *p == path && (*m == method.as_str() || (*m == "GET" && method == Method::HEAD))
        })
    };
    if listed(OPEN_ROUTES) {
        Class::Open
    } else if listed(TENANT_ROUTES) {
        Class::Tenant
    } else {
        Class::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiClient;

    fn client(name: &str, token: &str, tenants: &[&str], admin: bool) -> ApiClient {
        ApiClient {
            name: name.into(),
            token_sha256: hex::encode(sha256(token)),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            admin,
        }
    }

    #[test]
    fn tokens_find_their_clients_and_no_other() {
        let rpc = RpcConfig {
            token: Some("the-vendors-admin-token".into()),
            clients: vec![
                client("ehr-a", "token-of-ehr-a-0001", &["did:knoop:a"], false),
                client("tool", "token-of-the-tool-1", &[], true),
            ],
            ..RpcConfig::default()
        };
        let c = Clients::from_config(&rpc);
        assert!(c.required());
        let a = c.caller("token-of-ehr-a-0001").unwrap();
        assert_eq!(a.name, "ehr-a");
        assert_eq!(a.scope, Scope::Tenants(["did:knoop:a".to_string()].into()));
        assert!(c.caller("token-of-the-tool-1").unwrap().is_admin());
        assert_eq!(c.caller("the-vendors-admin-token").unwrap().name, "admin");
        assert!(c.caller("token-of-ehr-a-0002").is_none());
        assert!(c.caller("").is_none());
        assert!(!Clients::from_config(&RpcConfig::default()).required());
    }

    #[test]
    fn routes_are_admin_only_unless_listed() {
        assert_eq!(class_of(&Method::GET, "/v1/status"), Class::Open);
        assert_eq!(class_of(&Method::HEAD, "/v1/status"), Class::Open);
        assert_eq!(class_of(&Method::POST, "/v1/status"), Class::Admin);
        assert_eq!(class_of(&Method::POST, "/v1/data/fetch"), Class::Tenant);
        assert_eq!(class_of(&Method::POST, "/v1/admin/backup"), Class::Admin);
        assert_eq!(
            class_of(&Method::PUT, "/v1/trust/{type}/{issuer}"),
            Class::Admin
        );
        assert_eq!(class_of(&Method::GET, "/v1/audit"), Class::Admin);
        assert_eq!(class_of(&Method::GET, "/fhir/AuditEvent"), Class::Admin);
        assert_eq!(class_of(&Method::GET, "/no/such/route"), Class::Admin);
    }

    /// Every listed route is one the OpenAPI document describes with that method (a route
    /// renamed without its entry here would silently turn admin-only).
    #[test]
    fn every_listed_route_is_documented() {
        let doc = include_str!("../openapi.yaml");
        for (m, p) in OPEN_ROUTES.iter().chain(TENANT_ROUTES) {
            let block = doc
                .split_once(&format!("\n  {p}:\n"))
                .map(|(_, rest)| rest.split("\n  /").next().unwrap_or_default())
                .unwrap_or_else(|| panic!("{p} is not in openapi.yaml"));
            assert!(
                block.contains(&format!("\n    {}:", m.to_ascii_lowercase()))
                    || block.starts_with(&format!("    {}:", m.to_ascii_lowercase())),
                "{m} {p} is not in openapi.yaml"
            );
        }
    }
}
