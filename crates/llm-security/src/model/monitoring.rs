//! Security monitoring and analytics.

control_enum! {
    /// One control of [`ThreatMonitoring`] or [`PerformanceMonitoring`].
    MonitoringControl {
        /// Watching threats as they happen.
        RealTimeMonitoring = "real_time_monitoring" {
            threat_detection, anomaly_detection, behavioral_analysis, risk_assessment
        },
        /// Indicator feeds.
        ThreatIntelligence = "threat_intelligence" {
            threat_feeds, threat_analysis, threat_modeling, threat_hunting
        },
        /// Counters and histograms.
        SecurityMetrics = "security_metrics" {
            threat_metrics, risk_metrics, performance_metrics, compliance_metrics
        },
        /// Incidents.
        IncidentMonitoring = "incident_monitoring" {
            incident_detection, incident_analysis, incident_response, incident_recovery
        },
        /// The host.
        SystemMonitoring = "system_monitoring" {
            cpu_monitoring, memory_monitoring, disk_monitoring, network_monitoring
        },
        /// The service.
        ApplicationMonitoring = "application_monitoring" {
            response_time, throughput, error_rate, availability
        },
        /// How long security work takes.
        SecurityMonitoring = "security_monitoring" {
            threat_detection_time, risk_assessment_time, incident_response_time, recovery_time
        },
        /// Compliance status.
        ComplianceMonitoring = "compliance_monitoring" {
            policy_compliance, regulatory_compliance, industry_compliance, security_compliance
        },
    }
}

section! {
    /// Threat monitoring.
    ThreatMonitoring ("threat_monitoring") : MonitoringControl {
        real_time_monitoring => with_real_time_monitoring : "real_time_monitoring",
        threat_intelligence => with_threat_intelligence : "threat_intelligence",
        security_metrics => with_security_metrics : "security_metrics",
        incident_monitoring => with_incident_monitoring : "incident_monitoring",
    }
}

section! {
    /// Performance monitoring.
    PerformanceMonitoring ("performance_monitoring") : MonitoringControl {
        system_monitoring => with_system_monitoring : "system_monitoring",
        application_monitoring => with_application_monitoring : "application_monitoring",
        security_monitoring => with_security_monitoring : "security_monitoring",
        compliance_monitoring => with_compliance_monitoring : "compliance_monitoring",
    }
}

control_enum! {
    /// One control of [`ThreatAnalytics`].
    AnalyticsControl {
        /// Classifying and linking threats.
        ThreatAnalysis = "threat_analysis" {
            threat_classification, threat_prioritization, threat_correlation, threat_attribution
        },
        /// Scoring risk.
        RiskAnalysis = "risk_analysis" {
            risk_assessment, risk_scoring, risk_prioritization, risk_mitigation
        },
        /// Behaviour of users and systems.
        BehavioralAnalysis = "behavioral_analysis" {
            user_behavior, system_behavior, application_behavior, network_behavior
        },
        /// Trends over time.
        TrendAnalysis = "trend_analysis" {
            threat_trends, risk_trends, performance_trends, compliance_trends
        },
    }
}

section! {
    /// Threat analytics.
    ThreatAnalytics ("threat_analytics") : AnalyticsControl {
        threat_analysis => with_threat_analysis : "threat_analysis",
        risk_analysis => with_risk_analysis : "risk_analysis",
        behavioral_analysis => with_behavioral_analysis : "behavioral_analysis",
        trend_analysis => with_trend_analysis : "trend_analysis",
    }
}

control_enum! {
    /// One control of [`SecurityReporting`].
    ReportingControl {
        /// For executives.
        ExecutiveReporting = "executive_reporting" {
            security_dashboard, risk_summary, compliance_status, incident_summary
        },
        /// For operators.
        OperationalReporting = "operational_reporting" {
            threat_analysis, risk_assessment, incident_analysis, performance_analysis
        },
        /// For engineers.
        TechnicalReporting = "technical_reporting" {
            detailed_analysis, technical_metrics, system_metrics, security_metrics
        },
        /// For auditors.
        ComplianceReporting = "compliance_reporting" {
            regulatory_compliance, industry_compliance, policy_compliance, security_compliance
        },
    }
}

section! {
    /// Security reporting.
    SecurityReporting ("security_reporting") : ReportingControl {
        executive_reporting => with_executive_reporting : "executive_reporting",
        operational_reporting => with_operational_reporting : "operational_reporting",
        technical_reporting => with_technical_reporting : "technical_reporting",
        compliance_reporting => with_compliance_reporting : "compliance_reporting",
    }
}
