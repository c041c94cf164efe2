//! Every refusal in OpenAI's error shape:
//! `{"error": {"message", "type", "code", "param"}}`, so that OpenAI SDKs
//! raise their usual exceptions (`BadRequestError`, `PermissionDeniedError`,
//! `RateLimitError`, …) with our code inside.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Marks a response whose body is already in OpenAI's shape, so the
/// error-shaping layer leaves it alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shaped;

/// A refusal or failure the gateway answers with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct OpenAiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// OpenAI's error type (`invalid_request_error`, `permission_error`, …).
    pub kind: &'static str,
    /// The machine-readable code (`prompt_blocked`, `output_blocked`,
    /// `user_blocked`, `rate_limited`, `upstream_unavailable`, …).
    pub code: String,
    /// What happened, for people.
    pub message: String,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// Seconds to wait before retrying (429). 32 bits, with the id below
    /// boxed, keep the error small: every `Result` of the gateway carries it.
    pub retry_after: Option<u32>,
    /// The quarantined item a `held_for_review` refusal names.
    pub quarantine_id: Option<Box<str>>,
}

/// OpenAI's error type for a status.
pub(crate) fn kind_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 | 504 => "timeout_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

impl OpenAiError {
    /// An error with the type that goes with `status`.
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> OpenAiError {
        OpenAiError {
            status,
            kind: kind_for(status),
            code: code.into(),
            message: message.into(),
            param: None,
            retry_after: None,
            quarantine_id: None,
        }
    }

    /// Names the request field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> OpenAiError {
        self.param = Some(param.into());
        self
    }

    /// A malformed request (400 `invalid_request`), naming the field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> OpenAiError {
        OpenAiError::new(StatusCode::BAD_REQUEST, "invalid_request", message).with_param(param)
    }

    /// A prompt the route's policy refuses (400 `prompt_blocked`).
    pub fn prompt_blocked(message: impl Into<String>) -> OpenAiError {
        OpenAiError::new(StatusCode::BAD_REQUEST, "prompt_blocked", message)
    }

    /// A completion the route's policy refuses (422 `output_blocked`).
    pub fn output_blocked(message: impl Into<String>) -> OpenAiError {
        OpenAiError::new(StatusCode::UNPROCESSABLE_ENTITY, "output_blocked", message)
    }

    /// A completion held for human review (`held_for_review`, naming the
    /// quarantined item). 422, as for `output_blocked`: the answer is not
    /// the completion, so no 2xx (an SDK would read the body as one), and
    /// not 409, 429 or 5xx, which OpenAI's SDKs retry on their own: each
    /// retry would call the model again and queue one more item.
    pub fn held_for_review(id: &str) -> OpenAiError {
        let mut e = OpenAiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "held_for_review",
            format!("the completion is held for review as {id}; once released, GET /v1/quarantine/{id} answers it"),
        );
        e.quarantine_id = Some(id.into());
        e
    }

    /// The upstream could not be reached (502 `upstream_unavailable`).
    pub fn upstream_unavailable(message: impl Into<String>) -> OpenAiError {
        OpenAiError::new(StatusCode::BAD_GATEWAY, "upstream_unavailable", message)
    }

    /// The upstream did not answer in time (504 `upstream_timeout`).
    pub fn upstream_timeout(message: impl Into<String>) -> OpenAiError {
        OpenAiError::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", message)
    }

    /// The same error in Anthropic's shape, for `/v1/messages`:
    /// `{"type": "error", "error": {"type", "message", "code"}}`.
    pub fn anthropic_body(&self) -> serde_json::Value {
        let kind = match self.kind {
            "server_error" | "timeout_error" => "api_error",
            k => k,
        };
        let mut v = json!({"type": "error", "error": {"type": kind, "message": self.message, "code": self.code}});
        if let Some(id) = &self.quarantine_id {
            v["error"]["quarantine_id"] = json!(id);
        }
        v
    }

    /// The JSON body (`quarantine_id` besides OpenAI's fields for a held completion).
    pub fn body(&self) -> serde_json::Value {
        let mut v =
            json!({"error": {"message": self.message, "type": self.kind, "code": self.code, "param": self.param}});
        if let Some(id) = &self.quarantine_id {
            v["error"]["quarantine_id"] = json!(id);
        }
        v
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = %self.code, message = %self.message, "gateway error");
        }
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp.extensions_mut().insert(Shaped);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openai_shape() {
        let e = OpenAiError::invalid("messages[0].content", "must be a string");
        assert_eq!(
            e.body(),
            json!({"error": {"message": "must be a string", "type": "invalid_request_error", "code": "invalid_request", "param": "messages[0].content"}})
        );
        assert_eq!(OpenAiError::upstream_unavailable("x").kind, "server_error");
        assert_eq!(OpenAiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "x").kind, "rate_limit_error");
        let mut e = OpenAiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "slow down");
        e.retry_after = Some(3);
        let r = e.into_response();
        assert_eq!(r.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("3"));
        assert!(r.extensions().get::<Shaped>().is_some());
        let held = OpenAiError::held_for_review("q_1");
        assert_eq!((held.status.as_u16(), held.body()["error"]["code"].as_str()), (422, Some("held_for_review")));
        assert_eq!(held.body()["error"]["quarantine_id"], "q_1");
        assert_eq!(held.anthropic_body()["error"]["quarantine_id"], "q_1");
        assert!(OpenAiError::invalid("x", "y").body()["error"].get("quarantine_id").is_none());
        let a = OpenAiError::upstream_unavailable("down").anthropic_body();
        assert_eq!(
            a,
            json!({"type": "error", "error": {"type": "api_error", "message": "down", "code": "upstream_unavailable"}})
        );
    }
}
