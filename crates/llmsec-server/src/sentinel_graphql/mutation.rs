//! The mutation root of Sentinel's schema: acknowledging an anomaly,
//! changing a detector and dry-running one, and how a refused detector
//! change reads as a GraphQL error.

use async_graphql::{Context, ID, Object};
use llm_sentinel::event::TelemetryEvent;
use llmsec_store::Scope;

use super::types::{Anomaly, Detector, DetectorConfigInput, DetectorTestResult, Enforcement, Entity, TestFinding};
use crate::error::ApiError;
use crate::gql::{caller, gql_error};
use crate::service::anomalies;
use crate::state::AppState;

/// Sentinel mutations (`acknowledgeAnomaly`, `lockdown`, `liftLockdown`,
/// `endEnforcement`: scope `triage`; the others: `admin`).
#[derive(Debug, Default)]
pub struct SentinelMutation;

#[Object]
impl SentinelMutation {
    /// ACTIVE → ACKNOWLEDGED.
    async fn acknowledge_anomaly(
        &self,
        ctx: &Context<'_>,
        id: ID,
        acknowledged_by: String,
        note: Option<String>,
    ) -> async_graphql::Result<Anomaly> {
        let c = caller(ctx, Scope::Triage)?;
        let state = ctx.data::<AppState>()?;
        let a = anomalies::acknowledge(&state.services, c, &id, &acknowledged_by, note).await.map_err(gql_error)?;
        Ok(Anomaly::new(&c.tenant, &a))
    }

    /// System lockdown: blocks every analysis and gateway call of the
    /// caller's tenant (and ends its gateway streams) for `durationSecs`
    /// (default 3600, at most 30 days). Answers the lockdown in force when
    /// there is one already.
    async fn lockdown(
        &self,
        ctx: &Context<'_>,
        reason: Option<String>,
        duration_secs: Option<u64>,
    ) -> async_graphql::Result<Enforcement> {
        let c = caller(ctx, Scope::Triage)?;
        let state = ctx.data::<AppState>()?;
        let (e, _) =
            anomalies::lockdown(&state.services, c, reason.as_deref(), duration_secs).await.map_err(gql_error)?;
        Ok(Enforcement::from(&e))
    }

    /// Lifts the caller's tenant's lockdown; the ids of the blocks ended.
    async fn lift_lockdown(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ID>> {
        let c = caller(ctx, Scope::Triage)?;
        let state = ctx.data::<AppState>()?;
        let ids = anomalies::lift_lockdown(&state.services, c).await.map_err(gql_error)?;
        Ok(ids.into_iter().map(ID).collect())
    }

    /// Ends one of the caller's tenant's enforcements now; false when it had ended.
    async fn end_enforcement(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let c = caller(ctx, Scope::Triage)?;
        let state = ctx.data::<AppState>()?;
        anomalies::end_enforcement(&state.services, c, &id).await.map_err(gql_error)
    }

    /// Changes the caller's tenant's detector live (validated first; the
    /// old one is kept on error). Fields left out stay as they are. The
    /// change is stored for this tenant, laid over the detectors file, and
    /// never written to the file; other tenants keep their own detectors.
    async fn update_detector(
        &self,
        ctx: &Context<'_>,
        id: ID,
        config: DetectorConfigInput,
    ) -> async_graphql::Result<Detector> {
        let c = caller(ctx, Scope::Admin)?;
        let state = ctx.data::<AppState>()?;
        let mut fields = serde_json::Map::new();
        if let Some(k) = config.kind {
            fields.insert("type".into(), k.into());
        }
        if let Some(n) = config.name {
            fields.insert("name".into(), n.into());
        }
        if let Some(e) = config.enabled {
            fields.insert("enabled".into(), e.into());
        }
        if let Some(s) = config.severity {
            fields.insert("severity".into(), s.as_str().into());
        }
        if let Some(cfg) = config.config {
            fields.insert("config".into(), cfg.0);
        }
        if let Some(a) = config.actions {
            fields.insert("actions".into(), a.0);
        }
        let info = anomalies::update_detector(&state.services, c, &id, fields).await.map_err(gql_error)?;
        let mut d = Detector::new(info, true);
        d.tracked_entities = 0;
        Ok(d)
    }

    /// Drops the caller's tenant's change to a detector: the detectors
    /// file's entry runs again (answered), or a detector the tenant made is
    /// gone (null).
    async fn reset_detector(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Detector>> {
        let c = caller(ctx, Scope::Admin)?;
        let state = ctx.data::<AppState>()?;
        let info = anomalies::reset_detector(&state.services, c, &id).await.map_err(gql_error)?;
        Ok(info.map(|i| Detector::new(i, true)))
    }

    /// Runs a detector on `testData` (a list of telemetry events) with fresh
    /// state; changes nothing.
    async fn test_detector(
        &self,
        ctx: &Context<'_>,
        id: ID,
        test_data: async_graphql::Json<serde_json::Value>,
    ) -> async_graphql::Result<DetectorTestResult> {
        let c = caller(ctx, Scope::Admin)?;
        let state = ctx.data::<AppState>()?;
        let list = match test_data.0 {
            serde_json::Value::Array(a) => a,
            v @ serde_json::Value::Object(_) => vec![v],
            _ => return Err(gql_error(ApiError::field("testData", "a telemetry event or a list of them"))),
        };
        let mut events = Vec::with_capacity(list.len());
        for (i, v) in list.into_iter().enumerate() {
            let e: TelemetryEvent = serde_json::from_value(v)
                .map_err(|e| gql_error(ApiError::field(format!("testData[{i}]"), e.to_string())))?;
            e.validate()
                .map_err(|err| gql_error(ApiError::field(format!("testData[{i}].{}", err.field), err.message)))?;
            events.push(e);
        }
        let findings = anomalies::test_detector(&state.services, c, &id, &events).map_err(gql_error)?;
        Ok(DetectorTestResult {
            events_processed: events.len() as u64,
            findings: findings
                .into_iter()
                .map(|f| TestFinding {
                    severity: f.severity.into(),
                    score: f.score,
                    title: f.title,
                    description: f.description,
                    affected_entity: Entity {
                        kind: f.entity.kind.as_str().to_owned(),
                        id: f.entity.id.clone(),
                        name: f.entity.id,
                    },
                    observed: f.observed,
                    threshold: f.threshold,
                    event_id: f.event_id,
                })
                .collect(),
        })
    }
}
