//! The campaign record as stored, and as the API answers it.

use std::collections::BTreeMap;

use llm_security::Severity;
use llmsec_store::{CampaignRow, Millis};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What a campaign's observations share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignKind {
    /// Near-duplicate prompts.
    Template,
    /// The same feed entry, canary, exfiltration domain, rule or detector.
    Indicator,
    /// The same IPv4 /24 or IPv6 /48.
    IpRange,
}

impl CampaignKind {
    /// Every kind.
    pub const ALL: [CampaignKind; 3] = [CampaignKind::Template, CampaignKind::Indicator, CampaignKind::IpRange];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignKind::Template => "template",
            CampaignKind::Indicator => "indicator",
            CampaignKind::IpRange => "ip_range",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<CampaignKind> {
        CampaignKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Still seen within the window.
    Active,
    /// Quiet past the window, or closed by an analyst.
    Closed,
}

impl CampaignStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Active => "active",
            CampaignStatus::Closed => "closed",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<CampaignStatus> {
        [CampaignStatus::Active, CampaignStatus::Closed].into_iter().find(|k| k.as_str() == s)
    }
}

/// One campaign as stored (the body of its row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    /// A UUIDv7.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// What its observations share.
    pub kind: CampaignKind,
    /// The shared thing: a template's signature name, an indicator, a range.
    pub key: String,
    /// The first observation's time.
    pub first_seen: Millis,
    /// The last observation's time.
    pub last_seen: Millis,
    /// Observations counted.
    pub events: u64,
    /// Distinct users (the first [`MAX_LIST`](super::MAX_LIST)).
    pub users: Vec<String>,
    /// Distinct sessions (the first [`MAX_LIST`](super::MAX_LIST)).
    pub sessions: Vec<String>,
    /// Distinct applications (the first [`MAX_LIST`](super::MAX_LIST)).
    pub applications: Vec<String>,
    /// Distinct client ranges (the first [`MAX_LIST`](super::MAX_LIST)).
    pub ip_ranges: Vec<String>,
    /// Threat-intelligence sources of the indicators matched.
    pub feed_sources: Vec<String>,
    /// Threat types (and `anomaly:<detector type>`) with their counts.
    pub categories: BTreeMap<String, u64>,
    /// The worst severity seen.
    pub severity: Severity,
    /// Active or closed.
    pub status: CampaignStatus,
    /// The latest security event ids.
    pub sample_events: Vec<String>,
    /// The latest anomaly ids.
    pub sample_anomalies: Vec<String>,
    /// Analyst's attribution: who is behind it.
    pub actor: Option<String>,
    /// Analyst's notes.
    pub notes: Option<String>,
    /// Analyst's confidence in the attribution, `[0, 1]`.
    pub confidence: Option<f64>,
    /// When an analyst last changed it.
    pub updated_by: Option<String>,
    /// A template's MinHash signature, so a restart matches new prompts to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature: Vec<u64>,
}

impl Campaign {
    /// Distinct users or sessions, whichever is more.
    pub fn subjects(&self) -> usize {
        self.users.len().max(self.sessions.len())
    }

    /// The categories, most frequent first (ties by name), at most `n`.
    pub fn top_categories(&self, n: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.categories.iter().map(|(k, c)| (k.clone(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// The row it is stored as.
    pub fn row(&self) -> CampaignRow {
        CampaignRow {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            kind: self.kind.as_str().to_owned(),
            key: self.key.clone(),
            status: self.status.as_str().to_owned(),
            severity: self.severity.as_str().to_owned(),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            events: i64::try_from(self.events).unwrap_or(i64::MAX),
            body: serde_json::to_string(self).unwrap_or_default(),
        }
    }

    /// The campaign a row holds.
    pub fn from_row(row: &CampaignRow) -> Result<Campaign, serde_json::Error> {
        serde_json::from_str(&row.body)
    }

    /// As answered by the API; `samples` adds the sample ids.
    pub fn view(&self, samples: bool) -> serde_json::Value {
        let time = |t: Millis| crate::time::rfc3339(t).unwrap_or_default();
        let mut v = json!({
            "id": self.id,
            "kind": self.kind.as_str(),
            "key": self.key,
            "status": self.status.as_str(),
            "severity": self.severity.as_str(),
            "first_seen": time(self.first_seen),
            "last_seen": time(self.last_seen),
            "event_count": self.events,
            "user_count": self.users.len(),
            "session_count": self.sessions.len(),
            "users": self.users,
            "sessions": self.sessions,
            "applications": self.applications,
            "ip_ranges": self.ip_ranges,
            "top_categories": self.top_categories(5).into_iter()
                .map(|(category, count)| json!({"category": category, "count": count}))
                .collect::<Vec<_>>(),
            "attribution": {
                "observed": {
                    "ip_ranges": self.ip_ranges,
                    "applications": self.applications,
                    "feed_sources": self.feed_sources,
                },
                "actor": self.actor,
                "notes": self.notes,
                "confidence": self.confidence,
                "updated_by": self.updated_by,
            },
        });
        if samples {
            v["sample_event_ids"] = json!(self.sample_events);
            v["sample_anomaly_ids"] = json!(self.sample_anomalies);
        }
        v
    }
}
