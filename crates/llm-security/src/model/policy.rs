//! Security policies: content security and privacy.

control_enum! {
    /// One control of [`ContentSecurityPolicy`].
    ContentPolicy {
        /// What content is filtered.
        ContentFiltering = "content_filtering" {
            malicious_content, sensitive_information, policy_violations, security_threats
        },
        /// Which formats are checked.
        FormatPolicy = "format_policy" {
            json_policy, xml_policy, html_policy, text_policy
        },
        /// Characters and encodings.
        EncodingPolicy = "encoding_policy" {
            unicode_policy, encoding_policy, character_policy, normalization_policy
        },
        /// Which threats the policy acts on.
        SecurityPolicy = "security_policy" {
            threat_policy, risk_policy, vulnerability_policy, compliance_policy
        },
    }
}

section! {
    /// Content security policy.
    ContentSecurityPolicy ("content_security_policy") : ContentPolicy {
        content_filtering => with_content_filtering : "content_filtering",
        format_policy => with_format_policy : "format_policy",
        encoding_policy => with_encoding_policy : "encoding_policy",
        security_policy => with_security_policy : "security_policy",
    }
}

control_enum! {
    /// One control of [`PrivacyPolicy`].
    PrivacyControl {
        /// Collect and keep as little as possible.
        DataMinimization = "data_minimization" {
            data_collection, data_processing, data_storage, data_retention
        },
        /// Data used only for its stated purpose.
        PurposeLimitation = "purpose_limitation" {
            purpose_specification, purpose_compatibility, purpose_limitation, purpose_validation
        },
        /// Data kept only as long as needed.
        StorageLimitation = "storage_limitation" {
            storage_duration, storage_purpose, storage_security, storage_retention
        },
        /// Data kept correct.
        Accuracy = "accuracy" {
            data_accuracy, data_completeness, data_consistency, data_validation
        },
        /// Data kept secret.
        Confidentiality = "confidentiality" {
            data_encryption, access_control, audit_logging, data_protection
        },
    }
}

section! {
    /// Privacy policy.
    PrivacyPolicy ("privacy_policy") : PrivacyControl {
        data_minimization => with_data_minimization : "data_minimization",
        purpose_limitation => with_purpose_limitation : "purpose_limitation",
        storage_limitation => with_storage_limitation : "storage_limitation",
        accuracy => with_accuracy : "accuracy",
        confidentiality => with_confidentiality : "confidentiality",
    }
}
