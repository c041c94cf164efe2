//! What every GraphQL resolver shares: errors in the API's shape and the
//! caller's scope check.

use async_graphql::{Context, ErrorExtensions};
use llmsec_store::Scope;

use crate::auth::Caller;
use crate::error::ApiError;

/// An [`ApiError`] as a GraphQL error with `extensions.code` (and `field`).
pub fn gql_error(e: ApiError) -> async_graphql::Error {
    let code = e.code();
    let field = match &e {
        ApiError::BadRequest { field, .. } => field.clone(),
        _ => None,
    };
    let message = e.to_string();
    if let ApiError::Internal(detail) = &e {
        tracing::error!(%detail, "internal error in GraphQL");
    }
    async_graphql::Error::new(message).extend_with(|_, ext| {
        ext.set("code", code);
        if let Some(f) = &field {
            ext.set("field", f.as_str());
        }
    })
}

/// The caller, when it holds `scope`; a GraphQL error (401 or 403) otherwise.
pub fn caller<'a>(ctx: &'a Context<'_>, scope: Scope) -> async_graphql::Result<&'a Caller> {
    let c = ctx.data::<Caller>().map_err(|_| gql_error(ApiError::Unauthorized))?;
    c.require(scope).map_err(gql_error)?;
    Ok(c)
}
