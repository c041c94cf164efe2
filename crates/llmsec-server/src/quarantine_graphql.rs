//! The quarantine in GraphQL, merged into `/graphql`:
//!
//! ```graphql
//! type Query {
//!   quarantine(status: String, first: Int = 50, offset: Int = 0): QuarantinePage!
//!   quarantinedItem(id: ID!): QuarantinedItem!
//! }
//! type Mutation {
//!   releaseQuarantined(id: ID!, reason: String): QuarantinedItem!
//!   discardQuarantined(id: ID!, reason: String): QuarantinedItem!
//! }
//! ```
//! Reads need scope `read`, decisions `triage`; an id of another tenant's
//! item is not found. The service is [`crate::service::quarantine`].

use async_graphql::{Context, ID, Object, SimpleObject};
use llmsec_store::{QuarantineItem, Scope};

use crate::gql::{caller, gql_error};
use crate::service::quarantine::{self, Decision};
use crate::state::AppState;
use crate::time::rfc3339;

/// What an analysis says of the item it held.
#[derive(SimpleObject, Debug, Clone)]
pub struct QuarantineHold {
    /// The item's id.
    pub id: ID,
    /// `pending`.
    pub status: String,
}

impl From<quarantine::Held> for QuarantineHold {
    fn from(h: quarantine::Held) -> Self {
        QuarantineHold { id: ID(h.id), status: h.status.as_str().to_owned() }
    }
}

/// A request or completion held for review.
#[derive(SimpleObject, Debug, Clone)]
pub struct QuarantinedItem {
    /// Its id.
    pub id: ID,
    /// `analyze`, `validate` or `gateway`.
    pub source: String,
    /// `text`, or the gateway answer's format (`chat.completion` …).
    pub kind: String,
    /// The held text, whole (a gateway answer's JSON).
    pub content: String,
    /// The verdict the policy gave.
    pub verdict: String,
    /// The highest severity found.
    pub severity: String,
    /// What was found (type, category, severity, confidence, scanner, span).
    pub findings: async_graphql::Json<serde_json::Value>,
    /// The security event of the analysis that held it.
    pub event_id: Option<String>,
    /// The end user.
    pub user_id: Option<String>,
    /// The conversation.
    pub session_id: Option<String>,
    /// `pending`, `released`, `discarded` or `expired`.
    pub status: String,
    /// When it was held (RFC 3339).
    pub created_at: Option<String>,
    /// When `on_expiry` applies.
    pub expires_at: Option<String>,
    /// When it was decided.
    pub decided_at: Option<String>,
    /// Who decided: a key id, or `system`.
    pub decided_by: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

impl From<QuarantineItem> for QuarantinedItem {
    fn from(i: QuarantineItem) -> Self {
        QuarantinedItem {
            id: ID(i.id),
            source: i.source,
            kind: i.kind,
            content: i.content,
            verdict: i.verdict,
            severity: i.severity,
            findings: async_graphql::Json(i.findings),
            event_id: i.event_id,
            user_id: i.user_id,
            session_id: i.session_id,
            status: i.status.as_str().to_owned(),
            created_at: rfc3339(i.created_at),
            expires_at: rfc3339(i.expires_at),
            decided_at: i.decided_at.and_then(rfc3339),
            decided_by: i.decided_by,
            reason: i.reason,
        }
    }
}

/// A page of items, newest first.
#[derive(SimpleObject, Debug, Clone)]
pub struct QuarantinePage {
    /// The items.
    pub items: Vec<QuarantinedItem>,
    /// How many match in all.
    pub total_count: u64,
}

/// Quarantine queries (scope `read`).
#[derive(Debug, Default)]
pub struct QuarantineQuery;

#[Object]
impl QuarantineQuery {
    /// The caller's tenant's held items, newest first; `status` one of
    /// `pending`, `released`, `discarded`, `expired`.
    async fn quarantine(
        &self,
        ctx: &Context<'_>,
        status: Option<String>,
        #[graphql(default = 50)] first: i32,
        #[graphql(default = 0)] offset: i32,
    ) -> async_graphql::Result<QuarantinePage> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        let status = status.as_deref().map(crate::api::quarantine::parse_status).transpose().map_err(gql_error)?;
        let first = u32::try_from(first)
            .ok()
            .filter(|f| (1..=1000).contains(f))
            .ok_or_else(|| gql_error(crate::error::ApiError::field("first", "must be between 1 and 1000")))?;
        let offset = u32::try_from(offset)
            .map_err(|_| gql_error(crate::error::ApiError::field("offset", "must not be negative")))?;
        let (items, total) = quarantine::list(&state.services, c, status, first, offset).await.map_err(gql_error)?;
        Ok(QuarantinePage { items: items.into_iter().map(Into::into).collect(), total_count: total })
    }

    /// One of the caller's tenant's held items.
    async fn quarantined_item(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<QuarantinedItem> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        Ok(quarantine::get(&state.services, c, &id).await.map_err(gql_error)?.into())
    }
}

/// Quarantine decisions (scope `triage`, audited).
#[derive(Debug, Default)]
pub struct QuarantineMutation;

#[Object]
impl QuarantineMutation {
    /// Releases a pending item: the gateway hands its answer back.
    async fn release_quarantined(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
    ) -> async_graphql::Result<QuarantinedItem> {
        decide(ctx, &id, Decision::Release, reason.as_deref()).await
    }

    /// Discards a pending item for good.
    async fn discard_quarantined(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
    ) -> async_graphql::Result<QuarantinedItem> {
        decide(ctx, &id, Decision::Discard, reason.as_deref()).await
    }
}

/// One reviewer's decision on an item, as the `triage` caller.
async fn decide(
    ctx: &Context<'_>,
    id: &str,
    d: Decision,
    reason: Option<&str>,
) -> async_graphql::Result<QuarantinedItem> {
    let c = caller(ctx, Scope::Triage)?;
    let state = ctx.data::<AppState>()?;
    Ok(quarantine::decide(&state.services, c, id, d, reason).await.map_err(gql_error)?.into())
}
