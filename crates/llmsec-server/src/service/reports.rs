//! The compliance posture and report of one tenant (`llmsec-report`),
//! with the evidence this server has: its configuration as it runs, and
//! the store. `admin` reads its own tenant's; `operator` any tenant's.

use llmsec_report::{Configuration, Evidence, Posture, Report, ReportError, ReportRequest};
use llmsec_store::{Millis, now_millis};

use crate::config::{InputRetention, ServerConfig};
use crate::service::{Caller, ServiceError, Services};

/// The running configuration as the posture checks read it. This build
/// has no TLS listener (`tls` is `false`); stored text is encrypted when
/// `[storage.encryption]` is set, since every path that opens the store
/// ([`crate::open_store`]) refuses to start without its keys.
pub fn configuration(config: &ServerConfig, detectors_enabled: usize) -> Configuration {
    let url = config.database_url();
    Configuration {
        listen: config.listen.to_string(),
        tls: false,
        encryption_at_rest: config.storage.encryption.is_some(),
        storage_input: match config.storage.input {
            InputRetention::None => "none",
            InputRetention::Redacted => "redacted",
            InputRetention::Full => "full",
        }
        .to_owned(),
        retention_days: config.storage.retention_days,
        // `Server::start` runs the hourly purge whenever retention is on.
        retention_purge_running: config.storage.retention_days > 0,
        rate_limit_per_sec: config.limits.rate_per_sec,
        egress_allow: config.egress.allow.clone(),
        detectors_enabled,
        database: if url.starts_with("postgres") { "postgres" } else { "sqlite" }.to_owned(),
    }
}

/// The tenant a report is for: the caller's own, or (for `operator`) the
/// one named. Needs `admin` on it, as every administrative request does.
pub fn tenant_for(caller: &Caller, requested: Option<&str>) -> Result<String, ServiceError> {
    super::tenants::administered_tenant(caller, requested)
}

fn map(e: ReportError) -> ServiceError {
    match e {
        ReportError::Store(e) => e.into(),
        e @ ReportError::UnknownFramework { .. } => ServiceError::field("framework", e.to_string()),
        ReportError::Range(m) => ServiceError::field("to", m),
        e => ServiceError::Internal(e.to_string()),
    }
}

async fn evidence(svc: &Services, tenant: &str) -> Result<Evidence, ServiceError> {
    let detectors = svc.sentinel.config_for(tenant).detectors.iter().filter(|d| d.enabled).count();
    Evidence::gather(svc.store.as_ref(), tenant, configuration(&svc.config, detectors), None, now_millis())
        .await
        .map_err(map)
}

/// The posture of `tenant` (see [`tenant_for`]) for the frameworks named (all when `None`).
pub async fn posture(
    svc: &Services,
    caller: &Caller,
    tenant: Option<&str>,
    frameworks: Option<Vec<String>>,
) -> Result<Posture, ServiceError> {
    let tenant = tenant_for(caller, tenant)?;
    let e = evidence(svc, &tenant).await?;
    llmsec_report::posture::evaluate(e, frameworks.as_deref()).map_err(map)
}

/// The report of `tenant` over `[from, to)`.
pub async fn report(
    svc: &Services,
    caller: &Caller,
    tenant: Option<&str>,
    from: Millis,
    to: Millis,
    frameworks: Option<Vec<String>>,
) -> Result<Report, ServiceError> {
    let tenant = tenant_for(caller, tenant)?;
    let e = evidence(svc, &tenant).await?;
    llmsec_report::report::build(svc.store.as_ref(), e, &ReportRequest { from, to, frameworks }).await.map_err(map)
}

#[cfg(test)]
mod tests {
    use llmsec_store::Scope;

    use super::*;

    #[test]
    fn a_default_config_describes_plain_http_unencrypted_redacted_storage() {
        let c = configuration(&ServerConfig::default(), 0);
        assert!(!c.tls && !c.encryption_at_rest);
        assert_eq!((c.storage_input.as_str(), c.retention_days, c.retention_purge_running), ("redacted", 30, true));
        assert_eq!(c.database, "sqlite");
        let mut off = ServerConfig::default();
        off.storage.retention_days = 0;
        off.storage.input = InputRetention::Full;
        let c = configuration(&off, 2);
        assert!(!c.retention_purge_running && c.storage_input == "full" && c.detectors_enabled == 2);
        let mut enc = ServerConfig::default();
        enc.storage.encryption =
            Some(llmsec_store::EncryptionConfig { key_env: Some("K".into()), ..Default::default() });
        assert!(configuration(&enc, 0).encryption_at_rest);
    }

    #[test]
    fn reports_need_admin_and_other_tenants_need_operator() {
        let caller = |scopes: Vec<Scope>| Caller {
            key_id: "k".into(),
            tenant: "acme".into(),
            scopes,
            rate_per_sec: None,
            models: None,
            budgets: vec![],
        };
        assert_eq!(tenant_for(&caller(vec![Scope::Admin]), None).ok().as_deref(), Some("acme"));
        assert!(matches!(tenant_for(&caller(vec![Scope::Read]), None), Err(ServiceError::Forbidden("admin"))));
        assert!(matches!(
            tenant_for(&caller(vec![Scope::Admin]), Some("globex")),
            Err(ServiceError::Forbidden("operator"))
        ));
        assert_eq!(tenant_for(&caller(vec![Scope::Operator]), Some("globex")).ok().as_deref(), Some("globex"));
        assert!(matches!(
            tenant_for(&caller(vec![Scope::Operator]), Some("bad tenant")),
            Err(ServiceError::Invalid { field: Some(f), .. }) if f == "tenant"
        ));
    }
}
