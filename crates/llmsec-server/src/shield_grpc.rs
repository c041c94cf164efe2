//! gRPC: `shield.v1.ShieldAction` (`proto/shield/v1/shield.proto`), served on
//! the same port as REST. A Sentinel — a remote one whose detector actions
//! name `endpoint:`, or any client with a `triage` key — blocks or
//! rate-limits an entity of the key's tenant for a while, reads an action's
//! state, and lifts it. An action becomes an enforcement in the store, so
//! the gateway and `/api/security/analyze` of every replica honour it (this
//! one at once, the others at their next reload); each change is written
//! to the audit log.
//!
//! Actions are idempotent on `action_id`: the enforcement id is derived
//! from the tenant and the action id, so a retried call finds the
//! enforcement it made and answers with it.

use llmsec_store::{Enforcement, Millis, Scope};
use sha2::Digest;
use tonic::{Request, Response, Status};

use crate::grpc::{caller_of, status_of};
use crate::service::{Caller, ServiceError, Services, check_id};

/// The generated messages, service and client.
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod pb {
    tonic::include_proto!("shield.v1");
}

use pb::shield_action_server::{ShieldAction, ShieldActionServer};

/// The longest action.
const MAX_DURATION_MS: Millis = 30 * 86_400_000;
/// Entity kinds an action may target.
const KINDS: [&str; 6] = ["user", "session", "ip", "application", "model", "tenant"];

/// The service.
#[derive(Debug, Clone)]
pub struct Shield {
    services: Services,
}

/// The service, for [`crate::grpc::router`] to serve beside ingestion.
pub fn service(services: Services) -> ShieldActionServer<Shield> {
    ShieldActionServer::new(Shield { services })
}

fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    caller_of(request, Scope::Triage)
}

/// The enforcement id of an action: stable per tenant and action id.
fn enforcement_id(tenant: &str, action_id: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{tenant}\n{action_id}").as_bytes());
    format!("shd_{}", &hex::encode(digest)[..24])
}

/// `kind:id`, or a bare id (a user).
fn parse_target(t: &str) -> Result<(&'static str, String), ServiceError> {
    let (kind, id) = match t.split_once(':') {
        Some((k, id)) if KINDS.contains(&k) => (k, id),
        Some((k, _)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase()) => {
            return Err(ServiceError::field(
                "target_entity",
                format!("{k:?} is not an entity kind: user, session, ip, application, model or tenant"),
            ));
        }
        // An address such as 2001:db8::1 or a bare id.
        _ => ("user", t),
    };
    let kind = KINDS.iter().copied().find(|k| *k == kind).unwrap_or("user");
    if id.is_empty() {
        return Err(ServiceError::field("target_entity", "names no entity"));
    }
    if kind == "ip" {
        id.parse::<std::net::IpAddr>()
            .map_err(|_| ServiceError::field("target_entity", format!("{id:?} is not an IP address")))?;
    } else {
        check_id("target_entity", Some(id))?;
    }
    Ok((kind, id.to_owned()))
}

/// A window such as `1m`, `90s`, or Go's `1m30s` / `1h0m0s`, in milliseconds.
fn parse_window(s: &str) -> Result<Millis, String> {
    let bad = || format!("{s:?} is not a duration such as 30s, 1m or 1m30s");
    let mut rest = s.trim();
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let ms = match &rest[..u_end] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            "d" => 86_400e3,
            _ => return Err(bad()),
        };
        total += n * ms;
        rest = &rest[u_end..];
    }
    if !(1.0..=MAX_DURATION_MS as f64).contains(&total) {
        return Err(format!("{s:?} must be between 1 ms and 30 days"));
    }
    Ok(total.round() as Millis)
}

fn timestamp(ms: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// The enforcement an action asks for, checked; errors name the field.
fn enforcement(tenant: &str, r: &pb::ActionRequest, now: Millis) -> Result<Enforcement, ServiceError> {
    if r.action_id.is_empty() || r.action_id.len() > 256 {
        return Err(ServiceError::field("action_id", "required, at most 256 bytes"));
    }
    let (kind, entity_id) = parse_target(&r.target_entity)?;
    let d = r.duration.ok_or_else(|| ServiceError::field("duration", "required"))?;
    let duration = d.seconds.saturating_mul(1000).saturating_add(i64::from(d.nanos) / 1_000_000);
    if !(1..=MAX_DURATION_MS).contains(&duration) {
        return Err(ServiceError::field("duration", "must be between 1 ms and 30 days"));
    }
    let (action, rate_limit, window_ms) = match pb::ActionType::try_from(r.r#type) {
        Ok(pb::ActionType::Block) => ("block", None, None),
        Ok(pb::ActionType::RateLimit) => {
            let limit =
                r.parameters.get("limit").and_then(|l| l.trim().parse::<u64>().ok()).filter(|l| *l > 0).ok_or_else(
                    || ServiceError::field("parameters.limit", "a RATE_LIMIT needs a positive whole limit"),
                )?;
            let window = match r.parameters.get("window") {
                Some(w) => parse_window(w).map_err(|e| ServiceError::field("parameters.window", e))?,
                None => duration,
            };
            ("rate_limit", Some(limit), Some(window))
        }
        _ => return Err(ServiceError::field("type", "must be BLOCK or RATE_LIMIT")),
    };
    let reason = if r.reason.trim().is_empty() { "blocked by Shield action".to_owned() } else { r.reason.clone() };
    if reason.len() > 1024 {
        return Err(ServiceError::field("reason", "at most 1024 bytes"));
    }
    Ok(Enforcement {
        id: enforcement_id(tenant, &r.action_id),
        tenant: tenant.to_owned(),
        entity_kind: kind.to_owned(),
        entity_id,
        action: action.to_owned(),
        rate_limit,
        window_ms,
        reason,
        anomaly_id: Some(r.parameters.get("anomaly_id").cloned().unwrap_or_else(|| r.action_id.clone())),
        created_at: now,
        expires_at: now + duration,
    })
}

fn status_message(action_id: &str, e: &Enforcement, now: Millis) -> pb::ActionStatus {
    pb::ActionStatus {
        action_id: action_id.to_owned(),
        enforcement_id: e.id.clone(),
        r#type: if e.action == "block" { pb::ActionType::Block } else { pb::ActionType::RateLimit } as i32,
        target_entity: format!("{}:{}", e.entity_kind, e.entity_id),
        reason: e.reason.clone(),
        active: e.expires_at > now,
        created_at: Some(timestamp(e.created_at)),
        expires_at: Some(timestamp(e.expires_at)),
    }
}

#[tonic::async_trait]
impl ShieldAction for Shield {
    async fn enforce_action(
        &self,
        request: Request<pb::ActionRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let caller = caller(&request)?;
        let svc = &self.services;
        let now = svc.sentinel.now();
        let r = request.into_inner();
        let e = enforcement(&caller.tenant, &r, now).map_err(status_of)?;
        match svc.store.enforcement(&caller.tenant, &e.id).await.map_err(|e| status_of(e.into()))? {
            Some(old) if old.expires_at > now => {
                return Ok(Response::new(pb::ActionResponse {
                    success: true,
                    message: format!("already in force: {} {}:{}", old.action, old.entity_kind, old.entity_id),
                    enforcement_id: old.id.clone(),
                    expires_at: Some(timestamp(old.expires_at)),
                }));
            }
            // The same action id was used and has ended: a new action needs a new id.
            Some(_) => {
                return Err(Status::already_exists(format!(
                    "action {:?} was enforced and has ended; send a new action_id",
                    r.action_id
                )));
            }
            None => {}
        }
        svc.store.insert_enforcement(&e).await.map_err(|e| status_of(e.into()))?;
        svc.sentinel.enforcement_added(e.clone());
        let details = serde_json::json!({
            "action_id": r.action_id, "action": e.action, "entity": format!("{}:{}", e.entity_kind, e.entity_id),
            "expires_at": crate::time::rfc3339(e.expires_at), "reason": e.reason, "parameters": r.parameters,
        });
        crate::service::tenants::audit(svc, &caller, "shield.enforce", &e.id, details).await.map_err(status_of)?;
        metrics::counter!(crate::metrics::SHIELD_ACTIONS, "action" => e.action.clone()).increment(1);
        let message = format!(
            "{} {}:{} until {}",
            e.action,
            e.entity_kind,
            e.entity_id,
            crate::time::rfc3339(e.expires_at).unwrap_or_default()
        );
        if let Some(anomaly_id) = r.parameters.get("anomaly_id") {
            queue_callback(svc, &caller.tenant, anomaly_id, &e.id, &message).await;
        }
        Ok(Response::new(pb::ActionResponse {
            success: true,
            message,
            enforcement_id: e.id.clone(),
            expires_at: Some(timestamp(e.expires_at)),
        }))
    }

    async fn get_action_status(
        &self,
        request: Request<pb::ActionStatusRequest>,
    ) -> Result<Response<pb::ActionStatus>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = enforcement_id(&caller.tenant, &r.action_id);
        let e = self.services.store.enforcement(&caller.tenant, &id).await.map_err(|e| status_of(e.into()))?;
        let e = e.ok_or_else(|| Status::not_found(format!("no action {:?}", r.action_id)))?;
        Ok(Response::new(status_message(&r.action_id, &e, self.services.sentinel.now())))
    }

    async fn revoke_action(
        &self,
        request: Request<pb::ActionStatusRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let caller = caller(&request)?;
        let svc = &self.services;
        let r = request.into_inner();
        let id = enforcement_id(&caller.tenant, &r.action_id);
        let now = svc.sentinel.now();
        if svc.store.enforcement(&caller.tenant, &id).await.map_err(|e| status_of(e.into()))?.is_none() {
            return Err(Status::not_found(format!("no action {:?}", r.action_id)));
        }
        let ended = svc.store.end_enforcement(&caller.tenant, &id, now).await.map_err(|e| status_of(e.into()))?;
        // This replica stops enforcing at once; the others at their next reload.
        let list = svc.store.enforcements_in_force(now).await.map_err(|e| status_of(e.into()))?;
        svc.sentinel.enforcements.set(list);
        if ended {
            let details = serde_json::json!({"action_id": r.action_id});
            crate::service::tenants::audit(svc, &caller, "shield.revoke", &id, details).await.map_err(status_of)?;
        }
        Ok(Response::new(pb::ActionResponse {
            success: true,
            message: if ended { "revoked".into() } else { "was not in force".into() },
            enforcement_id: id,
            expires_at: Some(timestamp(now)),
        }))
    }
}

/// What a remote Shield is asked to do.
#[derive(Debug, Clone)]
pub struct RemoteAction {
    /// The action's id (the anomaly's id and the action's index).
    pub action_id: String,
    /// Block, or rate-limit to `limit` per `window_ms`.
    pub rate: Option<(u64, Millis)>,
    /// `kind:id`.
    pub target: String,
    /// Why.
    pub reason: String,
    /// How long.
    pub duration_ms: Millis,
    /// The anomaly, and anything the detector's action passes on.
    pub parameters: std::collections::HashMap<String, String>,
}

/// Asks the Shield gateway at `endpoint` (`host:port`, `http://host:port`,
/// or `https://host:port` for TLS) to enforce `action`, as the holder of
/// `key` (a `triage` key of that gateway). Over TLS the gateway's
/// certificate is checked against the system's roots and `tls.ca_file`, for
/// the endpoint's host name, and `tls`'s client certificate is presented
/// when set. The endpoint's addresses go through `egress` first. Answers
/// the remote enforcement's id and message, or why it failed.
pub async fn enforce_remote(
    endpoint: &str,
    key: &str,
    tls: &crate::config::ShieldEndpoint,
    action: RemoteAction,
    egress: &crate::egress::EgressPolicy,
) -> Result<(String, String), String> {
    let base = if endpoint.contains("://") { endpoint.to_owned() } else { format!("http://{endpoint}") };
    let url = url::Url::parse(&base).map_err(|e| format!("endpoint {endpoint:?}: {e}"))?;
    let secure = match url.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(format!("endpoint {endpoint:?}: scheme {other:?} is not http or https")),
    };
    let host = url.host_str().ok_or_else(|| format!("endpoint {endpoint:?} names no host"))?.to_owned();
    let port = url.port_or_known_default().ok_or_else(|| format!("endpoint {endpoint:?} names no port"))?;
    let host_for_lookup = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host_for_lookup.as_str(), port))
        .await
        .map_err(|e| format!("endpoint {endpoint:?}: {e}"))?
        .collect();
    let addr = *egress.filter(&host_for_lookup, addrs).map_err(|e| e.to_string())?.first().ok_or("no address")?;
    // The checked address is dialled (no second lookup); over TLS the
    // certificate is verified for the endpoint's host name.
    let scheme = if secure { "https" } else { "http" };
    let mut channel = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(5));
    if secure {
        channel = channel
            .tls_config(client_tls(&host_for_lookup, tls)?)
            .map_err(|e| format!("endpoint {endpoint:?}: TLS: {}", error_chain(&e)))?;
    }
    let channel = channel.connect().await.map_err(|e| format!("connect {endpoint}: {}", error_chain(&e)))?;
    let auth: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
        format!("Bearer {key}").parse().map_err(|_| "the key is not a valid header value".to_owned())?;
    let mut client = pb::shield_action_client::ShieldActionClient::with_interceptor(
        channel,
        move |mut req: Request<()>| -> Result<Request<()>, Status> {
            req.metadata_mut().insert("authorization", auth.clone());
            Ok(req)
        },
    );
    let mut parameters = action.parameters;
    let r#type = match action.rate {
        None => pb::ActionType::Block,
        Some((limit, window)) => {
            parameters.insert("limit".into(), limit.to_string());
            parameters.insert("window".into(), format!("{window}ms"));
            pb::ActionType::RateLimit
        }
    };
    let request = pb::ActionRequest {
        action_id: action.action_id,
        r#type: r#type as i32,
        target_entity: action.target,
        reason: action.reason,
        duration: Some(prost_types::Duration {
            seconds: action.duration_ms / 1000,
            nanos: ((action.duration_ms % 1000) * 1_000_000) as i32,
        }),
        parameters,
    };
    let answer = client
        .enforce_action(request)
        .await
        .map_err(|s| match std::error::Error::source(&s) {
            // A transport failure (TLS refused, connection reset) says why in its sources.
            Some(cause) => format!("{endpoint}: {}: {}", s.message(), error_chain(cause)),
            None => format!("{endpoint}: {}", s.message()),
        })?
        .into_inner();
    if !answer.success {
        return Err(format!("{endpoint}: {}", answer.message));
    }
    Ok((answer.enforcement_id, format!("{endpoint}: {}", answer.message)))
}

/// With `[shield_callback]` set, queues the seed's Shield callback for the
/// Sentinel that sent an action (`{anomaly_id, action_id, status, message,
/// timestamp}`, `action_id` being the enforcement id the Sentinel recorded
/// from the answer) in the delivery outbox, which posts it with retries.
/// The action is enforced either way: a callback that cannot be queued is
/// logged.
async fn queue_callback(svc: &Services, tenant: &str, anomaly_id: &str, enforcement_id: &str, message: &str) {
    if svc.config.shield_callback.is_none() {
        return;
    }
    let now = llmsec_store::now_millis();
    let body = serde_json::json!({
        "anomaly_id": anomaly_id,
        "action_id": enforcement_id,
        "status": "succeeded",
        "message": message,
        "timestamp": crate::time::rfc3339(now),
    });
    let d = llmsec_store::Delivery::pending(
        format!("cb_{}", uuid::Uuid::now_v7().simple()),
        crate::deliver::SHIELD_CALLBACK_TARGET.to_owned(),
        tenant,
        "shield.callback",
        body.to_string(),
        now,
    );
    match svc.store.enqueue(&[d]).await {
        Ok(()) => svc.delivery_notify.notify_one(),
        Err(e) => tracing::warn!(error = %e, anomaly = %anomaly_id, "shield callback not queued"),
    }
}

/// The TLS settings for a Shield endpoint: the system's roots, the
/// endpoint's CA file if any, the client certificate if any.
fn client_tls(host: &str, tls: &crate::config::ShieldEndpoint) -> Result<tonic::transport::ClientTlsConfig, String> {
    let read =
        |what: &str, path: &std::path::Path| std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()));
    let mut config = tonic::transport::ClientTlsConfig::new().domain_name(host).with_native_roots();
    if let Some(ca) = &tls.ca_file {
        config = config.ca_certificate(tonic::transport::Certificate::from_pem(read("ca_file", ca)?));
    }
    match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => {
            config = config.identity(tonic::transport::Identity::from_pem(
                read("client_cert_file", cert)?,
                read("client_key_file", key)?,
            ));
        }
        (None, None) => {}
        _ => return Err("set client_cert_file and client_key_file together".into()),
    }
    Ok(config)
}

/// An error and its causes, joined: tonic's transport errors say only
/// "transport error" at the top.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: pb::ActionType, target: &str, secs: i64) -> pb::ActionRequest {
        pb::ActionRequest {
            action_id: "an_1".into(),
            r#type: kind as i32,
            target_entity: target.into(),
            reason: "prompt injection".into(),
            duration: Some(prost_types::Duration { seconds: secs, nanos: 0 }),
            parameters: Default::default(),
        }
    }

    fn field(r: Result<Enforcement, ServiceError>) -> String {
        match r {
            Err(ServiceError::Invalid { field: Some(f), .. }) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_action_becomes_an_enforcement() {
        let e = enforcement("t", &request(pb::ActionType::Block, "user:mallory", 3600), 1000).unwrap();
        assert_eq!((e.entity_kind.as_str(), e.entity_id.as_str(), e.action.as_str()), ("user", "mallory", "block"));
        assert_eq!((e.created_at, e.expires_at), (1000, 1000 + 3_600_000));
        assert_eq!(e.id, enforcement_id("t", "an_1"));
        assert_ne!(e.id, enforcement_id("u", "an_1"), "per tenant");
        assert_eq!(e.anomaly_id.as_deref(), Some("an_1"));
        // A bare id is a user; an IPv6 address is not a kind.
        let e = enforcement("t", &request(pb::ActionType::Block, "mallory", 60), 0).unwrap();
        assert_eq!(e.entity_kind, "user");
        let e = enforcement("t", &request(pb::ActionType::Block, "ip:2001:db8::1", 60), 0).unwrap();
        assert_eq!((e.entity_kind.as_str(), e.entity_id.as_str()), ("ip", "2001:db8::1"));
        let mut r = request(pb::ActionType::RateLimit, "session:s1", 600);
        r.parameters.insert("limit".into(), "10".into());
        r.parameters.insert("window".into(), "1m0s".into());
        let e = enforcement("t", &r, 0).unwrap();
        assert_eq!((e.action.as_str(), e.rate_limit, e.window_ms), ("rate_limit", Some(10), Some(60_000)));
    }

    #[test]
    fn bad_actions_name_the_field() {
        assert_eq!(field(enforcement("t", &request(pb::ActionType::Unspecified, "u", 60), 0)), "type");
        assert_eq!(field(enforcement("t", &request(pb::ActionType::Block, "user:", 60), 0)), "target_entity");
        assert_eq!(field(enforcement("t", &request(pb::ActionType::Block, "planet:mars", 60), 0)), "target_entity");
        assert_eq!(field(enforcement("t", &request(pb::ActionType::Block, "ip:not-an-ip", 60), 0)), "target_entity");
        assert_eq!(field(enforcement("t", &request(pb::ActionType::Block, "u", 0), 0)), "duration");
        assert_eq!(field(enforcement("t", &request(pb::ActionType::Block, "u", 31 * 86_400), 0)), "duration");
        assert_eq!(field(enforcement("t", &request(pb::ActionType::RateLimit, "u", 60), 0)), "parameters.limit");
        let mut r = request(pb::ActionType::RateLimit, "u", 60);
        r.parameters.insert("limit".into(), "5".into());
        r.parameters.insert("window".into(), "soon".into());
        assert_eq!(field(enforcement("t", &r, 0)), "parameters.window");
        let mut r = request(pb::ActionType::Block, "u", 60);
        r.action_id.clear();
        assert_eq!(field(enforcement("t", &r, 0)), "action_id");
    }

    #[test]
    fn windows_read_our_form_and_gos() {
        assert_eq!(parse_window("1m"), Ok(60_000));
        assert_eq!(parse_window("1m30s"), Ok(90_000));
        assert_eq!(parse_window("1h0m0s"), Ok(3_600_000));
        assert_eq!(parse_window("1.5s"), Ok(1_500));
        assert_eq!(parse_window("250ms"), Ok(250));
        for bad in ["", "5", "m", "1x", "0s", "31d"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }
}
