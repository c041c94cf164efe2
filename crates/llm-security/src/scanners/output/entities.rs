//! Personal data in free text: person names, places, organisations
//! (the [`crate::ner`] tagger), street addresses and dates of birth
//! (its rules). Completions only: `validate_output` runs it,
//! `analyze_input` does not.
//!
//! Categories (and so placeholders): `person` → `[REDACTED_PERSON_1]`,
//! `location`, `organization`, `address` → `[REDACTED_ADDRESS_1]`,
//! `date_of_birth`. Evidence names the category and the length, never the
//! value.

use crate::config::PiiConfig;
use crate::ner::rules::{self, RuleKind};
use crate::ner::{EntityKind, Tagger};
use crate::scanner::{ScanContext, Scanner};
use crate::types::{Severity, Threat, ThreatType};

/// Reports names, places, organisations, addresses and dates of birth
/// (`sensitive_data`).
#[derive(Debug, Clone)]
pub struct EntityScanner {
    id: String,
    cfg: PiiConfig,
    min_confidence: f64,
    tagger: Option<&'static Tagger>,
}

impl EntityScanner {
    /// A scanner with this instance id for the entity types `cfg` enables,
    /// reporting tagger spans at or above `min_confidence`.
    pub fn new(id: impl Into<String>, cfg: &PiiConfig, min_confidence: f64) -> EntityScanner {
        let wants_tagger = cfg.person || cfg.location || cfg.organization;
        // The built-in model is checked by the crate's tests; were it
        // unreadable, the rules still run.
        let tagger = if wants_tagger { Tagger::builtin().ok() } else { None };
        EntityScanner { id: id.into(), cfg: cfg.clone(), min_confidence, tagger }
    }
}

struct Found {
    start: usize,
    end: usize,
    category: &'static str,
    severity: Severity,
    confidence: f64,
}

impl Scanner for EntityScanner {
    fn id(&self) -> &str {
        &self.id
    }

    fn scan(&self, cx: &ScanContext<'_>, out: &mut Vec<Threat>) {
        let text = cx.normalized.text();
        let cfg = &self.cfg;
        let mut found: Vec<Found> = Vec::new();
        // Rules first: an address or a date of birth wins over the
        // tagger's overlapping spans (a street named after a person).
        for m in rules::find(text) {
            let (category, severity, on) = match m.kind {
                RuleKind::Address => ("address", Severity::Medium, cfg.street_address),
                RuleKind::DateOfBirth => ("date_of_birth", Severity::Medium, cfg.date_of_birth),
                RuleKind::Person => ("person", Severity::Low, cfg.person),
                RuleKind::Location => ("location", Severity::Low, cfg.location),
            };
            if on && !found.iter().any(|f| m.start < f.end && f.start < m.end) {
                found.push(Found { start: m.start, end: m.end, category, severity, confidence: m.confidence });
            }
        }
        if let Some(tagger) = self.tagger {
            for e in tagger.tag(text) {
                let (category, on) = match e.kind {
                    EntityKind::Person => ("person", cfg.person),
                    EntityKind::Location => ("location", cfg.location),
                    EntityKind::Organization => ("organization", cfg.organization),
                };
                if on
                    && e.confidence >= self.min_confidence
                    && !found.iter().any(|f| e.start < f.end && f.start < e.end)
                {
                    found.push(Found {
                        start: e.start,
                        end: e.end,
                        category,
                        severity: Severity::Low,
                        confidence: e.confidence,
                    });
                }
            }
        }
        found.sort_by_key(|f| (f.start, f.end));
        for f in found {
            out.push(
                Threat::new(
                    ThreatType::SensitiveData,
                    f.category,
                    f.severity,
                    f.confidence,
                    cx.normalized.to_original(f.start, f.end),
                    format!("{} ({} chars)", f.category.replace('_', " "), text[f.start..f.end].chars().count()),
                    self.id.as_str(),
                )
                .with_rule(f.category),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SanitizeConfig, SecurityConfig};
    use crate::normalize::{NormalizeOptions, Normalized};
    use crate::{SecurityEngine, sanitize};

    fn scan(text: &str) -> Vec<(String, String)> {
        let cfg = PiiConfig { location: true, organization: true, ..PiiConfig::default() };
        let s = EntityScanner::new("entities", &cfg, 0.5);
        let n = Normalized::new(text, &NormalizeOptions::default());
        let cx = ScanContext { normalized: &n, output: None };
        let mut out = Vec::new();
        s.scan(&cx, &mut out);
        out.iter().map(|t| (t.category.clone(), text[t.span.start..t.span.end].to_owned())).collect()
    }

    #[test]
    fn a_name_an_address_and_a_date_of_birth() {
        let got = scan("Dear John Smith, born on 4 July 1976, we will ship to 221 Baker Street, London NW1 6XE.");
        assert!(got.contains(&("person".into(), "John Smith".into())), "{got:?}");
        assert!(got.contains(&("date_of_birth".into(), "4 July 1976".into())), "{got:?}");
        assert!(got.contains(&("address".into(), "221 Baker Street, London NW1 6XE".into())), "{got:?}");
    }

    #[test]
    fn types_that_are_off_are_not_reported() {
        let cfg = PiiConfig { person: false, street_address: false, ..PiiConfig::default() };
        let s = EntityScanner::new("entities", &cfg, 0.5);
        let text = "John Smith lives at 221 Baker Street.";
        let n = Normalized::new(text, &NormalizeOptions::default());
        let mut out = Vec::new();
        s.scan(&ScanContext { normalized: &n, output: None }, &mut out);
        assert!(out.iter().all(|t| t.category != "person" && t.category != "address"), "{out:?}");
    }

    #[test]
    fn redacting_a_name_an_address_and_a_phone_number_restores_exactly() {
        let cfg = SecurityConfig::default().with_sanitize(SanitizeConfig {
            reversible: true,
            strip_invisible: true,
            always: true,
        });
        let engine = SecurityEngine::with_config(cfg);
        let text =
            "Please call Maria Garcia at +1 415 555 0132 or visit her at 742 Evergreen Terrace, Springfield, OR 97403.";
        let v = engine.validate_output_sync(text).map_err(|e| e.to_string());
        let Ok(v) = v else { panic!("{v:?}") };
        let red = v.sanitized().unwrap_or_default().to_owned();
        // The crate README shows this example.
        assert_eq!(
            red,
            "Please call [REDACTED_PERSON_1] at [REDACTED_PHONE_NUMBER_1] or visit her at [REDACTED_ADDRESS_1]."
        );
        assert_eq!(sanitize::restore(&red, v.redactions()), text);
    }

    #[test]
    fn the_readme_output_example_redacts_a_name_an_address_and_an_email() {
        let engine = SecurityEngine::new();
        let v = engine.validate_output_sync(
            "Sure: Maria Garcia lives at 742 Evergreen Terrace, Springfield, OR 97403; mail jane.doe@example.com",
        );
        let Ok(v) = v else { panic!("{v:?}") };
        assert_eq!(
            v.sanitized(),
            Some("Sure: [REDACTED_PERSON_1] lives at [REDACTED_ADDRESS_1]; mail [REDACTED_EMAIL_1]")
        );
    }

    #[test]
    fn prompts_are_not_scanned_for_names() {
        let engine = SecurityEngine::new();
        let a = engine.analyze_input_sync("Maria Garcia lives at 742 Evergreen Terrace, Springfield.");
        let Ok(a) = a else { panic!("{a:?}") };
        assert!(a.threats().iter().all(|t| t.category != "person" && t.category != "address"), "{:?}", a.threats());
    }
}
