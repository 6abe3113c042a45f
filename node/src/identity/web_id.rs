//! The did:web id of a hosted `did:knoop` DID under the node's public base URL
//! (`specs/did-web.md` §1): `did:web:<host>[%3A<port>][:<path>]:knoop:<id>`. A pure function,
//! used by the DID operations (the `alsoKnownAs` back-link) and by the did:web documents.

use std::net::IpAddr;

use url::Url;

/// The path segment under which hosted DIDs' documents are served.
pub const PATH_SEGMENT: &str = "knoop";

/// `did:web:<host>[%3A<port>][:<path segments>]:knoop:<id>` for `knoop_did` under `base`.
pub fn web_did_of(base: &Url, knoop_did: &str) -> Option<String> {
    let id = knoop_did.strip_prefix("did:knoop:")?;
    let host = base.host_str()?;
    if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        return None;
    }
    let mut out = format!("did:web:{}", host.to_ascii_lowercase());
    if let Some(port) = base.port() {
        out.push_str(&format!("%3A{port}"));
    }
    for segment in base.path_segments().into_iter().flatten() {
        if !segment.is_empty() {
            out.push(':');
            out.push_str(segment);
        }
    }
    out.push(':');
    out.push_str(PATH_SEGMENT);
    out.push(':');
    out.push_str(id);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_ids_follow_the_did_web_method() {
        let d = "did:knoop:4Pd4h9CoNrCCu5QPupW7pEyPzh3AuxrR5mR1LDGiAhz8";
        let id = |u: &str| web_did_of(&Url::parse(u).unwrap(), d);
        assert_eq!(
            id("https://knoop.vendor.example").as_deref(),
            Some("did:web:knoop.vendor.example:knoop:4Pd4h9CoNrCCu5QPupW7pEyPzh3AuxrR5mR1LDGiAhz8")
        );
        assert_eq!(
            id("https://Knoop.Vendor.example:8443/api/").as_deref(),
            Some("did:web:knoop.vendor.example%3A8443:api:knoop:4Pd4h9CoNrCCu5QPupW7pEyPzh3AuxrR5mR1LDGiAhz8")
        );
        assert_eq!(id("https://127.0.0.1:7476"), None, "no IP addresses");
        assert_eq!(id("https://[::1]:7476"), None);
        assert_eq!(
            web_did_of(&Url::parse("https://a.example").unwrap(), "did:key:z6Mk"),
            None
        );
        // What the did:web resolver makes of the id is this node's path.
        let web = id("https://knoop.vendor.example:8443/api").unwrap();
        assert_eq!(
            knoop_did::external::did_web_url(&web).unwrap(),
            "https://knoop.vendor.example:8443/api/knoop/4Pd4h9CoNrCCu5QPupW7pEyPzh3AuxrR5mR1LDGiAhz8/did.json"
        );
    }
}
