//! What a service refuses or fails with, in domain terms. Each transport
//! maps it to its own shape: REST and GraphQL to a status and a JSON error
//! (`crate::error::ApiError`), gRPC to a status code, the gateway to an
//! OpenAI-style error body.

use llmsec_store::{Millis, StoreError};

/// Why a service call did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The request is malformed; `field` names the offending field (a JSON
    /// path such as `items[3].input`) when there is one.
    #[error("{message}")]
    Invalid {
        /// The field, when known.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// No key, or a key that is unknown or revoked.
    #[error("missing or invalid API key")]
    Unauthenticated,
    /// The key lacks the scope.
    #[error("this key lacks the `{0}` scope")]
    Forbidden(&'static str),
    /// Nothing with that id (in the caller's tenant).
    #[error("{0}")]
    NotFound(String),
    /// The thing is no longer in a state that allows the change (a
    /// quarantined item another reviewer already decided).
    #[error("{0}")]
    Conflict(String),
    /// Sentinel blocked the caller (a shield enforcement).
    #[error("blocked: {reason}")]
    Blocked {
        /// Why.
        reason: String,
        /// Until when (RFC 3339).
        until: String,
    },
    /// The key's rate, or an enforcement's, is exhausted.
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds until a request would pass.
        retry_after_secs: u64,
    },
    /// The request's deadline passed; nothing of it was stored.
    #[error("request timed out")]
    Timeout,
    /// The store (or another dependency) is unavailable; retry later.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the detail is for the log only.
    #[error("internal error")]
    Internal(String),
}

impl ServiceError {
    /// An invalid-request error about one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ServiceError {
        ServiceError::Invalid { field: Some(field.into()), message: message.into() }
    }

    /// Whole seconds to wait after `wait`, at least one.
    pub(crate) fn retry_after(wait: std::time::Duration) -> ServiceError {
        ServiceError::RateLimited { retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64 }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> ServiceError {
        match e {
            StoreError::Conflict(what) => {
                ServiceError::Invalid { field: None, message: format!("{what} already exists") }
            }
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed) => {
                ServiceError::Unavailable("database".into())
            }
            // Names the key id and where to add the key; never the key.
            StoreError::Cipher(e @ llmsec_store::CipherError::UnknownKey { .. }) => {
                ServiceError::Unavailable(e.to_string())
            }
            e => ServiceError::Internal(e.to_string()),
        }
    }
}

/// User, session and application ids: 1–256 bytes, no control characters
/// (they are stored, indexed and echoed into logs and webhooks).
pub fn check_id(field: &str, id: Option<&str>) -> Result<(), ServiceError> {
    match id {
        Some(v) if !llm_sentinel::event::is_valid_id(v) => {
            Err(ServiceError::field(field, llm_sentinel::event::ID_RULE))
        }
        _ => Ok(()),
    }
}

/// Tenant names: 1–64 of `[A-Za-z0-9_.-]`.
pub fn check_tenant(field: &str, t: &str) -> Result<(), ServiceError> {
    if t.is_empty() || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        return Err(ServiceError::field(field, "must be 1-64 characters of A-Z a-z 0-9 _ . -"));
    }
    Ok(())
}

/// Parses an RFC 3339 time or Unix milliseconds.
pub fn parse_time(field: &str, v: &str) -> Result<Millis, ServiceError> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|e| ServiceError::field(field, format!("{v:?} is neither RFC 3339 nor Unix milliseconds: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("since", "1000").unwrap(), 1000);
        assert_eq!(parse_time("since", "1970-01-01T00:00:01Z").unwrap(), 1000);
        assert!(
            matches!(parse_time("since", "yesterday"), Err(ServiceError::Invalid { field: Some(f), .. }) if f == "since")
        );
    }
}
