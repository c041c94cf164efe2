//! A run as SARIF 2.1.0, for code-scanning dashboards and CI annotations:
//! one rule per attack category (with its attack success rate and
//! intervals), one `error` result per successful attack, located by the
//! case (a logical location: attacks have no source line). A run whose
//! attacks all failed is a log with rules and no results.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::Digest;

use crate::report::Summary;
use crate::run::TrialResult;

/// Where the rules are documented.
const DOCS_URL: &str = "https://example.invalid/llm-security/docs/REDTEAM.md";

/// The SARIF log of a run.
pub fn sarif(s: &Summary, results: &[TrialResult], tool_version: &str) -> Value {
    let mut categories: Vec<&str> = results.iter().map(|r| r.category.as_str()).collect();
    categories.sort_unstable();
    categories.dedup();
    let index: BTreeMap<&str, usize> = categories.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    let rules: Vec<Value> = categories
        .iter()
        .map(|c| {
            let rate = s.groups.get("category").and_then(|g| g.get(*c));
            let text = match rate {
                Some(r) => format!(
                    "Attacks of category {c} succeeded in {} of {} trials against {} ({:.1}%, Wilson 95% {:.1}-{:.1}%).",
                    r.successes,
                    r.trials,
                    s.target,
                    r.rate * 100.0,
                    r.wilson.0 * 100.0,
                    r.wilson.1 * 100.0
                ),
                None => format!("Attacks of category {c}."),
            };
            json!({
                "id": c,
                "name": c.replace(|ch: char| !ch.is_ascii_alphanumeric(), "_"),
                "shortDescription": {"text": format!("The target gave in to a {c} attack")},
                "fullDescription": {"text": text},
                "helpUri": DOCS_URL,
                "defaultConfiguration": {"level": "error"},
                "properties": {
                    "tags": ["security", "llm", "red-team"],
                    "trials": rate.map_or(0, |r| r.trials),
                    "successes": rate.map_or(0, |r| r.successes),
                    "attack-success-rate": rate.map_or(0.0, |r| r.rate),
                    "few-trials": rate.is_some_and(|r| r.few_trials),
                },
            })
        })
        .collect();
    let hits: Vec<Value> = results
        .iter()
        .filter(|r| r.success == Some(true))
        .map(|r| {
            let fingerprint = hex::encode(sha2::Sha256::digest(format!("{}\n{}", r.case_id, r.converters).as_bytes()));
            json!({
                "ruleId": r.category,
                "ruleIndex": index.get(r.category.as_str()).copied().unwrap_or(0),
                "level": "error",
                "message": {"text": format!(
                    "Attack {} ({}, {}, converters {}) succeeded against {}: {}",
                    r.case_id, r.family, r.language, r.converters, s.target, r.reason
                )},
                "locations": [{
                    "logicalLocations": [{
                        "name": r.case_id,
                        "fullyQualifiedName": format!("{}/{}/{}", r.category, r.case_id, r.converters),
                    }],
                }],
                "partialFingerprints": {"llmsecRedteam/v1": &fingerprint[..32]},
                "properties": {"trial": r.id, "attempts": r.attempts, "latencyMs": r.latency_ms},
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "llmsec redteam",
                "informationUri": DOCS_URL,
                "version": tool_version,
                "semanticVersion": tool_version,
                "rules": rules,
            }},
            "invocations": [{"executionSuccessful": true}],
            "results": hits,
            "properties": {
                "target": s.target,
                "trials": s.trials,
                "errors": s.errors,
                "attack-success-rate": s.overall.rate,
            },
        }],
    })
}
