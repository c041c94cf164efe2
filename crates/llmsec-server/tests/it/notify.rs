//! E-mail and SMS alert receivers end to end: a server whose detector's
//! `alert` action names them, an anomaly raised with telemetry, and the
//! outbox delivering to stand-ins written here on 127.0.0.1 (no mail server
//! or SMS provider runs on the build machines): a small SMTP server
//! speaking enough of RFC 5321 (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT)
//! and an axum app answering like Twilio's Messages API.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use llmsec_server::sentinel::Receiver;
use llmsec_store::DeliveryStatus;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::*;

/// One DATA the SMTP stand-in received, with the session it came in.
#[derive(Debug, Clone, Default)]
struct Mail {
    /// `user\0password` of AUTH PLAIN (authzid dropped).
    auth: Option<(String, String)>,
    from: String,
    to: Vec<String>,
    /// The message as sent (dot-unstuffed, CRLF line ends).
    data: String,
    /// Whether it was answered 250.
    accepted: bool,
}

impl Mail {
    /// A header's value (first occurrence, unfolded).
    fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut out: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = out.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                out = Some(v.trim().to_owned());
            }
        }
        out
    }

    fn body(&self) -> &str {
        self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }
}

/// The SMTP stand-in: records every DATA and answers it with
/// `answer(index)` (`250 …` accepts it).
#[derive(Clone)]
struct Smtp {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Mail>>>,
}

impl Smtp {
    async fn start(answer: fn(usize) -> &'static str) -> Smtp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let g = got.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                tokio::spawn(session(sock, g.clone(), answer));
            }
        });
        Smtp { addr, got }
    }

    fn all(&self) -> Vec<Mail> {
        self.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Mail> {
        eventually(15, || async move { Some(self.all()).filter(|g| g.len() >= n) }).await
    }
}

/// One SMTP session.
async fn session(sock: tokio::net::TcpStream, got: Arc<Mutex<Vec<Mail>>>, answer: fn(usize) -> &'static str) {
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r).lines();
    let mut mail = Mail::default();
    w.write_all(b"220 stand-in ESMTP ready\r\n").await.unwrap();
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-stand-in greets you\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 1000000\r\n".into()
        } else if upper.starts_with("AUTH PLAIN ") {
            let raw = base64::engine::general_purpose::STANDARD.decode(line[11..].trim()).unwrap();
            let parts: Vec<String> = raw.split(|b| *b == 0).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
            mail.auth = Some((parts[1].clone(), parts[2].clone()));
            "235 2.7.0 Authentication successful\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            let addr = line[10..].split_whitespace().next().unwrap_or_default();
            mail.from = addr.trim_matches(['<', '>']).to_owned();
            mail.to.clear();
            "250 2.1.0 OK\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
            "250 2.1.5 OK\r\n".into()
        } else if upper == "DATA" {
            w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await.unwrap();
            let mut data = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
                data.push_str("\r\n");
            }
            let mut all = got.lock().unwrap();
            let reply = answer(all.len());
            all.push(Mail { data, accepted: reply.starts_with("250"), ..mail.clone() });
            format!("{reply}\r\n")
        } else if upper == "QUIT" {
            let _ = w.write_all(b"221 2.0.0 bye\r\n").await;
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 OK\r\n".into()
        } else {
            "502 5.5.2 command not recognized\r\n".into()
        };
        if w.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// One request the SMS stand-in received.
#[derive(Debug, Clone)]
struct Sms {
    account: String,
    authorization: String,
    form: Vec<(String, String)>,
}

impl Sms {
    fn field(&self, k: &str) -> &str {
        self.form.iter().find(|(n, _)| n == k).map_or("", |(_, v)| v.as_str())
    }
}

/// The SMS stand-in: `answer` gets the request's index and gives the status.
#[derive(Clone)]
struct SmsApi {
    url: String,
    got: Arc<Mutex<Vec<Sms>>>,
}

impl SmsApi {
    async fn start(answer: fn(usize) -> StatusCode) -> SmsApi {
        let got: Arc<Mutex<Vec<Sms>>> = Arc::default();
        let g = got.clone();
        let app = axum::Router::new().route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            axum::routing::post(move |Path(sid): Path<String>, headers: HeaderMap, body: String| {
                let g = g.clone();
                async move {
                    let mut all = g.lock().unwrap();
                    let status = answer(all.len());
                    all.push(Sms {
                        account: sid,
                        authorization: headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned(),
                        form: url::form_urlencoded::parse(body.as_bytes()).into_owned().collect(),
                    });
                    let body = if status.is_success() {
                        json!({"sid": format!("SM{:032}", all.len()), "status": "queued"})
                    } else {
                        json!({"code": 21211, "message": "stand-in refusal", "status": status.as_u16()})
                    };
                    (status, [("content-type", "application/json")], body.to_string())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        SmsApi { url, got }
    }

    fn all(&self) -> Vec<Sms> {
        self.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Sms> {
        eventually(15, || async move { Some(self.all()).filter(|g| g.len() >= n) }).await
    }
}

fn accept(_: usize) -> &'static str {
    "250 2.0.0 queued"
}

/// The first DATA is answered 451 (try again later), the next accepted.
fn busy_then_accept(i: usize) -> &'static str {
    if i == 0 { "451 4.3.0 try again later" } else { accept(i) }
}

/// A receiver entry as the config file would hold it.
fn receiver(toml_entry: &str) -> Receiver {
    toml::from_str(toml_entry).unwrap()
}

/// Environment variables the test process always has (the tests cannot
/// set any: unsafe code is forbidden): the password and token are read from
/// these, and the stand-ins must receive their values.
const PASSWORD_VAR: &str = "CARGO_MANIFEST_DIR";
const TOKEN_VAR: &str = "CARGO_PKG_NAME";

fn env(var: &str) -> String {
    std::env::var(var).unwrap()
}

fn mail_receiver(smtp: &Smtp) -> Receiver {
    receiver(&format!(
        "name='soc-mail'\ntype='email'\nsmtp_host='127.0.0.1'\nsmtp_port={}\ntls='none'\nusername='alerts@example.com'\n\
         password_env='{PASSWORD_VAR}'\nfrom='LLM Sentinel <sentinel@example.com>'\nto=['soc@example.com', 'Bob <bob@example.org>']\n\
         subject_prefix='[llmsec]'",
        smtp.addr.port()
    ))
}

fn sms_receiver(api: &SmsApi) -> Receiver {
    receiver(&format!(
        "name='oncall-sms'\ntype='sms'\nurl='{}'\naccount_sid='AC0123456789abcdef'\ntoken_env='{TOKEN_VAR}'\n\
         from='+15550001111'\nto=['+15552223333', '+447700900123']",
        api.url
    ))
}

/// A detectors file whose slow-call rule alerts `receivers`.
fn detectors(receivers: &str) -> std::path::PathBuf {
    let path = temp_dir().join("detectors.yaml");
    std::fs::write(
        &path,
        format!(
            "detectors:\n  - id: slow-call\n    type: rule\n    severity: critical\n    config: {{expression: \"data.latency_ms > 5000\", group_by: application}}\n    actions:\n      - type: alert\n        config: {{receivers: [{receivers}]}}\n"
        ),
    )
    .unwrap();
    path
}

async fn raise_anomaly(t: &TestApp, app: &str) {
    let slow = json!({"event_id": format!("slow-{app}"), "timestamp": chrono::Utc::now().to_rfc3339(),
        "event_type": "llm.request", "application_id": app, "data": {"latency_ms": 9000.0}});
    let r = post(&t.router, "/api/v1/telemetry/events", ADMIN, slow).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

#[tokio::test]
async fn an_alert_reaches_the_smtp_server_and_the_sms_api() {
    let smtp = Smtp::start(accept).await;
    let api = SmsApi::start(|_| StatusCode::CREATED).await;
    let path = detectors("soc-mail, oncall-sms");
    let t = app_with(|c| {
        c.sentinel.detectors = Some(path.clone());
        c.sentinel.receivers = vec![mail_receiver(&smtp), sms_receiver(&api)];
    })
    .await;
    raise_anomaly(&t, "app-slow").await;

    let m = smtp.wait_for(1).await.remove(0);
    assert!(m.accepted);
    assert_eq!(m.auth, Some(("alerts@example.com".into(), env(PASSWORD_VAR))), "AUTH PLAIN with the env password");
    assert_eq!(m.from, "sentinel@example.com");
    assert_eq!(m.to, ["soc@example.com", "bob@example.org"]);
    // `[SEVERITY] <anomaly title>` after the receiver's prefix.
    assert_eq!(m.header("Subject").unwrap(), "[llmsec] [CRITICAL] rule slow-call matched");
    assert_eq!(m.header("From").unwrap(), "\"LLM Sentinel\" <sentinel@example.com>");
    let delivery = m.header("X-Llmsec-Delivery").unwrap();
    assert_eq!(m.header("Message-ID").unwrap(), format!("<{delivery}@llmsec.alerts>"));
    let body = m.body();
    for part in ["Detector     slow-call (rule)", "Entity       application app-slow", "Severity     CRITICAL"] {
        assert!(body.contains(part), "{part:?} missing from\n{body}");
    }
    let store = t.server.state().services.store.clone();
    let anomalies = get(&t.router, "/api/v1/anomalies", ADMIN).await;
    let id = anomalies.body["anomalies"][0]["id"].as_str().unwrap().to_owned();
    assert!(body.contains(&format!("Anomaly      {id}")), "{body}");

    let sms = api.wait_for(2).await;
    let to: std::collections::BTreeSet<&str> = sms.iter().map(|s| s.field("To")).collect();
    assert_eq!(to, ["+15552223333", "+447700900123"].into_iter().collect(), "one request per recipient");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("AC0123456789abcdef:{}", env(TOKEN_VAR)));
    for s in &sms {
        assert_eq!(s.account, "AC0123456789abcdef");
        assert_eq!(s.authorization, format!("Basic {basic}"));
        assert_eq!(s.field("From"), "+15550001111");
        assert!(s.field("Body").starts_with("[CRITICAL] "), "{}", s.field("Body"));
        assert!(s.field("Body").contains(&id), "{}", s.field("Body"));
    }
    let delivered = eventually(15, || {
        let store = store.clone();
        async move {
            let d = store.deliveries("default", Some(DeliveryStatus::Delivered), 10).await.unwrap();
            Some(d).filter(|d| d.len() >= 3)
        }
    })
    .await;
    let mut targets: Vec<&str> = delivered.iter().map(|d| d.webhook_id.as_str()).collect();
    targets.sort();
    assert_eq!(targets, ["mail:soc-mail", "sms:oncall-sms", "sms:oncall-sms"]);
    assert!(
        delivered.iter().all(|d| !d.payload.contains(&env(PASSWORD_VAR)) && !d.payload.contains(&env(TOKEN_VAR))),
        "no secret is queued"
    );
}

#[tokio::test]
async fn a_451_is_retried_with_the_same_message_id_and_a_refused_sms_is_dead_lettered() {
    let smtp = Smtp::start(busy_then_accept).await;
    // The SMS API refuses the number (400): retrying cannot help.
    let api = SmsApi::start(|_| StatusCode::BAD_REQUEST).await;
    let path = detectors("soc-mail, oncall-sms");
    let t = app_with(|c| {
        c.sentinel.detectors = Some(path.clone());
        let mut sms = sms_receiver(&api);
        sms.to.truncate(1);
        c.sentinel.receivers = vec![mail_receiver(&smtp), sms];
    })
    .await;
    raise_anomaly(&t, "app-retry").await;

    let mails = smtp.wait_for(2).await;
    assert_eq!((mails[0].accepted, mails[1].accepted), (false, true));
    let ids: Vec<Option<String>> = mails.iter().map(|m| m.header("Message-ID")).collect();
    assert!(ids[0].is_some());
    assert_eq!(ids[0], ids[1], "the retry is the same mail");
    assert_eq!(mails[0].body(), mails[1].body());

    let store = t.server.state().services.store.clone();
    let dead = eventually(15, || {
        let store = store.clone();
        async move {
            let d = store.deliveries("default", Some(DeliveryStatus::Dead), 10).await.unwrap();
            Some(d).filter(|d| !d.is_empty())
        }
    })
    .await;
    assert_eq!((dead[0].webhook_id.as_str(), dead[0].attempts), ("sms:oncall-sms", 1), "dead at the first 400");
    assert_eq!(dead[0].last_status, Some(400));
    assert_eq!(api.all().len(), 1);
    let mail = eventually(15, || {
        let store = store.clone();
        async move {
            let d = store.deliveries("default", Some(DeliveryStatus::Delivered), 10).await.unwrap();
            d.into_iter().find(|d| d.webhook_id == "mail:soc-mail")
        }
    })
    .await;
    assert_eq!(mail.attempts, 2);
}

#[tokio::test]
async fn an_smtp_server_the_egress_policy_refuses_gets_nothing_and_the_mail_is_dead_at_once() {
    let smtp = Smtp::start(accept).await;
    let path = detectors("soc-mail");
    let t = app_with(|c| {
        c.sentinel.detectors = Some(path.clone());
        c.sentinel.receivers = vec![mail_receiver(&smtp)];
        // The default policy: loopback and private addresses are refused.
        c.egress.allow = vec![];
    })
    .await;
    raise_anomaly(&t, "app-egress").await;
    let store = t.server.state().services.store.clone();
    let dead = eventually(15, || {
        let store = store.clone();
        async move {
            let d = store.deliveries("default", Some(DeliveryStatus::Dead), 10).await.unwrap();
            Some(d).filter(|d| !d.is_empty())
        }
    })
    .await;
    assert_eq!((dead[0].webhook_id.as_str(), dead[0].attempts), ("mail:soc-mail", 1));
    assert_eq!(dead[0].last_error.as_deref(), Some("egress refused"));
    assert!(smtp.all().is_empty(), "no connection was made");
}

#[tokio::test]
async fn a_5xx_smtp_answer_is_permanent_and_dead_letters_the_mail_at_once() {
    let smtp = Smtp::start(|_| "554 5.7.1 message refused").await;
    let path = detectors("soc-mail");
    let t = app_with(|c| {
        c.sentinel.detectors = Some(path.clone());
        c.sentinel.receivers = vec![mail_receiver(&smtp)];
    })
    .await;
    raise_anomaly(&t, "app-refused").await;
    let store = t.server.state().services.store.clone();
    let dead = eventually(15, || {
        let store = store.clone();
        async move {
            let d = store.deliveries("default", Some(DeliveryStatus::Dead), 10).await.unwrap();
            Some(d).filter(|d| !d.is_empty())
        }
    })
    .await;
    assert_eq!((dead[0].webhook_id.as_str(), dead[0].attempts), ("mail:soc-mail", 1));
    assert_eq!(dead[0].last_error.as_deref(), Some("SMTP permanent failure"));
    assert_eq!(smtp.all().len(), 1, "not retried");
}

#[tokio::test]
async fn the_security_profile_s_email_and_sms_switches_need_a_receiver_an_alert_names() {
    use llm_security::{IncidentResponse, ResponseControl, SecurityEngine};
    let engine = SecurityEngine::new().with_incident_response(IncidentResponse::new().with_notification(
        ResponseControl::Notification {
            alert_notification: false,
            email_notification: true,
            sms_notification: true,
            webhook_notification: false,
        },
    ));
    let profile = temp_dir().join("profile.toml");
    std::fs::write(&profile, toml::to_string(engine.profile()).unwrap()).unwrap();
    let smtp = Smtp::start(accept).await;
    let api = SmsApi::start(|_| StatusCode::CREATED).await;

    // Receivers configured, but no detector's alert names them.
    let mut c = config();
    c.security_profile = Some(profile.clone());
    c.sentinel.receivers = vec![mail_receiver(&smtp), sms_receiver(&api)];
    let Err(e) = llmsec_server::Server::start(c, Some(ADMIN.into())).await else { panic!("the profile was accepted") };
    let e = e.to_string();
    assert!(e.contains("incident_response.notification.email_notification"), "{e}");
    assert!(e.contains("incident_response.notification.sms_notification"), "{e}");

    // Named by an enabled detector's alert action: the profile is met.
    let t = app_with(|c| {
        c.security_profile = Some(profile.clone());
        c.sentinel.detectors = Some(detectors("soc-mail, oncall-sms"));
        c.sentinel.receivers = vec![mail_receiver(&smtp), sms_receiver(&api)];
    })
    .await;
    let r = get(&t.router, "/api/v1/anomalies", ADMIN).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn bad_receivers_stop_the_start_naming_the_field() {
    let smtp = Smtp::start(accept).await;
    let api = SmsApi::start(|_| StatusCode::CREATED).await;
    let cases: Vec<(Receiver, &str)> = vec![
        (Receiver { smtp_host: Some("mail.example.com".into()), ..mail_receiver(&smtp) }, "sentinel.receivers[0].tls"),
        (Receiver { to: vec![], ..mail_receiver(&smtp) }, "sentinel.receivers[0].to"),
        (Receiver { to: vec!["soc@".into()], ..mail_receiver(&smtp) }, "sentinel.receivers[0].to[0]"),
        (
            Receiver { password_env: Some("LLMSEC_TEST_UNSET_PASSWORD".into()), ..mail_receiver(&smtp) },
            "sentinel.receivers[0].password_env",
        ),
        (
            Receiver { token_env: Some("LLMSEC_TEST_UNSET_TOKEN".into()), ..sms_receiver(&api) },
            "sentinel.receivers[0].token_env",
        ),
        // A key of another kind.
        (Receiver { smtp_port: Some(25), ..sms_receiver(&api) }, "sentinel.receivers[0].smtp_port"),
        (Receiver { secret: Some("s".into()), ..mail_receiver(&smtp) }, "sentinel.receivers[0].secret"),
    ];
    for (r, field) in cases {
        let mut c = config();
        c.sentinel.receivers = vec![r.clone()];
        let e = match llmsec_server::Server::start(c, Some(ADMIN.into())).await {
            Ok(_) => panic!("{r:?} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(field), "{field} not named in: {e}");
    }
    // Unknown keys are refused by the parser, naming them.
    let e = toml::from_str::<Receiver>("name='x'\ntype='email'\nsmtp_hots='h'").unwrap_err().to_string();
    assert!(e.contains("smtp_hots"), "{e}");
}
