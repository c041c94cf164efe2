//! `POST /api/security/analyze/dry-run`: the prompt through the current
//! engine and policy, nothing stored ([`dry_run`]). The dashboard's replay
//! page re-runs stored prompts with it to show what a policy change did.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use llmsec_store::Scope;

use crate::error::{ApiError, Json};
use crate::service::analysis::{AnalyzeRequest, DryRunResponse, dry_run};
use crate::service::deadline::Deadline;
use crate::service::{Caller, Services};
use crate::state::AppState;

async fn analyze_dry_run(
    State(svc): State<Services>,
    caller: Caller,
    deadline: Deadline,
    Json(req): Json<AnalyzeRequest>,
) -> Result<Json<DryRunResponse>, ApiError> {
    caller.require(Scope::Analyze)?;
    Ok(Json(dry_run(&svc, &caller, req, &deadline).await?))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/security/analyze/dry-run", post(analyze_dry_run))
}
