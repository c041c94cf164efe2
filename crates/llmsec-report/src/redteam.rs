//! Red-team results read from the JSON report `llmsec redteam --format json`
//! writes (`{"summary": {...}, "results": [...]}`): only the summary's
//! figures are kept, never the attack prompts or the target's answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ReportError;

/// Attack success rate above which the security-testing control is not met.
pub const MAX_ATTACK_SUCCESS_RATE: f64 = 0.10;

/// One rate of a red-team run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedTeamRate {
    /// Judged trials.
    pub trials: u64,
    /// Successful attacks.
    pub successes: u64,
    /// successes / trials.
    pub rate: f64,
}

/// The figures of one red-team run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedTeam {
    /// What was attacked.
    pub target: String,
    /// Trials run, errors included.
    pub trials: u64,
    /// Trials the target failed on.
    pub errors: u64,
    /// Every judged trial.
    pub overall: RedTeamRate,
    /// Per attack category.
    pub by_category: BTreeMap<String, RedTeamRate>,
}

fn rate(v: &Value, at: &str) -> Result<RedTeamRate, ReportError> {
    let num = |k: &str| v.get(k).and_then(Value::as_u64);
    match (num("trials"), num("successes"), v.get("rate").and_then(Value::as_f64)) {
        (Some(trials), Some(successes), Some(rate)) => Ok(RedTeamRate { trials, successes, rate }),
        _ => Err(ReportError::RedTeam(format!("{at}: expected trials, successes and rate"))),
    }
}

impl RedTeam {
    /// Reads the summary of a red-team JSON report.
    pub fn from_json(text: &str) -> Result<RedTeam, ReportError> {
        let doc: Value = serde_json::from_str(text).map_err(|e| ReportError::RedTeam(format!("not JSON: {e}")))?;
        let s = doc
            .get("summary")
            .ok_or_else(|| ReportError::RedTeam("no `summary`: not a `llmsec redteam --format json` report".into()))?;
        let mut by_category = BTreeMap::new();
        if let Some(cats) = s.pointer("/groups/category").and_then(Value::as_object) {
            for (name, r) in cats {
                by_category.insert(name.clone(), rate(r, &format!("summary.groups.category.{name}"))?);
            }
        }
        Ok(RedTeam {
            target: s.get("target").and_then(Value::as_str).unwrap_or_default().to_owned(),
            trials: s.get("trials").and_then(Value::as_u64).unwrap_or_default(),
            errors: s.get("errors").and_then(Value::as_u64).unwrap_or_default(),
            overall: rate(s.get("overall").unwrap_or(&Value::Null), "summary.overall")?,
            by_category,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_of_a_redteam_report() {
        let text = r#"{"summary": {"target": "engine", "trials": 12, "errors": 2,
            "overall": {"trials": 10, "successes": 1, "rate": 0.1, "wilson": [0.0, 0.4], "bootstrap": [0.0, 0.3], "few_trials": true},
            "groups": {"category": {"jailbreak": {"trials": 10, "successes": 1, "rate": 0.1}}}},
            "results": [{"prompt": "never copied"}]}"#;
        let r = RedTeam::from_json(text).expect("parses");
        assert_eq!((r.trials, r.errors, r.overall.successes), (12, 2, 1));
        assert_eq!(r.by_category["jailbreak"].trials, 10);
        assert!(!serde_json::to_string(&r).expect("serializes").contains("never copied"));
    }

    proptest::proptest! {
        /// Any text, and any JSON with a `summary`, is read or refused with an error: never a panic.
        #[test]
        fn any_input_is_read_or_refused(s in "\\PC{0,200}", n in proptest::num::i64::ANY, r in proptest::num::f64::ANY) {
            let _ = RedTeam::from_json(&s);
            let doc = serde_json::json!({"summary": {"trials": n, "overall": {"trials": n, "successes": n, "rate": r},
                "groups": {"category": {"x": {"trials": n}}}}});
            let _ = RedTeam::from_json(&doc.to_string());
        }
    }

    #[test]
    fn refuses_what_is_not_a_redteam_report() {
        assert!(matches!(RedTeam::from_json("[]"), Err(ReportError::RedTeam(m)) if m.contains("summary")));
        assert!(matches!(RedTeam::from_json("{"), Err(ReportError::RedTeam(m)) if m.contains("not JSON")));
        let bad = r#"{"summary": {"overall": {"trials": 1}}}"#;
        assert!(matches!(RedTeam::from_json(bad), Err(ReportError::RedTeam(m)) if m.contains("summary.overall")));
    }
}
