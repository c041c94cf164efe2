//! Effects in order: subscribers hear of a threat or an anomaly only once
//! the store has committed it; and the files that hold it are owner-only.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use sqlx::Executor;
use tokio::sync::broadcast::error::TryRecvError;

use crate::common::*;

/// A second connection to the server's SQLite file, to make its writes
/// fail. One connection: SQLite checks a statement against the schema its
/// connection last read, so triggers made and dropped on several would
/// trip over each other.
async fn raw(t: &TestApp) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    sqlx::SqliteConnection::connect(&t.server.state().config.database_url()).await.unwrap()
}

/// Makes every insert (and update) of `table` fail, as a full disk would.
async fn refuse_writes(db: &mut sqlx::SqliteConnection, table: &str) {
    for op in ["INSERT", "UPDATE"] {
        let sql = format!(
            "CREATE TRIGGER refuse_{op}_{table} BEFORE {op} ON {table} BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        );
        (&mut *db).execute(sql.as_str()).await.unwrap();
    }
}

async fn allow_writes(db: &mut sqlx::SqliteConnection, table: &str) {
    for op in ["INSERT", "UPDATE"] {
        (&mut *db).execute(format!("DROP TRIGGER refuse_{op}_{table}").as_str()).await.unwrap();
    }
}

#[tokio::test]
async fn a_threat_whose_event_fails_to_commit_is_not_published() {
    let t = app().await;
    let mut db = raw(&t).await;
    let mut feed = t.server.state().threat_feed.subscribe();
    refuse_writes(&mut db, "security_events").await;
    let r = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": ATTACK})).await;
    assert!(r.status.is_server_error(), "{} {}", r.status, r.text);
    assert_eq!(feed.try_recv().unwrap_err(), TryRecvError::Empty, "a lost event was published");

    allow_writes(&mut db, "security_events").await;
    let r = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": ATTACK})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let notice = feed.try_recv().unwrap();
    assert_eq!(notice.event.id, r.body["event_id"].as_str().unwrap());
    assert!(!notice.threats.is_empty());
    assert_eq!(feed.try_recv().unwrap_err(), TryRecvError::Empty);
}

/// Waits until Sentinel has processed every stored event.
async fn processed(state: &llmsec_server::AppState) {
    eventually(10, || {
        let store = state.store.clone();
        async move { store.pending_telemetry(10).await.unwrap().is_empty().then_some(()) }
    })
    .await
}

#[tokio::test]
async fn an_anomaly_that_fails_to_store_is_not_published() {
    let dir = temp_dir();
    let detectors = dir.join("d.yaml");
    std::fs::write(&detectors, "detectors:\n  - id: pi\n    type: ml\n    threshold: 0.5\n").unwrap();
    let t = app_with(|c| c.sentinel.detectors = Some(detectors.clone())).await;
    let mut db = raw(&t).await;
    let state = t.server.state();
    let mut feed = state.sentinel.feed.subscribe();
    let attack = |id: &str, user: &str| {
        json!({"event_id": id, "timestamp": "2026-11-26T10:00:00Z", "event_type": "llm.request",
               "application_id": "chatbot", "data": {"prompt": ATTACK}, "metadata": {"user_id": user}})
    };

    // Detected, but the store refuses the anomaly: nobody hears of it.
    refuse_writes(&mut db, "anomalies").await;
    let r = post(&t.router, "/api/v1/telemetry/events", ADMIN, attack("e1", "mallory")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    processed(state).await;
    assert_eq!(feed.try_recv().unwrap_err(), TryRecvError::Empty, "an unstored anomaly was published");
    assert_eq!(get(&t.router, "/api/v1/anomalies", ADMIN).await.body["total_count"], 0);

    // Stored: published, and what subscribers see is what the store holds.
    allow_writes(&mut db, "anomalies").await;
    post(&t.router, "/api/v1/telemetry/events", ADMIN, attack("e2", "trudy")).await;
    let notice = tokio::time::timeout(Duration::from_secs(10), feed.recv()).await.unwrap().unwrap();
    let id = notice.anomaly.id.clone();
    assert_eq!(notice.anomaly.affected_entity.id, "trudy");
    assert!(state.store.anomaly("default", &id).await.unwrap().is_some());

    // A status change the store refuses answers 5xx and is not published.
    refuse_writes(&mut db, "anomalies").await;
    let path = format!("/api/v1/anomalies/{id}/acknowledge");
    let r = post(&t.router, &path, ADMIN, json!({"acknowledged_by": "soc"})).await;
    assert!(r.status.is_server_error(), "{} {}", r.status, r.text);
    assert_eq!(feed.try_recv().unwrap_err(), TryRecvError::Empty, "an unstored acknowledgement was published");
    allow_writes(&mut db, "anomalies").await;
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_and_database_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    // Created by the server.
    let fresh = temp_dir().join("nested").join("data");
    let t = app_with(|c| c.data_dir = fresh.clone()).await;
    let r = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": ATTACK})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(mode(&fresh), 0o700);
    for f in ["llmsec.db", "llmsec.db-wal", "llmsec.db-shm"] {
        assert_eq!(mode(&fresh.join(f)), 0o600, "{f}");
    }

    // Left open to others by an earlier run: closed at start.
    let old = temp_dir();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = old.join("llmsec.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let t = app_with(|c| c.data_dir = old.clone()).await;
    let r = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": ATTACK})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(mode(&old), 0o700);
    for f in ["llmsec.db", "llmsec.db-wal", "llmsec.db-shm"] {
        assert_eq!(mode(&old.join(f)), 0o600, "{f}");
    }
}
