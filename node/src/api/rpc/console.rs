//! The operator console (spec: `specs/console.md`): `GET /console/` and its script and
//! stylesheet, plain files from `node/console/` compiled into the binary. They hold no data:
//! the page reads and acts through the RPC routes the CLI uses, with the browser's credentials
//! for the RPC (HTTP Basic with the RPC token as password, which the auth layer accepts beside
//! the bearer token). Served behind the same authentication as every RPC route, with a content
//! security policy that allows only the node's own script and styles.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::api::rpc::state::RpcState;

/// The console's files: name, media type, content.
const FILES: [(&str, &str, &[u8]); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../../console/index.html"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../console/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../console/console.css"),
    ),
];

/// Only the node's own files, no inline script or style, never in a frame.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' \
                   data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(|| async { serve("index.html") }))
        .route("/console/{file}", get(file))
}

async fn file(Path(name): Path<String>) -> Response {
    serve(&name)
}

fn serve(name: &str) -> Response {
    let Some((_, media_type, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    };
    let mut resp = (StatusCode::OK, *body).into_response();
    let h = resp.headers_mut();
    for (k, v) in [
        (header::CONTENT_TYPE, *media_type),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_names_is_served() {
        let index = std::str::from_utf8(FILES[0].2).unwrap();
        for (name, _, body) in FILES {
            assert!(!body.is_empty(), "{name}");
            if name != "index.html" {
                assert!(index.contains(&format!("/console/{name}")), "{name}");
            }
        }
        // No inline script or style: the content security policy would block it.
        assert!(!index.contains("<script>") && !index.contains("style="));
        assert_eq!(serve("nothing.js").status(), StatusCode::NOT_FOUND);
        assert_eq!(serve("console.js").status(), StatusCode::OK);
    }
}
