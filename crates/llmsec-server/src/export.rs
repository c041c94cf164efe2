//! Periodic exports of stored events, anomalies and reports to object
//! storage (`[export.s3]`), and the one-shot backfill `llmsec export s3`
//! runs through the same code.
//!
//! Events and anomalies go out as gzipped JSON lines, one object per
//! tenant, UTC day and window:
//! `{prefix}/events/tenant={t}/dt=YYYY-MM-DD/{from_ms}-{to_ms}.jsonl.gz`
//! (and `anomalies/…`), where `[from_ms, to_ms)` is exactly the range of
//! row times the object holds. A window with more rows than
//! `max_rows_per_object` (or bytes than `max_object_bytes`) rolls to the
//! next part, each part named by its own range; rows of one millisecond
//! stay in one part.
//!
//! No loss, no gaps: each stream has a position in the store (everything
//! before it is exported). A tick picks the next window `[position, to)`
//! (never past a UTC midnight, never past `now - grace` rounded down to a
//! whole minute), records `to` as
//! pending, writes the window's objects, and only then moves the position
//! to `to`. A failed PUT, or a crash before the position moved, leaves the
//! window pending: the next tick writes the same window again, to the same
//! keys (an overwrite). Rows stored with a time already behind the
//! position (more than `grace_secs` late) are not picked up by later ticks.
//!
//! Reports: for each complete period (day, ISO week or month, UTC) after
//! the reports position, every tenant's report as JSON and HTML at
//! `{prefix}/reports/tenant={t}/{period}/{label}.json` (`.html`).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, TimeZone, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use llmsec_report::{Configuration, Evidence, ReportRequest};
use llmsec_store::{
    AnomalyQuery, AnomalyRow, EventQuery, ExportPosition, ExportSource, Millis, SecurityEvent, Store, StoreError,
};
use tokio::sync::{Mutex, watch};

use crate::config::{ExportWhat, ReportPeriod, S3ExportConfig};

const DAY_MS: Millis = 86_400_000;
/// Rows read from the store per page.
const PAGE: u32 = 1000;

/// Why an export did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// An object could not be written.
    #[error("put {key}: {message}")]
    Put {
        /// The object key.
        key: String,
        /// Why.
        message: String,
    },
    /// A report could not be made.
    #[error("report: {0}")]
    Report(String),
    /// A row could not be encoded.
    #[error("encode: {0}")]
    Encode(String),
    /// The range asked for is empty or reversed.
    #[error("range: {0}")]
    Range(String),
}

/// Where objects are written: the S3 client, or a test double.
#[async_trait::async_trait]
pub trait ObjectSink: Send + Sync + std::fmt::Debug {
    /// Writes `body` at `key`, replacing any object there.
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        content_encoding: Option<&str>,
    ) -> Result<(), String>;
}

#[cfg(feature = "s3")]
#[async_trait::async_trait]
impl ObjectSink for llmsec_connect::s3::S3Client {
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        content_encoding: Option<&str>,
    ) -> Result<(), String> {
        llmsec_connect::s3::S3Client::put(self, key, body, content_type, content_encoding)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The S3 client of `[export.s3]` as a sink, its credentials read through
/// `env`; an error names the setting (`access_key_id_env` …).
#[cfg(feature = "s3")]
pub fn s3_sink(
    c: &S3ExportConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn ObjectSink>, (&'static str, String)> {
    use llmsec_connect::s3::{S3Client, S3Error};
    match S3Client::new(&c.settings(), env) {
        Ok(client) => Ok(Arc::new(client)),
        Err(S3Error::Invalid { field, message }) => Err((field, message)),
        Err(e) => Err(("endpoint", e.to_string())),
    }
}

/// Without the `s3` feature there is no client (the config check refuses
/// `[export.s3]` first).
#[cfg(not(feature = "s3"))]
pub fn s3_sink(
    _: &S3ExportConfig,
    _: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn ObjectSink>, (&'static str, String)> {
    Err(("endpoint", "this build has no S3 support (cargo feature `s3`)".into()))
}

/// What to export and how objects are cut, from `[export.s3]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportPlan {
    /// Key prefix without slashes at the ends (`""` for none).
    pub prefix: String,
    /// The streams.
    pub what: Vec<ExportWhat>,
    /// Rows newer than `now - grace` wait for a later tick.
    pub grace_ms: Millis,
    /// Rows per object at most.
    pub max_rows: usize,
    /// Uncompressed bytes per object at most.
    pub max_bytes: usize,
    /// The period of each report.
    pub report_period: ReportPeriod,
    /// The frameworks of the reports (all when `None`).
    pub report_frameworks: Option<Vec<String>>,
}

impl ExportPlan {
    /// The plan of a checked `[export.s3]` section.
    pub fn from_config(c: &S3ExportConfig) -> ExportPlan {
        ExportPlan {
            prefix: c.key_prefix().to_owned(),
            what: c.what.clone(),
            grace_ms: i64::try_from(c.grace_secs).unwrap_or(0).saturating_mul(1000),
            max_rows: c.max_rows_per_object,
            max_bytes: c.max_object_bytes,
            report_period: c.report_period,
            report_frameworks: c.report_frameworks.clone(),
        }
    }

    /// `{prefix}/rest`, or `rest` without a prefix.
    fn key(&self, rest: &str) -> String {
        if self.prefix.is_empty() { rest.to_owned() } else { format!("{}/{rest}", self.prefix) }
    }
}

/// Describes the running configuration for a tenant's report (the
/// server's detector set differs per tenant).
pub type DescribeConfig = Arc<dyn Fn(&str) -> Configuration + Send + Sync>;

/// What one stream's export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Objects put.
    pub objects: usize,
    /// Rows (or reports) in them.
    pub rows: usize,
    /// The keys put, in order.
    pub keys: Vec<String>,
}

impl Written {
    fn add(&mut self, other: Written) {
        self.objects += other.objects;
        self.rows += other.rows;
        self.keys.extend(other.keys);
    }
}

/// Runs exports of one store to one sink.
pub struct Exporter {
    store: Arc<dyn Store>,
    sink: Arc<dyn ObjectSink>,
    plan: ExportPlan,
    describe: DescribeConfig,
    /// One tick at a time in this process.
    running: Mutex<()>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").field("sink", &self.sink).field("plan", &self.plan).finish_non_exhaustive()
    }
}

/// The stream name of a source in the positions table.
fn stream_of(what: ExportWhat, period: ReportPeriod) -> String {
    match what {
        ExportWhat::Events => "events".into(),
        ExportWhat::Anomalies => "anomalies".into(),
        ExportWhat::Reports => format!("reports_{}", period_name(period)),
    }
}

fn period_name(p: ReportPeriod) -> &'static str {
    match p {
        ReportPeriod::Day => "day",
        ReportPeriod::Week => "week",
        ReportPeriod::Month => "month",
    }
}

/// The UTC midnight at or before `t`.
pub fn day_start(t: Millis) -> Millis {
    t.div_euclid(DAY_MS) * DAY_MS
}

/// The period of kind `p` holding `t`: `[start, end)`, UTC.
pub fn period_bounds(p: ReportPeriod, t: Millis) -> (Millis, Millis) {
    let day = day_start(t);
    match p {
        ReportPeriod::Day => (day, day + DAY_MS),
        ReportPeriod::Week => {
            // 1970-01-01 was a Thursday: Monday is 3 days before it.
            let monday = (day + 3 * DAY_MS).div_euclid(7 * DAY_MS) * 7 * DAY_MS - 3 * DAY_MS;
            (monday, monday + 7 * DAY_MS)
        }
        ReportPeriod::Month => {
            let Some(d) = Utc.timestamp_millis_opt(t).single() else { return (day, day + DAY_MS) };
            let first =
                |y: i32, m: u32| Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().map_or(day, |x| x.timestamp_millis());
            let (ny, nm) = if d.month() == 12 { (d.year() + 1, 1) } else { (d.year(), d.month() + 1) };
            (first(d.year(), d.month()), first(ny, nm))
        }
    }
}

/// The label of the period starting at `start`: `2026-12-07`, `2026-W49`, `2026-12`.
pub fn period_label(p: ReportPeriod, start: Millis) -> String {
    let Some(d) = Utc.timestamp_millis_opt(start).single() else { return start.to_string() };
    match p {
        ReportPeriod::Day => d.format("%Y-%m-%d").to_string(),
        ReportPeriod::Week => d.format("%G-W%V").to_string(),
        ReportPeriod::Month => d.format("%Y-%m").to_string(),
    }
}

/// The UTC date of `t` (`2026-12-07`).
fn date(t: Millis) -> String {
    llmsec_report::time::date(t)
}

/// The key of the rows of one tenant in `[lo, hi)` (inside one UTC day).
pub fn rows_key(plan: &ExportPlan, stream: &str, tenant: &str, lo: Millis, hi: Millis) -> String {
    plan.key(&format!("{stream}/tenant={tenant}/dt={}/{lo}-{hi}.jsonl.gz", date(lo)))
}

/// The key of a tenant's report of the period starting at `start`.
pub fn report_key(plan: &ExportPlan, tenant: &str, start: Millis, ext: &str) -> String {
    let p = plan.report_period;
    plan.key(&format!("reports/tenant={tenant}/{}/{}.{ext}", period_name(p), period_label(p, start)))
}

/// Collects one tenant's rows of a window, newest first, into parts, and
/// puts each part as soon as it is complete.
struct Parts<'a> {
    ex: &'a Exporter,
    stream: &'static str,
    tenant: &'a str,
    from: Millis,
    /// The end of the part being filled.
    upper: Millis,
    /// Lines of the part being filled, newest first.
    lines: Vec<String>,
    bytes: usize,
    /// The oldest time in the part being filled.
    lowest: Option<Millis>,
    written: Written,
}

impl<'a> Parts<'a> {
    fn new(ex: &'a Exporter, stream: &'static str, tenant: &'a str, from: Millis, to: Millis) -> Parts<'a> {
        Parts {
            ex,
            stream,
            tenant,
            from,
            upper: to,
            lines: Vec::new(),
            bytes: 0,
            lowest: None,
            written: Written::default(),
        }
    }

    async fn push(&mut self, ts: Millis, line: String) -> Result<(), ExportError> {
        if let Some(low) = self.lowest
            && ts < low
            && (self.lines.len() >= self.ex.plan.max_rows || self.bytes >= self.ex.plan.max_bytes)
        {
            self.flush(low).await?;
            self.upper = low;
        }
        self.bytes += line.len() + 1;
        self.lines.push(line);
        self.lowest = Some(ts);
        Ok(())
    }

    /// Puts the part being filled as `[lo, upper)`, oldest row first.
    async fn flush(&mut self, lo: Millis) -> Result<(), ExportError> {
        let key = rows_key(&self.ex.plan, self.stream, self.tenant, lo, self.upper);
        let mut gz = GzEncoder::new(Vec::with_capacity(self.bytes / 4 + 64), Compression::default());
        for l in self.lines.iter().rev() {
            gz.write_all(l.as_bytes())
                .and_then(|()| gz.write_all(b"\n"))
                .map_err(|e| ExportError::Encode(e.to_string()))?;
        }
        let body = gz.finish().map_err(|e| ExportError::Encode(e.to_string()))?;
        self.ex
            .sink
            .put(&key, body, "application/x-ndjson", Some("gzip"))
            .await
            .map_err(|message| ExportError::Put { key: key.clone(), message })?;
        self.written.objects += 1;
        self.written.rows += self.lines.len();
        self.written.keys.push(key);
        self.lines.clear();
        self.bytes = 0;
        self.lowest = None;
        Ok(())
    }

    async fn finish(mut self) -> Result<Written, ExportError> {
        if !self.lines.is_empty() {
            self.flush(self.from).await?;
        }
        Ok(self.written)
    }
}

/// An anomaly row as exported: its columns, and the anomaly itself as JSON.
fn anomaly_line(a: &AnomalyRow) -> Result<String, ExportError> {
    let body: serde_json::Value =
        serde_json::from_str(&a.body).unwrap_or_else(|_| serde_json::Value::String(a.body.clone()));
    let v = serde_json::json!({
        "id": a.id,
        "tenant": a.tenant,
        "detector_id": a.detector_id,
        "severity": a.severity,
        "status": a.status,
        "score": a.score,
        "application_id": a.application_id,
        "timestamp": a.timestamp,
        "resolved_at": a.resolved_at,
        "anomaly": body,
    });
    serde_json::to_string(&v).map_err(|e| ExportError::Encode(e.to_string()))
}

fn event_line(e: &SecurityEvent) -> Result<String, ExportError> {
    serde_json::to_string(e).map_err(|e| ExportError::Encode(e.to_string()))
}

fn source_of(what: ExportWhat) -> Option<ExportSource> {
    match what {
        ExportWhat::Events => Some(ExportSource::Events),
        ExportWhat::Anomalies => Some(ExportSource::Anomalies),
        ExportWhat::Reports => None,
    }
}

impl Exporter {
    /// An exporter of `store` to `sink`; `describe` gives the running
    /// configuration a tenant's report shows.
    pub fn new(
        store: Arc<dyn Store>,
        sink: Arc<dyn ObjectSink>,
        plan: ExportPlan,
        describe: DescribeConfig,
    ) -> Exporter {
        Exporter { store, sink, plan, describe, running: Mutex::new(()) }
    }

    /// The plan.
    pub fn plan(&self) -> &ExportPlan {
        &self.plan
    }

    /// One periodic export at `now`: every stream of the plan, each on its
    /// own (one failing does not stop the others). Records the metrics.
    pub async fn tick(&self, now: Millis) -> Vec<(ExportWhat, Result<Written, ExportError>)> {
        let _one = self.running.lock().await;
        let mut out = Vec::new();
        for &what in &self.plan.what {
            let r = match source_of(what) {
                Some(source) => self.rows_tick(source, now).await,
                None => self.reports_tick(now).await,
            };
            let stream = stream_of(what, self.plan.report_period);
            match &r {
                Ok(w) => crate::metrics::export_succeeded(&stream, w.objects, now),
                Err(e) => {
                    tracing::warn!(stream, error = %e, "export failed; retried next tick");
                    crate::metrics::export_failed(&stream);
                }
            }
            out.push((what, r));
        }
        out
    }

    /// Exports windows of `source` up to `now - grace`, moving its position
    /// after each window is written.
    async fn rows_tick(&self, source: ExportSource, now: Millis) -> Result<Written, ExportError> {
        let stream = source.as_str();
        let watermark = self.watermark(now);
        let mut written = Written::default();
        loop {
            let pos = self.store.export_position(stream).await?;
            let (from, to) = match pos {
                Some(ExportPosition { position, pending_to: Some(to), .. }) => (position, to),
                _ => {
                    let from = match &pos {
                        Some(p) => p.position,
                        None => self.store.first_time_from(source, Millis::MIN).await?.map_or(watermark, day_start),
                    };
                    if from >= watermark {
                        if pos.is_none() {
                            self.set_position(stream, from, None, now).await?;
                        }
                        return Ok(written);
                    }
                    let next = self.store.first_time_from(source, from).await?;
                    let Some(next) = next.filter(|&t| t < watermark) else {
                        // Nothing stored in [from, watermark): the position moves on.
                        self.set_position(stream, watermark, None, now).await?;
                        return Ok(written);
                    };
                    let from = from.max(day_start(next));
                    let to = watermark.min(day_start(next) + DAY_MS);
                    // The window is fixed before anything is written, so a
                    // retry writes the same objects.
                    self.set_position(stream, from, Some(to), now).await?;
                    (from, to)
                }
            };
            written.add(self.export_window(source, from, to).await?);
            self.set_position(stream, to, None, now).await?;
        }
    }

    /// Rows up to here are exported at `now`: `now - grace`, down to a
    /// whole minute, so that exporters ticking at the same moment (replicas
    /// sharing a store) pick the same windows and write the same keys.
    fn watermark(&self, now: Millis) -> Millis {
        (now - self.plan.grace_ms).div_euclid(60_000) * 60_000
    }

    async fn set_position(
        &self,
        stream: &str,
        position: Millis,
        pending_to: Option<Millis>,
        now: Millis,
    ) -> Result<(), ExportError> {
        let p = ExportPosition { stream: stream.to_owned(), position, pending_to, updated_at: now };
        Ok(self.store.set_export_position(&p).await?)
    }

    /// Writes every tenant's rows of `source` in `[from, to)` (one UTC day at most).
    async fn export_window(&self, source: ExportSource, from: Millis, to: Millis) -> Result<Written, ExportError> {
        let mut written = Written::default();
        for tenant in self.store.tenants_between(source, from, to).await? {
            let mut parts = Parts::new(self, source.as_str(), &tenant, from, to);
            match source {
                ExportSource::Events => {
                    let mut q = EventQuery {
                        tenant: tenant.clone(),
                        since: Some(from),
                        until: Some(to),
                        limit: PAGE,
                        ..Default::default()
                    };
                    loop {
                        let page = self.store.events(&q).await?;
                        for e in &page {
                            parts.push(e.timestamp, event_line(e)?).await?;
                        }
                        match page.last() {
                            Some(last) if page.len() == PAGE as usize => {
                                q.before = Some((last.timestamp, last.id.clone()));
                            }
                            _ => break,
                        }
                    }
                }
                ExportSource::Anomalies => {
                    let mut q = AnomalyQuery {
                        tenant: tenant.clone(),
                        start: Some(from),
                        end: Some(to),
                        limit: PAGE,
                        ..Default::default()
                    };
                    loop {
                        let (page, _) = self.store.anomalies(&q).await?;
                        for a in &page {
                            parts.push(a.timestamp, anomaly_line(a)?).await?;
                        }
                        if page.len() < PAGE as usize {
                            break;
                        }
                        q.offset += PAGE;
                    }
                }
            }
            written.add(parts.finish().await?);
        }
        Ok(written)
    }

    /// Reports of every complete period after the reports position (the
    /// last complete one only, the first time).
    async fn reports_tick(&self, now: Millis) -> Result<Written, ExportError> {
        let period = self.plan.report_period;
        let stream = stream_of(ExportWhat::Reports, period);
        let watermark = self.watermark(now);
        let (last_end, _) = period_bounds(period, watermark);
        let mut start = match self.store.export_position(&stream).await? {
            Some(p) => period_bounds(period, p.position).0.max(p.position),
            None => period_bounds(period, last_end - 1).0,
        };
        let mut written = Written::default();
        while start < last_end {
            let (s, e) = period_bounds(period, start);
            written.add(self.export_reports(s, e, now).await?);
            self.set_position(&stream, e, None, now).await?;
            start = e;
        }
        Ok(written)
    }

    /// Every tenant's report of `[from, to)`: tenants with keys, and any
    /// with events or anomalies in the period.
    async fn export_reports(&self, from: Millis, to: Millis, now: Millis) -> Result<Written, ExportError> {
        let mut tenants: Vec<String> = self.store.list_keys(None).await?.into_iter().map(|k| k.tenant).collect();
        tenants.extend(self.store.tenants_between(ExportSource::Events, from, to).await?);
        tenants.extend(self.store.tenants_between(ExportSource::Anomalies, from, to).await?);
        tenants.sort();
        tenants.dedup();
        let mut written = Written::default();
        for tenant in &tenants {
            let evidence = Evidence::gather(self.store.as_ref(), tenant, (self.describe)(tenant), None, now)
                .await
                .map_err(|e| ExportError::Report(e.to_string()))?;
            let req = ReportRequest { from, to, frameworks: self.plan.report_frameworks.clone() };
            let report = llmsec_report::report::build(self.store.as_ref(), evidence, &req)
                .await
                .map_err(|e| ExportError::Report(e.to_string()))?;
            let json = serde_json::to_vec_pretty(&report).map_err(|e| ExportError::Encode(e.to_string()))?;
            let html = llmsec_report::html::report(&report).into_bytes();
            for (ext, body, content_type) in
                [("json", json, "application/json"), ("html", html, "text/html; charset=utf-8")]
            {
                let key = report_key(&self.plan, tenant, from, ext);
                self.sink
                    .put(&key, body, content_type, None)
                    .await
                    .map_err(|message| ExportError::Put { key: key.clone(), message })?;
                written.objects += 1;
                written.keys.push(key);
            }
            written.rows += 1;
        }
        Ok(written)
    }

    /// The backfill: exports `[from, to)` of the plan's streams, whatever
    /// their positions (which it leaves as they are). Rows go out by UTC
    /// day, named by their ranges as the periodic export names them; the
    /// reports of every complete period inside the range.
    pub async fn export_range(&self, from: Millis, to: Millis, now: Millis) -> Result<Written, ExportError> {
        if to <= from {
            return Err(ExportError::Range("to must be after from".into()));
        }
        let _one = self.running.lock().await;
        let mut written = Written::default();
        for &what in &self.plan.what {
            match source_of(what) {
                Some(source) => {
                    let mut start = from;
                    while start < to {
                        let end = to.min(day_start(start) + DAY_MS);
                        written.add(self.export_window(source, start, end).await?);
                        start = end;
                    }
                }
                None => {
                    let (mut s, mut e) = period_bounds(self.plan.report_period, from);
                    if s < from {
                        (s, e) = period_bounds(self.plan.report_period, e);
                    }
                    while e <= to {
                        written.add(self.export_reports(s, e, now).await?);
                        (s, e) = period_bounds(self.plan.report_period, e);
                    }
                }
            }
        }
        Ok(written)
    }

    /// Ticks at every multiple of `interval` since the Unix epoch (so a
    /// restart does not put the next export off), until `stop`.
    pub async fn run(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        let every = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
        loop {
            let now = llmsec_store::now_millis();
            let next = (now.div_euclid(every) + 1).saturating_mul(every);
            let wait = Duration::from_millis(u64::try_from(next - now).unwrap_or(0));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            let _ = self.tick(llmsec_store::now_millis()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;
    use std::io::Read;
    use std::sync::Mutex as StdMutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use llmsec_store::{Record, SqlStore};

    use super::*;

    /// An object held in memory: body, content type, content encoding.
    type Object = (Vec<u8>, String, Option<String>);

    /// Objects in memory; refuses every PUT while `down` is set.
    #[derive(Debug, Default)]
    struct Memory {
        objects: StdMutex<BTreeMap<String, Object>>,
        down: AtomicBool,
        puts: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl ObjectSink for Memory {
        async fn put(&self, key: &str, body: Vec<u8>, ct: &str, enc: Option<&str>) -> Result<(), String> {
            if self.down.load(Ordering::SeqCst) {
                return Err("connection refused".into());
            }
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.objects.lock().unwrap().insert(key.into(), (body, ct.into(), enc.map(str::to_owned)));
            Ok(())
        }
    }

    impl Memory {
        fn lines(&self, key: &str) -> Vec<serde_json::Value> {
            let (body, ..) = self.objects.lock().unwrap()[key].clone();
            let mut text = String::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text).unwrap();
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
        }
        fn keys(&self) -> Vec<String> {
            self.objects.lock().unwrap().keys().cloned().collect()
        }
    }

    fn plan(what: Vec<ExportWhat>) -> ExportPlan {
        ExportPlan {
            prefix: "llmsec".into(),
            what,
            grace_ms: 60_000,
            max_rows: 1000,
            max_bytes: 64 << 20,
            report_period: ReportPeriod::Day,
            report_frameworks: Some(vec!["gdpr".into()]),
        }
    }

    fn describe() -> DescribeConfig {
        Arc::new(|_| crate::service::reports::configuration(&crate::config::ServerConfig::default(), 0))
    }

    fn event(tenant: &str, id: &str, ts: Millis) -> Record {
        Record {
            event: SecurityEvent {
                id: id.into(),
                tenant: tenant.into(),
                event_type: "input_analysis".into(),
                input: Some("[REDACTED]".into()),
                threats: serde_json::json!([]),
                confidence: 0.5,
                verdict: "allow".into(),
                timestamp: ts,
                user_id: None,
                session_id: None,
                context_kind: None,
                analysis_us: None,
            },
            deliveries: vec![],
        }
    }

    async fn store() -> Arc<dyn Store> {
        Arc::new(SqlStore::connect("sqlite::memory:").await.unwrap())
    }

    /// 2026-12-06T00:00:00Z.
    const D6: Millis = 1_796_515_200_000;

    #[test]
    fn keys_are_partitioned_by_tenant_and_utc_date() {
        let p = plan(vec![]);
        assert_eq!(
            rows_key(&p, "events", "acme", D6 + 5, D6 + 3_600_000),
            format!("llmsec/events/tenant=acme/dt=2026-12-06/{}-{}.jsonl.gz", D6 + 5, D6 + 3_600_000)
        );
        let bare = ExportPlan { prefix: String::new(), ..p.clone() };
        assert!(rows_key(&bare, "anomalies", "a", 0, 1).starts_with("anomalies/tenant=a/dt=1970-01-01/0-1"));
        assert_eq!(report_key(&p, "acme", D6, "json"), "llmsec/reports/tenant=acme/day/2026-12-06.json");
        let w = ExportPlan { report_period: ReportPeriod::Week, ..p.clone() };
        assert_eq!(
            report_key(&w, "acme", period_bounds(ReportPeriod::Week, D6).0, "html"),
            "llmsec/reports/tenant=acme/week/2026-W49.html"
        );
        let m = ExportPlan { report_period: ReportPeriod::Month, ..p };
        assert_eq!(
            report_key(&m, "acme", period_bounds(ReportPeriod::Month, D6).0, "json"),
            "llmsec/reports/tenant=acme/month/2026-12.json"
        );
    }

    #[test]
    fn periods_are_utc_days_iso_weeks_and_months() {
        assert_eq!(period_bounds(ReportPeriod::Day, D6 + 1), (D6, D6 + DAY_MS));
        // 2026-12-06 is a Sunday: its ISO week began Monday 2026-11-30.
        let (mon, next) = period_bounds(ReportPeriod::Week, D6 + 5);
        assert_eq!(period_label(ReportPeriod::Week, mon), "2026-W49");
        assert_eq!((llmsec_report::time::date(mon).as_str(), next - mon), ("2026-11-30", 7 * DAY_MS));
        let (s, e) = period_bounds(ReportPeriod::Month, D6);
        assert_eq!((date(s).as_str(), date(e).as_str()), ("2026-12-01", "2027-01-01"));
        assert_eq!(day_start(-1), -DAY_MS, "before the epoch rounds down");
    }

    #[tokio::test]
    async fn every_event_goes_out_exactly_once_partitioned_by_day() {
        let s = store().await;
        let mut rows = vec![];
        for i in 0..30 {
            // Across two days and two tenants.
            let t = if i % 3 == 0 { "globex" } else { "acme" };
            rows.push(event(t, &format!("e{i:03}"), D6 + DAY_MS - 15 * 60_000 + i * 60_000));
        }
        s.record(&rows).await.unwrap();
        let sink = Arc::new(Memory::default());
        let ex = Exporter::new(s.clone(), sink.clone(), plan(vec![ExportWhat::Events]), describe());
        let now = D6 + 2 * DAY_MS;
        let r = ex.tick(now).await;
        let w = r[0].1.as_ref().unwrap();
        assert_eq!(w.rows, 30);
        let mut seen = vec![];
        for key in sink.keys() {
            let (_, ct, enc) = sink.objects.lock().unwrap()[&key].clone();
            assert_eq!((ct.as_str(), enc.as_deref()), ("application/x-ndjson", Some("gzip")));
            let dt = key.split("dt=").nth(1).unwrap()[..10].to_owned();
            let tenant = key.split("tenant=").nth(1).unwrap().split('/').next().unwrap().to_owned();
            let lines = sink.lines(&key);
            assert!(lines.windows(2).all(|w| w[0]["timestamp"].as_i64() <= w[1]["timestamp"].as_i64()), "oldest first");
            for l in lines {
                assert_eq!(date(l["timestamp"].as_i64().unwrap()), dt, "{key}");
                assert_eq!(l["tenant"], tenant.as_str());
                seen.push(l["id"].as_str().unwrap().to_owned());
            }
        }
        seen.sort();
        assert_eq!(seen, (0..30).map(|i| format!("e{i:03}")).collect::<Vec<_>>(), "each exactly once");
        assert_eq!(sink.keys().len(), 4, "two tenants on two days: {:?}", sink.keys());
        let pos = s.export_position("events").await.unwrap().unwrap();
        assert_eq!((pos.position, pos.pending_to), (now - 60_000, None));
        // Nothing new: nothing written.
        let puts = sink.puts.load(Ordering::SeqCst);
        let again = ex.tick(now + 1000).await;
        assert_eq!(again[0].1.as_ref().unwrap().objects, 0);
        assert_eq!(sink.puts.load(Ordering::SeqCst), puts);
    }

    #[tokio::test]
    async fn a_failed_put_keeps_the_window_pending_and_the_retry_writes_the_same_keys() {
        let s = store().await;
        s.record(&[event("acme", "a1", D6 + 1000), event("acme", "a2", D6 + 2000)]).await.unwrap();
        let sink = Arc::new(Memory::default());
        let ex = Exporter::new(s.clone(), sink.clone(), plan(vec![ExportWhat::Events]), describe());
        sink.down.store(true, Ordering::SeqCst);
        let r = ex.tick(D6 + 3_600_000).await;
        assert!(matches!(r[0].1, Err(ExportError::Put { .. })), "{:?}", r[0].1);
        let pos = s.export_position("events").await.unwrap().unwrap();
        assert_eq!((pos.position, pos.pending_to), (D6, Some(D6 + 3_600_000 - 60_000)), "position unchanged");
        // Later, more rows, and the store is back: the pending window first,
        // to the key it was meant for, then the rest.
        s.record(&[event("acme", "a3", D6 + 4_000_000)]).await.unwrap();
        sink.down.store(false, Ordering::SeqCst);
        let r = ex.tick(D6 + 7_200_000).await;
        let w = r[0].1.as_ref().unwrap();
        assert_eq!(w.rows, 3);
        assert_eq!(w.keys[0], rows_key(ex.plan(), "events", "acme", D6, D6 + 3_540_000));
        assert_eq!(w.keys[1], rows_key(ex.plan(), "events", "acme", D6 + 3_540_000, D6 + 7_140_000));
    }

    #[tokio::test]
    async fn big_windows_roll_to_parts_that_tile_the_window() {
        let s = store().await;
        // 25 rows, two per millisecond at 1000..1012 (one alone at the end).
        let rows: Vec<Record> = (0..25).map(|i| event("acme", &format!("r{i:03}"), D6 + 1000 + i / 2)).collect();
        s.record(&rows).await.unwrap();
        let sink = Arc::new(Memory::default());
        let p = ExportPlan { max_rows: 5, ..plan(vec![ExportWhat::Events]) };
        let ex = Exporter::new(s.clone(), sink.clone(), p, describe());
        let w = ex.tick(D6 + DAY_MS + 60_000).await.remove(0).1.unwrap();
        assert_eq!(w.rows, 25);
        assert!(w.objects >= 4, "{:?}", w.keys);
        // The ranges tile [D6, D6 + 1 day) with no gap or overlap, and
        // each row lies in its object's range.
        let mut ranges: Vec<(Millis, Millis)> = w
            .keys
            .iter()
            .map(|k| {
                let name = k.rsplit('/').next().unwrap().trim_end_matches(".jsonl.gz");
                let (a, b) = name.split_once('-').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            })
            .collect();
        ranges.sort();
        assert_eq!(ranges.first().unwrap().0, D6);
        assert_eq!(ranges.last().unwrap().1, D6 + DAY_MS);
        assert!(ranges.windows(2).all(|r| r[0].1 == r[1].0));
        for (k, (lo, hi)) in w.keys.iter().zip(w.keys.iter().map(|k| {
            let name = k.rsplit('/').next().unwrap().trim_end_matches(".jsonl.gz");
            let (a, b) = name.split_once('-').unwrap();
            (a.parse::<i64>().unwrap(), b.parse::<i64>().unwrap())
        })) {
            let lines = sink.lines(k);
            assert!(lines.len() <= 6, "at most the cap plus rows of the same millisecond");
            assert!(lines.iter().all(|l| (lo..hi).contains(&l["timestamp"].as_i64().unwrap())));
        }
    }

    #[tokio::test]
    async fn anomalies_and_reports_go_out_too() {
        let s = store().await;
        s.record(&[event("acme", "a1", D6 + 1000)]).await.unwrap();
        let anomaly = llmsec_store::AnomalyRow {
            id: "an1".into(),
            tenant: "acme".into(),
            detector_id: "rate".into(),
            severity: "warning".into(),
            status: "active".into(),
            score: 0.7,
            application_id: Some("app".into()),
            timestamp: D6 + 5000,
            resolved_at: None,
            body: r#"{"id":"an1","detail":"x"}"#.into(),
        };
        s.put_anomaly(&anomaly).await.unwrap();
        let sink = Arc::new(Memory::default());
        let ex =
            Exporter::new(s.clone(), sink.clone(), plan(vec![ExportWhat::Anomalies, ExportWhat::Reports]), describe());
        let r = ex.tick(D6 + DAY_MS + 120_000).await;
        assert_eq!(r[0].1.as_ref().unwrap().rows, 1);
        let key = r[0].1.as_ref().unwrap().keys[0].clone();
        assert!(key.starts_with("llmsec/anomalies/tenant=acme/dt=2026-12-06/"), "{key}");
        let line = &sink.lines(&key)[0];
        assert_eq!((line["id"].as_str(), line["anomaly"]["detail"].as_str()), (Some("an1"), Some("x")));
        // The report of the last complete day (2026-12-06), JSON and HTML.
        let w = r[1].1.as_ref().unwrap();
        assert_eq!(
            w.keys,
            ["llmsec/reports/tenant=acme/day/2026-12-06.json", "llmsec/reports/tenant=acme/day/2026-12-06.html"]
        );
        let (json, ct, _) = sink.objects.lock().unwrap()[&w.keys[0]].clone();
        assert_eq!(ct, "application/json");
        let report: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(report["summary"]["analyses"], 1, "{report}");
        // The same day is not reported twice; the next one is once it ends.
        s.record(&[event("acme", "a2", D6 + DAY_MS + 500)]).await.unwrap();
        assert_eq!(ex.tick(D6 + DAY_MS + 180_000).await[1].1.as_ref().unwrap().objects, 0);
        let next = ex.tick(D6 + 2 * DAY_MS + 120_000).await;
        assert_eq!(next[1].1.as_ref().unwrap().keys[0], "llmsec/reports/tenant=acme/day/2026-12-07.json");
    }

    #[tokio::test]
    async fn a_backfill_exports_a_range_and_leaves_positions_alone() {
        let s = store().await;
        s.record(&[event("acme", "b1", D6 + 1000), event("acme", "b2", D6 + DAY_MS + 1000)]).await.unwrap();
        let sink = Arc::new(Memory::default());
        let ex = Exporter::new(s.clone(), sink.clone(), plan(vec![ExportWhat::Events]), describe());
        let w = ex.export_range(D6, D6 + 2 * DAY_MS, D6 + 3 * DAY_MS).await.unwrap();
        assert_eq!(w.rows, 2);
        assert_eq!(
            w.keys,
            [
                rows_key(ex.plan(), "events", "acme", D6, D6 + DAY_MS),
                rows_key(ex.plan(), "events", "acme", D6 + DAY_MS, D6 + 2 * DAY_MS)
            ]
        );
        assert_eq!(s.export_position("events").await.unwrap(), None);
        assert!(matches!(ex.export_range(5, 5, 10).await, Err(ExportError::Range(_))));
    }
}
