//! One error type for every route, and a JSON extractor whose rejections
//! use it: a client error names what was wrong (the field, when there is
//! one); an internal error is logged and answered with its kind only.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::service::ServiceError;
use crate::service::deadline::Deadline;

/// An error a route answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `field` names the JSON path when known.
    #[error("{message}")]
    BadRequest {
        /// The JSON path of the offending field (`input`, `items[3].input`).
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// No key, or a key that is unknown or revoked.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// The key lacks the scope.
    #[error("this key lacks the `{0}` scope")]
    Forbidden(&'static str),
    /// Nothing here.
    #[error("{0}")]
    NotFound(String),
    /// The thing is no longer in a state that allows the change.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the limit.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The request target (path and query) is longer than the limit.
    #[error("request URI is {len} bytes; at most {limit}")]
    UriTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The request's header fields are too many or too large.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// Sentinel blocked the caller (a shield enforcement).
    #[error("blocked: {reason}")]
    Blocked {
        /// Why.
        reason: String,
        /// Until when (RFC 3339).
        until: String,
    },
    /// The key's rate is exhausted.
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds until a request would pass.
        retry_after_secs: u64,
    },
    /// The request ran past the server's time limit.
    #[error("request timed out")]
    Timeout,
    /// The store (or another dependency) is unavailable; retry later.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; details are only logged.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A bad-request error about one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { field: Some(field.into()), message: message.into() }
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Blocked { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Blocked { .. } => "blocked",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UriTooLong { .. } => "uri_too_long",
            ApiError::HeadersTooLarge(_) => "headers_too_large",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Timeout => "timeout",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The JSON body: `{"error": {"code", "message", "field"?}}`.
    pub fn body(&self) -> serde_json::Value {
        let mut e = json!({"code": self.code(), "message": self.to_string()});
        if let ApiError::BadRequest { field: Some(f), .. } = self {
            e["field"] = json!(f);
        }
        if let ApiError::Blocked { until, .. } = self {
            e["until"] = json!(until);
        }
        json!({ "error": e })
    }
}

impl From<llmsec_store::StoreError> for ApiError {
    fn from(e: llmsec_store::StoreError) -> ApiError {
        ServiceError::from(e).into()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Invalid { field, message } => ApiError::BadRequest { field, message },
            ServiceError::Unauthenticated => ApiError::Unauthorized,
            ServiceError::Forbidden(scope) => ApiError::Forbidden(scope),
            ServiceError::NotFound(what) => ApiError::NotFound(what),
            ServiceError::Conflict(what) => ApiError::Conflict(what),
            ServiceError::Blocked { reason, until } => ApiError::Blocked { reason, until },
            ServiceError::RateLimited { retry_after_secs } => ApiError::RateLimited { retry_after_secs },
            ServiceError::Timeout => ApiError::Timeout,
            ServiceError::Unavailable(what) => ApiError::Unavailable(what),
            ServiceError::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            ApiError::Unavailable(detail) => tracing::warn!(%detail, "unavailable"),
            _ => {}
        }
        let mut resp = (status, axum::Json(self.body())).into_response();
        if let ApiError::RateLimited { retry_after_secs } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// The body limit in force, for the JSON extractor to name it in errors.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON body whose errors are [`ApiError`]s naming the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// Reads `bytes` as `T`, naming the field on error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // A syntax error past the last key read leaves `?` segments (an
        // unknown position): name the part of the path that is known.
        let full = e.path().to_string();
        let path = match full.split('.').position(|seg| seg.starts_with('?')) {
            Some(0) => ".".to_owned(),
            Some(i) => full.split('.').take(i).collect::<Vec<_>>().join("."),
            None => full,
        };
        let inner = e.into_inner();
        let message = inner.to_string();
        // "missing field `input`" is reported at the parent: name the field itself.
        let field = match message.strip_prefix("missing field `").and_then(|m| m.split_once('`')) {
            Some((name, _)) if path == "." => name.to_owned(),
            Some((name, _)) => format!("{path}.{name}"),
            None if path == "." => String::new(),
            None => path,
        };
        let kind = if inner.is_syntax() || inner.is_eof() { "malformed JSON" } else { "invalid value" };
        ApiError::BadRequest { field: (!field.is_empty()).then_some(field), message: format!("{kind}: {message}") }
    })?;
    de.end().map_err(|e| ApiError::BadRequest { field: None, message: format!("malformed JSON: {e}") })?;
    Ok(value)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(usize::MAX, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::BadRequest { field: None, message: rej.body_text() }
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Deadline {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Deadline>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("no request deadline: the timeout layer is missing".into()))
    }
}

/// The query string as a map (last value wins). Never rejects: routes
/// check the values and name the parameter that is wrong.
#[derive(Debug, Clone, Default)]
pub struct Params(pub std::collections::HashMap<String, String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        Ok(Params(url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()))
    }
}

/// Refuses a query parameter not in `known`, naming it.
pub(crate) fn only_params(q: &std::collections::HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::field(k.clone(), format!("unknown parameter; expected one of {}", known.join(", ")))),
        None => Ok(()),
    }
}

/// The `limit` query parameter: 1–1000, `default` when absent.
pub(crate) fn limit_param(q: &std::collections::HashMap<String, String>, default: u32) -> Result<u32, ApiError> {
    match q.get("limit") {
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::field("limit", "must be 1-1000")),
        None => Ok(default),
    }
}

/// The `offset` query parameter of a paged listing (0 when absent).
pub(crate) fn offset_param(q: &std::collections::HashMap<String, String>) -> Result<u32, ApiError> {
    match q.get("offset") {
        Some(v) => v.parse::<u32>().map_err(|_| ApiError::field("offset", "must be a non-negative integer")),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        input: String,
        user_id: Option<String>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Batch {
        items: Vec<Item>,
    }

    fn field_of(body: &str) -> (Option<String>, String) {
        match parse_json::<Batch>(body.as_bytes()) {
            Err(ApiError::BadRequest { field, message }) => (field, message),
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{}"#).0.as_deref(), Some("items"));
        assert_eq!(field_of(r#"{"items":[{"input":"a"},{"user_id":"u"}]}"#).0.as_deref(), Some("items[1].input"));
        assert_eq!(field_of(r#"{"items":[{"input":5}]}"#).0.as_deref(), Some("items[0].input"));
        let (_, m) = field_of(r#"{"items":["#);
        assert!(m.starts_with("malformed JSON"), "{m}");
        let (_, m) = field_of(r#"{"items":[]} trailing"#);
        assert!(m.starts_with("malformed JSON"), "{m}");
    }

    #[test]
    fn syntax_errors_never_name_an_unknown_field() {
        for body in [r#"{"items":[{"input":"a",}]}"#, r#"{"items":[{"input":"a"} {"#, r#"{,}"#, r#"{"items" 5}"#] {
            let (field, m) = field_of(body);
            assert!(!field.as_deref().unwrap_or_default().contains('?'), "{body}: {field:?}");
            assert!(m.starts_with("malformed JSON") && m.contains("line 1 column"), "{body}: {m}");
        }
        assert_eq!(field_of(r#"{"items":[{"input":"a",}]}"#).0.as_deref(), Some("items[0]"));
    }

    #[test]
    fn bodies_carry_code_and_field() {
        let e = ApiError::field("input", "missing");
        assert_eq!(e.body()["error"]["field"], "input");
        assert_eq!(ApiError::Internal("secret detail".into()).body()["error"]["message"], "internal error");
    }
}
