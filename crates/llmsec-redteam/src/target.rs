//! What a red-team run attacks: an OpenAI-compatible chat endpoint (the
//! Shield gateway included), an Anthropic messages endpoint, or the
//! engine in-process (which measures the detector, not a model).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use llm_security::{ContextKind, SecurityEngine, Verdict};
use serde_json::{Value, json};

/// A tool the scenario offers the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Its name.
    pub name: &'static str,
    /// What it does, as the model reads it.
    pub description: &'static str,
    /// JSON Schema of its arguments.
    pub parameters: Value,
}

/// One request to the target.
#[derive(Debug, Clone)]
pub struct Request {
    /// The application's system prompt.
    pub system: String,
    /// The user's message (the attack, for direct cases).
    pub user: String,
    /// Content the model reads (the attack, for indirect cases).
    pub document: Option<String>,
    /// Tools offered.
    pub tools: Vec<Tool>,
    /// Completion limit.
    pub max_tokens: u32,
}

impl Request {
    /// The user message with the document folded in, as an application
    /// that pastes retrieved content into the prompt would send it.
    pub fn user_with_document(&self) -> String {
        match &self.document {
            Some(doc) => format!("{}\n\n<document>\n{doc}\n</document>", self.user),
            None => self.user.clone(),
        }
    }
}

/// What came back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    /// The text of the answer.
    pub text: String,
    /// Names of the tools the answer calls.
    pub tool_calls: Vec<String>,
    /// For the engine target: whether the engine stopped the attack.
    pub detected: Option<bool>,
}

/// A request that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TargetError {
    /// What happened.
    pub message: String,
    /// Whether trying again may help (connection failures, timeouts, 429,
    /// 5xx).
    pub retryable: bool,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl TargetError {
    fn fatal(message: impl Into<String>) -> Self {
        TargetError { message: message.into(), retryable: false, retry_after: None }
    }
}

/// Something a run attacks.
#[async_trait]
pub trait Target: Send + Sync {
    /// For reports.
    fn describe(&self) -> String;
    /// Sends one request.
    async fn send(&self, request: &Request) -> Result<Reply, TargetError>;
}

/// The engine in-process: an attack succeeds when the engine lets the
/// prompt (and, for indirect cases, the document, read with
/// `analyze_context`) through.
#[derive(Debug, Clone)]
pub struct EngineTarget {
    engine: Arc<SecurityEngine>,
}

impl EngineTarget {
    /// Attacks this engine.
    pub fn new(engine: Arc<SecurityEngine>) -> Self {
        EngineTarget { engine }
    }
}

#[async_trait]
impl Target for EngineTarget {
    fn describe(&self) -> String {
        "engine (in-process)".to_owned()
    }

    async fn send(&self, request: &Request) -> Result<Reply, TargetError> {
        let input = self.engine.analyze_input_sync(&request.user).map_err(|e| TargetError::fatal(e.to_string()))?;
        let mut detected = input.verdict() != Verdict::Allow;
        if let Some(doc) = &request.document {
            let content = self
                .engine
                .analyze_context_sync(doc, ContextKind::Document)
                .map_err(|e| TargetError::fatal(e.to_string()))?;
            detected |= content.verdict() != Verdict::Allow;
        }
        Ok(Reply { text: String::new(), tool_calls: Vec::new(), detected: Some(detected) })
    }
}

/// The wire format of an HTTP target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `POST {base}/chat/completions`.
    OpenAi,
    /// `POST {base}/messages`.
    Anthropic,
}

/// A chat endpoint over HTTP.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    client: reqwest::Client,
    base_url: String,
    model: String,
    api_key: Option<String>,
    wire: Wire,
}

impl HttpTarget {
    /// A target at `base_url` (e.g. `http://127.0.0.1:8080/v1`) for
    /// `model`, with an optional key, and a per-request timeout.
    pub fn new(
        wire: Wire,
        base_url: &str,
        model: &str,
        api_key: Option<String>,
        timeout: Duration,
    ) -> Result<Self, TargetError> {
        let url =
            reqwest::Url::parse(base_url).map_err(|e| TargetError::fatal(format!("base URL `{base_url}`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetError::fatal(format!("base URL `{base_url}`: only http and https")));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TargetError::fatal(format!("HTTP client: {e}")))?;
        Ok(HttpTarget {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            model: model.to_owned(),
            api_key,
            wire,
        })
    }

    fn body(&self, r: &Request) -> (String, Value) {
        match self.wire {
            Wire::OpenAi => {
                let tools: Vec<Value> = r
                    .tools
                    .iter()
                    .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
                    .collect();
                let mut body = json!({
                    "model": self.model,
                    "max_tokens": r.max_tokens,
                    "messages": [
                        {"role": "system", "content": r.system},
                        {"role": "user", "content": r.user_with_document()},
                    ],
                });
                if !tools.is_empty() {
                    body["tools"] = Value::Array(tools);
                }
                (format!("{}/chat/completions", self.base_url), body)
            }
            Wire::Anthropic => {
                let tools: Vec<Value> = r
                    .tools
                    .iter()
                    .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                    .collect();
                let mut body = json!({
                    "model": self.model,
                    "max_tokens": r.max_tokens,
                    "system": r.system,
                    "messages": [{"role": "user", "content": r.user_with_document()}],
                });
                if !tools.is_empty() {
                    body["tools"] = Value::Array(tools);
                }
                (format!("{}/messages", self.base_url), body)
            }
        }
    }
}

#[async_trait]
impl Target for HttpTarget {
    fn describe(&self) -> String {
        let wire = match self.wire {
            Wire::OpenAi => "openai",
            Wire::Anthropic => "anthropic",
        };
        format!("{wire} {} (model {})", self.base_url, self.model)
    }

    async fn send(&self, request: &Request) -> Result<Reply, TargetError> {
        let (url, body) = self.body(request);
        let mut req = self.client.post(&url).header("content-type", "application/json").body(body.to_string());
        if let Some(key) = &self.api_key {
            req = match self.wire {
                Wire::OpenAi => req.bearer_auth(key),
                Wire::Anthropic => req.header("x-api-key", key),
            };
        }
        if self.wire == Wire::Anthropic {
            req = req.header("anthropic-version", "2023-06-01");
        }
        let resp = req.send().await.map_err(|e| TargetError {
            message: format!("{url}: {}", error_chain(&e)),
            retryable: e.is_connect() || e.is_timeout() || e.is_request(),
            retry_after: None,
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.map_err(|e| TargetError {
            message: format!("{url}: reading the answer: {e}"),
            retryable: true,
            retry_after: None,
        })?;
        if !status.is_success() {
            // A refusal by a guard in front of the model (the Shield
            // gateway's prompt_blocked, output_blocked, tool_call_blocked,
            // user_blocked) is the target defending itself: an answer.
            if matches!(status.as_u16(), 400 | 403 | 422)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && [&v["error"]["code"], &v["error"]["type"]].iter().any(|c| {
                    matches!(
                        c.as_str(),
                        Some(
                            "prompt_blocked"
                                | "output_blocked"
                                | "tool_call_blocked"
                                | "user_blocked"
                                | "content_filter"
                        )
                    )
                })
            {
                return Ok(Reply { text: String::new(), tool_calls: Vec::new(), detected: Some(true) });
            }
            let excerpt: String = text.chars().take(200).collect();
            return Err(TargetError {
                message: format!("{url}: HTTP {status}: {excerpt}"),
                retryable: status.as_u16() == 429 || status.is_server_error(),
                retry_after,
            });
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| TargetError::fatal(format!("{url}: the answer is not JSON: {e}")))?;
        Ok(match self.wire {
            Wire::OpenAi => {
                let msg = &v["choices"][0]["message"];
                let tool_calls = msg["tool_calls"]
                    .as_array()
                    .map(|calls| {
                        calls.iter().filter_map(|c| c["function"]["name"].as_str().map(str::to_owned)).collect()
                    })
                    .unwrap_or_default();
                Reply { text: msg["content"].as_str().unwrap_or("").to_owned(), tool_calls, detected: None }
            }
            Wire::Anthropic => {
                let blocks = v["content"].as_array().cloned().unwrap_or_default();
                let text = blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("");
                let tool_calls = blocks
                    .iter()
                    .filter(|b| b["type"] == "tool_use")
                    .filter_map(|b| b["name"].as_str().map(str::to_owned))
                    .collect();
                Reply { text, tool_calls, detected: None }
            }
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
