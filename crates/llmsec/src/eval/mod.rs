//! `llmsec eval`: detection accuracy and latency on labelled JSON-lines
//! datasets (the format of `../shared/datasets`).
//!
//! Prompt rows (`label`: injection, jailbreak or benign) go through
//! `analyze_input`, or `analyze_context` when they carry a `context` (the
//! kind of content: email, webpage, tool_output, …); those rows are also
//! counted per context kind. The predicted label is benign when the analysis is
//! secure, else jailbreak when the highest-confidence threat that set the
//! verdict is a jailbreak, else injection. Completion rows carry `spans`
//! (`label`: pii or benign) and go through `validate_output`; an expected
//! span counts as found when a sensitive-data threat overlaps it, after its
//! character offsets are turned into byte offsets.
//!
//! Latency is the wall time around each engine call, on one thread, after
//! one warm-up call of each kind; throughput is rows per second of that
//! engine time (reading and parsing the file are not counted).
//!
//! Harmful-response and unsafe-code rows (see [`harm`]) go through
//! `validate_output` (with the row's `context` as the prompt) and are
//! reported per category, source group and language.
//!
//! With `--evasions`, every prompt row is also run through each transform
//! of [`crate::evasions`] and analyzed again. For attack rows (injection or
//! jailbreak) that gives the recall after the transform: a row is caught
//! when the verdict is not allow, as for the clean text. Benign rows get
//! the same transforms as a control: the share flagged after a transform
//! tells whether its recall comes from reading the payload or from flagging
//! the obfuscation (or its wrapper) whatever it hides. A transform whose
//! output exceeds `max_input_bytes` skips that row. These extra calls are
//! not part of the latency figures.
//!
//! This file holds the arguments and the entry point; `run` runs the engine
//! over the rows and collects the counts, `report` renders the text and JSON
//! reports.

mod harm;
mod report;
mod run;

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use self::report::write_human;
use self::run::Evaluator;
use crate::common::{EngineArgs, Format, ignore_broken_pipe};

/// Arguments of `llmsec eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A labelled JSON-lines file (`-` for stdin); repeat for more.
    #[arg(long = "data", value_name = "FILE.jsonl", required = true)]
    pub data: Vec<PathBuf>,

    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,

    /// Evaluate at most N rows of each file (counted after --label).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Evaluate only rows with this label.
    #[arg(long, value_enum, value_name = "LABEL")]
    pub label: Option<Label>,

    /// List up to N false negatives and N false positives.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub errors: usize,

    /// List the N slowest rows (engine time), to find inputs worth profiling.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub slowest: usize,

    /// Also perturb every prompt row with each evasion transform (homoglyphs,
    /// zero-width, tag smuggling, base64, hex, leetspeak, random case,
    /// intra-word separators, line splits, ROT13) and report the recall on
    /// attack rows per transform beside the clean recall, with the benign
    /// rows flagged after the same transform as a control.
    #[arg(long)]
    pub evasions: bool,

    /// Seed of the evasion transforms (decimal or 0x-hex); the same seed
    /// gives the same perturbations.
    #[arg(long, value_name = "N", default_value = "0x5EED", value_parser = parse_seed, requires = "evasions")]
    pub evasion_seed: u64,

    /// Cross-source evaluation of the classifier: each source group of the
    /// --data files is held out once, the classifier trained on the rest
    /// (plus --train-only files), and scored on it; prints ROC-AUC,
    /// recall at 1% and 0.1% benign FPR, calibration and per-source tables.
    #[arg(long, conflicts_with = "evasions")]
    pub cross_source: bool,

    /// Extra training data for --cross-source: added to every fold, never scored.
    #[arg(long, value_name = "FILE.jsonl", requires = "cross_source")]
    pub train_only: Vec<PathBuf>,

    /// Text features of the classifier trained by --cross-source (`ngrams`, `concepts`).
    #[arg(long, value_name = "LIST", default_value = "ngrams,concepts", value_parser = crate::common::parse_text_features, requires = "cross_source")]
    pub text_features: llm_security::classifier::TextFeatures,

    #[command(flatten)]
    pub engine: EngineArgs,
}

/// A row's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Label {
    /// Neither an attack nor a leak.
    Benign,
    /// Prompt injection.
    Injection,
    /// Jailbreak.
    Jailbreak,
    /// A completion with personal data.
    Pii,
}

impl Label {
    /// The three prompt labels, in confusion-matrix order.
    const PROMPT: [Label; 3] = [Label::Benign, Label::Injection, Label::Jailbreak];

    fn parse(s: &str) -> Option<Label> {
        match s {
            "benign" => Some(Label::Benign),
            "injection" => Some(Label::Injection),
            "jailbreak" => Some(Label::Jailbreak),
            "pii" => Some(Label::Pii),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Label::Benign => "benign",
            Label::Injection => "injection",
            Label::Jailbreak => "jailbreak",
            Label::Pii => "pii",
        }
    }

    /// Row/column of the prompt confusion matrix.
    fn index(self) -> usize {
        match self {
            Label::Benign | Label::Pii => 0,
            Label::Injection => 1,
            Label::Jailbreak => 2,
        }
    }

    fn is_attack(self) -> bool {
        matches!(self, Label::Injection | Label::Jailbreak)
    }
}

/// Runs `llmsec eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    if args.cross_source {
        let cfg = llm_security::classifier::TrainConfig {
            text_features: args.text_features,
            ..llm_security::classifier::TrainConfig::default()
        };
        return crate::crossval::run(&args.data, &args.train_only, &cfg, args.format);
    }
    let engine = args.engine.build()?;
    // One call of each kind first, so one-time lazy set-up inside the engine
    // is not counted as the latency of the first row.
    engine.analyze_input_sync("warm-up")?;
    engine.validate_output_sync("warm-up")?;
    let mut ev = Evaluator::new(&engine, args.errors, args.slowest);
    if args.evasions {
        ev = ev.with_evasions(args.evasion_seed);
    }
    for path in &args.data {
        ev.file(path, args.limit, args.label)?;
    }
    let report = ev.finish(args);
    let mut out = BufWriter::new(io::stdout().lock());
    let written = match args.format {
        Format::Human => write_human(&mut out, &report),
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &report).map_err(io::Error::from).and_then(|()| writeln!(out))
        }
    }
    .and_then(|()| out.flush());
    ignore_broken_pipe(written).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// `--evasion-seed`: a decimal or `0x`-prefixed hexadecimal `u64`.
fn parse_seed(s: &str) -> Result<u64, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("{e} (expected a decimal or 0x-prefixed hexadecimal number below 2^64)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_security::{SecurityConfig, SecurityEngine};

    /// One engine per test process: building one compiles every pattern,
    /// which takes seconds in an unoptimized build.
    static ENGINE: std::sync::LazyLock<SecurityEngine> =
        std::sync::LazyLock::new(|| SecurityEngine::with_config(SecurityConfig::default()));

    pub(super) fn engine() -> SecurityEngine {
        ENGINE.clone()
    }

    /// Writes `body` to a fresh file in the temp dir and returns its path.
    pub(super) fn dataset(name: &str, body: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("llmsec-eval-{}-{name}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("data.jsonl");
        assert!(std::fs::write(&path, body).is_ok());
        path
    }

    pub(super) fn args(data: Vec<PathBuf>) -> EvalArgs {
        EvalArgs {
            data,
            format: Format::Json,
            limit: None,
            label: None,
            errors: 5,
            slowest: 2,
            evasions: false,
            evasion_seed: 0x5EED,
            cross_source: false,
            train_only: Vec::new(),
            text_features: llm_security::classifier::TextFeatures::default(),
            engine: EngineArgs::default(),
        }
    }

    #[test]
    fn evasion_seed_is_decimal_or_hex_and_needs_evasions() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            eval: EvalArgs,
        }
        let parse = |extra: &[&str]| {
            Cli::try_parse_from(["eval", "--data", "x.jsonl"].iter().chain(extra))
                .map(|c| (c.eval.evasions, c.eval.evasion_seed))
        };
        assert_eq!(parse(&[]).ok(), Some((false, 0x5EED)));
        assert_eq!(parse(&["--evasions"]).ok(), Some((true, 0x5EED)));
        assert_eq!(parse(&["--evasions", "--evasion-seed", "0xff"]).ok(), Some((true, 255)));
        assert_eq!(parse(&["--evasions", "--evasion-seed", "42"]).ok(), Some((true, 42)));
        assert!(parse(&["--evasion-seed", "42"]).is_err(), "the seed alone is a usage error");
        assert!(parse(&["--evasions", "--evasion-seed", "0xZZ"]).is_err());
        assert!(parse(&["--evasions", "--evasion-seed", "-1"]).is_err());
    }

    #[test]
    fn labels_parse_and_index_the_confusion_matrix() {
        for l in Label::PROMPT {
            assert_eq!(Label::parse(l.as_str()), Some(l));
            assert_eq!(Label::PROMPT[l.index()], l);
        }
        assert_eq!(Label::parse("pii"), Some(Label::Pii));
        assert_eq!(Label::parse("Injection"), None);
    }
}
