//! Preventive controls: input and output validation.

control_enum! {
    /// One validation control of [`InputValidation`] or [`OutputValidation`].
    ValidationControl {
        /// Pattern matching on prompts.
        PatternValidation = "pattern_validation" {
            regex_patterns, fuzzy_matching, semantic_analysis, behavioral_analysis
        },
        /// What a text carries.
        ContentValidation = "content_validation" {
            malicious_content_detection, sensitive_information_detection, policy_violation_detection,
            format_validation
        },
        /// Characters and encodings.
        EncodingValidation = "encoding_validation" {
            unicode_normalization, encoding_standardization, character_filtering, encoding_validation
        },
        /// Where a text comes from and what it wants.
        ContextValidation = "context_validation" {
            context_analysis, intent_analysis, behavioral_analysis, anomaly_detection
        },
        /// The format a completion was asked for.
        FormatValidation = "format_validation" {
            json_validation, xml_validation, html_validation, format_confusion_detection
        },
        /// The policy verdicts on completions.
        PolicyValidation = "policy_validation" {
            content_policy, security_policy, compliance_policy, privacy_policy
        },
        /// Security checks on completions.
        SecurityValidation = "security_validation" {
            threat_detection, risk_assessment, security_analysis, vulnerability_assessment
        },
    }
}

section! {
    /// Validation of prompts.
    InputValidation ("input_validation") : ValidationControl {
        pattern_validation => with_pattern_validation : "pattern_validation",
        content_validation => with_content_validation : "content_validation",
        encoding_validation => with_encoding_validation : "encoding_validation",
        context_validation => with_context_validation : "context_validation",
    }
}

section! {
    /// Validation of completions.
    OutputValidation ("output_validation") : ValidationControl {
        content_validation => with_content_validation : "content_validation",
        format_validation => with_format_validation : "format_validation",
        policy_validation => with_policy_validation : "policy_validation",
        security_validation => with_security_validation : "security_validation",
    }
}
