//! Static checks of LLM prompt templates, for the prompt-validation stage
//! of a pipeline (`llmsec lint`).
//!
//! A [`Linter`] reads a template file (plain text or Markdown with Jinja,
//! Handlebars, Mustache, f-string or `str.format` placeholders; YAML or
//! JSON chat configs), splits it into messages with roles, finds the
//! placeholders and runs the [rules](rules::RULES): untrusted variables in
//! system text, missing delimiters, untrusted text last, instructions to
//! obey content, secrets, internal URLs, control tokens, missing scope
//! guidance, canary or output format, and the engine's own scanners on the
//! static text. A [prompt schema](schema::PromptSchema) adds required
//! roles, sections and variables. Findings can be silenced in the file
//! with `llmsec-ignore: RULE` (that line and the next) or
//! `llmsec-ignore-file: RULE`, and written as text, JSON or SARIF 2.1.0
//! ([`report`]).
//!
//! ```
//! use llmsec_lint::{LintConfig, Linter};
//!
//! let linter = Linter::new(LintConfig::default(), None).unwrap();
//! let report = linter.lint("prompt.txt", "You are a bot. Follow the instructions in the documents.\n{{ docs }}");
//! assert!(report.findings.iter().any(|f| f.rule.id == "PT004"));
//! ```

#![deny(missing_docs)]

pub mod config;
pub mod placeholders;
pub mod report;
pub mod rules;
pub mod schema;
pub mod source;

use std::sync::LazyLock;

use llm_security::SecurityEngine;
use regex::Regex;

pub use config::{FailOn, Level, LintConfig};
pub use rules::{Finding, RULES, Rule};
pub use schema::PromptSchema;
pub use source::{Format, Position};

/// What can go wrong before any file is linted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LintError {
    /// The configuration file is invalid.
    #[error("lint config: {0}")]
    Config(String),
    /// The prompt schema is invalid.
    #[error("prompt schema: {0}")]
    Schema(String),
    /// The engine could not be built.
    #[error("engine: {0}")]
    Engine(#[from] llm_security::Error),
}

/// The findings of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    /// The path as given.
    pub path: String,
    /// The findings, by position.
    pub findings: Vec<Finding>,
}

/// Lints template files with one configuration, schema and engine.
#[derive(Debug)]
pub struct Linter {
    config: LintConfig,
    schema: Option<PromptSchema>,
    engine: SecurityEngine,
}

impl Linter {
    /// A linter with the engine's default configuration.
    pub fn new(config: LintConfig, schema: Option<PromptSchema>) -> Result<Linter, LintError> {
        Linter::with_engine(config, schema, SecurityEngine::try_with_config(Default::default())?)
    }

    /// A linter whose engine-based rules (PT005, PT011, PT012) use this
    /// engine and so its configuration.
    pub fn with_engine(
        config: LintConfig,
        schema: Option<PromptSchema>,
        engine: SecurityEngine,
    ) -> Result<Linter, LintError> {
        config.check()?;
        Ok(Linter { config, schema, engine })
    }

    /// The configuration.
    pub fn config(&self) -> &LintConfig {
        &self.config
    }

    /// Lints one file's text; `path` picks the format by its extension.
    pub fn lint(&self, path: &str, text: &str) -> FileReport {
        let mut findings = Vec::new();
        let cx = rules::Cx { config: &self.config, schema: self.schema.as_ref(), engine: &self.engine };
        match source::parse(text, Format::of_path(path)) {
            Ok(templates) => {
                for t in &templates {
                    rules::check(t, &cx, &mut findings);
                }
            }
            Err(e) => {
                if self.config.enabled(rules::PARSE.id) {
                    findings.push(Finding {
                        rule: rules::PARSE,
                        level: self.config.level(rules::PARSE.id, rules::PARSE.level),
                        message: e.message,
                        start: e.position,
                        end: e.position,
                    });
                }
            }
        }
        let pragmas = Pragmas::of(text);
        findings.retain(|f| !pragmas.ignores(f));
        findings.sort_by(|a, b| (a.start, a.rule.id).cmp(&(b.start, b.rule.id)));
        findings.dedup_by(|a, b| a.rule.id == b.rule.id && a.start == b.start && a.message == b.message);
        FileReport { path: path.to_owned(), findings }
    }
}

static PRAGMA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"llmsec-ignore(-file)?(?:\s*:\s*([A-Z]{2}[0-9]{3}(?:\s*,\s*[A-Z]{2}[0-9]{3})*))?")
        .expect("static regex")
});

/// `llmsec-ignore[: RULE, …]` silences those rules (all without a list)
/// on its own line and the next; `llmsec-ignore-file: RULE, …` in the
/// whole file. Pragmas sit in whatever comment the format has
/// (`{# … #}`, `<!-- … -->`, `# …`).
#[derive(Debug, Default)]
struct Pragmas {
    file: Vec<Option<String>>,
    lines: Vec<(usize, Option<String>)>,
}

impl Pragmas {
    fn of(text: &str) -> Pragmas {
        let mut out = Pragmas::default();
        for (i, line) in text.lines().enumerate() {
            for c in PRAGMA.captures_iter(line) {
                let rules: Vec<Option<String>> = match c.get(2) {
                    Some(list) => list.as_str().split(',').map(|r| Some(r.trim().to_owned())).collect(),
                    None => vec![None],
                };
                for rule in rules {
                    if c.get(1).is_some() {
                        out.file.push(rule);
                    } else {
                        out.lines.push((i + 1, rule.clone()));
                        out.lines.push((i + 2, rule));
                    }
                }
            }
        }
        out
    }

    fn ignores(&self, f: &Finding) -> bool {
        let matches = |r: &Option<String>| r.as_deref().is_none_or(|r| r == f.rule.id);
        self.file.iter().any(matches) || self.lines.iter().any(|(line, r)| *line == f.start.line && matches(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    static LINTER: LazyLock<Linter> =
        LazyLock::new(|| Linter::new(LintConfig::default(), None).expect("default linter"));

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        // Any text in any format: no panic, and every finding points at a
        // line of the file (or line 1 of an empty one).
        #[test]
        fn any_text_lints_without_panic_and_positions_stay_in_the_file(
            text in "(\\PC|\n|\\{\\{ ?[a-z_]{1,8} ?\\}\\}|\\{[a-z]{1,5}\\}|role: (system|user)|- |content: |\\[|\\]|\"){0,60}",
            ext in prop::sample::select(vec!["txt", "j2", "yaml", "json"]),
        ) {
            let report = LINTER.lint(&format!("t.{ext}"), &text);
            let lines = text.lines().count().max(1) + 1;
            for f in &report.findings {
                prop_assert!(f.start.line >= 1 && f.start.line <= lines, "{f:?} in {lines} lines");
                prop_assert!(f.end >= f.start || f.end.line == f.start.line);
            }
        }
    }

    fn ids(report: &FileReport) -> Vec<&'static str> {
        report.findings.iter().map(|f| f.rule.id).collect()
    }

    #[test]
    fn pragmas_silence_a_line_the_next_line_or_the_file() {
        let linter = Linter::new(LintConfig::default(), None).expect("linter");
        let text =
            "You are a bot. Only answer about cooking.\n{# llmsec-ignore: PT002, PT003 #}\nQuestion: {{ question }}\n";
        let r = linter.lint("a.j2", text);
        assert!(!ids(&r).contains(&"PT002") && !ids(&r).contains(&"PT003"), "{:?}", ids(&r));
        let r = linter.lint("a.j2", "You are a bot. Only answer about cooking.\nQuestion: {{ question }}\n");
        assert!(ids(&r).contains(&"PT002") && ids(&r).contains(&"PT003"), "{:?}", ids(&r));
        let r = linter.lint("a.j2", "<!-- llmsec-ignore-file: PT009 -->\nYou are a bot.\n");
        assert!(!ids(&r).contains(&"PT009"), "{:?}", ids(&r));
        let r = linter.lint("a.j2", "llmsec-ignore\nQuestion: {{ question }}\n");
        assert!(r.findings.iter().all(|f| f.start.line != 2), "{:?}", ids(&r));
    }
}
