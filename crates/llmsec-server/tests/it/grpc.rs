//! gRPC ingestion over a real socket (HTTP/2 on the REST port).

use std::str::FromStr;

use llmsec_server::grpc::pb;
use llmsec_server::grpc::pb::telemetry_ingestion_client::TelemetryIngestionClient;
use tonic::metadata::MetadataValue;

use crate::common::*;

/// Serves the app on 127.0.0.1:0; returns its address.
pub async fn serve(router: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A client sending `key` in the `authorization` metadata.
pub async fn client(
    addr: std::net::SocketAddr,
    key: Option<&str>,
) -> TelemetryIngestionClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + use<>,
    >,
> {
    let channel = tonic::transport::Endpoint::from_str(&format!("http://{addr}")).unwrap().connect().await.unwrap();
    let auth = key.map(|k| MetadataValue::try_from(format!("Bearer {k}")).unwrap());
    TelemetryIngestionClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
        if let Some(a) = &auth {
            req.metadata_mut().insert("authorization", a.clone());
        }
        Ok(req)
    })
}

pub fn pb_event(id: &str, secs: i64, user: &str, prompt: Option<&str>) -> pb::TelemetryEvent {
    pb::TelemetryEvent {
        event_id: id.into(),
        timestamp: Some(prost_types::Timestamp { seconds: secs, nanos: 0 }),
        event_type: "llm.request".into(),
        application_id: "chatbot-prod".into(),
        tenant_id: String::new(),
        payload: Some(pb::telemetry_event::Payload::Request(pb::RequestData {
            model: "gpt-4o".into(),
            prompt: prompt.unwrap_or("What is the capital of France?").into(),
            prompt_tokens: 12,
        })),
        metadata: Some(pb::Metadata { user_id: user.into(), ..Default::default() }),
        source: Some(pb::Source {
            service: "llm-observatory".into(),
            host: "obs-worker-01".into(),
            version: String::new(),
        }),
    }
}

#[tokio::test]
async fn stream_telemetry_stores_events_and_reports_refusals() {
    let t = app().await;
    let key = make_key(&t.router, "acme", &["ingest", "read"]).await;
    let addr = serve(t.router.clone()).await;
    let mut c = client(addr, Some(&key)).await;

    let mut events: Vec<pb::TelemetryEvent> =
        (0..1200).map(|i| pb_event(&format!("g{i}"), 1_764_000_000 + i, "alice", None)).collect();
    events[5].event_type = "llm.maybe".into();
    events[7].timestamp = None;
    events[9].event_id = "g8".into(); // the same id twice in one stream
    let summary = c.stream_telemetry(tokio_stream::iter(events.clone())).await.unwrap().into_inner();
    assert_eq!((summary.accepted, summary.duplicates, summary.rejected), (1197, 1, 2), "{summary:?}");
    assert_eq!((summary.errors[0].index, summary.errors[0].field.as_str()), (5, "event_type"));
    assert_eq!((summary.errors[1].index, summary.errors[1].field.as_str()), (7, "timestamp"));
    let store = t.server.state().store.clone();
    assert_eq!(store.count_telemetry("acme", None).await.unwrap(), 1197, "durable when answered");
    let stored = store.telemetry("acme", 0, i64::MAX, 1).await.unwrap();
    let e: serde_json::Value = serde_json::from_str(&stored[0].body).unwrap();
    assert_eq!(e["source"]["service"], "llm-observatory");
    assert_eq!(e["tenant_id"], "acme");

    // Resending is idempotent.
    let again = c.stream_telemetry(tokio_stream::iter(events[..100].to_vec())).await.unwrap().into_inner();
    assert_eq!((again.accepted, again.duplicates, again.rejected), (0, 98, 2));

    // Keys and scopes.
    let err = client(addr, None)
        .await
        .stream_telemetry(tokio_stream::iter(vec![pb_event("x", 1, "u", None)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    let reader = make_key(&t.router, "acme", &["read"]).await;
    let err = client(addr, Some(&reader))
        .await
        .stream_telemetry(tokio_stream::iter(vec![pb_event("x", 1, "u", None)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    let mut other_tenant = pb_event("x", 1, "u", None);
    other_tenant.tenant_id = "globex".into();
    let s = c.stream_telemetry(tokio_stream::iter(vec![other_tenant])).await.unwrap().into_inner();
    assert_eq!((s.rejected, s.errors[0].field.as_str()), (1, "tenant_id"));
}

#[tokio::test]
async fn long_streams_outlive_the_http_request_timeout() {
    let t = app_with(|c| c.limits.request_timeout_ms = 100).await;
    let key = make_key(&t.router, "acme", &["ingest"]).await;
    let addr = serve(t.router.clone()).await;
    // Five events, 60 ms apart: the stream lasts longer than the 100 ms limit on requests.
    let slow = futures_util::stream::unfold(0, |i| async move {
        if i == 5 {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        Some((pb_event(&format!("slow{i}"), 1_764_000_000 + i, "u", None), i + 1))
    });
    let summary = client(addr, Some(&key)).await.stream_telemetry(slow).await.unwrap().into_inner();
    assert_eq!(summary.accepted, 5);
}
