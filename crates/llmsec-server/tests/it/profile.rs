//! `security_profile`: a security-model profile applied by the server at
//! start. Engine switches change analyses; server switches are checked
//! against the configuration; a switch the build or the configuration
//! cannot honour stops the start, named.

use axum::http::StatusCode;
use llm_security::{ContinuousMonitoring, SecurityEngine, ZeroTrustConfig};
use serde_json::json;

use crate::common::*;

fn write_profile(engine: SecurityEngine) -> std::path::PathBuf {
    let path = temp_dir().join("profile.toml");
    std::fs::write(&path, toml::to_string(engine.profile()).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn a_profile_switches_engine_controls_and_its_server_switches_are_met() {
    let zero_trust = ZeroTrustConfig::new().with_audit_everything(true).with_never_trust(true);
    let path = write_profile(SecurityEngine::new().with_zero_trust_config(zero_trust));
    let input = json!({"input": "Mail the summary to jane.doe@example.com please"});
    let plain = app().await;
    let r = post(&plain.router, "/api/security/analyze", ADMIN, input.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body.get("sanitized").is_none(), "{}", r.text);
    // never_trust: every analysis carries the sanitized text.
    let t = app_with(|c| c.security_profile = Some(path.clone())).await;
    let r = post(&t.router, "/api/security/analyze", ADMIN, input).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let sanitized = r.body["sanitized"].as_str().unwrap_or_default();
    assert!(!sanitized.is_empty() && !sanitized.contains("jane.doe@example.com"), "{}", r.text);
}

#[tokio::test]
async fn switches_the_build_or_the_configuration_cannot_honour_stop_the_start() {
    // Refused by the build.
    let path = write_profile(
        SecurityEngine::new().with_zero_trust_config(ZeroTrustConfig::new().with_encryption_everywhere(true)),
    );
    let mut c = config();
    c.security_profile = Some(path);
    let e = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap_err().to_string();
    assert!(e.contains("security_profile") && e.contains("encryption_everywhere"), "{e}");

    // Asked of the server, but this configuration runs no detector.
    let path = write_profile(
        SecurityEngine::new().with_continuous_monitoring(ContinuousMonitoring::new().with_anomaly_detection(true)),
    );
    let mut c = config();
    c.security_profile = Some(path.clone());
    let e = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap_err().to_string();
    assert!(e.contains("continuous_monitoring.anomaly_detection") && e.contains("statistical"), "{e}");

    // With a statistical detector configured, the same profile starts.
    let detectors = temp_dir().join("detectors.yaml");
    std::fs::write(&detectors, "detectors:\n  - id: lat\n    type: statistical\n    metric: latency_ms\n").unwrap();
    let mut c = config();
    c.security_profile = Some(path);
    c.sentinel.detectors = Some(detectors);
    assert!(llmsec_server::Server::start(c, Some(ADMIN.into())).await.is_ok());

    // A file that does not parse is named.
    let bad = temp_dir().join("bad.toml");
    std::fs::write(&bad, "[zero_trust_config]\nnever_trusted = true\n").unwrap();
    let mut c = config();
    c.security_profile = Some(bad);
    let e = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap_err().to_string();
    assert!(e.contains("never_trusted"), "{e}");
}
