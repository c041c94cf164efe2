//! The NATS JetStream sink against a real nats-server.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use llmsec_connect::OutboxPublisher;
use llmsec_connect::nats::{NatsSink, NatsSinkConfig};

use super::{Rec, env_or_skip, unique};

const URL_ENV: &str = "LLMSEC_TEST_NATS_URL";
const PASSWORD_ENV: &str = "LLMSEC_TEST_NATS_PASSWORD";

/// A sink config for the shared server: user `llmsec` when it has a password.
fn config(url: &str, prefix: &str, stream: &str) -> NatsSinkConfig {
    let mut toml = format!(
        "url = \"{url}\"\nsubject = \"{prefix}.{{event}}.{{tenant}}\"\nstream = \"{stream}\"\ncreate_stream = true\n"
    );
    if std::env::var(PASSWORD_ENV).is_ok_and(|p| !p.is_empty()) {
        toml.push_str(&format!("user = \"llmsec\"\npassword_env = \"{PASSWORD_ENV}\"\n"));
    }
    toml::from_str(&toml).unwrap()
}

/// A JetStream context of a consumer, as a downstream service would have.
async fn context(url: &str) -> jetstream::Context {
    let options = match std::env::var(PASSWORD_ENV) {
        Ok(p) if !p.is_empty() => async_nats::ConnectOptions::with_user_and_password("llmsec".into(), p),
        _ => async_nats::ConnectOptions::new(),
    };
    jetstream::new(options.connect(url).await.unwrap())
}

fn header<'a>(m: &'a jetstream::message::StreamMessage, name: &str) -> Option<&'a str> {
    m.headers.get(name).map(|v| v.as_str())
}

#[tokio::test]
async fn records_are_stored_with_their_headers_and_subjects() {
    let Some(url) = env_or_skip(URL_ENV, "records_are_stored_with_their_headers_and_subjects") else { return };
    let (prefix, stream_name) = (unique("t"), unique("LLMSEC_T_"));
    let sink = NatsSink::new(&config(&url, &prefix, &stream_name)).unwrap();
    let records: Vec<Rec> = (0..25)
        .map(|i| {
            let event = ["anomaly.detected", "security_event", "anomaly.resolved"][i % 3];
            // A tenant a subject cannot hold as it is: space and wildcards.
            Rec::new(i, event, ["acme", "big corp*>"][i % 2])
        })
        .collect();
    for r in &records {
        sink.publish(r.record()).await.unwrap();
    }

    let js = context(&url).await;
    let stream = js.get_stream(&stream_name).await.unwrap();
    let info = stream.get_info().await.unwrap();
    assert_eq!(info.config.subjects, [format!("{prefix}.>")]);
    assert_eq!(info.state.messages, records.len() as u64);
    for (seq, r) in (1..).zip(&records) {
        let m = stream.get_raw_message(seq).await.unwrap();
        assert_eq!(m.payload.as_ref(), r.body.as_slice());
        let tenant = if r.tenant == "acme" { "acme" } else { "big_corp__" };
        assert_eq!(m.subject.as_str(), format!("{prefix}.{}.{tenant}", r.event));
        assert_eq!(header(&m, "Nats-Msg-Id"), Some(r.id.as_str()));
        assert_eq!(header(&m, "idempotency-key"), Some(r.id.as_str()));
        assert_eq!(header(&m, "event"), Some(r.event.as_str()));
        // The header keeps the tenant as it is.
        assert_eq!(header(&m, "tenant"), Some(r.tenant.as_str()));
        assert_eq!(header(&m, "Content-Type"), Some("application/json"));
    }
    js.delete_stream(&stream_name).await.unwrap();
}

#[tokio::test]
async fn a_record_published_again_with_its_idempotency_key_is_stored_once() {
    let Some(url) = env_or_skip(URL_ENV, "a_record_published_again_with_its_idempotency_key_is_stored_once") else {
        return;
    };
    let (prefix, stream_name) = (unique("t"), unique("LLMSEC_T_"));
    let sink = NatsSink::new(&config(&url, &prefix, &stream_name)).unwrap();
    let r = Rec::new(0, "anomaly.detected", "acme");
    // Three attempts of one delivery (a retry after a lost acknowledgement): each is acknowledged.
    for _ in 0..3 {
        sink.publish(r.record()).await.unwrap();
    }
    // A second sink (another replica, or a restart) publishing it again.
    let again = NatsSink::new(&config(&url, &prefix, &stream_name)).unwrap();
    again.publish(r.record()).await.unwrap();
    let other = Rec::new(1, "anomaly.detected", "acme");
    sink.publish(other.record()).await.unwrap();

    let js = context(&url).await;
    let stream = js.get_stream(&stream_name).await.unwrap();
    assert_eq!(stream.get_info().await.unwrap().state.messages, 2);
    assert_eq!(stream.get_raw_message(1).await.unwrap().payload.as_ref(), r.body.as_slice());
    assert_eq!(stream.get_raw_message(2).await.unwrap().payload.as_ref(), other.body.as_slice());
    js.delete_stream(&stream_name).await.unwrap();
}

#[tokio::test]
async fn a_stream_deleted_under_the_sink_is_created_again_by_the_next_publish() {
    let Some(url) = env_or_skip(URL_ENV, "a_stream_deleted_under_the_sink_is_created_again_by_the_next_publish") else {
        return;
    };
    let (prefix, stream_name) = (unique("t"), unique("LLMSEC_T_"));
    let sink = NatsSink::new(&config(&url, &prefix, &stream_name)).unwrap();
    sink.publish(Rec::new(0, "anomaly.detected", "acme").record()).await.unwrap();
    let js = context(&url).await;
    js.delete_stream(&stream_name).await.unwrap();
    let r = Rec::new(1, "anomaly.detected", "acme");
    let err = sink.publish(r.record()).await.unwrap_err();
    assert!(err.0.contains("no stream found"), "{err}");
    // The outbox's retry.
    sink.publish(r.record()).await.unwrap();
    let stream = js.get_stream(&stream_name).await.unwrap();
    assert_eq!(stream.get_info().await.unwrap().state.messages, 1);
    assert_eq!(stream.get_raw_message(1).await.unwrap().payload.as_ref(), r.body.as_slice());
    js.delete_stream(&stream_name).await.unwrap();
}

#[tokio::test]
async fn a_subject_no_stream_takes_or_another_stream_takes_is_a_publish_error() {
    let Some(url) = env_or_skip(URL_ENV, "a_subject_no_stream_takes_or_another_stream_takes_is_a_publish_error") else {
        return;
    };
    // No stream at all for the subject.
    let mut cfg = config(&url, &unique("nostream"), "unused");
    cfg.create_stream = false;
    cfg.stream = None;
    let sink = NatsSink::new(&cfg).unwrap();
    let err = sink.publish(Rec::new(0, "anomaly.detected", "acme").record()).await.unwrap_err();
    assert!(err.0.starts_with("nats: publishing to nostream"), "{err}");

    // A stream named in the config that does not exist: found at connect.
    let mut cfg = config(&url, &unique("t"), &unique("LLMSEC_MISSING_"));
    cfg.create_stream = false;
    let err = NatsSink::new(&cfg).unwrap().connect().await.unwrap_err();
    assert!(err.0.contains("stream LLMSEC_MISSING_"), "{err}");

    // The subject is stored by stream A, but the config expects stream B.
    let (prefix, a, b) = (unique("t"), unique("LLMSEC_A_"), unique("LLMSEC_B_"));
    NatsSink::new(&config(&url, &prefix, &a)).unwrap().connect().await.unwrap();
    NatsSink::new(&config(&url, &unique("t"), &b)).unwrap().connect().await.unwrap();
    let mut cfg = config(&url, &prefix, &b);
    cfg.create_stream = false;
    let sink = NatsSink::new(&cfg).unwrap();
    let err = sink.publish(Rec::new(1, "anomaly.detected", "acme").record()).await.unwrap_err();
    assert!(err.0.contains("expected stream"), "{err}");
    let js = context(&url).await;
    assert_eq!(js.get_stream(&a).await.unwrap().get_info().await.unwrap().state.messages, 0);
    js.delete_stream(&a).await.unwrap();
    js.delete_stream(&b).await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_is_a_publish_error_that_does_not_show_it() {
    let Some(url) = env_or_skip(URL_ENV, "a_wrong_password_is_a_publish_error_that_does_not_show_it") else {
        return;
    };
    if env_or_skip(PASSWORD_ENV, "a_wrong_password_is_a_publish_error_that_does_not_show_it").is_none() {
        return;
    }
    let mut cfg = config(&url, &unique("t"), &unique("LLMSEC_T_"));
    // A variable the tests can read that certainly is not the password: the URL.
    cfg.password_env = Some(URL_ENV.into());
    let sink = NatsSink::new(&cfg).unwrap();
    let err = sink.publish(Rec::new(0, "e", "t").record()).await.unwrap_err();
    assert!(err.0.contains("authorization"), "{err}");
    assert!(!err.0.contains(&url) && !format!("{sink:?}").contains(&url), "{err}");
}

/// A nats-server with JetStream of this test's own, on a port and store
/// directory that stay the same across restarts.
struct OwnServer {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl OwnServer {
    fn new() -> OwnServer {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(unique("llmsec-nats-"));
        let mut s = OwnServer { port, dir, child: None };
        s.start();
        s
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_stopped_server_fails_the_publish_and_a_publish_after_its_restart_succeeds() {
    if env_or_skip(URL_ENV, "a_stopped_server_fails_the_publish_and_a_publish_after_its_restart_succeeds").is_none() {
        return;
    }
    // The shared server may be elsewhere; this test stops and starts one of its own.
    if Command::new("nats-server").arg("--version").output().is_err() {
        eprintln!("skipped a_stopped_server_…: nats-server is not on PATH (scripts/nats.sh installs it)");
        return;
    }
    let mut server = OwnServer::new();
    let url = server.url();
    let stream_name = unique("LLMSEC_T_");
    let cfg: NatsSinkConfig =
        toml::from_str(&format!("url = \"{url}\"\nstream = \"{stream_name}\"\ncreate_stream = true\n")).unwrap();
    let sink = NatsSink::new(&cfg).unwrap();
    let before = Rec::new(0, "anomaly.detected", "acme");
    sink.publish(before.record()).await.unwrap();

    server.stop();
    let during = Rec::new(1, "anomaly.detected", "acme");
    let started = Instant::now();
    let err = sink.publish(during.record()).await.unwrap_err();
    assert!(err.0.starts_with("nats: publishing to llmsec.anomaly.detected.acme"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(11), "a publish waits at most its timeout");

    server.start();
    // The client reconnects by itself (with backoff); the outbox's next
    // attempt after that succeeds.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match sink.publish(during.record()).await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "no reconnect within 30 s: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    let stream = js.get_stream(&stream_name).await.unwrap();
    // The record from before the restart is on disk, the one during it once.
    assert_eq!(stream.get_info().await.unwrap().state.messages, 2);
    assert_eq!(stream.get_raw_message(1).await.unwrap().payload.as_ref(), before.body.as_slice());
    assert_eq!(stream.get_raw_message(2).await.unwrap().payload.as_ref(), during.body.as_slice());
}
