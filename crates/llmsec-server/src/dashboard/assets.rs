//! The dashboard's static files, embedded in the binary: `GET /` is the
//! page, `GET /dashboard/assets/{name}` its stylesheet, scripts and icon.
//!
//! Every answer carries a strict Content-Security-Policy (scripts and
//! styles from this origin only, no inline script, no framing), `nosniff`,
//! `no-referrer`, and `Cache-Control: no-cache` with a content-hash `ETag`,
//! so a browser revalidates (a 304) rather than run a stale script after
//! an upgrade.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// The policy every dashboard answer carries.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The embedded files: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("assets/index.html")),
    ("app.css", "text/css; charset=utf-8", include_bytes!("assets/app.css")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("assets/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_bytes!("assets/api.js")),
    ("charts.js", "text/javascript; charset=utf-8", include_bytes!("assets/charts.js")),
    ("pages.js", "text/javascript; charset=utf-8", include_bytes!("assets/pages.js")),
    ("insights.js", "text/javascript; charset=utf-8", include_bytes!("assets/insights.js")),
    ("quarantine.js", "text/javascript; charset=utf-8", include_bytes!("assets/quarantine.js")),
    ("icon.svg", "image/svg+xml", include_bytes!("assets/icon.svg")),
];

/// Each file's `ETag`, computed once.
fn etags() -> &'static Vec<String> {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        FILES.iter().map(|(_, _, bytes)| format!("\"{}\"", &hex::encode(Sha256::digest(bytes))[..32])).collect()
    })
}

/// The file `name` with its headers; a 304 when `If-None-Match` names its tag.
fn serve(name: &str, headers: &HeaderMap) -> Option<Response> {
    let i = FILES.iter().position(|(n, _, _)| *n == name)?;
    let (_, content_type, bytes) = FILES[i];
    let tag = &etags()[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure_headers(h);
    Some(r)
}

/// The headers every dashboard answer carries.
pub fn secure_headers(h: &mut HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers).unwrap_or_else(|| ApiError::NotFound("index.html".into()).into_response())
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers).unwrap_or_else(|| ApiError::NotFound(format!("no dashboard asset {name:?}")).into_response())
}

/// `GET /` and `GET /dashboard/assets/{name}`.
pub fn router() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/dashboard/assets/{name}", get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_served_with_its_type_and_revalidates() {
        for (name, content_type, _) in FILES {
            let r = serve(name, &HeaderMap::new()).unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()[header::CONTENT_TYPE], *content_type);
            assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
            let tag = r.headers()[header::ETAG].clone();
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, tag);
            assert_eq!(serve(name, &h).unwrap().status(), StatusCode::NOT_MODIFIED);
        }
        assert!(serve("../Cargo.toml", &HeaderMap::new()).is_none());
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(FILES[0].2).unwrap();
        for bad in ["<script>", "onclick=", "onload=", "style=\"", "<style"] {
            assert!(!html.contains(bad), "index.html holds {bad}");
        }
        for (name, _, bytes) in FILES.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            let js = std::str::from_utf8(bytes).unwrap();
            assert!(!js.contains("eval(") && !js.contains("new Function"), "{name} evaluates strings");
        }
    }
}
