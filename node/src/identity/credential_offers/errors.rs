//! The errors of the issuer's token and credential endpoints, with the codes RFC 6749 §5.2,
//! RFC 6750 §3.1 and OpenID4VCI 1.0 §6.3 and §8.3.1 give them.

/// An error of the token endpoint, as RFC 6749 §5.2 (and OpenID4VCI 1.0 §6.3) name it.
#[derive(Debug, thiserror::Error)]
#[error("{error}: {description}")]
pub struct TokenError {
    pub error: &'static str,
    pub description: String,
}

pub(crate) fn token_error(error: &'static str, description: impl Into<String>) -> TokenError {
    TokenError {
        error,
        description: description.into(),
    }
}

/// An error of the credential endpoint (OpenID4VCI 1.0 §8.3.1), or of its access token (RFC
/// 6750 §3.1, `invalid_token`: 401).
#[derive(Debug, thiserror::Error)]
#[error("{error}: {description}")]
pub struct CredentialError {
    pub error: &'static str,
    pub description: String,
}

impl CredentialError {
    /// The HTTP status: 401 for the token, 500 for the issuer's own failure, else 400.
    pub fn status(&self) -> u16 {
        match self.error {
            "invalid_token" | "invalid_dpop_proof" => 401,
            "server_error" => 500,
            _ => 400,
        }
    }
}

pub(crate) fn cred_error(error: &'static str, description: impl Into<String>) -> CredentialError {
    CredentialError {
        error,
        description: description.into(),
    }
}
