//! A server with the gateway mounted, on a real socket on 127.0.0.1, in
//! front of the mock upstream; requests go through reqwest.

use std::net::SocketAddr;
use std::time::Duration;

use llmsec_server::Server;
use llmsec_server::config::{GatewayConfig, ServerConfig};
use serde_json::{Value, json};

use crate::mock::{self, Mock};

/// The `LLMSEC_ADMIN_KEY` of the test servers.
pub const ADMIN: &str = "test-admin-key-0123456789";
/// The upstream key, as the gateway reads it from its environment.
pub const UPSTREAM_KEY: &str = "sk-upstream-test-key";

pub struct Gw {
    pub server_addr: SocketAddr,
    pub server: Server,
    pub mock: Mock,
    pub http: reqwest::Client,
    /// A key with only the `proxy` scope.
    pub key: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

pub fn gateway_config(base_url: &str) -> GatewayConfig {
    let toml_text = format!(
        r#"
[gateway]
[gateway.stream]
hold_back_bytes = 64
min_scan_bytes = 1
[[gateway.upstreams]]
name = "mock"
base_url = "{base_url}"
api_key_env = "MOCK_UPSTREAM_KEY"
timeout_ms = 20000
connect_timeout_ms = 1000
[[gateway.upstreams]]
name = "mock-anthropic"
format = "anthropic"
base_url = "{base_url}"
api_key_env = "MOCK_UPSTREAM_KEY"
model_prefixes = ["claude-"]
"#
    );
    let c: ServerConfig = toml::from_str(&toml_text).unwrap();
    c.gateway.unwrap()
}

pub async fn start() -> Gw {
    start_with(|_| {}).await
}

pub async fn start_with(edit: impl FnOnce(&mut GatewayConfig)) -> Gw {
    start_server_with(|_| {}, edit).await
}

/// A temporary directory of its own.
pub fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("llmsec-gateway-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// [`start_with`], with the server's own config edited too.
pub async fn start_server_with(server: impl FnOnce(&mut ServerConfig), edit: impl FnOnce(&mut GatewayConfig)) -> Gw {
    start_on_clock(server, edit, None).await
}

/// [`start_server_with`], with Sentinel (and what reads its clock) on
/// `clock` when given.
pub async fn start_on_clock(
    server: impl FnOnce(&mut ServerConfig),
    edit: impl FnOnce(&mut GatewayConfig),
    clock: Option<std::sync::Arc<dyn llm_sentinel::Clock>>,
) -> Gw {
    let mock = mock::start().await;
    let mut gateway = gateway_config(&mock.base_url());
    edit(&mut gateway);
    let mut config = ServerConfig { data_dir: temp_dir(), gateway: Some(gateway.clone()), ..ServerConfig::default() };
    server(&mut config);
    let server = match clock {
        None => Server::start(config, Some(ADMIN.into())).await.unwrap(),
        Some(clock) => {
            let store: std::sync::Arc<dyn llmsec_store::Store> =
                std::sync::Arc::new(llmsec_store::SqlStore::connect(&config.database_url()).await.unwrap());
            let engine = llm_security::SecurityEngine::try_with_config(config.security_config().unwrap()).unwrap();
            Server::with_clock(config, engine, store, Some(ADMIN.into()), clock).await.unwrap()
        }
    };
    let env = |k: &str| (k == "MOCK_UPSTREAM_KEY").then(|| UPSTREAM_KEY.to_owned());
    let gw_routes = llmsec_gateway::router_with_env(server.state().clone(), gateway, &env).unwrap();
    let app = server.router().merge(gw_routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let limits = server.state().config.limits.clone();
    let capped = llmsec_server::listener::CappedListener::new(listener, &limits);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(llmsec_server::listener::serve(capped, app, Duration::from_secs(10), async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut gw = Gw { server_addr, server, mock, http, key: String::new(), _stop: stop };
    gw.key = gw.make_key(&["proxy"]).await;
    gw
}

impl Gw {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server_addr)
    }

    /// Makes a key of the default tenant with `scopes` through the admin API.
    pub async fn make_key(&self, scopes: &[&str]) -> String {
        let r = self.post_with("/api/admin/keys", ADMIN, &json!({"name": "test", "scopes": scopes}), &[]).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["key"].as_str().unwrap().to_owned()
    }

    /// Makes a key through the admin API from a full request body; the
    /// answer's body (with `key`).
    pub async fn make_key_with(&self, body: &Value) -> Value {
        let r = self.post_with("/api/admin/keys", ADMIN, body, &[]).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }

    /// A request with any method, as `key`.
    pub async fn send(&self, method: reqwest::Method, path: &str, key: &str, body: Option<&Value>) -> Resp {
        let mut rb = self.http.request(method, self.url(path)).header("authorization", format!("Bearer {key}"));
        if let Some(b) = body {
            rb = rb.header("content-type", "application/json").body(serde_json::to_vec(b).unwrap());
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        Resp { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.post_with(path, &self.key, body, &[]).await
    }

    pub async fn post_with(&self, path: &str, key: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
        let mut rb = self
            .http
            .post(self.url(path))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap());
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        Resp { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
    }

    /// The telemetry events of the default tenant, newest last, waiting up
    /// to 5 s for at least `n`.
    pub async fn telemetry(&self, n: usize) -> Vec<Value> {
        for _ in 0..100 {
            let rows = self.server.state().store.telemetry("default", 0, i64::MAX, 1000).await.unwrap();
            if rows.len() >= n {
                return rows.iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} telemetry events");
    }
}

/// The data payloads of an SSE body.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n").filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")).map(str::to_owned)).collect()
}

/// The streamed content of choice 0, joined.
pub fn streamed_content(datas: &[String]) -> String {
    datas
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v.pointer("/choices/0/delta/content").and_then(Value::as_str).map(str::to_owned))
        .collect()
}
