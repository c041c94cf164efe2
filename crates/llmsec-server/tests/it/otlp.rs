//! OTLP/HTTP trace ingestion (`POST /v1/traces`): JSON and protobuf
//! exports mapped onto telemetry events, idempotence, partial success,
//! errors, and an injection reaching Sentinel.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use llmsec_server::api::otlp::proto::{
    AnyValue, ArrayValue, Event, ExportTraceServiceRequest, ExportTraceServiceResponse, KeyValue, Resource,
    ResourceSpans, ScopeSpans, Span, Status, Value as Any,
};
use prost::Message;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::*;

const TRACE: &str = "5b8efff798038103d269b633813fc60c";
const JSON: &str = "application/json";
const PROTOBUF: &str = "application/x-protobuf";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

async fn export_with(router: &Router, key: Option<&str>, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let mut req = Request::builder().method("POST").uri("/v1/traces");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = router.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    Answer { status, headers, bytes }
}

async fn export(router: &Router, key: &str, content_type: &str, body: Vec<u8>) -> Answer {
    export_with(router, Some(key), &[("content-type", content_type)], body).await
}

fn nanos(rfc3339: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_nanos_opt().unwrap() as u64
}

fn s(key: &str, v: &str) -> Value {
    json!({"key": key, "value": {"stringValue": v}})
}

fn int(key: &str, v: i64) -> Value {
    // OTLP/JSON writes 64-bit integers as decimal strings.
    json!({"key": key, "value": {"intValue": v.to_string()}})
}

fn resource(service: Option<&str>) -> Value {
    let mut attrs = vec![s("host.name", "obs-worker-01"), s("service.version", "1.4.2")];
    if let Some(name) = service {
        attrs.push(s("service.name", name));
    }
    json!({"attributes": attrs})
}

/// A successful chat span in the newer conventions.
fn chat_span(span_id: &str) -> Value {
    json!({
        "traceId": TRACE,
        "spanId": span_id,
        "name": "chat gpt-4o",
        "kind": 3,
        "startTimeUnixNano": nanos("2026-11-26T10:00:00Z").to_string(),
        "endTimeUnixNano": nanos("2026-11-26T10:00:01.250Z").to_string(),
        "attributes": [
            s("gen_ai.operation.name", "chat"),
            s("gen_ai.provider.name", "openai"),
            s("gen_ai.request.model", "gpt-4o"),
            s("gen_ai.response.model", "gpt-4o-2024-08-06"),
            int("gen_ai.usage.input_tokens", 150),
            int("gen_ai.usage.output_tokens", 75),
            {"key": "gen_ai.usage.cost", "value": {"doubleValue": 0.045}},
            {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}},
            s("gen_ai.conversation.id", "sess-456"),
            s("user.id", "user-123"),
            s("client.address", "203.0.113.7"),
            s("server.address", "api.openai.com"),
            s("gen_ai.input.messages", r#"[{"role": "system", "parts": [{"type": "text", "content": "You are helpful."}]}, {"role": "user", "parts": [{"type": "text", "content": "What is the capital of France?"}]}]"#),
            {"key": "gen_ai.output.messages", "value": {"arrayValue": {"values": [{"kvlistValue": {"values": [
                {"key": "role", "value": {"stringValue": "assistant"}},
                {"key": "parts", "value": {"arrayValue": {"values": [{"kvlistValue": {"values": [
                    {"key": "type", "value": {"stringValue": "text"}},
                    {"key": "content", "value": {"stringValue": "Paris."}}
                ]}}]}}}
            ]}}]}}}
        ],
        "status": {"code": 1}
    })
}

/// A failed call in the older conventions: `gen_ai.system`, the prompt in a span event.
fn failed_span(span_id: &str) -> Value {
    json!({
        "traceId": TRACE,
        "spanId": span_id,
        "name": "chat claude",
        "startTimeUnixNano": nanos("2026-11-26T10:00:02Z"),
        "endTimeUnixNano": nanos("2026-11-26T10:00:02.5Z"),
        "attributes": [
            s("gen_ai.system", "anthropic"),
            s("gen_ai.request.model", "claude-sonnet"),
            s("error.type", "rate_limit_exceeded"),
            s("enduser.id", "user-9"),
        ],
        "events": [{"timeUnixNano": nanos("2026-11-26T10:00:02Z").to_string(), "name": "gen_ai.content.prompt",
                    "attributes": [s("gen_ai.prompt", "Summarise this ticket")]}],
        "status": {"code": 2, "message": "429 Too Many Requests"}
    })
}

/// An HTTP span with no GenAI attributes.
fn http_span(span_id: &str) -> Value {
    json!({
        "traceId": TRACE,
        "spanId": span_id,
        "name": "GET /health",
        "kind": 2,
        "startTimeUnixNano": nanos("2026-11-26T10:00:00Z").to_string(),
        "endTimeUnixNano": nanos("2026-11-26T10:00:00.010Z").to_string(),
        "attributes": [s("http.request.method", "GET"), int("http.response.status_code", 200)]
    })
}

fn request(resource_spans: Vec<Value>) -> Vec<u8> {
    json!({"resourceSpans": resource_spans}).to_string().into_bytes()
}

async fn stored(t: &TestApp, tenant: &str) -> Vec<Value> {
    let rows = t.server.state().store.telemetry(tenant, 0, i64::MAX, 100).await.unwrap();
    rows.iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect()
}

#[tokio::test]
async fn a_json_export_maps_genai_spans_and_is_idempotent() {
    let t = app().await;
    let key = make_key(&t.router, "acme", &["ingest"]).await;
    let body = request(vec![json!({
        "resource": resource(Some("chatbot-prod")),
        "scopeSpans": [{"scope": {"name": "openai-instrumentation"},
                        "spans": [chat_span("eee19b7ec3c1b174"), http_span("eee19b7ec3c1b175"), failed_span("eee19b7ec3c1b176")]}]
    })]);
    let r = export(&t.router, &key, JSON, body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), json!({}), "everything taken: no partialSuccess");
    assert!(r.headers["content-type"].to_str().unwrap().starts_with(JSON));
    let store = &t.server.state().store;
    assert_eq!(store.count_telemetry("acme", None).await.unwrap(), 2, "the HTTP span is skipped");

    let events = stored(&t, "acme").await;
    let chat = &events[0];
    assert_eq!(chat["event_id"], format!("{TRACE}-eee19b7ec3c1b174"));
    assert_eq!(chat["event_type"], "llm.response");
    assert_eq!(chat["timestamp"], "2026-11-26T10:00:01.250Z");
    assert_eq!(chat["application_id"], "chatbot-prod");
    assert_eq!(chat["tenant_id"], "acme");
    assert_eq!(chat["source"], json!({"service": "chatbot-prod", "host": "obs-worker-01", "version": "1.4.2"}));
    let d = &chat["data"];
    assert_eq!(d["model"], "gpt-4o-2024-08-06", "the response model wins over the request model");
    assert_eq!(d["prompt"], "What is the capital of France?", "system instructions are left out");
    assert_eq!(d["completion"], "Paris.");
    assert_eq!((d["prompt_tokens"].as_u64(), d["completion_tokens"].as_u64()), (Some(150), Some(75)));
    assert_eq!(d["total_tokens"], 225);
    assert_eq!(d["latency_ms"], 1250.0);
    assert_eq!(d["cost"], 0.045);
    assert_eq!(d["status"], "success");
    assert_eq!(d["finish_reason"], "stop");
    let m = &chat["metadata"];
    assert_eq!((m["user_id"].as_str(), m["session_id"].as_str()), (Some("user-123"), Some("sess-456")));
    assert_eq!(m["ip"], "203.0.113.7");
    assert_eq!((m["provider"].as_str(), m["operation"].as_str()), (Some("openai"), Some("chat")));
    assert_eq!(m["server_address"], "api.openai.com");
    assert_eq!((m["trace_id"].as_str(), m["span_id"].as_str()), (Some(TRACE), Some("eee19b7ec3c1b174")));

    let failed = &events[1];
    assert_eq!(failed["event_type"], "llm.error");
    assert_eq!(failed["data"]["status"], "error");
    assert_eq!(failed["data"]["error"], "429 Too Many Requests");
    assert_eq!(failed["data"]["model"], "claude-sonnet");
    assert_eq!(failed["data"]["prompt"], "Summarise this ticket", "from the gen_ai.content.prompt event");
    assert_eq!(failed["data"]["latency_ms"], 500.0);
    assert_eq!(failed["metadata"]["user_id"], "user-9", "enduser.id");
    assert_eq!(
        (failed["metadata"]["provider"].as_str(), failed["metadata"]["error_type"].as_str()),
        (Some("anthropic"), Some("rate_limit_exceeded"))
    );

    // The same export again: acknowledged, nothing new.
    let again = export(&t.router, &key, JSON, body).await;
    assert_eq!((again.status, again.json()), (StatusCode::OK, json!({})), "{}", again.text());
    assert_eq!(store.count_telemetry("acme", None).await.unwrap(), 2, "re-sent spans are idempotent");
    assert_eq!(store.count_telemetry("default", None).await.unwrap(), 0, "the key's tenant only");
}

fn kv(key: &str, v: Any) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(v) }) }
}

fn text(key: &str, v: &str) -> KeyValue {
    kv(key, Any::StringValue(v.into()))
}

fn proto_export(service: Option<&str>) -> ExportTraceServiceRequest {
    let mut resource = vec![text("host.name", "obs-worker-01")];
    if let Some(name) = service {
        resource.push(text("service.name", name));
    }
    let chat = Span {
        trace_id: hex::decode(TRACE).unwrap(),
        span_id: hex::decode("aaa19b7ec3c1b174").unwrap(),
        name: "chat gpt-4o".into(),
        kind: 3,
        start_time_unix_nano: nanos("2026-11-26T11:00:00Z"),
        end_time_unix_nano: nanos("2026-11-26T11:00:02Z"),
        attributes: vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.system", "openai"),
            text("gen_ai.request.model", "gpt-4o"),
            kv("gen_ai.usage.input_tokens", Any::IntValue(10)),
            kv("gen_ai.usage.output_tokens", Any::IntValue(5)),
            kv("gen_ai.usage.cost", Any::DoubleValue(0.25)),
            kv(
                "gen_ai.response.finish_reasons",
                Any::ArrayValue(ArrayValue {
                    values: vec![AnyValue { value: Some(Any::StringValue("length".into())) }],
                }),
            ),
            text("session.id", "s-1"),
            text("user.id", "bob"),
        ],
        events: vec![
            Event {
                time_unix_nano: nanos("2026-11-26T11:00:00Z"),
                name: "gen_ai.content.prompt".into(),
                attributes: vec![text("gen_ai.prompt", r#"[{"role": "user", "content": "Tell me a joke"}]"#)],
            },
            Event {
                time_unix_nano: nanos("2026-11-26T11:00:02Z"),
                name: "gen_ai.content.completion".into(),
                attributes: vec![text("gen_ai.completion", r#"[{"role": "assistant", "content": "Why did"}]"#)],
            },
        ],
        status: Some(Status { message: String::new(), code: 0 }),
    };
    let db = Span {
        trace_id: hex::decode(TRACE).unwrap(),
        span_id: hex::decode("aaa19b7ec3c1b175").unwrap(),
        name: "SELECT".into(),
        kind: 3,
        start_time_unix_nano: nanos("2026-11-26T11:00:00Z"),
        end_time_unix_nano: nanos("2026-11-26T11:00:00.001Z"),
        attributes: vec![text("db.system", "sqlite")],
        events: vec![],
        status: None,
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: resource }),
            scope_spans: vec![ScopeSpans { spans: vec![chat, db] }],
        }],
    }
}

#[tokio::test]
async fn a_protobuf_export_maps_the_same_way() {
    let t = app().await;
    let key = make_key(&t.router, "acme", &["ingest"]).await;
    let r = export(&t.router, &key, PROTOBUF, proto_export(Some("support-bot")).encode_to_vec()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], PROTOBUF);
    let answer = ExportTraceServiceResponse::decode(&r.bytes[..]).unwrap();
    assert_eq!(answer.partial_success, None);

    let events = stored(&t, "acme").await;
    assert_eq!(events.len(), 1, "the database span is skipped");
    let e = &events[0];
    assert_eq!(e["event_id"], format!("{TRACE}-aaa19b7ec3c1b174"));
    assert_eq!((e["event_type"].as_str(), e["application_id"].as_str()), (Some("llm.response"), Some("support-bot")));
    assert_eq!(e["timestamp"], "2026-11-26T11:00:02Z");
    let d = &e["data"];
    assert_eq!(
        (d["model"].as_str(), d["prompt"].as_str(), d["completion"].as_str()),
        (Some("gpt-4o"), Some("Tell me a joke"), Some("Why did"))
    );
    assert_eq!(
        (d["prompt_tokens"].as_u64(), d["completion_tokens"].as_u64(), d["total_tokens"].as_u64()),
        (Some(10), Some(5), Some(15))
    );
    assert_eq!((d["latency_ms"].as_f64(), d["cost"].as_f64()), (Some(2000.0), Some(0.25)));
    assert_eq!((d["status"].as_str(), d["finish_reason"].as_str()), (Some("success"), Some("length")));
    assert_eq!((e["metadata"]["user_id"].as_str(), e["metadata"]["session_id"].as_str()), (Some("bob"), Some("s-1")));
    assert_eq!(e["source"]["host"], "obs-worker-01");

    let again = export(&t.router, &key, PROTOBUF, proto_export(Some("support-bot")).encode_to_vec()).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(t.server.state().store.count_telemetry("acme", None).await.unwrap(), 1);

    // A resource without service.name: its GenAI span is rejected, in protobuf.
    let r = export(&t.router, &key, PROTOBUF, proto_export(None).encode_to_vec()).await;
    assert_eq!(r.status, StatusCode::OK);
    let partial = ExportTraceServiceResponse::decode(&r.bytes[..]).unwrap().partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("resource.attributes.service.name"), "{}", partial.error_message);
}

#[tokio::test]
async fn rejected_spans_are_counted_and_named() {
    let t = app().await;
    let key = make_key(&t.router, "acme", &["ingest"]).await;
    let mut bad_cost = chat_span("bbb19b7ec3c1b172");
    for a in bad_cost["attributes"].as_array_mut().unwrap() {
        if a["key"] == "gen_ai.usage.cost" {
            a["value"] = json!({"doubleValue": -1.0});
        }
    }
    let body = request(vec![
        json!({"resource": resource(None), "scopeSpans": [{"spans": [chat_span("bbb19b7ec3c1b170"), http_span("bbb19b7ec3c1b171")]}]}),
        json!({"resource": resource(Some("chatbot-prod")), "scopeSpans": [{"spans": [
            chat_span("bbb19b7ec3c1b173"),
            bad_cost,
            chat_span("0000000000000000"),
        ]}]}),
    ]);
    let r = export(&t.router, &key, JSON, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let partial = &r.json()["partialSuccess"];
    assert_eq!(partial["rejectedSpans"], 3, "{}", r.text());
    let message = partial["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("resourceSpans[0].scopeSpans[0].spans[0]: resource.attributes.service.name is required"),
        "{message}"
    );
    assert!(
        message.contains("resourceSpans[1].scopeSpans[0].spans[1]: data.cost (from gen_ai.usage.cost)"),
        "{message}"
    );
    assert!(message.contains("resourceSpans[1].scopeSpans[0].spans[2]: spanId"), "{message}");
    let events = stored(&t, "acme").await;
    assert_eq!(events.len(), 1, "the valid span is kept");
    assert_eq!(events[0]["event_id"], format!("{TRACE}-bbb19b7ec3c1b173"));
}

#[tokio::test]
async fn malformed_bodies_encodings_and_keys_are_refused() {
    let t = app().await;
    let key = make_key(&t.router, "acme", &["ingest"]).await;
    let r = export(&t.router, &key, JSON, b"{\"resourceSpans\": [".to_vec()).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{}",
        r.text()
    );
    let r = export(
        &t.router,
        &key,
        JSON,
        br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "xyz"}]}]}]}"#.to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["field"], "resourceSpans[0].scopeSpans[0].spans[0].spanId", "{}", r.text());
    let r = export(&t.router, &key, PROTOBUF, vec![0xff, 0xff, 0xff, 0x0a, 0x05]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().starts_with("malformed protobuf"), "{}", r.text());

    let r = export(&t.router, &key, PROTOBUF, vec![0; (1 << 20) + 1]).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
        "the body limit applies"
    );

    let gzip = [("content-type", PROTOBUF), ("content-encoding", "gzip")];
    let r = export_with(&t.router, Some(&key), &gzip, proto_export(Some("x")).encode_to_vec()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("Content-Encoding"), "{}", r.text());
    let r = export(&t.router, &key, "text/plain", b"hello".to_vec()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("Content-Type"), "{}", r.text());

    let body = proto_export(Some("x")).encode_to_vec();
    let r = export_with(&t.router, None, &[("content-type", PROTOBUF)], body.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let analyst = make_key(&t.router, "acme", &["analyze", "read"]).await;
    let r = export(&t.router, &analyst, PROTOBUF, body).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    assert_eq!(t.server.state().store.count_telemetry("acme", None).await.unwrap(), 0, "nothing stored");
}

#[tokio::test]
async fn an_injected_prompt_reaches_sentinel() {
    let dir = temp_dir();
    let detectors = dir.join("detectors.yaml");
    std::fs::write(&detectors, "detectors:\n  - id: pi\n    type: ml\n    threshold: 0.5\n").unwrap();
    let t = app_with(|c| c.sentinel.detectors = Some(detectors.clone())).await;
    let key = make_key(&t.router, "acme", &["ingest", "read"]).await;
    let mut span = chat_span("ccc19b7ec3c1b174");
    let attrs = span["attributes"].as_array_mut().unwrap();
    attrs.retain(|a| a["key"] != "gen_ai.input.messages" && a["key"] != "user.id");
    attrs.push(s("gen_ai.prompt", ATTACK));
    attrs.push(s("user.id", "mallory"));
    let body = request(vec![json!({"resource": resource(Some("chatbot-prod")), "scopeSpans": [{"spans": [span]}]})]);
    let r = export(&t.router, &key, JSON, body).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({})), "{}", r.text());

    let anomaly = eventually(15, || {
        let router = t.router.clone();
        let key = key.clone();
        async move {
            let r = get(&router, "/api/v1/anomalies", &key).await;
            r.body["anomalies"].as_array().and_then(|a| a.first().cloned())
        }
    })
    .await;
    assert_eq!(anomaly["detector_id"], "pi");
    assert_eq!(anomaly["affected_entity"], json!({"type": "user", "id": "mallory"}));
}
