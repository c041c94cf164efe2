//! Campaigns and the on-call view in GraphQL:
//!
//! ```graphql
//! type Query {
//!   campaigns(status: String, kind: String, since: String, limit: Int = 100, offset: Int = 0): CampaignConnection!
//!   campaign(id: ID!): Campaign
//!   oncall: JSON!
//! }
//! type Mutation {
//!   updateCampaign(id: ID!, actor: String, notes: String, confidence: Float, status: String): Campaign!
//! }
//! ```
//! Reads need `read`; `updateCampaign` needs `triage` and is audited as
//! `campaign.update`. `oncall` answers what `GET /api/v1/oncall` does.

use async_graphql::{Context, ID, Object, SimpleObject};
use llmsec_store::Scope;

use super::types::KeyCount;
use crate::campaigns::{CampaignKind, CampaignStatus};
use crate::gql::{caller, gql_error};
use crate::service::ServiceError;
use crate::service::campaigns::{self, CampaignPatch};
use crate::state::AppState;
use crate::time::rfc3339;

/// Threats and anomalies of several users or sessions that share a
/// template, an indicator or an address range.
#[derive(SimpleObject, Debug, Clone)]
pub struct Campaign {
    /// Its id.
    pub id: ID,
    /// `template`, `indicator` or `ip_range`.
    pub kind: String,
    /// What its observations share.
    pub key: String,
    /// `active` or `closed`.
    pub status: String,
    /// The worst severity seen.
    pub severity: String,
    /// First observation (RFC 3339).
    pub first_seen: String,
    /// Last observation (RFC 3339).
    pub last_seen: String,
    /// Observations counted.
    pub event_count: u64,
    /// Distinct users (the first 100).
    pub users: Vec<String>,
    /// Distinct sessions (the first 100).
    pub sessions: Vec<String>,
    /// Distinct applications.
    pub applications: Vec<String>,
    /// Distinct client ranges (IPv4 /24, IPv6 /48).
    pub ip_ranges: Vec<String>,
    /// Threat-intelligence sources of the indicators matched.
    pub feed_sources: Vec<String>,
    /// The most frequent threat categories.
    pub top_categories: Vec<KeyCount>,
    /// Analyst's attribution: who is behind it.
    pub actor: Option<String>,
    /// Analyst's notes.
    pub notes: Option<String>,
    /// Analyst's confidence in the attribution.
    pub confidence: Option<f64>,
    /// The latest security event ids.
    pub sample_event_ids: Vec<String>,
    /// The latest anomaly ids.
    pub sample_anomaly_ids: Vec<String>,
}

impl From<crate::campaigns::Campaign> for Campaign {
    fn from(c: crate::campaigns::Campaign) -> Campaign {
        Campaign {
            id: ID(c.id.clone()),
            kind: c.kind.as_str().to_owned(),
            key: c.key.clone(),
            status: c.status.as_str().to_owned(),
            severity: c.severity.as_str().to_owned(),
            first_seen: rfc3339(c.first_seen).unwrap_or_default(),
            last_seen: rfc3339(c.last_seen).unwrap_or_default(),
            event_count: c.events,
            top_categories: c.top_categories(5).into_iter().map(|(key, count)| KeyCount { key, count }).collect(),
            users: c.users,
            sessions: c.sessions,
            applications: c.applications,
            ip_ranges: c.ip_ranges,
            feed_sources: c.feed_sources,
            actor: c.actor,
            notes: c.notes,
            confidence: c.confidence,
            sample_event_ids: c.sample_events,
            sample_anomaly_ids: c.sample_anomalies,
        }
    }
}

/// A page of campaigns.
#[derive(SimpleObject, Debug, Clone)]
pub struct CampaignConnection {
    /// The campaigns, most recently seen first.
    pub nodes: Vec<Campaign>,
    /// How many match in all.
    pub total_count: u64,
}

/// Campaign and on-call queries.
#[derive(Debug, Default)]
pub struct CampaignsQuery;

#[Object]
impl CampaignsQuery {
    /// The caller's tenant's campaigns, most recently seen first.
    async fn campaigns(
        &self,
        ctx: &Context<'_>,
        status: Option<String>,
        kind: Option<String>,
        since: Option<String>,
        #[graphql(default = 100)] limit: u32,
        #[graphql(default = 0)] offset: u32,
    ) -> async_graphql::Result<CampaignConnection> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        let status = status
            .map(|s| {
                CampaignStatus::parse(&s)
                    .map(|s| s.as_str().to_owned())
                    .ok_or_else(|| ServiceError::field("status", "must be `active` or `closed`"))
            })
            .transpose()
            .map_err(gql_error)?;
        let kind = kind
            .map(|k| {
                CampaignKind::parse(&k)
                    .map(|k| k.as_str().to_owned())
                    .ok_or_else(|| ServiceError::field("kind", "must be `template`, `indicator` or `ip_range`"))
            })
            .transpose()
            .map_err(gql_error)?;
        if !(1..=1000).contains(&limit) {
            return Err(gql_error(ServiceError::field("limit", "must be 1-1000")));
        }
        let since = since.map(|s| crate::service::parse_time("since", &s)).transpose().map_err(gql_error)?;
        let q = llmsec_store::CampaignQuery { tenant: c.tenant.clone(), status, kind, since, limit, offset };
        let (list, total_count) = campaigns::list(&state.services, c, q).await.map_err(gql_error)?;
        Ok(CampaignConnection { nodes: list.into_iter().map(Campaign::from).collect(), total_count })
    }

    /// One campaign of the caller's tenant, or null.
    async fn campaign(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Campaign>> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        match campaigns::get(&state.services, c, &id).await {
            Ok(x) => Ok(Some(x.into())),
            Err(ServiceError::NotFound(_)) => Ok(None),
            Err(e) => Err(gql_error(e)),
        }
    }

    /// The on-call view: open anomalies by severity with age,
    /// acknowledgement and escalation step; active campaigns; MTTA/MTTR
    /// over the last day and week (as `GET /api/v1/oncall`).
    async fn oncall(&self, ctx: &Context<'_>) -> async_graphql::Result<async_graphql::Json<serde_json::Value>> {
        let c = caller(ctx, Scope::Read)?;
        let state = ctx.data::<AppState>()?;
        Ok(async_graphql::Json(campaigns::oncall(&state.services, c).await.map_err(gql_error)?))
    }
}

/// Campaign mutations.
#[derive(Debug, Default)]
pub struct CampaignsMutation;

#[Object]
impl CampaignsMutation {
    /// Sets a campaign's attribution or status (scope `triage`); an empty
    /// `actor` or `notes` clears it.
    async fn update_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
        actor: Option<String>,
        notes: Option<String>,
        confidence: Option<f64>,
        status: Option<String>,
    ) -> async_graphql::Result<Campaign> {
        let c = caller(ctx, Scope::Triage)?;
        let state = ctx.data::<AppState>()?;
        let patch = CampaignPatch { actor, notes, confidence, status };
        Ok(campaigns::update(&state.services, c, &id, patch).await.map_err(gql_error)?.into())
    }
}
