//! A small Kafka client for scripts/kafka-e2e.sh and the throughput figures
//! in docs/INTEGRATIONS.md: creates topics, produces seed-002 telemetry
//! events, reads a topic back as JSON lines, and times raw consumption.
//!
//! ```text
//! llmsec-kafka-tool create BROKERS TOPIC PARTITIONS
//! llmsec-kafka-tool produce BROKERS TOPIC COUNT [PREFIX] [APPS]   # PREFIX names the event ids
//! llmsec-kafka-tool produce-proto BROKERS TOPIC COUNT [PREFIX] [APPS]  # the same as sentinel.v1 protobuf
//! llmsec-kafka-tool poison BROKERS TOPIC                           # one message that is not JSON
//! llmsec-kafka-tool send BROKERS TOPIC KEY VALUE                   # one message as given
//! llmsec-kafka-tool read BROKERS TOPIC COUNT TIMEOUT_S             # JSON lines: key, headers, value
//! llmsec-kafka-tool drain BROKERS TOPIC COUNT                      # consume in a fresh group, print the rate
//! ```

use std::time::{Duration, Instant};

use llmsec_proto::v1;
use prost::Message as _;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn arg(args: &[String], i: usize, what: &str) -> Res<String> {
    args.get(i).cloned().ok_or_else(|| format!("missing {what}").into())
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let cmd = arg(&args, 1, "command")?;
    let brokers = arg(&args, 2, "brokers")?;
    let topic = arg(&args, 3, "topic")?;
    match cmd.as_str() {
        "create" => create(&brokers, &topic, arg(&args, 4, "partitions")?.parse()?).await,
        "produce" | "produce-proto" => {
            let count: usize = arg(&args, 4, "count")?.parse()?;
            let prefix = args.get(5).cloned().unwrap_or_else(|| "ev".into());
            let apps: usize = args.get(6).map(|a| a.parse()).transpose()?.unwrap_or(16);
            produce(&brokers, &topic, count, &prefix, apps, cmd == "produce-proto").await
        }
        "poison" => send(&brokers, &topic, "poison", "{this is not json").await,
        "send" => send(&brokers, &topic, &arg(&args, 4, "key")?, &arg(&args, 5, "value")?).await,
        "read" => read(&brokers, &topic, arg(&args, 4, "count")?.parse()?, arg(&args, 5, "timeout")?.parse()?).await,
        "drain" => drain(&brokers, &topic, arg(&args, 4, "count")?.parse()?).await,
        other => Err(format!("unknown command {other:?}").into()),
    }
}

fn producer(brokers: &str) -> Res<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .create()?)
}

async fn send(brokers: &str, topic: &str, key: &str, value: &str) -> Res<()> {
    let p = producer(brokers)?;
    let r = FutureRecord::to(topic).key(key).payload(value);
    p.send(r, Duration::from_secs(10)).await.map_err(|(e, _)| e)?;
    Ok(())
}

async fn create(brokers: &str, topic: &str, partitions: i32) -> Res<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for r in admin.create_topics([&t], &AdminOptions::new()).await? {
        match r {
            Ok(_) => {}
            Err((name, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => eprintln!("{name} exists"),
            Err((name, e)) => return Err(format!("creating {name}: {e}").into()),
        }
    }
    Ok(())
}

/// Event `i` of a produced run: as seed-002 JSON, or the same event as a
/// `sentinel.v1.TelemetryEvent`.
fn event_body(i: usize, prefix: &str, app: &str, proto: bool) -> Vec<u8> {
    let latency = 250.0 + (i % 50) as f64;
    let (user, session) = (format!("user-{}", i % 1000), format!("s-{}", i % 5000));
    if proto {
        return v1::TelemetryEvent {
            event_id: format!("{prefix}-{i}"),
            // 2026-01-01T00:00:00Z
            timestamp: Some(llmsec_proto::prost_types::Timestamp { seconds: 1_767_225_600, nanos: 0 }),
            event_type: "llm.response".into(),
            application_id: app.into(),
            payload: Some(v1::telemetry_event::Payload::Response(v1::ResponseData {
                model: "gpt-4o-mini".into(),
                prompt_tokens: 40,
                completion_tokens: 60,
                total_tokens: 100,
                latency_ms: latency,
                cost: 0.0004,
                status: "success".into(),
                ..Default::default()
            })),
            metadata: Some(v1::Metadata { user_id: user, session_id: session, ..Default::default() }),
            ..Default::default()
        }
        .encode_to_vec();
    }
    serde_json::json!({
        "event_id": format!("{prefix}-{i}"),
        "timestamp": "2026-01-01T00:00:00Z",
        "event_type": "llm.response",
        "application_id": app,
        "data": {"model": "gpt-4o-mini", "prompt_tokens": 40, "completion_tokens": 60,
                 "total_tokens": 100, "latency_ms": latency, "cost": 0.0004, "status": "success"},
        "metadata": {"user_id": user, "session_id": session}
    })
    .to_string()
    .into_bytes()
}

async fn produce(brokers: &str, topic: &str, count: usize, prefix: &str, apps: usize, proto: bool) -> Res<()> {
    let p = producer(brokers)?;
    let started = Instant::now();
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..count {
        let app = format!("app-{}", i % apps.max(1));
        let body = event_body(i, prefix, &app, proto);
        // Queue without waiting; when the local queue is full, wait for acknowledgements.
        let mut record = FutureRecord::to(topic).key(&app).payload(&body);
        loop {
            match p.send_result(record) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    for f in pending.drain(..) {
                        f.await?.map_err(|(e, _)| e)?;
                    }
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    for f in pending {
        f.await?.map_err(|(e, _)| e)?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{{\"produced\":{count},\"seconds\":{secs:.3},\"per_sec\":{:.0}}}", count as f64 / secs);
    Ok(())
}

async fn read(brokers: &str, topic: &str, count: usize, timeout_s: u64) -> Res<()> {
    let c = consumer(brokers)?;
    c.subscribe(&[topic])?;
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let mut seen = 0;
    while seen < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(m) = tokio::time::timeout(left, c.recv()).await else { break };
        let m = m?;
        let mut headers = serde_json::Map::new();
        if let Some(h) = m.headers() {
            for x in h.iter() {
                let v = x.value.map(|v| String::from_utf8_lossy(v).into_owned());
                headers.insert(x.key.to_owned(), v.into());
            }
        }
        let line = serde_json::json!({
            "partition": m.partition(), "offset": m.offset(),
            "key": m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            "headers": headers,
            "value": m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
        });
        println!("{line}");
        seen += 1;
    }
    Ok(())
}

fn consumer(brokers: &str) -> Res<StreamConsumer> {
    let group = format!("kafka-tool-{}", std::process::id());
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()?)
}

async fn drain(brokers: &str, topic: &str, count: usize) -> Res<()> {
    let c = consumer(brokers)?;
    c.subscribe(&[topic])?;
    let mut started = None;
    let mut n = 0;
    while n < count {
        let m = tokio::time::timeout(Duration::from_secs(30), c.recv()).await.map_err(|_| "no message in 30 s")??;
        let _ = m.payload().map(<[u8]>::len);
        started.get_or_insert_with(Instant::now);
        n += 1;
    }
    let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!("{{\"consumed\":{n},\"seconds\":{secs:.3},\"per_sec\":{:.0}}}", n as f64 / secs.max(1e-9));
    Ok(())
}
