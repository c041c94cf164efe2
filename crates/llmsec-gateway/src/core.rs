//! Every call the gateway makes into `llmsec-server`: authentication, the
//! analysis and telemetry services, the engine's sanitizer and stream. The
//! server's errors become OpenAI error bodies in one function,
//! [`map_error`]. Nothing else in this crate names a server type but
//! [`AppState`] and [`Caller`], so a change in the server's service layer
//! touches this file only.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use llm_security::{ContextKind, OutputContext, OutputStream, StreamOptions, Threat, Verdict};
use llm_sentinel::event::TelemetryEvent;
pub use llmsec_server::AppState;
pub use llmsec_server::service::Caller;
use llmsec_server::service::ServiceError;
use llmsec_server::service::analysis::{self, AnalyzeRequest, Cleared, Job, SecurityResponse, ValidateRequest};
use llmsec_server::service::deadline::Deadline;
use llmsec_server::service::quarantine::{self, Hold};
use llmsec_server::service::telemetry;
use llmsec_store::{QuarantineItem, Scope};

use crate::cache::{CacheKey, ScanCache};
use crate::error::{OpenAiError, Shaped};

/// Largest server error body the shaping layer reads.
const SHAPE_BODY_BYTES: usize = 64 * 1024;

/// Who a call is for, from the `X-Llmsec-*` headers or OpenAI's `user` field.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subject {
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub application_id: Option<String>,
    pub ip: Option<String>,
    /// The end user's role (`X-Llmsec-Role`), for the Rego policy.
    pub role: Option<String>,
}

/// What the Rego policy (`[policy]`) is told of a gateway call besides each
/// text: the end user's role, the model, the tools the request offers, and
/// the route.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyFacts {
    pub role: Option<String>,
    pub model: Option<String>,
    pub tools: Vec<String>,
    pub route: Option<String>,
}

impl PolicyFacts {
    /// A cache scope that tells calls with other facts apart: a policy may
    /// decide differently on the same text for another role, model or tool set.
    fn scope(&self, base: &str) -> String {
        format!(
            "{base}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.role.as_deref().unwrap_or(""),
            self.model.as_deref().unwrap_or(""),
            self.tools.join("\u{1e}"),
            self.route.as_deref().unwrap_or("")
        )
    }
}

/// What the engine made of one text.
#[derive(Debug, Clone)]
pub(crate) struct Scanned {
    pub verdict: Verdict,
    /// The sanitized text, when the verdict is `sanitize`.
    pub sanitized: Option<String>,
    pub threats: Vec<Threat>,
    /// The stored security event (`None` for a result the cache answered).
    pub event_id: Option<String>,
}

impl From<SecurityResponse> for Scanned {
    fn from(r: SecurityResponse) -> Scanned {
        Scanned { verdict: r.verdict, sanitized: r.sanitized, threats: r.threats, event_id: Some(r.event_id) }
    }
}

/// The server's error as an OpenAI error body: the one place the two meet.
pub(crate) fn map_error(e: ServiceError) -> OpenAiError {
    let message = e.to_string();
    match e {
        ServiceError::Invalid { field, .. } => {
            let mut err = OpenAiError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
            err.param = field;
            err
        }
        ServiceError::Unauthenticated => OpenAiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", message),
        ServiceError::Forbidden(_) => OpenAiError::new(StatusCode::FORBIDDEN, "forbidden", message),
        ServiceError::Blocked { reason, until } => {
            let until = if until.is_empty() { String::new() } else { format!(" until {until}") };
            OpenAiError::new(StatusCode::FORBIDDEN, "user_blocked", format!("blocked by Sentinel{until}: {reason}"))
        }
        ServiceError::RateLimited { retry_after_secs } => {
            let mut err = OpenAiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
            err.retry_after = Some(u32::try_from(retry_after_secs).unwrap_or(u32::MAX));
            err
        }
        ServiceError::Timeout => OpenAiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", message),
        ServiceError::NotFound(_) => OpenAiError::new(StatusCode::NOT_FOUND, "not_found", message),
        ServiceError::Conflict(_) => OpenAiError::new(StatusCode::CONFLICT, "conflict", message),
        ServiceError::Unavailable(detail) => {
            tracing::warn!(%detail, "gateway: service unavailable");
            OpenAiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable; retry later")
        }
        ServiceError::Internal(detail) => {
            tracing::error!(%detail, "gateway: internal error");
            OpenAiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
        }
        other => {
            tracing::error!(error = %other, "gateway: unexpected service error");
            OpenAiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
        }
    }
}

/// Puts the server's authentication (key lookup, failed-authentication
/// throttling, the per-key rate limit) in front of `router`'s routes, and
/// gives its refusals OpenAI's error shape.
pub(crate) fn authenticated(router: Router, state: &AppState) -> Router {
    router
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), llmsec_server::auth::authenticate))
        .route_layer(axum::middleware::from_fn(shape_errors))
}

/// Rewrites an error answered by a server layer (`{"error": {"code",
/// "message", "field"?}}`) into OpenAI's shape, keeping status and headers;
/// on Anthropic's route, every error into Anthropic's shape.
async fn shape_errors(req: Request, next: Next) -> Response {
    let anthropic = req.uri().path() == crate::proxy::MESSAGES_PATH;
    let resp = next.run(req).await;
    let status = resp.status();
    let shaped = resp.extensions().get::<Shaped>().is_some();
    if !(status.is_client_error() || status.is_server_error()) || (shaped && !anthropic) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, SHAPE_BODY_BYTES).await else {
        return OpenAiError::new(status, "error", status.canonical_reason().unwrap_or("error")).into_response();
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let e = &v["error"];
    // The server's authentication layer answers `unauthorized`; OpenAI's
    // clients know a bad key as `invalid_api_key`.
    let code = match e["code"].as_str().unwrap_or("error") {
        "unauthorized" => "invalid_api_key",
        c => c,
    };
    let message = e["message"].as_str().map_or_else(|| String::from_utf8_lossy(&bytes).into_owned(), str::to_owned);
    let mut err = OpenAiError::new(status, code, message);
    err.param = e["field"].as_str().or(e["param"].as_str()).map(str::to_owned);
    let mut shaped = if anthropic {
        let mut r = (status, axum::Json(err.anthropic_body())).into_response();
        r.extensions_mut().insert(Shaped);
        r
    } else {
        err.into_response()
    };
    for (k, val) in &parts.headers {
        if k != axum::http::header::CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
            shaped.headers_mut().insert(k.clone(), val.clone());
        }
    }
    shaped
}

/// The authenticated caller, who must hold the `proxy` scope.
#[derive(Debug, Clone)]
pub(crate) struct Proxy(pub Arc<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for Proxy {
    type Rejection = OpenAiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<Arc<Caller>>().cloned().ok_or_else(|| {
            OpenAiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", "missing or invalid API key")
        })?;
        if !caller.has(Scope::Proxy) {
            return Err(map_error(ServiceError::Forbidden(Scope::Proxy.as_str())));
        }
        Ok(Proxy(caller))
    }
}

/// The request's size limit (`limits.body_bytes`).
pub(crate) fn body_limit(state: &AppState) -> usize {
    state.config.limits.body_bytes
}

fn deadline(state: &AppState) -> Deadline {
    Deadline::after(Duration::from_millis(state.config.limits.request_timeout_ms))
}

/// Sentinel's enforcements for the call's subject (tenant, user, session,
/// application, client address), checked once per call:
/// a blocked subject is refused here, before anything else (and before any
/// upstream call); a rate-limited one spends one token per call.
pub(crate) fn clear(state: &AppState, caller: &Caller, subject: &Subject) -> Result<Cleared, OpenAiError> {
    let subject = analysis::Subject {
        user_id: subject.user_id.clone(),
        session_id: subject.session_id.clone(),
        application_id: subject.application_id.clone(),
        ip: subject.ip.clone(),
    };
    analysis::enforce(&state.services, caller, subject).map_err(map_error)
}

/// Refuses a model outside the key's allow-list (`403 model_not_allowed`).
pub(crate) fn check_model(caller: &Caller, model: &str) -> Result<(), OpenAiError> {
    if caller.may_use_model(model) {
        return Ok(());
    }
    let msg = format!("this key may not call the model {model:?}");
    Err(OpenAiError::new(StatusCode::FORBIDDEN, "model_not_allowed", msg).with_param("model"))
}

/// One call's hold on its key's budgets, stored (`key_holds`) so that every
/// replica on the database counts it. Settled with the call's usage by the
/// recorder; a hold dropped unsettled (the call was never recorded) is
/// released in the background, and one whose replica died lapses at its
/// expiry.
#[derive(Debug)]
pub(crate) struct Reservation {
    store: Arc<dyn llmsec_store::Store>,
    tenant: String,
    key_id: String,
    id: String,
    settled: bool,
}

impl Reservation {
    /// The hold's id, for [`llmsec_store::Store::settle_key_usage`].
    fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(key = %self.key_id, "gateway: a budget hold left to lapse (no runtime to release it on)");
            return;
        };
        let (store, tenant, key_id, id) = (
            self.store.clone(),
            std::mem::take(&mut self.tenant),
            std::mem::take(&mut self.key_id),
            std::mem::take(&mut self.id),
        );
        rt.spawn(async move {
            let now = llmsec_store::now_millis();
            if let Err(e) = store.settle_key_usage(&tenant, &key_id, now, 0, 0.0, &[id]).await {
                tracing::warn!(error = %e, key = %key_id, "gateway: a budget hold not released; it lapses");
            }
        });
    }
}

/// What a call is expected to spend, held against its key's budgets while
/// it runs: the prompt's estimated tokens plus the completion's cap
/// (`max_tokens` and its kin, else `gateway.budget_hold_tokens`), and their
/// cost at the model's price.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Expected {
    pub tokens: u64,
    pub cost: f64,
}

/// Holds the call's `expected` spend against its key's budgets in the
/// store, or refuses the call (`429 budget_exceeded`) when it does not fit
/// one of them: what was used, plus what the key's calls in flight hold (on
/// every replica), plus this call's hold must stay within the limit.
/// `Retry-After` is 1 when
/// calls in flight hold some of the budget (they end soon, and may use
/// less), else the time until the period ends. A hold lapses `hold_ttl_ms`
/// after it is made if it is never settled.
pub(crate) async fn check_budget(
    state: &AppState,
    caller: &Caller,
    expected: Expected,
    hold_ttl_ms: i64,
) -> Result<Option<Reservation>, OpenAiError> {
    if caller.budgets.is_empty() {
        return Ok(None);
    }
    let now = llmsec_store::now_millis();
    let hold = llmsec_store::BudgetHold {
        id: uuid::Uuid::now_v7().to_string(),
        tokens: expected.tokens,
        cost: expected.cost.max(0.0),
        expires_at: now.saturating_add(hold_ttl_ms),
    };
    let short = state
        .store
        .hold_key_budget(&caller.tenant, &caller.key_id, now, &caller.budgets, &hold)
        .await
        .map_err(|e| map_error(ServiceError::from(e)))?;
    let Some(short) = short else {
        return Ok(Some(Reservation {
            store: state.store.clone(),
            tenant: caller.tenant.clone(),
            key_id: caller.key_id.clone(),
            id: hold.id,
            settled: false,
        }));
    };
    Err(budget_refusal(&short, &hold, now))
}

/// The `429 budget_exceeded` of a hold that did not fit.
fn budget_refusal(short: &llmsec_store::BudgetShortfall, hold: &llmsec_store::BudgetHold, now: i64) -> OpenAiError {
    let b = &short.budget;
    let in_flight =
        |held: String| if held.is_empty() { String::new() } else { format!(", {held} held by calls in flight") };
    let tokens_over = b.tokens.is_some_and(|t| {
        short.used_tokens >= t || short.used_tokens.saturating_add(short.held_tokens).saturating_add(hold.tokens) > t
    });
    let (what, spent, held, needs) = match (b.tokens, b.cost) {
        (Some(t), _) if tokens_over || b.cost.is_none() => (
            format!(
                "{t} tokens ({} used{})",
                short.used_tokens,
                in_flight(if short.held_tokens > 0 { short.held_tokens.to_string() } else { String::new() })
            ),
            short.used_tokens >= t,
            short.held_tokens > 0,
            format!("{} tokens", hold.tokens),
        ),
        (_, c) => {
            let c = c.unwrap_or(0.0);
            (
                format!(
                    "a cost of {c} ({:.6} used{})",
                    short.used_cost,
                    in_flight(if short.held_cost > 0.0 { format!("{:.6}", short.held_cost) } else { String::new() })
                ),
                short.used_cost >= c,
                short.held_cost > 0.0,
                format!("a cost of {:.6}", hold.cost),
            )
        }
    };
    let end = b.period.end(now);
    let resets = || {
        format!(
            "it resets at {}",
            chrono::DateTime::from_timestamp_millis(end).map(|t| t.to_rfc3339()).unwrap_or_default()
        )
    };
    let period = b.period.as_str();
    let message = if spent {
        format!("this key's {period} budget of {what} is used up; {}", resets())
    } else if held {
        format!(
            "this key's {period} budget of {what} has no room for this call's {needs}; retry when the calls in flight have ended"
        )
    } else {
        format!("this key's {period} budget of {what} has no room for this call's {needs}; {}", resets())
    };
    let mut err = OpenAiError::new(StatusCode::TOO_MANY_REQUESTS, "budget_exceeded", message);
    err.retry_after =
        Some(if held && !spent { 1 } else { u32::try_from((end - now).max(0) / 1000 + 1).unwrap_or(u32::MAX) });
    err
}

/// Why texts could not be scanned: the engine refused one (larger than
/// its `max_input_bytes`), the analysis ran past
/// `limits.request_timeout_ms`, or it failed (the store, the engine).
#[derive(Debug, Clone)]
pub(crate) struct ScanError {
    /// What went wrong, for the refusal and the telemetry event.
    pub cause: String,
    /// The engine refused a text as too large.
    pub too_large: bool,
    /// The position of the text at fault among those scanned, when known.
    pub text: Option<usize>,
}

impl ScanError {
    fn from_service(e: ServiceError, texts: &[usize]) -> ScanError {
        match e {
            ServiceError::Invalid { field, message } => {
                // `items[k].input`: the k-th analysed text.
                let k = field
                    .as_deref()
                    .and_then(|f| f.strip_prefix("items["))
                    .and_then(|f| f.split(']').next())
                    .and_then(|k| k.parse::<usize>().ok());
                ScanError { cause: message, too_large: true, text: k.and_then(|k| texts.get(k).copied()) }
            }
            ServiceError::Timeout => ScanError {
                cause: "the analysis ran past limits.request_timeout_ms".into(),
                too_large: false,
                text: None,
            },
            other => {
                tracing::warn!(error = %other, "gateway: a scan failed");
                ScanError { cause: "the analysis failed".into(), too_large: false, text: None }
            }
        }
    }

    /// The refusal under `fail_closed`: `scan_failed`, 413 for a text the
    /// engine refuses as too large, 503 otherwise; `param` names the text.
    pub fn refusal(&self, what: &str, param: Option<String>) -> OpenAiError {
        let status = if self.too_large { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::SERVICE_UNAVAILABLE };
        let mut e = OpenAiError::new(status, "scan_failed", format!("{what} could not be scanned: {}", self.cause));
        e.param = param;
        e
    }
}

/// One text of a request to scan.
#[derive(Debug, Clone)]
pub(crate) struct ScanText {
    pub text: String,
    /// `None`: a prompt; `Some(kind)`: content of that kind (a tool result).
    pub kind: Option<ContextKind>,
    /// A system or developer message: the application's own text, the same
    /// for every user, so its result is shared across the tenant's callers.
    pub shared: bool,
}

/// Analyses the request's texts in one transaction, for the subject
/// `cleared` was made for. Texts whose result `cache` holds (a
/// conversation's earlier turns, the application's system prompt) are not
/// analysed or stored again.
pub(crate) async fn scan_inputs(
    state: &AppState,
    cache: Option<&ScanCache>,
    caller: &Caller,
    cleared: &Cleared,
    texts: &[ScanText],
    facts: &PolicyFacts,
) -> Result<Vec<Scanned>, ScanError> {
    let subject = cleared.subject();
    let scope = subject.session_id.as_deref().or(subject.user_id.as_deref()).unwrap_or("");
    // Under a Rego policy the verdict may depend on the call's facts (and
    // on the application), so they are part of what a cached answer is for.
    let policy = state.services.policy.is_some();
    let app = subject.application_id.as_deref().unwrap_or("");
    let keys: Vec<CacheKey> = texts
        .iter()
        .map(|t| {
            let base = if t.shared { "" } else { scope };
            if policy {
                ScanCache::key(&caller.tenant, &facts.scope(&format!("{base}\u{1f}{app}")), t.kind, &t.text)
            } else {
                ScanCache::key(&caller.tenant, base, t.kind, &t.text)
            }
        })
        .collect();
    let mut found: Vec<Option<Scanned>> = keys.iter().map(|k| cache.and_then(|c| c.get(k))).collect();
    let missing: Vec<usize> = (0..texts.len()).filter(|&i| found[i].is_none()).collect();
    if !missing.is_empty() {
        let jobs = missing
            .iter()
            .map(|&i| {
                Job::Input(AnalyzeRequest {
                    input: texts[i].text.clone(),
                    user_id: subject.user_id.clone(),
                    session_id: subject.session_id.clone(),
                    application_id: subject.application_id.clone(),
                    context: texts[i].kind,
                    role: facts.role.clone(),
                    model: facts.model.clone(),
                    tools: facts.tools.clone(),
                    route: facts.route.clone(),
                })
            })
            .collect();
        let answers = analysis::analyze_cleared(&state.services, caller, cleared, jobs, &deadline(state))
            .await
            .map_err(|e| ScanError::from_service(e, &missing))?;
        for (&i, answer) in missing.iter().zip(answers) {
            let scanned = Scanned::from(answer);
            if let Some(c) = cache {
                // A later call answered from the cache stores no event of its own.
                c.put(keys[i], Scanned { event_id: None, ..scanned.clone() });
            }
            found[i] = Some(scanned);
        }
    }
    found
        .into_iter()
        .map(|s| {
            s.ok_or_else(|| ScanError::from_service(ServiceError::Internal("an analysis has no answer".into()), &[]))
        })
        .collect()
}

/// Validates completions (one per choice) in one transaction, for the
/// subject `cleared` was made for.
pub(crate) async fn validate_outputs(
    state: &AppState,
    caller: &Caller,
    cleared: &Cleared,
    outputs: Vec<String>,
    system_prompt: Option<&str>,
    prompt: Option<&str>,
    facts: &PolicyFacts,
) -> Result<Vec<Scanned>, ScanError> {
    if outputs.is_empty() {
        return Ok(Vec::new());
    }
    let positions: Vec<usize> = (0..outputs.len()).collect();
    let subject = cleared.subject();
    let jobs = outputs
        .into_iter()
        .map(|output| {
            Job::Output(ValidateRequest {
                output,
                user_id: subject.user_id.clone(),
                session_id: subject.session_id.clone(),
                application_id: subject.application_id.clone(),
                system_prompt: system_prompt.map(str::to_owned),
                prompt: prompt.map(str::to_owned),
                expected_format: None,
                json_schema: None,
                role: facts.role.clone(),
                model: facts.model.clone(),
                tools: facts.tools.clone(),
                route: facts.route.clone(),
            })
        })
        .collect();
    let answers = analysis::analyze_cleared(&state.services, caller, cleared, jobs, &deadline(state))
        .await
        .map_err(|e| ScanError::from_service(e, &positions))?;
    Ok(answers.into_iter().map(Scanned::from).collect())
}

/// Whether `[quarantine]` holds a completion with this verdict and these findings.
pub(crate) fn holds(state: &AppState, verdict: Verdict, threats: &[Threat]) -> bool {
    quarantine::holds(&state.services, verdict, threats)
}

/// What a held answer is: its format, the answer as the upstream gave it
/// (JSON), what was found and the event of the analysis that held it.
#[derive(Debug)]
pub(crate) struct HeldAnswer<'a> {
    /// `chat.completion`, `text_completion` or `message`.
    pub kind: &'static str,
    pub answer: String,
    pub verdict: Verdict,
    pub threats: &'a [Threat],
    pub event_id: Option<String>,
}

/// Holds a whole answer for review and answers the refusal that names the
/// item (`held_for_review`). When it cannot be stored, the answer is
/// refused all the same: nothing held is ever handed out unreviewed.
pub(crate) async fn hold_answer(
    state: &AppState,
    caller: &Caller,
    subject: &Subject,
    a: HeldAnswer<'_>,
) -> OpenAiError {
    let hold = Hold {
        source: "gateway",
        kind: a.kind,
        content: a.answer,
        verdict: a.verdict,
        threats: a.threats,
        event_id: a.event_id,
        user_id: subject.user_id.clone(),
        session_id: subject.session_id.clone(),
    };
    match quarantine::hold(&state.services, caller, hold).await {
        Ok(held) => OpenAiError::held_for_review(&held.id),
        Err(e) => map_error(e),
    }
}

/// One of the caller's tenant's quarantined items.
pub(crate) async fn quarantined(state: &AppState, caller: &Caller, id: &str) -> Result<QuarantineItem, OpenAiError> {
    quarantine::find(&state.services, caller, id).await.map_err(map_error)
}

/// The text with secrets and personal data redacted and invisible
/// characters stripped, whatever the verdict.
pub(crate) fn sanitize(state: &AppState, text: &str) -> Result<String, OpenAiError> {
    state.engine.sanitize(text).map(|s| s.text).map_err(|e| match e {
        llm_security::Error::InputTooLarge { .. } => {
            OpenAiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", e.to_string())
        }
        e => map_error(ServiceError::Internal(e.to_string())),
    })
}

/// A stream validating one streamed choice.
pub(crate) fn output_stream(
    state: &AppState,
    system_prompt: Option<&str>,
    prompt: Option<&str>,
    opts: StreamOptions,
) -> OutputStream {
    let cx = OutputContext {
        system_prompt: system_prompt.map(str::to_owned),
        prompt: prompt.map(str::to_owned),
        ..OutputContext::default()
    };
    state.engine.output_stream_with(cx, opts)
}

/// A fresh canary token for a system prompt.
pub(crate) fn issue_canary(state: &AppState) -> String {
    state.engine.issue_canary()
}

/// Calls' telemetry events on their way to the store, with their callers.
pub(crate) type Recorder = tokio::sync::mpsc::Sender<Recorded>;

/// A call's event, with the budget reservation it holds until its usage is stored.
pub(crate) type Recorded = (Arc<Caller>, TelemetryEvent, Option<Reservation>);

/// Events waiting for the recorder at most; past this, a call stores its
/// own event.
const RECORD_QUEUE: usize = 16_384;
/// Events stored in one batch at most.
const RECORD_BATCH: usize = 512;

/// Starts the task that stores the gateway's telemetry events in batches:
/// while one batch is being stored, the next calls' events queue up and go
/// in the next, one transaction per key instead of one per call. `None`
/// outside a runtime.
pub(crate) fn start_recorder(state: &AppState) -> Option<Recorder> {
    let rt = tokio::runtime::Handle::try_current().ok()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(RECORD_QUEUE);
    let state = state.clone();
    rt.spawn(async move {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while rx.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            store_events(&state, std::mem::take(&mut batch)).await;
        }
    });
    Some(tx)
}

/// Stores the call's telemetry event through the durable ingestion path and
/// hands it to Sentinel, off the request path (through `recorder` when it
/// has room); a refusal is logged.
pub(crate) fn record(
    state: &AppState,
    recorder: Option<&Recorder>,
    caller: &Arc<Caller>,
    event: TelemetryEvent,
    reservation: Option<Reservation>,
) {
    use tokio::sync::mpsc::error::TrySendError;
    let (event, reservation) = match recorder {
        Some(r) => match r.try_send((caller.clone(), event, reservation)) {
            Ok(()) => return,
            Err(TrySendError::Full((_, e, h)) | TrySendError::Closed((_, e, h))) => (e, h),
        },
        None => (event, reservation),
    };
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("gateway: no runtime to record telemetry on");
        return;
    };
    let (state, caller) = (state.clone(), caller.clone());
    rt.spawn(async move { store_events(&state, vec![(caller, event, reservation)]).await });
}

/// Counts usage against budgets and settles the calls' budget holds (one
/// transaction per key and day), then stores the events of each key in one
/// transaction and hands them to Sentinel.
async fn store_events(state: &AppState, batch: Vec<Recorded>) {
    let mut usage: Vec<Usage> = Vec::new();
    let mut by_key: Vec<(Arc<Caller>, Vec<TelemetryEvent>)> = Vec::new();
    for (caller, event, reservation) in batch {
        if !caller.budgets.is_empty() || reservation.is_some() {
            add_usage(&mut usage, &caller, &event, reservation);
        }
        let event = match telemetry::admit(&caller, event, "") {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "gateway: telemetry event not stored");
                continue;
            }
        };
        match by_key.iter_mut().find(|(c, _)| c.key_id == caller.key_id) {
            Some((_, events)) => events.push(event),
            None => by_key.push((caller, vec![event])),
        }
    }
    for mut u in usage {
        let ids: Vec<String> = u.holds.iter().map(|h| h.id().to_owned()).collect();
        match state.store.settle_key_usage(&u.caller.tenant, &u.caller.key_id, u.at, u.tokens, u.cost, &ids).await {
            Ok(()) => u.holds.iter_mut().for_each(|h| h.settled = true),
            // Dropped unsettled below: each hold is then released on its own.
            Err(e) => {
                tracing::warn!(error = %e, key = %u.caller.key_id, "gateway: usage not counted against the key's budgets")
            }
        }
    }
    for (caller, events) in by_key {
        if let Err(e) = telemetry::accept(&state.services, &caller, events).await {
            tracing::warn!(error = %e, "gateway: telemetry events not stored");
        }
    }
}

/// Tokens and cost of a key's calls in one UTC day, to add to its usage,
/// with the budget holds of those calls to release.
struct Usage {
    caller: Arc<Caller>,
    /// A time in that day.
    at: i64,
    tokens: u64,
    cost: f64,
    holds: Vec<Reservation>,
}

/// Adds one call's tokens and cost (from its event) and its budget hold to
/// `usage`.
fn add_usage(usage: &mut Vec<Usage>, caller: &Arc<Caller>, event: &TelemetryEvent, hold: Option<Reservation>) {
    let d = &event.data;
    let tokens = d.total_tokens.unwrap_or_else(|| d.prompt_tokens.unwrap_or(0) + d.completion_tokens.unwrap_or(0));
    let cost = d.cost.filter(|c| c.is_finite() && *c > 0.0).unwrap_or(0.0);
    if tokens == 0 && cost == 0.0 && hold.is_none() {
        return;
    }
    let at = event.timestamp.timestamp_millis();
    let day = llmsec_store::BudgetPeriod::Day.start(at);
    let same = |u: &&mut Usage| u.caller.key_id == caller.key_id && llmsec_store::BudgetPeriod::Day.start(u.at) == day;
    match usage.iter_mut().find(same) {
        Some(u) => {
            u.tokens += tokens;
            u.cost += cost;
            u.holds.extend(hold);
        }
        None => usage.push(Usage { caller: caller.clone(), at, tokens, cost, holds: hold.into_iter().collect() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_hold_names_the_budget_and_when_to_retry() {
        use llmsec_store::{Budget, BudgetHold, BudgetPeriod, BudgetShortfall};
        let now = 1_774_998_000_000; // 2026-03-31T23:00:00Z: the day ends in an hour
        let day = Budget { period: BudgetPeriod::Day, tokens: Some(100), cost: None };
        let hold = BudgetHold { id: "h".into(), tokens: 30, cost: 0.0, expires_at: now };
        let short = |used, held| BudgetShortfall {
            budget: day.clone(),
            used_tokens: used,
            used_cost: 0.0,
            held_tokens: held,
            held_cost: 0.0,
        };
        // Calls in flight hold the room: retry in a second.
        let e = budget_refusal(&short(20, 60), &hold, now);
        assert_eq!((e.status.as_u16(), e.code.as_str(), e.retry_after), (429, "budget_exceeded", Some(1)));
        assert!(e.message.contains("day budget of 100 tokens (20 used, 60 held by calls in flight)"), "{}", e.message);
        assert!(e.message.contains("no room for this call's 30 tokens"), "{}", e.message);
        // Nothing held, but no room for this call: only the period's end helps.
        let e = budget_refusal(&short(80, 0), &hold, now);
        assert_eq!(e.retry_after, Some(3601));
        assert!(
            e.message.contains("(80 used)") && e.message.contains("resets at 2026-04-01T00:00:00"),
            "{}",
            e.message
        );
        // Used up.
        let e = budget_refusal(&short(100, 10), &hold, now);
        assert_eq!(e.retry_after, Some(3601));
        assert!(e.message.contains("is used up"), "{}", e.message);
        // A cost budget.
        let month = Budget { period: BudgetPeriod::Month, tokens: None, cost: Some(1.5) };
        let short = BudgetShortfall { budget: month, used_tokens: 0, used_cost: 1.0, held_tokens: 0, held_cost: 0.25 };
        let e = budget_refusal(&short, &BudgetHold { cost: 0.3, ..hold }, now);
        assert!(e.message.contains("month budget of a cost of 1.5 (1.000000 used, 0.250000 held"), "{}", e.message);
        assert_eq!(e.retry_after, Some(1));
    }

    #[test]
    fn usage_is_summed_per_key_and_day() {
        let caller = |key: &str| {
            Arc::new(Caller {
                key_id: key.into(),
                tenant: "acme".into(),
                scopes: vec![Scope::Proxy],
                rate_per_sec: None,
                models: None,
                budgets: vec![],
            })
        };
        let event = |tokens: u64, cost: Option<f64>, at: i64| {
            let mut e = crate::record::Call::new("chat.completions", Subject::default()).event(Default::default());
            e.data.total_tokens = Some(tokens);
            e.data.cost = cost;
            e.timestamp = chrono::DateTime::from_timestamp_millis(at).unwrap_or_default();
            e
        };
        // 2026-03-31T23:00:00Z, and an hour later (the next day).
        let (late, next) = (1_774_998_000_000, 1_775_001_600_000);
        let (a, b) = (caller("a"), caller("b"));
        let mut usage = Vec::new();
        add_usage(&mut usage, &a, &event(10, Some(0.5), late), None);
        add_usage(&mut usage, &a, &event(5, None, late + 1), None);
        add_usage(&mut usage, &a, &event(7, None, next), None);
        add_usage(&mut usage, &b, &event(1, None, late), None);
        add_usage(&mut usage, &b, &event(0, None, late), None);
        let got: Vec<(&str, u64, f64)> = usage.iter().map(|u| (u.caller.key_id.as_str(), u.tokens, u.cost)).collect();
        assert_eq!(got, [("a", 15, 0.5), ("a", 7, 0.0), ("b", 1, 0.0)]);
    }

    #[test]
    fn server_errors_map_to_openai_codes() {
        let e = map_error(ServiceError::Blocked {
            reason: "too many injections".into(),
            until: "2030-01-01T00:00:00Z".into(),
        });
        assert_eq!((e.status, e.kind, e.code.as_str()), (StatusCode::FORBIDDEN, "permission_error", "user_blocked"));
        assert!(e.message.contains("too many injections") && e.message.contains("2030"), "{}", e.message);
        let e = map_error(ServiceError::RateLimited { retry_after_secs: 7 });
        assert_eq!((e.status.as_u16(), e.code.as_str(), e.retry_after), (429, "rate_limited", Some(7)));
        let e = map_error(ServiceError::field("items[0].user_id", "bad id"));
        assert_eq!((e.status.as_u16(), e.param.as_deref()), (400, Some("items[0].user_id")));
        let e = map_error(ServiceError::Internal("secret detail".into()));
        assert_eq!(e.status.as_u16(), 500);
        assert!(!e.message.contains("secret"));
        assert_eq!(map_error(ServiceError::Forbidden("proxy")).code, "forbidden");
    }
}
