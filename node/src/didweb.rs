//! did:web over HTTPS (placeholder, being written)
