//! The model providers: routing by model name, one pooled HTTP client per
//! upstream (its connect timeout is the upstream's own), the provider key
//! from its environment variable, retries on connect failures only.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderName;
use axum::http::{HeaderValue, header};
use llmsec_server::config::{GatewayConfig, UpstreamConfig, UpstreamFormat};

use crate::GatewayError;
use crate::error::OpenAiError;

/// The Anthropic API version sent when the client names none.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// One provider.
pub(crate) struct Upstream {
    pub name: String,
    pub format: UpstreamFormat,
    base: String,
    /// The key header (`authorization: Bearer <key>` or `x-api-key: <key>`),
    /// marked sensitive; never logged or echoed.
    auth: Option<(HeaderName, HeaderValue)>,
    client: reqwest::Client,
    timeout: Duration,
    retries: u32,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("base", &self.base)
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Every provider, and which serves which model.
#[derive(Debug)]
pub(crate) struct Upstreams {
    list: Vec<Upstream>,
    exact: HashMap<String, usize>,
    /// Longest prefix first.
    prefixes: Vec<(String, usize)>,
    /// Per format.
    defaults: HashMap<UpstreamFormat, usize>,
    /// `(model, upstream)` for `GET /v1/models`, in config order.
    pub listed: Vec<(String, usize)>,
}

impl Upstreams {
    /// Builds the clients and reads each provider key from its variable
    /// (through `env`); a variable that is unset or empty is an error
    /// naming the config key.
    pub fn from_config(cfg: &GatewayConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Upstreams, GatewayError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut list = Vec::with_capacity(cfg.upstreams.len());
        let (mut exact, mut prefixes, mut defaults, mut listed) =
            (HashMap::new(), Vec::new(), HashMap::new(), Vec::new());
        for (i, u) in cfg.upstreams.iter().enumerate() {
            list.push(Upstream::build(i, u, env)?);
            for m in &u.models {
                exact.insert(m.clone(), i);
                listed.push((m.clone(), i));
            }
            prefixes.extend(u.model_prefixes.iter().map(|p| (p.clone(), i)));
            if u.models.is_empty() && u.model_prefixes.is_empty() {
                defaults.insert(u.format, i);
            }
        }
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        Ok(Upstreams { list, exact, prefixes, defaults, listed })
    }

    /// The upstream of `format` serving `model`: the one listing it, else
    /// the longest matching prefix, else that format's default.
    pub fn route(&self, model: &str, format: UpstreamFormat) -> Option<&Upstream> {
        let of_format = |i: &usize| self.list.get(*i).is_some_and(|u| u.format == format);
        let i = self
            .exact
            .get(model)
            .copied()
            .filter(of_format)
            .or_else(|| {
                self.prefixes.iter().find(|(p, i)| model.starts_with(p.as_str()) && of_format(i)).map(|(_, i)| *i)
            })
            .or_else(|| self.defaults.get(&format).copied())?;
        self.list.get(i)
    }

    /// The upstream at `i`.
    pub fn get(&self, i: usize) -> Option<&Upstream> {
        self.list.get(i)
    }
}

impl Upstream {
    fn build(i: usize, u: &UpstreamConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Upstream, GatewayError> {
        let auth = match &u.api_key_env {
            None => None,
            Some(var) => {
                let field = format!("gateway.upstreams[{i}].api_key_env");
                let key = env(var)
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| GatewayError::MissingKey { field: field.clone(), var: var.clone() })?;
                let (name, value) = match u.format {
                    UpstreamFormat::Openai => (header::AUTHORIZATION, format!("Bearer {key}")),
                    UpstreamFormat::Anthropic => (HeaderName::from_static("x-api-key"), key),
                };
                let mut v =
                    HeaderValue::from_str(&value).map_err(|_| GatewayError::BadKey { field, var: var.clone() })?;
                v.set_sensitive(true);
                Some((name, v))
            }
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(u.connect_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("llmsec-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(GatewayError::Client)?;
        Ok(Upstream {
            name: u.name.clone(),
            format: u.format,
            base: u.base_url.trim_end_matches('/').to_owned(),
            auth,
            client,
            timeout: Duration::from_millis(u.timeout_ms),
            retries: u.connect_retries,
        })
    }

    /// POSTs `body` to `<base_url><path>`. A failure to connect is retried
    /// (the request never left); any other failure is not.
    pub async fn post(
        &self,
        path: &str,
        body: Bytes,
        stream: bool,
        client_headers: &axum::http::HeaderMap,
    ) -> Result<reqwest::Response, OpenAiError> {
        let url = format!("{}{path}", self.base);
        let mut attempt = 0u32;
        loop {
            let mut rb = self
                .client
                .post(&url)
                .timeout(self.timeout)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, if stream { "text/event-stream" } else { "application/json" })
                .body(body.clone());
            if let Some((name, value)) = &self.auth {
                rb = rb.header(name.clone(), value.clone());
            }
            if self.format == UpstreamFormat::Anthropic {
                let version = client_headers
                    .get("anthropic-version")
                    .cloned()
                    .unwrap_or(HeaderValue::from_static(ANTHROPIC_VERSION));
                rb = rb.header("anthropic-version", version);
                if let Some(beta) = client_headers.get("anthropic-beta") {
                    rb = rb.header("anthropic-beta", beta.clone());
                }
            }
            match rb.send().await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_connect() && attempt < self.retries => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
                Err(e) if e.is_connect() => {
                    return Err(OpenAiError::upstream_unavailable(format!(
                        "cannot connect to upstream {:?} ({} attempts)",
                        self.name,
                        attempt + 1
                    )));
                }
                Err(e) if e.is_timeout() => {
                    return Err(OpenAiError::upstream_timeout(format!(
                        "upstream {:?} did not answer within {} ms",
                        self.name,
                        self.timeout.as_millis()
                    )));
                }
                Err(e) => {
                    tracing::warn!(upstream = %self.name, error = %e.without_url(), "upstream request failed");
                    return Err(OpenAiError::upstream_unavailable(format!("upstream {:?} failed", self.name)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> GatewayConfig {
        let c: llmsec_server::config::ServerConfig = toml::from_str(toml_text).unwrap();
        c.gateway.unwrap()
    }

    const TWO: &str = r#"
[gateway]
[[gateway.upstreams]]
name = "openai"
base_url = "https://api.openai.com/v1/"
api_key_env = "GW_TEST_KEY"
models = ["gpt-4o-mini"]
model_prefixes = ["gpt-", "gpt-4"]
[[gateway.upstreams]]
name = "anthropic-compat"
base_url = "https://example.invalid/v1"
model_prefixes = ["claude-", "gpt-4.5"]
[[gateway.upstreams]]
name = "local"
base_url = "http://127.0.0.1:11434/v1"
[[gateway.upstreams]]
name = "claude"
format = "anthropic"
base_url = "https://api.anthropic.com/v1"
"#;

    #[test]
    fn routes_by_exact_name_then_longest_prefix_then_default() {
        let env = |k: &str| (k == "GW_TEST_KEY").then(|| "sk-test-123".to_owned());
        let u = Upstreams::from_config(&config(TWO), &env).unwrap();
        let name = |m: &str| u.route(m, UpstreamFormat::Openai).map(|x| x.name.clone());
        assert_eq!(name("gpt-4o-mini").as_deref(), Some("openai"));
        assert_eq!(name("gpt-3.5-turbo").as_deref(), Some("openai"));
        assert_eq!(name("gpt-4.5-preview").as_deref(), Some("anthropic-compat"));
        assert_eq!(name("claude-3").as_deref(), Some("anthropic-compat"));
        assert_eq!(name("llama3").as_deref(), Some("local"));
        // Anthropic upstreams serve only the Messages route, and the other way round.
        assert_eq!(u.route("claude-3", UpstreamFormat::Anthropic).map(|x| x.name.as_str()), Some("claude"));
        assert_eq!(u.route("gpt-4o", UpstreamFormat::Anthropic).map(|x| x.name.as_str()), Some("claude"));
        assert_eq!(u.listed, vec![("gpt-4o-mini".to_owned(), 0)]);
        assert_eq!(u.get(0).map(|x| x.base.as_str()), Some("https://api.openai.com/v1"));
        // The key never shows in Debug output.
        let dbg = format!("{u:?}");
        assert!(!dbg.contains("sk-test-123") && dbg.contains("<redacted>"), "{dbg}");
    }

    #[test]
    fn a_missing_key_variable_is_named() {
        let e = Upstreams::from_config(&config(TWO), &|_| None).unwrap_err().to_string();
        assert!(e.contains("gateway.upstreams[0].api_key_env") && e.contains("GW_TEST_KEY"), "{e}");
    }

    #[test]
    fn without_a_default_unknown_models_have_no_route() {
        let cfg = config(
            &TWO.replace("[[gateway.upstreams]]\nname = \"local\"\nbase_url = \"http://127.0.0.1:11434/v1\"\n", ""),
        );
        let u = Upstreams::from_config(&cfg, &|_| Some("k".into())).unwrap();
        assert!(u.route("llama3", UpstreamFormat::Openai).is_none());
    }
}
