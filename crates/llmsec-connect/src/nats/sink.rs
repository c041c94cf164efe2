//! The NATS sink: outbox records published to JetStream and acknowledged once stored.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::context::{Context, PublishErrorKind};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_nats::{ConnectOptions, ServerAddr};
use tokio::sync::Mutex;

use super::config::{Auth, NatsSinkConfig, subject_value};
use super::{EVENT_HEADER, IDEMPOTENCY_HEADER, TENANT_HEADER};
use crate::publish::{OutboxPublisher, OutboxRecord, PublishError, SinkConfigError, secret_from_env};
use crate::template::Template;

/// How long connecting, or one publish and its acknowledgement, may take
/// before the attempt counts as failed (the outbox retries it).
const TIMEOUT: Duration = Duration::from_secs(10);

/// A JetStream publisher for the outbox worker. A record counts as published
/// once JetStream acknowledged it, that is once a stream stored it; a
/// record published again with the same idempotency key inside the stream's
/// duplicate window is acknowledged as a duplicate and stored once.
///
/// The client connects on the first publish (or [`connect`](Self::connect));
/// after that, async-nats reconnects by itself whenever the connection
/// drops, and a publish made meanwhile fails when its acknowledgement does
/// not come in time. With `create_stream`, a publish that finds no stream
/// makes the next one connect afresh and create it again.
pub struct NatsSink {
    servers: Vec<ServerAddr>,
    auth: Secret,
    subject: Template,
    stream: Option<String>,
    create: Option<stream::Config>,
    context: Mutex<Option<Context>>,
}

/// The credentials, read at construction.
enum Secret {
    None,
    /// The contents of the `.creds` file.
    Creds(String),
    Token(String),
    UserPassword(String, String),
}

impl std::fmt::Debug for NatsSink {
    // The credentials are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("servers", &self.servers)
            .field("subject", &self.subject.to_string())
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl NatsSink {
    /// A sink for `cfg`: checks it, reads the credentials (environment
    /// variables, `.creds` file) and parses the server URLs. Opens no
    /// connection.
    pub fn new(cfg: &NatsSinkConfig) -> Result<NatsSink, SinkConfigError> {
        let (subject, auth, subjects) = cfg.checked()?;
        let servers = cfg
            .url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<ServerAddr>().map_err(|e| SinkConfigError::new("url", format!("{s}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let auth = match auth {
            Auth::None => Secret::None,
            Auth::CredsFile(path) => Secret::Creds(read_creds(path)?),
            Auth::Token(var) => Secret::Token(secret_from_env("token_env", var)?),
            Auth::UserPassword(user, var) => {
                Secret::UserPassword(user.to_owned(), secret_from_env("password_env", var)?)
            }
        };
        let create = match (&cfg.stream, cfg.create_stream) {
            (Some(name), true) => Some(stream::Config {
                name: name.clone(),
                subjects,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(cfg.duplicate_window_secs.unwrap_or(120)),
                ..Default::default()
            }),
            _ => None,
        };
        Ok(NatsSink { servers, auth, subject, stream: cfg.stream.clone(), create, context: Mutex::new(None) })
    }

    /// Connects now (and creates or checks the stream) unless connected, so
    /// a caller can find a wrong URL, credential or stream at start rather
    /// than at the first publish.
    pub async fn connect(&self) -> Result<(), PublishError> {
        self.context().await.map(|_| ())
    }

    /// The subject of a record.
    pub fn subject(&self, event: &str, tenant: &str) -> String {
        self.subject.render(event, tenant, subject_value)
    }

    async fn context(&self) -> Result<Context, PublishError> {
        let mut slot = self.context.lock().await;
        if let Some(js) = slot.as_ref() {
            return Ok(js.clone());
        }
        let js = match tokio::time::timeout(TIMEOUT, self.open()).await {
            Ok(r) => r?,
            Err(_) => return Err(PublishError(format!("nats: connecting to {}: timed out", self.server_list()))),
        };
        *slot = Some(js.clone());
        Ok(js)
    }

    async fn open(&self) -> Result<Context, PublishError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| PublishError(format!("nats: {what}: {e}"));
        let options = match &self.auth {
            Secret::None => ConnectOptions::new(),
            Secret::Creds(creds) => ConnectOptions::with_credentials(creds).map_err(|e| fail("creds_file", &e))?,
            Secret::Token(token) => ConnectOptions::with_token(token.clone()),
            Secret::UserPassword(user, password) => {
                ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
        }
        .name("llmsec outbox")
        .connection_timeout(TIMEOUT)
        // Never give up reconnecting: the outbox keeps the records meanwhile.
        .max_reconnects(None);
        let client = options
            .connect(self.servers.clone())
            .await
            .map_err(|e| fail(&format!("connecting to {}", self.server_list()), &e))?;
        let js = jetstream::new(client);
        match (&self.create, &self.stream) {
            (Some(config), _) => {
                js.get_or_create_stream(config.clone())
                    .await
                    .map_err(|e| fail(&format!("creating stream {}", config.name), &e))?;
            }
            (None, Some(name)) => {
                js.get_stream(name).await.map_err(|e| fail(&format!("stream {name}"), &e))?;
            }
            (None, None) => {}
        }
        tracing::info!(servers = %self.server_list(), stream = ?self.stream, "nats sink: connected");
        Ok(js)
    }

    fn server_list(&self) -> String {
        self.servers.iter().map(|s| format!("{}:{}", s.host(), s.port())).collect::<Vec<_>>().join(",")
    }
}

fn read_creds(path: &PathBuf) -> Result<String, SinkConfigError> {
    let creds = std::fs::read_to_string(path)
        .map_err(|e| SinkConfigError::new("creds_file", format!("{}: {e}", path.display())))?;
    // Parse it now, so a broken file is found at start.
    ConnectOptions::with_credentials(&creds)
        .map_err(|e| SinkConfigError::new("creds_file", format!("{}: {e}", path.display())))?;
    Ok(creds)
}

#[async_trait::async_trait]
impl OutboxPublisher for NatsSink {
    async fn publish(&self, r: OutboxRecord<'_>) -> Result<(), PublishError> {
        let js = self.context().await?;
        let subject = self.subject(r.event, r.tenant);
        let mut message = PublishMessage::build()
            .payload(r.payload.to_vec().into())
            .message_id(r.idempotency_key)
            .header(IDEMPOTENCY_HEADER, r.idempotency_key)
            .header(EVENT_HEADER, r.event)
            .header(TENANT_HEADER, r.tenant)
            .header("Content-Type", "application/json");
        if let Some(stream) = &self.stream {
            message = message.expected_stream(stream);
        }
        let attempt = async {
            let ack = js.send_publish(subject.clone(), message).await?;
            ack.await
        };
        match tokio::time::timeout(TIMEOUT, attempt).await {
            Ok(Ok(ack)) => {
                if ack.duplicate {
                    tracing::debug!(
                        id = r.idempotency_key,
                        stream = ack.stream,
                        "nats sink: duplicate dropped by JetStream"
                    );
                }
                Ok(())
            }
            Ok(Err(e)) => {
                if e.kind() == PublishErrorKind::StreamNotFound && self.create.is_some() {
                    // The stream this sink creates is gone (deleted by
                    // hand?): connect afresh next time, which creates it.
                    self.context.lock().await.take();
                }
                Err(PublishError(format!("nats: publishing to {subject}: {e}")))
            }
            Err(_) => {
                Err(PublishError(format!("nats: publishing to {subject}: no acknowledgement within {TIMEOUT:?}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> NatsSinkConfig {
        toml::from_str(&format!("url = \"nats://127.0.0.1:4222\"\n{extra}")).expect("parses")
    }

    fn field_of(r: Result<NatsSink, SinkConfigError>) -> (String, String) {
        let e = r.expect_err("refused");
        (e.field, e.message)
    }

    #[test]
    fn secrets_missing_from_the_environment_are_named_by_variable() {
        let (field, message) = field_of(NatsSink::new(&config("token_env = \"LLMSEC_UNSET_TOKEN_FOR_TEST\"\n")));
        assert_eq!(field, "token_env");
        assert!(message.contains("LLMSEC_UNSET_TOKEN_FOR_TEST is not set"), "{message}");
        let cfg = config("user = \"u\"\npassword_env = \"LLMSEC_UNSET_PASSWORD_FOR_TEST\"\n");
        assert_eq!(field_of(NatsSink::new(&cfg)).0, "password_env");
    }

    #[test]
    fn a_creds_file_that_is_missing_or_does_not_parse_is_refused_when_the_sink_is_built() {
        let path = std::env::temp_dir().join(format!("llmsec-test-{}.creds", uuid::Uuid::new_v4().simple()));
        let cfg = config(&format!("creds_file = {:?}\n", path.display().to_string()));
        assert_eq!(field_of(NatsSink::new(&cfg)).0, "creds_file");
        std::fs::write(&path, "not a creds file").expect("write");
        let (field, message) = field_of(NatsSink::new(&cfg));
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(field, "creds_file");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    #[test]
    fn a_bad_server_address_is_named() {
        let mut cfg = config("");
        cfg.url = "nats://host:notaport".into();
        assert_eq!(field_of(NatsSink::new(&cfg)).0, "url");
        let sink = NatsSink::new(&config("subject = \"a.{tenant}.{event}\"\n")).expect("builds");
        assert_eq!(sink.subject("anomaly.detected", "big corp"), "a.big_corp.anomaly.detected");
        assert!(format!("{sink:?}").contains("a.{tenant}.{event}"));
    }
}
