//! The security model of the published docs (defense in depth, zero trust,
//! validation, detection, response, policies, compliance, monitoring,
//! governance) as configuration: the seed's types, variants and builders,
//! and a [`SecurityProfile`] that holds them all, loadable from TOML, YAML
//! or JSON with unknown keys named.
//!
//! Every switch has one [`disposition`]:
//! - **engine**: it turns engine controls ([`Knob`]s: scanners, normalizer
//!   steps, policy actions, redundant checks) on or off;
//! - **server**: only `llmsec serve` can provide it; on, it is listed by
//!   [`SecurityProfile::server_requirements`] for the server to check;
//! - **refused**: the build cannot honour it; on, it is a [`ProfileIssue`].
//!
//! The seed's builders are infallible (`SecurityEngine::new().with_…`), so
//! a refusal cannot surface where the switch is set. Instead the engine
//! keeps the profile and fails closed: while any issue stands,
//! [`SecurityEngine::profile_check`](crate::SecurityEngine::profile_check)
//! returns it and every analysis (`analyze_input`, `analyze_context`,
//! `validate_output`) returns [`Error::Profile`]
//! naming each refused switch (`sanitize` and `redact_for_storage` keep
//! working: they only redact).
//! [`SecurityEngine::try_with_profile`](crate::SecurityEngine::try_with_profile)
//! returns the same error at once. Nothing is accepted and ignored.

#[macro_use]
mod macros;

mod builders;
mod compliance;
mod detection;
mod governance;
mod layers;
mod monitoring;
mod policy;
mod response;
pub(crate) mod threat;
mod validation;
mod wiring;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use compliance::{ComplianceControl, IndustryStandards, RegulatoryCompliance, StandardsControl};
pub use detection::{AnalysisControl, BehavioralAnalysis, DetectionControl, ThreatDetection};
pub use governance::{
    ArchitecturePrinciple, DesignPrinciple, GovernanceControl, SOCControl, SecurityArchitecture, SecurityByDesign,
    SecurityGovernance, SecurityOperationsCenter,
};
pub use layers::{ContinuousMonitoring, MultiLayerSecurity, RedundantValidation, SecurityLayer, ZeroTrustConfig};
pub use monitoring::{
    AnalyticsControl, MonitoringControl, PerformanceMonitoring, ReportingControl, SecurityReporting, ThreatAnalytics,
    ThreatMonitoring,
};
pub use policy::{ContentPolicy, ContentSecurityPolicy, PrivacyControl, PrivacyPolicy};
pub use response::{IncidentResponse, MitigationControl, ResponseControl, ThreatMitigation};
pub use threat::{ThreatCategory, ThreatClassification, ThreatSeverity};
pub use validation::{InputValidation, OutputValidation, ValidationControl};
pub use wiring::{Disposition, Knob, ServerRequirement, disposition};

pub(crate) use wiring::Runtime;

use crate::config::SecurityConfig;
use crate::error::Error;

/// Why a profile cannot run as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "issue", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProfileIssue {
    /// A switch the build cannot honour is on.
    Refused {
        /// The switch's path, `section.slot.switch`.
        flag: String,
        /// What the build lacks.
        reason: String,
    },
    /// A slot holds another variant than the one its builder expects.
    WrongVariant {
        /// The slot's path.
        slot: String,
        /// The variant the slot expects.
        expected: String,
        /// The variant it holds.
        found: String,
    },
    /// A switch that needs another one to mean anything.
    Incomplete {
        /// The switch's path.
        flag: String,
        /// What it needs.
        needs: String,
    },
    /// An attack vector that names no family of its category.
    UnknownVector {
        /// The category.
        category: String,
        /// The vector as written.
        vector: String,
        /// The names it could have been.
        known: String,
    },
}

impl fmt::Display for ProfileIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileIssue::Refused { flag, reason } => write!(f, "`{flag}` is on but refused: {reason}"),
            ProfileIssue::WrongVariant { slot, expected, found } => {
                write!(f, "`{slot}` holds `{found}`, expected `{expected}`")
            }
            ProfileIssue::Incomplete { flag, needs } => write!(f, "`{flag}` is on but needs {needs}"),
            ProfileIssue::UnknownVector { category, vector, known } => {
                write!(f, "attack vector `{vector}` of `{category}` names no family (known: {known})")
            }
        }
    }
}

/// Every issue of a profile, listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileError {
    /// The issues, in profile order.
    pub issues: Vec<ProfileIssue>,
}

impl ProfileError {
    /// The paths of the refused switches.
    pub fn refused(&self) -> Vec<&str> {
        self.issues
            .iter()
            .filter_map(|i| match i {
                ProfileIssue::Refused { flag, .. } => Some(flag.as_str()),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the security profile cannot run as written ({} issues): ", self.issues.len())?;
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProfileError {}

/// The switches set in a profile, collected by the sections' `visit`.
#[derive(Debug, Default)]
pub(crate) struct FlagSet {
    flags: Vec<(String, bool)>,
    issues: Vec<ProfileIssue>,
}

impl FlagSet {
    pub(crate) fn flag(&mut self, path: &str, on: bool) {
        self.flags.push((path.to_owned(), on));
    }

    pub(crate) fn slot(
        &mut self,
        section: &str,
        slot: &str,
        expected: &str,
        found: &str,
        flags: &[(&'static str, bool)],
    ) {
        if expected != found {
            self.issues.push(ProfileIssue::WrongVariant {
                slot: format!("{section}.{slot}"),
                expected: expected.to_owned(),
                found: found.to_owned(),
            });
            return;
        }
        for (name, on) in flags {
            self.flags.push((format!("{section}.{slot}.{name}"), *on));
        }
    }
}

macro_rules! profile {
    ($( $(#[$m:meta])* $field:ident : $Ty:ident ),* $(,)?) => {
        /// The whole security model: one optional section per top-level
        /// type of the docs. An unset section changes nothing. As a file
        /// (TOML, YAML or JSON) each section is a table named like the
        /// field; unknown keys are an error naming them.
        ///
        /// ```
        /// use llm_security::SecurityProfile;
        ///
        /// let p = SecurityProfile::from_toml_str(r#"
        /// [zero_trust_config]
        /// audit_everything = true
        /// never_trust = true
        ///
        /// [input_validation.encoding_validation.encoding_validation]
        /// unicode_normalization = true
        /// encoding_standardization = true
        /// character_filtering = true
        /// encoding_validation = true
        /// "#)?;
        /// assert!(p.check().is_ok());
        /// assert_eq!(p.server_requirements().len(), 1);
        /// let e = SecurityProfile::from_toml_str("[zero_trust_config]\nnever_trusts = true\n").unwrap_err();
        /// assert!(e.to_string().contains("never_trusts"));
        /// # Ok::<(), llm_security::Error>(())
        /// ```
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct SecurityProfile {
            $(
                $(#[$m])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $field: Option<$Ty>,
            )*
        }

        impl SecurityProfile {
            /// Every section with every switch set to `on`: the shape of
            /// the whole document (handy as a template).
            pub fn every_flag(on: bool) -> SecurityProfile {
                SecurityProfile { $( $field: Some($Ty::every(on)), )* }
            }

            fn collect(&self) -> FlagSet {
                let mut set = FlagSet::default();
                $( if let Some(s) = &self.$field { s.visit(&mut set); } )*
                set
            }
        }
    };
}

profile! {
    /// Defense in depth.
    multi_layer_security: MultiLayerSecurity,
    /// Redundant validation.
    redundant_validation: RedundantValidation,
    /// Zero trust.
    zero_trust_config: ZeroTrustConfig,
    /// Continuous monitoring.
    continuous_monitoring: ContinuousMonitoring,
    /// Input validation.
    input_validation: InputValidation,
    /// Output validation.
    output_validation: OutputValidation,
    /// Threat detection.
    threat_detection: ThreatDetection,
    /// Behavioral analysis.
    behavioral_analysis: BehavioralAnalysis,
    /// Threat mitigation.
    threat_mitigation: ThreatMitigation,
    /// Incident response.
    incident_response: IncidentResponse,
    /// Content security policy.
    content_security_policy: ContentSecurityPolicy,
    /// Privacy policy.
    privacy_policy: PrivacyPolicy,
    /// Regulatory compliance.
    regulatory_compliance: RegulatoryCompliance,
    /// Industry standards.
    industry_standards: IndustryStandards,
    /// Threat monitoring.
    threat_monitoring: ThreatMonitoring,
    /// Performance monitoring.
    performance_monitoring: PerformanceMonitoring,
    /// Threat analytics.
    threat_analytics: ThreatAnalytics,
    /// Security reporting.
    security_reporting: SecurityReporting,
    /// Security by design.
    security_by_design: SecurityByDesign,
    /// Security architecture.
    security_architecture: SecurityArchitecture,
    /// Security operations center.
    security_operations_center: SecurityOperationsCenter,
    /// Security governance.
    security_governance: SecurityGovernance,
}

/// A profile evaluated against an engine config.
#[derive(Debug, Clone)]
pub(crate) struct Evaluated {
    pub config: SecurityConfig,
    pub runtime: Runtime,
    pub issues: Vec<ProfileIssue>,
}

impl SecurityProfile {
    /// A profile with nothing set.
    pub fn new() -> SecurityProfile {
        SecurityProfile::default()
    }

    /// `(path, on)` for every switch set, in document order. Paths are
    /// `section.slot.switch` (`section.switch` for plain sections).
    pub fn flags(&self) -> Vec<(String, bool)> {
        self.collect().flags
    }

    /// The server controls the profile asks for, each with the switches
    /// that ask for it. `llmsec serve` must provide every one.
    pub fn server_requirements(&self) -> BTreeMap<ServerRequirement, Vec<String>> {
        let mut out: BTreeMap<ServerRequirement, Vec<String>> = BTreeMap::new();
        for (path, on) in self.flags() {
            if let (true, Some(Disposition::Server(r))) = (on, disposition(&path)) {
                out.entry(r).or_default().push(path);
            }
        }
        out
    }

    /// The engine controls the profile sets: a knob named by several
    /// switches is on only if every one of them is.
    pub fn knobs(&self) -> BTreeMap<Knob, bool> {
        let mut out = BTreeMap::new();
        for (path, on) in self.flags() {
            if let Some(Disposition::Engine(knobs)) = disposition(&path) {
                for k in knobs {
                    let v = out.entry(*k).or_insert(true);
                    *v &= on;
                }
            }
        }
        out
    }

    fn issues(&self) -> Vec<ProfileIssue> {
        let set = self.collect();
        let mut issues = set.issues;
        for (path, on) in &set.flags {
            match disposition(path) {
                Some(Disposition::Refused(why)) if *on => {
                    issues.push(ProfileIssue::Refused { flag: path.clone(), reason: why.to_owned() })
                }
                Some(_) => {}
                None => issues.push(ProfileIssue::Refused {
                    flag: path.clone(),
                    reason: "no control is known for this switch".to_owned(),
                }),
            }
        }
        let knobs = self.knobs();
        let on = |k: Knob| knobs.get(&k).copied().unwrap_or(false);
        let check = on(Knob::FinalRecheck) || on(Knob::Consistency);
        let stage = on(Knob::RecheckInput) || on(Knob::RecheckOutput);
        if check && !stage {
            issues.push(ProfileIssue::Incomplete {
                flag: "redundant_validation.final_validation / validation_consistency".to_owned(),
                needs: "a stage: redundant_validation.input_validation or output_validation".to_owned(),
            });
        }
        if stage && !check {
            issues.push(ProfileIssue::Incomplete {
                flag: "redundant_validation.input_validation / output_validation".to_owned(),
                needs: "a check: redundant_validation.final_validation or validation_consistency".to_owned(),
            });
        }
        issues
    }

    /// Every refused switch, wrong variant and incomplete switch of the
    /// profile alone (the threat model's categories and severity levels are
    /// checked with the config, by the engine).
    pub fn check(&self) -> Result<(), ProfileError> {
        let issues = self.issues();
        if issues.is_empty() { Ok(()) } else { Err(ProfileError { issues }) }
    }

    /// The config the engine runs with this profile, and what it does
    /// beyond the config.
    pub(crate) fn evaluate(&self, base: &SecurityConfig, intel_loaded: bool) -> Evaluated {
        let mut config = base.clone();
        let mut issues = Vec::new();
        threat::apply(&mut config, &mut issues);
        let mut runtime = Runtime::default();
        for (knob, on) in self.knobs() {
            wiring::apply(knob, on, &mut config, &mut runtime);
        }
        issues.extend(self.issues());
        if runtime.intel && !intel_loaded && self.knobs().get(&Knob::ThreatIntel) == Some(&true) {
            issues.push(ProfileIssue::Incomplete {
                flag: "threat intelligence (threat_feeds / threat_intelligence)".to_owned(),
                needs: "a loaded feed: SecurityEngine::with_threat_intel".to_owned(),
            });
        }
        Evaluated { config, runtime, issues }
    }

    /// Parses a TOML document.
    pub fn from_toml_str(s: &str) -> Result<SecurityProfile, Error> {
        toml::from_str(s).map_err(|e| Error::Config(e.to_string()))
    }

    /// Parses a YAML document.
    pub fn from_yaml_str(s: &str) -> Result<SecurityProfile, Error> {
        serde_norway::from_str(s).map_err(|e| Error::Config(e.to_string()))
    }

    /// Parses a JSON document.
    pub fn from_json_str(s: &str) -> Result<SecurityProfile, Error> {
        serde_json::from_str(s).map_err(|e| Error::Config(e.to_string()))
    }

    /// Reads a `.toml`, `.yaml`/`.yml` or `.json` file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<SecurityProfile, Error> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        let parsed = match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
            "toml" => Self::from_toml_str(&text),
            "yaml" | "yml" => Self::from_yaml_str(&text),
            "json" => Self::from_json_str(&text),
            _ => Err(Error::Config("profile file must end in .toml, .yaml, .yml or .json".into())),
        };
        parsed.map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_switch_has_a_disposition() {
        for (path, _) in SecurityProfile::every_flag(true).flags() {
            assert!(disposition(&path).is_some(), "{path} has no disposition");
        }
    }

    #[test]
    fn whole_document_round_trips_through_toml_yaml_and_json() {
        let p = SecurityProfile::every_flag(true);
        let t = toml::to_string(&p).unwrap_or_default();
        assert_eq!(SecurityProfile::from_toml_str(&t).ok(), Some(p.clone()), "toml:\n{t}");
        let y = serde_norway::to_string(&p).unwrap_or_default();
        assert_eq!(SecurityProfile::from_yaml_str(&y).ok(), Some(p.clone()), "yaml:\n{y}");
        let j = serde_json::to_string(&p).unwrap_or_default();
        assert_eq!(SecurityProfile::from_json_str(&j).ok(), Some(p));
    }

    #[test]
    fn unknown_and_missing_switches_are_named() {
        let e = SecurityProfile::from_toml_str(
            "[input_validation.pattern_validation.pattern_validation]\nregex_patterns = true\nfuzzy_matchng = true\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("fuzzy_matchng"), "{e}");
        let e = SecurityProfile::from_toml_str(
            "[input_validation.pattern_validation.pattern_validation]\nregex_patterns = true\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("fuzzy_matching"), "{e}");
        let e = SecurityProfile::from_yaml_str("zero_trust:\n  never_trust: true\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("zero_trust"), "{e}");
    }

    #[test]
    fn a_slot_with_the_wrong_variant_is_an_issue() {
        let p = SecurityProfile {
            input_validation: Some(InputValidation::new().with_pattern_validation(
                ValidationControl::FormatValidation {
                    json_validation: true,
                    xml_validation: true,
                    html_validation: true,
                    format_confusion_detection: true,
                },
            )),
            ..SecurityProfile::default()
        };
        let e = p.check().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("input_validation.pattern_validation") && e.contains("format_validation"), "{e}");
    }
}
