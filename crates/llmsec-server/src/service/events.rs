//! Reading the stored security events: the filters REST and GraphQL share,
//! opaque cursors, and pages bounded by a byte budget (read from the store
//! in chunks sized to that budget, so a page of large events is never held
//! whole).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use llmsec_store::{EventQuery, Millis, SecurityEvent, Store};

use super::ServiceError;

/// The opaque cursor after `e`.
pub fn cursor_of(e: &SecurityEvent) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", e.timestamp, e.id))
}

/// Reads a cursor back; `None` when it was not made by [`cursor_of`].
pub fn parse_cursor(c: &str) -> Option<(Millis, String)> {
    let raw = URL_SAFE_NO_PAD.decode(c).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (ts, id) = s.split_once(':')?;
    Some((ts.parse().ok()?, id.to_owned()))
}

/// Builds the store query from the filters shared by REST and GraphQL.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    /// Event type.
    pub event_type: Option<String>,
    /// User.
    pub user_id: Option<String>,
    /// Session.
    pub session_id: Option<String>,
    /// Verdict.
    pub verdict: Option<String>,
    /// Lowest confidence.
    pub min_confidence: Option<f64>,
    /// From (inclusive).
    pub since: Option<Millis>,
    /// To (exclusive).
    pub until: Option<Millis>,
    /// A threat type or category the event must carry.
    pub threat: Option<String>,
}

impl Filters {
    /// Checks enumerated values.
    pub fn validate(&self, prefix: &str) -> Result<(), ServiceError> {
        if let Some(t) = &self.event_type
            && !matches!(t.as_str(), "input_analysis" | "context_analysis" | "output_validation")
        {
            return Err(ServiceError::field(
                format!("{prefix}event_type"),
                "must be input_analysis, context_analysis or output_validation",
            ));
        }
        if let Some(v) = &self.verdict
            && !matches!(v.as_str(), "allow" | "sanitize" | "block")
        {
            return Err(ServiceError::field(format!("{prefix}verdict"), "must be allow, sanitize or block"));
        }
        if let Some(t) = &self.threat
            && (t.is_empty()
                || t.len() > 64
                || !t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
        {
            return Err(ServiceError::field(
                format!("{prefix}threat"),
                "must be a threat type or category: 1-64 of a-z, 0-9 and _",
            ));
        }
        if let Some(c) = self.min_confidence
            && !(0.0..=1.0).contains(&c)
        {
            return Err(ServiceError::field(format!("{prefix}min_confidence"), "must be in [0, 1]"));
        }
        Ok(())
    }

    /// The store query for a tenant.
    pub fn query(self, tenant: &str, before: Option<(Millis, String)>, limit: u32) -> EventQuery {
        EventQuery {
            tenant: tenant.to_owned(),
            event_type: self.event_type,
            user_id: self.user_id,
            session_id: self.session_id,
            verdict: self.verdict,
            min_confidence: self.min_confidence,
            since: self.since,
            until: self.until,
            threat: self.threat,
            before,
            limit,
        }
    }
}

/// About how many bytes an event takes in an answer.
fn approx_bytes(e: &SecurityEvent) -> usize {
    // Ids, type, verdict, timestamp and the JSON around them.
    const FIXED: usize = 256;
    FIXED
        + e.id.len()
        + e.input.as_deref().map_or(0, str::len)
        + e.threats.to_string().len()
        + e.user_id.as_deref().map_or(0, str::len)
        + e.session_id.as_deref().map_or(0, str::len)
}

/// A page of events.
#[derive(Debug)]
pub(crate) struct Page {
    /// The events, newest first.
    pub events: Vec<SecurityEvent>,
    /// More events follow the last one.
    pub more: bool,
}

/// Reads up to `limit` events of `query` (newest first) and stops before the
/// event that would take the page past `*bytes`, which is reduced by what
/// the page holds. An event that does not fit is still returned alone when
/// `may_overrun` (the request has returned nothing yet), so that paging
/// always moves on; otherwise an empty page is an error naming `field`.
pub(crate) async fn page(
    store: &dyn Store,
    mut query: EventQuery,
    limit: u32,
    bytes: &mut usize,
    may_overrun: bool,
    field: &str,
) -> Result<Page, ServiceError> {
    const FIRST_CHUNK: u32 = 20;
    const MAX_CHUNK: u32 = 200;
    let mut events: Vec<SecurityEvent> = Vec::new();
    let mut taken = 0usize;
    let mut chunk = limit.min(FIRST_CHUNK);
    loop {
        // One more than the chunk tells whether more follow.
        query.limit = chunk + 1;
        let rows = store.events(&query).await?;
        let more_rows = rows.len() as u32 > chunk;
        for e in rows.into_iter().take(chunk as usize) {
            let size = approx_bytes(&e);
            if size > *bytes && !(events.is_empty() && may_overrun) {
                if events.is_empty() {
                    return Err(ServiceError::field(
                        field,
                        "the events this request already returned fill limits.page_bytes; ask for more in another request",
                    ));
                }
                return Ok(Page { events, more: true });
            }
            *bytes = bytes.saturating_sub(size);
            taken += size;
            events.push(e);
        }
        let n = events.len() as u32;
        if !more_rows || n >= limit {
            return Ok(Page { events, more: more_rows });
        }
        query.before = events.last().map(|e| (e.timestamp, e.id.clone()));
        // Size the next chunk to what is left, by the events seen so far.
        let average = (taken / events.len().max(1)).max(1);
        chunk = u32::try_from(*bytes / average).unwrap_or(u32::MAX).clamp(1, MAX_CHUNK).min(limit - n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let e = SecurityEvent {
            id: "0190-abc".into(),
            tenant: "t".into(),
            event_type: "input_analysis".into(),
            input: None,
            threats: serde_json::json!([]),
            confidence: 0.0,
            verdict: "allow".into(),
            timestamp: 1_700_000_000_123,
            user_id: None,
            session_id: None,
            context_kind: None,
            analysis_us: None,
        };
        assert_eq!(parse_cursor(&cursor_of(&e)), Some((1_700_000_000_123, "0190-abc".into())));
        assert_eq!(parse_cursor("!!"), None);
        assert_eq!(parse_cursor(&URL_SAFE_NO_PAD.encode("nocolon")), None);
    }
}
