//! `[privacy]`: the declared purpose and lawful basis of each kind of
//! record the server stores (purpose limitation). The store stamps each new
//! security event and telemetry event with its kind's purpose, and the
//! record of processing ([`crate::service::privacy`]) lists them all.
//!
//! ```toml
//! [privacy]
//! require_purpose = true        # refuse to start while a stored kind has none
//! controller = "Example Ltd, privacy@example.com"
//! [privacy.purposes.security_events]
//! purpose = "security_monitoring"
//! lawful_basis = "legitimate_interests"
//! [privacy.purposes.telemetry]
//! purpose = "abuse_investigation"
//! lawful_basis = "legitimate_interests"
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The kinds of record the server stores, as `[privacy.purposes]` names them.
pub const STORED_KINDS: [&str; 6] =
    ["security_events", "telemetry", "anomalies", "deliveries", "quarantine", "audit_log"];

/// GDPR Art. 6(1) lawful bases, as `lawful_basis` names them.
pub const LAWFUL_BASES: [&str; 6] =
    ["consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interests"];

/// The `[privacy]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Refuse to start while a stored kind has no declared purpose.
    pub require_purpose: bool,
    /// The controller (name and contact) the record of processing names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// Each stored kind's purpose (keys: [`STORED_KINDS`]).
    pub purposes: BTreeMap<String, Purpose>,
}

/// Why one kind of record is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purpose {
    /// A tag: lower-case letters, digits and `_` (`security_monitoring`).
    pub purpose: String,
    /// One of [`LAWFUL_BASES`].
    pub lawful_basis: String,
    /// What the purpose means, for people reading the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl PrivacyConfig {
    /// Checks kinds, tags and bases, and (with `require_purpose`) that
    /// every stored kind has a purpose.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: String, message: String| Err(ConfigError::Invalid { field, message });
        for (kind, p) in &self.purposes {
            let field = format!("privacy.purposes.{kind}");
            if !STORED_KINDS.contains(&kind.as_str()) {
                return bad(field, format!("unknown stored kind; known: {}", STORED_KINDS.join(", ")));
            }
            let tag_ok = (1..=64).contains(&p.purpose.len())
                && p.purpose.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !tag_ok {
                return bad(format!("{field}.purpose"), "must be 1-64 of a-z, 0-9 and _".into());
            }
            if !LAWFUL_BASES.contains(&p.lawful_basis.as_str()) {
                return bad(format!("{field}.lawful_basis"), format!("must be one of {}", LAWFUL_BASES.join(", ")));
            }
        }
        if self.require_purpose
            && let Some(missing) = STORED_KINDS.iter().find(|k| !self.purposes.contains_key(**k))
        {
            return bad(
                format!("privacy.purposes.{missing}"),
                "no purpose declared, and privacy.require_purpose is on".into(),
            );
        }
        Ok(())
    }

    /// The purpose of one stored kind, if declared.
    pub fn purpose(&self, kind: &str) -> Option<&Purpose> {
        self.purposes.get(kind)
    }

    /// The purposes the store stamps on new rows.
    pub fn stored_purposes(&self) -> llmsec_store::Purposes {
        llmsec_store::Purposes {
            events: self.purpose("security_events").map(|p| p.purpose.clone()),
            telemetry: self.purpose("telemetry").map(|p| p.purpose.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purpose(tag: &str, basis: &str) -> Purpose {
        Purpose { purpose: tag.into(), lawful_basis: basis.into(), description: None }
    }

    #[test]
    fn required_purposes_name_the_first_kind_missing() {
        let mut c = PrivacyConfig { require_purpose: true, ..Default::default() };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("privacy.purposes.security_events:"), "{err}");
        for k in STORED_KINDS {
            c.purposes.insert(k.into(), purpose("security_monitoring", "legitimate_interests"));
        }
        c.validate().unwrap();
        c.purposes.remove("audit_log");
        assert!(c.validate().unwrap_err().to_string().starts_with("privacy.purposes.audit_log:"));
        c.require_purpose = false;
        c.validate().unwrap();
    }

    #[test]
    fn unknown_kinds_bad_tags_and_bases_are_named() {
        let with = |kind: &str, p: Purpose| PrivacyConfig {
            purposes: [(kind.to_owned(), p)].into_iter().collect(),
            ..Default::default()
        };
        let e = with("prompts", purpose("x", "consent")).validate().unwrap_err().to_string();
        assert!(e.starts_with("privacy.purposes.prompts: unknown stored kind"), "{e}");
        let e = with("telemetry", purpose("Not A Tag", "consent")).validate().unwrap_err().to_string();
        assert!(e.starts_with("privacy.purposes.telemetry.purpose:"), "{e}");
        let e = with("telemetry", purpose("ok", "because")).validate().unwrap_err().to_string();
        assert!(e.starts_with("privacy.purposes.telemetry.lawful_basis:"), "{e}");
        let ok = with("telemetry", purpose("abuse_investigation", "legitimate_interests"));
        ok.validate().unwrap();
        assert_eq!(ok.stored_purposes().telemetry.as_deref(), Some("abuse_investigation"));
        assert_eq!(ok.stored_purposes().events, None);
    }

    #[test]
    fn the_section_reads_from_toml_and_names_unknown_keys() {
        let c: PrivacyConfig = toml::from_str(
            "require_purpose = true\n[purposes.audit_log]\npurpose = \"accountability\"\nlawful_basis = \"legal_obligation\"\n",
        )
        .unwrap();
        assert_eq!(c.purpose("audit_log").unwrap().lawful_basis, "legal_obligation");
        let e = toml::from_str::<PrivacyConfig>(
            "[purposes.audit_log]\npurpose = \"a\"\nlawful_basis = \"consent\"\nttl = 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ttl"), "{e}");
    }
}
