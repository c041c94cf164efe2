//! Syslog: RFC 5424 messages over TCP (RFC 6587 octet-counting framing) or UDP (RFC 5426).
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME llmsec PROCID MSGID [llmsec@32473 tenant="acme" id="…" …] MSG
//! ```
//!
//! - `PRI` = facility × 8 + severity; our levels map to syslog severities
//!   critical → 2 (crit), high → 3 (err), medium → 4 (warning), low → 5
//!   (notice), none → 6 (informational).
//! - `TIMESTAMP`: the event's time, RFC 3339 UTC with milliseconds.
//! - `MSGID`: the event name (`security_event`, `anomaly.detected`, …).
//! - One SD-ELEMENT `llmsec@32473` (32473 is the enterprise number RFC 5612
//!   reserves for documentation; set `sd_id` to one under your own
//!   number) with `tenant`, `id` (the delivery id), `event`, `subject`,
//!   `severity` and, as they apply, `verdict`, `rule`, `user`; values are
//!   escaped as RFC 5424 §6.3.3 says (`"`, `\` and `]` take a backslash).
//! - `MSG`: the envelope as JSON (`format = "json"`), or a CEF line
//!   (`format = "cef"`); a message with non-ASCII text starts with the UTF-8
//!   BOM, as §6.4 asks.
//!
//! Over TCP each message is framed `MSG-LEN SP SYSLOG-MSG` (octet
//! counting); the connection is kept and opened again after an error. A
//! write TCP accepted counts as delivered: syslog has no acknowledgement,
//! so a message in flight when the collector drops the connection can be
//! lost. Over UDP each message is one datagram, and nothing tells a lost
//! one; use TCP where loss matters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use super::event::{SinkEvent, Subject};
use super::{AddressPolicy, BuildContext, FieldError, Level};
use crate::publish::{OutboxPublisher, OutboxRecord, PublishError};

/// How messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// TCP with octet-counting framing (RFC 6587 §3.4.1).
    #[default]
    Tcp,
    /// One datagram per message (RFC 5426).
    Udp,
}

/// What `MSG` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The envelope as JSON: `{"id", "event", "tenant", "data"}`.
    #[default]
    Json,
    /// A CEF line: `CEF:0|llmsec|llm-security|VERSION|SIGNATURE|NAME|SEVERITY|EXTENSION`.
    Cef,
}

/// The facilities of RFC 5424 §6.2.1, by the names syslog daemons use.
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
    "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

/// `kind = "syslog"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// The collector, `host:port` (`[v6-address]:port` for IPv6).
    pub address: String,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub transport: Transport,
    /// The facility by name (`local0` … `local7`, `auth`, `authpriv`, `daemon`, …); default `local0`.
    #[serde(default = "default_facility")]
    pub facility: String,
    /// `json` (default) or `cef`.
    #[serde(default)]
    pub format: Format,
    /// The HOSTNAME field; default this machine's host name (or `-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The SD-ID of the structured data (`name@enterprise-number`).
    #[serde(default = "default_sd_id")]
    pub sd_id: String,
    /// Connecting and writing one message must finish within this time.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_facility() -> String {
    "local0".into()
}
fn default_sd_id() -> String {
    "llmsec@32473".into()
}
fn default_timeout_ms() -> u64 {
    5000
}

/// The largest UDP payload (IPv4: 65,535 − 8 − 20).
const MAX_DATAGRAM: usize = 65_507;

impl SyslogConfig {
    fn check(&self) -> Result<(), FieldError> {
        self.host_port()?;
        self.facility_code()?;
        if let Some(h) = &self.hostname
            && !is_field(h, 255)
        {
            return Err(FieldError::new("hostname", "must be 1-255 printable ASCII characters without spaces"));
        }
        let sd_ok = self.sd_id.split_once('@').is_some_and(|(name, pen)| {
            !name.is_empty() && !pen.is_empty() && pen.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        }) && is_sd_name(&self.sd_id);
        if !sd_ok {
            return Err(FieldError::new("sd_id", "must be name@enterprise-number, at most 32 characters"));
        }
        if self.timeout_ms == 0 {
            return Err(FieldError::new("timeout_ms", "must be positive"));
        }
        Ok(())
    }

    /// The collector's host (brackets removed) and port.
    pub fn host_port(&self) -> Result<(&str, u16), FieldError> {
        let bad = || FieldError::new("address", format!("{:?}: expected host:port", self.address));
        let (host, port) = self.address.rsplit_once(':').ok_or_else(bad)?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok((host, port))
    }

    fn facility_code(&self) -> Result<u8, FieldError> {
        FACILITIES.iter().position(|f| *f == self.facility).map(|i| i as u8).ok_or_else(|| {
            FieldError::new("facility", format!("{:?}: expected one of {}", self.facility, FACILITIES.join(", ")))
        })
    }
}

impl super::KindConfig for SyslogConfig {
    fn kind_name(&self) -> &'static str {
        "syslog"
    }

    fn validate(&self) -> Result<(), FieldError> {
        self.check()
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<std::sync::Arc<dyn OutboxPublisher>, FieldError> {
        Ok(std::sync::Arc::new(Syslog::new(self, ctx)?))
    }
}

/// PRINTUSASCII (33-126), 1 to `max` characters.
fn is_field(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (33..=126).contains(&b))
}

/// An SD-NAME: 1-32 PRINTUSASCII except `=`, space, `]` and `"`.
fn is_sd_name(s: &str) -> bool {
    is_field(s, 32) && !s.bytes().any(|b| matches!(b, b'=' | b']' | b'"'))
}

/// A PARAM-VALUE with `"`, `\` and `]` escaped (RFC 5424 §6.3.3).
pub fn escape_sd_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The syslog severity of a level.
pub fn syslog_severity(level: Option<Level>) -> u8 {
    match level {
        Some(Level::Critical) => 2,
        Some(Level::High) => 3,
        Some(Level::Medium) => 4,
        Some(Level::Low) => 5,
        None => 6,
    }
}

/// CEF's 0-10 severity of a level.
fn cef_severity(level: Option<Level>) -> u8 {
    match level {
        None => 0,
        Some(Level::Low) => 3,
        Some(Level::Medium) => 5,
        Some(Level::High) => 8,
        Some(Level::Critical) => 10,
    }
}

/// A CEF header field: `\` and `|` escaped, line breaks as spaces.
fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// A CEF extension value: `\` and `=` escaped, line breaks as `\n`/`\r`.
fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('=', "\\=").replace('\n', "\\n").replace('\r', "\\r")
}

/// The pieces of a message that do not depend on the event.
#[derive(Debug, Clone)]
pub struct Header {
    /// Facility code (0-23).
    pub facility: u8,
    /// HOSTNAME.
    pub hostname: String,
    /// PROCID.
    pub procid: String,
    /// SD-ID.
    pub sd_id: String,
    /// MSG format.
    pub format: Format,
}

/// The RFC 5424 message (without framing) of a delivery.
pub fn message(h: &Header, e: &SinkEvent) -> String {
    let level = e.level();
    let pri = u16::from(h.facility) * 8 + u16::from(syslog_severity(level));
    let ts = chrono::DateTime::from_timestamp_millis(e.time_ms()).unwrap_or_default();
    let mut params: Vec<(&str, String)> = vec![
        ("tenant", e.tenant.clone()),
        ("id", e.id.clone()),
        ("event", e.event.as_str().to_owned()),
        ("subject", e.subject_id().to_owned()),
        ("severity", level.map_or("none", Level::as_str).to_owned()),
    ];
    if let Subject::Security(s) = &e.subject {
        params.push(("verdict", s.verdict.clone()));
    }
    if let Some(r) = e.rule() {
        params.push(("rule", r));
    }
    if let Some(u) = e.user() {
        params.push(("user", u.to_owned()));
    }
    let mut sd = format!("[{}", h.sd_id);
    for (k, v) in &params {
        sd.push_str(&format!(" {k}=\"{}\"", escape_sd_value(v)));
    }
    sd.push(']');
    let msg = match h.format {
        Format::Json => {
            json!({"id": e.id, "event": e.event.as_str(), "tenant": e.tenant, "data": e.data()}).to_string()
        }
        Format::Cef => {
            let mut ext = vec![
                ("rt", e.time_ms().to_string()),
                ("externalId", e.subject_id().to_owned()),
                ("cs1Label", "tenant".to_owned()),
                ("cs1", e.tenant.clone()),
                ("cs2Label", "delivery".to_owned()),
                ("cs2", e.id.clone()),
                ("msg", e.message()),
            ];
            if let Subject::Security(s) = &e.subject {
                ext.push(("act", s.verdict.clone()));
            }
            if let Some(u) = e.user() {
                ext.push(("suser", u.to_owned()));
            }
            if let Some(ip) = e.source_ip() {
                ext.push(("src", ip.to_owned()));
            }
            let ext: Vec<String> = ext.into_iter().map(|(k, v)| format!("{k}={}", cef_value(&v))).collect();
            format!(
                "CEF:0|llmsec|llm-security|{}|{}|{}|{}|{}",
                env!("CARGO_PKG_VERSION"),
                cef_header(&e.rule().unwrap_or_else(|| e.event.as_str().to_owned())),
                cef_header(&e.message()),
                cef_severity(level),
                ext.join(" ")
            )
        }
    };
    let bom = if msg.is_ascii() { "" } else { "\u{feff}" };
    format!(
        "<{pri}>1 {} {} llmsec {} {} {sd} {bom}{msg}",
        ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        h.hostname,
        h.procid,
        e.event.as_str(),
    )
}

/// RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`.
pub fn octet_counted(msg: &str) -> Vec<u8> {
    let mut v = format!("{} ", msg.len()).into_bytes();
    v.extend_from_slice(msg.as_bytes());
    v
}

/// Sends each delivery as one syslog message.
#[derive(Debug)]
pub struct Syslog {
    host: String,
    port: u16,
    transport: Transport,
    timeout: Duration,
    header: Header,
    addresses: Arc<dyn AddressPolicy>,
    conn: tokio::sync::Mutex<Option<TcpStream>>,
}

impl Syslog {
    /// A publisher for `config`; it connects on the first delivery.
    pub fn new(config: &SyslogConfig, ctx: &BuildContext<'_>) -> Result<Syslog, FieldError> {
        super::KindConfig::validate(config)?;
        let (host, port) = config.host_port()?;
        let hostname = config.hostname.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| is_field(h, 255))
                .unwrap_or_else(|| "-".into())
        });
        Ok(Syslog {
            host: host.to_owned(),
            port,
            transport: config.transport,
            timeout: Duration::from_millis(config.timeout_ms),
            header: Header {
                facility: config.facility_code()?,
                hostname,
                procid: std::process::id().to_string(),
                sd_id: config.sd_id.clone(),
                format: config.format,
            },
            addresses: ctx.addresses.clone(),
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// The collector's addresses the policy allows.
    async fn resolve(&self) -> Result<Vec<SocketAddr>, PublishError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| PublishError(format!("syslog: resolving {}: {e}", self.host)))?
            .collect();
        self.addresses.filter(&self.host, addrs).map_err(|e| PublishError(format!("syslog: egress refused: {e}")))
    }

    async fn connect(&self) -> Result<TcpStream, PublishError> {
        let mut last = None;
        for addr in self.resolve().await? {
            match tokio::time::timeout(self.timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(e)) => last = Some(e.to_string()),
                Err(_) => last = Some("timeout".into()),
            }
        }
        Err(PublishError(format!("syslog: connect failed: {}", last.unwrap_or_else(|| "no address".into()))))
    }

    async fn send_tcp(&self, frame: &[u8]) -> Result<(), PublishError> {
        let mut conn = self.conn.lock().await;
        // A kept connection the collector closed reads as end of stream: open a new one
        // rather than write into it.
        if let Some(s) = conn.as_ref() {
            let mut probe = [0u8; 1];
            if matches!(s.try_read(&mut probe), Ok(0)) {
                *conn = None;
            }
        }
        let stream = match conn.as_mut() {
            Some(s) => s,
            None => conn.insert(self.connect().await?),
        };
        let written = tokio::time::timeout(self.timeout, async {
            stream.write_all(frame).await?;
            stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                *conn = None;
                Err(PublishError(format!("syslog: write failed: {e}")))
            }
            Err(_) => {
                *conn = None;
                Err(PublishError("syslog: write timeout".into()))
            }
        }
    }

    async fn send_udp(&self, msg: &[u8]) -> Result<(), PublishError> {
        if msg.len() > MAX_DATAGRAM {
            return Err(PublishError(format!("syslog: {} bytes do not fit a UDP datagram (use tcp)", msg.len())));
        }
        let addr = *self.resolve().await?.first().ok_or_else(|| PublishError("syslog: no address".into()))?;
        let local: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(local).await.map_err(|e| PublishError(format!("syslog: udp bind: {e}")))?;
        tokio::time::timeout(self.timeout, socket.send_to(msg, addr))
            .await
            .map_err(|_| PublishError("syslog: send timeout".into()))?
            .map_err(|e| PublishError(format!("syslog: udp send: {e}")))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl OutboxPublisher for Syslog {
    async fn publish(&self, record: OutboxRecord<'_>) -> Result<(), PublishError> {
        let e = SinkEvent::from_record(&record)?;
        let msg = message(&self.header, &e);
        match self.transport {
            Transport::Tcp => self.send_tcp(&octet_counted(&msg)).await,
            Transport::Udp => self.send_udp(msg.as_bytes()).await,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::sinks::testing;

    /// Undoes [`escape_sd_value`]; `None` where a `"`, `\` or `]` stands unescaped.
    fn unescape(s: &str) -> Option<String> {
        let mut out = String::new();
        let mut it = s.chars();
        while let Some(c) = it.next() {
            match c {
                '\\' => out.push(it.next()?),
                '"' | ']' => return None,
                c => out.push(c),
            }
        }
        Some(out)
    }

    proptest! {
        #[test]
        fn sd_values_escape_and_unescape(s in any::<String>()) {
            let e = escape_sd_value(&s);
            prop_assert_eq!(unescape(&e), Some(s));
        }

        #[test]
        fn sd_values_of_specials_stay_inside_their_element(s in "[a-z\"\\\\\\] ]{0,40}") {
            let e = escape_sd_value(&s);
            let element = format!("[x@1 v=\"{e}\"]");
            // The element ends at its last byte: no `"` or `]` of the value closes it early.
            let body = &element["[x@1 v=\"".len()..element.len() - 2];
            prop_assert_eq!(unescape(body), Some(s));
        }
    }

    fn config(address: String, transport: Transport, format: Format) -> SyslogConfig {
        SyslogConfig {
            address,
            transport,
            facility: "local4".into(),
            format,
            hostname: Some("gw-1".into()),
            sd_id: default_sd_id(),
            timeout_ms: 2000,
        }
    }

    /// Reads octet-counted frames from one TCP connection.
    async fn read_frames(stream: &mut TcpStream, n: usize) -> Vec<String> {
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        while frames.len() < n {
            let mut chunk = [0u8; 4096];
            let k = stream.read(&mut chunk).await.unwrap();
            assert!(k > 0, "connection closed early");
            buf.extend_from_slice(&chunk[..k]);
            while let Some(sp) = buf.iter().position(|b| *b == b' ') {
                let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                if buf.len() < sp + 1 + len {
                    break;
                }
                frames.push(String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap());
                buf.drain(..sp + 1 + len);
            }
        }
        frames
    }

    #[tokio::test]
    async fn tcp_frames_are_octet_counted_rfc5424_with_escaped_structured_data() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s =
            Syslog::new(&config(addr.to_string(), Transport::Tcp, Format::Json), &testing::context(&|_| None)).unwrap();
        let accept = tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            read_frames(&mut c, 2).await
        });
        let sec = testing::security_envelope("d-1", "block");
        s.publish(testing::record("d-1", "security_event", &sec)).await.unwrap();
        let mut a = llm_sentinel::anomaly::sample();
        a.title = "spike \"quoted\" ]end\\".into();
        let an = json!({"id": "d-2", "event": "anomaly.detected", "tenant": "ac\"me]", "data": a}).to_string();
        s.publish(testing::record("d-2", "anomaly.detected", an.as_bytes())).await.unwrap();
        let frames = accept.await.unwrap();
        let pid = std::process::id();
        // local4 (20) × 8 + err (3): a high-severity threat.
        let want = format!(
            "<163>1 2026-12-07T00:00:00.500Z gw-1 llmsec {pid} security_event [llmsec@32473 tenant=\"acme\" id=\"d-1\" event=\"security_event\" subject=\"ev-1\" severity=\"high\" verdict=\"block\" rule=\"prompt_injection/direct_injection\" user=\"alice\"] "
        );
        assert!(frames[0].starts_with(&want), "{}\n{want}", frames[0]);
        let msg: serde_json::Value = serde_json::from_str(&frames[0][want.len()..]).unwrap();
        assert_eq!((msg["id"].as_str(), msg["data"]["verdict"].as_str()), (Some("d-1"), Some("block")));
        // 20 × 8 + warning (4); the tenant's quote and bracket escaped.
        assert!(
            frames[1].starts_with(&format!("<164>1 2025-11-24T16:00:00.000Z gw-1 llmsec {pid} anomaly.detected [llmsec@32473 tenant=\"ac\\\"me\\]\" id=\"d-2\"")),
            "{}",
            frames[1]
        );
    }

    #[tokio::test]
    async fn a_closed_connection_is_opened_again() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s =
            Syslog::new(&config(addr.to_string(), Transport::Tcp, Format::Json), &testing::context(&|_| None)).unwrap();
        let sec = testing::security_envelope("d-1", "block");
        let first = tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            let f = read_frames(&mut c, 1).await;
            drop(c);
            (listener, f)
        });
        s.publish(testing::record("d-1", "security_event", &sec)).await.unwrap();
        let (listener, f) = first.await.unwrap();
        assert_eq!(f.len(), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            read_frames(&mut c, 1).await
        });
        s.publish(testing::record("d-1", "security_event", &sec)).await.unwrap();
        assert!(second.await.unwrap()[0].contains("id=\"d-1\""));
    }

    #[tokio::test]
    async fn udp_datagrams_carry_one_cef_message_each() {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let s =
            Syslog::new(&config(addr.to_string(), Transport::Udp, Format::Cef), &testing::context(&|_| None)).unwrap();
        let sec = testing::security_envelope("d-1", "block");
        s.publish(testing::record("d-1", "security_event", &sec)).await.unwrap();
        let mut buf = vec![0u8; 65_536];
        let (n, _) = sock.recv_from(&mut buf).await.unwrap();
        let m = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(m.starts_with("<163>1 "), "no framing over UDP: {m}");
        let cef = &m[m.find("] ").unwrap() + 2..];
        assert!(
            cef.starts_with(&format!(
                "CEF:0|llmsec|llm-security|{}|prompt_injection/direct_injection|",
                env!("CARGO_PKG_VERSION")
            )),
            "{cef}"
        );
        assert!(cef.contains("|8|rt=1796601600500 externalId=ev-1 "), "{cef}");
        assert!(cef.contains(" act=block suser=alice"), "{cef}");
    }

    #[tokio::test]
    async fn refused_addresses_and_bad_settings_are_named() {
        #[derive(Debug)]
        struct Refuse;
        impl AddressPolicy for Refuse {
            fn filter(&self, _: &str, _: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
                Err("127.0.0.1 is loopback".into())
            }
        }
        let env = |_: &str| None;
        let ctx = BuildContext { client: testing::client(), addresses: Arc::new(Refuse), env: &env };
        let s = Syslog::new(&config("127.0.0.1:9".into(), Transport::Tcp, Format::Json), &ctx).unwrap();
        let sec = testing::security_envelope("d-1", "block");
        let e = s.publish(testing::record("d-1", "security_event", &sec)).await.unwrap_err();
        assert!(e.0.contains("egress refused"), "{e}");
        let mut c = config("siem:514".into(), Transport::Tcp, Format::Json);
        c.facility = "local9".into();
        assert_eq!(c.check().unwrap_err().field, "facility");
        c.facility = "auth".into();
        c.address = "siem".into();
        assert_eq!(c.check().unwrap_err().field, "address");
        c.address = "[::1]:514".into();
        assert_eq!(c.host_port().unwrap(), ("::1", 514));
        c.sd_id = "no-enterprise".into();
        assert_eq!(c.check().unwrap_err().field, "sd_id");
    }
}
