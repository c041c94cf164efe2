//! Corrective controls: threat mitigation and incident response.

control_enum! {
    /// One control of [`ThreatMitigation`].
    MitigationControl {
        /// Rewriting prompts.
        InputSanitization = "input_sanitization" {
            character_filtering, content_filtering, encoding_standardization, unicode_normalization
        },
        /// Rewriting completions.
        OutputFiltering = "output_filtering" {
            content_filtering, format_filtering, policy_filtering, security_filtering
        },
        /// Which findings block.
        ResponseBlocking = "response_blocking" {
            threat_blocking, content_blocking, format_blocking, policy_blocking
        },
        /// What happens after a finding.
        IncidentResponse = "incident_response" {
            automatic_response, manual_response, escalation, notification
        },
    }
}

section! {
    /// Threat mitigation.
    ThreatMitigation ("threat_mitigation") : MitigationControl {
        input_sanitization => with_input_sanitization : "input_sanitization",
        output_filtering => with_output_filtering : "output_filtering",
        response_blocking => with_response_blocking : "response_blocking",
        incident_response => with_incident_response : "incident_response",
    }
}

control_enum! {
    /// One control of [`IncidentResponse`].
    ResponseControl {
        /// Responses without a human.
        AutomaticResponse = "automatic_response" {
            threat_quarantine, user_blocking, session_termination, system_lockdown
        },
        /// Responses by a human.
        ManualResponse = "manual_response" {
            incident_investigation, threat_analysis, response_coordination, recovery_planning
        },
        /// Escalation chains.
        Escalation = "escalation" {
            threat_escalation, incident_escalation, management_escalation, external_escalation
        },
        /// Who hears about it.
        Notification = "notification" {
            alert_notification, email_notification, sms_notification, webhook_notification
        },
    }
}

section! {
    /// Incident response.
    IncidentResponse ("incident_response") : ResponseControl {
        automatic_response => with_automatic_response : "automatic_response",
        manual_response => with_manual_response : "manual_response",
        escalation => with_escalation : "escalation",
        notification => with_notification : "notification",
    }
}
