//! `llmsec train`: fits the prompt-attack classifier on labelled JSON lines
//! and writes the model file the engine embeds.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use llm_security::classifier::{Example, Label, TrainConfig, train};

use crate::common::Format;
use crate::dataset;

/// Arguments of `llmsec train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Labelled JSON lines (`text`, `label` = benign | injection | jailbreak); repeat for several files.
    #[arg(long = "data", required = true, value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Where to write the model.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Hash bits of the feature space (2^bits buckets).
    #[arg(long, default_value_t = TrainConfig::default().bits)]
    pub bits: u32,
    /// Passes over the data.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// RNG seed (shuffling and the calibration split).
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Benign false-positive rate the default threshold is chosen for.
    #[arg(long, default_value_t = TrainConfig::default().target_fpr)]
    pub target_fpr: f64,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

impl TrainArgs {
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            bits: self.bits,
            epochs: self.epochs,
            seed: self.seed,
            target_fpr: self.target_fpr,
            ..TrainConfig::default()
        }
    }
}

pub fn run(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    let rows = dataset::load(&args.data)?;
    let examples: Vec<Example> = dataset::examples(&rows);
    let count = |l: Label| examples.iter().filter(|e| e.label == l).count();
    let started = Instant::now();
    let (model, report) = train(&examples, &args.config())?;
    let bytes = model.to_bytes();
    std::fs::write(&args.out, &bytes).with_context(|| format!("cannot write {}", args.out.display()))?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let v = serde_json::json!({
                "out": args.out.display().to_string(),
                "bytes": bytes.len(),
                "seconds": started.elapsed().as_secs_f64(),
                "rows": {"benign": count(Label::Benign), "injection": count(Label::Injection), "jailbreak": count(Label::Jailbreak)},
                "config": args.config(),
                "report": report,
            });
            writeln!(out, "{v}")?;
        }
        Format::Human => {
            writeln!(
                out,
                "trained on {} rows (benign {}, injection {}, jailbreak {}) in {:.1} s",
                report.rows,
                count(Label::Benign),
                count(Label::Injection),
                count(Label::Jailbreak),
                started.elapsed().as_secs_f64()
            )?;
            writeln!(
                out,
                "out-of-source scores: {} folds of {} source groups{}, text temperature {:.3}, NLL {:.4} -> {:.4}",
                report.folds,
                report.groups,
                if report.folds_by_group { "" } else { " (one group: rows split at random, scores in-source)" },
                report.temperature,
                report.nll_uncalibrated,
                report.nll_calibrated
            )?;
            writeln!(
                out,
                "threshold {:.4} on P(attack): out-of-source FPR {:.4}, recall {:.4} (target FPR {})",
                report.threshold, report.calibration_fpr, report.calibration_recall, args.target_fpr
            )?;
            writeln!(out, "combiner:")?;
            for (name, w) in &report.combiner {
                writeln!(out, "  {name:<28} {w:>8.3}")?;
            }
            writeln!(out, "wrote {} ({} bytes)", args.out.display(), bytes.len())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
