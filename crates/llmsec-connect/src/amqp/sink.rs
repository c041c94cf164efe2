//! The RabbitMQ sink: outbox records published with publisher confirms.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;

use super::config::{AmqpSinkConfig, ExchangeType};
use super::{EVENT_HEADER, IDEMPOTENCY_HEADER, TENANT_HEADER};
use crate::publish::{OutboxPublisher, OutboxRecord, PublishError, SinkConfigError, secret_from_env};
use crate::template::Template;

/// How long connecting, or one publish and its confirm, may take before the
/// attempt counts as failed (the outbox retries it).
const TIMEOUT: Duration = Duration::from_secs(10);

/// A RabbitMQ publisher for the outbox worker. Each record is published on a
/// channel in confirm mode and counts as published once the broker confirmed
/// it (for a persistent message on a durable queue, after writing it to
/// disk). The connection is opened on the first publish, or by
/// [`connect`](Self::connect), and opened again on the next publish after a
/// failure.
pub struct AmqpSink {
    uri: AMQPUri,
    exchange: ShortString,
    kind: ExchangeKind,
    declare: bool,
    routing_key: Template,
    persistent: bool,
    mandatory: bool,
    link: Mutex<Option<Arc<Link>>>,
}

/// One connection and the confirm-mode channel on it.
struct Link {
    connection: Connection,
    channel: Channel,
}

impl std::fmt::Debug for AmqpSink {
    // The URI holds the password: only where the sink publishes is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSink")
            .field("host", &self.uri.authority.host)
            .field("port", &self.uri.authority.port)
            .field("vhost", &self.uri.vhost)
            .field("exchange", &self.exchange.as_str())
            .field("routing_key", &self.routing_key.to_string())
            .finish_non_exhaustive()
    }
}

impl AmqpSink {
    /// A sink for `cfg`: checks it, reads the URL from the environment
    /// variable `url_env` names and parses it. Opens no connection.
    pub fn new(cfg: &AmqpSinkConfig) -> Result<AmqpSink, SinkConfigError> {
        cfg.routing_key_template()?;
        let url = secret_from_env("url_env", &cfg.url_env)?;
        AmqpSink::with_url(cfg, &url)
    }

    /// A sink for `cfg` publishing to `url`, for a caller that holds the URL
    /// itself (from a secret store, or a test's own broker) rather than in
    /// the environment; `cfg.url_env` is not read. Opens no connection.
    pub fn with_url(cfg: &AmqpSinkConfig, url: &str) -> Result<AmqpSink, SinkConfigError> {
        let routing_key = cfg.routing_key_template()?;
        let uri: AMQPUri = url.parse().map_err(|e: String| {
            // The parser may quote the URL, password and all.
            let why = if e.contains(url) { "not a URL".to_owned() } else { e };
            SinkConfigError::new("url_env", format!("{} does not hold an amqp:// or amqps:// URL: {why}", cfg.url_env))
        })?;
        let exchange = ShortString::try_new(cfg.exchange.clone())
            .map_err(|_| SinkConfigError::new("exchange", "must be at most 255 bytes"))?;
        let kind = match cfg.exchange_type {
            ExchangeType::Topic => ExchangeKind::Topic,
            ExchangeType::Direct => ExchangeKind::Direct,
            ExchangeType::Fanout => ExchangeKind::Fanout,
            ExchangeType::Headers => ExchangeKind::Headers,
        };
        Ok(AmqpSink {
            uri,
            exchange,
            kind,
            declare: cfg.declare,
            routing_key,
            persistent: cfg.persistent,
            mandatory: cfg.mandatory,
            link: Mutex::new(None),
        })
    }

    /// Connects now (and declares or checks the exchange) unless connected,
    /// so a caller can find a wrong URL, password or exchange at start
    /// rather than at the first publish.
    pub async fn connect(&self) -> Result<(), PublishError> {
        self.link().await.map(|_| ())
    }

    /// The routing key of a record.
    pub fn routing_key(&self, event: &str, tenant: &str) -> String {
        self.routing_key.render(event, tenant, Cow::Borrowed)
    }

    /// The open link, or a new one when there is none or it broke.
    async fn link(&self) -> Result<Arc<Link>, PublishError> {
        let mut slot = self.link.lock().await;
        if let Some(link) = slot.as_ref() {
            if link.connection.status().connected() && link.channel.status().connected() {
                return Ok(Arc::clone(link));
            }
            tracing::info!(exchange = self.exchange.as_str(), "amqp sink: connection or channel closed, reconnecting");
        }
        if let Some(old) = slot.take() {
            close(&old).await;
        }
        let link = match tokio::time::timeout(TIMEOUT, self.open()).await {
            Ok(Ok(link)) => Arc::new(link),
            Ok(Err(e)) => return Err(PublishError(format!("amqp: connecting to {}: {e}", self.server()))),
            Err(_) => return Err(PublishError(format!("amqp: connecting to {}: timed out", self.server()))),
        };
        *slot = Some(Arc::clone(&link));
        Ok(link)
    }

    async fn open(&self) -> lapin::Result<Link> {
        let props = ConnectionProperties::default().with_connection_name("llmsec outbox".into());
        let connection = Connection::connect_uri(self.uri.clone(), props).await?;
        match self.channel(&connection).await {
            Ok(channel) => {
                tracing::info!(server = %self.server(), exchange = self.exchange.as_str(), "amqp sink: connected");
                Ok(Link { connection, channel })
            }
            Err(e) => {
                // A missing exchange fails every attempt: close each
                // connection rather than leave them to the broker.
                let closing = connection.close(200, "llmsec: setup failed".into());
                let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
                Err(e)
            }
        }
    }

    /// A channel in confirm mode, with the exchange declared (or checked).
    async fn channel(&self, connection: &Connection) -> lapin::Result<Channel> {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        // The default exchange ("") always exists and cannot be declared.
        if !self.exchange.as_str().is_empty() {
            let options = ExchangeDeclareOptions { passive: !self.declare, durable: true, ..Default::default() };
            channel.exchange_declare(self.exchange.clone(), self.kind.clone(), options, FieldTable::default()).await?;
        }
        Ok(channel)
    }

    /// Forgets `failed` (unless a reconnect replaced it already) and closes it.
    async fn drop_link(&self, failed: &Arc<Link>) {
        let mut slot = self.link.lock().await;
        if slot.as_ref().is_some_and(|l| Arc::ptr_eq(l, failed)) {
            slot.take();
            drop(slot);
            close(failed).await;
        }
    }

    /// `host:port (vhost …)`, without the credentials.
    fn server(&self) -> String {
        format!("{}:{} (vhost {})", self.uri.authority.host, self.uri.authority.port, self.uri.vhost)
    }

    fn properties(&self, r: &OutboxRecord<'_>, message_id: ShortString) -> BasicProperties {
        let mut headers = FieldTable::default();
        for (k, v) in [(EVENT_HEADER, r.event), (TENANT_HEADER, r.tenant), (IDEMPOTENCY_HEADER, r.idempotency_key)] {
            headers.insert(ShortString::from(k), AMQPValue::LongString(LongString::from(v)));
        }
        BasicProperties::default()
            .with_message_id(message_id)
            .with_content_type(ShortString::from("application/json"))
            .with_delivery_mode(if self.persistent { 2 } else { 1 })
            .with_headers(headers)
    }
}

/// Closes a link that is no longer used, without waiting long for a broker
/// that may be gone.
async fn close(link: &Link) {
    let _ =
        tokio::time::timeout(Duration::from_secs(1), link.connection.close(200, "llmsec: reconnecting".into())).await;
}

/// What became of one publish.
enum Failure {
    /// The link broke (or timed out): open a new one next time.
    Link(String),
    /// The broker answered (returned or refused the message): the link is fine.
    Broker(String),
}

#[async_trait::async_trait]
impl OutboxPublisher for AmqpSink {
    async fn publish(&self, r: OutboxRecord<'_>) -> Result<(), PublishError> {
        let routing_key = self.routing_key(r.event, r.tenant);
        let routing_key = ShortString::try_new(routing_key)
            .map_err(|_| PublishError("amqp: the routing key is longer than 255 bytes".into()))?;
        let message_id = ShortString::try_new(r.idempotency_key)
            .map_err(|_| PublishError("amqp: the idempotency key is longer than 255 bytes".into()))?;
        let properties = self.properties(&r, message_id);
        let link = self.link().await?;
        let options = BasicPublishOptions { mandatory: self.mandatory, immediate: false };
        let attempt = async {
            let confirm = link
                .channel
                .basic_publish(self.exchange.clone(), routing_key.clone(), options, r.payload, properties)
                .await
                .map_err(|e| Failure::Link(e.to_string()))?;
            match confirm.await.map_err(|e| Failure::Link(e.to_string()))? {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(returned)) => Err(Failure::Broker(format!(
                    "returned unroutable ({} {}): no queue is bound for routing key {routing_key} on exchange {:?}",
                    returned.reply_code,
                    returned.reply_text,
                    self.exchange.as_str(),
                ))),
                Confirmation::Nack(_) => Err(Failure::Broker("the broker refused the message (nack)".into())),
                Confirmation::NotRequested => Err(Failure::Link("the channel is not in confirm mode".into())),
            }
        };
        match tokio::time::timeout(TIMEOUT, attempt).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Failure::Broker(e))) => Err(PublishError(format!("amqp: {e}"))),
            Ok(Err(Failure::Link(e))) => {
                self.drop_link(&link).await;
                Err(PublishError(format!("amqp: publishing to {}: {e}", self.server())))
            }
            Err(_) => {
                self.drop_link(&link).await;
                Err(PublishError(format!("amqp: publishing to {}: no confirm within {TIMEOUT:?}", self.server())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AmqpSinkConfig {
        toml::from_str("url_env = \"LLMSEC_UNSET_AMQP_URL_FOR_TEST\"\nexchange = \"llmsec\"\n").expect("parses")
    }

    #[test]
    fn an_unset_url_variable_is_named() {
        let e = AmqpSink::new(&config()).expect_err("unset");
        assert_eq!(e.field, "url_env");
        assert!(e.message.contains("LLMSEC_UNSET_AMQP_URL_FOR_TEST is not set"), "{e}");
    }

    #[test]
    fn a_url_that_does_not_parse_is_refused_without_repeating_it() {
        for url in ["http://u:s3cret@host/", "amqp://u:s3cret@host:notaport/", "not a url s3cret"] {
            let e = AmqpSink::with_url(&config(), url).expect_err(url);
            assert_eq!(e.field, "url_env", "{url}");
            assert!(!e.message.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn the_sink_shows_where_it_publishes_but_not_the_password() {
        let sink = AmqpSink::with_url(&config(), "amqp://llmsec:s3cret@rabbit:5673/prod").expect("builds");
        let shown = format!("{sink:?}");
        assert!(shown.contains("rabbit") && shown.contains("5673") && shown.contains("prod"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(sink.routing_key("anomaly.detected", "acme"), "llmsec.anomaly.detected.acme");
        assert_eq!(sink.server(), "rabbit:5673 (vhost prod)");
    }
}
