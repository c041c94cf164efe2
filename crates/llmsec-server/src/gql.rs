//! What every GraphQL resolver shares: errors in the API's shape and the
//! caller's scope check.

use async_graphql::{Context, ErrorExtensions};
use llmsec_store::Scope;

use crate::error::ApiError;
use crate::service::Caller;

/// An error as a GraphQL error with `extensions.code` (and `field`, in
/// GraphQL's camelCase: services name fields as JSON does).
pub fn gql_error(e: impl Into<ApiError>) -> async_graphql::Error {
    let e = e.into();
    let code = e.code();
    let field = match &e {
        ApiError::BadRequest { field, .. } => field.as_deref().map(camel_case),
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

/// `acknowledged_by` → `acknowledgedBy`, `items[0].user_id` → `items[0].userId`.
fn camel_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for ch in field.chars() {
        match ch {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::camel_case;

    #[test]
    fn fields_read_as_graphql_names_them() {
        assert_eq!(camel_case("acknowledged_by"), "acknowledgedBy");
        assert_eq!(camel_case("items[0].user_id"), "items[0].userId");
        assert_eq!(camel_case("filter.verdict"), "filter.verdict");
    }
}
