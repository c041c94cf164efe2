//! Sends a run's summary to an llmsec server (`POST /api/v1/redteam/runs`,
//! a key with the `ingest` scope), so attack success can be followed over
//! time there. Only the summary goes: never the attack prompts or the
//! target's answers.

use std::time::Duration;

use serde_json::{Value, json};

use crate::report::Summary;

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The server URL is not an http(s) URL.
    #[error("--upload {0}: not an http or https URL")]
    Url(String),
    /// The request did not complete.
    #[error("--upload: {0}")]
    Http(String),
    /// The server refused it.
    #[error("--upload: the server answered {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its answer, cut to 500 bytes.
        body: String,
    },
}

/// Posts `summary` to `server` (its base URL) as `key`; answers the stored
/// run's id.
pub async fn upload(server: &str, key: &str, summary: &Summary) -> Result<String, UploadError> {
    let base = server.trim_end_matches('/');
    match reqwest::Url::parse(base) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => return Err(UploadError::Url(server.to_owned())),
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| UploadError::Http(e.to_string()))?;
    let body = serde_json::to_vec(&json!({ "summary": summary })).map_err(|e| UploadError::Http(e.to_string()))?;
    let resp = client
        .post(format!("{base}/api/v1/redteam/runs"))
        .bearer_auth(key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| UploadError::Http(e.to_string()))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| UploadError::Http(e.to_string()))?;
    if status != 201 {
        let mut end = text.len().min(500);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        return Err(UploadError::Refused { status, body: text[..end].to_owned() });
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| UploadError::Http(format!("answer: {e}")))?;
    v.get("id").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| UploadError::Http("answer has no id".into()))
}
