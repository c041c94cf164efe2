//! The lint configuration file (TOML): which rules run, at what level,
//! when the run fails, and which variables are trusted.
//!
//! ```toml
//! select = ["PT", "SC"]          # rule ids or id prefixes; default: all
//! ignore = ["PT009"]
//! fail_on = "warning"            # error | warning | note | never
//! trusted_variables = ["company_name"]
//! untrusted_variables = ["ctx"]
//! parsed_output = "json"         # a parser reads every template's answer
//!
//! [severity]
//! PT009 = "warning"
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::LintError;
use crate::rules::RULES;
use crate::source::OutputFormat;

/// A finding's level, as SARIF names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Worth knowing.
    Note,
    /// Likely a weakness.
    Warning,
    /// A weakness to fix.
    Error,
}

impl Level {
    /// The level's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Note => "note",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// From which level findings fail the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailOn {
    /// Only errors fail.
    Error,
    /// Warnings and errors fail (the default).
    #[default]
    Warning,
    /// Any finding fails.
    Note,
    /// Findings never fail the run (exit 0 unless the run itself failed).
    Never,
}

impl FailOn {
    /// Whether a finding at `level` fails the run.
    pub fn fails(self, level: Level) -> bool {
        match self {
            FailOn::Error => level >= Level::Error,
            FailOn::Warning => level >= Level::Warning,
            FailOn::Note => true,
            FailOn::Never => false,
        }
    }
}

/// The configuration file's contents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LintConfig {
    /// Rule ids or prefixes to run (empty: all).
    #[serde(default)]
    pub select: Vec<String>,
    /// Rule ids or prefixes not to run.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// From which level findings fail the run.
    #[serde(default)]
    pub fail_on: FailOn,
    /// Variables known to hold the application's own text.
    #[serde(default)]
    pub trusted_variables: Vec<String>,
    /// Variables that hold text the application does not control, besides
    /// those the built-in name list recognises.
    #[serde(default)]
    pub untrusted_variables: Vec<String>,
    /// The format a parser expects from every template's answer.
    #[serde(default)]
    pub parsed_output: Option<OutputFormat>,
    /// Per-rule levels.
    #[serde(default)]
    pub severity: BTreeMap<String, Level>,
}

impl LintConfig {
    /// Reads a TOML configuration; unknown keys and rule ids are errors
    /// that name them.
    pub fn from_toml(text: &str) -> Result<LintConfig, LintError> {
        let config: LintConfig = toml::from_str(text).map_err(|e| LintError::Config(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Checks that every rule id or prefix names a rule.
    pub fn check(&self) -> Result<(), LintError> {
        for (key, list) in [("select", &self.select), ("ignore", &self.ignore)] {
            for id in list {
                if !RULES.iter().any(|r| r.id.starts_with(id.as_str())) {
                    return Err(LintError::Config(format!(
                        "{key}: `{id}` names no rule (see `llmsec lint --list-rules`)"
                    )));
                }
            }
        }
        for id in self.severity.keys() {
            if !RULES.iter().any(|r| r.id == id) {
                return Err(LintError::Config(format!("severity.{id}: no rule has this id")));
            }
        }
        Ok(())
    }

    /// Whether the rule runs.
    pub fn enabled(&self, id: &str) -> bool {
        (self.select.is_empty() || self.select.iter().any(|s| id.starts_with(s.as_str())))
            && !self.ignore.iter().any(|s| id.starts_with(s.as_str()))
    }

    /// The rule's level after the configuration's overrides.
    pub fn level(&self, id: &str, default: Level) -> Level {
        self.severity.get(id).copied().unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_rule_ids_are_named() {
        let e = LintConfig::from_toml("selekt = []").expect_err("unknown key");
        assert!(e.to_string().contains("selekt"), "{e}");
        let e = LintConfig::from_toml("ignore = [\"XX1\"]").expect_err("unknown rule");
        assert!(e.to_string().contains("ignore: `XX1`"), "{e}");
        let e = LintConfig::from_toml("[severity]\nPT999 = \"error\"").expect_err("unknown id");
        assert!(e.to_string().contains("severity.PT999"), "{e}");
    }

    #[test]
    fn select_ignore_and_levels() {
        let c = LintConfig::from_toml(
            "select = [\"PT\"]\nignore = [\"PT009\"]\nfail_on = \"error\"\n[severity]\nPT002 = \"error\"\n",
        )
        .expect("valid");
        assert!(c.enabled("PT001") && !c.enabled("PT009") && !c.enabled("SC001"));
        assert_eq!(c.level("PT002", Level::Warning), Level::Error);
        assert!(!c.fail_on.fails(Level::Warning) && c.fail_on.fails(Level::Error));
    }

    #[test]
    fn round_trips_through_toml_yaml_and_json() {
        let c = LintConfig::from_toml(
            "select = [\"PT\"]\nfail_on = \"note\"\ntrusted_variables = [\"a\"]\nparsed_output = \"json\"\n[severity]\nPT002 = \"error\"\n",
        )
        .expect("valid");
        let toml_text = toml::to_string(&c).expect("toml");
        assert_eq!(LintConfig::from_toml(&toml_text).expect("toml back"), c);
        let yaml = serde_norway::to_string(&c).expect("yaml");
        assert_eq!(serde_norway::from_str::<LintConfig>(&yaml).expect("yaml back"), c);
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(serde_json::from_str::<LintConfig>(&json).expect("json back"), c);
    }
}
