//! The Kafka telemetry source: a consumer-group member that fetches
//! batches, stores them through [`TelemetryIngest`], dead-letters poison and
//! commits offsets only after both are durable.
//!
//! Two tasks joined by a bounded channel: the fetcher fills batches (up to
//! `batch_size` messages, or what came within `batch_linger_ms`) and hands
//! them on; the writer stores a batch (retrying while the store fails),
//! publishes its dead letters and waits for the broker's acknowledgement,
//! then commits. When the writer is behind, the channel fills and the
//! fetcher stops fetching: backpressure reaches the broker instead of
//! memory. A third task samples the group's lag.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use super::batch::{DeadLetter, Message, Outcome, Routing, process};
use super::{
    CONSUMER_LAG, INGEST_RETRIES, KafkaConfig, KafkaError, MESSAGES, REASON_HEADER, SOURCE_HEADERS, SourceConfig,
};
use crate::ingest::TelemetryIngest;

/// How often the lag gauge is refreshed.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// A configured source, ready to [`run`](Self::run).
pub struct KafkaSource {
    consumer: Arc<StreamConsumer>,
    producer: FutureProducer,
    cfg: SourceConfig,
    ingest: Arc<dyn TelemetryIngest>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// Joins the group of `[kafka.source]` and subscribes to its topic;
    /// `None` when `cfg` has no source.
    pub fn new(cfg: &KafkaConfig, ingest: Arc<dyn TelemetryIngest>) -> Result<Option<KafkaSource>, KafkaError> {
        cfg.validate()?;
        let Some(src) = cfg.source.clone() else { return Ok(None) };
        let mut c = ClientConfig::new();
        for (k, v) in &cfg.options {
            c.set(k, v);
        }
        c.set("bootstrap.servers", &cfg.brokers)
            .set("client.id", &cfg.client_id)
            .set("group.id", &src.group_id)
            // Offsets are committed by hand, after the batch is durable.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", src.session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", (src.session_timeout_ms / 4).max(250).to_string())
            // Prefetch bounded: with the channel, what sits in memory is capped.
            .set("queued.max.messages.kbytes", "16384");
        let consumer: StreamConsumer = c.create()?;
        consumer.subscribe(&[&src.topic])?;
        let producer = super::sink::producer(cfg)?;
        Ok(Some(KafkaSource { consumer: Arc::new(consumer), producer, cfg: src, ingest }))
    }

    /// Consumes until `shutdown` turns true. The batch being written is
    /// finished (stored, dead letters acknowledged, committed); batches
    /// fetched but not yet written are left uncommitted, to be consumed again.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let (tx, rx) = mpsc::channel(self.cfg.queued_batches);
        let fetch = fetch(self.consumer.clone(), self.cfg.clone(), tx, shutdown.clone());
        let lag = lag(self.consumer.clone(), self.cfg.topic.clone(), shutdown.clone());
        let write = Writer {
            consumer: self.consumer,
            producer: self.producer,
            routing: Routing { tenant: self.cfg.tenant.clone(), trust_message_tenant: self.cfg.trust_message_tenant },
            cfg: self.cfg,
            ingest: self.ingest,
        }
        .run(rx, shutdown);
        tokio::join!(fetch, lag, write);
    }
}

async fn fetch(
    consumer: Arc<StreamConsumer>,
    cfg: SourceConfig,
    tx: mpsc::Sender<Vec<Message>>,
    mut stop: watch::Receiver<bool>,
) {
    let linger = Duration::from_millis(cfg.batch_linger_ms);
    loop {
        let mut batch = Vec::with_capacity(cfg.batch_size.min(10_000));
        // Wait for a first message, then fill until full or the linger ends.
        let first = tokio::select! {
            m = consumer.recv() => m,
            _ = stop.changed() => return,
        };
        let deadline = tokio::time::Instant::now() + linger;
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Ok(m) => batch.push(Message {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                }),
                Err(e) => tracing::warn!(error = %e, "kafka source: fetch failed"),
            }
            if batch.len() >= cfg.batch_size {
                break;
            }
            next = tokio::time::timeout_at(deadline, consumer.recv()).await.ok();
        }
        if batch.is_empty() {
            continue;
        }
        // A full channel is the store being behind: wait, fetching nothing more.
        tokio::select! {
            r = tx.send(batch) => if r.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

async fn lag(consumer: Arc<StreamConsumer>, topic: String, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LAG_EVERY) => {}
            _ = stop.changed() => return,
        }
        let c = consumer.clone();
        let t = topic.clone();
        let sampled = tokio::task::spawn_blocking(move || -> Result<Vec<(i32, i64)>, rdkafka::error::KafkaError> {
            let assigned = c.assignment()?;
            let committed = c.committed_offsets(assigned, Duration::from_secs(5))?;
            let mut out = Vec::new();
            for e in committed.elements_for_topic(&t) {
                let (low, high) = c.fetch_watermarks(&t, e.partition(), Duration::from_secs(5))?;
                let from = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => low,
                };
                out.push((e.partition(), (high - from).max(0)));
            }
            Ok(out)
        })
        .await;
        match sampled {
            Ok(Ok(lags)) => {
                for (p, l) in lags {
                    metrics::gauge!(CONSUMER_LAG, "topic" => topic.clone(), "partition" => p.to_string()).set(l as f64);
                }
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "kafka source: sampling lag failed"),
            Err(e) => tracing::debug!(error = %e, "kafka source: lag task failed"),
        }
    }
}

struct Writer {
    consumer: Arc<StreamConsumer>,
    producer: FutureProducer,
    routing: Routing,
    cfg: SourceConfig,
    ingest: Arc<dyn TelemetryIngest>,
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Vec<Message>>, stop: watch::Receiver<bool>) {
        while let Some(batch) = rx.recv().await {
            let Some(out) = self.store(batch, &stop).await else { return };
            if !self.dead_letter(&out.dead, &stop).await {
                return;
            }
            self.commit(&out.commit).await;
            metrics::counter!(MESSAGES, "outcome" => "stored").increment(out.new as u64);
            metrics::counter!(MESSAGES, "outcome" => "duplicate").increment(out.duplicates as u64);
            metrics::counter!(MESSAGES, "outcome" => "dead_letter").increment(out.dead.len() as u64);
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Stores a batch, retrying with backoff while the store fails; `None` on shutdown.
    async fn store(&self, batch: Vec<Message>, stop: &watch::Receiver<bool>) -> Option<Outcome> {
        let mut wait = Duration::from_millis(100);
        loop {
            match process(self.ingest.as_ref(), &self.routing, self.cfg.format, batch.clone()).await {
                Ok(out) => return Some(out),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "kafka source: storing a batch failed");
                    metrics::counter!(INGEST_RETRIES).increment(1);
                }
            }
            if !pause(wait, stop).await {
                return None;
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// Publishes dead letters until the broker has all of them; false on shutdown.
    async fn dead_letter(&self, dead: &[DeadLetter], stop: &watch::Receiver<bool>) -> bool {
        let mut left: Vec<&DeadLetter> = dead.iter().collect();
        let mut wait = Duration::from_millis(100);
        while !left.is_empty() {
            let sends = left.iter().map(|d| self.send_dead(d));
            let results = join_all(sends).await;
            left = left.into_iter().zip(results).filter(|(_, ok)| !ok).map(|(d, _)| d).collect();
            if left.is_empty() || !pause(wait, stop).await {
                break;
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        }
        left.is_empty()
    }

    async fn send_dead(&self, d: &DeadLetter) -> bool {
        let partition = d.message.partition.to_string();
        let offset = d.message.offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: REASON_HEADER, value: Some(d.reason.as_str()) })
            .insert(Header { key: SOURCE_HEADERS[0], value: Some(self.cfg.topic.as_str()) })
            .insert(Header { key: SOURCE_HEADERS[1], value: Some(partition.as_str()) })
            .insert(Header { key: SOURCE_HEADERS[2], value: Some(offset.as_str()) });
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.cfg.dead_letter_topic).headers(headers);
        if let Some(k) = &d.message.key {
            record = record.key(k.as_slice());
        }
        if let Some(p) = &d.message.payload {
            record = record.payload(p.as_slice());
        }
        match self.producer.send(record, Duration::from_secs(10)).await {
            Ok(_) => {
                tracing::info!(partition = d.message.partition, offset = d.message.offset, reason = %d.reason, "kafka source: message dead-lettered");
                true
            }
            Err((e, _)) => {
                tracing::warn!(error = %e, "kafka source: publishing a dead letter failed");
                false
            }
        }
    }

    /// Commits the batch's offsets. A failed commit (say, the partition
    /// moved to another member meanwhile) is logged: the messages are
    /// consumed again, and ingestion makes that harmless.
    async fn commit(&self, offsets: &BTreeMap<i32, i64>) {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            if let Err(e) = tpl.add_partition_offset(&self.cfg.topic, *p, Offset::Offset(*o)) {
                tracing::warn!(error = %e, "kafka source: bad offset");
            }
        }
        let c = self.consumer.clone();
        match tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "kafka source: commit failed; the batch will be consumed again"),
            Err(e) => tracing::warn!(error = %e, "kafka source: commit task failed"),
        }
    }
}

/// Sleeps `d`; false when shutdown came first.
async fn pause(d: Duration, stop: &watch::Receiver<bool>) -> bool {
    let mut stop = stop.clone();
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.changed() => false,
    }
}
