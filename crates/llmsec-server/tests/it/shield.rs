//! The Shield action service (`shield.v1.ShieldAction`) over a real socket:
//! an action blocks or rate-limits an entity for the analysis API, its
//! state reads back, it is idempotent on its id, it lifts, it stays in its
//! tenant, and each change is audited.

use std::str::FromStr;

use axum::http::StatusCode;
use llmsec_server::shield_grpc::pb;
use llmsec_server::shield_grpc::pb::shield_action_client::ShieldActionClient;
use serde_json::{Value, json};
use tonic::metadata::MetadataValue;

use crate::common::*;
use crate::grpc::serve;

async fn client(
    addr: std::net::SocketAddr,
    key: &str,
) -> ShieldActionClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + use<>,
    >,
> {
    let channel = tonic::transport::Endpoint::from_str(&format!("http://{addr}")).unwrap().connect().await.unwrap();
    let auth = MetadataValue::try_from(format!("Bearer {key}")).unwrap();
    ShieldActionClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
        req.metadata_mut().insert("authorization", auth.clone());
        Ok(req)
    })
}

fn block(action_id: &str, target: &str) -> pb::ActionRequest {
    pb::ActionRequest {
        action_id: action_id.into(),
        r#type: pb::ActionType::Block as i32,
        target_entity: target.into(),
        reason: "prompt injection campaign".into(),
        duration: Some(prost_types::Duration { seconds: 3600, nanos: 0 }),
        parameters: [("source".to_owned(), "sentinel".to_owned())].into(),
    }
}

#[tokio::test]
async fn a_block_action_refuses_the_user_until_revoked() {
    let t = app().await;
    let addr = serve(t.router.clone()).await;
    let triage = make_key(&t.router, "default", &["triage"]).await;
    let mut c = client(addr, &triage).await;

    let ok = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN, "user_id": "mallory"})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let r = c.enforce_action(block("an_42", "user:mallory")).await.unwrap().into_inner();
    assert!(r.success, "{}", r.message);
    assert!(r.enforcement_id.starts_with("shd_"));
    let refused = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN, "user_id": "mallory"})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(refused.text.contains("prompt injection campaign"), "{}", refused.text);
    let other = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN, "user_id": "alice"})).await;
    assert_eq!(other.status, StatusCode::OK);

    // The same action again: the same enforcement, nothing new.
    let again = c.enforce_action(block("an_42", "user:mallory")).await.unwrap().into_inner();
    assert_eq!(again.enforcement_id, r.enforcement_id);
    assert!(again.message.starts_with("already in force"), "{}", again.message);
    let s = c.get_action_status(pb::ActionStatusRequest { action_id: "an_42".into() }).await.unwrap().into_inner();
    assert!(s.active);
    assert_eq!((s.target_entity.as_str(), s.r#type), ("user:mallory", pb::ActionType::Block as i32));
    let enforcements = get(&t.router, "/api/v1/enforcements", ADMIN).await;
    assert_eq!(enforcements.text.matches(&r.enforcement_id).count(), 1, "{}", enforcements.text);

    let lifted = c.revoke_action(pb::ActionStatusRequest { action_id: "an_42".into() }).await.unwrap().into_inner();
    assert_eq!(lifted.message, "revoked");
    let s = c.get_action_status(pb::ActionStatusRequest { action_id: "an_42".into() }).await.unwrap().into_inner();
    assert!(!s.active);
    let ok = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN, "user_id": "mallory"})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    // An ended action's id is not reused.
    let reused = c.enforce_action(block("an_42", "user:mallory")).await.unwrap_err();
    assert_eq!(reused.code(), tonic::Code::AlreadyExists);

    // Both changes are in the audit log, by the triage key.
    let audit = get(&t.router, "/api/admin/audit", ADMIN).await;
    for action in ["shield.enforce", "shield.revoke"] {
        assert!(audit.text.contains(action), "{action}: {}", audit.text);
    }
}

#[tokio::test]
async fn rate_limits_keys_and_bad_actions() {
    let t = app().await;
    let addr = serve(t.router.clone()).await;
    let triage = make_key(&t.router, "default", &["triage"]).await;
    let mut c = client(addr, &triage).await;
    let mut r = block("an_rl", "session:s-9");
    r.r#type = pb::ActionType::RateLimit as i32;
    r.parameters.insert("limit".into(), "2".into());
    r.parameters.insert("window".into(), "1m0s".into());
    assert!(c.enforce_action(r).await.unwrap().into_inner().success);
    let ask = || post(&t.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN, "session_id": "s-9"}));
    assert_eq!(ask().await.status, StatusCode::OK);
    assert_eq!(ask().await.status, StatusCode::OK);
    assert_eq!(ask().await.status, StatusCode::TOO_MANY_REQUESTS);

    // Invalid requests name the field.
    let mut bad = block("an_bad", "planet:mars");
    let e = c.enforce_action(bad.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("target_entity"), "{}", e.message());
    bad.target_entity = "user:u1".into();
    bad.duration = None;
    assert!(c.enforce_action(bad).await.unwrap_err().message().contains("duration"));
    let e = c.get_action_status(pb::ActionStatusRequest { action_id: "nope".into() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);

    // A key without triage is refused; another tenant's action stays there.
    let reader = make_key(&t.router, "default", &["read"]).await;
    let e = client(addr, &reader).await.enforce_action(block("an_x", "user:u1")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let acme = make_key(&t.router, "acme", &["triage"]).await;
    let mut ca = client(addr, &acme).await;
    assert!(ca.enforce_action(block("an_acme", "user:bob")).await.unwrap().into_inner().success);
    let bob = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN, "user_id": "bob"})).await;
    assert_eq!(bob.status, StatusCode::OK, "the default tenant's bob is not acme's");
    let e = c.get_action_status(pb::ActionStatusRequest { action_id: "an_acme".into() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "acme's action is not visible to the default tenant");
}

#[tokio::test]
async fn a_sentinel_drives_a_remote_shield_named_by_endpoint() {
    // The gateway side: its own server, with a triage key for the Sentinel.
    let shield = app().await;
    let shield_addr = serve(shield.router.clone()).await;
    let shield_key = make_key(&shield.router, "default", &["triage"]).await;
    let dir = temp_dir();
    let key_file = dir.join("shield.key");
    std::fs::write(&key_file, format!("{shield_key}\n")).unwrap();

    // The Sentinel side: a detector whose shield action names that gateway.
    let endpoint = format!("127.0.0.1:{}", shield_addr.port());
    let detectors = dir.join("detectors.yaml");
    std::fs::write(
        &detectors,
        format!(
            "detectors:\n  - id: pi\n    type: ml\n    threshold: 0.5\n    actions:\n      - type: shield\n        config: {{endpoint: \"{endpoint}\", action: block, duration: 1h, reason: \"Prompt injection attack detected\", parameters: {{notify_user: true}}}}\n"
        ),
    )
    .unwrap();
    let sentinel = app_with(|c| {
        c.sentinel.detectors = Some(detectors.clone());
        c.sentinel.shield_endpoints.insert(
            endpoint.clone(),
            llmsec_server::config::ShieldEndpoint { key_file: Some(key_file.clone()), ..Default::default() },
        );
    })
    .await;
    let event = json!({
        "event_id": "e-remote-1", "timestamp": chrono::Utc::now().to_rfc3339(), "event_type": "llm.request",
        "application_id": "chatbot", "data": {"model": "gpt-4o", "prompt": ATTACK}, "metadata": {"user_id": "mallory"}
    });
    let r = post(&sentinel.router, "/api/v1/telemetry/events", ADMIN, event).await;
    assert!(r.status.is_success(), "{}", r.text);

    // The anomaly records the remote gateway's answer, and the gateway blocks.
    let anomaly = eventually(10, || async {
        let r = get(&sentinel.router, "/api/v1/anomalies", ADMIN).await;
        r.body["anomalies"].as_array().and_then(|a| a.first().cloned())
    })
    .await;
    let action = &anomaly["actions_taken"][0];
    assert_eq!(action["status"], "succeeded", "{anomaly}");
    assert!(action["id"].as_str().unwrap().starts_with("shd_"), "{action}");
    assert!(action["message"].as_str().unwrap().contains(&endpoint), "{action}");
    let refused =
        post(&shield.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN, "user_id": "mallory"})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    // Nothing was enforced locally on the Sentinel's side.
    let local =
        post(&sentinel.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN, "user_id": "mallory"})).await;
    assert_eq!(local.status, StatusCode::OK, "{}", local.text);

    // An endpoint the operator did not list is refused when the detectors load.
    let other = dir.join("other.yaml");
    std::fs::write(&other, "detectors:\n  - id: pi\n    type: ml\n    actions:\n      - type: shield\n        config: {endpoint: \"evil.example:9090\", action: block}\n").unwrap();
    let mut c = config();
    c.sentinel.detectors = Some(other);
    let e = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap_err().to_string();
    assert!(e.contains("shield_endpoints") && e.contains("evil.example:9090"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reports_an_enforced_action_through_the_sentinels_shield_callback() {
    // The Sentinel's address first: the gateway's callback names it.
    let sentinel_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sentinel_addr = sentinel_listener.local_addr().unwrap();
    let dir = temp_dir();
    // Both test servers take LLMSEC_ADMIN_KEY = ADMIN, which holds `ingest`.
    let callback_key = dir.join("callback.key");
    std::fs::write(&callback_key, format!("{ADMIN}\n")).unwrap();
    let shield = app_with(|c| {
        c.shield_callback = Some(llmsec_server::config::ShieldCallbackConfig {
            url: format!("http://{sentinel_addr}/api/v1/shield/callback"),
            key_env: None,
            key_file: Some(callback_key.clone()),
        });
    })
    .await;
    let shield_addr = serve(shield.router.clone()).await;
    let shield_key = make_key(&shield.router, "default", &["triage"]).await;
    let key_file = dir.join("shield.key");
    std::fs::write(&key_file, &shield_key).unwrap();
    let endpoint = format!("127.0.0.1:{}", shield_addr.port());
    let detectors = dir.join("detectors.yaml");
    std::fs::write(
        &detectors,
        format!(
            "detectors:\n  - id: pi\n    type: ml\n    threshold: 0.5\n    actions:\n      - type: shield\n        config: {{endpoint: \"{endpoint}\", action: block, duration: 1h}}\n"
        ),
    )
    .unwrap();
    let sentinel = app_with(|c| {
        c.sentinel.detectors = Some(detectors.clone());
        c.sentinel.shield_endpoints.insert(
            endpoint.clone(),
            llmsec_server::config::ShieldEndpoint { key_file: Some(key_file.clone()), ..Default::default() },
        );
    })
    .await;
    let router = sentinel.router.clone();
    tokio::spawn(async move { axum::serve(sentinel_listener, router).await });

    let event = json!({
        "event_id": "e-callback-1", "timestamp": chrono::Utc::now().to_rfc3339(), "event_type": "llm.request",
        "application_id": "chatbot", "data": {"model": "gpt-4o", "prompt": ATTACK}, "metadata": {"user_id": "mallory"}
    });
    let r = post(&sentinel.router, "/api/v1/telemetry/events", ADMIN, event).await;
    assert!(r.status.is_success(), "{}", r.text);
    // The synchronous answer is recorded first ("<endpoint>: block …");
    // the callback then sets the gateway's own message on that action.
    let mut action = Value::Null;
    for _ in 0..200 {
        let r = get(&sentinel.router, "/api/v1/anomalies", ADMIN).await;
        action = r.body["anomalies"][0]["actions_taken"][0].clone();
        if action["message"].as_str().is_some_and(|m| m.starts_with("block user:mallory until")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let outbox = get(&shield.router, "/api/webhooks/deliveries", ADMIN).await.text;
    assert!(
        action["message"].as_str().is_some_and(|m| m.starts_with("block user:mallory until")),
        "the callback never set the gateway's message: {action}; the gateway's outbox: {outbox}"
    );
    assert_eq!(action["status"], "succeeded", "{action}");
    assert!(action["id"].as_str().unwrap().starts_with("shd_"), "{action}");
    // On the gateway's side the callback is a delivered outbox entry.
    let r = get(&shield.router, "/api/webhooks/deliveries", ADMIN).await;
    let delivered =
        r.body["deliveries"].as_array().unwrap().iter().any(|d| {
            d["webhook_id"] == "shield-callback" && d["event"] == "shield.callback" && d["status"] == "delivered"
        });
    assert!(delivered, "{}", r.text);
}

#[test]
fn a_shield_callback_needs_a_url_and_one_key_source() {
    let c = |url: &str, env: Option<&str>, file: Option<&str>| llmsec_server::config::ShieldCallbackConfig {
        url: url.into(),
        key_env: env.map(Into::into),
        key_file: file.map(Into::into),
    };
    let field = |c: llmsec_server::config::ShieldCallbackConfig| match c.validate() {
        Err(llmsec_server::config::ConfigError::Invalid { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(c("ftp://s/cb", Some("K"), None)), "shield_callback.url");
    assert_eq!(field(c("https://u:p@s/cb", Some("K"), None)), "shield_callback.url");
    assert_eq!(field(c("https://s/cb", None, None)), "shield_callback");
    assert_eq!(field(c("https://s/cb", Some("K"), Some("/k"))), "shield_callback");
    assert!(c("https://sentinel.internal/api/v1/shield/callback", Some("K"), None).validate().is_ok());
    let missing = c("https://s/cb", None, Some("/nonexistent/llmsec-callback.key")).key().unwrap_err().to_string();
    assert!(missing.contains("shield_callback.key_file"), "{missing}");
}

/// A test CA, and a server certificate for 127.0.0.1 and a client
/// certificate issued by it, all PEM, made fresh for each test.
struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    ca.distinguished_name.push(DnType::CommonName, "llmsec test CA");
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
        p.extended_key_usages = vec![usage];
        (p.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
    };
    Pki {
        ca: ca_pem,
        server: leaf("127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth),
        client: leaf("sentinel.test", ExtendedKeyUsagePurpose::ClientAuth),
    }
}

/// Serves `router` (its gRPC routes included) over TLS as `pki`'s server,
/// requiring a client certificate issued by `pki`'s CA.
async fn serve_tls(router: axum::Router, pki: &Pki) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(&pki.server.0, &pki.server.1))
        .client_ca_root(tonic::transport::Certificate::from_pem(&pki.ca));
    let server =
        tonic::transport::Server::builder().tls_config(tls).unwrap().add_routes(tonic::service::Routes::from(router));
    tokio::spawn(server.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)));
    addr
}

/// A Sentinel drives a gateway served over mutual TLS at `https://`, with
/// the client certificate and, when `trust_ca`, the test CA in its
/// `shield_endpoints` entry; answers the anomaly's action and whether the
/// gateway then refuses the user.
async fn remote_shield_over_tls(trust_ca: bool) -> (Value, StatusCode) {
    let pki = pki();
    let shield = app().await;
    let shield_addr = serve_tls(shield.router.clone(), &pki).await;
    let shield_key = make_key(&shield.router, "default", &["triage"]).await;
    let dir = temp_dir();
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let tls = llmsec_server::config::ShieldEndpoint {
        key_file: Some(file("shield.key", &shield_key)),
        ca_file: trust_ca.then(|| file("ca.pem", &pki.ca)),
        client_cert_file: Some(file("client.pem", &pki.client.0)),
        client_key_file: Some(file("client.key", &pki.client.1)),
        ..Default::default()
    };
    let endpoint = format!("https://127.0.0.1:{}", shield_addr.port());
    let detectors = file(
        "detectors.yaml",
        &format!(
            "detectors:\n  - id: pi\n    type: ml\n    threshold: 0.5\n    actions:\n      - type: shield\n        config: {{endpoint: \"{endpoint}\", action: block, duration: 1h}}\n"
        ),
    );
    let sentinel = app_with(|c| {
        c.sentinel.detectors = Some(detectors.clone());
        c.sentinel.shield_endpoints.insert(endpoint.clone(), tls);
    })
    .await;
    let event = json!({
        "event_id": "e-tls-1", "timestamp": chrono::Utc::now().to_rfc3339(), "event_type": "llm.request",
        "application_id": "chatbot", "data": {"model": "gpt-4o", "prompt": ATTACK}, "metadata": {"user_id": "mallory"}
    });
    let r = post(&sentinel.router, "/api/v1/telemetry/events", ADMIN, event).await;
    assert!(r.status.is_success(), "{}", r.text);
    let anomaly = eventually(10, || async {
        let r = get(&sentinel.router, "/api/v1/anomalies", ADMIN).await;
        r.body["anomalies"].as_array().and_then(|a| a.first().cloned())
    })
    .await;
    let answer =
        post(&shield.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN, "user_id": "mallory"})).await;
    (anomaly["actions_taken"][0].clone(), answer.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_drives_a_remote_shield_over_mutual_tls_with_a_trusted_ca() {
    let (action, refused) = remote_shield_over_tls(true).await;
    assert_eq!(action["status"], "succeeded", "{action}");
    assert!(action["id"].as_str().unwrap().starts_with("shd_"), "{action}");
    assert_eq!(refused, StatusCode::FORBIDDEN, "the gateway blocks the user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shield_whose_certificate_is_not_trusted_is_not_called_and_the_action_says_why() {
    let (action, answer) = remote_shield_over_tls(false).await;
    assert_eq!(action["status"], "failed", "{action}");
    let message = action["message"].as_str().unwrap();
    assert!(message.contains("certificate") && message.contains("UnknownIssuer"), "{message}");
    assert_eq!(answer, StatusCode::OK, "nothing was enforced");
}

#[test]
fn tls_settings_of_a_shield_endpoint_are_checked() {
    let check = |endpoint: &str, e: llmsec_server::config::ShieldEndpoint| {
        let mut c = config();
        c.sentinel.shield_endpoints.insert(endpoint.into(), e);
        c.sentinel.check(&llm_sentinel::SentinelConfig::default())
    };
    let key = || llmsec_server::config::ShieldEndpoint { key_env: Some("K".into()), ..Default::default() };
    let ca = llmsec_server::config::ShieldEndpoint { ca_file: Some("ca.pem".into()), ..key() };
    let e = check("shield.internal:8080", ca.clone()).unwrap_err();
    assert!(e.contains("ca_file: needs an https:// endpoint"), "{e}");
    assert!(check("https://shield.internal:8443", ca).is_ok());
    let half = llmsec_server::config::ShieldEndpoint { client_cert_file: Some("c.pem".into()), ..key() };
    let e = check("https://shield.internal:8443", half).unwrap_err();
    assert!(e.contains("client_cert_file and client_key_file together"), "{e}");
}

#[tokio::test]
async fn a_lockdown_refuses_every_analysis_of_the_tenant_until_lifted_and_is_audited() {
    let t = app().await;
    let triage = make_key(&t.router, "default", &["triage", "read"]).await;
    let reader = make_key(&t.router, "default", &["read"]).await;
    let other = make_key(&t.router, "acme", &["analyze"]).await;

    let state = get(&t.router, "/api/v1/lockdown", &reader).await;
    assert_eq!((state.status, &state.body["locked_down"]), (StatusCode::OK, &json!(false)), "{}", state.text);
    let refused = post(&t.router, "/api/v1/lockdown", &reader, json!({})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "a read key cannot lock down: {}", refused.text);
    let bad = post(&t.router, "/api/v1/lockdown", &triage, json!({"duration_secs": 0})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(bad.text.contains("duration_secs"), "{}", bad.text);
    let unknown = post(&t.router, "/api/v1/lockdown", &triage, json!({"reasn": "typo"})).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
    assert!(unknown.text.contains("reasn"), "{}", unknown.text);

    let on =
        post(&t.router, "/api/v1/lockdown", &triage, json!({"reason": "breach drill", "duration_secs": 600})).await;
    assert_eq!(on.status, StatusCode::CREATED, "{}", on.text);
    let id = on.body["enforcement"]["id"].as_str().unwrap().to_owned();
    assert_eq!(on.body["enforcement"]["entity"], json!({"type": "tenant", "id": "default"}));
    // Lockdowns do not stack: the one in force comes back.
    let again = post(&t.router, "/api/v1/lockdown", &triage, json!({})).await;
    assert_eq!((again.status, again.body["enforcement"]["id"].as_str()), (StatusCode::OK, Some(id.as_str())));

    for user in [None, Some("alice")] {
        let mut body = json!({"input": BENIGN});
        if let Some(u) = user {
            body["user_id"] = json!(u);
        }
        let r = post(&t.router, "/api/security/analyze", ADMIN, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(r.text.contains("system lockdown: breach drill"), "{}", r.text);
    }
    // Another tenant is not locked down.
    let theirs = post(&t.router, "/api/security/analyze", &other, json!({"input": BENIGN})).await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.text);
    let state = get(&t.router, "/api/v1/lockdown", &reader).await;
    assert_eq!(state.body["locked_down"], true);

    let off = send(&t.router, axum::http::Method::DELETE, "/api/v1/lockdown", Some(&triage), None).await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text);
    assert_eq!(off.body["ended"], json!([id]));
    let ok = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let off = send(&t.router, axum::http::Method::DELETE, "/api/v1/lockdown", Some(&triage), None).await;
    assert_eq!(off.body["ended"], json!([]), "lifting twice ends nothing");

    let log = get(&t.router, "/api/admin/audit", ADMIN).await;
    assert!(log.text.contains("lockdown.start") && log.text.contains("lockdown.lift"), "{}", log.text);
}

#[tokio::test]
async fn an_enforcement_ends_over_rest_and_another_tenants_id_is_not_found() {
    let t = app().await;
    let addr = serve(t.router.clone()).await;
    let triage = make_key(&t.router, "default", &["triage"]).await;
    let theirs = make_key(&t.router, "acme", &["triage"]).await;
    let mut c = client(addr, &triage).await;
    let r = c.enforce_action(block("an_rest", "session:s-9")).await.unwrap().into_inner();
    let path = format!("/api/v1/enforcements/{}", r.enforcement_id);

    let foreign = send(&t.router, axum::http::Method::DELETE, &path, Some(&theirs), None).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.text);
    let refused = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN, "session_id": "s-9"})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let ended = send(&t.router, axum::http::Method::DELETE, &path, Some(&triage), None).await;
    assert_eq!((ended.status, &ended.body["ended"]), (StatusCode::OK, &json!(true)), "{}", ended.text);
    let ok = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN, "session_id": "s-9"})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let twice = send(&t.router, axum::http::Method::DELETE, &path, Some(&triage), None).await;
    assert_eq!(twice.body["ended"], json!(false));
    let log = get(&t.router, "/api/admin/audit", ADMIN).await;
    assert!(log.text.contains("enforcement.end"), "{}", log.text);
}

#[tokio::test]
async fn lockdown_and_enforcements_over_graphql() {
    let t = app().await;
    let triage = make_key(&t.router, "default", &["triage", "read"]).await;
    let reader = make_key(&t.router, "default", &["read"]).await;
    let gql = |key: &str, query: &str| {
        let (router, key, query) = (t.router.clone(), key.to_owned(), query.to_owned());
        async move { post(&router, "/graphql", &key, json!({"query": query})).await.body }
    };
    let denied = gql(&reader, "mutation { lockdown(reason: \"x\") { id } }").await;
    assert!(denied["errors"][0]["message"].as_str().unwrap().contains("triage"), "{denied}");
    let on = gql(
        &triage,
        "mutation { lockdown(reason: \"drill\", durationSecs: 120) { id action reason entity { type id } } }",
    )
    .await;
    let id = on["data"]["lockdown"]["id"].as_str().expect("a lockdown id").to_owned();
    assert_eq!(on["data"]["lockdown"]["entity"], json!({"type": "tenant", "id": "default"}));
    assert_eq!(on["data"]["lockdown"]["reason"], "system lockdown: drill");
    let q = gql(&reader, "{ lockdown { id } enforcements { id action } }").await;
    assert_eq!(q["data"]["lockdown"]["id"], id.as_str(), "{q}");
    assert_eq!(q["data"]["enforcements"], json!([{"id": id, "action": "block"}]));
    let refused = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let bad = gql(&triage, "mutation { lockdown(durationSecs: 99999999) { id } }").await;
    assert_eq!(bad["errors"][0]["extensions"]["field"], "durationSecs", "{bad}");
    let ended = gql(&triage, &format!("mutation {{ endEnforcement(id: \"{id}\") }}")).await;
    assert_eq!(ended["data"]["endEnforcement"], true, "{ended}");
    let lifted = gql(&triage, "mutation { liftLockdown }").await;
    assert_eq!(lifted["data"]["liftLockdown"], json!([]), "already ended: {lifted}");
    let q = gql(&reader, "{ lockdown { id } }").await;
    assert_eq!(q["data"]["lockdown"], Value::Null);
}
