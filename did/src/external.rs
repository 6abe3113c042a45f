//! did:key, did:jwk, did:web mapping (placeholder, being written)
