//! The token endpoint (spec: `specs/tokens.md`): a requesting organisation presents its
//! organisation credential and its professional's credential in a verifiable presentation
//! (an RFC 7523 `jwt-bearer` assertion: a VC 1.1 presentation JWT for this server; or a Data
//! Integrity presentation bound to a nonce from this node and to its DID), optionally with a
//! client assertion of the software that asks, names a scope (a use case), the patient (by
//! reference) and the purpose, and gets a short-lived access token bound to all of that, if the
//! scope's policy and the patient's consent allow. Every request is audited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use knoop_vc::types::Claims;
use knoop_vc::verify::Verified;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::care::audit::{AuditLog, Event};
use crate::care::dpop::DpopGuard;
use crate::care::localisation::Localisation;
use crate::care::pdp::Pdp;
use crate::identity::credentials::{Credentials, Fetched};
use crate::identity::prefetch::Prefetcher;
use crate::store::expiring::Expiring;
use crate::store::NodeStore;

/// How long a nonce may be used.
const NONCE_TTL: Duration = Duration::from_secs(300);

pub use crate::config::{Policy, Reach};

/// The policies a node starts with when its config names none.
pub fn default_policies() -> Vec<Policy> {
    vec![
        Policy {
            scope: "medication-overview".into(),
            categories: vec!["medication".into(), "allergies".into()],
            roles: Vec::new(),
            purposes: vec!["regular-care".into(), "emergency".into()],
            break_the_glass: true,
            presentation_definition: None,
            implied_consent: None,
            notification: false,
        },
        Policy {
            scope: "discharge-summary".into(),
            categories: vec![
                "summary".into(),
                "problems".into(),
                "medication".into(),
                "allergies".into(),
                "care-plan".into(),
            ],
            roles: Vec::new(),
            purposes: vec!["regular-care".into()],
            break_the_glass: false,
            presentation_definition: None,
            implied_consent: None,
            notification: false,
        },
        // The national data sets (`specs/data-sets.md` §3): the scope names the data set,
        // whose queries are then the only ones the token may make.
        Policy {
            scope: "bgz".into(),
            categories: [
                "summary",
                "medication",
                "allergies",
                "problems",
                "lab",
                "vital-signs",
                "care-plan",
                "encounters",
            ]
            .map(String::from)
            .to_vec(),
            roles: Vec::new(),
            purposes: vec!["regular-care".into()],
            break_the_glass: false,
            presentation_definition: None,
            implied_consent: None,
            notification: false,
        },
        Policy {
            scope: "medicatieoverdracht".into(),
            categories: vec!["medication".into()],
            roles: Vec::new(),
            purposes: vec!["regular-care".into(), "emergency".into()],
            break_the_glass: true,
            presentation_definition: None,
            implied_consent: None,
            notification: false,
        },
        Policy {
            scope: "pzp".into(),
            categories: vec!["care-plan".into()],
            roles: Vec::new(),
            purposes: vec!["regular-care".into(), "emergency".into()],
            break_the_glass: false,
            presentation_definition: None,
            implied_consent: None,
            notification: false,
        },
        // eOverdracht's Notified Pull (`specs/data-sets.md` §8), with knooppunt's scope names:
        // the receiver reads what the sender's implied consents name, and the sender notifies
        // the receiver.
        Policy {
            scope: "eOverdracht-sender".into(),
            categories: Vec::new(),
            roles: Vec::new(),
            purposes: vec!["regular-care".into()],
            break_the_glass: false,
            presentation_definition: None,
            implied_consent: Some("eoverdracht".into()),
            notification: false,
        },
        Policy {
            scope: "eOverdracht-receiver".into(),
            categories: Vec::new(),
            roles: Vec::new(),
            purposes: vec!["regular-care".into()],
            break_the_glass: false,
            presentation_definition: None,
            implied_consent: None,
            notification: true,
        },
    ]
}

/// A token request (form fields of `POST /oauth2/token`), read by [`TokenRequest::from_form`].
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub grant_type: String,
    /// The verifiable presentation: a presentation JWT ([`JWT_BEARER`]) or JSON
    /// ([`GRANT_TYPE`]).
    pub assertion: String,
    /// RFC 7523 §2.2 client authentication: a presentation JWT of the client.
    pub client_assertion: Option<String>,
    /// Nuts RFC021: the DIF Presentation Exchange submission of a `vp_token-bearer` request.
    pub presentation_submission: Option<String>,
    pub scope: String,
    /// The patient reference, `urn:knoop:patient:...` (`None` for a scope not about a patient).
    pub patient: Option<String>,
    /// `None`: the scope's first purpose, for a scope not about a patient.
    pub purpose: Option<String>,
    /// Why, for an emergency (break the glass).
    pub reason: Option<String>,
    /// The organisation (a hosted DID) whose token endpoint was asked (GFI-004): the grant
    /// covers its data only, and the assertion may name its issuer URL as audience. `None`:
    /// the node's endpoint, for every organisation hosted here.
    pub tenant: Option<Tenant>,
}

/// The organisation of a per-organisation token endpoint.
#[derive(Clone, Debug)]
pub struct Tenant {
    /// Its DID.
    pub did: String,
    /// The audiences its endpoint accepts beyond the node's: its issuer URL and token endpoint.
    pub audiences: Vec<String>,
}

/// knoop's first grant type: a Data Integrity presentation bound to a nonce of this node.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:vp_token-bearer";
/// RFC 7523 §2.1 (the national guide's GFI-004): a presentation JWT as the assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 7523 §2.2: the `client_assertion_type` of a JWT client assertion.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Every grant type accepted, the standard one first.
pub const GRANT_TYPES: [&str; 2] = [JWT_BEARER, GRANT_TYPE];

/// Largest value of one token request parameter (a presentation with two credentials is a few
/// KiB; the public API caps the whole body too).
const MAX_PARAM_BYTES: usize = 128 * 1024;

impl TokenRequest {
    /// The token request in an `application/x-www-form-urlencoded` body (RFC 6749 §3.2, §4.5).
    /// Parameters this endpoint does not know (`client_id`, `resource`, ...) are ignored, as
    /// RFC 6749 §3.2 says; a parameter given twice or one that is missing is `invalid_request`,
    /// a grant type outside [`GRANT_TYPES`] is `unsupported_grant_type` (§5.2). A
    /// `client_assertion` needs `client_assertion_type` [`CLIENT_ASSERTION_TYPE`] (RFC 7523
    /// §2.2), else `invalid_client`.
    pub fn from_form(body: &[u8]) -> Result<Self, TokenError> {
        const KNOWN: [&str; 9] = [
            "grant_type",
            "assertion",
            "scope",
            "patient",
            "purpose",
            "reason",
            "client_assertion",
            "client_assertion_type",
            "presentation_submission",
        ];
        let mut found: HashMap<&'static str, String> = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            let Some(name) = KNOWN.iter().find(|n| **n == k) else {
                continue;
            };
            if v.len() > MAX_PARAM_BYTES {
                return Err(refuse("invalid_request", format!("{name} is too long")));
            }
            if found.insert(name, v.into_owned()).is_some() {
                return Err(refuse(
                    "invalid_request",
                    format!("{name} is given more than once"),
                ));
            }
        }
        let grant_type = found
            .remove("grant_type")
            .ok_or_else(|| refuse("invalid_request", "grant_type is required"))?;
        if !GRANT_TYPES.contains(&grant_type.as_str()) {
            return Err(refuse(
                "unsupported_grant_type",
                format!("use {JWT_BEARER}"),
            ));
        }
        let client_assertion = found.remove("client_assertion");
        match (&client_assertion, found.remove("client_assertion_type")) {
            (None, None) => {}
            (Some(_), Some(t)) if t == CLIENT_ASSERTION_TYPE => {}
            (Some(_), _) => {
                return Err(refuse(
                    "invalid_client",
                    format!("client_assertion_type must be {CLIENT_ASSERTION_TYPE}"),
                ))
            }
            (None, Some(_)) => {
                return Err(refuse(
                    "invalid_request",
                    "client_assertion_type without client_assertion",
                ))
            }
        }
        let presentation_submission = found.remove("presentation_submission");
        let mut required = |name: &'static str| {
            found
                .remove(name)
                .ok_or_else(|| refuse("invalid_request", format!("{name} is required")))
        };
        Ok(TokenRequest {
            grant_type,
            client_assertion,
            presentation_submission,
            assertion: required("assertion")?,
            scope: required("scope")?,
            patient: found.remove("patient"),
            purpose: found.remove("purpose"),
            reason: found.remove("reason"),
            tenant: None,
        })
    }
}

/// The Presentation Exchange definition of a policy: its file (checked at config load), or the
/// default: one organisation credential (`CareOrganizationCredential` or `X509Credential`) and
/// one professional credential (`HealthcareProfessionalCredential` or `DeziUserCredential`).
pub fn presentation_definition(p: &Policy) -> Value {
    if let Some(def) = p
        .presentation_definition
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
    {
        return def;
    }
    let organisation = serde_json::json!(
        {"id": "organization", "name": "The requesting care organisation",
         "constraints": {"fields": [{"path": ["$.type"], "filter": {"type": "array",
             "contains": {"enum": ["CareOrganizationCredential", "X509Credential"]}}}]}});
    if p.reach() != Reach::Patient {
        return serde_json::json!({"id": p.scope, "input_descriptors": [organisation]});
    }
    serde_json::json!({
        "id": p.scope,
        "input_descriptors": [
            {"id": "organization", "name": "The requesting care organisation",
             "constraints": {"fields": [{"path": ["$.type"], "filter": {"type": "array",
                 "contains": {"enum": ["CareOrganizationCredential", "X509Credential"]}}}]}},
            {"id": "professional", "name": "The professional who asks",
             "constraints": {"fields": [{"path": ["$.type"], "filter": {"type": "array",
                 "contains": {"enum": ["HealthcareProfessionalCredential", "DeziUserCredential"]}}}]}}
        ]
    })
}

/// The URA of the organisation `org` from a verified `X509Credential` about it: the fifth
/// field of the UZI `otherName` (`specs/did-x509.md` §1), e.g. `90000382` in
/// `2.16.528.1.1007.99.2110-1-900025039-S-90000382-00.000-00000000`.
fn x509_organisation_ura(c: &Verified, org: &str) -> Option<String> {
    let is_x509 = c.credential["type"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "X509Credential"));
    let subject = &c.credential["credentialSubject"];
    if !is_x509 || subject["id"].as_str() != Some(org) {
        return None;
    }
    uzi_ura(subject["san"]["otherName"].as_str()?)
}

/// The URA in a UZI `otherName` string (OID-prefix-version-UZI number-type-URA-...).
pub fn uzi_ura(other_name: &str) -> Option<String> {
    let ura = other_name.split('-').nth(4)?;
    (ura.len() == 8 && ura.bytes().all(|b| b.is_ascii_digit())).then(|| ura.to_owned())
}

/// The professional of a verified `DeziUserCredential` whose organisation is `org`: the
/// credential's URA (`credentialSubject.identifier`) must be the organisation credential's, as
/// the national guide binds a Dezi attestation to its holder (the attestation names no DID).
/// The professional's reference is the Dezi number as `urn:oid:2.16.528.1.1007.3.1:<number>`.
fn dezi_professional(
    c: &Verified,
    org: &str,
    org_ura: &str,
) -> Option<knoop_vc::types::HealthcareProfessional> {
    if !knoop_vc::dezi::is_dezi(&c.credential) || org_ura.is_empty() {
        return None;
    }
    let subject = &c.credential["credentialSubject"];
    if subject["identifier"].as_str() != Some(org_ura) {
        return None;
    }
    let e = &subject["employee"];
    let text = |name: &str| e[name].as_str().unwrap_or_default();
    let number = text("identifier");
    let name = [text("initials"), text("surnamePrefix"), text("surname")]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!number.is_empty()).then(|| knoop_vc::types::HealthcareProfessional {
        id: format!("urn:oid:2.16.528.1.1007.3.1:{number}"),
        name,
        role_code: text("role").to_owned(),
        register_id: number.to_owned(),
        employer: org.to_owned(),
    })
}

/// The flat introspection claims ([`Grant::claims`]) of the organisation (its credential and
/// URA) and, when one asked, the professional.
fn flat_claims(
    organisation: &Verified,
    ura: &str,
    professional: Option<(&Verified, &knoop_vc::types::HealthcareProfessional)>,
) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, v: &str| {
        if !v.is_empty() {
            out.insert(k.to_owned(), Value::String(v.to_owned()));
        }
    };
    put("organization_ura", ura);
    let subject = &organisation.credential["credentialSubject"];
    let (name, city) = match &organisation.claims {
        Claims::CareOrganization(o) => (o.legal_name.clone(), o.city.clone()),
        // An X509Credential: the certificate subject's O and L.
        _ => {
            let s = if subject.is_array() {
                &subject[0]["subject"]
            } else {
                &subject["subject"]
            };
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (text("O"), text("L"))
        }
    };
    put("organization_name", &name);
    put("organization_city", &city);
    if let Some((c, p)) = professional {
        put("user_id", &p.register_id);
        put("user_role", &p.role_code);
        put("user_name", &p.name);
        if knoop_vc::dezi::is_dezi(&c.credential) {
            let e = &c.credential["credentialSubject"]["employee"];
            for (claim, field) in [
                ("user_initials", "initials"),
                ("user_surname_prefix", "surnamePrefix"),
                ("user_surname", "surname"),
            ] {
                put(claim, e[field].as_str().unwrap_or_default());
            }
        }
    }
    out
}

/// The claims of `credentials`, grouped by subject DID: every `credentialSubject` member but
/// `id` and `type`, each as `[{value, iss, iat, exp}]` (GFI-006 `assertions`).
fn assertions(credentials: &[&Verified]) -> Value {
    let mut out = serde_json::Map::new();
    for c in credentials {
        let subject = c.claims.subject().to_owned();
        let entry = out
            .entry(subject)
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        let Some(claims) = c.credential["credentialSubject"].as_object() else {
            continue;
        };
        for (name, value) in claims {
            if name == "id" || name == "type" {
                continue;
            }
            let mut meta = serde_json::json!({"value": value, "iss": c.issuer});
            if let Some(iat) = c.valid_from_ms {
                meta["iat"] = (iat / 1000).into();
            }
            if let Some(exp) = c.valid_until_ms {
                meta["exp"] = (exp / 1000).into();
            }
            if let Some(list) = entry
                .as_object_mut()
                .map(|o| {
                    o.entry(name.clone())
                        .or_insert_with(|| Value::Array(Vec::new()))
                })
                .and_then(Value::as_array_mut)
            {
                list.push(meta);
            }
        }
    }
    Value::Object(out)
}

/// The issuer of the authorization server of the organisation `tenant` (the method-specific id
/// of a hosted did:knoop DID) under the public API's `base` URL (GFI-004: one per organisation).
pub fn tenant_issuer(base: &str, tenant: &str) -> String {
    format!("{}/oauth2/{tenant}", base.trim_end_matches('/'))
}

/// The authorization server metadata (RFC 8414 §2) under the public API's `base` URL: the
/// node's (`tenant` `None`, issuer `base`, token endpoint `/oauth2/token`) or an organisation's
/// (issuer [`tenant_issuer`], token endpoint `<issuer>/token`).
pub fn server_metadata(base: &str, tenant: Option<&str>, scopes: &[String]) -> Value {
    let base = base.trim_end_matches('/');
    let (issuer, token_endpoint) = match tenant {
        None => (base.to_owned(), format!("{base}/oauth2/token")),
        Some(t) => {
            let issuer = tenant_issuer(base, t);
            let token = format!("{issuer}/token");
            (issuer, token)
        }
    };
    serde_json::json!({
        "issuer": issuer,
        "token_endpoint": token_endpoint,
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt"],
        "grant_types_supported": GRANT_TYPES,
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": knoop_vc::jws::Alg::names(),
        "response_types_supported": [],
        "scopes_supported": scopes,
        "dpop_signing_alg_values_supported": knoop_vc::jws::Alg::names(),
        // Nuts RFC021 §3 and §5.
        "presentation_definition_endpoint": match tenant {
            None => format!("{base}/presentation_definition"),
            Some(t) => format!("{}/presentation_definition", tenant_issuer(base, t)),
        },
        "vp_formats": {
            "jwt_vp": {"alg": knoop_vc::jws::Alg::names()},
            "jwt_vc": {"alg": knoop_vc::jws::Alg::names()},
        },
        "knoop_nonce_endpoint": format!("{base}/oauth2/nonce"),
    })
}

/// What a token allows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Grant {
    pub requester: String,
    pub professional: String,
    pub scope: String,
    pub patient: String,
    pub purpose: String,
    /// Tenant (holder DID) → categories it may share under this token.
    pub holdings: Vec<(String, Vec<String>)>,
    pub break_the_glass: bool,
    pub issued_ms: u64,
    pub expires_ms: u64,
    /// A unique id of the token (`jti`).
    pub id: String,
    /// The requester and its professional as flat claims, the names knooppunt's Nuts access
    /// policies give them in introspection (`organization_ura`, `organization_name`,
    /// `organization_city`, `user_id`, `user_role`, `user_name`, and for a Dezi attestation
    /// `user_initials`, `user_surname_prefix`, `user_surname`), so a policy enforcement point
    /// written for knooppunt maps them unchanged.
    pub claims: serde_json::Map<String, Value>,
    /// A workflow grant (no patient, one organisation's `holdings` without categories): the
    /// consent scope of the implied consents it reads by (`specs/data-sets.md` §8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implied_consent: Option<String>,
    /// A notification grant: it posts Notified Pull notifications to its one holding.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notification: bool,
    /// The presented identity claims the grant rests on, grouped by subject DID (the national
    /// guide's GFI-006 `assertions`): claim name → `[{value, iss, iat, exp}]`.
    pub assertions: Value,
    /// The RFC 7638 thumbprint of the key the token is bound to (DPoP, RFC 9449 §6), or `None`
    /// for a bearer token.
    pub jkt: Option<String>,
    /// The client that authenticated with a client assertion (its DID), and the claims of the
    /// credentials it presented (as `assertions`).
    pub client: Option<(String, Value)>,
}

impl Grant {
    /// `DPoP` for a key-bound token, else `Bearer`.
    pub fn token_type(&self) -> &'static str {
        if self.jkt.is_some() {
            "DPoP"
        } else {
            "Bearer"
        }
    }
}

/// An OAuth2 error (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    pub error: &'static str,
    pub description: String,
}

fn refuse(error: &'static str, description: impl Into<String>) -> TokenError {
    TokenError {
        error,
        description: description.into(),
    }
}

/// The token service of this node.
pub struct Tokens {
    /// Decides whether a scope may be granted (the built-in token policy).
    pdp: Arc<Pdp>,
    credentials: Arc<Credentials>,
    prefetch: Arc<Prefetcher>,
    localisation: Arc<Localisation>,
    audit: Arc<AuditLog>,
    node_did: String,
    policies: Vec<Policy>,
    lifetime: Duration,
    /// The presentation nonces handed out, until used or expired (in the store, so that any
    /// replica of the node takes what another gave out).
    nonces: Expiring,
    /// The grants of the tokens issued, by the token's digest, until they expire.
    tokens: Expiring,
    dpop: DpopGuard,
    require_dpop: bool,
    /// DIDs of resource servers that may introspect every token (config).
    introspection_clients: Vec<String>,
    /// The Presentation Exchange definition of each scope (RFC021).
    definitions: HashMap<String, Value>,
    /// What a presentation JWT's `aud` may name: this node's DID, and once the public API is
    /// bound its base URL (the RFC 8414 issuer) and token endpoint.
    audiences: Mutex<Vec<String>>,
    /// (issuer, jti) of the presentation JWTs used, until they expire, against replay.
    used_jtis: Expiring,
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::Engine::encode(&base64::prelude::BASE64_URL_SAFE_NO_PAD, b)
}

impl Tokens {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pdp: Arc<Pdp>,
        credentials: Arc<Credentials>,
        prefetch: Arc<Prefetcher>,
        localisation: Arc<Localisation>,
        audit: Arc<AuditLog>,
        node_did: String,
        policies: Vec<Policy>,
        lifetime: Duration,
        require_dpop: bool,
        introspection_clients: Vec<String>,
        store: Arc<dyn NodeStore>,
    ) -> Self {
        let definitions = policies
            .iter()
            .map(|p| (p.scope.clone(), presentation_definition(p)))
            .collect();
        Tokens {
            pdp,
            credentials,
            prefetch,
            localisation,
            audit,
            policies,
            lifetime,
            nonces: Expiring::lazy(store.clone(), "vp-nonce"),
            tokens: Expiring::new(store.clone(), "token"),
            dpop: DpopGuard::new(store.clone()),
            require_dpop,
            introspection_clients,
            definitions,
            audiences: Mutex::new(vec![node_did.clone()]),
            used_jtis: Expiring::new(store, "vp-jti"),
            node_did,
        }
    }

    /// Accepts `url` (the public API's base URL), its token endpoint and its introspection
    /// endpoint as audiences of presentation JWTs.
    pub fn add_public_url(&self, url: &str) {
        if let Ok(mut a) = self.audiences.lock() {
            let base = url.trim_end_matches('/');
            for aud in [
                base.to_owned(),
                format!("{base}/oauth2/token"),
                format!("{base}/oauth2/introspect"),
            ] {
                if !a.contains(&aud) {
                    a.push(aud);
                }
            }
        }
    }

    /// A presentation JWT id may be used once while it is live.
    fn use_jti(&self, issuer: &str, jti: &str, exp: i64) -> Result<(), TokenError> {
        // Remembered for as long as the assertion could still be accepted.
        let until = u64::try_from(exp.saturating_add(knoop_vc::presentation::VP_JWT_SKEW_S))
            .unwrap_or(0)
            .saturating_mul(1000);
        let fresh = self
            .used_jtis
            .insert_new(&[issuer.as_bytes(), jti.as_bytes()], until)
            .map_err(|e| {
                tracing::warn!(error = %e, "the assertion replay cache is unavailable");
                refuse("invalid_grant", "replay cache unavailable; retry later")
            })?;
        if !fresh {
            return Err(refuse(
                "invalid_grant",
                "the assertion (jti) was used before",
            ));
        }
        Ok(())
    }

    /// Verifies a presentation JWT (the grant's or the client's) for this server and uses up
    /// its id; refusals carry `error`.
    fn verify_jwt(
        &self,
        jwt: &str,
        error: &'static str,
        fetched: &Fetched,
        extra_audiences: &[String],
    ) -> Result<knoop_vc::presentation::VerifiedPresentation, TokenError> {
        let mut audiences = self.audiences.lock().map(|a| a.clone()).unwrap_or_default();
        audiences.extend(extra_audiences.iter().cloned());
        let auds: Vec<&str> = audiences.iter().map(String::as_str).collect();
        let v = self
            .credentials
            .verify_presentation_jwt(jwt, &auds, fetched, crate::care::dpop::now_s())
            .map_err(|e| refuse(error, format!("{}: {e}", e.code())))?;
        self.use_jti(&v.presentation.holder, &v.jti, v.expires_s)
            .map_err(|e| refuse(error, e.description))?;
        Ok(v.presentation)
    }

    /// The DPoP nonces and replay cache shared by the token endpoint and the data proxy.
    pub fn dpop(&self) -> &DpopGuard {
        &self.dpop
    }

    /// Whether a token request must carry a DPoP proof (config `tokens.require_dpop`).
    pub fn require_dpop(&self) -> bool {
        self.require_dpop
    }

    /// Lifetime of the tokens issued here.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The Presentation Exchange definition of `scope` (RFC021 §5), if it is a scope here.
    pub fn definition(&self, scope: &str) -> Option<&Value> {
        self.definitions.get(scope)
    }

    /// The scopes of this node's policies.
    pub fn scopes(&self) -> Vec<String> {
        self.policies.iter().map(|p| p.scope.clone()).collect()
    }

    /// The audience a presentation must name (`domain`): this node's DID.
    pub fn audience(&self) -> &str {
        &self.node_did
    }

    /// A fresh single-use nonce for a presentation's `challenge`.
    pub fn nonce(&self) -> Result<String, knoop_gossip::StoreError> {
        let n = random_token();
        let until = knoop_gossip::tx::now_ms() + NONCE_TTL.as_millis() as u64;
        self.nonces.put(&[n.as_bytes()], &[], until)?;
        Ok(n)
    }

    fn take_nonce(&self, n: &str) -> bool {
        self.nonces
            .take(&[n.as_bytes()])
            .inspect_err(|e| tracing::warn!(error = %e, "taking a presentation nonce failed"))
            .ok()
            .flatten()
            .is_some()
    }

    /// Deletes expired tokens, nonces and replay-cache entries from the store.
    pub fn sweep(&self) -> Result<usize, knoop_gossip::StoreError> {
        Ok(self.tokens.sweep()?
            + self.nonces.sweep()?
            + self.used_jtis.sweep()?
            + self.dpop.sweep()?)
    }

    /// Decides a token request; audits the outcome either way. `jkt` is the thumbprint of the
    /// key of the request's DPoP proof, checked by the caller: the token is bound to it. What
    /// the presentations need from the web (status lists, did:web documents) is fetched first.
    pub async fn request(
        self: &Arc<Self>,
        req: TokenRequest,
        jkt: Option<String>,
    ) -> Result<(String, Grant), TokenError> {
        let mut inputs = vec![serde_json::from_str(&req.assertion)
            .unwrap_or_else(|_| Value::String(req.assertion.clone()))];
        if let Some(c) = &req.client_assertion {
            inputs.push(Value::String(c.clone()));
        }
        let fetched = self
            .prefetch
            .fetch(&inputs.iter().collect::<Vec<_>>())
            .await;
        let t = self.clone();
        tokio::task::spawn_blocking(move || t.request_now(&req, jkt, &fetched))
            .await
            .unwrap_or_else(|_| Err(refuse("server_error", "the token task failed")))
    }

    /// [`Tokens::request`] with everything fetched.
    fn request_now(
        &self,
        req: &TokenRequest,
        jkt: Option<String>,
        fetched: &Fetched,
    ) -> Result<(String, Grant), TokenError> {
        let mut event = Event {
            kind: "token".into(),
            peer: "http".into(),
            purpose: req.purpose.clone().unwrap_or_default(),
            scope: req.scope.clone(),
            patient: req.patient.clone().unwrap_or_default(),
            ..Default::default()
        };
        let res = self.decide(req, &mut event, fetched);
        event.outcome = match &res {
            Ok(g) if g.break_the_glass => "granted_break_the_glass".into(),
            Ok(_) => "granted".into(),
            Err(e) => format!("{}: {}", e.error, e.description),
        };
        if let Ok(g) = &res {
            event.categories = g.holdings.iter().flat_map(|h| h.1.clone()).collect();
        }
        self.audit.append(event);
        let mut grant = res?;
        grant.jkt = jkt;
        let token = random_token();
        let kept = serde_json::to_vec(&grant)
            .map_err(|e| e.to_string())
            .and_then(|g| {
                self.tokens
                    .put(&[token.as_bytes()], &g, grant.expires_ms)
                    .map_err(|e| e.0)
            });
        if let Err(e) = kept {
            tracing::warn!(error = %e, "the token could not be stored; refused");
            return Err(refuse(
                "temporarily_unavailable",
                "the token could not be stored; retry later",
            ));
        }
        Ok((token, grant))
    }

    fn decide(
        &self,
        req: &TokenRequest,
        event: &mut Event,
        fetched: &Fetched,
    ) -> Result<Grant, TokenError> {
        if !GRANT_TYPES.contains(&req.grant_type.as_str()) {
            return Err(refuse(
                "unsupported_grant_type",
                format!("use {JWT_BEARER}"),
            ));
        }
        let policy = self.policies.iter().find(|p| p.scope == req.scope);
        let reach = policy.map_or(Reach::Patient, Policy::reach);
        let purpose = match (&req.purpose, policy) {
            (Some(p), _) => p.clone(),
            // A workflow scope needs no purpose: its own.
            (None, Some(p)) if reach != Reach::Patient => {
                p.purposes.first().cloned().unwrap_or_default()
            }
            (None, _) => return Err(refuse("invalid_request", "purpose is required")),
        };
        event.purpose = purpose.clone();
        // The scope and purpose, by the built-in token policy (Rego, `specs/pdp.md` §6).
        self.policy_allows(&req.scope, &purpose, None)?;
        let policy = policy
            .ok_or_else(|| refuse("invalid_scope", format!("unknown scope {}", req.scope)))?;
        let patient = match (reach, &req.patient) {
            (Reach::Patient, Some(p)) => {
                Some(knoop_privacy::patient::parse_reference(p).ok_or_else(|| {
                    refuse("invalid_request", "patient must be a patient reference")
                })?)
            }
            (Reach::Patient, None) => return Err(refuse("invalid_request", "patient is required")),
            (_, Some(_)) => {
                return Err(refuse(
                    "invalid_request",
                    format!(
                        "scope {} is not about a patient: send no patient",
                        req.scope
                    ),
                ))
            }
            (_, None) => None,
        };
        let extra_audiences: &[String] = req.tenant.as_ref().map_or(&[], |t| &t.audiences);
        let client = match &req.client_assertion {
            None => None,
            Some(jwt) => {
                let c = self.verify_jwt(jwt, "invalid_client", fetched, extra_audiences)?;
                let creds: Vec<&Verified> = c.credentials.iter().collect();
                Some((c.holder.clone(), assertions(&creds)))
            }
        };
        let verified = if req.grant_type == JWT_BEARER {
            self.verify_jwt(&req.assertion, "invalid_grant", fetched, extra_audiences)?
        } else if let Some(submission) = &req.presentation_submission {
            self.verify_rfc021(req, submission, fetched, extra_audiences)?
        } else {
            self.verify_nonce_presentation(&req.assertion, fetched)?
        };
        let org = verified.holder.clone();
        event.requester = org.clone();
        // The organisation: a CareOrganizationCredential, or the national guide's
        // X509Credential (a UZI server certificate), about the holder.
        let (org_credential, org_ura) = verified
            .credentials
            .iter()
            .find_map(|c| match &c.claims {
                Claims::CareOrganization(o) if o.id == org => Some((c, o.ura.clone())),
                _ => x509_organisation_ura(c, &org).map(|ura| (c, ura)),
            })
            .ok_or_else(|| {
                refuse(
                    "invalid_grant",
                    "the presentation holds no organisation credential of its holder \
                     (CareOrganizationCredential or X509Credential)",
                )
            })?;
        let professional = verified.credentials.iter().find_map(|c| match &c.claims {
            Claims::HealthcareProfessional(p) if p.employer == org => Some((c, p.clone())),
            _ => dezi_professional(c, &org, &org_ura).map(|p| (c, p)),
        });
        let now = knoop_gossip::tx::now_ms();
        let Some(p) = patient else {
            // A workflow scope: the organisation's own endpoint was asked, and the grant is
            // for that organisation; a professional is optional.
            let tenant = req.tenant.as_ref().ok_or_else(|| {
                refuse(
                    "invalid_request",
                    format!(
                        "scope {} is granted by an organisation's own token endpoint \
                         (/oauth2/<organisation>/token), not the node's",
                        req.scope
                    ),
                )
            })?;
            let mut credentials = vec![org_credential];
            let mut who = String::new();
            if let Some((c, p)) = &professional {
                self.policy_allows(&req.scope, &purpose, Some(&p.role_code))?;
                event.who = format!("{} ({})", p.name, p.id);
                who = p.id.clone();
                credentials.push(c);
            }
            let claims = flat_claims(
                org_credential,
                &org_ura,
                professional.as_ref().map(|(c, p)| (*c, p)),
            );
            return Ok(Grant {
                claims,
                requester: org,
                professional: who,
                scope: policy.scope.clone(),
                patient: String::new(),
                purpose,
                holdings: vec![(tenant.did.clone(), Vec::new())],
                break_the_glass: false,
                issued_ms: now,
                expires_ms: now + self.lifetime.as_millis() as u64,
                id: crate::identity::issuing::urn_uuid(),
                assertions: assertions(&credentials),
                jkt: None,
                client,
                implied_consent: policy.implied_consent.clone(),
                notification: policy.notification,
            });
        };
        let (professional_credential, professional) = professional.ok_or_else(|| {
            refuse(
                "invalid_grant",
                "the presentation holds no professional credential of an employee \
                 (HealthcareProfessionalCredential, or a DeziUserCredential of the \
                 organisation's URA)",
            )
        })?;
        event.who = format!("{} ({})", professional.name, professional.id);
        event.role = professional.role_code.clone();
        self.policy_allows(&req.scope, &purpose, Some(&professional.role_code))?;
        let emergency = purpose == "emergency";
        let reason = req.reason.as_deref().unwrap_or_default().trim();
        let in_scope = |holdings: Vec<(String, Vec<String>)>| -> Vec<(String, Vec<String>)> {
            holdings
                .into_iter()
                .map(|(h, cats)| {
                    let c: Vec<String> = cats
                        .into_iter()
                        .filter(|c| policy.categories.contains(c))
                        .collect();
                    (h, c)
                })
                .filter(|(_, c)| !c.is_empty())
                .collect()
        };
        let opt_out = self.localisation.opt_out();
        // At an organisation's own endpoint, only its data (GFI-004).
        let of_tenant = |holdings: Vec<(String, Vec<String>)>| match &req.tenant {
            None => holdings,
            Some(t) => holdings.into_iter().filter(|(h, _)| *h == t.did).collect(),
        };
        let mut granted = in_scope(of_tenant(
            self.localisation.holdings_for(&p, &org, &purpose, opt_out),
        ));
        let mut btg = false;
        if granted.is_empty() && emergency && policy.break_the_glass && !reason.is_empty() {
            // Break the glass: what is held in scope and not objected to, without consent.
            granted = in_scope(of_tenant(
                self.localisation.holdings_for(&p, &org, &purpose, true),
            ));
            btg = !granted.is_empty();
            event.reason = reason.to_owned();
        }
        if granted.is_empty() {
            return Err(refuse(
                "access_denied",
                "no data in this scope may be shared with the requester (consent, or none held)",
            ));
        }
        Ok(Grant {
            claims: flat_claims(
                org_credential,
                &org_ura,
                Some((professional_credential, &professional)),
            ),
            requester: org,
            professional: professional.id,
            scope: policy.scope.clone(),
            patient: req.patient.clone().unwrap_or_default(),
            purpose,
            holdings: granted,
            break_the_glass: btg,
            issued_ms: now,
            expires_ms: now + self.lifetime.as_millis() as u64,
            id: crate::identity::issuing::urn_uuid(),
            assertions: assertions(&[org_credential, professional_credential]),
            jkt: None,
            client,
            implied_consent: None,
            notification: false,
        })
    }

    /// The built-in token policy's verdict, as an RFC 6749 refusal.
    fn policy_allows(
        &self,
        scope: &str,
        purpose: &str,
        role: Option<&str>,
    ) -> Result<(), TokenError> {
        self.pdp
            .decide_token(scope, purpose, role)
            .map_err(|(error, description)| {
                let error = match error.as_str() {
                    "invalid_scope" => "invalid_scope",
                    "access_denied" => "access_denied",
                    _ => "server_error",
                };
                refuse(error, description)
            })
    }

    /// Nuts RFC021 (§4.1, §4.2, §4.4): a presentation JWT for this server with `sub` = `iss`,
    /// a client `nonce` used once, `nbf` and `exp` at most 5 s apart, every credential about
    /// the holder, and a presentation submission that satisfies the scope's definition.
    /// Refusals are `invalid_request`, as RFC021 §4.5 says.
    fn verify_rfc021(
        &self,
        req: &TokenRequest,
        submission: &str,
        fetched: &Fetched,
        extra_audiences: &[String],
    ) -> Result<knoop_vc::presentation::VerifiedPresentation, TokenError> {
        let bad = |m: String| refuse("invalid_request", m);
        let submission: Value = serde_json::from_str(submission)
            .map_err(|_| bad("presentation_submission must be JSON".into()))?;
        let definition = self
            .definition(&req.scope)
            .ok_or_else(|| refuse("invalid_scope", format!("unknown scope {}", req.scope)))?;
        let claims = knoop_vc::jws::Compact::parse(&req.assertion)
            .and_then(|c| c.claims())
            .map_err(|_| bad("RFC021 assertions are presentation JWTs here".into()))?;
        let iss = claims.get("iss").and_then(Value::as_str);
        if iss.is_none() || claims.get("sub").and_then(Value::as_str) != iss {
            return Err(bad("sub must equal iss".into()));
        }
        let nonce = claims
            .get("nonce")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && n.len() <= 256)
            .ok_or_else(|| bad("a nonce is required".into()))?;
        let (nbf, exp) = (
            claims.get("nbf").and_then(Value::as_i64),
            claims.get("exp").and_then(Value::as_i64),
        );
        match (nbf, exp) {
            (Some(n), Some(e)) if e - n <= 5 => {}
            _ => return Err(bad("nbf and exp are required, at most 5 s apart".into())),
        }
        let verified =
            self.verify_jwt(&req.assertion, "invalid_request", fetched, extra_audiences)?;
        // The client's nonce, once (its jti is used up too).
        self.use_jti(
            &verified.holder,
            &format!("nonce:{nonce}"),
            exp.unwrap_or_default(),
        )
        .map_err(|e| bad(e.description))?;
        if let Some(c) = verified
            .credentials
            .iter()
            .find(|c| c.credential["credentialSubject"]["id"].as_str() != Some(&verified.holder))
        {
            return Err(bad(format!(
                "credential {} is not about the presenter (RFC021 §4.2.5)",
                c.id.as_deref().unwrap_or("?")
            )));
        }
        let vp = claims.get("vp").cloned().unwrap_or(Value::Null);
        let docs: Vec<Value> = verified
            .credentials
            .iter()
            .map(|c| c.credential.clone())
            .collect();
        knoop_vc::exchange::evaluate(definition, &submission, &vp, &docs)
            .map_err(|e| bad(e.to_string()))?;
        Ok(verified)
    }

    /// The [`GRANT_TYPE`] assertion: a JSON presentation whose challenge is a fresh nonce of
    /// this node and whose domain is this node's DID.
    fn verify_nonce_presentation(
        &self,
        assertion: &str,
        fetched: &Fetched,
    ) -> Result<knoop_vc::presentation::VerifiedPresentation, TokenError> {
        let vp: Value = serde_json::from_str(assertion)
            .map_err(|_| refuse("invalid_request", "assertion must be a JSON presentation"))?;
        let challenge = vp["proof"]["challenge"]
            .as_str()
            .ok_or_else(|| refuse("invalid_grant", "the presentation has no challenge"))?;
        if !self.take_nonce(challenge) {
            return Err(refuse(
                "invalid_grant",
                "the challenge is not a fresh nonce of this node (expired or used)",
            ));
        }
        self.credentials
            .verify_presentation(&vp, challenge, &self.node_did, fetched)
            .map_err(|e| refuse("invalid_grant", format!("{}: {e}", e.code())))
    }

    /// RFC 7662 introspection for a resource server outside this node (GFI-006): the client
    /// authenticates with a client assertion (a presentation JWT for this server, RFC 7523
    /// §2.2; refusals are `invalid_client`). A client listed in `tokens.introspection_clients`
    /// sees every token; any other sees only the tokens granted on its own data (it is one of
    /// the token's holders, the custodians): for the rest the token is inactive to it.
    pub async fn introspect_as(
        self: &Arc<Self>,
        token: &str,
        client_assertion: &str,
    ) -> Result<Option<Grant>, TokenError> {
        let input = Value::String(client_assertion.to_owned());
        let fetched = self.prefetch.fetch(&[&input]).await;
        let t = self.clone();
        let jwt = client_assertion.to_owned();
        let client = tokio::task::spawn_blocking(move || {
            t.verify_jwt(&jwt, "invalid_client", &fetched, &[])
        })
        .await
        .unwrap_or_else(|_| Err(refuse("server_error", "the introspection task failed")))?
        .holder;
        let grant = self.introspect(token).filter(|g| {
            self.introspection_clients.contains(&client)
                || g.holdings.iter().any(|(holder, _)| *holder == client)
        });
        tracing::debug!(%client, active = grant.is_some(), "token introspected");
        Ok(grant)
    }

    /// The RFC 7662 answer for an active token (GFI-006: `iss` this node's DID, `aud` the
    /// custodians, `cnf`, `assertions`, `client_assertions`).
    pub fn introspection(&self, g: &Grant) -> Value {
        let mut v = serde_json::json!({
            "active": true,
            "token_type": g.token_type(),
            "scope": g.scope,
            "iat": g.issued_ms / 1000,
            "nbf": g.issued_ms / 1000,
            "exp": g.expires_ms / 1000,
            "jti": g.id,
            "iss": self.audience(),
            "aud": g.holdings.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>(),
            "assertions": g.assertions,
            // The software that authenticated (RFC 7523 §2.2), else the organisation.
            "client_id": g.client.as_ref().map_or(&g.requester, |c| &c.0),
            "sub": g.professional,
            "patient": g.patient,
            "purpose": g.purpose,
            "holdings": g.holdings,
            "break_the_glass": g.break_the_glass,
        });
        if let Some(jkt) = &g.jkt {
            v["cnf"] = serde_json::json!({ "jkt": jkt });
        }
        // A workflow grant is about no patient and no subject when no professional asked.
        if g.patient.is_empty() {
            if let Some(o) = v.as_object_mut() {
                o.remove("patient");
            }
        }
        if g.professional.is_empty() {
            v["sub"] = serde_json::json!(g.requester);
        }
        if let Some(c) = &g.implied_consent {
            v["implied_consent"] = serde_json::json!(c);
        }
        if g.notification {
            v["notification"] = serde_json::json!(true);
        }
        if let Some((_, claims)) = &g.client {
            v["client_assertions"] = claims.clone();
        }
        if let Some(o) = v.as_object_mut() {
            for (k, c) in &g.claims {
                o.entry(k.clone()).or_insert_with(|| c.clone());
            }
        }
        v
    }

    /// RFC 7662 introspection: the grant of an active token.
    pub fn introspect(&self, token: &str) -> Option<Grant> {
        let now = knoop_gossip::tx::now_ms();
        let stored = self
            .tokens
            .get(&[token.as_bytes()])
            .inspect_err(|e| tracing::warn!(error = %e, "reading a token's grant failed"))
            .ok()??;
        serde_json::from_slice::<Grant>(&stored)
            .ok()
            .filter(|g| g.expires_ms > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes()
    }

    const FULL: [(&str, &str); 5] = [
        ("grant_type", GRANT_TYPE),
        ("assertion", "{}"),
        ("scope", "medication-overview"),
        ("patient", "urn:knoop:patient:x"),
        ("purpose", "regular-care"),
    ];

    #[test]
    fn token_requests_ignore_unknown_parameters() {
        // RFC 6749 §3.2: what OAuth2 client libraries add (client_id, resource, ...) is ignored.
        let mut pairs = FULL.to_vec();
        pairs.extend([
            ("client_id", "ehr"),
            ("resource", "https://x"),
            ("reason", "r"),
        ]);
        let r = TokenRequest::from_form(&form(&pairs)).unwrap();
        assert_eq!(
            (r.scope.as_str(), r.patient.as_deref(), r.reason.as_deref()),
            (
                "medication-overview",
                Some("urn:knoop:patient:x"),
                Some("r")
            )
        );
        let workflow = TokenRequest::from_form(&form(&FULL[..3])).unwrap();
        assert_eq!((workflow.patient, workflow.purpose), (None, None));
        assert_eq!(TokenRequest::from_form(&form(&FULL)).unwrap().reason, None);
    }

    #[test]
    fn token_request_refusals_carry_rfc_6749_codes() {
        let error =
            |pairs: &[(&str, &str)]| TokenRequest::from_form(&form(pairs)).unwrap_err().error;
        // An unknown grant type, even without the other parameters (§5.2).
        assert_eq!(
            error(&[("grant_type", "client_credentials")]),
            "unsupported_grant_type"
        );
        assert_eq!(error(&FULL[1..]), "invalid_request", "no grant_type");
        // Patient and purpose may be absent for a scope that is not about a patient: the
        // decision, which knows the scope, refuses their absence for the others.
        for missing in 1..3 {
            let mut pairs = FULL.to_vec();
            let (name, _) = pairs.remove(missing);
            let e = TokenRequest::from_form(&form(&pairs)).unwrap_err();
            assert_eq!(e.error, "invalid_request", "{name}");
            assert!(e.description.contains(name), "{e:?}");
        }
        // A parameter given twice (§3.2).
        let mut twice = FULL.to_vec();
        twice.push(("scope", "discharge-summary"));
        assert_eq!(error(&twice), "invalid_request");
        let long = "x".repeat(MAX_PARAM_BYTES + 1);
        let mut pairs = FULL.to_vec();
        pairs[1] = ("assertion", &long);
        assert_eq!(error(&pairs), "invalid_request");
    }

    #[test]
    fn server_metadata_names_the_endpoints() {
        let m = server_metadata(
            "https://node.example",
            None,
            &["medication-overview".into()],
        );
        assert_eq!(m["issuer"], "https://node.example");
        assert_eq!(m["token_endpoint"], "https://node.example/oauth2/token");
        assert_eq!(
            m["grant_types_supported"],
            serde_json::json!([JWT_BEARER, GRANT_TYPE])
        );
        assert_eq!(
            m["scopes_supported"],
            serde_json::json!(["medication-overview"])
        );
        let t = server_metadata("https://node.example/", Some("abc"), &[]);
        assert_eq!(t["issuer"], "https://node.example/oauth2/abc");
        assert_eq!(t["token_endpoint"], "https://node.example/oauth2/abc/token");
        assert_eq!(
            t["introspection_endpoint"],
            "https://node.example/oauth2/introspect"
        );
    }

    #[test]
    fn uzi_other_names_give_the_ura() {
        assert_eq!(
            uzi_ura("2.16.528.1.1007.99.2110-1-900025039-S-90000382-00.000-00000000").as_deref(),
            Some("90000382")
        );
        for bad in [
            "",
            "a-b-c-d",
            "2.16.528.1.1007.99.2110-1-900025039-S-9000-00.000-0",
        ] {
            assert_eq!(uzi_ura(bad), None, "{bad}");
        }
    }

    #[test]
    fn default_policies_name_known_categories_and_purposes() {
        for p in default_policies() {
            for c in &p.categories {
                assert!(
                    knoop_vc::types::DATA_CATEGORIES.contains(&c.as_str()),
                    "{c}"
                );
            }
            for u in &p.purposes {
                assert!(knoop_vc::types::PURPOSES.contains(&u.as_str()), "{u}");
            }
        }
    }
}
