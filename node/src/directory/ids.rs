//! The FHIR names the directory uses: naming systems, the FHIR JSON media type, and the stable
//! FHIR ids of what the directory derives from DIDs.

use sha2::Digest;

/// The URA naming system (Dutch national care-provider id) in FHIR.
pub const URA_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/ura";
/// The identifier system of a DID (a URI).
pub const URI_SYSTEM: &str = "urn:ietf:rfc:3986";
/// The media type of FHIR JSON.
pub const FHIR_JSON: &str = "application/fhir+json";
/// The code system of an author-assigned identifier's assigner type (nl-gf profiles).
pub const PROVENANCE_PARTICIPANT_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type";

/// A stable FHIR id for a DID.
pub fn fhir_id(did: &str) -> String {
    hex::encode(&sha2::Sha256::digest(did.as_bytes())[..16])
}

/// Is `id` a FHIR id (R4 `id`: `[A-Za-z0-9\-\.]{1,64}`)?
pub fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}
