//! E-mail (SMTP) and SMS alert receivers (`[[sentinel.receivers]]` of
//! `type = "email"` and `type = "sms"`).
//!
//! An `alert` action naming such a receiver queues outbox rows like every
//! other delivery: their `webhook_id` is `mail:<receiver>` (one row per
//! alert, every recipient on it) or `sms:<receiver>` (one row per
//! recipient), their payload the finished subject and text. The delivery
//! worker sends them through the [`NotifyRegistry`] built at start from the
//! receivers' settings, with its retries, backoff, dead letters and
//! metrics. A receiver's secrets (SMTP password, SMS token) are read from
//! environment variables at start and live only in the registry; they are
//! never queued, logged or shown.
//!
//! SMTP connections resolve the host themselves and keep only the
//! addresses the [egress policy](crate::egress) allows. A mail carries a
//! `Message-ID` made from the delivery id and an `X-Llmsec-Delivery`
//! header, so a mail sent again after a lost answer is recognisable. SMTP
//! 4xx answers and connection failures are retried; 5xx answers are
//! permanent and dead-letter the delivery at once. SMS deliveries POST a
//! Twilio-style form with the worker's HTTP client; 429 and 5xx are retried,
//! other 4xx dead-letter the delivery.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use llm_sentinel::anomaly::Anomaly;
use llm_sentinel::detector::Severity;
use llmsec_store::{Delivery, Millis};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, MailTls, Receiver, ReceiverKind};
use crate::egress::EgressPolicy;

/// The `webhook_id` prefix of e-mail deliveries.
pub const MAIL_TARGET: &str = "mail:";
/// The `webhook_id` prefix of SMS deliveries.
pub const SMS_TARGET: &str = "sms:";
/// The event name of alert deliveries.
pub const ALERT_EVENT: &str = "alert.triggered";
/// The longest SMS body sent (Twilio's limit for one message).
pub const SMS_MAX_CHARS: usize = 1600;
/// The SMTP port used when `smtp_port` is not set (submission).
pub const DEFAULT_SMTP_PORT: u16 = 587;

/// How a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// E-mail over SMTP.
    Mail,
    /// SMS over the HTTP API.
    Sms,
}

/// The channel and receiver a delivery is for, when it is a notification.
pub fn target_of(d: &Delivery) -> Option<(Channel, &str)> {
    if let Some(name) = d.webhook_id.strip_prefix(MAIL_TARGET) {
        Some((Channel::Mail, name))
    } else {
        d.webhook_id.strip_prefix(SMS_TARGET).map(|name| (Channel::Sms, name))
    }
}

/// What an e-mail delivery carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailPayload {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

/// What an SMS delivery carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmsPayload {
    /// The recipient's number.
    pub to: String,
    /// The text (at most [`SMS_MAX_CHARS`] characters).
    pub body: String,
}

/// `s` with control characters (line breaks included) turned into spaces,
/// so a title cannot add header lines or break a one-line text.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn time(ms: Millis) -> String {
    crate::time::rfc3339(ms).unwrap_or_else(|| ms.to_string())
}

/// The subject of an alert mail: `[SEVERITY] title`, after `prefix` when set.
pub fn mail_subject(prefix: Option<&str>, severity: Severity, a: &Anomaly) -> String {
    let s = format!("[{}] {}", severity.as_str().to_uppercase(), one_line(&a.title));
    match prefix.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => format!("{} {s}", one_line(p)),
        None => s,
    }
}

/// The plain-text body of an alert mail.
pub fn mail_body(severity: Severity, a: &Anomaly) -> String {
    let mut b = String::new();
    b.push_str(a.description.trim());
    b.push_str("\n\n");
    let rows = [
        ("Anomaly", a.id.clone()),
        ("Severity", severity.as_str().to_uppercase()),
        ("Detector", format!("{} ({})", a.detector_id, a.detector_type.as_str())),
        ("Entity", format!("{} {}", a.affected_entity.kind.as_str(), a.affected_entity.id)),
        ("Score", format!("{:.3}", a.score)),
        ("Detected", time(a.timestamp)),
        ("Last seen", time(a.last_seen)),
        ("Occurrences", a.occurrences.to_string()),
    ];
    for (k, v) in rows {
        b.push_str(&format!("{k:<12} {}\n", one_line(&v)));
    }
    b
}

/// The text of an alert SMS, cut to [`SMS_MAX_CHARS`].
pub fn sms_body(severity: Severity, a: &Anomaly) -> String {
    let text = format!(
        "[{}] {}: {} (anomaly {})",
        severity.as_str().to_uppercase(),
        one_line(&a.title),
        one_line(a.description.trim()),
        a.id
    );
    truncate(&text, SMS_MAX_CHARS)
}

/// `s` cut to at most `max` characters, the last of them an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn delivery(target: String, tenant: &str, payload: String, now: Millis) -> Delivery {
    Delivery::pending(uuid::Uuid::now_v7().to_string(), target, tenant, ALERT_EVENT, payload, now)
}

/// The deliveries an alert to receiver `r` queues: one mail for an e-mail
/// receiver, one SMS per recipient for an SMS receiver, none for other kinds.
pub fn deliveries(r: &Receiver, tenant: &str, severity: Severity, a: &Anomaly, now: Millis) -> Vec<Delivery> {
    match r.kind {
        ReceiverKind::Email => {
            let p = MailPayload {
                subject: mail_subject(r.subject_prefix.as_deref(), severity, a),
                body: mail_body(severity, a),
            };
            let payload = serde_json::to_string(&p).unwrap_or_default();
            vec![delivery(format!("{MAIL_TARGET}{}", r.name), tenant, payload, now)]
        }
        ReceiverKind::Sms => {
            let body = sms_body(severity, a);
            r.to.iter()
                .map(|to| {
                    let p = SmsPayload { to: to.clone(), body: body.clone() };
                    let payload = serde_json::to_string(&p).unwrap_or_default();
                    delivery(format!("{SMS_TARGET}{}", r.name), tenant, payload, now)
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// A secret read at start; its `Debug` never shows it.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// An e-mail receiver, ready to send.
#[derive(Debug, Clone)]
pub struct MailReceiver {
    host: String,
    port: u16,
    tls: MailTls,
    credentials: Option<(String, Secret)>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

/// An SMS receiver, ready to send.
#[derive(Debug, Clone)]
pub struct SmsReceiver {
    /// The API's base URL, without a trailing `/`.
    url: String,
    account_sid: String,
    token: Secret,
    from: String,
}

/// The configured e-mail and SMS receivers, by name.
#[derive(Debug, Default, Clone)]
pub struct NotifyRegistry {
    mail: HashMap<String, Arc<MailReceiver>>,
    sms: HashMap<String, Arc<SmsReceiver>>,
}

fn invalid(i: usize, field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field: format!("sentinel.receivers[{i}].{field}"), message: message.into() }
}

/// Whether `host` is a loopback name or address (where plain SMTP is allowed).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `n` is a phone number in E.164 form (`+` and 2 to 15 digits).
fn is_phone_number(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

fn required<'a>(i: usize, field: &str, v: Option<&'a String>) -> Result<&'a str, ConfigError> {
    match v.map(|s| s.trim()) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(invalid(i, field, "is required")),
    }
}

fn secret_from_env(
    i: usize,
    field: &str,
    var: &str,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Secret, ConfigError> {
    match env(var) {
        Some(v) if !v.is_empty() => Ok(Secret(v)),
        _ => Err(invalid(i, field, format!("the environment variable {var} is not set"))),
    }
}

impl NotifyRegistry {
    /// Checks every e-mail and SMS receiver of `receivers` and reads their
    /// secrets through `env`; an error names `sentinel.receivers[N].field`.
    pub fn build(
        receivers: &[Receiver],
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<NotifyRegistry, ConfigError> {
        let mut reg = NotifyRegistry::default();
        for (i, r) in receivers.iter().enumerate() {
            match r.kind {
                ReceiverKind::Email => {
                    reg.mail.insert(r.name.clone(), Arc::new(mail_receiver(i, r, env)?));
                }
                ReceiverKind::Sms => {
                    reg.sms.insert(r.name.clone(), Arc::new(sms_receiver(i, r, env)?));
                }
                _ => {}
            }
        }
        Ok(reg)
    }

    /// The e-mail receiver `name`.
    pub fn mail(&self, name: &str) -> Option<&Arc<MailReceiver>> {
        self.mail.get(name)
    }

    /// The SMS receiver `name`.
    pub fn sms(&self, name: &str) -> Option<&Arc<SmsReceiver>> {
        self.sms.get(name)
    }
}

fn mailbox(i: usize, field: &str, s: &str) -> Result<Mailbox, ConfigError> {
    s.trim().parse::<Mailbox>().map_err(|e| invalid(i, field, format!("{s:?} is not a mail address: {e}")))
}

fn mail_receiver(
    i: usize,
    r: &Receiver,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<MailReceiver, ConfigError> {
    let host = required(i, "smtp_host", r.smtp_host.as_ref())?.to_owned();
    let tls = r.tls.unwrap_or(MailTls::Starttls);
    if tls == MailTls::None && !is_loopback_host(&host) {
        return Err(invalid(i, "tls", format!("\"none\" is allowed for loopback hosts only, not {host:?}")));
    }
    let credentials = match (&r.username, &r.password_env) {
        (Some(user), Some(var)) => Some((user.clone(), secret_from_env(i, "password_env", var, env)?)),
        (None, None) => None,
        (Some(_), None) => return Err(invalid(i, "password_env", "is required with username")),
        (None, Some(_)) => return Err(invalid(i, "username", "is required with password_env")),
    };
    let from = mailbox(i, "from", required(i, "from", r.from.as_ref())?)?;
    if r.to.is_empty() {
        return Err(invalid(i, "to", "is required (a list of mail addresses)"));
    }
    let to = r.to.iter().enumerate().map(|(j, t)| mailbox(i, &format!("to[{j}]"), t)).collect::<Result<_, _>>()?;
    Ok(MailReceiver { host, port: r.smtp_port.unwrap_or(DEFAULT_SMTP_PORT), tls, credentials, from, to })
}

fn sms_receiver(
    i: usize,
    r: &Receiver,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<SmsReceiver, ConfigError> {
    let url = required(i, "url", r.url.as_ref())?;
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => return Err(invalid(i, "url", format!("{url:?} is not an http(s) URL"))),
    }
    let account_sid = required(i, "account_sid", r.account_sid.as_ref())?;
    if !account_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(i, "account_sid", "may hold letters and digits only"));
    }
    let var = required(i, "token_env", r.token_env.as_ref())?;
    let token = secret_from_env(i, "token_env", var, env)?;
    let from = required(i, "from", r.from.as_ref())?;
    if r.to.is_empty() {
        return Err(invalid(i, "to", "is required (a list of phone numbers)"));
    }
    if let Some((j, t)) = r.to.iter().enumerate().find(|(_, t)| !is_phone_number(t)) {
        return Err(invalid(
            i,
            &format!("to[{j}]"),
            format!("{t:?} is not a phone number in E.164 form (+15551234567)"),
        ));
    }
    Ok(SmsReceiver {
        url: url.trim_end_matches('/').to_owned(),
        account_sid: account_sid.to_owned(),
        token,
        from: from.to_owned(),
    })
}

/// Why a notification was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status (SMS), when there was an answer.
    pub status: Option<u16>,
    /// The category recorded on the delivery (never a host or address).
    pub error: String,
    /// Whether trying again cannot help (dead-letter now).
    pub permanent: bool,
}

impl Failure {
    fn retry(error: &'static str) -> Failure {
        Failure { status: None, error: error.to_owned(), permanent: false }
    }
    fn dead(error: &'static str) -> Failure {
        Failure { status: None, error: error.to_owned(), permanent: true }
    }
}

/// A payload that does not parse (written by another version).
pub const BAD_PAYLOAD: &str = "unreadable payload";
/// The SMTP server answered 4xx (try again later).
pub const SMTP_TRANSIENT: &str = "SMTP transient failure";
/// The SMTP server answered 5xx (will not accept it).
pub const SMTP_PERMANENT: &str = "SMTP permanent failure";
/// The SMTP conversation failed otherwise (connection, TLS, timeout).
pub const SMTP_FAILED: &str = "SMTP connection failed";
/// The SMS API answered 2xx without a message `sid`.
pub const SMS_NO_SID: &str = "SMS answer without sid";
/// The receiver is no longer configured.
pub const NO_RECEIVER: &str = "receiver not configured";

/// The categories notification failures record (besides `HTTP <status>`).
pub const CATEGORIES: &[&str] = &[BAD_PAYLOAD, SMTP_TRANSIENT, SMTP_PERMANENT, SMTP_FAILED, SMS_NO_SID, NO_RECEIVER];

/// `X-Llmsec-Delivery`: the outbox delivery a mail was sent for.
#[derive(Debug, Clone, PartialEq)]
struct DeliveryHeader(String);

impl Header for DeliveryHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Llmsec-Delivery")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(DeliveryHeader(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// The `Message-ID` of the mail for delivery `id`: the same on every attempt.
pub fn message_id(delivery_id: &str) -> String {
    format!("<{delivery_id}@llmsec.alerts>")
}

impl MailReceiver {
    /// The mail for delivery `d` (id, subject and body from its payload).
    pub fn message(&self, d: &Delivery) -> Result<Message, Failure> {
        let p: MailPayload = serde_json::from_str(&d.payload).map_err(|_| Failure::dead(BAD_PAYLOAD))?;
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(one_line(&p.subject))
            .message_id(Some(message_id(&d.id)))
            .header(DeliveryHeader(d.id.clone()))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            b = b.to(to.clone());
        }
        b.body(p.body).map_err(|e| {
            tracing::warn!(delivery = %d.id, error = %e, "building an alert mail failed");
            Failure::dead(BAD_PAYLOAD)
        })
    }

    /// Sends delivery `d`'s mail: resolves the host under `egress` and
    /// speaks SMTP to the first allowed address, all within `timeout` (the
    /// worker's lease outlasts it, so a slow server cannot get the same
    /// delivery attempted twice at once).
    pub async fn send(&self, d: &Delivery, egress: &EgressPolicy, timeout: Duration) -> Result<(), Failure> {
        match tokio::time::timeout(timeout, self.send_within(d, egress, timeout)).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(delivery = %d.id, "SMTP delivery timed out");
                Err(Failure::retry("timeout"))
            }
        }
    }

    async fn send_within(&self, d: &Delivery, egress: &EgressPolicy, timeout: Duration) -> Result<(), Failure> {
        let message = self.message(d)?;
        let addrs = match tokio::net::lookup_host((self.host.as_str(), self.port)).await {
            Ok(a) => a.collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(delivery = %d.id, error = %e, "resolving the SMTP host failed");
                return Err(Failure::retry(SMTP_FAILED));
            }
        };
        let addr = match egress.filter(&self.host, addrs) {
            Ok(a) => a.into_iter().next().ok_or_else(|| Failure::retry(SMTP_FAILED))?,
            Err(e) => {
                tracing::warn!(delivery = %d.id, error = %e, "SMTP connection refused by the egress policy");
                return Err(Failure::dead(crate::deliver::EGRESS_REFUSED));
            }
        };
        let tls = match self.tls {
            MailTls::None => Tls::None,
            MailTls::Starttls | MailTls::Tls => {
                let params = TlsParameters::new(self.host.clone()).map_err(|e| {
                    tracing::warn!(delivery = %d.id, error = %e, "SMTP TLS setup failed");
                    Failure::retry(SMTP_FAILED)
                })?;
                if self.tls == MailTls::Tls { Tls::Wrapper(params) } else { Tls::Required(params) }
            }
        };
        // Connect to the checked address; TLS still verifies the configured host name.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
            .port(addr.port())
            .tls(tls)
            .timeout(Some(timeout));
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.0.clone()));
        }
        match builder.build().send(message).await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(delivery = %d.id, error = %e, "SMTP delivery failed");
                Err(if e.is_permanent() {
                    Failure::dead(SMTP_PERMANENT)
                } else if e.is_transient() {
                    Failure::retry(SMTP_TRANSIENT)
                } else {
                    Failure::retry(SMTP_FAILED)
                })
            }
        }
    }
}

impl SmsReceiver {
    /// The endpoint messages are POSTed to.
    pub fn endpoint(&self) -> String {
        format!("{}/2010-04-01/Accounts/{}/Messages.json", self.url, self.account_sid)
    }

    /// Sends delivery `d`'s SMS with `client` (the worker's egress-checked client).
    pub async fn send(&self, d: &Delivery, client: &reqwest::Client, egress: &EgressPolicy) -> Result<u16, Failure> {
        let p: SmsPayload = serde_json::from_str(&d.payload).map_err(|_| Failure::dead(BAD_PAYLOAD))?;
        let endpoint = self.endpoint();
        // The client's resolver checks names; an IP-literal host is checked here.
        if let Err(e) = egress.check_url(&endpoint) {
            tracing::warn!(delivery = %d.id, error = %e, "SMS attempt refused");
            return Err(Failure::dead(crate::deliver::EGRESS_REFUSED));
        }
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("To", &p.to)
            .append_pair("From", &self.from)
            .append_pair("Body", &truncate(&p.body, SMS_MAX_CHARS))
            .finish();
        let result = client
            .post(&endpoint)
            .basic_auth(&self.account_sid, Some(&self.token.0))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("X-Llmsec-Delivery", &d.id)
            .body(form)
            .send()
            .await;
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(delivery = %d.id, error = %e, "SMS attempt failed");
                if crate::egress::is_refusal(&e) {
                    return Err(Failure::dead(crate::deliver::EGRESS_REFUSED));
                }
                let error = if e.is_timeout() { "timeout" } else { "connect failed" };
                return Err(Failure::retry(error));
            }
        };
        let status = r.status();
        if status.is_success() {
            let body = r.text().await.unwrap_or_default();
            let sid = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("sid").and_then(|s| s.as_str()).map(str::to_owned));
            return match sid {
                Some(_) => Ok(status.as_u16()),
                None => Err(Failure { status: Some(status.as_u16()), error: SMS_NO_SID.to_owned(), permanent: false }),
            };
        }
        let permanent = status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS;
        Err(Failure { status: Some(status.as_u16()), error: format!("HTTP {status}"), permanent })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use llm_sentinel::anomaly::sample;

    use super::*;

    fn receiver(toml_entry: &str) -> Receiver {
        toml::from_str(toml_entry).unwrap()
    }

    fn email() -> Receiver {
        receiver(
            "name='oncall-mail'\ntype='email'\nsmtp_host='127.0.0.1'\nsmtp_port=2525\ntls='none'\nusername='alerts'\n\
             password_env='SMTP_PW'\nfrom='Sentinel <sentinel@example.com>'\nto=['soc@example.com','Bob <bob@example.org>']\n\
             subject_prefix='[llmsec]'",
        )
    }

    fn sms() -> Receiver {
        receiver(
            "name='pager-sms'\ntype='sms'\nurl='https://api.example.com/'\naccount_sid='AC123'\ntoken_env='SMS_TOKEN'\n\
             from='+15550000000'\nto=['+15551111111','+447700900123']",
        )
    }

    fn env(k: &str) -> Option<String> {
        matches!(k, "SMTP_PW" | "SMS_TOKEN").then(|| format!("{k}-value"))
    }

    fn field_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { field, .. } => field,
            other => panic!("not an Invalid error: {other}"),
        }
    }

    #[test]
    fn mail_subject_and_body_carry_the_anomaly() {
        let a = sample();
        assert_eq!(
            mail_subject(Some("[llmsec]"), Severity::Critical, &a),
            "[llmsec] [CRITICAL] cost 4.2σ above baseline for application chatbot-prod"
        );
        assert_eq!(mail_subject(None, Severity::Warning, &a), format!("[WARNING] {}", a.title));
        let body = mail_body(Severity::Warning, &a);
        assert!(body.starts_with("cost 0.42 against a baseline of 0.05\n\n"), "{body}");
        for part in [
            "Anomaly      0193a5b0-0000-7000-8000-000000000000",
            "Detector     cost-spike-detector (statistical)",
            "Entity       application chatbot-prod",
            "Score        0.800",
            "Detected     2025-11-24T16:00:00",
        ] {
            assert!(body.contains(part), "{part:?} missing from\n{body}");
        }
    }

    #[test]
    fn a_title_cannot_add_header_lines() {
        let mut a = sample();
        a.title = "x\r\nBcc: eve@example.com".into();
        assert_eq!(mail_subject(None, Severity::Critical, &a), "[CRITICAL] x  Bcc: eve@example.com");
        let reg = NotifyRegistry::build(&[email()], &env).unwrap();
        let d = &deliveries(&email(), "t", Severity::Critical, &a, 0)[0];
        let raw = String::from_utf8(reg.mail("oncall-mail").unwrap().message(d).unwrap().formatted()).unwrap();
        assert!(!raw.lines().any(|l| l.starts_with("Bcc:")), "{raw}");
    }

    #[test]
    fn the_mail_has_its_envelope_message_id_and_delivery_header() {
        let a = sample();
        let ds = deliveries(&email(), "acme", Severity::Critical, &a, 5);
        assert_eq!(ds.len(), 1, "one mail for every recipient");
        let d = &ds[0];
        assert_eq!(
            (d.webhook_id.as_str(), d.event.as_str(), d.tenant.as_str()),
            ("mail:oncall-mail", ALERT_EVENT, "acme")
        );
        assert_eq!(target_of(d), Some((Channel::Mail, "oncall-mail")));
        let reg = NotifyRegistry::build(&[email()], &env).unwrap();
        let m = reg.mail("oncall-mail").unwrap().message(d).unwrap();
        let env_to: Vec<String> = m.envelope().to().iter().map(ToString::to_string).collect();
        assert_eq!(env_to, ["soc@example.com", "bob@example.org"]);
        assert_eq!(m.envelope().from().unwrap().to_string(), "sentinel@example.com");
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains(&format!("Message-ID: <{}@llmsec.alerts>\r\n", d.id)), "{raw}");
        assert!(raw.contains(&format!("X-Llmsec-Delivery: {}\r\n", d.id)), "{raw}");
        assert!(raw.contains("Content-Type: text/plain; charset=utf-8\r\n"), "{raw}");
        assert!(!raw.contains("SMTP_PW-value"), "the password is never in the mail");
        assert!(!format!("{reg:?}").contains("SMTP_PW-value"), "nor in Debug output");
    }

    #[test]
    fn one_sms_per_recipient_cut_to_1600_characters() {
        let mut a = sample();
        a.description = "é".repeat(3000);
        let ds = deliveries(&sms(), "acme", Severity::Critical, &a, 5);
        let to: Vec<String> = ds.iter().map(|d| serde_json::from_str::<SmsPayload>(&d.payload).unwrap().to).collect();
        assert_eq!(to, ["+15551111111", "+447700900123"]);
        assert!(ds.iter().all(|d| target_of(d) == Some((Channel::Sms, "pager-sms"))));
        let body = serde_json::from_str::<SmsPayload>(&ds[0].payload).unwrap().body;
        assert_eq!(body.chars().count(), SMS_MAX_CHARS);
        assert!(body.starts_with("[CRITICAL] cost 4.2σ above"), "{body}");
        assert!(body.ends_with('…'));
        let short = sms_body(Severity::Info, &sample());
        assert_eq!(
            short,
            "[INFO] cost 4.2σ above baseline for application chatbot-prod: cost 0.42 against a baseline of 0.05 \
             (anomaly 0193a5b0-0000-7000-8000-000000000000)"
        );
        let reg = NotifyRegistry::build(&[sms()], &env).unwrap();
        assert_eq!(
            reg.sms("pager-sms").unwrap().endpoint(),
            "https://api.example.com/2010-04-01/Accounts/AC123/Messages.json"
        );
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate("ééééé", 4), "ééé…");
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn bad_receivers_are_refused_naming_the_field() {
        let cases: Vec<(Receiver, &str)> = vec![
            (Receiver { smtp_host: None, ..email() }, "sentinel.receivers[0].smtp_host"),
            (Receiver { smtp_host: Some("mail.example.com".into()), ..email() }, "sentinel.receivers[0].tls"),
            (Receiver { password_env: Some("UNSET".into()), ..email() }, "sentinel.receivers[0].password_env"),
            (Receiver { password_env: None, ..email() }, "sentinel.receivers[0].password_env"),
            (Receiver { username: None, ..email() }, "sentinel.receivers[0].username"),
            (Receiver { from: Some("not an address".into()), ..email() }, "sentinel.receivers[0].from"),
            (Receiver { from: None, ..email() }, "sentinel.receivers[0].from"),
            (Receiver { to: vec![], ..email() }, "sentinel.receivers[0].to"),
            (Receiver { to: vec!["a@example.com".into(), "b@".into()], ..email() }, "sentinel.receivers[0].to[1]"),
            (Receiver { url: Some("ftp://x".into()), ..sms() }, "sentinel.receivers[0].url"),
            (Receiver { url: None, ..sms() }, "sentinel.receivers[0].url"),
            (Receiver { account_sid: Some("AC/../x".into()), ..sms() }, "sentinel.receivers[0].account_sid"),
            (Receiver { token_env: Some("UNSET".into()), ..sms() }, "sentinel.receivers[0].token_env"),
            (Receiver { from: None, ..sms() }, "sentinel.receivers[0].from"),
            (Receiver { to: vec!["5551111".into()], ..sms() }, "sentinel.receivers[0].to[0]"),
        ];
        for (r, field) in cases {
            let e = NotifyRegistry::build(std::slice::from_ref(&r), &env).unwrap_err();
            assert_eq!(field_of(e), field, "{r:?}");
        }
        // STARTTLS to a remote host is fine; plain SMTP is for loopback only.
        let remote = Receiver { smtp_host: Some("mail.example.com".into()), tls: None, ..email() };
        assert!(NotifyRegistry::build(&[remote], &env).is_ok());
        for h in ["localhost", "127.0.0.1", "::1", "[::1]"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["10.0.0.1", "mail.example.com", "localhost.example.com"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
