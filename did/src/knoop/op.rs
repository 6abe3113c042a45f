//! DID operations: the content (`application/knoop-did-op+json`) of the transactions that
//! create, update and deactivate a `did:knoop` DID.

use serde::{Deserialize, Serialize};

use super::id::VersionId;
use crate::document::DidDocument;

/// Content type of a DID operation transaction.
pub const DID_OP_CONTENT_TYPE: &str = "application/knoop-did-op+json";
/// Largest operation accepted, in bytes.
pub const MAX_OP_BYTES: usize = 64 * 1024;

/// One operation on a DID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum DidOp {
    /// The first version. Signed with the inception key, embedded in the transaction header.
    Create { document: DidDocument },
    /// Replaces the document of version `previous` (which the transaction names as a parent).
    Update {
        previous: VersionId,
        document: DidDocument,
    },
    /// Ends the DID after version `previous`. Nothing may follow.
    Deactivate { did: String, previous: VersionId },
}

/// A DID operation could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed DID operation: {0}")]
pub struct OpError(pub String);

impl DidOp {
    pub fn parse(bytes: &[u8]) -> Result<Self, OpError> {
        if bytes.len() > MAX_OP_BYTES {
            return Err(OpError(format!("larger than {MAX_OP_BYTES} bytes")));
        }
        serde_json::from_slice(bytes).map_err(|e| OpError(e.to_string()))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain structs of strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The DID this operation is about.
    pub fn did(&self) -> &str {
        match self {
            DidOp::Create { document } | DidOp::Update { document, .. } => &document.id,
            DidOp::Deactivate { did, .. } => did,
        }
    }

    pub fn previous(&self) -> Option<VersionId> {
        match self {
            DidOp::Create { .. } => None,
            DidOp::Update { previous, .. } | DidOp::Deactivate { previous, .. } => Some(*previous),
        }
    }

    pub fn document(&self) -> Option<&DidDocument> {
        match self {
            DidOp::Create { document } | DidOp::Update { document, .. } => Some(document),
            DidOp::Deactivate { .. } => None,
        }
    }

    pub fn is_deactivate(&self) -> bool {
        matches!(self, DidOp::Deactivate { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            DidOp::Create { .. } => "create",
            DidOp::Update { .. } => "update",
            DidOp::Deactivate { .. } => "deactivate",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unknown_fields_and_ops() {
        assert!(DidOp::parse(br#"{"op":"delete","did":"did:knoop:x"}"#).is_err());
        let prev = "00".repeat(32);
        assert!(DidOp::parse(
            format!(r#"{{"op":"deactivate","did":"did:knoop:x","previous":"{prev}"}}"#).as_bytes()
        )
        .is_ok());
        assert!(DidOp::parse(
            format!(r#"{{"op":"deactivate","did":"did:knoop:x","previous":"{prev}","x":1}}"#)
                .as_bytes()
        )
        .is_err());
        assert!(DidOp::parse(b"[]").is_err());
        assert!(DidOp::parse(&vec![b' '; MAX_OP_BYTES + 1]).is_err());
    }
}
