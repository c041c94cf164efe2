//! `llmsec train`: fits the prompt-attack classifier on labelled JSON lines
//! and writes the model file the engine embeds.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use llm_security::classifier::{Example, Label, Model, TrainConfig, TrainingInput, train};
use sha2::{Digest, Sha256};

use crate::common::Format;
use crate::dataset;

/// Arguments of `llmsec train`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TrainArgs {
    /// Another model to train instead of the prompt-attack classifier.
    #[command(subcommand)]
    pub model: Option<TrainModel>,
    /// Labelled JSON lines (`text`, `label` = benign | injection | jailbreak); repeat for several files.
    #[arg(long = "data", required = true, value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Where to write the model.
    #[arg(long, value_name = "FILE", required_unless_present = "check", conflicts_with = "check")]
    pub out: Option<PathBuf>,
    /// Instead of writing a model, check that FILE was trained from exactly
    /// these data files (same names and SHA-256, named when one differs)
    /// and that retraining reproduces it byte for byte. Exit 1 when not.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
    /// Hash bits of the feature space (2^bits buckets).
    #[arg(long, default_value_t = TrainConfig::default().bits)]
    pub bits: u32,
    /// Passes over the data.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// RNG seed (shuffling and the calibration split).
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Text features of the text model: `ngrams`, `concepts`, or both.
    #[arg(long, value_name = "LIST", default_value = "ngrams,concepts", value_parser = crate::common::parse_text_features)]
    pub text_features: llm_security::classifier::TextFeatures,
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
            text_features: self.text_features,
            ..TrainConfig::default()
        }
    }
}

/// The name and SHA-256 of each training file, in the order given.
pub fn training_inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<TrainingInput>> {
    paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            let name = p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
            Ok(TrainingInput { name, sha256: hex::encode(Sha256::digest(&bytes)) })
        })
        .collect()
}

/// Why a committed model does not match the data it would be retrained
/// on, naming each file that was added, removed or changed; `None` when
/// the recorded inputs are exactly `now`.
pub fn input_mismatch(recorded: &[TrainingInput], now: &[TrainingInput]) -> Option<String> {
    let mut problems = Vec::new();
    for n in now {
        match recorded.iter().find(|r| r.name == n.name) {
            None => problems.push(format!("{} is not among the files the model was trained from", n.name)),
            Some(r) if r.sha256 != n.sha256 => problems.push(format!(
                "{} changed since the model was trained (recorded sha256 {}, now {})",
                n.name, r.sha256, n.sha256
            )),
            Some(_) => {}
        }
    }
    for r in recorded.iter().filter(|r| !now.iter().any(|n| n.name == r.name)) {
        problems.push(format!("{} was a training file of the model but is not given now", r.name));
    }
    let order_differs = problems.is_empty() && recorded.iter().map(|r| &r.name).ne(now.iter().map(|n| &n.name));
    if order_differs {
        problems.push("the training files are given in another order than the model was trained from".to_owned());
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Models `llmsec train` builds besides the classifier.
#[derive(Debug, clap::Subcommand)]
pub enum TrainModel {
    /// Train the entity tagger (names, places, organisations) on span data
    /// such as outputs-dev-ner.jsonl and write model/ner.bin.
    Ner(crate::train_ner::NerArgs),
    /// Train the learned harmful-response model on replies labelled
    /// harmful / benign such as outputs-dev-harmful.jsonl and write
    /// model/harmful.bin.
    Harmful(crate::train_harmful::HarmfulArgs),
}

pub fn run(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    match &args.model {
        Some(TrainModel::Ner(ner)) => return crate::train_ner::run(ner),
        Some(TrainModel::Harmful(h)) => return crate::train_harmful::run(h),
        None => {}
    }
    let inputs = training_inputs(&args.data)?;
    if let Some(committed) = &args.check {
        return check(committed, args, &inputs);
    }
    let rows = dataset::load(&args.data)?;
    let examples: Vec<Example> = dataset::examples(&rows);
    let count = |l: Label| examples.iter().filter(|e| e.label == l).count();
    let started = Instant::now();
    let (model, report) = train(&examples, &args.config())?;
    let bytes = model.with_training_inputs(inputs).to_bytes();
    let out = write_model(args.out.as_ref(), &bytes)?;
    let mut w = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let v = serde_json::json!({
                "out": out.display().to_string(),
                "bytes": bytes.len(),
                "seconds": started.elapsed().as_secs_f64(),
                "rows": {"benign": count(Label::Benign), "injection": count(Label::Injection), "jailbreak": count(Label::Jailbreak)},
                "config": args.config(),
                "report": report,
            });
            writeln!(w, "{v}")?;
        }
        Format::Human => {
            writeln!(
                w,
                "trained on {} rows (benign {}, injection {}, jailbreak {}) in {:.1} s",
                report.rows,
                count(Label::Benign),
                count(Label::Injection),
                count(Label::Jailbreak),
                started.elapsed().as_secs_f64()
            )?;
            writeln!(
                w,
                "out-of-source scores: {} folds of {} source groups{}, text temperature {:.3}, NLL {:.4} -> {:.4}",
                report.folds,
                report.groups,
                if report.folds_by_group { "" } else { " (one group: rows split at random, scores in-source)" },
                report.temperature,
                report.nll_uncalibrated,
                report.nll_calibrated
            )?;
            writeln!(
                w,
                "threshold {:.4} on P(attack): out-of-source FPR {:.4}, recall {:.4} (target FPR {})",
                report.threshold, report.calibration_fpr, report.calibration_recall, args.target_fpr
            )?;
            writeln!(w, "combiner:")?;
            for (name, weight) in &report.combiner {
                writeln!(w, "  {name:<28} {weight:>8.3}")?;
            }
            writeln!(w, "wrote {} ({} bytes)", out.display(), bytes.len())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `llmsec train --check`: the committed model's recorded inputs must be
/// the given files, and retraining on them must reproduce it exactly.
fn check(committed: &std::path::Path, args: &TrainArgs, inputs: &[TrainingInput]) -> anyhow::Result<ExitCode> {
    let words = CheckWords {
        kind: "model",
        a_kind: "a model",
        retrain: "`llmsec train` on the current data",
        docs: "train",
        changed: "the training code or rules",
    };
    check_reproduces(
        committed,
        inputs,
        &words,
        |bytes| Ok(Model::from_bytes(bytes)?.training_inputs().to_vec()),
        || {
            let rows = dataset::load(&args.data)?;
            let (fresh, _) = train(&dataset::examples(&rows), &args.config())?;
            Ok(fresh.with_training_inputs(inputs.to_vec()).to_bytes())
        },
    )
}

/// How `--check` names a committed file and what to do about it.
pub(crate) struct CheckWords {
    /// What the file is ("model", "tagger").
    pub kind: &'static str,
    /// The same with its article, for a file this build cannot read.
    pub a_kind: &'static str,
    /// The command that rebuilds it.
    pub retrain: &'static str,
    /// Its section in docs/CLI.md.
    pub docs: &'static str,
    /// What changed when the data did not.
    pub changed: &'static str,
}

/// Writes a trained model to `--out` (which clap requires unless `--check`
/// or `--cross-source` is given) and answers the path.
pub(crate) fn write_model<'a>(out: Option<&'a PathBuf>, bytes: &[u8]) -> anyhow::Result<&'a PathBuf> {
    let out = out.context("--out is required")?;
    std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out)
}

/// `--check` for any committed model: the training files must be the ones
/// the file records (each change named), and training again on them must
/// give the file byte for byte. `recorded` reads the file's training
/// inputs; `retrain` builds it anew. Exit 1 with the reason on stderr when
/// either fails.
pub(crate) fn check_reproduces(
    committed: &std::path::Path,
    inputs: &[TrainingInput],
    words: &CheckWords,
    recorded: impl FnOnce(&[u8]) -> anyhow::Result<Vec<TrainingInput>>,
    retrain: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(committed).with_context(|| format!("cannot read {}", committed.display()))?;
    let recorded = recorded(&bytes)
        .with_context(|| format!("{} is not {} this build reads", committed.display(), words.a_kind))?;
    if let Some(why) = input_mismatch(&recorded, inputs) {
        eprintln!(
            "{}: the training data differ from the data the {} was built from: {why}. \
             Retrain with {} and commit the model (docs/CLI.md, \"{}\").",
            committed.display(),
            words.kind,
            words.retrain,
            words.docs
        );
        return Ok(ExitCode::from(1));
    }
    if retrain()? != bytes {
        eprintln!(
            "{}: the data match the recorded SHA-256s, but retraining gives a different {}: \
             {} changed since it was built. Retrain and commit it.",
            committed.display(),
            words.kind,
            words.changed
        );
        return Ok(ExitCode::from(1));
    }
    println!("{}: reproduced byte for byte from {} training files", committed.display(), inputs.len());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, sha: &str) -> TrainingInput {
        TrainingInput { name: name.into(), sha256: sha.into() }
    }

    #[test]
    fn a_changed_added_or_missing_file_is_named() {
        let recorded = [input("a.jsonl", "11"), input("b.jsonl", "22")];
        assert_eq!(input_mismatch(&recorded, &recorded), None);
        let changed = input_mismatch(&recorded, &[input("a.jsonl", "11"), input("b.jsonl", "33")]).unwrap_or_default();
        assert!(changed.contains("b.jsonl changed") && changed.contains("22") && changed.contains("33"), "{changed}");
        assert!(!changed.contains("a.jsonl"), "{changed}");
        let added =
            input_mismatch(&recorded, &[input("a.jsonl", "11"), input("b.jsonl", "22"), input("c.jsonl", "44")])
                .unwrap_or_default();
        assert!(added.contains("c.jsonl is not among"), "{added}");
        let missing = input_mismatch(&recorded, &[input("a.jsonl", "11")]).unwrap_or_default();
        assert!(missing.contains("b.jsonl was a training file"), "{missing}");
        let reordered =
            input_mismatch(&recorded, &[input("b.jsonl", "22"), input("a.jsonl", "11")]).unwrap_or_default();
        assert!(reordered.contains("order"), "{reordered}");
    }

    #[test]
    fn inputs_are_named_by_file_name_and_hashed() {
        let dir = std::env::temp_dir().join(format!("llmsec-train-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("rows.jsonl");
        let _ = std::fs::write(&p, "abc");
        let got = training_inputs(std::slice::from_ref(&p)).map_err(|e| e.to_string());
        assert_eq!(
            got,
            Ok(vec![input("rows.jsonl", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")])
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
