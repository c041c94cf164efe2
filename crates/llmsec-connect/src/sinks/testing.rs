//! Test helpers: envelopes, a build context, and an HTTP receiver on
//! 127.0.0.1 that records what it is sent and answers from a plan.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, Uri};

use super::{AddressPolicy, BuildContext};
use crate::publish::OutboxRecord;

/// Lets every address through (the receivers are on loopback).
#[derive(Debug)]
pub struct AnyAddress;

impl AddressPolicy for AnyAddress {
    fn filter(&self, _host: &str, addrs: Vec<std::net::SocketAddr>) -> Result<Vec<std::net::SocketAddr>, String> {
        Ok(addrs)
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().timeout(std::time::Duration::from_secs(5)).build().unwrap()
}

pub fn context<'a>(env: &'a (dyn Fn(&str) -> Option<String> + Sync)) -> BuildContext<'a> {
    BuildContext { client: client(), addresses: Arc::new(AnyAddress), env }
}

pub fn record<'a>(id: &'a str, event: &'a str, payload: &'a [u8]) -> OutboxRecord<'a> {
    OutboxRecord { topic: "test-sink", key: "acme", idempotency_key: id, event, tenant: "acme", payload }
}

/// A blocked prompt injection (2026-12-07T00:00:00.500Z).
pub fn security_envelope(id: &str, verdict: &str) -> Vec<u8> {
    serde_json::json!({
        "id": id, "event": "security_event", "created_at": "2026-12-07T00:00:01Z", "tenant": "acme", "key": "acme",
        "data": {
            "event_id": "ev-1", "event_type": "prompt_injection", "verdict": verdict, "confidence": 0.93,
            "threats": [{"type": "prompt_injection", "category": "direct_injection", "severity": "high",
                         "confidence": 0.93, "span": {"start": 0, "end": 6}, "evidence": "ignore previous",
                         "scanner": "injection"}],
            "user_id": "alice", "session_id": "s-1", "timestamp": "2026-12-07T00:00:00.500Z",
        }
    })
    .to_string()
    .into_bytes()
}

/// Sentinel's sample anomaly (a cost spike, warning) under `event`.
pub fn anomaly_envelope(id: &str, event: &str) -> Vec<u8> {
    serde_json::json!({
        "id": id, "event": event, "created_at": "2026-12-07T00:00:01Z", "tenant": "acme", "key": "chatbot-prod",
        "data": llm_sentinel::anomaly::sample(),
    })
    .to_string()
    .into_bytes()
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Answer = Box<dyn Fn(&Got) -> (StatusCode, String) + Send + Sync>;

/// An HTTP receiver on 127.0.0.1: records every request and answers with `answer`.
#[derive(Clone)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Got>>>,
    pub url: String,
}

impl Receiver {
    pub async fn start(answer: impl Fn(&Got) -> (StatusCode, String) + Send + Sync + 'static) -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let answer: Arc<Answer> = Arc::new(Box::new(answer));
        let (g, a) = (got.clone(), answer.clone());
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let (g, a) = (g.clone(), a.clone());
                async move {
                    let req = Got { method, path: uri.to_string(), headers, body: body.to_vec() };
                    let (status, text) = a(&req);
                    g.lock().unwrap().push(req);
                    (status, [("content-type", "application/json")], text)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { got, url }
    }

    pub fn all(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}
