//! Security compliance: regulations and industry standards. This build has
//! no posture report that evaluates a deployment against their control
//! lists, so every switch here is refused when on (see the flag table).

control_enum! {
    /// One regulation of [`RegulatoryCompliance`].
    ComplianceControl {
        /// EU General Data Protection Regulation.
        GDPRCompliance = "gdpr_compliance" {
            data_protection, privacy_by_design, data_minimization, purpose_limitation, storage_limitation, accuracy,
            confidentiality, consent_management, data_subject_rights, data_breach_notification
        },
        /// California Consumer Privacy Act.
        CCPACompliance = "ccpa_compliance" {
            consumer_rights, data_transparency, opt_out_rights, data_deletion, data_portability, non_discrimination,
            data_security, privacy_notices, data_processing, third_party_sharing
        },
        /// US Health Insurance Portability and Accountability Act.
        HIPAACompliance = "hipaa_compliance" {
            patient_privacy, data_security, access_control, audit_logging, data_encryption, data_integrity,
            data_availability, incident_response, risk_assessment, compliance_monitoring
        },
        /// US Sarbanes-Oxley Act.
        SOXCompliance = "sox_compliance" {
            financial_reporting, internal_controls, audit_trails, data_integrity, access_control, change_management,
            risk_management, compliance_monitoring, incident_response, documentation
        },
    }
}

section! {
    /// Regulatory compliance.
    RegulatoryCompliance ("regulatory_compliance") : ComplianceControl {
        gdpr_compliance => with_gdpr_compliance : "gdpr_compliance",
        ccpa_compliance => with_ccpa_compliance : "ccpa_compliance",
        hipaa_compliance => with_hipaa_compliance : "hipaa_compliance",
        sox_compliance => with_sox_compliance : "sox_compliance",
    }
}

control_enum! {
    /// One standard of [`IndustryStandards`].
    StandardsControl {
        /// ISO/IEC 27001.
        ISO27001 = "iso27001" {
            information_security_management, risk_management, security_controls, continuous_improvement,
            compliance_monitoring
        },
        /// NIST Cybersecurity Framework.
        NISTFramework = "nist_framework" {
            identify, protect, detect, respond, recover
        },
        /// PCI DSS.
        PCIDSS = "pci_dss" {
            data_protection, access_control, network_security, vulnerability_management, security_monitoring
        },
        /// SOC 2 trust services criteria.
        SOC2 = "soc2" {
            security, availability, processing_integrity, confidentiality, privacy
        },
    }
}

section! {
    /// Industry standards.
    IndustryStandards ("industry_standards") : StandardsControl {
        iso27001 => with_iso27001 : "iso27001",
        nist_framework => with_nist_framework : "nist_framework",
        pci_dss => with_pci_dss : "pci_dss",
        soc2 => with_soc2 : "soc2",
    }
}
