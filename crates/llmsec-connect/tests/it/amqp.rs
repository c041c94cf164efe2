//! The RabbitMQ sink against a real RabbitMQ.

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use llmsec_connect::OutboxPublisher;
use llmsec_connect::amqp::{AmqpSink, AmqpSinkConfig};

use super::{Rec, env_or_skip, script, unique};

const URL_ENV: &str = "LLMSEC_TEST_AMQP_URL";

fn config(exchange: &str) -> AmqpSinkConfig {
    toml::from_str(&format!("url_env = \"{URL_ENV}\"\nexchange = \"{exchange}\"\n")).unwrap()
}

/// A consumer-side channel, as a downstream service would have.
async fn channel(url: &str) -> (Connection, Channel) {
    let conn = Connection::connect(url, ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

/// A durable queue bound to `exchange` with `binding`.
async fn bound_queue(ch: &Channel, exchange: &str, binding: &str) -> String {
    let queue = unique("llmsec-test-q-");
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare(queue.as_str().into(), durable, FieldTable::default()).await.unwrap();
    ch.queue_bind(
        queue.as_str().into(),
        exchange.into(),
        binding.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    queue
}

/// Every message waiting in `queue`, taken off it.
async fn drain(ch: &Channel, queue: &str) -> Vec<lapin::message::Delivery> {
    let mut out = Vec::new();
    while let Some(m) = ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        out.push(m.delivery);
    }
    out
}

async fn clean(ch: &Channel, queue: &str, exchange: &str) {
    ch.queue_delete(queue.into(), QueueDeleteOptions::default()).await.unwrap();
    ch.exchange_delete(exchange.into(), ExchangeDeleteOptions::default()).await.unwrap();
}

fn header<'a>(d: &'a lapin::message::Delivery, name: &str) -> Option<&'a AMQPValue> {
    d.properties.headers().as_ref().and_then(|h| h.inner().get(name))
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

#[tokio::test]
async fn records_arrive_with_their_properties_headers_and_routing_keys() {
    let Some(url) = env_or_skip(URL_ENV, "records_arrive_with_their_properties_headers_and_routing_keys") else {
        return;
    };
    let exchange = unique("llmsec-test-x-");
    let sink = AmqpSink::new(&config(&exchange)).unwrap();
    // The sink declares the exchange (durable topic) when it connects.
    sink.connect().await.unwrap();
    let (_conn, ch) = channel(&url).await;
    let queue = bound_queue(&ch, &exchange, "llmsec.#").await;

    let records: Vec<Rec> = (0..25)
        .map(|i| {
            let event = ["anomaly.detected", "security_event", "anomaly.resolved"][i % 3];
            Rec::new(i, event, ["acme", "globex"][i % 2])
        })
        .collect();
    for r in &records {
        sink.publish(r.record()).await.unwrap();
    }

    let got = drain(&ch, &queue).await;
    assert_eq!(got.len(), records.len());
    // One channel, confirms in order: the queue holds them in publish order.
    for (r, d) in records.iter().zip(&got) {
        assert_eq!(d.data, r.body);
        assert_eq!(d.exchange.as_str(), exchange);
        assert_eq!(d.routing_key.as_str(), format!("llmsec.{}.{}", r.event, r.tenant));
        let p = &d.properties;
        assert_eq!(p.message_id().as_ref().map(ShortString::as_str), Some(r.id.as_str()));
        assert_eq!(p.content_type().as_ref().map(ShortString::as_str), Some("application/json"));
        assert_eq!(*p.delivery_mode(), Some(2));
        assert_eq!(header(d, "event"), Some(&long(&r.event)));
        assert_eq!(header(d, "tenant"), Some(&long(&r.tenant)));
        assert_eq!(header(d, "idempotency-key"), Some(&long(&r.id)));
    }

    // A binding on the routing key's words picks one event of one tenant.
    let picky = bound_queue(&ch, &exchange, "llmsec.anomaly.*.globex").await;
    let r = Rec::new(99, "anomaly.detected", "globex");
    sink.publish(r.record()).await.unwrap();
    sink.publish(Rec::new(100, "anomaly.detected", "acme").record()).await.unwrap();
    let got = drain(&ch, &picky).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, r.body);
    ch.queue_delete(picky.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    clean(&ch, &queue, &exchange).await;
}

#[tokio::test]
async fn a_record_no_queue_takes_is_a_publish_error_unless_mandatory_is_off() {
    let Some(url) = env_or_skip(URL_ENV, "a_record_no_queue_takes_is_a_publish_error_unless_mandatory_is_off") else {
        return;
    };
    let exchange = unique("llmsec-test-x-");
    let sink = AmqpSink::new(&config(&exchange)).unwrap();
    let err = sink.publish(Rec::new(0, "anomaly.detected", "acme").record()).await.unwrap_err();
    assert!(err.0.contains("no queue is bound for routing key llmsec.anomaly.detected.acme"), "{err}");
    assert!(err.0.contains("NO_ROUTE"), "{err}");
    // The channel survives a returned message: the next routable publish goes through.
    let (_conn, ch) = channel(&url).await;
    let queue = bound_queue(&ch, &exchange, "llmsec.#").await;
    let r = Rec::new(1, "anomaly.detected", "acme");
    sink.publish(r.record()).await.unwrap();
    assert_eq!(drain(&ch, &queue).await.len(), 1);
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();

    let mut lax = config(&exchange);
    lax.mandatory = false;
    let lax = AmqpSink::new(&lax).unwrap();
    lax.publish(Rec::new(2, "anomaly.detected", "acme").record()).await.unwrap();
    ch.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await.unwrap();
}

#[tokio::test]
async fn an_existing_exchange_is_used_with_declare_false_and_a_missing_one_is_an_error() {
    let Some(url) =
        env_or_skip(URL_ENV, "an_existing_exchange_is_used_with_declare_false_and_a_missing_one_is_an_error")
    else {
        return;
    };
    let missing = unique("llmsec-test-missing-");
    let mut cfg = config(&missing);
    cfg.declare = false;
    let sink = AmqpSink::new(&cfg).unwrap();
    for _ in 0..20 {
        let err = sink.connect().await.unwrap_err();
        assert!(err.0.contains("NOT_FOUND") && err.0.contains(&missing), "{err}");
    }

    // An exchange someone else declared (a direct one), used as it is.
    let (_conn, ch) = channel(&url).await;
    let exchange = unique("llmsec-test-x-");
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    ch.exchange_declare(exchange.as_str().into(), ExchangeKind::Direct, durable, FieldTable::default()).await.unwrap();
    let queue = bound_queue(&ch, &exchange, "alerts.acme").await;
    let mut cfg = config(&exchange);
    cfg.declare = false;
    cfg.routing_key = "alerts.{tenant}".into();
    let sink = AmqpSink::new(&cfg).unwrap();
    let r = Rec::new(0, "anomaly.detected", "acme");
    sink.publish(r.record()).await.unwrap();
    let got = drain(&ch, &queue).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].routing_key.as_str(), "alerts.acme");
    clean(&ch, &queue, &exchange).await;
}

#[tokio::test]
async fn wrong_credentials_are_a_publish_error_that_does_not_show_the_password() {
    let Some(url) = env_or_skip(URL_ENV, "wrong_credentials_are_a_publish_error_that_does_not_show_the_password")
    else {
        return;
    };
    let host = url.rsplit_once('@').map_or(url.as_str(), |(_, h)| h);
    let bad = format!("amqp://guest:not-the-s3cret-pw@{host}");
    let sink = AmqpSink::with_url(&config("llmsec-test-x"), &bad).unwrap();
    let err = sink.publish(Rec::new(0, "e", "t").record()).await.unwrap_err();
    assert!(!err.0.contains("not-the-s3cret-pw"), "{err}");
    assert!(err.0.contains("ACCESS_REFUSED"), "{err}");
    assert!(!format!("{sink:?}").contains("not-the-s3cret-pw"));
}

/// A RabbitMQ node of this test's own, under a temporary directory, started
/// and stopped with scripts/rabbitmq.sh.
struct OwnNode {
    dir: std::path::PathBuf,
}

impl OwnNode {
    fn start(dir: &std::path::Path) -> String {
        let out = std::process::Command::new(script("rabbitmq.sh")).arg("start").arg(dir).output().unwrap();
        assert!(out.status.success(), "rabbitmq.sh start: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn stop(&self) {
        let out = std::process::Command::new(script("rabbitmq.sh")).arg("stop").arg(&self.dir).output().unwrap();
        assert!(out.status.success(), "rabbitmq.sh stop: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for OwnNode {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script("rabbitmq.sh")).arg("stop").arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_stopped_broker_fails_the_publish_and_the_next_publish_after_its_restart_reconnects() {
    if env_or_skip(URL_ENV, "a_stopped_broker_fails_the_publish_and_the_next_publish_after_its_restart_reconnects")
        .is_none()
    {
        return;
    }
    // The shared broker may be elsewhere; this test stops and starts one of its own.
    if !std::path::Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() {
        eprintln!(
            "skipped a_stopped_broker_…: rabbitmq-server is not installed here (scripts/rabbitmq.sh installs it)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(unique("llmsec-rabbitmq-"));
    let url = OwnNode::start(&dir);
    let node = OwnNode { dir: dir.clone() };
    let exchange = unique("llmsec-test-x-");
    let sink = AmqpSink::with_url(&config(&exchange), &url).unwrap();
    sink.connect().await.unwrap();
    let (conn, ch) = channel(&url).await;
    let queue = bound_queue(&ch, &exchange, "llmsec.#").await;
    let before = Rec::new(0, "anomaly.detected", "acme");
    sink.publish(before.record()).await.unwrap();
    drop(conn);

    node.stop();
    let during = Rec::new(1, "anomaly.detected", "acme");
    let err = sink.publish(during.record()).await.unwrap_err();
    assert!(err.0.starts_with("amqp: "), "{err}");
    // Still down: the reconnect the next publish tries fails too.
    let err = sink.publish(during.record()).await.unwrap_err();
    assert!(err.0.contains("connecting to 127.0.0.1:"), "{err}");

    // Same directory: the same port, node name and database.
    assert_eq!(OwnNode::start(&dir), url);
    sink.publish(during.record()).await.unwrap();
    let (_conn, ch) = channel(&url).await;
    let got = drain(&ch, &queue).await;
    // The persistent message from before the restart is still queued, then the new one.
    let ids: Vec<_> = got.iter().map(|d| d.properties.message_id().as_ref().map(ShortString::to_string)).collect();
    assert_eq!(ids, [Some(before.id.clone()), Some(during.id.clone())]);
}

#[tokio::test]
async fn a_channel_the_broker_closed_is_reopened_by_the_next_publish() {
    let Some(url) = env_or_skip(URL_ENV, "a_channel_the_broker_closed_is_reopened_by_the_next_publish") else {
        return;
    };
    let exchange = unique("llmsec-test-x-");
    let sink = AmqpSink::new(&config(&exchange)).unwrap();
    let (_conn, ch) = channel(&url).await;
    sink.connect().await.unwrap();
    let queue = bound_queue(&ch, &exchange, "llmsec.#").await;
    sink.publish(Rec::new(0, "anomaly.detected", "acme").record()).await.unwrap();

    // Someone deletes the exchange: the broker closes the sink's channel
    // (404) on its next publish, which fails.
    ch.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await.unwrap();
    let lost = Rec::new(1, "anomaly.detected", "acme");
    let err = sink.publish(lost.record()).await.unwrap_err();
    assert!(err.0.contains("NOT_FOUND"), "{err}");
    // The outbox's retry: a new connection and channel, the exchange declared
    // again; its bindings went with the old one, so the record comes back
    // unroutable rather than being dropped.
    let err = sink.publish(lost.record()).await.unwrap_err();
    assert!(err.0.contains("NO_ROUTE"), "{err}");
    ch.queue_bind(
        queue.as_str().into(),
        exchange.as_str().into(),
        "llmsec.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    sink.publish(lost.record()).await.unwrap();
    let got = drain(&ch, &queue).await;
    let ids: Vec<_> = got.iter().map(|d| d.properties.message_id().as_ref().map(ShortString::to_string)).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1].as_deref(), Some(lost.id.as_str()));
    clean(&ch, &queue, &exchange).await;
}
