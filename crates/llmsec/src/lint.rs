//! `llmsec lint`: static checks of prompt templates (rules, prompt
//! schemas), written for people, as JSON or as SARIF 2.1.0.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use llm_security::{SecurityConfig, SecurityEngine};
use llmsec_lint::{FailOn, FileReport, LintConfig, Linter, PromptSchema, RULES, report};

use crate::common::{self, EXIT_CLEAN, EXIT_FLAGGED};

/// How findings are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// `path:line:col: level[ID name] message` with the fix beneath.
    #[default]
    Human,
    /// One JSON document.
    Json,
    /// SARIF 2.1.0 (GitHub code scanning and other SARIF readers).
    Sarif,
}

/// `llmsec lint` arguments.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Template files or directories (searched recursively for .prompt,
    /// .prompty, .j2, .jinja, .jinja2, .hbs, .handlebars, .mustache, .tmpl,
    /// .tpl, .txt, .md, .yaml, .yml and .json files).
    #[arg(value_name = "PATH", default_value = ".")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
    /// Write the report to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// A prompt schema (YAML, JSON or TOML) every template must follow.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Lint configuration (TOML); default: .llmsec-lint.toml in the
    /// current directory when it exists.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Engine configuration for the engine-based rules (PT005, PT011,
    /// PT012); the engine's defaults when omitted.
    #[arg(long, value_name = "FILE")]
    pub engine_config: Option<PathBuf>,
    /// From which level findings fail the run (exit 1); overrides the
    /// configuration's fail_on.
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOnArg>,
    /// List the rules and exit.
    #[arg(long)]
    pub list_rules: bool,
}

/// `--fail-on` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOnArg {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warning,
    /// Any finding.
    Note,
    /// Never (exit 0 whatever is found).
    Never,
}

impl From<FailOnArg> for FailOn {
    fn from(a: FailOnArg) -> FailOn {
        match a {
            FailOnArg::Error => FailOn::Error,
            FailOnArg::Warning => FailOn::Warning,
            FailOnArg::Note => FailOn::Note,
            FailOnArg::Never => FailOn::Never,
        }
    }
}

const EXTENSIONS: &[&str] = &[
    "prompt",
    "prompty",
    "j2",
    "jinja",
    "jinja2",
    "hbs",
    "handlebars",
    "mustache",
    "tmpl",
    "tpl",
    "txt",
    "md",
    "yaml",
    "yml",
    "json",
];

/// Runs `llmsec lint`.
pub fn run(args: &LintArgs) -> anyhow::Result<ExitCode> {
    if args.list_rules {
        let mut out = String::new();
        for r in RULES {
            out.push_str(&format!("{} {:<30} {:<7} {}\n", r.id, r.name, r.level.as_str(), r.summary));
        }
        common::ignore_broken_pipe(std::io::stdout().write_all(out.as_bytes()))?;
        return Ok(ExitCode::from(EXIT_CLEAN));
    }
    let mut config = load_config(args.config.as_deref())?;
    if let Some(fail_on) = args.fail_on {
        config.fail_on = fail_on.into();
    }
    let schema = args.schema.as_deref().map(PromptSchema::from_path).transpose()?;
    let engine_config = match &args.engine_config {
        Some(path) => SecurityConfig::from_path(path)?,
        None => SecurityConfig::default(),
    };
    let engine = SecurityEngine::try_with_config(engine_config).context("cannot build the engine")?;
    let linter = Linter::with_engine(config, schema, engine)?;

    let mut reports = Vec::new();
    for path in &args.paths {
        let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files).with_context(|| format!("{}", path.display()))?;
            files.sort();
            for file in files {
                let report = lint_file(&linter, &file)?;
                // Under a directory, a YAML/JSON file that is valid but not
                // a prompt config (CI files, package manifests) is skipped.
                if !is_other_config(&report) {
                    reports.push(report);
                }
            }
        } else {
            reports.push(lint_file(&linter, path)?);
        }
    }

    let text = match args.format {
        LintFormat::Human => report::human(&reports),
        LintFormat::Json => format!("{:#}\n", report::json(&reports)),
        LintFormat::Sarif => format!("{:#}\n", report::sarif(&reports, env!("CARGO_PKG_VERSION"))),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => common::ignore_broken_pipe(std::io::stdout().write_all(text.as_bytes()))?,
    }
    let fail_on = linter.config().fail_on;
    let failed = reports.iter().flat_map(|r| &r.findings).any(|f| fail_on.fails(f.level));
    Ok(ExitCode::from(if failed { EXIT_FLAGGED } else { EXIT_CLEAN }))
}

fn load_config(path: Option<&Path>) -> anyhow::Result<LintConfig> {
    let default = Path::new(".llmsec-lint.toml");
    let path = match path {
        Some(p) => p,
        None if default.is_file() => default,
        None => return Ok(LintConfig::default()),
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    LintConfig::from_toml(&text).with_context(|| format!("{}", path.display()))
}

fn lint_file(linter: &Linter, path: &Path) -> anyhow::Result<FileReport> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8 text", path.display()))?;
    Ok(linter.lint(&path.to_string_lossy(), &text))
}

fn is_other_config(report: &FileReport) -> bool {
    report.findings.len() == 1
        && report.findings[0].rule.id == "PT000"
        && report.findings[0].message.starts_with("not a prompt config")
}

/// Files with a template extension under `dir`, hidden directories and
/// build output (`target`, `node_modules`) left out.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                walk(&path, out)?;
            }
        } else if kind.is_file()
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}
