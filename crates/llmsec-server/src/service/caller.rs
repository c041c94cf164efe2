//! Who is calling, and what the key may do.

use llmsec_store::{Budget, Scope};

use crate::service::ServiceError;

/// Who is calling: what the handlers see.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's id.
    pub key_id: String,
    /// The key's tenant: all data access is confined to it.
    pub tenant: String,
    /// What the key may do.
    pub scopes: Vec<Scope>,
    /// The key's own rate, if it has one.
    pub rate_per_sec: Option<f64>,
    /// The models the key may call through the gateway; `None`: any.
    pub models: Option<Vec<String>>,
    /// The key's gateway budgets.
    pub budgets: Vec<Budget>,
}

impl Caller {
    /// Whether the key holds `scope`, or a scope that includes it
    /// (`operator` includes `admin`, which includes `triage`).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| s.grants(scope))
    }

    /// Whether the key may call `model` through the gateway: any model
    /// without an allow-list; otherwise one it names, or one starting with
    /// an entry's text before its final `*`.
    pub fn may_use_model(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|list| list.iter().any(|m| model_matches(m, model)))
    }

    /// `Ok` when the key [has](Self::has) `scope`; `403` naming it otherwise.
    pub fn require(&self, scope: Scope) -> Result<(), ServiceError> {
        if self.has(scope) { Ok(()) } else { Err(ServiceError::Forbidden(scope.as_str())) }
    }

    /// [`require`](Self::require) for work on `tenant`'s data: on the
    /// caller's own tenant, `scope`; on any other, `operator` (`403` naming
    /// `operator` otherwise).
    pub fn require_in(&self, scope: Scope, tenant: &str) -> Result<(), ServiceError> {
        if tenant == self.tenant { self.require(scope) } else { self.require(Scope::Operator) }
    }
}

/// Whether an allow-list entry (`gpt-4o-mini`, or a prefix `gpt-4o*`) admits `model`.
pub fn model_matches(entry: &str, model: &str) -> bool {
    match entry.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => entry == model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_tenants_need_operator() {
        let caller = |scopes: Vec<Scope>| Caller {
            key_id: "k".into(),
            tenant: "acme".into(),
            scopes,
            rate_per_sec: None,
            models: None,
            budgets: vec![],
        };
        let admin = caller(vec![Scope::Admin]);
        assert!(admin.require_in(Scope::Admin, "acme").is_ok() && admin.require(Scope::Triage).is_ok());
        assert!(matches!(admin.require_in(Scope::Admin, "globex"), Err(ServiceError::Forbidden("operator"))));
        assert!(matches!(admin.require(Scope::Operator), Err(ServiceError::Forbidden("operator"))));
        let operator = caller(vec![Scope::Operator]);
        assert!(
            operator.require_in(Scope::Admin, "globex").is_ok() && operator.require_in(Scope::Admin, "acme").is_ok()
        );
        assert!(matches!(operator.require(Scope::Read), Err(ServiceError::Forbidden("read"))));
        let triage = caller(vec![Scope::Triage, Scope::Read]);
        assert!(triage.require(Scope::Triage).is_ok());
        assert!(matches!(triage.require_in(Scope::Admin, "acme"), Err(ServiceError::Forbidden("admin"))));
    }

    #[test]
    fn model_allow_list_matches_names_and_star_prefixes() {
        let mut c = Caller {
            key_id: "k".into(),
            tenant: "acme".into(),
            scopes: vec![Scope::Proxy],
            rate_per_sec: None,
            models: None,
            budgets: vec![],
        };
        assert!(c.may_use_model("anything"), "no list: any model");
        c.models = Some(vec!["gpt-4o-mini".into(), "claude-3*".into()]);
        assert!(c.may_use_model("gpt-4o-mini") && c.may_use_model("claude-3-haiku"));
        assert!(!c.may_use_model("gpt-4o") && !c.may_use_model("gpt-4o-mini-2") && !c.may_use_model("claude-2"));
        c.models = Some(vec![]);
        assert!(!c.may_use_model("gpt-4o-mini"), "an empty list admits nothing");
    }
}
