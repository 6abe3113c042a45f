//! DID and DID URL syntax (W3C DID Core §3), parsed strictly and with a length bound.
//!
//! ```text
//! did        = "did:" method-name ":" method-specific-id
//! method-name = 1*( %x61-7A / DIGIT )
//! method-specific-id = *( *idchar ":" ) 1*idchar
//! idchar     = ALPHA / DIGIT / "." / "-" / "_" / pct-encoded
//! did-url    = did path-abempty [ "?" query ] [ "#" fragment ]
//! ```

use std::fmt;

/// Longest DID URL accepted, in bytes.
pub const MAX_DID_URL_BYTES: usize = 2048;

/// A DID URL or DID failed to parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid DID: {0}")]
pub struct InvalidDid(pub &'static str);

/// A syntactically valid DID (no path, query or fragment).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Did(String);

impl Did {
    pub fn parse(s: &str) -> Result<Self, InvalidDid> {
        if s.len() > MAX_DID_URL_BYTES {
            return Err(InvalidDid("longer than 2048 bytes"));
        }
        let rest = s
            .strip_prefix("did:")
            .ok_or(InvalidDid("does not start with did:"))?;
        let (method, msid) = rest
            .split_once(':')
            .ok_or(InvalidDid("no method-specific id"))?;
        if method.is_empty()
            || !method
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(InvalidDid(
                "method name must be lowercase letters and digits",
            ));
        }
        check_msid(msid)?;
        Ok(Did(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `key` in `did:key:z6Mk...`.
    pub fn method(&self) -> &str {
        self.0[4..].split(':').next().unwrap_or_default()
    }

    /// Everything after `did:<method>:`.
    pub fn method_specific_id(&self) -> &str {
        let m = self.method().len();
        &self.0[4 + m + 1..]
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_msid(msid: &str) -> Result<(), InvalidDid> {
    if msid.is_empty() || msid.ends_with(':') {
        return Err(InvalidDid("method-specific id is empty or ends with ':'"));
    }
    let b = msid.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if i + 2 >= b.len() {
                    return Err(InvalidDid("truncated percent-encoding"));
                }
                if !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                    return Err(InvalidDid("bad percent-encoding"));
                }
                i += 3;
                continue;
            }
            c if c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':') => {}
            _ => return Err(InvalidDid("character not allowed in a method-specific id")),
        }
        i += 1;
    }
    Ok(())
}

/// A parsed DID URL: a DID with an optional path, query and fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DidUrl {
    pub did: Did,
    pub path: Option<String>,
    /// Query parameters in order, not percent-decoded.
    pub query: Vec<(String, String)>,
    pub fragment: Option<String>,
}

impl DidUrl {
    pub fn parse(s: &str) -> Result<Self, InvalidDid> {
        if s.len() > MAX_DID_URL_BYTES {
            return Err(InvalidDid("longer than 2048 bytes"));
        }
        let (rest, fragment) = match s.split_once('#') {
            Some((r, f)) => {
                check_component(f)?;
                (r, Some(f.to_owned()))
            }
            None => (s, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => {
                check_component(q)?;
                let mut params = Vec::new();
                for pair in q.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    params.push((k.to_owned(), v.to_owned()));
                }
                (r, params)
            }
            None => (rest, Vec::new()),
        };
        let (did, path) = match rest.find('/') {
            Some(i) => {
                check_component(&rest[i..])?;
                (&rest[..i], Some(rest[i..].to_owned()))
            }
            None => (rest, None),
        };
        Ok(DidUrl {
            did: Did::parse(did)?,
            path,
            query,
            fragment,
        })
    }

    /// The value of query parameter `name`, if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Path, query and fragment characters (RFC 3986 pchar plus "/" and "?"), no controls or spaces.
fn check_component(s: &str) -> Result<(), InvalidDid> {
    let ok = s.bytes().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
                    | b'?'
            )
    });
    if ok {
        Ok(())
    } else {
        Err(InvalidDid("character not allowed in a DID URL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dids_and_their_parts() {
        let d = Did::parse("did:knoop:abc").unwrap();
        assert_eq!(d.method(), "knoop");
        assert_eq!(d.method_specific_id(), "abc");
        let d = Did::parse("did:web:localhost%3A8443:user:alice").unwrap();
        assert_eq!(d.method(), "web");
        assert_eq!(d.method_specific_id(), "localhost%3A8443:user:alice");
    }

    #[test]
    fn refuses_malformed_dids() {
        for bad in [
            "",
            "did",
            "did:",
            "did:knoop",
            "did:knoop:",
            "did::abc",
            "did:KNOOP:abc",
            "did:knoop:a b",
            "did:knoop:abc:",
            "did:knoop:%zz",
            "did:knoop:%4",
            "did:knoop:%",
            "did:knoop:é",
            "urn:knoop:abc",
        ] {
            assert!(Did::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(Did::parse(&format!("did:knoop:{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn parses_did_urls() {
        let u = DidUrl::parse("did:knoop:abc/path/x?versionId=12&versionTime=x#key-1").unwrap();
        assert_eq!(u.did.as_str(), "did:knoop:abc");
        assert_eq!(u.path.as_deref(), Some("/path/x"));
        assert_eq!(u.param("versionId"), Some("12"));
        assert_eq!(u.param("versionTime"), Some("x"));
        assert_eq!(u.fragment.as_deref(), Some("key-1"));
        let u = DidUrl::parse("did:knoop:abc#k").unwrap();
        assert_eq!(u.path, None);
        assert!(u.query.is_empty());
        assert!(DidUrl::parse("did:knoop:abc#a b").is_err());
        assert!(DidUrl::parse("did:knoop:abc?x=<script>").is_err());
        assert!(DidUrl::parse("#frag").is_err());
    }
}
