//! Defense in depth and zero trust: the layers of the engine, redundant
//! validation, zero-trust switches and continuous monitoring.

control_enum! {
    /// One layer of [`MultiLayerSecurity`].
    SecurityLayer {
        /// What a prompt goes through before the model.
        InputValidation = "input_validation" {
            pattern_detection, semantic_analysis, behavioral_analysis, unicode_normalization, encoding_validation
        },
        /// What the engine does while judging a text.
        Processing = "processing" {
            threat_detection, risk_assessment, context_analysis, intent_analysis, anomaly_detection
        },
        /// What a completion goes through before the user.
        OutputValidation = "output_validation" {
            content_validation, format_validation, policy_compliance, sensitive_information_detection,
            malicious_content_detection
        },
        /// What watches the running system.
        Monitoring = "monitoring" {
            real_time_monitoring, threat_intelligence, behavioral_monitoring, performance_monitoring, security_metrics
        },
    }
}

section! {
    /// Defense in depth: the engine's layers, each switch mapped to the
    /// scanners, normalizer steps or server controls that make it up.
    MultiLayerSecurity ("multi_layer_security") : SecurityLayer {
        input_validation_layer => with_input_validation_layer : "input_validation",
        processing_layer => with_processing_layer : "processing",
        output_validation_layer => with_output_validation_layer : "output_validation",
        monitoring_layer => with_monitoring_layer : "monitoring",
    }
}

switches! {
    /// Redundant validation: a second, independent look at a text before its
    /// verdict stands. `input_validation` and `output_validation` pick the
    /// stages; `final_validation` and `validation_consistency` pick the
    /// checks; a check without a stage (or a stage without a check) is
    /// reported by [`SecurityProfile::check`](crate::SecurityProfile::check).
    RedundantValidation ("redundant_validation") {
        /// Apply the checks to prompts (`analyze_input`, `analyze_context`).
        input_validation => with_input_validation,
        /// Apply the checks to completions (`validate_output`).
        output_validation => with_output_validation,
        /// Refused: the engine sees a prompt and a completion, no step between.
        intermediate_validation => with_intermediate_validation,
        /// Re-scan the sanitized text of a `sanitize` verdict; if the policy
        /// still acts on what is left, the verdict becomes `block`.
        final_validation => with_final_validation,
        /// Run every scanner twice and combine the passes: any difference
        /// between them blocks (fail closed on a nondeterministic scanner).
        validation_consistency => with_validation_consistency,
        /// A second, independent detector beside the rules: the learned
        /// classifier runs on prompts.
        validation_redundancy => with_validation_redundancy,
    }
}

switches! {
    /// Zero trust. The switches the engine can honour change its scanners;
    /// those only the server can honour are server requirements; the rest
    /// are refused (see the flag table).
    ZeroTrustConfig ("zero_trust_config") {
        /// Every request authenticated (server: API keys).
        continuous_verification => with_continuous_verification,
        /// Scoped API keys (server).
        least_privilege_access => with_least_privilege_access,
        /// Tenant isolation (server).
        micro_segmentation => with_micro_segmentation,
        /// Refused: no TLS of its own (left to a proxy); stored prompts are encrypted at rest only by the server.
        encryption_everywhere => with_encryption_everywhere,
        /// The hash-chained audit log (server).
        audit_everything => with_audit_everything,
        /// Every analysis carries the sanitized text.
        never_trust => with_never_trust,
        /// Completions are always validated.
        always_verify => with_always_verify,
    }
}

switches! {
    /// Continuous monitoring: mostly server controls (Sentinel), plus the
    /// engine's own threat detection.
    ContinuousMonitoring ("continuous_monitoring") {
        /// `/metrics` (server).
        real_time_monitoring => with_real_time_monitoring,
        /// Sentinel's behavioral detectors (server).
        behavioral_analysis => with_behavioral_analysis,
        /// Sentinel's statistical detectors (server).
        anomaly_detection => with_anomaly_detection,
        /// The prompt-injection, jailbreak and Unicode scanners.
        threat_detection => with_threat_detection,
        /// Sentinel's incident action (server).
        incident_response => with_incident_response,
        /// The threat-intelligence scanners (needs `SecurityEngine::with_threat_intel`).
        threat_intelligence => with_threat_intelligence,
        /// `/metrics` (server).
        security_metrics => with_security_metrics,
    }
}
