//! `llmsec train harmful`: fits the learned harmful-response model on
//! labelled replies (`text`, `label` = harmful | benign, `category`,
//! optional `context` = the user turn, `source`) and writes the model the
//! engine embeds (`model/harmful.bin`).
//!
//! Training prints recall at 1 % and 2 % benign FPR of its out-of-fold
//! scores (random folds), overall, per source group and per category.
//! `--cross-source` instead holds out each source group once, trains on
//! the others and reports the same figures on the held-out group.
//! `--check` verifies a committed model like the other two train commands.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, anyhow};
use clap::Args;
use llm_security::harmful_model::{
    HarmExample, HarmPrepared, HarmTrainConfig, HarmfulModel, category_of, fit_and_score, prepare, recall_at_fpr,
    train, train_prepared,
};
use serde::{Deserialize, Serialize};

use crate::common::Format;
use crate::train::{CheckWords, check_reproduces, training_inputs, write_model};

/// The benign false-positive rates the reports give recall at.
const FPRS: [f64; 2] = [0.01, 0.02];

/// Arguments of `llmsec train harmful`.
#[derive(Debug, Args)]
pub struct HarmfulArgs {
    /// Labelled JSON lines such as outputs-dev-harmful.jsonl; repeat for several files.
    #[arg(long = "data", required = true, value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Where to write the model.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["check", "cross_source"], conflicts_with_all = ["check", "cross_source"])]
    pub out: Option<PathBuf>,
    /// Check that FILE was trained from exactly these files and that
    /// retraining reproduces it byte for byte. Exit 1 when not.
    #[arg(long, value_name = "FILE", conflicts_with = "cross_source")]
    pub check: Option<PathBuf>,
    /// Hold out each source group once and report recall at 1 % and 2 %
    /// FPR on it; writes no model.
    #[arg(long)]
    pub cross_source: bool,
    /// Hash bits of the feature space (2^bits buckets per head).
    #[arg(long, default_value_t = HarmTrainConfig::default().bits)]
    pub bits: u32,
    /// Passes over the data.
    #[arg(long, default_value_t = HarmTrainConfig::default().epochs)]
    pub epochs: usize,
    /// L2 penalty.
    #[arg(long, default_value_t = HarmTrainConfig::default().l2)]
    pub l2: f32,
    /// RNG seed (shuffles and folds).
    #[arg(long, default_value_t = HarmTrainConfig::default().seed)]
    pub seed: u64,
    /// Benign false-positive rate the model's threshold is chosen for.
    #[arg(long, default_value_t = HarmTrainConfig::default().target_fpr)]
    pub target_fpr: f64,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

impl HarmfulArgs {
    fn config(&self) -> HarmTrainConfig {
        HarmTrainConfig {
            bits: self.bits,
            epochs: self.epochs,
            l2: self.l2,
            seed: self.seed,
            target_fpr: self.target_fpr,
            ..HarmTrainConfig::default()
        }
    }
}

#[derive(Debug, Deserialize)]
struct Row {
    text: String,
    label: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

/// A labelled reply and what the report groups it by.
struct Labelled {
    example: HarmExample,
    /// The dataset's category names (a moderation row may list several).
    categories: Vec<String>,
}

fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<Labelled>> {
    let mut out = Vec::new();
    for p in paths {
        let body = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        for (n, line) in body.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = || format!("{}:{}", p.display(), n + 1);
            let row: Row =
                serde_json::from_str(line).with_context(|| format!("{}: not a harmful-response row", at()))?;
            let harmful = match row.label.as_str() {
                "harmful" => true,
                "benign" => false,
                other => return Err(anyhow!("{}: label {other:?} is neither harmful nor benign", at())),
            };
            let category = row.category.unwrap_or_else(|| "none".to_owned());
            let source = row.source.unwrap_or_else(|| p.display().to_string());
            out.push(Labelled {
                example: HarmExample {
                    text: row.text,
                    prompt: row.context.filter(|c| !c.is_empty()),
                    harmful,
                    category: if harmful { category_of(&category) } else { None },
                    group: source.split(':').next().unwrap_or(&source).to_owned(),
                },
                categories: category.split(',').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect(),
            });
        }
    }
    if out.is_empty() {
        return Err(anyhow!("no rows in the --data files"));
    }
    Ok(out)
}

/// Recall at each of [`FPRS`] for one set of rows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Line {
    pub(crate) name: String,
    pub(crate) positives: usize,
    pub(crate) benign: usize,
    /// Recall at 1 % and 2 % FPR (the threshold set on this line's benign
    /// rows; for a category, on its group's benign rows).
    pub(crate) recall: Vec<Option<f64>>,
}

/// What [`lines`] needs of a scored row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScoredRow<'a> {
    pub(crate) harmful: bool,
    pub(crate) group: &'a str,
    pub(crate) categories: &'a [String],
}

impl Labelled {
    fn scored(&self) -> ScoredRow<'_> {
        ScoredRow { harmful: self.example.harmful, group: &self.example.group, categories: &self.categories }
    }
}

/// Recall at [`FPRS`]: overall, per group (threshold from the group's
/// benign rows) and per category within each group (same threshold).
pub(crate) fn lines(rows: &[ScoredRow<'_>], scores: &[f64]) -> Vec<Line> {
    let positive: Vec<bool> = rows.iter().map(|r| r.harmful).collect();
    let mut out = vec![Line {
        name: "all".into(),
        positives: positive.iter().filter(|p| **p).count(),
        benign: positive.iter().filter(|p| !**p).count(),
        recall: FPRS.iter().map(|&f| recall_at_fpr(scores, &positive, f).map(|r| r.0)).collect(),
    }];
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        groups.entry(r.group).or_default().push(i);
    }
    for (g, idx) in &groups {
        let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
        let p: Vec<bool> = idx.iter().map(|&i| positive[i]).collect();
        let benign: Vec<f64> = s.iter().zip(&p).filter(|(_, p)| !**p).map(|(s, _)| *s).collect();
        out.push(Line {
            name: (*g).to_owned(),
            positives: p.iter().filter(|p| **p).count(),
            benign: benign.len(),
            recall: FPRS.iter().map(|&f| recall_at_fpr(&s, &p, f).map(|r| r.0)).collect(),
        });
        let thresholds: Vec<f64> =
            FPRS.iter().map(|&f| llm_security::classifier::threshold_for_fpr(&benign, f)).collect();
        let mut cats: BTreeMap<&str, (usize, Vec<usize>)> = BTreeMap::new();
        for &i in idx {
            if !positive[i] {
                continue;
            }
            for c in rows[i].categories {
                let e = cats.entry(c.as_str()).or_insert_with(|| (0, vec![0; FPRS.len()]));
                e.0 += 1;
                for (hits, t) in e.1.iter_mut().zip(&thresholds) {
                    *hits += usize::from(scores[i] >= *t);
                }
            }
        }
        for (c, (n, hits)) in cats {
            out.push(Line {
                name: format!("  {c}"),
                positives: n,
                benign: 0,
                recall: hits.iter().map(|&h| (!benign.is_empty()).then(|| h as f64 / n as f64)).collect(),
            });
        }
    }
    out
}

pub(crate) fn write_lines(w: &mut impl Write, lines: &[Line]) -> std::io::Result<()> {
    writeln!(w, "  {:<36} {:>9} {:>7} {:>12} {:>12}", "", "positives", "benign", "recall@1%FPR", "recall@2%FPR")?;
    let fig = |x: &Option<f64>| x.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    for l in lines {
        let benign = if l.benign == 0 { String::new() } else { l.benign.to_string() };
        writeln!(
            w,
            "  {:<36} {:>9} {:>7} {:>12} {:>12}",
            crate::common::printable(&l.name),
            l.positives,
            benign,
            fig(&l.recall[0]),
            fig(&l.recall[1])
        )?;
    }
    Ok(())
}

pub fn run(args: &HarmfulArgs) -> anyhow::Result<ExitCode> {
    let inputs = training_inputs(&args.data)?;
    let rows = load(&args.data)?;
    let examples: Vec<HarmExample> = rows.iter().map(|r| r.example.clone()).collect();
    let cfg = args.config();
    if let Some(committed) = &args.check {
        let words = CheckWords {
            kind: "model",
            a_kind: "a harmful-response model",
            retrain: "`llmsec train harmful`",
            docs: "train harmful",
            changed: "the training code, features or harmful-content rules",
        };
        return check_reproduces(
            committed,
            &inputs,
            &words,
            |bytes| Ok(HarmfulModel::from_bytes(bytes)?.training_inputs().to_vec()),
            || {
                let (fresh, _) = train(&examples, &cfg)?;
                Ok(fresh.with_training_inputs(inputs.clone()).to_bytes())
            },
        );
    }
    let started = Instant::now();
    let prepared = prepare(&examples, cfg.bits)?;
    if args.cross_source {
        return cross_source(args, &rows, &prepared);
    }
    let (model, report) = train_prepared(&prepared, &cfg)?;
    let bytes = model.with_training_inputs(inputs).to_bytes();
    let out = write_model(args.out.as_ref(), &bytes)?;
    let scored: Vec<ScoredRow<'_>> = rows.iter().map(Labelled::scored).collect();
    let oof = lines(&scored, &report.oof_probability);
    let rules = rules_line(&rows, &prepared);
    let mut w = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let v = serde_json::json!({
                "out": out.display().to_string(),
                "bytes": bytes.len(),
                "seconds": started.elapsed().as_secs_f64(),
                "config": cfg,
                "report": report,
                "out_of_fold": oof,
                "rules_only": rules,
            });
            writeln!(w, "{v}")?;
        }
        Format::Human => {
            writeln!(
                w,
                "trained on {} rows in {:.1} s; {} random folds for the out-of-fold scores",
                report.rows,
                started.elapsed().as_secs_f64(),
                report.folds
            )?;
            writeln!(
                w,
                "threshold {:.4} on P(harmful) (Platt a {:.3}, b {:.3}): out-of-fold FPR {:.4}, recall {:.4} (target FPR {})",
                report.threshold, report.platt[0], report.platt[1], report.oof_fpr, report.oof_recall, cfg.target_fpr
            )?;
            writeln!(w, "rules alone (medium or above): {rules}")?;
            writeln!(w, "out-of-fold recall at 1 % and 2 % benign FPR (random folds, all groups in training):")?;
            write_lines(&mut w, &oof)?;
            writeln!(w, "wrote {} ({} bytes)", out.display(), bytes.len())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Recall and FPR of the rules alone, for comparison.
fn rules_line(rows: &[Labelled], prepared: &[HarmPrepared]) -> String {
    let (mut tp, mut pos, mut fp, mut neg) = (0usize, 0usize, 0usize, 0usize);
    for (r, p) in rows.iter().zip(prepared) {
        if r.example.harmful {
            pos += 1;
            tp += usize::from(p.rules_flagged);
        } else {
            neg += 1;
            fp += usize::from(p.rules_flagged);
        }
    }
    format!(
        "recall {:.3} ({tp}/{pos}), FPR {:.3} ({fp}/{neg})",
        tp as f64 / pos.max(1) as f64,
        fp as f64 / neg.max(1) as f64
    )
}

/// Leave-one-source-group-out figures.
fn cross_source(args: &HarmfulArgs, rows: &[Labelled], prepared: &[HarmPrepared]) -> anyhow::Result<ExitCode> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        groups.entry(r.example.group.as_str()).or_default().push(i);
    }
    if groups.len() < 2 {
        return Err(anyhow!("--cross-source needs at least two source groups; the data has {}", groups.len()));
    }
    let cfg = args.config();
    let mut per_group = Vec::new();
    for (g, held) in &groups {
        let train_idx: Vec<usize> = (0..rows.len()).filter(|i| held.binary_search(i).is_err()).collect();
        let z = fit_and_score(prepared, &train_idx, held, &cfg);
        let scores: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
        let test: Vec<ScoredRow<'_>> = held.iter().map(|&i| rows[i].scored()).collect();
        per_group.push(((*g).to_owned(), lines(&test, &scores)));
    }
    let mut w = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let v: Vec<_> = per_group.iter().map(|(g, l)| serde_json::json!({"held_out": g, "lines": l})).collect();
            writeln!(w, "{}", serde_json::json!({"config": cfg, "groups": v}))?;
        }
        Format::Human => {
            for (g, l) in &per_group {
                writeln!(w, "held out: {g} (model trained on the other groups; threshold set on its benign rows)")?;
                write_lines(&mut w, &l[1..])?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(group: &str, harmful: bool, cats: &[&str]) -> Labelled {
        Labelled {
            example: HarmExample { text: String::new(), prompt: None, harmful, category: None, group: group.into() },
            categories: cats.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn lines_give_recall_per_group_and_category_at_the_group_threshold() {
        let rows = [
            labelled("a", true, &["x"]),
            labelled("a", true, &["y"]),
            labelled("a", false, &["none"]),
            labelled("a", false, &["none"]),
            labelled("b", true, &["x", "z"]),
            labelled("b", false, &["none"]),
        ];
        let scored: Vec<ScoredRow<'_>> = rows.iter().map(Labelled::scored).collect();
        let scores = [0.9, 0.4, 0.5, 0.1, 0.3, 0.2];
        let l = lines(&scored, &scores);
        let names: Vec<&str> = l.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["all", "a", "  x", "  y", "b", "  x", "  z"]);
        // Group a at 1 % FPR: no benign row may pass, threshold just above 0.5.
        assert_eq!(l[1].recall[0], Some(0.5));
        assert_eq!(l[2].recall[0], Some(1.0));
        assert_eq!(l[3].recall[0], Some(0.0));
        // Group b: the one positive (0.3) is above its benign row (0.2).
        assert_eq!(l[5].recall[0], Some(1.0));
        assert_eq!((l[0].positives, l[0].benign), (3, 3));
    }
}
