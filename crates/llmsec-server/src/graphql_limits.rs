//! What one GraphQL operation may cost, over HTTP or the WebSocket alike.
//!
//! Aliases let one document ask for the same expensive field many times
//! under one rate-limit token. So: a document holds at most
//! `limits.graphql_aliases` aliased fields (besides the schema's depth and
//! complexity limits); one operation runs at most `limits.batch_items`
//! analyses over at most `limits.body_bytes` of text, each after the first
//! taking a token from the key's rate; its event pages together hold about
//! `limits.page_bytes` at most; and it runs under the request deadline, so
//! no analysis starts, and nothing is stored, after a timeout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest};
use async_graphql::parser::types::{ExecutableDocument, SelectionSet};
use async_graphql::{Context, Pos, Request, ServerResult, Variables};

use crate::config::LimitsConfig;
use crate::error::ApiError;
use crate::gql::gql_error;
use crate::service::Caller;
use crate::service::deadline::Deadline;
use crate::state::AppState;

/// What one operation may still spend.
#[derive(Debug)]
pub struct Budget {
    work: Mutex<Work>,
    /// Held across a page read, so that aliased pages share it in turn.
    page_bytes: tokio::sync::Mutex<PageBytes>,
    max_analyses: usize,
    max_input_bytes: usize,
}

#[derive(Debug)]
struct Work {
    analyses: usize,
    input_bytes: usize,
    /// Analyses already paid for by the request's own rate-limit token.
    prepaid: usize,
}

/// The bytes an operation's event pages may still hold.
#[derive(Debug)]
pub struct PageBytes {
    /// Bytes left.
    pub left: usize,
    /// A page was returned already.
    pub spent: bool,
}

impl Budget {
    /// A fresh budget; `prepaid` analyses take no token (an HTTP request took
    /// one to get in; a WebSocket operation took none).
    pub fn new(limits: &LimitsConfig, prepaid: usize) -> Budget {
        Budget {
            work: Mutex::new(Work { analyses: limits.batch_items, input_bytes: limits.body_bytes, prepaid }),
            page_bytes: tokio::sync::Mutex::new(PageBytes { left: limits.page_bytes, spent: false }),
            max_analyses: limits.batch_items,
            max_input_bytes: limits.body_bytes,
        }
    }

    /// Takes one analysis of `bytes` of text, the field named `field`; true
    /// when the request's own token pays for it.
    pub fn take_analysis(&self, bytes: usize, field: &str) -> Result<bool, ApiError> {
        let mut w = self.work.lock().unwrap_or_else(|p| p.into_inner());
        if w.analyses == 0 {
            return Err(ApiError::field(
                field,
                format!("one request runs at most {} analyses (limits.batch_items)", self.max_analyses),
            ));
        }
        if bytes > w.input_bytes {
            return Err(ApiError::field(
                field,
                format!("one request analyses at most {} bytes of text (limits.body_bytes)", self.max_input_bytes),
            ));
        }
        w.analyses -= 1;
        w.input_bytes -= bytes;
        let prepaid = w.prepaid > 0;
        w.prepaid = w.prepaid.saturating_sub(1);
        Ok(prepaid)
    }

    /// The page-byte budget, for one page read at a time.
    pub async fn page_bytes(&self) -> tokio::sync::MutexGuard<'_, PageBytes> {
        self.page_bytes.lock().await
    }
}

/// The checks before one `analyzeInput`/`validateOutput` of `bytes` of text:
/// the deadline, the operation's budget, the key's rate. Returns the
/// deadline the analysis runs under.
pub(crate) fn start_analysis(
    ctx: &Context<'_>,
    state: &AppState,
    caller: &Caller,
    bytes: usize,
) -> async_graphql::Result<Deadline> {
    let deadline = ctx.data::<Deadline>()?.clone();
    deadline.check().map_err(gql_error)?;
    let field = ctx.path_node.map(|p| p.to_string()).unwrap_or_default();
    let prepaid = ctx.data::<Budget>()?.take_analysis(bytes, &field).map_err(gql_error)?;
    if !prepaid {
        crate::service::keys::take_token(&state.services, caller).map_err(gql_error)?;
    }
    Ok(deadline)
}

/// The schema extension that gives every operation its [`Budget`] and
/// [`Deadline`] (unless the HTTP handler gave them) and refuses documents
/// with too many aliases.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    limits: Arc<LimitsConfig>,
}

impl RequestLimits {
    /// The extension for `limits`.
    pub fn new(limits: &LimitsConfig) -> RequestLimits {
        RequestLimits { limits: Arc::new(limits.clone()) }
    }
}

impl ExtensionFactory for RequestLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for RequestLimits {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if !request.data.contains_key(&std::any::TypeId::of::<Budget>()) {
            request = request.data(Budget::new(&self.limits, 0));
        }
        if !request.data.contains_key(&std::any::TypeId::of::<Deadline>()) {
            request = request.data(Deadline::after(Duration::from_millis(self.limits.request_timeout_ms)));
        }
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let max = self.limits.graphql_aliases;
        if count_aliases(&doc, max + 1) > max {
            let e = ApiError::field("query", format!("more than {max} aliased fields (limits.graphql_aliases)"));
            return Err(gql_error(e).into_server_error(Pos::default()));
        }
        Ok(doc)
    }
}

/// Aliased fields in `doc`'s operations, counting a fragment at each spread;
/// counting stops at `stop`, or once so many selections were visited that
/// the complexity limit refuses the document anyway.
fn count_aliases(doc: &ExecutableDocument, stop: usize) -> usize {
    /// Selections visited at most; more exceed any complexity limit in use.
    const MAX_VISITS: usize = 100_000;
    /// Fragments nested deeper than this are cycles, refused by validation.
    const MAX_NESTING: usize = 64;

    struct Walk<'a> {
        doc: &'a ExecutableDocument,
        stop: usize,
        aliases: usize,
        visits: usize,
    }

    impl Walk<'_> {
        fn set(&mut self, set: &SelectionSet, nesting: usize) {
            use async_graphql::parser::types::Selection;
            if nesting > MAX_NESTING {
                return;
            }
            for item in &set.items {
                self.visits += 1;
                if self.aliases >= self.stop || self.visits > MAX_VISITS {
                    return;
                }
                match &item.node {
                    Selection::Field(f) => {
                        self.aliases += usize::from(f.node.alias.is_some());
                        self.set(&f.node.selection_set.node, nesting + 1);
                    }
                    Selection::FragmentSpread(s) => {
                        if let Some(fragment) = self.doc.fragments.get(&s.node.fragment_name.node) {
                            self.set(&fragment.node.selection_set.node, nesting + 1);
                        }
                    }
                    Selection::InlineFragment(i) => self.set(&i.node.selection_set.node, nesting + 1),
                }
            }
        }
    }

    let mut walk = Walk { doc, stop, aliases: 0, visits: 0 };
    for (_, op) in doc.operations.iter() {
        walk.set(&op.node.selection_set.node, 0);
    }
    walk.aliases
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases(q: &str) -> usize {
        count_aliases(&async_graphql::parser::parse_query(q).unwrap(), usize::MAX)
    }

    #[test]
    fn aliases_are_counted_through_fragments() {
        assert_eq!(aliases("{ a: f b: f c { d: g } }"), 3);
        assert_eq!(aliases("query { ...F ...F } fragment F on Q { x: f y: f }"), 4, "per spread");
        assert_eq!(aliases("{ ... on Q { x: f } }"), 1);
        // A cycle (refused later by validation) ends.
        assert!(aliases("{ ...A } fragment A on Q { x: f ...A }") > 0);
    }

    #[test]
    fn counting_stops_early() {
        let q = format!("{{ {} }}", (0..1000).map(|i| format!("a{i}: f")).collect::<Vec<_>>().join(" "));
        let doc = async_graphql::parser::parse_query(&q).unwrap();
        assert_eq!(count_aliases(&doc, 11), 11);
    }

    #[test]
    fn budgets_count_analyses_bytes_and_prepaid_tokens() {
        let limits = LimitsConfig { batch_items: 2, body_bytes: 10, ..LimitsConfig::default() };
        let b = Budget::new(&limits, 1);
        assert!(b.take_analysis(4, "a").unwrap(), "the first is paid by the request's token");
        assert!(
            matches!(b.take_analysis(7, "b"), Err(ApiError::BadRequest { field: Some(f), .. }) if f == "b"),
            "past the bytes"
        );
        assert!(!b.take_analysis(6, "c").unwrap());
        assert!(b.take_analysis(0, "d").is_err(), "past the count");
    }
}
