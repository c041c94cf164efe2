//! A mock OpenAI-compatible upstream on 127.0.0.1:0, written for these
//! tests. It counts calls and keeps the last request body. What it answers
//! is driven by the request itself (fields the gateway must pass through
//! untouched): `x_reply` is the completion text, `x_chunks` the streamed
//! pieces (chat and completions), `x_echo_system_base64` answers with
//! the system prompt in base64, `x_tool_calls` the tool calls (`x_tool_stream` their streamed
//! fragments, one array per chunk), `x_slow` streams a piece every 50 ms until the client goes away,
//! and the model `error-model` answers 500 in OpenAI's error shape. With
//! `logprobs: true`, chat answers carry `logprobs.content`: one entry per
//! word of the reply (per piece when streamed), their values from
//! `x_logprobs` (cycled; default -0.1).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Debug, Default)]
pub struct Seen {
    pub calls: AtomicUsize,
    pub last: Mutex<Option<Value>>,
    /// The key header: `x-api-key`, else `authorization`.
    pub last_auth: Mutex<Option<String>>,
    pub last_version: Mutex<Option<String>>,
    /// Set when a slow stream's body was dropped before it ended: the
    /// client (the gateway) closed the connection.
    pub stream_closed: AtomicBool,
}

#[derive(Debug, Clone)]
pub struct Mock {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
}

impl Mock {
    pub fn calls(&self) -> usize {
        self.seen.calls.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> Value {
        self.seen.last.lock().unwrap().clone().unwrap_or(Value::Null)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

pub async fn start() -> Mock {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/messages", post(messages))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Without TCP_NODELAY a stream's later frames can wait for the
    // gateway's delayed ACK (~40 ms), as no provider's server would make them.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Mock { addr, seen }
}

fn note(seen: &Seen, headers: &HeaderMap, body: &Bytes) -> Value {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    *seen.last.lock().unwrap() = Some(v.clone());
    let auth = headers.get("x-api-key").or_else(|| headers.get(header::AUTHORIZATION));
    *seen.last_auth.lock().unwrap() = auth.and_then(|v| v.to_str().ok()).map(str::to_owned);
    *seen.last_version.lock().unwrap() =
        headers.get("anthropic-version").and_then(|v| v.to_str().ok()).map(str::to_owned);
    v
}

/// Chat logprobs for `tokens`, when the request asked for them.
fn logprobs_for(req: &Value, tokens: &[String]) -> Value {
    if req["logprobs"] != json!(true) {
        return Value::Null;
    }
    let values = req["x_logprobs"].as_array().cloned().unwrap_or_else(|| vec![json!(-0.1)]);
    let content: Vec<Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let lp = values[i % values.len()].clone();
            json!({"token": t, "logprob": lp, "bytes": t.as_bytes(), "top_logprobs": [{"token": t, "logprob": lp, "bytes": t.as_bytes()}]})
        })
        .collect();
    json!({"content": content, "refusal": null})
}

const USAGE: &str = r#"{"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}"#;

fn error_500() -> Response {
    let body = json!({"error": {"message": "the model crashed", "type": "server_error", "code": "mock_failure"}});
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

async fn chat(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> Response {
    let req = note(&seen, &headers, &body);
    let model = req["model"].as_str().unwrap_or("").to_owned();
    if model == "error-model" {
        return error_500();
    }
    if req["stream"] == json!(true) {
        let m = model.clone();
        let r = req.clone();
        let chunk = move |content: Value, finish: Value| {
            let piece = content.as_str().filter(|t| !t.is_empty()).map(|t| vec![t.to_owned()]).unwrap_or_default();
            let logprobs = if piece.is_empty() { Value::Null } else { logprobs_for(&r, &piece) };
            let c = json!({
                "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": m,
                "x_chunk_extra": {"kept": true},
                "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish, "x_choice_extra": 1, "logprobs": logprobs}]
            });
            Bytes::from(format!("data: {c}\n\n"))
        };
        if req["x_slow"] == json!(true) {
            return slow(seen, chunk);
        }
        if let Some(fragments) = req["x_tool_stream"].as_array() {
            // Each element: the `tool_calls` fragments of one chunk.
            let mut frames = Vec::new();
            for f in fragments {
                let c = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": {"tool_calls": f}, "finish_reason": null}]});
                frames.push(Ok::<Bytes, Infallible>(Bytes::from(format!("data: {c}\n\n"))));
            }
            frames.push(Ok(chunk(Value::Null, json!("tool_calls"))));
            frames.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
            let stream = futures_util::stream::iter(frames);
            return ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(stream)).into_response();
        }
        let mut frames: Vec<Bytes> = vec![chunk(json!(""), Value::Null)];
        for piece in req["x_chunks"].as_array().cloned().unwrap_or_default() {
            frames.push(chunk(piece, Value::Null));
        }
        frames.push(chunk(Value::Null, json!("stop")));
        let usage: Value = serde_json::from_str(USAGE).unwrap();
        let tail = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [], "usage": usage});
        frames.push(Bytes::from(format!("data: {tail}\n\n")));
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
        let stream = futures_util::stream::iter(frames.into_iter().map(Ok::<Bytes, Infallible>));
        return ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(stream)).into_response();
    }
    if let Some(calls) = req.get("x_tool_calls") {
        return axum::Json(json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}]
        }))
        .into_response();
    }
    let echoed;
    let reply = if req["x_echo_system_base64"] == json!(true) {
        // A model tricked into leaking its instructions, encoded.
        use base64::Engine as _;
        let system = req["messages"][0]["content"].as_str().unwrap_or("");
        echoed = format!("Here they are: {}", base64::engine::general_purpose::STANDARD.encode(system));
        echoed.as_str()
    } else {
        req["x_reply"].as_str().unwrap_or("Paris is the capital of France.")
    };
    let usage: Value = serde_json::from_str(USAGE).unwrap();
    let words: Vec<String> = reply.split_inclusive(' ').map(str::to_owned).collect();
    let logprobs = logprobs_for(&req, &words);
    axum::Json(json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
        "x_upstream_extra": {"nested": [1, 2, {"deep": "yes"}]},
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply, "x_message_extra": "kept"}, "finish_reason": "stop", "logprobs": logprobs}],
        "usage": usage
    }))
    .into_response()
}

/// Marks the stream closed when its body is dropped before the end.
struct Guard(Arc<Seen>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.stream_closed.store(true, Ordering::SeqCst);
    }
}

fn slow(seen: Arc<Seen>, chunk: impl Fn(Value, Value) -> Bytes + Send + 'static) -> Response {
    let guard = Guard(seen);
    let stream = futures_util::stream::unfold((0u64, guard), move |(i, guard)| {
        let frame = chunk(json!(format!("word{i} ")), Value::Null);
        async move {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Ten minutes of words: the test ends it long before.
            (i < 12_000).then_some((Ok::<Bytes, Infallible>(frame), (i + 1, guard)))
        }
    });
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(stream)).into_response()
}

async fn completions(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> Response {
    let req = note(&seen, &headers, &body);
    if req["stream"] == json!(true) {
        let mut frames = Vec::new();
        for piece in req["x_chunks"].as_array().cloned().unwrap_or_default() {
            let c = json!({"id": "cmpl-mock", "object": "text_completion", "created": 1, "model": req["model"],
                "choices": [{"index": 0, "text": piece, "finish_reason": null}]});
            frames.push(Ok::<Bytes, Infallible>(Bytes::from(format!("data: {c}\n\n"))));
        }
        frames.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
        let stream = futures_util::stream::iter(frames);
        return ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(stream)).into_response();
    }
    let reply = req["x_reply"].as_str().unwrap_or("a completion");
    axum::Json(json!({
        "id": "cmpl-mock", "object": "text_completion", "created": 1, "model": req["model"],
        "choices": [{"index": 0, "text": reply, "finish_reason": "stop"}],
        "usage": serde_json::from_str::<Value>(USAGE).unwrap()
    }))
    .into_response()
}

async fn embeddings(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> Response {
    let req = note(&seen, &headers, &body);
    axum::Json(json!({
        "object": "list", "model": req["model"],
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2, 0.3]}],
        "usage": {"prompt_tokens": 3, "total_tokens": 3}
    }))
    .into_response()
}

/// Anthropic's Messages API: `x_reply` answers, `x_chunks` streams.
async fn messages(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> Response {
    let req = note(&seen, &headers, &body);
    let model = req["model"].clone();
    if req["stream"] == json!(true) {
        let ev = |v: Value| {
            Ok::<Bytes, Infallible>(Bytes::from(format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or(""))))
        };
        let mut frames = vec![
            ev(
                json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                "content": [], "usage": {"input_tokens": 11, "output_tokens": 1}}}),
            ),
            ev(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
            Ok(Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")),
        ];
        for piece in req["x_chunks"].as_array().cloned().unwrap_or_default() {
            frames.push(ev(
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
            ));
        }
        frames.push(ev(json!({"type": "content_block_stop", "index": 0})));
        // `x_tools`: [{name, parts}]: tool_use blocks whose input JSON comes in parts.
        let tools = req["x_tools"].as_array().cloned().unwrap_or_default();
        for (i, t) in tools.iter().enumerate() {
            let index = i + 1;
            frames.push(ev(json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": format!("toolu_{index}"), "name": t["name"], "input": {}}})));
            for part in t["parts"].as_array().cloned().unwrap_or_default() {
                frames.push(ev(json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": part}})));
            }
            frames.push(ev(json!({"type": "content_block_stop", "index": index})));
        }
        let stop = if tools.is_empty() { "end_turn" } else { "tool_use" };
        frames
            .push(ev(json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 7}})));
        frames.push(ev(json!({"type": "message_stop"})));
        let stream = futures_util::stream::iter(frames);
        return ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(stream)).into_response();
    }
    let reply = req["x_reply"].as_str().unwrap_or("Paris is the capital of France.");
    let mut content = vec![json!({"type": "text", "text": reply, "x_block_extra": 1})];
    // `x_tool_use`: tool_use blocks to answer with.
    let tool_use = req["x_tool_use"].as_array().cloned().unwrap_or_default();
    let stop = if tool_use.is_empty() { "end_turn" } else { "tool_use" };
    content.extend(tool_use);
    axum::Json(json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": content,
        "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": 11, "output_tokens": 7},
        "x_upstream_extra": {"kept": true}
    }))
    .into_response()
}
