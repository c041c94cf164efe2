//! What the gateway adds to a model call, measured against the same mock
//! upstream called directly, all on this machine over loopback:
//!
//! - non-streamed: latency of a chat completion with a 1 KiB prompt (a new
//!   one each request, so nothing comes from the scan cache) and a 1 KiB
//!   completion, direct and through the gateway, interleaved; p50 and p99
//!   of each and their differences;
//! - streamed: the same completion in 64 chunks; time to the first event
//!   and to the first text, direct and through the gateway;
//! - throughput: requests per second through the gateway from
//!   `--concurrency` clients for `--seconds`;
//! - memory: resident memory per open stream, from `--streams` slow
//!   streams held open direct and then through the gateway (at most 128:
//!   the server's `limits.max_connections_per_ip`).
//!
//! The non-streamed phase also times a prompt the gateway has scanned
//! before (a conversation's resent turn, served by the scan cache).
//!
//! The gateway runs with its defaults (policy `block`, hold-back 512 bytes,
//! events stored in SQLite). The client, the mock and the gateway share one
//! process and the machine's cores, so the figures are upper bounds on the
//! latency the gateway adds and a lower bound on its throughput.
//!
//! ```sh
//! cargo bench -p llmsec-gateway --bench proxy -- [--requests 2000] [--seconds 10] [--concurrency 32] [--streams 100]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is the failure report

#[allow(dead_code)]
#[path = "../tests/it/mock.rs"]
mod mock;

use std::time::{Duration, Instant};

use llmsec_server::Server;
use llmsec_server::config::{GatewayConfig, ServerConfig};
use serde_json::{Value, json};

const ADMIN: &str = "bench-admin-key-0123456789";
const PROSE: &str = "The river runs through the old town past the market square, where traders sell bread, \
cheese and apples every morning. Visitors walk along the stone bridge to see the cathedral and the museum \
of local history, then rest in the gardens by the water. ";

struct Args {
    requests: usize,
    seconds: u64,
    concurrency: usize,
    streams: usize,
}

fn args() -> Args {
    let mut a = Args { requests: 2000, seconds: 10, concurrency: 32, streams: 100 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = || it.next().and_then(|v| v.parse::<u64>().ok()).expect("a number after the flag");
        match flag.as_str() {
            "--requests" => a.requests = num() as usize,
            "--seconds" => a.seconds = num(),
            "--concurrency" => a.concurrency = num() as usize,
            "--streams" => a.streams = num() as usize,
            _ => {} // `--bench`, which cargo passes
        }
    }
    a
}

/// `n` bytes of prose, cut at a word.
fn text(n: usize) -> String {
    let mut s = PROSE.repeat(n / PROSE.len() + 1);
    s.truncate(n);
    match s.rfind(' ') {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

struct Target {
    url: String,
    key: String,
}

/// The bench server's data directory (its SQLite files grow by hundreds
/// of megabytes in a run), removed before the process exits.
static DATA_DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

async fn start_gateway(mock_url: &str) -> (Target, Server) {
    let cfg = format!("[gateway]\n[[gateway.upstreams]]\nname = \"mock\"\nbase_url = \"{mock_url}\"\n");
    let c: ServerConfig = toml::from_str(&cfg).unwrap();
    let gateway: GatewayConfig = c.gateway.unwrap();
    let dir = std::env::temp_dir().join(format!("llmsec-gateway-bench-{}", uuid::Uuid::new_v4()));
    let _ = DATA_DIR.set(dir.clone());
    let config = ServerConfig { data_dir: dir, gateway: Some(gateway.clone()), ..ServerConfig::default() };
    let server = Server::start(config, Some(ADMIN.into())).await.unwrap();
    let routes = llmsec_gateway::router_with_env(server.state().clone(), gateway, &|_| None).unwrap();
    let app = server.router().merge(routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = server.state().config.limits.clone();
    let capped = llmsec_server::listener::CappedListener::new(listener, &limits);
    tokio::spawn(llmsec_server::listener::serve(capped, app, Duration::from_secs(1), std::future::pending()));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let made = http
        .post(format!("http://{addr}/api/admin/keys"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(json!({"name": "bench", "scopes": ["proxy"], "rate_per_sec": 1e9}).to_string())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let made: Value = serde_json::from_slice(&made).unwrap();
    let key = made["key"].as_str().unwrap().to_owned();
    (Target { url: format!("http://{addr}/v1"), key }, server)
}

fn body(i: usize, stream: bool, reply: &str, chunks: &[String]) -> String {
    let prompt = format!("Request {i}: {}", text(1024 - 16));
    let mut b = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "You are a travel guide."},
        {"role": "user", "content": prompt}
    ], "x_reply": reply});
    if stream {
        b["stream"] = json!(true);
        b["x_chunks"] = json!(chunks);
    }
    b.to_string()
}

/// One non-streamed call: its latency in milliseconds.
async fn call(http: &reqwest::Client, t: &Target, b: String) -> f64 {
    let start = Instant::now();
    let r = http
        .post(format!("{}/chat/completions", t.url))
        .bearer_auth(&t.key)
        .header("content-type", "application/json")
        .body(b)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let _ = r.bytes().await.unwrap();
    start.elapsed().as_secs_f64() * 1000.0
}

/// One streamed call: milliseconds to the first event and to the first text.
async fn stream(http: &reqwest::Client, t: &Target, b: String) -> (f64, f64) {
    let start = Instant::now();
    let mut r = http
        .post(format!("{}/chat/completions", t.url))
        .bearer_auth(&t.key)
        .header("content-type", "application/json")
        .body(b)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (mut first_event, mut first_text) = (None, None);
    let mut buf = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        buf.extend_from_slice(&c);
        let now = start.elapsed().as_secs_f64() * 1000.0;
        if first_event.is_none() && buf.windows(6).any(|w| w == b"data: ") {
            first_event = Some(now);
        }
        if first_text.is_none() {
            let s = String::from_utf8_lossy(&buf);
            let has_text = s.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).any(|d| {
                serde_json::from_str::<Value>(d).ok().is_some_and(|v| {
                    v.pointer("/choices/0/delta/content").and_then(Value::as_str).is_some_and(|t| !t.is_empty())
                })
            });
            if has_text {
                first_text = Some(now);
            }
        }
    }
    (first_event.unwrap_or(f64::NAN), first_text.unwrap_or(f64::NAN))
}

/// Holds `n` slow streams open (the mock sends a word every 50 ms) until
/// each has delivered its first bytes; the resident memory they add.
async fn open_streams(t: &Target, n: usize) -> u64 {
    let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().unwrap();
    let before = rss_bytes();
    let mut open = Vec::with_capacity(n);
    for i in 0..n {
        let mut b: Value = serde_json::from_str(&body(i, true, "", &[])).unwrap();
        b["x_slow"] = json!(true);
        let mut r = http
            .post(format!("{}/chat/completions", t.url))
            .bearer_auth(&t.key)
            .header("content-type", "application/json")
            .body(b.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let _ = r.chunk().await.unwrap();
        open.push(r);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes();
    drop(open);
    after.saturating_sub(before)
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run(a));
    if let Some(dir) = DATA_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
    // The server's background tasks and the mock's slow streams would keep
    // the runtime's shutdown waiting: the figures are out, end here.
    std::process::exit(0);
}

async fn run(a: Args) {
    let mock = mock::start().await;
    let direct = Target { url: mock.base_url(), key: "sk-direct".into() };
    let (gw, _server) = start_gateway(&mock.base_url()).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let reply = text(1024);
    let chunks: Vec<String> = reply.as_bytes().chunks(16).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    println!(
        "prompt {} B, completion {} B ({} chunks streamed), {} requests per mode",
        format!("Request 0: {}", text(1024 - 16)).len(),
        reply.len(),
        chunks.len(),
        a.requests
    );

    // Warm-up: connections, the engine's lazy tables, SQLite's pages.
    for i in 0..200 {
        call(&http, &direct, body(i, false, &reply, &chunks)).await;
        call(&http, &gw, body(i, false, &reply, &chunks)).await;
        stream(&http, &gw, body(i, true, &reply, &chunks)).await;
    }

    let (mut d, mut g, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..a.requests {
        let n = 1_000_000 + i;
        d.push(call(&http, &direct, body(n, false, &reply, &chunks)).await);
        g.push(call(&http, &gw, body(n, false, &reply, &chunks)).await);
        c.push(call(&http, &gw, body(0, false, &reply, &chunks)).await);
    }
    let ((d50, d99), (g50, g99), (c50, c99)) = (stats(d), stats(g), stats(c));
    println!("non-streamed  direct p50 {d50:.3} ms p99 {d99:.3} ms | gateway p50 {g50:.3} ms p99 {g99:.3} ms");
    println!("non-streamed  added  p50 {:.3} ms p99 {:.3} ms", g50 - d50, g99 - d99);
    println!(
        "non-streamed  prompt scanned before: gateway p50 {c50:.3} ms p99 {c99:.3} ms, added p50 {:.3} ms p99 {:.3} ms",
        c50 - d50,
        c99 - d99
    );

    let (mut de, mut dt, mut ge, mut gt) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..a.requests / 2 {
        let n = 2_000_000 + i;
        let (e, t) = stream(&http, &direct, body(n, true, &reply, &chunks)).await;
        de.push(e);
        dt.push(t);
        let (e, t) = stream(&http, &gw, body(n, true, &reply, &chunks)).await;
        ge.push(e);
        gt.push(t);
    }
    let ((de50, de99), (dt50, dt99), (ge50, ge99), (gt50, gt99)) = (stats(de), stats(dt), stats(ge), stats(gt));
    println!(
        "streamed      first event: direct p50 {de50:.3} p99 {de99:.3} | gateway p50 {ge50:.3} p99 {ge99:.3} | added p50 {:.3} p99 {:.3} ms",
        ge50 - de50,
        ge99 - de99
    );
    println!(
        "streamed      first text:  direct p50 {dt50:.3} p99 {dt99:.3} | gateway p50 {gt50:.3} p99 {gt99:.3} | added p50 {:.3} p99 {:.3} ms",
        gt50 - dt50,
        gt99 - dt99
    );

    for (name, t) in [("direct", &direct), ("gateway", &gw)] {
        let until = Instant::now() + Duration::from_secs(a.seconds);
        let mut tasks = Vec::new();
        for c in 0..a.concurrency {
            let (url, key, reply) = (t.url.clone(), t.key.clone(), reply.clone());
            let client = http.clone();
            tasks.push(tokio::spawn(async move {
                let t = Target { url, key };
                let mut n = 0u64;
                let mut i = 3_000_000 + c * 1_000_000;
                while Instant::now() < until {
                    call(&client, &t, body(i, false, &reply, &[])).await;
                    n += 1;
                    i += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        println!(
            "throughput    {name}: {:.0} requests/s ({} clients, {} s)",
            total as f64 / a.seconds as f64,
            a.concurrency,
            a.seconds
        );
    }

    let direct_mem = open_streams(&direct, a.streams).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gw_mem = open_streams(&gw, a.streams).await;
    println!(
        "open streams  {}: direct +{} KiB, gateway +{} KiB: the gateway's share {:.1} KiB per stream",
        a.streams,
        direct_mem / 1024,
        gw_mem / 1024,
        gw_mem.saturating_sub(direct_mem) as f64 / 1024.0 / a.streams as f64
    );
}
