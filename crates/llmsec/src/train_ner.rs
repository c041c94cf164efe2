//! `llmsec train ner`: fits the entity tagger on span-labelled JSON lines
//! (`text`, `spans` = [{type, start, end}] in character offsets, `source`,
//! `lang`) and writes the model the engine embeds (`model/ner.bin`).
//!
//! `--cross-source` instead holds out each source group once, trains on
//! the others and scores the held-out rows with the span metrics of
//! [`crate::spans`] (the figures docs/PERFORMANCE.md reports). `--check`
//! verifies a committed model as `llmsec train --check` does: the recorded
//! training files and their SHA-256 first, then a byte-for-byte retrain.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, anyhow};
use clap::Args;
use llm_security::ner::{EntityKind, NerTrainConfig, Sentence, Tagger, train};
use serde::Deserialize;

use crate::common::Format;
use crate::spans::{SpanTally, TypedSpan, canonical_type, write_table};
use crate::train::{CheckWords, check_reproduces, training_inputs, write_model};

/// Arguments of `llmsec train ner`.
#[derive(Debug, Args)]
pub struct NerArgs {
    /// Span-labelled JSON lines; repeat for several files.
    #[arg(long = "data", required = true, value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Where to write the model.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["check", "cross_source"], conflicts_with_all = ["check", "cross_source"])]
    pub out: Option<PathBuf>,
    /// Check that FILE was trained from exactly these files and that
    /// retraining reproduces it byte for byte. Exit 1 when not.
    #[arg(long, value_name = "FILE", conflicts_with = "cross_source")]
    pub check: Option<PathBuf>,
    /// Hold out each source group once and report span precision and
    /// recall on it; writes no model.
    #[arg(long)]
    pub cross_source: bool,
    /// Passes over the data.
    #[arg(long, default_value_t = NerTrainConfig::default().epochs)]
    pub epochs: usize,
    /// Seed of the per-epoch shuffle.
    #[arg(long, default_value_t = NerTrainConfig::default().seed)]
    pub seed: u64,
    /// Averaged weights below this are dropped (smaller model).
    #[arg(long, default_value_t = NerTrainConfig::default().prune)]
    pub prune: f64,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

impl NerArgs {
    fn config(&self) -> NerTrainConfig {
        NerTrainConfig { epochs: self.epochs, seed: self.seed, prune: self.prune }
    }
}

#[derive(Debug, Deserialize)]
struct Row {
    text: String,
    #[serde(default)]
    spans: Vec<RowSpan>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    lang: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RowSpan {
    #[serde(rename = "type")]
    kind: String,
    start: usize,
    end: usize,
}

/// A labelled sentence with its source group and language.
struct Labelled {
    sentence: Sentence,
    group: String,
    lang: String,
}

/// Reads the files: PERSON, LOCATION (and GPE), ORGANIZATION spans, in
/// byte offsets; other span types are ignored.
fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<Labelled>> {
    let mut out = Vec::new();
    for p in paths {
        let body = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        for (n, line) in body.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = || format!("{}:{}", p.display(), n + 1);
            let row: Row = serde_json::from_str(line).with_context(|| format!("{}: not a span row", at()))?;
            let bounds: Vec<usize> =
                row.text.char_indices().map(|(i, _)| i).chain(std::iter::once(row.text.len())).collect();
            let mut spans = Vec::new();
            for s in &row.spans {
                let Some(kind) = EntityKind::parse(&s.kind) else { continue };
                match (bounds.get(s.start), bounds.get(s.end)) {
                    (Some(&b0), Some(&b1)) if b0 < b1 => spans.push((kind, b0, b1)),
                    _ => return Err(anyhow!("{}: span {}..{} is outside the text", at(), s.start, s.end)),
                }
            }
            out.push(Labelled {
                sentence: Sentence { text: row.text, spans },
                group: row.source.unwrap_or_else(|| p.display().to_string()),
                lang: row.lang.unwrap_or_else(|| "?".to_owned()),
            });
        }
    }
    if out.is_empty() {
        return Err(anyhow!("no rows in the --data files"));
    }
    Ok(out)
}

/// The confidence thresholds `--cross-source` reports.
const SWEEP: [f64; 6] = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95];

/// Span tally of `tagger` on `rows`, counting predictions at or above `min_confidence`.
fn score(tagger: &Tagger, rows: &[&Labelled], min_confidence: f64, tally: &mut SpanTally) {
    let scored = ["LOCATION", "ORGANIZATION", "PERSON"];
    for r in rows {
        let gold: Vec<TypedSpan> =
            r.sentence.spans.iter().filter_map(|&(k, s, e)| canonical_type(k.label()).map(|t| (t, s, e))).collect();
        let predicted: Vec<TypedSpan> = tagger
            .tag(&r.sentence.text)
            .iter()
            .filter(|e| e.confidence >= min_confidence)
            .filter_map(|e| canonical_type(e.kind.label()).map(|t| (t, e.start, e.end)))
            .collect();
        tally.row(&r.lang, &gold, &predicted, &scored);
    }
}

pub fn run(args: &NerArgs) -> anyhow::Result<ExitCode> {
    let inputs = training_inputs(&args.data)?;
    let rows = load(&args.data)?;
    let sentences: Vec<Sentence> = rows.iter().map(|r| r.sentence.clone()).collect();
    if args.cross_source {
        return cross_source(args, &rows);
    }
    if let Some(committed) = &args.check {
        let words = CheckWords {
            kind: "tagger",
            a_kind: "an entity tagger",
            retrain: "`llmsec train ner`",
            docs: "train ner",
            changed: "the training code, features or gazetteer",
        };
        return check_reproduces(
            committed,
            &inputs,
            &words,
            |bytes| Ok(Tagger::from_bytes(bytes)?.training_inputs().to_vec()),
            || {
                let (fresh, _) = train(&sentences, &args.config())?;
                Ok(fresh.with_training_inputs(inputs.clone()).to_bytes())
            },
        );
    }
    let started = Instant::now();
    let (tagger, report) = train(&sentences, &args.config())?;
    let bytes = tagger.with_training_inputs(inputs).to_bytes();
    let out = write_model(args.out.as_ref(), &bytes)?;
    let mut w = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let v = serde_json::json!({
                "out": out.display().to_string(),
                "bytes": bytes.len(),
                "seconds": started.elapsed().as_secs_f64(),
                "config": args.config(),
                "report": report,
            });
            writeln!(w, "{v}")?;
        }
        Format::Human => {
            writeln!(
                w,
                "trained on {} sentences ({} candidate runs) in {:.1} s; {} of {} entity tokens are not candidates",
                report.sentences,
                report.segments,
                started.elapsed().as_secs_f64(),
                report.unreachable_tokens,
                report.entity_tokens
            )?;
            writeln!(w, "features: {} seen, {} kept", report.features_seen, report.features_kept)?;
            writeln!(w, "wrote {} ({} bytes)", out.display(), bytes.len())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Leave-one-source-out span figures.
fn cross_source(args: &NerArgs, rows: &[Labelled]) -> anyhow::Result<ExitCode> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        groups.entry(r.group.as_str()).or_default().push(i);
    }
    if groups.len() < 2 {
        return Err(anyhow!("--cross-source needs at least two source groups; the data has {}", groups.len()));
    }
    let mut total = SpanTally::default();
    let mut sweep = vec![SpanTally::default(); SWEEP.len()];
    let mut per_group = Vec::new();
    for (group, held) in &groups {
        let train_rows: Vec<Sentence> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| held.binary_search(i).is_err())
            .map(|(_, r)| r.sentence.clone())
            .collect();
        let (tagger, _) = train(&train_rows, &args.config())?;
        let test: Vec<&Labelled> = held.iter().map(|&i| &rows[i]).collect();
        let mut tally = SpanTally::default();
        score(&tagger, &test, 0.0, &mut tally);
        total.merge(&tally);
        for (t, s) in SWEEP.iter().zip(&mut sweep) {
            score(&tagger, &test, *t, s);
        }
        per_group.push((group.to_string(), held.len(), tally));
    }
    let mut w = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let groups: Vec<_> = per_group
                .iter()
                .map(|(g, n, t)| serde_json::json!({"group": g, "rows": n, "spans": t.lines()}))
                .collect();
            let sweep: Vec<_> = SWEEP
                .iter()
                .zip(&sweep)
                .map(|(t, s)| {
                    let all: Vec<_> = s.lines().into_iter().filter(|l| l.lang == "all").collect();
                    serde_json::json!({"min_confidence": t, "spans": all})
                })
                .collect();
            let v = serde_json::json!({"config": args.config(), "held_out": total.lines(), "sweep": sweep, "groups": groups});
            writeln!(w, "{v}")?;
        }
        Format::Human => {
            writeln!(
                w,
                "held out by source ({} groups; each scored by a tagger trained on the others):",
                groups.len()
            )?;
            write_table(&mut w, &total.lines())?;
            for (t, s) in SWEEP.iter().zip(&sweep) {
                writeln!(w, "\nheld out, spans with confidence >= {t}:")?;
                let all: Vec<_> = s.lines().into_iter().filter(|l| l.lang == "all").collect();
                write_table(&mut w, &all)?;
            }
            for (g, n, t) in &per_group {
                writeln!(w, "\n{g} ({n} rows held out):")?;
                let all: Vec<_> = t.lines().into_iter().filter(|l| l.lang == "all").collect();
                write_table(&mut w, &all)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
