//! Security best practices: design principles, architecture, operations
//! and governance.

control_enum! {
    /// One principle of [`SecurityByDesign`].
    DesignPrinciple {
        /// Design-time security work.
        SecureDesign = "secure_design" {
            threat_modeling, security_architecture, secure_coding, security_testing
        },
        /// Privacy by design.
        PrivacyByDesign = "privacy_by_design" {
            data_minimization, purpose_limitation, storage_limitation, accuracy, confidentiality
        },
        /// Secure defaults.
        DefaultSecurity = "default_security" {
            secure_defaults, least_privilege, fail_secure, defense_in_depth
        },
        /// Security as a continuous process.
        ContinuousSecurity = "continuous_security" {
            continuous_monitoring, continuous_improvement, continuous_testing, continuous_compliance
        },
    }
}

section! {
    /// Security by design.
    SecurityByDesign ("security_by_design") : DesignPrinciple {
        secure_design => with_secure_design : "secure_design",
        privacy_by_design => with_privacy_by_design : "privacy_by_design",
        default_security => with_default_security : "default_security",
        continuous_security => with_continuous_security : "continuous_security",
    }
}

control_enum! {
    /// One principle of [`SecurityArchitecture`].
    ArchitecturePrinciple {
        /// Security at each layer of the stack.
        LayeredSecurity = "layered_security" {
            network_security, application_security, data_security, endpoint_security
        },
        /// Several independent controls.
        DefenseInDepth = "defense_in_depth" {
            multiple_layers, redundant_controls, diverse_controls, comprehensive_coverage
        },
        /// Zero trust.
        ZeroTrust = "zero_trust" {
            never_trust, always_verify, least_privilege, continuous_monitoring
        },
        /// Automation.
        SecurityAutomation = "security_automation" {
            automated_detection, automated_response, automated_remediation, automated_compliance
        },
    }
}

section! {
    /// Security architecture.
    SecurityArchitecture ("security_architecture") : ArchitecturePrinciple {
        layered_security => with_layered_security : "layered_security",
        defense_in_depth => with_defense_in_depth : "defense_in_depth",
        zero_trust => with_zero_trust : "zero_trust",
        security_automation => with_security_automation : "security_automation",
    }
}

control_enum! {
    /// One function of [`SecurityOperationsCenter`].
    SOCControl {
        /// Looking for threats.
        ThreatHunting = "threat_hunting" {
            proactive_hunting, threat_intelligence, behavioral_analysis, anomaly_detection
        },
        /// Handling incidents.
        IncidentResponse = "incident_response" {
            incident_detection, incident_analysis, incident_containment, incident_recovery
        },
        /// Watching.
        SecurityMonitoring = "security_monitoring" {
            real_time_monitoring, threat_detection, risk_assessment, compliance_monitoring
        },
        /// Analysing.
        SecurityAnalytics = "security_analytics" {
            threat_analytics, risk_analytics, behavioral_analytics, performance_analytics
        },
    }
}

section! {
    /// Security operations center.
    SecurityOperationsCenter ("security_operations_center") : SOCControl {
        threat_hunting => with_threat_hunting : "threat_hunting",
        incident_response => with_incident_response : "incident_response",
        security_monitoring => with_security_monitoring : "security_monitoring",
        security_analytics => with_security_analytics : "security_analytics",
    }
}

control_enum! {
    /// One control of [`SecurityGovernance`].
    GovernanceControl {
        /// Policy life cycle.
        PolicyManagement = "policy_management" {
            policy_development, policy_implementation, policy_monitoring, policy_compliance
        },
        /// Risk governance.
        RiskGovernance = "risk_governance" {
            risk_identification, risk_assessment, risk_mitigation, risk_monitoring
        },
        /// Compliance governance.
        ComplianceGovernance = "compliance_governance" {
            regulatory_compliance, industry_compliance, policy_compliance, security_compliance
        },
        /// Security governance.
        SecurityGovernance = "security_governance" {
            security_strategy, security_architecture, security_operations, security_monitoring
        },
    }
}

section! {
    /// Security governance.
    SecurityGovernance ("security_governance") : GovernanceControl {
        policy_management => with_policy_management : "policy_management",
        risk_governance => with_risk_governance : "risk_governance",
        compliance_governance => with_compliance_governance : "compliance_governance",
        security_governance => with_security_governance : "security_governance",
    }
}
