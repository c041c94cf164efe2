//! `[[sinks]]` end to end: a server whose outbox feeds receivers written
//! here (no Splunk, Elasticsearch, SOAR or Grafana can run on the build
//! machines), each on 127.0.0.1 and answering as the vendor documents. The
//! wire formats are checked in detail by llmsec-connect's unit tests; these
//! check that events and anomalies reach the sinks through the outbox, with
//! its retries and dead letters.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode, Uri};
use llmsec_connect::sinks::SinkConfig;
use llmsec_store::DeliveryStatus;
use serde_json::{Value, json};

use crate::common::*;

#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: HeaderMap,
    body: String,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// The documents of an NDJSON `_bulk` body (every second line).
    fn bulk(&self) -> Vec<(Value, Value)> {
        let lines: Vec<Value> = self.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        lines.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect()
    }
}

type Answer = dyn Fn(usize, &Got) -> (StatusCode, String) + Send + Sync;

/// Records every request; `answer` gets the request's index and the request.
#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    url: String,
}

impl Receiver {
    async fn start(answer: impl Fn(usize, &Got) -> (StatusCode, String) + Send + Sync + 'static) -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let answer: Arc<Answer> = Arc::new(answer);
        let g = got.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: String| {
            let (g, answer) = (g.clone(), answer.clone());
            async move {
                let req = Got { path: uri.to_string(), headers, body };
                let mut all = g.lock().unwrap();
                let (status, text) = answer(all.len(), &req);
                all.push(req);
                (status, [("content-type", "application/json")], text)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { got, url }
    }

    fn all(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Got> {
        eventually(15, || async move { Some(self.all()).filter(|g| g.len() >= n) }).await
    }
}

fn hec_ok() -> (StatusCode, String) {
    (StatusCode::OK, r#"{"text":"Success","code":0}"#.into())
}

fn bulk_ok(g: &Got) -> (StatusCode, String) {
    let items: Vec<Value> =
        g.bulk().iter().map(|(a, _)| json!({"create": {"_id": a["create"]["_id"], "status": 201}})).collect();
    (StatusCode::OK, json!({"took": 1, "errors": false, "items": items}).to_string())
}

/// A sink entry as the config file would hold it.
fn sink(toml_entry: &str) -> SinkConfig {
    #[derive(serde::Deserialize)]
    struct F {
        sinks: Vec<SinkConfig>,
    }
    toml::from_str::<F>(&format!("[[sinks]]\n{toml_entry}")).unwrap().sinks.remove(0)
}

/// A token file in `dir`.
fn token(dir: &std::path::Path, name: &str, value: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, value).unwrap();
    p.display().to_string()
}

#[tokio::test]
async fn a_block_reaches_splunk_and_elastic_and_an_anomaly_reaches_grafana_and_soar() {
    let hec = Receiver::start(|_, g| match g.headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some("Splunk hec-token") => hec_ok(),
        _ => (StatusCode::FORBIDDEN, r#"{"text":"Invalid token","code":4}"#.into()),
    })
    .await;
    let es = Receiver::start(|_, g| bulk_ok(g)).await;
    let grafana = Receiver::start(|_, _| (StatusCode::OK, r#"{"message":"Annotation added","id":1}"#.into())).await;
    let soar = Receiver::start(|i, _| (StatusCode::OK, json!({"success": true, "id": 100 + i}).to_string())).await;
    let dir = temp_dir();
    let detectors = dir.join("detectors.yaml");
    std::fs::write(
        &detectors,
        "detectors:\n  - id: slow-call\n    type: rule\n    config: {expression: \"data.latency_ms > 5000\", group_by: application}\n",
    )
    .unwrap();
    let t = app_with(|c| {
        c.sentinel.detectors = Some(detectors.clone());
        c.sinks = vec![
            sink(&format!(
                "name='splunk'\nkind='splunk_hec'\nurl='{}'\ntoken_file='{}'\nevents=['security_event']\nverdicts=['block']\nindex='llm'",
                hec.url,
                token(&dir, "hec", "hec-token\n")
            )),
            sink(&format!("name='es'\nkind='elastic'\nurl='{}'\nevents=['security_event']", es.url)),
            sink(&format!(
                "name='grafana'\nkind='grafana'\nurl='{}'\ntoken_file='{}'\ndashboard_uid='llmsec'",
                grafana.url,
                token(&dir, "grafana", "glsa_x")
            )),
            sink(&format!(
                "name='soar'\nkind='soar'\nurl='{}'\ntoken_file='{}'\nevents=['anomaly.detected']",
                soar.url,
                token(&dir, "soar", "ph-token")
            )),
        ];
    })
    .await;

    // An allowed analysis reaches Elastic (no verdict filter) but not Splunk.
    let benign = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN})).await;
    assert_eq!(benign.body["verdict"], "allow", "{}", benign.text);
    let attack = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": ATTACK, "user_id": "mallory"})).await;
    assert_eq!(attack.body["verdict"], "block", "{}", attack.text);
    let event_id = attack.body["event_id"].as_str().unwrap().to_owned();

    let got = hec.wait_for(1).await;
    let h = &got[0];
    assert_eq!(h.path, "/services/collector/event");
    let b = h.json();
    assert_eq!((b["sourcetype"].as_str(), b["index"].as_str()), (Some("llmsec:security_event"), Some("llm")));
    assert_eq!(b["event"]["data"]["event_id"], event_id.as_str());
    assert_eq!(b["event"]["data"]["verdict"], "block");
    assert!(b["time"].as_f64().unwrap() > 1.7e9, "epoch seconds");

    let docs: Vec<(Value, Value)> = es.wait_for(2).await.iter().flat_map(Got::bulk).collect();
    let blocked = docs.iter().find(|(_, d)| d["event"]["id"] == event_id.as_str()).expect("the block is indexed");
    assert!(blocked.0["create"]["_index"].as_str().unwrap().starts_with("llmsec-events-20"));
    assert_eq!(
        (blocked.1["event"]["kind"].as_str(), blocked.1["user"]["id"].as_str()),
        (Some("alert"), Some("mallory"))
    );
    assert_eq!(blocked.1["labels"]["tenant"], "default");
    assert!(docs.iter().any(|(_, d)| d["llmsec"]["verdict"] == "allow"), "the allowed one too");

    // A slow call raises an anomaly: a Grafana annotation and a SOAR case.
    let slow = json!({"event_id": "slow-1", "timestamp": chrono::Utc::now().to_rfc3339(), "event_type": "llm.request",
        "application_id": "app-slow", "data": {"latency_ms": 9000.0}});
    let r = post(&t.router, "/api/v1/telemetry/events", ADMIN, slow).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let a = grafana.wait_for(1).await[0].clone();
    assert_eq!(a.path, "/api/annotations");
    assert_eq!(a.headers.get("authorization").unwrap(), "Bearer glsa_x");
    let ann = a.json();
    assert_eq!((ann["tags"][0].as_str(), ann["tags"][1].as_str()), (Some("llmsec"), Some("anomaly.detected")));
    assert_eq!((ann["tags"][3].as_str(), ann["dashboardUID"].as_str()), (Some("detector:slow-call"), Some("llmsec")));
    assert!(ann["timeEnd"].as_i64() >= ann["time"].as_i64());
    let cases = soar.wait_for(2).await;
    assert_eq!((cases[0].path.as_str(), cases[1].path.as_str()), ("/rest/container", "/rest/artifact"));
    assert_eq!(cases[0].headers.get("ph-auth-token").unwrap(), "ph-token");
    let container = cases[0].json();
    let artifact = cases[1].json();
    assert_eq!(artifact["container_id"], 100, "the container SOAR answered");
    assert_eq!(container["source_data_identifier"], artifact["source_data_identifier"]);
    assert_eq!(artifact["cef"]["cs2"], "slow-call");

    // Nothing was refused, so nothing sent to Splunk besides the block.
    assert_eq!(hec.all().len(), 1, "the allowed analysis was filtered out");
}

#[tokio::test]
async fn a_failing_sink_is_retried_with_the_same_key_and_one_that_keeps_failing_is_dead_lettered() {
    // Elastic answers 500 to the first request, then as usual.
    let es = Receiver::start(|i, g| if i == 0 { (StatusCode::INTERNAL_SERVER_ERROR, "{}".into()) } else { bulk_ok(g) })
        .await;
    // This HEC never accepts.
    let hec =
        Receiver::start(|_, _| (StatusCode::SERVICE_UNAVAILABLE, r#"{"text":"Server is busy","code":9}"#.into())).await;
    let dir = temp_dir();
    let t = app_with(|c| {
        c.delivery.max_attempts = 3;
        c.sinks = vec![
            sink(&format!("name='es'\nkind='elastic'\nurl='{}'", es.url)),
            sink(&format!(
                "name='splunk'\nkind='splunk_hec'\nurl='{}'\ntoken_file='{}'",
                hec.url,
                token(&dir, "hec", "t")
            )),
        ];
    })
    .await;
    let r = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": ATTACK})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let tries = es.wait_for(2).await;
    let ids: Vec<Value> = tries.iter().map(|g| g.bulk()[0].0["create"]["_id"].clone()).collect();
    assert_eq!(ids[0], ids[1], "the retry carries the same idempotency key");
    let store = t.server.state().services.store.clone();
    let dead = eventually(15, || {
        let store = store.clone();
        async move {
            let dead = store.deliveries("default", Some(DeliveryStatus::Dead), 10).await.unwrap();
            Some(dead).filter(|d| !d.is_empty())
        }
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].webhook_id.as_str(), dead[0].attempts), ("sink:splunk", 3));
    assert_eq!(dead[0].last_error.as_deref(), Some("publish failed"));
    assert_eq!(hec.all().len(), 3, "one request per attempt");
    let sent = store.deliveries("default", Some(DeliveryStatus::Delivered), 10).await.unwrap();
    assert!(sent.iter().any(|d| d.webhook_id == "sink:es" && d.attempts == 2), "{sent:?}");
    assert_eq!(store.count_deliveries(DeliveryStatus::Dead).await.unwrap(), 1, "counted by the outbox gauges");
}

#[tokio::test]
async fn a_delivery_for_a_sink_no_longer_configured_is_dead_lettered_naming_why() {
    let t = app_with(|c| c.delivery.max_attempts = 2).await;
    let store = t.server.state().services.store.clone();
    let d = llmsec_server::broker::envelope(
        "sink:removed".into(),
        "default",
        "default",
        "security_event",
        json!({}),
        llmsec_store::now_millis(),
    );
    store.enqueue(&[d]).await.unwrap();
    t.server.state().services.delivery_notify.notify_one();
    let dead = eventually(15, || {
        let store = store.clone();
        async move {
            let dead = store.deliveries("default", Some(DeliveryStatus::Dead), 10).await.unwrap();
            Some(dead).filter(|d| !d.is_empty())
        }
    })
    .await;
    assert_eq!(dead[0].last_error.as_deref(), Some("sink not configured"));
    assert_eq!(dead[0].attempts, 2, "retried first: the sink may come back with a restart");
}

#[tokio::test]
async fn a_sink_whose_secret_is_missing_stops_the_start_naming_it() {
    let mut c = config();
    c.sinks =
        vec![sink("name='g'\nkind='grafana'\nurl='http://127.0.0.1:9'\ntoken_env='LLMSEC_TEST_UNSET_GRAFANA_TOKEN'")];
    let e = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap_err().to_string();
    assert!(
        e.starts_with("sinks[0].token_env: the environment variable LLMSEC_TEST_UNSET_GRAFANA_TOKEN is not set"),
        "{e}"
    );
}

/// The URL of a real broker the test script started, or `None` (the test
/// then says it was skipped: `scripts/test.sh` always sets them).
#[cfg(all(feature = "amqp", feature = "nats"))]
fn broker_env(var: &str) -> Option<String> {
    let v = std::env::var(var).ok().filter(|v| !v.is_empty());
    if v.is_none() {
        eprintln!("skipped: {var} is not set (scripts/test.sh starts RabbitMQ and NATS and sets it)");
    }
    v
}

#[cfg(all(feature = "amqp", feature = "nats"))]
#[tokio::test]
async fn a_block_reaches_rabbitmq_and_nats_through_the_outbox() {
    use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;

    let (Some(amqp_url), Some(nats_url)) = (broker_env("LLMSEC_TEST_AMQP_URL"), broker_env("LLMSEC_TEST_NATS_URL"))
    else {
        return;
    };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let exchange = format!("llmsec-srv-{tag}");
    let stream = format!("LLMSEC_SRV_{tag}");
    let nats_auth = match std::env::var("LLMSEC_TEST_NATS_PASSWORD") {
        Ok(p) if !p.is_empty() => "user = 'llmsec'\npassword_env = 'LLMSEC_TEST_NATS_PASSWORD'\n",
        _ => "",
    };
    // The exchange exists with a queue bound before the first publish, as a
    // consumer service would have it (the sink publishes `mandatory`).
    let conn = lapin::Connection::connect(&amqp_url, lapin::ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let durable = lapin::options::ExchangeDeclareOptions { durable: true, ..Default::default() };
    ch.exchange_declare(exchange.as_str().into(), lapin::ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .unwrap();
    let queue = format!("llmsec-srv-q-{tag}");
    ch.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    ch.queue_bind(
        queue.as_str().into(),
        exchange.as_str().into(),
        "llmsec.security_event.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    let t = app_with(|c| {
        c.sinks = vec![
            sink(&format!(
                "name='mq'\nkind='rabbitmq'\nurl_env='LLMSEC_TEST_AMQP_URL'\nexchange='{exchange}'\nevents=['security_event']\nverdicts=['block']"
            )),
            sink(&format!(
                "name='js'\nkind='nats'\nurl='{nats_url}'\n{nats_auth}subject='srv{tag}.{{event}}.{{tenant}}'\nstream='{stream}'\ncreate_stream=true\nevents=['security_event']\nverdicts=['block']"
            )),
        ];
    })
    .await;
    let attack = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": ATTACK, "user_id": "mallory"})).await;
    assert_eq!(attack.body["verdict"], "block", "{}", attack.text);
    let event_id = attack.body["event_id"].as_str().unwrap().to_owned();
    let benign = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN})).await;
    assert_eq!(benign.body["verdict"], "allow");

    // RabbitMQ: the block, once, with the delivery id as its message id.
    let ch2 = ch.clone();
    let q = queue.clone();
    let got = eventually(15, move || {
        let (ch, q) = (ch2.clone(), q.clone());
        async move { ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap() }
    })
    .await;
    let body: Value = serde_json::from_slice(&got.delivery.data).unwrap();
    assert_eq!((body["event"].as_str(), body["tenant"].as_str()), (Some("security_event"), Some("default")));
    assert_eq!(body["data"]["event_id"], event_id.as_str());
    assert_eq!(got.delivery.routing_key.as_str(), "llmsec.security_event.default");
    assert_eq!(
        got.delivery.properties.message_id().as_ref().map(|m| m.as_str()),
        body["id"].as_str(),
        "the delivery id is the message id"
    );

    // NATS: JetStream stored the same record.
    let opts = match std::env::var("LLMSEC_TEST_NATS_PASSWORD") {
        Ok(p) if !p.is_empty() => async_nats::ConnectOptions::with_user_and_password("llmsec".into(), p),
        _ => async_nats::ConnectOptions::new(),
    };
    let js = async_nats::jetstream::new(opts.connect(nats_url.as_str()).await.unwrap());
    let js2 = js.clone();
    let name = stream.clone();
    let m = eventually(15, move || {
        let (js, name) = (js2.clone(), name.clone());
        async move {
            let s = js.get_stream(name.as_str()).await.ok()?;
            s.get_raw_message(1).await.ok()
        }
    })
    .await;
    let stored: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(stored["data"]["event_id"], event_id.as_str());
    assert_eq!(m.subject.as_str(), format!("srv{tag}.security_event.default"));
    assert_eq!(m.headers.get("Nats-Msg-Id").map(|v| v.as_str()), stored["id"].as_str());

    // The allowed analysis went to neither; both deliveries are done.
    let store = t.server.state().services.store.clone();
    let done = eventually(15, || {
        let store = store.clone();
        async move {
            let rows = store.deliveries("default", None, 100).await.ok()?;
            let sinks: Vec<_> = rows.into_iter().filter(|d| d.webhook_id.starts_with("sink:")).collect();
            (sinks.len() == 2 && sinks.iter().all(|d| d.status == DeliveryStatus::Delivered)).then_some(sinks)
        }
    })
    .await;
    assert_eq!(done.len(), 2);
    let js_stream = js.get_stream(stream.as_str()).await.unwrap();
    assert_eq!(js_stream.cached_info().state.messages, 1);
    ch.queue_delete(queue.as_str().into(), lapin::options::QueueDeleteOptions::default()).await.unwrap();
    ch.exchange_delete(exchange.as_str().into(), lapin::options::ExchangeDeleteOptions::default()).await.unwrap();
}
