//! Read answers never carry a secret (webhook signing secrets, tokens,
//! header values), REST or GraphQL, whatever the scope; URLs are masked
//! for callers without `admin`.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::*;

const SECRET: &str = "subscription-secret-0123";

const WEBHOOK_SECRET: &str = "whsec-do-not-leak-0123";
const FULL_URL: &str = "https://user:pw@hooks.example.com/services/T0/B0/XYZ?token=abc#frag";

#[tokio::test]
async fn read_keys_see_detector_actions_without_secrets_and_with_masked_urls() {
    let dir = temp_dir();
    let detectors = dir.join("d.yaml");
    std::fs::write(
        &detectors,
        format!(
            "detectors:\n  - id: pi\n    type: ml\n    threshold: 0.5\n    actions:\n      - type: webhook\n        config: {{url: '{FULL_URL}', secret: '{WEBHOOK_SECRET}'}}\n      - type: incident\n        config: {{url: 'https://incidents.example.com/base?api_key=k123'}}\n"
        ),
    )
    .unwrap();
    let t = app_with(|c| c.sentinel.detectors = Some(detectors.clone())).await;
    let reader = make_key(&t.router, "acme", &["read"]).await;
    let admin = make_key(&t.router, "acme", &["read", "admin"]).await;
    let q = json!({"query": "{ detectors { id config actions } }"});

    let r = post(&t.router, "/graphql", &reader, q.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for leak in [WEBHOOK_SECRET, "pw@", "token=abc", "XYZ", "k123", "#frag"] {
        assert!(!r.text.contains(leak), "{leak} in {}", r.text);
    }
    let actions = &r.body["data"]["detectors"][0]["actions"];
    assert_eq!(actions[0]["config"]["url"], "https://***@hooks.example.com/***?***#***", "{actions}");
    assert_eq!(actions[0]["config"]["secret"], "[redacted]");
    assert_eq!(actions[1]["config"]["url"], "https://incidents.example.com/***?***");

    let r = post(&t.router, "/graphql", &admin, q).await;
    assert!(!r.text.contains(WEBHOOK_SECRET), "{}", r.text);
    let actions = &r.body["data"]["detectors"][0]["actions"];
    assert_eq!(actions[0]["config"]["url"], FULL_URL, "admins see URLs whole");
    assert_eq!(actions[0]["config"]["secret"], "[redacted]");

    // A change made through the API: not in its answer, nor in the audit log read back.
    let m = format!(
        "mutation {{ updateDetector(id: \"pi\", config: {{actions: [{{type: \"webhook\", config: {{url: \"{FULL_URL}\", secret: \"whsec-new-secret-0456\"}}}}]}}) {{ id actions }} }}"
    );
    let r = post(&t.router, "/graphql", &admin, json!({"query": m})).await;
    assert_eq!(r.body["data"]["updateDetector"]["actions"][0]["config"]["secret"], "[redacted]", "{}", r.text);
    let audit = get(&t.router, "/api/admin/audit?limit=1000", ADMIN).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    assert!(audit.text.contains("detector.update"), "{}", audit.text);
    assert!(!audit.text.contains("whsec-new-secret-0456"), "{}", audit.text);

    // Webhook subscriptions: listed to admins only, never with their secret.
    let r = post(
        &t.router,
        "/api/webhooks",
        &admin,
        json!({"url": "https://user:pw@hooks.example.com/x?token=abc", "secret": SECRET}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(!r.text.contains(SECRET));
    let listed = get(&t.router, "/api/webhooks", &reader).await;
    assert_eq!(listed.status, StatusCode::FORBIDDEN);
    assert!(!listed.text.contains("hooks.example.com"));
    let listed = get(&t.router, "/api/webhooks", &admin).await;
    assert_eq!(listed.body["webhooks"][0]["url"], "https://user:pw@hooks.example.com/x?token=abc", "{}", listed.text);
    assert!(!listed.text.contains(SECRET), "{}", listed.text);
}
