//! Analysis, whatever the transport: Sentinel's enforcements, the engine
//! (on the blocking pool for larger texts), storage redaction, the event and
//! its webhook deliveries committed in one transaction, then subscribers.
//! REST (`api::security`), GraphQL and the gateway call it; it knows no
//! HTTP types.

use llm_security::{Analysis, ContextKind, ExpectedFormat, OutputContext, Threat};
use llmsec_store::{Record, SecurityEvent, now_millis};
use serde::{Deserialize, Serialize};

use super::deadline::Deadline;
use super::{Caller, ServiceError, Services, check_id};
use crate::config::InputRetention;
use crate::sentinel::Enforced;

/// Texts longer than this are analysed on the blocking pool, so one large
/// prompt does not hold up the async workers.
const INLINE_BYTES: usize = 4 * 1024;

/// An analysis request: `{input, user_id?, session_id?, application_id?, context?, role?, model?, tools?}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    /// The prompt.
    pub input: String,
    /// The end user, for erasure and per-user queries.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The conversation.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The application, when Sentinel enforcements target applications.
    #[serde(default)]
    pub application_id: Option<String>,
    /// Set when `input` is untrusted content the model will read (an
    /// e-mail, a web page, a tool result): the text is analysed with
    /// `analyze_context` at the content operating point.
    #[serde(default)]
    pub context: Option<ContextKind>,
    /// The end user's role, for the Rego policy (`input.request.role`).
    #[serde(default)]
    pub role: Option<String>,
    /// The model the text goes to or came from, for the Rego policy.
    #[serde(default)]
    pub model: Option<String>,
    /// The tools the request offers or calls, for the Rego policy.
    #[serde(default)]
    pub tools: Vec<String>,
    /// The gateway route the text came through (not read from a body).
    #[serde(skip)]
    pub route: Option<String>,
}

/// Checks what a request tells the Rego policy about itself; errors name
/// `{prefix}role`, `{prefix}model`, `{prefix}tools[i]`.
fn check_facts(prefix: &str, role: Option<&str>, model: Option<&str>, tools: &[String]) -> Result<(), ServiceError> {
    check_id(&format!("{prefix}role"), role)?;
    if model.is_some_and(|m| m.is_empty() || m.len() > 256) {
        return Err(ServiceError::field(format!("{prefix}model"), "1-256 bytes"));
    }
    if tools.len() > 128 {
        return Err(ServiceError::field(format!("{prefix}tools"), "at most 128 tools"));
    }
    for (i, t) in tools.iter().enumerate() {
        if t.is_empty() || t.len() > 256 {
            return Err(ServiceError::field(format!("{prefix}tools[{i}]"), "1-256 bytes"));
        }
    }
    Ok(())
}

/// A completion to validate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// The completion.
    pub output: String,
    /// The end user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The conversation.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The application, when Sentinel enforcements target applications.
    #[serde(default)]
    pub application_id: Option<String>,
    /// The system prompt the completion must not leak.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// The prompt that produced the completion.
    #[serde(default)]
    pub prompt: Option<String>,
    /// The format the application expects (`json` or `xml`).
    #[serde(default)]
    pub expected_format: Option<ExpectedFormat>,
    /// A JSON Schema the completion must satisfy.
    #[serde(default)]
    pub json_schema: Option<serde_json::Value>,
    /// The end user's role, for the Rego policy (`input.request.role`).
    #[serde(default)]
    pub role: Option<String>,
    /// The model the text goes to or came from, for the Rego policy.
    #[serde(default)]
    pub model: Option<String>,
    /// The tools the request offers or calls, for the Rego policy.
    #[serde(default)]
    pub tools: Vec<String>,
    /// The gateway route the text came through (not read from a body).
    #[serde(skip)]
    pub route: Option<String>,
}

/// An analysis answer: the threats, the verdict, the sanitized text and the stored event's id.
#[derive(Debug, Clone, Serialize)]
pub struct SecurityResponse {
    /// True when the policy lets the text through unchanged.
    pub is_secure: bool,
    /// Every threat found, with spans into the submitted text.
    pub threats: Vec<Threat>,
    /// How likely the text is an attack or a leak, in `[0, 1]`.
    pub confidence: f64,
    /// Engine time in whole milliseconds (kept for clients that read it; see `analysis_time_us`).
    pub analysis_time: u64,
    /// Engine time in microseconds.
    pub analysis_time_us: u64,
    /// `allow`, `sanitize` or `block`.
    pub verdict: llm_security::Verdict,
    /// The text to pass on when the verdict is `sanitize`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sanitized: Option<String>,
    /// The stored security event.
    pub event_id: String,
    /// The Rego policy's reasons and obligations, when `[policy]` decided
    /// the verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyOutcome>,
    /// Set when `[quarantine]` held the text for review: the item's id and
    /// status (`pending`). The other fields are as without quarantine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<super::quarantine::Held>,
}

/// What the Rego policy said besides the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyOutcome {
    /// Why.
    pub reasons: Vec<String>,
    /// What the caller must do besides (`redact`, `max_tokens`, …).
    pub obligations: llmsec_policy::Obligations,
}

/// What the core needs to know about one text.
#[derive(Debug)]
pub enum Job {
    /// A prompt, or untrusted content with `context`.
    Input(AnalyzeRequest),
    /// A completion to validate.
    Output(ValidateRequest),
}

impl Job {
    fn text(&self) -> &str {
        match self {
            Job::Input(r) => &r.input,
            Job::Output(r) => &r.output,
        }
    }
    /// `(user_id, session_id, application_id)`.
    fn ids(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        match self {
            Job::Input(r) => (r.user_id.as_deref(), r.session_id.as_deref(), r.application_id.as_deref()),
            Job::Output(r) => (r.user_id.as_deref(), r.session_id.as_deref(), r.application_id.as_deref()),
        }
    }

    /// `(role, model, tools, route)` for the Rego policy.
    fn facts(&self) -> (Option<&str>, Option<&str>, &[String], Option<&str>) {
        match self {
            Job::Input(r) => (r.role.as_deref(), r.model.as_deref(), &r.tools, r.route.as_deref()),
            Job::Output(r) => (r.role.as_deref(), r.model.as_deref(), &r.tools, r.route.as_deref()),
        }
    }

    pub(crate) fn field(&self) -> &'static str {
        match self {
            Job::Input(_) => "input",
            Job::Output(_) => "output",
        }
    }
}

fn run_engine(engine: &llm_security::SecurityEngine, job: &Job) -> Result<Analysis, llm_security::Error> {
    match job {
        Job::Input(r) => match r.context {
            Some(kind) => engine.analyze_context_sync(&r.input, kind),
            None => engine.analyze_input_sync(&r.input),
        },
        Job::Output(r) => {
            let cx = OutputContext {
                expected_format: r.expected_format,
                json_schema: r.json_schema.clone(),
                system_prompt: r.system_prompt.clone(),
                prompt: r.prompt.clone(),
            };
            engine.validate_output_with(&r.output, &cx)
        }
    }
}

/// Runs the engine on one text, stores the event (and its webhook
/// deliveries) durably, publishes it to subscribers, and answers. Nothing
/// starts or is stored once `deadline` has passed.
pub async fn analyze(
    svc: &Services,
    caller: &Caller,
    job: Job,
    field: String,
    deadline: &Deadline,
) -> Result<SecurityResponse, ServiceError> {
    let (job, analysis) = evaluate(svc, caller, job, field, deadline, Enforce::Each).await?;
    let done = finish(svc, caller, &job, &analysis, None)?;
    let mut answers = commit(svc, vec![done], deadline).await?;
    let mut answer =
        answers.pop().ok_or_else(|| ServiceError::Internal("a committed analysis has no answer".into()))?;
    quarantine(svc, caller, job, &mut answer).await?;
    Ok(answer)
}

/// Holds the analysed text for review when `[quarantine]`'s rule says so
/// (after its event is stored, so the item names it), and says so in the
/// answer.
async fn quarantine(
    svc: &Services,
    caller: &Caller,
    job: Job,
    answer: &mut SecurityResponse,
) -> Result<(), ServiceError> {
    if !super::quarantine::holds(svc, answer.verdict, &answer.threats) {
        return Ok(());
    }
    let (user_id, session_id) = match &job {
        Job::Input(r) => (r.user_id.clone(), r.session_id.clone()),
        Job::Output(r) => (r.user_id.clone(), r.session_id.clone()),
    };
    let (source, content) = match job {
        Job::Input(r) => ("analyze", r.input),
        Job::Output(r) => ("validate", r.output),
    };
    let hold = super::quarantine::Hold {
        source,
        kind: "text",
        content,
        verdict: answer.verdict,
        threats: &answer.threats,
        event_id: Some(answer.event_id.clone()),
        user_id,
        session_id,
    };
    answer.quarantined = Some(super::quarantine::hold(svc, caller, hold).await?);
    Ok(())
}

/// A dry run's answer: what [`analyze`] would answer, with nothing stored.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunResponse {
    /// True when the policy lets the text through unchanged.
    pub is_secure: bool,
    /// Every threat found, with spans into the submitted text.
    pub threats: Vec<Threat>,
    /// How likely the text is an attack or a leak, in `[0, 1]`.
    pub confidence: f64,
    /// Engine time in microseconds.
    pub analysis_time_us: u64,
    /// `allow`, `sanitize` or `block`.
    pub verdict: llm_security::Verdict,
    /// The text to pass on when the verdict is `sanitize`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sanitized: Option<String>,
    /// The Rego policy's reasons and obligations, when `[policy]` decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyOutcome>,
}

/// Runs the current engine and policy on one prompt and answers, storing
/// nothing: no event, no webhook delivery, no subscriber notice, no
/// analysis metrics, and no Sentinel enforcement (a replay of a stored
/// prompt is a test of the policy, not traffic from its user). The ids are
/// still checked, as for [`analyze`].
pub async fn dry_run(
    svc: &Services,
    caller: &Caller,
    req: AnalyzeRequest,
    deadline: &Deadline,
) -> Result<DryRunResponse, ServiceError> {
    let (job, a) = evaluate(svc, caller, Job::Input(req), "input".into(), deadline, Enforce::Done).await?;
    let decided = decide(svc, caller, &job, &a, "analyze")?;
    crate::metrics::record_replay(decided.verdict);
    Ok(DryRunResponse {
        is_secure: decided.verdict == llm_security::Verdict::Allow,
        threats: a.threats().to_vec(),
        confidence: a.confidence(),
        analysis_time_us: a.analysis_time().as_micros() as u64,
        verdict: decided.verdict,
        sanitized: decided.sanitized,
        policy: decided.decision.map(|d| PolicyOutcome { reasons: d.reasons, obligations: d.obligations }),
    })
}

/// Who the texts of one request are about: the ids Sentinel's
/// enforcements target.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// The end user.
    pub user_id: Option<String>,
    /// The conversation.
    pub session_id: Option<String>,
    /// The application.
    pub application_id: Option<String>,
    /// The client's address (the gateway's caller), for enforcements on
    /// Sentinel's `ip` entities.
    pub ip: Option<String>,
}

impl Subject {
    fn ids(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        (self.user_id.as_deref(), self.session_id.as_deref(), self.application_id.as_deref())
    }
}

/// Proof that Sentinel's enforcements were checked for a subject in this
/// call: only [`enforce`] makes one, and [`analyze_cleared`] needs one.
#[derive(Debug)]
pub struct Cleared {
    subject: Subject,
}

impl Cleared {
    /// The subject that was checked.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }
}

/// Refuses a subject Sentinel has blocked (its tenant, user, session,
/// application or client address), and holds a rate-limited one to its
/// enforcement's rate (each call takes one of its tokens); invalid ids are
/// refused naming the field. A transport that analyses several texts
/// of one call about one subject (the gateway: the messages of a request,
/// then the completion) checks once, here, and analyses with
/// [`analyze_cleared`].
pub fn enforce(svc: &Services, caller: &Caller, subject: Subject) -> Result<Cleared, ServiceError> {
    check_id("user_id", subject.user_id.as_deref())?;
    check_id("session_id", subject.session_id.as_deref())?;
    check_id("application_id", subject.application_id.as_deref())?;
    enforce_ids(svc, caller, subject.ids(), subject.ip.as_deref())?;
    Ok(Cleared { subject })
}

fn enforce_ids(
    svc: &Services,
    caller: &Caller,
    (user_id, session_id, application_id): (Option<&str>, Option<&str>, Option<&str>),
    ip: Option<&str>,
) -> Result<(), ServiceError> {
    let mut entities: Vec<(&str, &str)> = vec![("tenant", caller.tenant.as_str())];
    entities.extend(user_id.map(|u| ("user", u)));
    entities.extend(session_id.map(|s| ("session", s)));
    entities.extend(application_id.map(|a| ("application", a)));
    entities.extend(ip.map(|a| ("ip", a)));
    let now = svc.sentinel.now();
    let risk = svc.sentinel.risk();
    // Only with a limit: without one this costs the hot path nothing.
    if risk.config().block_above.is_some()
        && let Some((kind, id, score)) =
            risk.over_limit(&caller.tenant, &risk_subjects((user_id, session_id, application_id)), now)
    {
        metrics::counter!(crate::metrics::ENFORCED, "action" => "risk").increment(1);
        let limit = risk.config().block_above.unwrap_or_default();
        return Err(ServiceError::Blocked {
            reason: format!(
                "the risk score of {} {id} is {score:.0}, at or above risk.block_above ({limit})",
                kind.as_str()
            ),
            until: String::new(),
        });
    }
    match svc.sentinel.enforcements.check(&caller.tenant, &entities, now) {
        None => Ok(()),
        Some(Enforced::Block { reason, until }) => {
            metrics::counter!(crate::metrics::ENFORCED, "action" => "block").increment(1);
            Err(ServiceError::Blocked { reason, until: crate::time::rfc3339(until).unwrap_or_default() })
        }
        Some(Enforced::RateLimit { id, limit, window_ms }) => {
            let per_sec = limit as f64 / (window_ms.max(1) as f64 / 1000.0);
            let key = format!("enforcement:{id}");
            svc.limiter.check(&key, per_sec, limit as f64, std::time::Instant::now()).map_err(|wait| {
                metrics::counter!(crate::metrics::ENFORCED, "action" => "rate_limit").increment(1);
                ServiceError::RateLimited { retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64 }
            })
        }
    }
}

/// The subjects of a call that have risk scores: its user, session and application.
fn risk_subjects<'a>(
    (user_id, session_id, application_id): (Option<&'a str>, Option<&'a str>, Option<&'a str>),
) -> Vec<(crate::risk::RiskKind, &'a str)> {
    use crate::risk::RiskKind;
    let mut out = Vec::with_capacity(3);
    out.extend(user_id.map(|u| (RiskKind::User, u)));
    out.extend(session_id.map(|s| (RiskKind::Session, s)));
    out.extend(application_id.map(|a| (RiskKind::Application, a)));
    out
}

/// Whether an analysis checks Sentinel's enforcements itself, or its
/// request already did for its one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enforce {
    Each,
    Done,
}

/// Runs the engine; an error names `field`.
async fn evaluate(
    svc: &Services,
    caller: &Caller,
    job: Job,
    field: String,
    deadline: &Deadline,
    enforce: Enforce,
) -> Result<(Job, Analysis), ServiceError> {
    let (user_id, session_id, application_id) = job.ids();
    let prefix = field.strip_suffix(job.field()).unwrap_or("");
    check_id(&format!("{prefix}user_id"), user_id)?;
    check_id(&format!("{prefix}session_id"), session_id)?;
    check_id(&format!("{prefix}application_id"), application_id)?;
    let (role, model, tools, _) = job.facts();
    check_facts(prefix, role, model, tools)?;
    if enforce == Enforce::Each {
        enforce_ids(svc, caller, job.ids(), None)?;
    }
    deadline.check()?;
    let (job, analysis) = if job.text().len() > INLINE_BYTES {
        let engine = svc.engine.clone();
        let until = deadline.clone();
        let task = tokio::task::spawn_blocking(move || {
            // Queued behind other analyses, the request may have run out of time.
            let a = (!until.expired()).then(|| run_engine(&engine, &job));
            (job, a)
        });
        // A running analysis cannot be stopped, but nobody waits for it.
        let (job, a) = tokio::select! {
            joined = task => joined.map_err(|e| ServiceError::Internal(format!("analysis task: {e}")))?,
            () = deadline.done() => return Err(ServiceError::Timeout),
        };
        (job, a.ok_or(ServiceError::Timeout)?)
    } else {
        let a = run_engine(&svc.engine, &job);
        (job, a)
    };
    let analysis = analysis.map_err(|e| match e {
        llm_security::Error::InputTooLarge { .. } => ServiceError::field(field.clone(), e.to_string()),
        llm_security::Error::Schema(m) => ServiceError::field(field.replace(job.field(), "json_schema"), m),
        e => ServiceError::Internal(e.to_string()),
    })?;
    Ok((job, analysis))
}

/// An analysis ready to store: its record, what subscribers are told, and
/// the answer.
struct Finished {
    record: Record,
    notice: Option<super::ThreatNotice>,
    answer: SecurityResponse,
    /// The guardrail span, sent once the event is stored (`[otel]`).
    span: Option<crate::otel::PendingSpan>,
    /// Campaigns the analysis changed, stored once the event is.
    campaigns: Vec<crate::campaigns::Changed>,
}

/// The verdict after the Rego policy (when `[policy]` is set), the text to
/// pass on under `sanitize`, and the policy's decision.
struct Decided {
    verdict: llm_security::Verdict,
    sanitized: Option<String>,
    decision: Option<llmsec_policy::Decision>,
}

fn decide(
    svc: &Services,
    caller: &Caller,
    job: &Job,
    analysis: &Analysis,
    route: &str,
) -> Result<Decided, ServiceError> {
    let decision = svc.policy.as_ref().map(|p| {
        let (user, _, application) = job.ids();
        let (role, model, tools, via) = job.facts();
        let risk = svc.sentinel.risk();
        let now = svc.sentinel.now();
        let scores = risk_subjects(job.ids())
            .into_iter()
            .map(|(kind, id)| (kind.as_str().to_owned(), risk.score(&caller.tenant, kind, id, now)))
            .collect();
        let request = llmsec_policy::RequestContext {
            risk: scores,
            tenant: Some(caller.tenant.clone()),
            user: user.map(str::to_owned),
            role: role.map(str::to_owned),
            application: application.map(str::to_owned),
            model: model.map(str::to_owned),
            tools: tools.to_vec(),
            route: Some(via.unwrap_or(route).to_owned()),
        };
        p.decide(analysis, &request)
    });
    let verdict = match &decision {
        Some(d) => match d.action {
            llmsec_policy::Action::Allow => llm_security::Verdict::Allow,
            llmsec_policy::Action::Sanitize => llm_security::Verdict::Sanitize,
            llmsec_policy::Action::Block => llm_security::Verdict::Block,
        },
        None => analysis.verdict(),
    };
    // A policy that asks to sanitize what the engine let through gets the
    // engine's sanitizer (every secret and PII kind redacted, invisible
    // characters removed).
    let sanitized = match (verdict, analysis.sanitized()) {
        (llm_security::Verdict::Sanitize, Some(s)) => Some(s.to_owned()),
        (llm_security::Verdict::Sanitize, None) => {
            Some(svc.engine.sanitize(job.text()).map_err(|e| ServiceError::Internal(e.to_string()))?.text)
        }
        // An engine set to sanitize always (`[sanitize] always`, a profile's
        // `never_trust`) gives the sanitized text with every verdict it lets
        // through.
        (llm_security::Verdict::Allow, Some(s)) => Some(s.to_owned()),
        _ => None,
    };
    Ok(Decided { verdict, sanitized, decision })
}

/// Builds the event and its deliveries; `ip` is the client's address,
/// when the transport knows it (the gateway).
fn finish(
    svc: &Services,
    caller: &Caller,
    job: &Job,
    analysis: &Analysis,
    ip: Option<&str>,
) -> Result<Finished, ServiceError> {
    let endpoint = match job {
        Job::Input(_) => "analyze",
        Job::Output(_) => "validate",
    };
    crate::metrics::record_analysis(endpoint, analysis);
    let decided = decide(svc, caller, job, analysis, endpoint)?;
    let (verdict, sanitized, decision) = (decided.verdict, decided.sanitized, decided.decision);
    let policy_decided = decision.is_some();

    let text = job.text();
    let stored_input = match svc.config.storage.input {
        InputRetention::None => None,
        InputRetention::Full => Some(text.to_owned()),
        InputRetention::Redacted => Some(redact(svc, job, analysis)?),
    };
    let (user_id, session_id) = match job {
        Job::Input(r) => (r.user_id.clone(), r.session_id.clone()),
        Job::Output(r) => (r.user_id.clone(), r.session_id.clone()),
    };
    let now = now_millis();
    if !analysis.threats().is_empty() {
        // On Sentinel's clock, which the risk scores are read with.
        let at = svc.sentinel.now();
        svc.sentinel.risk().threats(&caller.tenant, &risk_subjects(job.ids()), analysis.threats(), at);
    }
    let threats = serde_json::to_value(analysis.threats()).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let event = SecurityEvent {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: caller.tenant.clone(),
        event_type: event_type(analysis).to_owned(),
        input: stored_input,
        threats,
        confidence: analysis.confidence(),
        verdict: verdict.as_str().to_owned(),
        timestamp: now,
        user_id,
        session_id,
        context_kind: analysis.context().map(|k| k.as_str().to_owned()),
        analysis_us: Some(i64::try_from(analysis.analysis_time().as_micros()).unwrap_or(i64::MAX)),
    };
    let mut deliveries =
        crate::deliver::deliveries_for(&svc.webhooks.for_tenant(&caller.tenant), &event, analysis, now);
    if let Some(topic) =
        svc.config.kafka.as_ref().and_then(|k| k.sink.as_ref()).and_then(|s| s.security_events.as_ref())
    {
        deliveries.push(crate::broker::security_event(topic, &event, now));
    }
    deliveries.extend(crate::sinks::for_security_event(&svc.config.sinks, &event, now));
    let reasons = decision.as_ref().map(|d| d.reasons.as_slice()).unwrap_or_default();
    let span = svc.otel.as_ref().map(|o| {
        o.guardrail(&crate::otel::GuardrailFacts {
            target: match (job, analysis.context()) {
                (Job::Output(_), _) => crate::otel::Target::Output,
                (Job::Input(_), Some(kind)) => crate::otel::Target::Context(kind),
                (Job::Input(_), None) => crate::otel::Target::Input,
            },
            verdict,
            threats: analysis.threats(),
            confidence: analysis.confidence(),
            took: analysis.analysis_time(),
            policy: if policy_decided { "rego" } else { "engine" },
            reasons,
            tenant: &caller.tenant,
            user_id: event.user_id.as_deref(),
            session_id: event.session_id.as_deref(),
            application_id: job.ids().2,
            event_id: &event.id,
            text,
            stored: event.input.as_deref(),
        })
    });
    let campaigns = if analysis.threats().is_empty() {
        Vec::new()
    } else {
        // Prompts and untrusted content are matched as templates; completions are not.
        let prompt = matches!(job, Job::Input(_)).then_some(text);
        let at = svc.sentinel.now();
        let obs = crate::campaigns::Observation::analysis(
            &caller.tenant,
            &event.id,
            at,
            job.ids(),
            ip,
            prompt,
            text,
            analysis.threats(),
        );
        svc.sentinel.campaigns().observe(&obs)
    };
    let notice = (!analysis.threats().is_empty())
        .then(|| super::ThreatNotice { event: event.clone(), threats: analysis.threats().to_vec() });
    let t = analysis.analysis_time();
    let answer = SecurityResponse {
        is_secure: verdict == llm_security::Verdict::Allow,
        threats: analysis.threats().to_vec(),
        confidence: analysis.confidence(),
        analysis_time: t.as_millis() as u64,
        analysis_time_us: t.as_micros() as u64,
        verdict,
        sanitized,
        event_id: event.id.clone(),
        policy: decision.map(|d| PolicyOutcome { reasons: d.reasons, obligations: d.obligations }),
        quarantined: None,
    };
    Ok(Finished { record: Record { event, deliveries }, notice, answer, span, campaigns })
}

/// Stores one request's analyses in one transaction (none once `deadline`
/// has passed), then wakes the delivery worker and tells subscribers.
async fn commit(
    svc: &Services,
    done: Vec<Finished>,
    deadline: &Deadline,
) -> Result<Vec<SecurityResponse>, ServiceError> {
    let has_deliveries = done.iter().any(|d| !d.record.deliveries.is_empty());
    let mut records = Vec::with_capacity(done.len());
    let mut notices = Vec::new();
    let mut answers = Vec::with_capacity(done.len());
    let mut spans = Vec::new();
    let mut campaigns = Vec::new();
    for d in done {
        records.push(d.record);
        notices.extend(d.notice);
        answers.push(d.answer);
        spans.extend(d.span);
        campaigns.extend(d.campaigns);
    }
    svc.writer.write(records, Some(deadline)).await?;
    if !campaigns.is_empty() {
        svc.sentinel.campaigns_changed(campaigns).await;
    }
    if let Some(o) = &svc.otel {
        for s in spans {
            o.emit(s);
        }
    }
    if has_deliveries {
        svc.delivery_notify.notify_one();
    }
    for n in notices {
        // No subscriber is not an error.
        let _ = svc.threat_feed.send(n);
    }
    Ok(answers)
}

/// The stored event type: `input_analysis`, `context_analysis` (content
/// analysed with `analyze_context`) or `output_validation`.
pub(crate) fn event_type(a: &Analysis) -> &'static str {
    match a.stage() {
        llm_security::Stage::Input => "input_analysis",
        llm_security::Stage::Context => "context_analysis",
        llm_security::Stage::Output => "output_validation",
    }
}

/// The text as the `redacted` retention mode stores it: secrets and PII
/// replaced by typed placeholders, invisible characters stripped, whatever
/// the verdict (a `sanitize` verdict for a Unicode finding alone must not
/// keep an address or a key in clear).
fn redact(svc: &Services, job: &Job, a: &Analysis) -> Result<String, ServiceError> {
    match svc.engine.redact_for_storage(job.text(), Some(a)) {
        Ok(s) => Ok(s),
        // Too large to re-scan: keep nothing rather than keep it unredacted.
        Err(llm_security::Error::InputTooLarge { .. }) => Ok(String::new()),
        Err(e) => Err(ServiceError::Internal(e.to_string())),
    }
}

/// Analyses every job first, so that one the engine refuses fails them all
/// before anything is stored; then stores them all in one transaction.
/// Errors name `items[i].input` / `items[i].output`.
pub async fn analyze_all(
    svc: &Services,
    caller: &Caller,
    jobs: Vec<Job>,
    deadline: &Deadline,
) -> Result<Vec<SecurityResponse>, ServiceError> {
    analyze_jobs(svc, caller, jobs, deadline, Enforce::Each, true, None).await
}

/// Texts of one call about the subject `cleared` was made for (a gateway
/// call: its messages, then its completions), as [`analyze_all`] but
/// without checking the enforcements again: a call takes one token of a
/// rate-limit enforcement, whatever its number of texts. Every job must
/// name the subject's ids.
pub async fn analyze_cleared(
    svc: &Services,
    caller: &Caller,
    cleared: &Cleared,
    jobs: Vec<Job>,
    deadline: &Deadline,
) -> Result<Vec<SecurityResponse>, ServiceError> {
    if jobs.iter().any(|j| j.ids() != cleared.subject.ids()) {
        return Err(ServiceError::Internal("a request's analyses name another subject than the request".into()));
    }
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    // The gateway holds whole answers itself (`quarantine::hold`), not texts.
    analyze_jobs(svc, caller, jobs, deadline, Enforce::Done, false, cleared.subject.ip.as_deref()).await
}

async fn analyze_jobs(
    svc: &Services,
    caller: &Caller,
    jobs: Vec<Job>,
    deadline: &Deadline,
    enforce: Enforce,
    hold: bool,
    ip: Option<&str>,
) -> Result<Vec<SecurityResponse>, ServiceError> {
    let mut done = Vec::with_capacity(jobs.len());
    let mut analysed = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.into_iter().enumerate() {
        let field = format!("items[{i}].{}", job.field());
        let (job, analysis) = evaluate(svc, caller, job, field, deadline, enforce).await?;
        done.push(finish(svc, caller, &job, &analysis, ip)?);
        if hold {
            analysed.push(job);
        }
    }
    let mut answers = commit(svc, done, deadline).await?;
    if hold && svc.config.quarantine.enabled {
        for (job, answer) in analysed.into_iter().zip(answers.iter_mut()) {
            quarantine(svc, caller, job, answer).await?;
        }
    }
    Ok(answers)
}
