//! `SecurityEngine::new().with_…` for each section of the security model.
//! Each rebuilds the engine from its config and the updated profile.

use super::*;
use crate::engine::SecurityEngine;

macro_rules! engine_builders {
    ($( $with:ident : $field:ident : $Ty:ident ),* $(,)?) => {
        impl SecurityEngine {
            $(
                #[doc = concat!("Sets the profile's `", stringify!($field), "` section (see [`", stringify!($Ty), "`]).")]
                pub fn $with(self, section: $Ty) -> SecurityEngine {
                    let mut profile = self.profile().clone();
                    profile.$field = Some(section);
                    self.with_profile(profile)
                }
            )*
        }
    };
}

engine_builders! {
    with_multi_layer_security: multi_layer_security: MultiLayerSecurity,
    with_redundant_validation: redundant_validation: RedundantValidation,
    with_zero_trust_config: zero_trust_config: ZeroTrustConfig,
    with_continuous_monitoring: continuous_monitoring: ContinuousMonitoring,
    with_input_validation: input_validation: InputValidation,
    with_output_validation: output_validation: OutputValidation,
    with_threat_detection: threat_detection: ThreatDetection,
    with_behavioral_analysis: behavioral_analysis: BehavioralAnalysis,
    with_threat_mitigation: threat_mitigation: ThreatMitigation,
    with_incident_response: incident_response: IncidentResponse,
    with_content_security_policy: content_security_policy: ContentSecurityPolicy,
    with_privacy_policy: privacy_policy: PrivacyPolicy,
    with_regulatory_compliance: regulatory_compliance: RegulatoryCompliance,
    with_industry_standards: industry_standards: IndustryStandards,
    with_threat_monitoring: threat_monitoring: ThreatMonitoring,
    with_performance_monitoring: performance_monitoring: PerformanceMonitoring,
    with_threat_analytics: threat_analytics: ThreatAnalytics,
    with_security_reporting: security_reporting: SecurityReporting,
    with_security_by_design: security_by_design: SecurityByDesign,
    with_security_architecture: security_architecture: SecurityArchitecture,
    with_security_operations_center: security_operations_center: SecurityOperationsCenter,
    with_security_governance: security_governance: SecurityGovernance,
}
