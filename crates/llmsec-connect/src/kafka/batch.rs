//! A batch of consumed messages through ingestion, without the broker:
//! decode, route to a tenant, store, and work out which messages go to the
//! dead-letter topic and which offsets may be committed.
//!
//! The source commits an offset only after [`process`] returned `Ok` (the
//! events it reports stored are durable) and every dead letter of the batch
//! was acknowledged by the broker. A crash anywhere before the commit means
//! the batch is consumed again; ingestion is idempotent on `event_id`, so
//! the second pass stores nothing twice.

use std::collections::BTreeMap;

use llm_sentinel::event::TelemetryEvent;

use super::PayloadFormat;
use super::decode::decode;
use crate::ingest::{Admission, IngestError, TelemetryIngest};

/// A consumed message, detached from the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub payload: Option<Vec<u8>>,
}

/// A message for the dead-letter topic: the original key and value, where
/// it came from, and why it was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message as consumed.
    pub message: Message,
    /// Why it was not stored (names the field when there is one).
    pub reason: String,
}

/// Which tenant a source's events are stored for.
#[derive(Debug, Clone)]
pub struct Routing {
    /// The configured tenant.
    pub tenant: String,
    /// Use the event's own `tenant_id` when it has one.
    pub trust_message_tenant: bool,
}

impl Routing {
    fn tenant_of(&self, e: &TelemetryEvent) -> String {
        match (&e.tenant_id, self.trust_message_tenant) {
            (Some(t), true) => t.clone(),
            _ => self.tenant.clone(),
        }
    }
}

/// What became of a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Events stored for the first time.
    pub new: usize,
    /// Events the store already had (redeliveries).
    pub duplicates: usize,
    /// Messages for the dead-letter topic.
    pub dead: Vec<DeadLetter>,
    /// Per partition, the offset to commit: one past the last message of the batch.
    pub commit: BTreeMap<i32, i64>,
}

/// The offsets to commit after `batch`: per partition, one past its highest offset.
pub fn commit_offsets(batch: &[Message]) -> BTreeMap<i32, i64> {
    let mut out = BTreeMap::new();
    for m in batch {
        let next = out.entry(m.partition).or_insert(m.offset + 1);
        *next = (*next).max(m.offset + 1);
    }
    out
}

/// Decodes `batch` (each value in `format`), stores the good events (one ingestion call per tenant)
/// and sorts out the rest as dead letters. `Err`: the store failed; nothing
/// may be committed, and the same batch can be processed again.
pub async fn process(
    ingest: &dyn TelemetryIngest,
    routing: &Routing,
    format: PayloadFormat,
    batch: Vec<Message>,
) -> Result<Outcome, IngestError> {
    let mut out = Outcome { commit: commit_offsets(&batch), ..Outcome::default() };
    // Per tenant, the events and the messages they came from, in order.
    let mut by_tenant: BTreeMap<String, (Vec<TelemetryEvent>, Vec<Message>)> = BTreeMap::new();
    for m in batch {
        match decode(m.payload.as_deref(), format) {
            Ok(e) => {
                let slot = by_tenant.entry(routing.tenant_of(&e)).or_default();
                slot.0.push(e);
                slot.1.push(m);
            }
            Err(reason) => out.dead.push(DeadLetter { message: m, reason }),
        }
    }
    for (tenant, (events, messages)) in by_tenant {
        let n = events.len();
        let admissions = ingest.ingest(&tenant, events).await?;
        if admissions.len() != n {
            return Err(IngestError(format!("ingestion answered {} outcomes for {n} events", admissions.len())));
        }
        for (a, m) in admissions.into_iter().zip(messages) {
            match a {
                Admission::New => out.new += 1,
                Admission::Duplicate => out.duplicates += 1,
                Admission::Rejected(reason) => out.dead.push(DeadLetter { message: m, reason }),
            }
        }
    }
    out.dead.sort_by_key(|d| (d.message.partition, d.message.offset));
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use super::*;

    /// An in-memory store behind the ingestion trait: idempotent per
    /// (tenant, event_id), rejects events whose application is `"reject"`,
    /// and fails while `failing` is set.
    #[derive(Debug, Default)]
    pub(crate) struct FakeIngest {
        pub stored: Mutex<HashSet<(String, String)>>,
        pub failing: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl TelemetryIngest for FakeIngest {
        async fn ingest(&self, tenant: &str, events: Vec<TelemetryEvent>) -> Result<Vec<Admission>, IngestError> {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(IngestError("database is locked".into()));
            }
            let mut stored = self.stored.lock().map_err(|_| IngestError("poisoned".into()))?;
            Ok(events
                .into_iter()
                .map(|e| {
                    if e.application_id == "reject" {
                        Admission::Rejected("application_id: refused by the test".into())
                    } else if stored.insert((tenant.to_owned(), e.event_id)) {
                        Admission::New
                    } else {
                        Admission::Duplicate
                    }
                })
                .collect())
        }
    }

    pub(crate) fn event_json(id: &str, app: &str, tenant: Option<&str>) -> Vec<u8> {
        let mut v = serde_json::json!({
            "event_id": id, "timestamp": "2026-01-01T00:00:00Z", "event_type": "llm.request",
            "application_id": app, "data": {"latency_ms": 5.0}
        });
        if let Some(t) = tenant {
            v["tenant_id"] = t.into();
        }
        v.to_string().into_bytes()
    }

    fn msg(partition: i32, offset: i64, payload: &[u8]) -> Message {
        Message { partition, offset, key: Some(b"k".to_vec()), payload: Some(payload.to_vec()) }
    }

    fn routing(trust: bool) -> Routing {
        Routing { tenant: "acme".into(), trust_message_tenant: trust }
    }

    #[tokio::test]
    async fn good_events_are_stored_and_poison_is_dead_lettered_with_its_reason() {
        let fake = FakeIngest::default();
        let batch = vec![
            msg(0, 10, &event_json("a", "app", None)),
            msg(0, 11, b"{oops"),
            msg(1, 3, &event_json("b", "reject", None)),
            msg(1, 4, &event_json("c", "app", None)),
        ];
        let out = process(&fake, &routing(false), PayloadFormat::Json, batch).await.expect("stored");
        assert_eq!((out.new, out.duplicates), (2, 0));
        let dead: Vec<(i32, i64)> = out.dead.iter().map(|d| (d.message.partition, d.message.offset)).collect();
        assert_eq!(dead, vec![(0, 11), (1, 3)]);
        assert!(out.dead[0].reason.starts_with("not a telemetry event"), "{}", out.dead[0].reason);
        assert_eq!(out.dead[1].reason, "application_id: refused by the test");
        assert_eq!(out.dead[1].message.key.as_deref(), Some(&b"k"[..]), "the original key goes along");
        assert_eq!(out.commit, BTreeMap::from([(0, 12), (1, 5)]), "poison is committed past too");
    }

    #[tokio::test]
    async fn redelivery_after_a_crash_stores_nothing_twice() {
        let fake = FakeIngest::default();
        let batch: Vec<Message> = (0..50).map(|i| msg(0, i, &event_json(&format!("e{i}"), "app", None))).collect();
        let first = process(&fake, &routing(false), PayloadFormat::Json, batch[..30].to_vec()).await.expect("first");
        // The process died before committing: the whole range comes again.
        let again = process(&fake, &routing(false), PayloadFormat::Json, batch).await.expect("again");
        assert_eq!((first.new, again.new, again.duplicates), (30, 20, 30));
        assert_eq!(fake.stored.lock().expect("lock").len(), 50);
    }

    #[tokio::test]
    async fn a_failing_store_yields_no_commit() {
        let fake = FakeIngest::default();
        fake.failing.store(true, std::sync::atomic::Ordering::SeqCst);
        let batch = vec![msg(0, 1, &event_json("a", "app", None))];
        assert!(process(&fake, &routing(false), PayloadFormat::Json, batch.clone()).await.is_err());
        fake.failing.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(process(&fake, &routing(false), PayloadFormat::Json, batch).await.expect("retry").new, 1);
    }

    #[tokio::test]
    async fn the_message_tenant_is_used_only_when_trusted() {
        let fake = FakeIngest::default();
        let batch = vec![msg(0, 1, &event_json("a", "app", Some("globex"))), msg(0, 2, &event_json("b", "app", None))];
        process(&fake, &routing(false), PayloadFormat::Json, batch.clone()).await.expect("untrusted");
        let tenants: HashSet<String> = fake.stored.lock().expect("lock").iter().map(|(t, _)| t.clone()).collect();
        assert_eq!(tenants, HashSet::from(["acme".to_owned()]));
        let fake = FakeIngest::default();
        process(&fake, &routing(true), PayloadFormat::Json, batch).await.expect("trusted");
        let mut got: Vec<(String, String)> = fake.stored.lock().expect("lock").iter().cloned().collect();
        got.sort();
        assert_eq!(got, vec![("acme".into(), "b".into()), ("globex".into(), "a".into())]);
    }

    #[test]
    fn commit_offsets_take_the_highest_per_partition() {
        let batch = vec![msg(2, 7, b""), msg(0, 1, b""), msg(2, 5, b""), msg(0, 9, b"")];
        assert_eq!(commit_offsets(&batch), BTreeMap::from([(0, 10), (2, 8)]));
        assert!(commit_offsets(&[]).is_empty());
    }
}
