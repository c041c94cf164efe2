//! Detective controls: threat detection and behavioral analysis.

control_enum! {
    /// One control of [`ThreatDetection`].
    DetectionControl {
        /// Rules over the normalized text.
        PatternDetection = "pattern_detection" {
            regex_patterns, fuzzy_matching, semantic_analysis, behavioral_analysis
        },
        /// Sentinel's detectors over telemetry.
        AnomalyDetection = "anomaly_detection" {
            statistical_analysis, behavioral_analysis, temporal_analysis, contextual_analysis
        },
        /// Learned models.
        MachineLearning = "machine_learning" {
            classification_models, anomaly_detection_models, behavioral_models, threat_intelligence_models
        },
        /// Indicator feeds.
        ThreatIntelligence = "threat_intelligence" {
            threat_feeds, threat_analysis, threat_modeling, threat_hunting
        },
    }
}

section! {
    /// Threat detection.
    ThreatDetection ("threat_detection") : DetectionControl {
        pattern_detection => with_pattern_detection : "pattern_detection",
        anomaly_detection => with_anomaly_detection : "anomaly_detection",
        machine_learning => with_machine_learning : "machine_learning",
        threat_intelligence => with_threat_intelligence : "threat_intelligence",
    }
}

control_enum! {
    /// One control of [`BehavioralAnalysis`].
    AnalysisControl {
        /// Per-user baselines.
        UserBehaviorAnalysis = "user_behavior_analysis" {
            user_patterns, user_anomalies, user_risk_scoring, user_profiling
        },
        /// Multi-turn conversations.
        ConversationAnalysis = "conversation_analysis" {
            conversation_patterns, conversation_anomalies, conversation_risk_scoring, conversation_profiling
        },
        /// Untrusted context (documents, tool results).
        ContextAnalysis = "context_analysis" {
            context_patterns, context_anomalies, context_risk_scoring, context_profiling
        },
        /// What a request wants.
        IntentAnalysis = "intent_analysis" {
            intent_classification, intent_anomalies, intent_risk_scoring, intent_profiling
        },
    }
}

section! {
    /// Behavioral analysis.
    BehavioralAnalysis ("behavioral_analysis") : AnalysisControl {
        user_behavior_analysis => with_user_behavior_analysis : "user_behavior_analysis",
        conversation_analysis => with_conversation_analysis : "conversation_analysis",
        context_analysis => with_context_analysis : "context_analysis",
        intent_analysis => with_intent_analysis : "intent_analysis",
    }
}
