//! The metadata of the credential issuers (spec: `specs/oid4vci.md` §1, §2): the issuer
//! identifiers, the credential configurations offered (type × format), and the Credential
//! Issuer and Authorization Server Metadata documents.

use knoop_vc::jws::Alg;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The grant type of the pre-authorized code flow (OpenID4VCI 1.0 §3.5).
pub const PRE_AUTHORIZED_CODE: &str = "urn:ietf:params:oauth:grant-type:pre-authorized_code";

/// The credential formats offered (OpenID4VCI 1.0 Appendix A.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    /// A VC Data Model 1.1 JWT (`jwt_vc_json`, A.1.1): the guide's catalog format, ES256.
    #[serde(rename = "jwt_vc_json")]
    JwtVcJson,
    /// A Data Integrity credential (`ldp_vc`, A.1.3): knoop's own, eddsa-jcs-2022.
    #[serde(rename = "ldp_vc")]
    LdpVc,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::JwtVcJson => "jwt_vc_json",
            Format::LdpVc => "ldp_vc",
        }
    }
    fn parse(s: &str) -> Option<Format> {
        [Format::JwtVcJson, Format::LdpVc]
            .into_iter()
            .find(|f| f.name() == s)
    }
    /// The `cryptosuite` of [`issuing::issue`].
    pub(super) fn cryptosuite(self) -> &'static str {
        match self {
            Format::JwtVcJson => "jwt_vc",
            Format::LdpVc => "eddsa-jcs-2022",
        }
    }
}

/// The credential types an organisation can issue.
pub const TYPES: [&str; 2] = [
    "CareOrganizationCredential",
    "HealthcareProfessionalCredential",
];

/// The `credential_configuration_id` of `type_` in `format`: `<type>_<format>`.
pub fn configuration_id(type_: &str, format: Format) -> String {
    format!("{type_}_{}", format.name())
}

pub(super) fn parse_configuration_id(id: &str) -> Option<(&'static str, Format)> {
    TYPES.into_iter().find_map(|t| {
        let f = id.strip_prefix(t)?.strip_prefix('_')?;
        Some((t, Format::parse(f)?))
    })
}

/// The DID methods a credential can be bound to (`cryptographic_binding_methods_supported`).
pub const BINDING_METHODS: [&str; 4] = ["did:knoop", "did:web", "did:key", "did:jwk"];

/// The credential issuer identifier of the organisation `id` (its did:knoop method-specific
/// id) on the public API at `base`.
pub fn issuer_id(base: &str, id: &str) -> String {
    format!("{}/oid4vci/{id}", base.trim_end_matches('/'))
}

/// The Credential Issuer Metadata (OpenID4VCI 1.0 §12.2.4) of organisation `id`.
pub fn issuer_metadata(base: &str, id: &str, display_name: Option<&str>) -> Value {
    let issuer = issuer_id(base, id);
    let algs = Alg::names();
    let mut configurations = serde_json::Map::new();
    for type_ in TYPES {
        for format in [Format::JwtVcJson, Format::LdpVc] {
            let mut c = json!({
                "format": format.name(),
                "scope": type_,
                "cryptographic_binding_methods_supported": BINDING_METHODS,
                "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": algs}},
                "credential_metadata": {"display": [{"name": type_, "locale": "en-US"}]},
            });
            match format {
                Format::JwtVcJson => {
                    c["credential_signing_alg_values_supported"] = json!(["ES256", "EdDSA"]);
                    c["credential_definition"] = json!({"type": ["VerifiableCredential", type_]});
                }
                Format::LdpVc => {
                    c["credential_signing_alg_values_supported"] = json!(["eddsa-jcs-2022"]);
                    c["credential_definition"] = json!({
                        "@context": [knoop_vc::types::CREDENTIALS_V2, knoop_vc::types::KNOOP_CONTEXT],
                        "type": ["VerifiableCredential", type_],
                    });
                }
            }
            configurations.insert(configuration_id(type_, format), c);
        }
    }
    let mut m = json!({
        "credential_issuer": issuer,
        "credential_endpoint": format!("{issuer}/credential"),
        "nonce_endpoint": format!("{issuer}/nonce"),
        "credential_configurations_supported": configurations,
    });
    if let Some(name) = display_name {
        m["display"] = json!([{"name": name}]);
    }
    m
}

/// The OAuth 2.0 Authorization Server Metadata (RFC 8414; OpenID4VCI 1.0 §12.3) of the issuer
/// of organisation `id`: the issuer is its own authorization server, for the pre-authorized code.
pub fn server_metadata(base: &str, id: &str) -> Value {
    let issuer = issuer_id(base, id);
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
        "grant_types_supported": [PRE_AUTHORIZED_CODE],
        "pre-authorized_grant_anonymous_access_supported": true,
        "token_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": [],
        "dpop_signing_alg_values_supported": Alg::names(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_ids_name_the_type_and_format() {
        for t in TYPES {
            for f in [Format::JwtVcJson, Format::LdpVc] {
                assert_eq!(
                    parse_configuration_id(&configuration_id(t, f)),
                    Some((t, f))
                );
            }
        }
        assert_eq!(
            parse_configuration_id("CareOrganizationCredential_mso_mdoc"),
            None
        );
        assert_eq!(parse_configuration_id("Other_jwt_vc_json"), None);
        assert_eq!(
            parse_configuration_id("CareOrganizationCredentialjwt_vc_json"),
            None
        );
    }

    #[test]
    fn the_metadata_lists_every_configuration_with_jwt_proofs() {
        let m = issuer_metadata("https://n.example/", "abc", Some("RA"));
        assert_eq!(m["credential_issuer"], "https://n.example/oid4vci/abc");
        assert_eq!(
            m["credential_endpoint"],
            "https://n.example/oid4vci/abc/credential"
        );
        assert_eq!(m["nonce_endpoint"], "https://n.example/oid4vci/abc/nonce");
        let c = m["credential_configurations_supported"]
            .as_object()
            .unwrap();
        assert_eq!(c.len(), 4);
        let jwt = &c["CareOrganizationCredential_jwt_vc_json"];
        assert_eq!(jwt["format"], "jwt_vc_json");
        assert_eq!(
            jwt["credential_definition"]["type"],
            json!(["VerifiableCredential", "CareOrganizationCredential"])
        );
        assert!(
            jwt["proof_types_supported"]["jwt"]["proof_signing_alg_values_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("ES256"))
        );
        let s = server_metadata("https://n.example", "abc");
        assert_eq!(s["issuer"], m["credential_issuer"]);
        assert_eq!(s["grant_types_supported"], json!([PRE_AUTHORIZED_CODE]));
    }
}
