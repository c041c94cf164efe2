//! `POST /api/security/analyze`, `/validate` and their batch forms: the
//! HTTP side of [`service::analysis`](crate::service::analysis).

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use llmsec_store::Scope;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Json};
pub use crate::service::analysis::{AnalyzeRequest, SecurityResponse, ValidateRequest};
use crate::service::analysis::{Job, analyze, analyze_all};
use crate::service::deadline::Deadline;
use crate::service::{Caller, Services};
use crate::state::AppState;

/// A batch of analyses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch<T> {
    /// The items, analysed in order.
    pub items: Vec<T>,
}

/// A batch's answer: one result per item, in order.
#[derive(Debug, Serialize)]
pub struct BatchResponse {
    /// The results.
    pub results: Vec<SecurityResponse>,
}

async fn analyze_one(
    State(svc): State<Services>,
    caller: Caller,
    deadline: Deadline,
    Json(req): Json<AnalyzeRequest>,
) -> Result<Json<SecurityResponse>, ApiError> {
    caller.require(Scope::Analyze)?;
    Ok(Json(analyze(&svc, &caller, Job::Input(req), "input".into(), &deadline).await?))
}

async fn validate_one(
    State(svc): State<Services>,
    caller: Caller,
    deadline: Deadline,
    Json(req): Json<ValidateRequest>,
) -> Result<Json<SecurityResponse>, ApiError> {
    caller.require(Scope::Analyze)?;
    Ok(Json(analyze(&svc, &caller, Job::Output(req), "output".into(), &deadline).await?))
}

/// Checks the batch's size, and charges the caller's rate one token per
/// item (the request itself paid for the first).
fn check_batch<T>(svc: &Services, caller: &Caller, items: &[T]) -> Result<(), ApiError> {
    let max = svc.config.limits.batch_items;
    if items.is_empty() {
        return Err(ApiError::field("items", "must hold at least one item"));
    }
    if items.len() > max {
        return Err(ApiError::field("items", format!("holds {} items; at most {max} per batch", items.len())));
    }
    crate::service::keys::take_tokens(svc, caller, items.len().saturating_sub(1) as u32)?;
    Ok(())
}

async fn analyze_batch(
    State(svc): State<Services>,
    caller: Caller,
    deadline: Deadline,
    Json(req): Json<Batch<AnalyzeRequest>>,
) -> Result<Json<BatchResponse>, ApiError> {
    caller.require(Scope::Analyze)?;
    check_batch(&svc, &caller, &req.items)?;
    let jobs = req.items.into_iter().map(Job::Input).collect();
    let results = analyze_all(&svc, &caller, jobs, &deadline).await?;
    Ok(Json(BatchResponse { results }))
}

async fn validate_batch(
    State(svc): State<Services>,
    caller: Caller,
    deadline: Deadline,
    Json(req): Json<Batch<ValidateRequest>>,
) -> Result<Json<BatchResponse>, ApiError> {
    caller.require(Scope::Analyze)?;
    check_batch(&svc, &caller, &req.items)?;
    let jobs = req.items.into_iter().map(Job::Output).collect();
    let results = analyze_all(&svc, &caller, jobs, &deadline).await?;
    Ok(Json(BatchResponse { results }))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/security/analyze", post(analyze_one))
        .route("/api/security/validate", post(validate_one))
        .route("/api/security/analyze/batch", post(analyze_batch))
        .route("/api/security/validate/batch", post(validate_batch))
}
