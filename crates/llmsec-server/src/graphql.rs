//! GraphQL at `/graphql` (POST), subscriptions over WebSocket at
//! `/graphql/ws` (graphql-transport-ws and graphql-ws), the playground at
//! `GET /graphql/playground` in dev mode.
//!
//! ```graphql
//! type Query {
//!   analyzeInput(input: String!, userId: String, sessionId: String, context: ContextKind): SecurityAnalysis!
//!   validateOutput(output: String!, userId: String, sessionId: String, systemPrompt: String, prompt: String): ValidationResult!
//!   securityEvents(filter: SecurityEventFilter, first: Int = 50, after: String): SecurityEventConnection!
//!   redteamRuns(first: Int = 50, since: String): [RedteamRun!]!
//! }
//! type Subscription { threatDetected(minSeverity: String): ThreatDetected! }
//! enum ContextKind { DOCUMENT EMAIL WEB_PAGE TOOL_OUTPUT CODE CHAT CALENDAR SEARCH_RESULT OTHER }
//! ```
//! The caller's key comes from the HTTP request, or for subscriptions from
//! the WebSocket upgrade request or the `connection_init` payload: the same
//! scopes and tenant rules as REST. What one operation may cost is held by
//! [`graphql_limits`](crate::graphql_limits); the WebSocket session by
//! [`ws`](crate::ws).

use async_graphql::{
    Context, Enum, InputObject, MergedObject, MergedSubscription, Object, Schema, SimpleObject, Subscription,
};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use futures_util::Stream;
use llm_security::{Severity, Threat};
use llmsec_store::Scope;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;

use crate::error::{ApiError, Json};
use crate::gql::{caller, gql_error};
use crate::graphql_limits::{Budget, RequestLimits, start_analysis};
use crate::service::Caller;
use crate::service::analysis::{
    AnalyzeRequest, DryRunResponse, Job, SecurityResponse, ValidateRequest, analyze, dry_run,
};
use crate::service::deadline::Deadline;
use crate::service::events::{Filters, cursor_of, parse_cursor};
use crate::service::parse_time;
use crate::state::AppState;
use crate::time::rfc3339;

/// The schema type.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Every query: the engine's analyses and Sentinel's telemetry and anomalies.
#[derive(MergedObject, Default, Debug)]
pub struct QueryRoot(
    SecurityQuery,
    crate::sentinel_graphql::SentinelQuery,
    crate::quarantine_graphql::QuarantineQuery,
    crate::sentinel_graphql::CampaignsQuery,
);

/// Every mutation (Sentinel's and the quarantine's).
#[derive(MergedObject, Default, Debug)]
pub struct MutationRoot(
    crate::sentinel_graphql::SentinelMutation,
    crate::quarantine_graphql::QuarantineMutation,
    crate::sentinel_graphql::CampaignsMutation,
);

/// Every subscription: `threatDetected`, `anomalyDetected`, `metricsUpdated`.
#[derive(MergedSubscription, Default, Debug)]
pub struct SubscriptionRoot(SecuritySubscription, crate::sentinel_graphql::SentinelSubscription);

/// Builds the schema over the app's state.
pub fn schema(state: AppState) -> AppSchema {
    Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot::default())
        .limit_depth(state.config.limits.graphql_depth)
        .limit_complexity(state.config.limits.graphql_complexity)
        .extension(RequestLimits::new(&state.config.limits))
        .data(state)
        .finish()
}

/// A byte range of the submitted text.
#[derive(SimpleObject, Debug, Clone)]
pub struct GqlSpan {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// One threat.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Threat")]
pub struct GqlThreat {
    /// `prompt_injection`, `jailbreak`, …
    #[graphql(name = "type")]
    pub kind: String,
    /// The technique.
    pub category: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// In `[0, 1]`.
    pub confidence: f64,
    /// Where, in bytes of the submitted text.
    pub span: GqlSpan,
    /// Why.
    pub evidence: String,
    /// Which scanner.
    pub scanner: String,
    /// Which rule.
    pub rule: Option<String>,
}

impl From<&Threat> for GqlThreat {
    fn from(t: &Threat) -> Self {
        GqlThreat {
            kind: t.kind.as_str().to_owned(),
            category: t.category.clone(),
            severity: t.severity.as_str().to_owned(),
            confidence: t.confidence,
            span: GqlSpan { start: t.span.start as u64, end: t.span.end as u64 },
            evidence: t.evidence.clone(),
            scanner: t.scanner.clone(),
            rule: t.rule.clone(),
        }
    }
}

/// An input analysis.
#[derive(SimpleObject, Debug, Clone)]
pub struct SecurityAnalysis {
    /// True when the text may pass unchanged.
    pub is_secure: bool,
    /// The threats.
    pub threats: Vec<GqlThreat>,
    /// In `[0, 1]`.
    pub confidence: f64,
    /// Milliseconds.
    pub analysis_time: u64,
    /// Microseconds.
    pub analysis_time_us: u64,
    /// `allow`, `sanitize` or `block`.
    pub verdict: String,
    /// The text to pass on when the verdict is `sanitize`.
    pub sanitized: Option<String>,
    /// The stored event.
    pub event_id: String,
    /// Set when `[quarantine]` held the text for review.
    pub quarantined: Option<crate::quarantine_graphql::QuarantineHold>,
}

impl From<SecurityResponse> for SecurityAnalysis {
    fn from(r: SecurityResponse) -> Self {
        SecurityAnalysis {
            is_secure: r.is_secure,
            threats: r.threats.iter().map(Into::into).collect(),
            confidence: r.confidence,
            analysis_time: r.analysis_time,
            analysis_time_us: r.analysis_time_us,
            verdict: r.verdict.as_str().to_owned(),
            sanitized: r.sanitized,
            event_id: r.event_id,
            quarantined: r.quarantined.map(Into::into),
        }
    }
}

/// A prompt run through the current engine and policy with nothing stored
/// (`dryRun`, the REST `POST /api/security/analyze/dry-run`).
#[derive(SimpleObject, Debug, Clone)]
pub struct DryRunResult {
    /// True when the text may pass unchanged.
    pub is_secure: bool,
    /// The threats.
    pub threats: Vec<GqlThreat>,
    /// In `[0, 1]`.
    pub confidence: f64,
    /// Microseconds.
    pub analysis_time_us: u64,
    /// `allow`, `sanitize` or `block`.
    pub verdict: String,
    /// The text to pass on when the verdict is `sanitize`.
    pub sanitized: Option<String>,
    /// The Rego policy's reasons, when `[policy]` decided (else empty).
    pub policy_reasons: Vec<String>,
    /// The Rego policy's obligations (`redact`, `max_tokens`, …) as JSON,
    /// when `[policy]` decided.
    pub policy_obligations: Option<async_graphql::Json<serde_json::Value>>,
}

impl From<DryRunResponse> for DryRunResult {
    fn from(r: DryRunResponse) -> Self {
        let (policy_reasons, policy_obligations) = match r.policy {
            Some(p) => (p.reasons, serde_json::to_value(&p.obligations).ok().map(async_graphql::Json)),
            None => (Vec::new(), None),
        };
        DryRunResult {
            is_secure: r.is_secure,
            threats: r.threats.iter().map(Into::into).collect(),
            confidence: r.confidence,
            analysis_time_us: r.analysis_time_us,
            verdict: r.verdict.as_str().to_owned(),
            sanitized: r.sanitized,
            policy_reasons,
            policy_obligations,
        }
    }
}

/// A completion's validation.
#[derive(SimpleObject, Debug, Clone)]
pub struct ValidationResult {
    /// True when the completion may pass unchanged.
    pub is_valid: bool,
    /// The analysis.
    #[graphql(flatten)]
    pub analysis: SecurityAnalysis,
}

/// Filters for `securityEvents`.
#[derive(InputObject, Debug, Default)]
pub struct SecurityEventFilter {
    /// `input_analysis`, `context_analysis` or `output_validation`.
    pub event_type: Option<String>,
    /// One user.
    pub user_id: Option<String>,
    /// One session.
    pub session_id: Option<String>,
    /// `allow`, `sanitize` or `block`.
    pub verdict: Option<String>,
    /// Lowest confidence.
    pub min_confidence: Option<f64>,
    /// From (RFC 3339, inclusive).
    pub since: Option<String>,
    /// To (RFC 3339, exclusive).
    pub until: Option<String>,
    /// A threat type (`jailbreak`) or category (`direct_injection`) the event carries.
    pub threat: Option<String>,
}

/// A red-team run's figures.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "RedteamRun")]
pub struct GqlRedteamRun {
    /// Its id.
    pub id: String,
    /// When it ran (RFC 3339).
    pub timestamp: Option<String>,
    /// What was attacked.
    pub target: String,
    /// Trials run, errors included.
    pub trials: u64,
    /// Trials the target failed on.
    pub errors: u64,
    /// Successful attacks.
    pub successes: u64,
    /// Attack success rate of the judged trials.
    pub attack_success_rate: f64,
    /// The figures per category.
    pub summary: async_graphql::Json<serde_json::Value>,
}

/// A stored analysis.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "SecurityEvent")]
pub struct GqlEvent {
    /// Its id.
    pub id: String,
    /// `input_analysis`, `context_analysis` or `output_validation`.
    pub event_type: String,
    /// The text as retained.
    pub input: Option<String>,
    /// The threats.
    pub threats: Vec<GqlThreat>,
    /// Confidence.
    pub confidence: f64,
    /// Verdict.
    pub verdict: String,
    /// When (RFC 3339).
    pub timestamp: Option<String>,
    /// The user.
    pub user_id: Option<String>,
    /// The session.
    pub session_id: Option<String>,
    /// For content analysed as untrusted (`context`): its kind.
    pub context_kind: Option<String>,
    /// The engine's time on the analysis, in microseconds.
    pub analysis_micros: Option<i64>,
}

fn threats_of(v: &serde_json::Value) -> Vec<GqlThreat> {
    serde_json::from_value::<Vec<Threat>>(v.clone()).map(|ts| ts.iter().map(Into::into).collect()).unwrap_or_default()
}

impl From<llmsec_store::SecurityEvent> for GqlEvent {
    fn from(e: llmsec_store::SecurityEvent) -> Self {
        GqlEvent {
            threats: threats_of(&e.threats),
            id: e.id,
            event_type: e.event_type,
            input: e.input,
            confidence: e.confidence,
            verdict: e.verdict,
            timestamp: rfc3339(e.timestamp),
            user_id: e.user_id,
            session_id: e.session_id,
            context_kind: e.context_kind,
            analysis_micros: e.analysis_us,
        }
    }
}

/// An edge.
#[derive(SimpleObject, Debug)]
pub struct SecurityEventEdge {
    /// Pass as `after` to continue from here.
    pub cursor: String,
    /// The event.
    pub node: GqlEvent,
}

/// Paging state.
#[derive(SimpleObject, Debug)]
pub struct PageInfo {
    /// More events follow.
    pub has_next_page: bool,
    /// The last edge's cursor.
    pub end_cursor: Option<String>,
}

/// A page of events.
#[derive(SimpleObject, Debug)]
pub struct SecurityEventConnection {
    /// The events, newest first.
    pub edges: Vec<SecurityEventEdge>,
    /// Paging state.
    pub page_info: PageInfo,
    /// Events matching the filter in all.
    pub total_count: u64,
}

/// What kind of untrusted content `analyzeInput` is given; with it the
/// text is analysed as content (`analyze_context`).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "ContextKind")]
pub enum GqlContextKind {
    /// A file or retrieved document.
    Document,
    /// An e-mail.
    Email,
    /// A web page.
    WebPage,
    /// A tool or function result.
    ToolOutput,
    /// Source code.
    Code,
    /// Other people's chat messages.
    Chat,
    /// A calendar entry.
    Calendar,
    /// A search result snippet.
    SearchResult,
    /// Any other content.
    Other,
}

impl From<GqlContextKind> for llm_security::ContextKind {
    fn from(k: GqlContextKind) -> llm_security::ContextKind {
        use llm_security::ContextKind as K;
        match k {
            GqlContextKind::Document => K::Document,
            GqlContextKind::Email => K::Email,
            GqlContextKind::WebPage => K::WebPage,
            GqlContextKind::ToolOutput => K::ToolOutput,
            GqlContextKind::Code => K::Code,
            GqlContextKind::Chat => K::Chat,
            GqlContextKind::Calendar => K::Calendar,
            GqlContextKind::SearchResult => K::SearchResult,
            GqlContextKind::Other => K::Other,
        }
    }
}

/// The engine's queries.
#[derive(Debug, Default)]
pub struct SecurityQuery;

/// What `analyzeInput` and `dryRun` start with: the caller (scope
/// `analyze`), the server, the analysis deadline and the request.
fn prompt_request<'c>(
    ctx: &'c Context<'_>,
    input: String,
    user_id: Option<String>,
    session_id: Option<String>,
    context: Option<GqlContextKind>,
) -> async_graphql::Result<(&'c Caller, &'c AppState, Deadline, AnalyzeRequest)> {
    let c = caller(ctx, Scope::Analyze)?;
    let state = ctx.data::<AppState>()?;
    let deadline = start_analysis(ctx, state, c, input.len())?;
    let req = AnalyzeRequest {
        input,
        user_id,
        session_id,
        application_id: None,
        context: context.map(Into::into),
        role: None,
        model: None,
        tools: Vec::new(),
        route: None,
    };
    Ok((c, state, deadline, req))
}

#[Object]
impl SecurityQuery {
    /// Analyses a prompt (scope `analyze`); stores the event. With
    /// `context`, the text is untrusted content of that kind and is
    /// analysed at the content operating point.
    async fn analyze_input(
        &self,
        ctx: &Context<'_>,
        input: String,
        user_id: Option<String>,
        session_id: Option<String>,
        context: Option<GqlContextKind>,
    ) -> async_graphql::Result<SecurityAnalysis> {
        let (c, state, deadline, req) = prompt_request(ctx, input, user_id, session_id, context)?;
        let r = analyze(&state.services, c, Job::Input(req), "input".into(), &deadline).await.map_err(gql_error)?;
        Ok(r.into())
    }

    /// Runs a prompt through the current engine and policy and answers
    /// without storing anything: no event, webhook, subscriber notice,
    /// metrics or enforcement (scope `analyze`). The replay page uses it
    /// to show what a policy change does to stored prompts.
    async fn dry_run(
        &self,
        ctx: &Context<'_>,
        input: String,
        user_id: Option<String>,
        session_id: Option<String>,
        context: Option<GqlContextKind>,
    ) -> async_graphql::Result<DryRunResult> {
        let (c, state, deadline, req) = prompt_request(ctx, input, user_id, session_id, context)?;
        let r = dry_run(&state.services, c, req, &deadline).await.map_err(gql_error)?;
        Ok(r.into())
    }

    /// Validates a completion (scope `analyze`); stores the event.
    async fn validate_output(
        &self,
        ctx: &Context<'_>,
        output: String,
        user_id: Option<String>,
        session_id: Option<String>,
        system_prompt: Option<String>,
        prompt: Option<String>,
    ) -> async_graphql::Result<ValidationResult> {
        let c = caller(ctx, Scope::Analyze)?;
        let state = ctx.data::<AppState>()?;
        let bytes =
            output.len() + system_prompt.as_ref().map_or(0, String::len) + prompt.as_ref().map_or(0, String::len);
        let deadline = start_analysis(ctx, state, c, bytes)?;
        let req = ValidateRequest {
            output,
            user_id,
            session_id,
            application_id: None,
            system_prompt,
            prompt,
            expected_format: None,
            json_schema: None,
            role: None,
            model: None,
            tools: Vec::new(),
            route: None,
        };
        let r: SecurityAnalysis =
            analyze(&state.services, c, Job::Output(req), "output".into(), &deadline).await.map_err(gql_error)?.into();
        Ok(ValidationResult { is_valid: r.is_secure, analysis: r })
    }

    /// The tenant's red-team runs, newest first (scope `read`): the figures
    /// `llmsec redteam --upload` stored.
    async fn redteam_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        since: Option<String>,
    ) -> async_graphql::Result<Vec<GqlRedteamRun>> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        if !(1..=1000).contains(&first) {
            return Err(gql_error(ApiError::field("first", "must be 1-1000")));
        }
        let since = since.as_deref().map(|v| parse_time("since", v)).transpose().map_err(gql_error)?.unwrap_or(0);
        let runs = crate::service::redteam::list(&state.services, c, since, i64::MAX, first as u32)
            .await
            .map_err(gql_error)?;
        Ok(runs
            .into_iter()
            .map(|r| GqlRedteamRun {
                id: r.id,
                timestamp: crate::time::rfc3339(r.timestamp),
                target: r.target,
                trials: r.trials,
                errors: r.errors,
                successes: r.successes,
                attack_success_rate: r.asr,
                summary: async_graphql::Json(r.summary),
            })
            .collect())
    }

    /// The tenant's stored events, newest first (scope `read`). A page stops
    /// early (`hasNextPage`, `endCursor`) before the operation's pages pass
    /// `limits.page_bytes`.
    async fn security_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<SecurityEventFilter>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<SecurityEventConnection> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        if !(1..=1000).contains(&first) {
            return Err(gql_error(ApiError::field("first", "must be 1-1000")));
        }
        let f = filter.unwrap_or_default();
        let filters = Filters {
            event_type: f.event_type,
            user_id: f.user_id,
            session_id: f.session_id,
            verdict: f.verdict,
            min_confidence: f.min_confidence,
            since: f.since.as_deref().map(|v| parse_time("filter.since", v)).transpose().map_err(gql_error)?,
            until: f.until.as_deref().map(|v| parse_time("filter.until", v)).transpose().map_err(gql_error)?,
            threat: f.threat,
        };
        filters.validate("filter.").map_err(gql_error)?;
        crate::service::check_id("filter.userId", filters.user_id.as_deref()).map_err(gql_error)?;
        crate::service::check_id("filter.sessionId", filters.session_id.as_deref()).map_err(gql_error)?;
        let before = match after {
            Some(a) => Some(
                parse_cursor(&a)
                    .ok_or_else(|| gql_error(ApiError::field("after", "not a cursor this API returned")))?,
            ),
            None => None,
        };
        let limit = first as u32;
        let q = filters.query(&c.tenant, before, limit);
        // Aliased pages take their turn at the operation's byte budget.
        let mut bytes = ctx.data::<Budget>()?.page_bytes().await;
        let total = state.store.count_events(&q).await.map_err(gql_error)?;
        let may_overrun = !bytes.spent;
        let page = crate::service::events::page(state.store.as_ref(), q, limit, &mut bytes.left, may_overrun, "first")
            .await
            .map_err(gql_error)?;
        bytes.spent = true;
        drop(bytes);
        let has_next_page = page.more;
        let edges: Vec<SecurityEventEdge> =
            page.events.into_iter().map(|e| SecurityEventEdge { cursor: cursor_of(&e), node: e.into() }).collect();
        let end_cursor = edges.last().map(|e| e.cursor.clone());
        Ok(SecurityEventConnection { edges, page_info: PageInfo { has_next_page, end_cursor }, total_count: total })
    }
}

/// A threat seen by the server, as pushed to subscribers.
#[derive(SimpleObject, Debug, Clone)]
pub struct ThreatDetected {
    /// The stored event.
    pub event_id: String,
    /// `input_analysis`, `context_analysis` or `output_validation`.
    pub event_type: String,
    /// The verdict.
    pub verdict: String,
    /// Confidence.
    pub confidence: f64,
    /// The threats.
    pub threats: Vec<GqlThreat>,
    /// The user.
    pub user_id: Option<String>,
    /// The session.
    pub session_id: Option<String>,
    /// When (RFC 3339).
    pub timestamp: Option<String>,
}

/// The engine's subscriptions.
#[derive(Debug, Default)]
pub struct SecuritySubscription;

fn parse_severity(s: &str) -> Option<Severity> {
    match s.to_ascii_lowercase().as_str() {
        "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

#[Subscription]
impl SecuritySubscription {
    /// Every analysis of the caller's tenant that finds a threat at or above
    /// `minSeverity` (scope `read`).
    async fn threat_detected(
        &self,
        ctx: &Context<'_>,
        min_severity: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = ThreatDetected> + use<>> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        let min = match min_severity {
            Some(s) => parse_severity(&s)
                .ok_or_else(|| gql_error(ApiError::field("minSeverity", "must be low, medium, high or critical")))?,
            None => Severity::Low,
        };
        let tenant = c.tenant.clone();
        let rx = state.threat_feed.subscribe();
        Ok(BroadcastStream::new(rx).filter_map(move |n| {
            // A lagging subscriber skips what it missed rather than closing.
            let n = n.ok()?;
            if n.event.tenant != tenant || !n.threats.iter().any(|t| t.severity >= min) {
                return None;
            }
            Some(ThreatDetected {
                event_id: n.event.id,
                event_type: n.event.event_type,
                verdict: n.event.verdict,
                confidence: n.event.confidence,
                threats: n.threats.iter().map(Into::into).collect(),
                user_id: n.event.user_id,
                session_id: n.event.session_id,
                timestamp: rfc3339(n.event.timestamp),
            })
        }))
    }
}

/// A GraphQL-over-HTTP request body, checked strictly so that a
/// misspelt key is a 400 naming it rather than an empty query.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GraphQLBody {
    /// The document.
    pub query: String,
    /// Which operation of the document to run.
    #[serde(default)]
    pub operation_name: Option<String>,
    /// Variables.
    #[serde(default)]
    pub variables: Option<serde_json::Value>,
    /// Protocol extensions (e.g. persisted queries); passed through.
    #[serde(default)]
    pub extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `POST /graphql`.
pub async fn graphql_post(
    State(state): State<AppState>,
    Extension(schema): Extension<AppSchema>,
    caller: Caller,
    deadline: Deadline,
    Json(body): Json<GraphQLBody>,
) -> Response {
    // A query that does not parse is the client's mistake: 400 with where
    // and why, not a 200 holding an error that looks like a result.
    if let Err(e) = async_graphql::parser::parse_query(&body.query) {
        let locations: Vec<serde_json::Value> =
            e.positions().map(|p| serde_json::json!({"line": p.line, "column": p.column})).collect();
        let body = serde_json::json!({"errors": [{
            "message": format!("syntax error: {e}"),
            "locations": locations,
            "extensions": {
                "code": "GRAPHQL_PARSE_FAILED",
                "hint": "the query is not valid GraphQL; check it near the location given (docs/SERVER.md describes the schema)",
            },
        }]});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let mut req = async_graphql::Request::new(body.query);
    if let Some(op) = body.operation_name {
        req = req.operation_name(op);
    }
    if let Some(v) = body.variables.filter(|v| !v.is_null()) {
        req = req.variables(async_graphql::Variables::from_json(v));
    }
    if let Some(ext) = body.extensions {
        for (k, v) in ext {
            if let Ok(v) = async_graphql::Value::from_json(v) {
                req.extensions.insert(k, v);
            }
        }
    }
    // The request's own rate-limit token pays for its first analysis.
    let budget = Budget::new(&state.config.limits, 1);
    Json(schema.execute(req.data(caller).data(deadline).data(budget)).await).into_response()
}

/// `GET /graphql/playground` in dev mode.
pub async fn playground() -> Html<String> {
    Html(async_graphql::http::playground_source(
        async_graphql::http::GraphQLPlaygroundConfig::new("/graphql").subscription_endpoint("/graphql/ws"),
    ))
}
