//! The hosted organisations' mCSD Administration Directories on the public API, read only
//! (spec: `specs/mcsd.md` §5.4): `https://<host>/admin-directory/<URA>` with `metadata`,
//! read, vread, search and `_history`, for outside update clients (knooppunt's, an LRZa's)
//! that consume Administration Directories as the national guide describes. Writes stay on the
//! RPC.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::Router;

use crate::api::admin_directory_reads::{self as reads, DirectoryHost};
use crate::directory::admin::AdminDirectory;

/// The directories and the public base URL they are served under.
pub struct PublicDirectories {
    admin: Arc<AdminDirectory>,
    url: String,
}

impl DirectoryHost for PublicDirectories {
    fn admin_directory(&self) -> &AdminDirectory {
        &self.admin
    }
    fn base(&self, _headers: &HeaderMap, ura: &str) -> String {
        format!("{}/admin-directory/{ura}", self.url)
    }
}

pub fn routes(admin: Arc<AdminDirectory>, url: String) -> Router {
    reads::routes::<PublicDirectories>().with_state(Arc::new(PublicDirectories { admin, url }))
}
