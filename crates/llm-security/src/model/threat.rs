//! Threat classification: what each severity level means (impact, response
//! time) and which threat categories (with their attack vectors) the engine
//! looks for. Both live in [`ThreatModel`](crate::ThreatModel).
//!
//! The descriptions are `&'static str` so that the seed's struct literals
//! compile as written; read from a file, each is allocated once and kept for
//! the life of the process (load a profile at start-up, not per request).

use serde::{Deserialize, Serialize};

use crate::config::SecurityConfig;
use crate::model::ProfileIssue;
use crate::types::{Severity, Threat, ThreatType};

/// A description read from a file, kept for the life of the process.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

macro_rules! classification {
    ($( $(#[$vm:meta])* $Variant:ident = $key:literal ),* $(,)?) => {
        /// What one severity level means. Each finding of that severity
        /// carries these as metadata (`severity_impact`, `severity_likelihood`,
        /// `severity_detection_difficulty`, `severity_mitigation_difficulty`,
        /// `severity_response_time`), so whoever routes it knows how fast to act.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        pub enum ThreatClassification {
            $(
                $(#[$vm])*
                #[serde(rename = $key)]
                $Variant {
                    /// What a threat of this level does.
                    impact: &'static str,
                    /// How likely it is.
                    likelihood: &'static str,
                    /// How hard it is to detect.
                    detection_difficulty: &'static str,
                    /// How hard it is to mitigate.
                    mitigation_difficulty: &'static str,
                    /// How fast to respond.
                    response_time: &'static str,
                },
            )*
        }

        /// [`ThreatClassification`] as read from a file.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        enum ClassificationFile {
            $(
                #[serde(rename = $key)]
                $Variant {
                    impact: String,
                    likelihood: String,
                    detection_difficulty: String,
                    mitigation_difficulty: String,
                    response_time: String,
                },
            )*
        }

        impl<'de> Deserialize<'de> for ThreatClassification {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                ClassificationFile::deserialize(d).map(Into::into)
            }
        }

        impl From<ClassificationFile> for ThreatClassification {
            fn from(f: ClassificationFile) -> Self {
                match f {
                    $( ClassificationFile::$Variant {
                        impact, likelihood, detection_difficulty, mitigation_difficulty, response_time,
                    } => ThreatClassification::$Variant {
                        impact: leak(impact),
                        likelihood: leak(likelihood),
                        detection_difficulty: leak(detection_difficulty),
                        mitigation_difficulty: leak(mitigation_difficulty),
                        response_time: leak(response_time),
                    }, )*
                }
            }
        }

        impl ThreatClassification {
            /// The severity level the variant classifies.
            pub fn severity(&self) -> Severity {
                match self { $( ThreatClassification::$Variant { .. } => Severity::$Variant, )* }
            }

            /// `(key, description)` pairs, as threats carry them.
            pub fn descriptions(&self) -> [(&'static str, &'static str); 5] {
                match self {
                    $( ThreatClassification::$Variant {
                        impact, likelihood, detection_difficulty, mitigation_difficulty, response_time,
                    } => [
                        ("severity_impact", *impact),
                        ("severity_likelihood", *likelihood),
                        ("severity_detection_difficulty", *detection_difficulty),
                        ("severity_mitigation_difficulty", *mitigation_difficulty),
                        ("severity_response_time", *response_time),
                    ], )*
                }
            }
        }
    };
}

classification! {
    /// [`Severity::Critical`].
    Critical = "critical",
    /// [`Severity::High`].
    High = "high",
    /// [`Severity::Medium`].
    Medium = "medium",
    /// [`Severity::Low`].
    Low = "low",
}

/// The severity levels the policy acts on, with what each means. The
/// lowest level given becomes every policy rule's `min_severity`: classify
/// `low` and low-severity findings block (or sanitize) too; classify only
/// `critical` and only critical ones do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThreatSeverity {
    /// Holds the `Critical` variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical_severity: Option<ThreatClassification>,
    /// Holds the `High` variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_severity: Option<ThreatClassification>,
    /// Holds the `Medium` variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub medium_severity: Option<ThreatClassification>,
    /// Holds the `Low` variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_severity: Option<ThreatClassification>,
}

impl ThreatSeverity {
    /// No level classified.
    pub fn new() -> ThreatSeverity {
        ThreatSeverity::default()
    }

    /// Classifies critical threats.
    pub fn with_critical_severity(mut self, c: ThreatClassification) -> Self {
        self.critical_severity = Some(c);
        self
    }

    /// Classifies high threats.
    pub fn with_high_severity(mut self, c: ThreatClassification) -> Self {
        self.high_severity = Some(c);
        self
    }

    /// Classifies medium threats.
    pub fn with_medium_severity(mut self, c: ThreatClassification) -> Self {
        self.medium_severity = Some(c);
        self
    }

    /// Classifies low threats.
    pub fn with_low_severity(mut self, c: ThreatClassification) -> Self {
        self.low_severity = Some(c);
        self
    }

    fn slots(&self) -> [(&'static str, Severity, Option<&ThreatClassification>); 4] {
        [
            ("critical_severity", Severity::Critical, self.critical_severity.as_ref()),
            ("high_severity", Severity::High, self.high_severity.as_ref()),
            ("medium_severity", Severity::Medium, self.medium_severity.as_ref()),
            ("low_severity", Severity::Low, self.low_severity.as_ref()),
        ]
    }

    /// The classification of a severity level, if given (and in its own slot).
    pub fn classification(&self, s: Severity) -> Option<&ThreatClassification> {
        self.slots().into_iter().find(|(_, level, _)| *level == s).and_then(|(_, _, c)| c).filter(|c| c.severity() == s)
    }

    /// Adds the classification of each threat's severity to its metadata.
    pub(crate) fn annotate(&self, threats: &mut [Threat]) {
        for t in threats {
            if let Some(c) = self.classification(t.severity) {
                for (k, v) in c.descriptions() {
                    t.metadata.insert(k.to_owned(), v.to_owned());
                }
            }
        }
    }

    fn apply(&self, cfg: &mut SecurityConfig, issues: &mut Vec<ProfileIssue>) {
        let mut lowest = None;
        for (slot, level, c) in self.slots() {
            let Some(c) = c else { continue };
            if c.severity() != level {
                issues.push(ProfileIssue::WrongVariant {
                    slot: format!("threat_model.severity.{slot}"),
                    expected: level.to_string(),
                    found: c.severity().to_string(),
                });
                continue;
            }
            lowest = Some(level);
        }
        if let Some(min) = lowest {
            for t in ThreatType::ALL {
                let mut rule = cfg.policy.rule(t);
                rule.min_severity = min;
                cfg.policy = cfg.policy.clone().with_rule(t, rule);
            }
        }
    }
}

macro_rules! category {
    ($( $(#[$vm:meta])* $Variant:ident = $key:literal ),* $(,)?) => {
        /// A threat category the engine looks for, with the attack vectors
        /// (rule families) to run. See [`ThreatModel::with_threat_categories`](crate::ThreatModel::with_threat_categories).
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        pub enum ThreatCategory {
            $(
                $(#[$vm])*
                #[serde(rename = $key)]
                $Variant {
                    /// Must be the threat type of the same name.
                    threat_type: ThreatType,
                    /// The families to run, by name ("Direct injection" is
                    /// `direct_injection`); empty: every family of the category.
                    attack_vectors: Vec<&'static str>,
                    /// What a threat of this category does (description).
                    impact: &'static str,
                    /// How likely it is (description).
                    likelihood: &'static str,
                },
            )*
        }

        /// [`ThreatCategory`] as read from a file.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        enum CategoryFile {
            $(
                #[serde(rename = $key)]
                $Variant { threat_type: ThreatType, attack_vectors: Vec<String>, impact: String, likelihood: String },
            )*
        }

        impl<'de> Deserialize<'de> for ThreatCategory {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                CategoryFile::deserialize(d).map(Into::into)
            }
        }

        impl From<CategoryFile> for ThreatCategory {
            fn from(f: CategoryFile) -> Self {
                match f {
                    $( CategoryFile::$Variant { threat_type, attack_vectors, impact, likelihood } => {
                        ThreatCategory::$Variant {
                            threat_type,
                            attack_vectors: attack_vectors.into_iter().map(leak).collect(),
                            impact: leak(impact),
                            likelihood: leak(likelihood),
                        }
                    } )*
                }
            }
        }

        impl ThreatCategory {
            /// The threat type the variant stands for.
            pub fn expected_type(&self) -> ThreatType {
                match self { $( ThreatCategory::$Variant { .. } => ThreatType::$Variant, )* }
            }

            fn parts(&self) -> (ThreatType, &[&'static str]) {
                match self { $( ThreatCategory::$Variant { threat_type, attack_vectors, .. } => (*threat_type, attack_vectors), )* }
            }
        }
    };
}

category! {
    /// Prompt injection: vectors are [`PromptInjectionThreat`](crate::PromptInjectionThreat) families.
    PromptInjection = "prompt_injection",
    /// Jailbreaks: vectors are [`JailbreakThreat`](crate::JailbreakThreat) families.
    Jailbreak = "jailbreak",
    /// Unicode attacks: vectors are [`UnicodeThreat`](crate::UnicodeThreat) switches.
    UnicodeAttack = "unicode_attack",
    /// Output manipulation: vectors `response_injection` (markup),
    /// `format_confusion` (format), `content_manipulation` (harmful content),
    /// `context_manipulation` (system-prompt leakage).
    OutputManipulation = "output_manipulation",
}

/// "Direct injection" → `direct_injection`.
fn vector_key(v: &str) -> String {
    let mut out = String::new();
    for w in v.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(&w.to_lowercase());
    }
    out
}

/// Keeps only the listed switches of a flag struct on (through its serde
/// form, so it works for every `flags!` struct); names the unknown ones.
fn restrict<T: Serialize + serde::de::DeserializeOwned>(
    flags: &mut T,
    names: &[&'static str],
    vectors: &[&'static str],
    category: &str,
    issues: &mut Vec<ProfileIssue>,
) {
    let wanted: Vec<String> = vectors.iter().map(|v| vector_key(v)).collect();
    for (v, key) in vectors.iter().zip(&wanted) {
        if !names.contains(&key.as_str()) {
            issues.push(ProfileIssue::UnknownVector {
                category: category.to_owned(),
                vector: (*v).to_owned(),
                known: names.join(", "),
            });
        }
    }
    let Ok(serde_json::Value::Object(mut map)) = serde_json::to_value(&*flags) else { return };
    for name in names {
        let on = wanted.iter().any(|w| w == name) && map.get(*name).and_then(|v| v.as_bool()).unwrap_or(false);
        map.insert((*name).to_owned(), serde_json::Value::Bool(on));
    }
    if let Ok(t) = serde_json::from_value(serde_json::Value::Object(map)) {
        *flags = t;
    }
}

/// Applies a category list: categories left out switch their detectors off;
/// listed vectors keep only their families.
pub(crate) fn apply_categories(list: &[ThreatCategory], cfg: &mut SecurityConfig, issues: &mut Vec<ProfileIssue>) {
    let listed = |t: ThreatType| list.iter().any(|c| c.expected_type() == t);
    cfg.prompt_injection_detection &= listed(ThreatType::PromptInjection);
    cfg.jailbreak_detection &= listed(ThreatType::Jailbreak);
    cfg.unicode_attack_detection &= listed(ThreatType::UnicodeAttack);
    if !listed(ThreatType::OutputManipulation) {
        cfg.output.format = false;
        cfg.output.markup = false;
    }
    for c in list {
        let (threat_type, vectors) = c.parts();
        let expected = c.expected_type();
        let name = expected.as_str();
        if threat_type != expected {
            issues.push(ProfileIssue::WrongVariant {
                slot: format!("threat_model.categories.{name}.threat_type"),
                expected: name.to_owned(),
                found: threat_type.as_str().to_owned(),
            });
            continue;
        }
        if vectors.is_empty() {
            continue;
        }
        let tm = &mut cfg.threat_model;
        match expected {
            ThreatType::PromptInjection => {
                let names: Vec<&'static str> = tm.prompt_injection.flags().into_iter().map(|(n, _)| n).collect();
                restrict(&mut tm.prompt_injection, &names, vectors, name, issues);
            }
            ThreatType::Jailbreak => {
                let names: Vec<&'static str> = tm.jailbreak.flags().into_iter().map(|(n, _)| n).collect();
                restrict(&mut tm.jailbreak, &names, vectors, name, issues);
            }
            ThreatType::UnicodeAttack => {
                let names: Vec<&'static str> = tm.unicode.flags().into_iter().map(|(n, _)| n).collect();
                restrict(&mut tm.unicode, &names, vectors, name, issues);
            }
            _ => {
                let out = &mut cfg.output;
                let known = ["response_injection", "format_confusion", "content_manipulation", "context_manipulation"];
                let wanted: Vec<String> = vectors.iter().map(|v| vector_key(v)).collect();
                for (v, key) in vectors.iter().zip(&wanted) {
                    if !known.contains(&key.as_str()) {
                        issues.push(ProfileIssue::UnknownVector {
                            category: name.to_owned(),
                            vector: (*v).to_owned(),
                            known: known.join(", "),
                        });
                    }
                }
                let has = |k: &str| wanted.iter().any(|w| w == k);
                out.markup &= has("response_injection");
                out.format &= has("format_confusion");
                out.harmful_content &= has("content_manipulation");
                out.system_prompt_leak &= has("context_manipulation");
            }
        }
    }
}

/// Applies the severity classification and the category list of the
/// config's threat model.
pub(crate) fn apply(cfg: &mut SecurityConfig, issues: &mut Vec<ProfileIssue>) {
    if let Some(s) = cfg.threat_model.severity.clone() {
        s.apply(cfg, issues);
    }
    if let Some(list) = cfg.threat_model.categories.clone() {
        apply_categories(&list, cfg, issues);
    }
}
