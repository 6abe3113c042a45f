//! W3C DID Resolution result shapes: the document, its metadata, and resolution metadata with
//! the standard error codes; and the representations of the HTTP(S) binding (DID Resolution
//! §"DID Resolution HTTP(S) Binding"): which media type an `Accept` header asks for, and the
//! status of each outcome. A deactivated DID is not an error (DID Core §7.1.3: it resolves, with
//! `deactivated: true` in the document metadata); the binding answers it with 410.

use serde::Serialize;

/// The DID Resolution JSON-LD context.
pub const RESOLUTION_CONTEXT: &str = "https://w3id.org/did-resolution/v1";
/// Media type of a DID document in JSON-LD.
pub const DID_LD_JSON: &str = "application/did+ld+json";
/// Media type of a DID document in plain JSON.
pub const DID_JSON: &str = "application/did+json";
/// Media type of a whole resolution result (DID Resolution, HTTP(S) binding).
pub const DID_RESOLUTION: &str = "application/did-resolution";
/// The JSON-LD form of a resolution result's media type.
pub const DID_RESOLUTION_LD: &str =
    "application/ld+json;profile=\"https://w3id.org/did-resolution\"";

/// What a resolution answer over HTTP carries, as negotiated from `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    /// The resolution result, with this media type.
    Result(&'static str),
    /// The DID document alone, with this media type.
    Document(&'static str),
}

impl Representation {
    /// The representation an `Accept` header asks for: the first of its media ranges (in the
    /// client's order of preference, `q=0` excluded) that is served. No header, `*/*`,
    /// `application/*` and `application/json` get the resolution result as `application/json`
    /// (what knoop's own clients read). `None`: nothing acceptable is served
    /// (`representationNotSupported`, 406).
    pub fn negotiate(accept: Option<&str>) -> Option<Self> {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
            return Some(Representation::Result("application/json"));
        };
        let mut ranges: Vec<(f32, usize, String)> = Vec::new();
        for (i, part) in accept.split(',').enumerate() {
            let mut params = part.split(';').map(str::trim);
            let media = params.next().unwrap_or_default().to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut profile = None;
            for p in params {
                if let Some((k, v)) = p.split_once('=') {
                    let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"'));
                    if k == "q" {
                        q = v.parse().unwrap_or(0.0);
                    } else if k == "profile" {
                        profile = Some(v.to_owned());
                    }
                }
            }
            if q <= 0.0 {
                continue;
            }
            let key = match profile {
                Some(p) => format!("{media};profile={p}"),
                None => media,
            };
            ranges.push((q, i, key));
        }
        // Highest q first, then the client's order.
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ranges.into_iter().find_map(|(_, _, m)| match m.as_str() {
            "application/did-resolution" => Some(Representation::Result(DID_RESOLUTION)),
            "application/ld+json;profile=https://w3id.org/did-resolution" => {
                Some(Representation::Result(DID_RESOLUTION_LD))
            }
            "application/did+ld+json" => Some(Representation::Document(DID_LD_JSON)),
            "application/did+json" | "application/did" => Some(Representation::Document(DID_JSON)),
            "application/json" | "application/*" | "*/*" => {
                Some(Representation::Result("application/json"))
            }
            _ => None,
        })
    }
}

/// Standard resolution error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    InvalidDid,
    NotFound,
    MethodNotSupported,
    InvalidDidDocument,
    InvalidOptions,
    /// No representation the client accepts is served (HTTP binding, 406).
    RepresentationNotSupported,
    InternalError,
}

impl ErrorCode {
    /// HTTP status in the DID Resolution HTTP(S) binding.
    pub fn http_status(&self) -> u16 {
        match self {
            ErrorCode::InvalidDid | ErrorCode::InvalidOptions => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::RepresentationNotSupported => 406,
            ErrorCode::MethodNotSupported => 501,
            ErrorCode::InvalidDidDocument | ErrorCode::InternalError => 500,
        }
    }
}

/// `didResolutionMetadata`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolutionMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// An operation that lost to a concurrent one (knoop extension of the document metadata).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SupersededVersion {
    pub version_id: String,
    /// The version it was meant to replace.
    pub previous: Option<String>,
    pub operation: &'static str,
    pub signer: String,
    pub signed: String,
}

/// `didDocumentMetadata`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deactivated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_version_id: Option<String>,
    /// Set when the requested version lost to a concurrent update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// Updates of this DID that lost to concurrent ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<SupersededVersion>,
}

/// A resolution result.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolutionResult {
    #[serde(rename = "@context")]
    pub context: &'static str,
    pub did_document: Option<serde_json::Value>,
    pub did_resolution_metadata: ResolutionMetadata,
    pub did_document_metadata: DocumentMetadata,
}

impl ResolutionResult {
    pub fn ok(document: serde_json::Value, meta: DocumentMetadata) -> Self {
        ResolutionResult {
            context: RESOLUTION_CONTEXT,
            did_document: Some(document),
            did_resolution_metadata: ResolutionMetadata {
                content_type: Some(DID_LD_JSON.into()),
                ..Default::default()
            },
            did_document_metadata: meta,
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ResolutionResult {
            context: RESOLUTION_CONTEXT,
            did_document: None,
            did_resolution_metadata: ResolutionMetadata {
                content_type: None,
                error: Some(code),
                error_message: Some(message.into()),
            },
            did_document_metadata: DocumentMetadata::default(),
        }
    }

    pub fn error_code(&self) -> Option<ErrorCode> {
        self.did_resolution_metadata.error
    }

    /// HTTP status for this result: the error's, 410 for a deactivated DID, else 200.
    pub fn http_status(&self) -> u16 {
        match self.error_code() {
            Some(c) => c.http_status(),
            None if self.did_document_metadata.deactivated == Some(true) => 410,
            None => 200,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_choose_the_representation() {
        use Representation::*;
        for (accept, want) in [
            (None, Some(Result("application/json"))),
            (Some(""), Some(Result("application/json"))),
            (Some("*/*"), Some(Result("application/json"))),
            (
                Some("application/did-resolution"),
                Some(Result(DID_RESOLUTION)),
            ),
            (
                Some("application/ld+json; profile=\"https://w3id.org/did-resolution\""),
                Some(Result(DID_RESOLUTION_LD)),
            ),
            (Some("application/did+ld+json"), Some(Document(DID_LD_JSON))),
            (Some("Application/DID+JSON"), Some(Document(DID_JSON))),
            (
                Some("text/html, application/did+json;q=0.5, application/did-resolution;q=0.9"),
                Some(Result(DID_RESOLUTION)),
            ),
            (Some("application/did+json;q=0, text/html"), None),
            (Some("text/html"), None),
            (Some("application/ld+json"), None),
        ] {
            assert_eq!(Representation::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn a_deactivated_did_resolves_without_an_error_and_is_gone() {
        let meta = DocumentMetadata {
            deactivated: Some(true),
            ..Default::default()
        };
        let r = ResolutionResult::ok(serde_json::json!({"id": "did:x:y"}), meta);
        assert_eq!(r.error_code(), None);
        assert_eq!(r.http_status(), 410);
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["didResolutionMetadata"].get("error").is_none(), "{v}");
        assert_eq!(v["didDocumentMetadata"]["deactivated"], true);
        assert_eq!(
            ResolutionResult::error(ErrorCode::RepresentationNotSupported, "x").http_status(),
            406
        );
    }
}
