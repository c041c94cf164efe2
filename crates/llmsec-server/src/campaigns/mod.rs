//! Campaigns: threats and anomalies of different users and sessions
//! correlated by what they share.
//!
//! Every analysis that found threats, and every anomaly Sentinel opens,
//! is an observation. Each observation is filed under keys:
//!
//! - `template`: the prompt's near-duplicate fingerprint (the engine's
//!   MinHash over normalized character 5-grams, [`llm_security::intel::Fingerprint`]):
//!   small edits of one prompt share the first such prompt's key;
//! - `indicator`: the threat-intelligence entry matched (a known attack's
//!   id, a canary, an exfiltration domain), the rule of a high or critical
//!   finding, or the detector of an anomaly;
//! - `ip_range`: the client address's IPv4 /24 or IPv6 /48 (gateway calls
//!   and anomalies about an address).
//!
//! A key's group becomes a campaign (surfaced: stored, counted in
//! `llm_security_campaigns_total{kind}` and sent to webhooks as
//! `campaign.detected`) once it spans `min_subjects` distinct users or
//! sessions. A group with nothing new for `window_secs` is closed; the next
//! observation under its key starts another. Groups are kept in memory on
//! each replica, at most `max_open` (those gone quiet forgotten first, then
//! those never surfaced, then the least recently seen); surfaced campaigns
//! are stored and the active ones restored at start ([`CampaignBook::restore`]).
//! Groups not yet surfaced are not stored and start again after a restart.
//!
//! The files: `model` (the campaign record and its API view), `observe`
//! (what an analysis or anomaly is filed under: templates, indicators,
//! address ranges), `book` (the groups of one replica, bounded, and their
//! restore).

mod book;
mod model;
mod observe;

pub use book::{CampaignBook, Changed};
pub use model::{Campaign, CampaignKind, CampaignStatus};
pub use observe::{Indicator, Observation, indicators, ip_range};
use serde::{Deserialize, Serialize};

/// The `[campaigns]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignConfig {
    /// Correlate at all (default off).
    pub enabled: bool,
    /// Distinct users or sessions a group needs to be a campaign (2–100; default 3).
    pub min_subjects: usize,
    /// A group with nothing new for this long is closed (60 s to 30 days; default one day).
    pub window_secs: u64,
    /// Groups kept in memory per replica at most (default 10,000).
    pub max_open: usize,
}

impl Default for CampaignConfig {
    fn default() -> CampaignConfig {
        CampaignConfig { enabled: false, min_subjects: 3, window_secs: 86_400, max_open: 10_000 }
    }
}

impl CampaignConfig {
    /// Checks the section; errors name `campaigns.<field>`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(2..=MAX_LIST).contains(&self.min_subjects) {
            return Err(("campaigns.min_subjects".into(), format!("must be between 2 and {MAX_LIST}")));
        }
        if !(60..=30 * 86_400).contains(&self.window_secs) {
            return Err(("campaigns.window_secs".into(), "must be between 60 and 2592000".into()));
        }
        if !(1..=1_000_000).contains(&self.max_open) {
            return Err(("campaigns.max_open".into(), "must be between 1 and 1000000".into()));
        }
        Ok(())
    }
}

/// The webhook event a new campaign sends.
pub const DETECTED: &str = "campaign.detected";

/// Entries kept in each list of a campaign (users, sessions, …).
pub const MAX_LIST: usize = 100;
/// Threat categories counted per campaign.
const MAX_CATEGORIES: usize = 32;
/// Sample event and anomaly ids kept per campaign (the latest).
const MAX_SAMPLES: usize = 20;
/// Jaccard similarity at which two prompts are one template.
const TEMPLATE_SIMILARITY: f64 = llm_security::intel::DEFAULT_THRESHOLD;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_field() {
        let bad = CampaignConfig { min_subjects: 1, ..CampaignConfig::default() };
        assert_eq!(bad.validate().unwrap_err().0, "campaigns.min_subjects");
        let bad = CampaignConfig { window_secs: 5, ..CampaignConfig::default() };
        assert_eq!(bad.validate().unwrap_err().0, "campaigns.window_secs");
        let bad = CampaignConfig { max_open: 0, ..CampaignConfig::default() };
        assert_eq!(bad.validate().unwrap_err().0, "campaigns.max_open");
        assert!(CampaignConfig::default().validate().is_ok());
        let e = toml::from_str::<CampaignConfig>("enabled = true\nwindow = 3\n").unwrap_err().to_string();
        assert!(e.contains("window"), "{e}");
    }
}
