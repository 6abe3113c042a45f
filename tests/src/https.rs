//! A local HTTPS server with a throw-away test CA (placeholder, being written)
