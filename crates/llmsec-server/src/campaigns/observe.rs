//! What the correlator sees of an analysis or an anomaly, and the keys it
//! is filed under besides its template: the indicators it matched and its
//! client's address range.

use std::net::IpAddr;

use llm_security::{Severity, Threat};
use llmsec_store::Millis;

/// The range of a client address: IPv4 /24, IPv6 /48 (an IPv4-mapped IPv6
/// address is its IPv4 range); `None` when `ip` is not an address.
pub fn ip_range(ip: &str) -> Option<String> {
    let ip = ip.trim();
    let addr: IpAddr = ip.parse().ok().or_else(|| ip.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))?;
    let v4 = |a: std::net::Ipv4Addr| {
        let o = a.octets();
        format!("{}.{}.{}.0/24", o[0], o[1], o[2])
    };
    Some(match addr {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(m) => v4(m),
            None => {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
    })
}

/// An indicator an observation carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    /// `intel.near_duplicate:<source>:<entry id>`, `intel.canary:<source>:<hash>`,
    /// `intel.exfiltration_domain:<source>:<domain>`, `rule:<rule id>`, `detector:<id>`.
    pub key: String,
    /// The feed source, for threat-intelligence indicators.
    pub source: Option<String>,
}

/// The indicators of an analysis's threats (`text` is the analysed text,
/// which their spans index): threat-intelligence matches, and the rule of
/// each high or critical finding.
pub fn indicators(threats: &[Threat], text: &str) -> Vec<Indicator> {
    let mut out: Vec<Indicator> = Vec::new();
    for t in threats {
        let found = if t.scanner == llm_security::intel::SCANNER_ID {
            let source = t.meta("intel_source").unwrap_or("unknown").to_owned();
            let what = match t.rule.as_deref() {
                Some("intel.near_duplicate") => t.meta("intel_id").map(str::to_owned),
                Some("intel.exfiltration_domain") => t.meta("intel_domain").map(str::to_owned),
                Some("intel.canary") => text.get(t.span.start..t.span.end).map(short_hash),
                _ => None,
            };
            // A near duplicate of an entry without id is grouped by its template.
            what.map(|w| Indicator {
                key: format!("{}:{source}:{w}", t.rule.as_deref().unwrap_or("intel")),
                source: Some(source),
            })
        } else if t.severity >= Severity::High {
            t.rule.as_ref().map(|r| Indicator { key: format!("rule:{r}"), source: None })
        } else {
            None
        };
        if let Some(i) = found
            && !out.iter().any(|o| o.key == i.key)
        {
            out.push(i);
        }
    }
    out
}

/// 16 hex digits of SHA-256: a canary is named without being repeated.
fn short_hash(s: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(s.as_bytes())[..8])
}

/// One analysis or anomaly, as the correlator sees it.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The security event, for an analysis.
    pub event_id: Option<&'a str>,
    /// The anomaly, for one.
    pub anomaly_id: Option<&'a str>,
    /// When (Sentinel's clock).
    pub at: Millis,
    /// The end user.
    pub user: Option<&'a str>,
    /// The conversation.
    pub session: Option<&'a str>,
    /// The application.
    pub application: Option<&'a str>,
    /// The client address.
    pub ip: Option<&'a str>,
    /// The prompt, for template matching.
    pub prompt: Option<&'a str>,
    /// What it matched.
    pub indicators: Vec<Indicator>,
    /// Its threat categories.
    pub categories: Vec<String>,
    /// Its worst severity.
    pub severity: Severity,
}

impl<'a> Observation<'a> {
    /// An analysis with threats; `prompt` for input (not completions).
    #[allow(clippy::too_many_arguments)]
    pub fn analysis(
        tenant: &'a str,
        event_id: &'a str,
        at: Millis,
        (user, session, application): (Option<&'a str>, Option<&'a str>, Option<&'a str>),
        ip: Option<&'a str>,
        prompt: Option<&'a str>,
        text: &str,
        threats: &[Threat],
    ) -> Observation<'a> {
        let mut categories: Vec<String> = threats.iter().map(|t| t.kind.as_str().to_owned()).collect();
        categories.sort();
        categories.dedup();
        Observation {
            tenant,
            event_id: Some(event_id),
            anomaly_id: None,
            at,
            user,
            session,
            application,
            ip,
            prompt,
            indicators: indicators(threats, text),
            categories,
            severity: threats.iter().map(|t| t.severity).max().unwrap_or(Severity::Low),
        }
    }

    /// An anomaly Sentinel opened: its detector is the indicator; its
    /// entity a subject (or the address, for `ip` entities).
    pub fn anomaly(tenant: &'a str, a: &'a llm_sentinel::Anomaly) -> Observation<'a> {
        use llm_sentinel::detector::EntityKind as E;
        let id = a.affected_entity.id.as_str();
        let of = |k: E| (a.affected_entity.kind == k).then_some(id);
        Observation {
            tenant,
            event_id: None,
            anomaly_id: Some(&a.id),
            at: a.timestamp,
            user: of(E::User),
            session: of(E::Session),
            application: of(E::Application).or(a.context.application_id.as_deref()),
            ip: of(E::Ip),
            prompt: None,
            indicators: vec![Indicator { key: format!("detector:{}", a.detector_id), source: None }],
            categories: vec![format!("anomaly:{}", a.detector_type.as_str())],
            severity: match a.severity {
                llm_sentinel::Severity::Info => Severity::Low,
                llm_sentinel::Severity::Warning => Severity::Medium,
                llm_sentinel::Severity::Critical => Severity::Critical,
            },
        }
    }
}
