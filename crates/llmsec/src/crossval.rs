//! `llmsec eval --cross-source`: the honest accuracy of the classifier.
//!
//! The dev files hold near-duplicates within a source (DAN variants,
//! HackAPrompt retries), so a random split flatters a learned model. Here
//! the source groups are dealt into folds (whole groups, largest first, to
//! the lightest fold) and every fold is held out once: the classifier is
//! trained on the other folds (with the same settings as `llmsec train`)
//! and scores the held-out rows, so no row is scored by a model that saw
//! its source. The pooled out-of-fold scores give ROC-AUC, recall at a
//! benign false-positive rate of 1% and 0.1%, a Brier score and a
//! reliability table; the rules (which learn nothing) and the engine's
//! verdict (rules, or classifier above a threshold) are reported beside
//! them, overall, per attack family, per source and per language. A plain
//! random 80/20 split is reported too, to show how much it flatters.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use llm_security::classifier::{
    Label, Prepared, Rng, TrainConfig, group_folds, prepare, threshold_for_fpr, train_prepared,
};
use serde::Serialize;

use crate::common::Format;
use crate::dataset;

/// Folds of source groups held out in turn.
const FOLDS: usize = 8;

/// One scored row.
#[derive(Debug, Clone)]
struct Scored {
    label: Label,
    group: String,
    lang: String,
    family: &'static str,
    /// Content (a row with a `context`): scored by `analyze_context`, which
    /// runs no classifier, so its P(attack) is 0 and it is left out of the
    /// classifier's own figures.
    content: bool,
    /// Out-of-fold P(attack).
    p: f64,
    /// Did the rules alone flag it?
    rules: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    rows: usize,
    groups: usize,
    folds: usize,
    seconds: f64,
    classifier: Summary,
    random_split: Summary,
    rules_only: Rates,
    /// Rules, or classifier at the threshold that keeps the pair's benign
    /// FPR at 1% (the engine's verdict with the classifier on).
    combined: Rates,
    /// The same at 0.1% (`None` when the rules alone exceed it).
    combined_0_1pct: Option<Rates>,
    /// Classifier thresholds of `combined` and `combined_0_1pct`.
    combined_thresholds: (f64, Option<f64>),
    reliability: Vec<Bin>,
    per_family: Vec<GroupRates>,
    per_source: Vec<GroupRates>,
    per_language: Vec<GroupRates>,
}

#[derive(Debug, Serialize)]
struct Summary {
    roc_auc: f64,
    threshold_fpr_1pct: f64,
    recall_at_fpr_1pct: f64,
    threshold_fpr_0_1pct: f64,
    recall_at_fpr_0_1pct: f64,
    threshold_fpr_5pct: f64,
    recall_at_fpr_5pct: f64,
    brier: f64,
}

#[derive(Debug, Serialize, Default, Clone, Copy)]
struct Rates {
    attacks: usize,
    caught: usize,
    benign: usize,
    false_positives: usize,
    recall: Option<f64>,
    fpr: Option<f64>,
}

impl Rates {
    fn add(&mut self, attack: bool, flagged: bool) {
        if attack {
            self.attacks += 1;
            self.caught += usize::from(flagged);
        } else {
            self.benign += 1;
            self.false_positives += usize::from(flagged);
        }
    }

    fn finish(mut self) -> Rates {
        self.recall = (self.attacks > 0).then(|| self.caught as f64 / self.attacks as f64);
        self.fpr = (self.benign > 0).then(|| self.false_positives as f64 / self.benign as f64);
        self
    }
}

#[derive(Debug, Serialize)]
struct GroupRates {
    name: String,
    classifier: Rates,
    rules: Rates,
    combined: Rates,
    /// Rules or classifier at the 0.1% operating point.
    combined_0_1pct: Rates,
}

#[derive(Debug, Serialize)]
struct Bin {
    from: f64,
    to: f64,
    rows: usize,
    mean_predicted: f64,
    observed_attack_rate: f64,
}

/// ROC-AUC by the rank-sum (Mann-Whitney) formula, ties counted half.
fn roc_auc(scores: &[(f64, bool)]) -> f64 {
    let mut s: Vec<(f64, bool)> = scores.to_vec();
    s.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (pos, neg) = (s.iter().filter(|x| x.1).count() as f64, s.iter().filter(|x| !x.1).count() as f64);
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < s.len() {
        let mut j = i;
        while j < s.len() && s[j].0 == s[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg_rank * s[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// The smallest threshold whose benign false-positive rate is at most `fpr`.
fn threshold_at(scores: &[(f64, bool)], fpr: f64) -> f64 {
    let benign: Vec<f64> = scores.iter().filter(|x| !x.1).map(|x| x.0).collect();
    threshold_for_fpr(&benign, fpr)
}

/// The lowest classifier threshold at which "rules or classifier" keeps
/// its benign FPR at most `fpr`; `None` when the rules alone exceed it.
fn combined_threshold(scored: &[Scored], fpr: f64) -> Option<f64> {
    let benign: Vec<&Scored> = scored.iter().filter(|s| s.label == Label::Benign).collect();
    let allowed = (fpr * benign.len() as f64).floor() as usize;
    let by_rules = benign.iter().filter(|s| s.rules).count();
    let left = allowed.checked_sub(by_rules)?;
    let mut rest: Vec<f64> = benign.iter().filter(|s| !s.rules).map(|s| s.p).collect();
    rest.sort_by(|a, b| b.total_cmp(a));
    Some(rest.get(left).map_or(0.0, |v| v + 1e-9))
}

fn recall_at(scores: &[(f64, bool)], t: f64) -> f64 {
    let attacks = scores.iter().filter(|x| x.1).count().max(1);
    scores.iter().filter(|x| x.1 && x.0 >= t).count() as f64 / attacks as f64
}

fn summary(scores: &[(f64, bool)]) -> Summary {
    let t1 = threshold_at(scores, 0.01);
    let t01 = threshold_at(scores, 0.001);
    let t5 = threshold_at(scores, 0.05);
    let brier =
        scores.iter().map(|(p, a)| (p - f64::from(u8::from(*a))).powi(2)).sum::<f64>() / scores.len().max(1) as f64;
    Summary {
        roc_auc: roc_auc(scores),
        threshold_fpr_1pct: t1,
        recall_at_fpr_1pct: recall_at(scores, t1),
        threshold_fpr_0_1pct: t01,
        recall_at_fpr_0_1pct: recall_at(scores, t01),
        threshold_fpr_5pct: t5,
        recall_at_fpr_5pct: recall_at(scores, t5),
        brier,
    }
}

/// Runs the cross-source evaluation on `data`; rows of `train_only` are
/// added to every training fold and never scored.
pub fn run(data: &[PathBuf], train_only: &[PathBuf], cfg: &TrainConfig, format: Format) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let rows = dataset::load(data)?;
    let extra = dataset::load(train_only)?;
    // Featurized once; every fold refits on these.
    let prepared = prepare(&dataset::examples(&rows), cfg.bits, cfg.text_features)?;
    let prepared_extra = prepare(&dataset::examples(&extra), cfg.bits, cfg.text_features)?;
    let fold = group_folds(&prepared, FOLDS);
    let folds = fold.iter().copied().max().map_or(0, |m| m + 1);
    let groups: std::collections::BTreeSet<&str> = prepared.iter().map(|p| p.group.as_str()).collect();
    let mut scored: Vec<Option<Scored>> = vec![None; rows.len()];
    for held in 0..folds {
        let train_rows: Vec<&Prepared> = prepared
            .iter()
            .zip(&fold)
            .filter(|(_, f)| **f != held)
            .map(|(p, _)| p)
            .chain(prepared_extra.iter())
            .collect();
        let (model, _) = train_prepared(&train_rows, cfg)?;
        for i in (0..rows.len()).filter(|&i| fold[i] == held) {
            let content = rows[i].context.is_some();
            scored[i] = Some(Scored {
                label: rows[i].label,
                group: prepared[i].group.clone(),
                lang: rows[i].lang.clone(),
                family: dataset::family(&rows[i]),
                content,
                p: if content { 0.0 } else { model.predict_prepared(&prepared[i]).attack() },
                rules: prepared[i].rules_flagged,
            });
        }
    }
    let scored: Vec<Scored> = scored.into_iter().flatten().collect();
    let pairs: Vec<(f64, bool)> =
        scored.iter().filter(|s| !s.content).map(|s| (s.p, s.label != Label::Benign)).collect();
    let classifier = summary(&pairs);
    let t = classifier.threshold_fpr_1pct;

    // The flattering baseline: one random 80/20 split.
    let mut idx: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].context.is_none()).collect();
    Rng::new(0x5EED).shuffle(&mut idx);
    let cut = idx.len() * 4 / 5;
    let train_rows: Vec<&Prepared> = idx[..cut].iter().map(|&i| &prepared[i]).chain(prepared_extra.iter()).collect();
    let (model, _) = train_prepared(&train_rows, cfg)?;
    let random: Vec<(f64, bool)> = idx[cut..]
        .iter()
        .map(|&i| (model.predict_prepared(&prepared[i]).attack(), rows[i].label != Label::Benign))
        .collect();
    let random_split = summary(&random);

    let t_both = combined_threshold(&scored, 0.01).unwrap_or(f64::INFINITY);
    let t_both_strict = combined_threshold(&scored, 0.001);
    let mut rules_only = Rates::default();
    let mut combined = Rates::default();
    let mut combined_strict = Rates::default();
    type Row4 = (Rates, Rates, Rates, Rates);
    let mut per_family: BTreeMap<String, Row4> = BTreeMap::new();
    let mut per_source: BTreeMap<String, Row4> = BTreeMap::new();
    let mut per_language: BTreeMap<String, Row4> = BTreeMap::new();
    for s in &scored {
        let attack = s.label != Label::Benign;
        let by_model = s.p >= t;
        let both = s.rules || s.p >= t_both;
        let both_strict = s.rules || t_both_strict.is_some_and(|t| s.p >= t);
        rules_only.add(attack, s.rules);
        combined.add(attack, both);
        combined_strict.add(attack, both_strict);
        let keys =
            [(&mut per_family, s.family), (&mut per_source, s.group.as_str()), (&mut per_language, s.lang.as_str())];
        for (map, key) in keys {
            let e = map.entry(key.to_owned()).or_default();
            e.0.add(attack, by_model);
            e.1.add(attack, s.rules);
            e.2.add(attack, both);
            e.3.add(attack, both_strict);
        }
    }
    let to_rows = |m: BTreeMap<String, Row4>| {
        m.into_iter()
            .map(|(name, (c, r, b, b01))| GroupRates {
                name,
                classifier: c.finish(),
                rules: r.finish(),
                combined: b.finish(),
                combined_0_1pct: b01.finish(),
            })
            .collect::<Vec<_>>()
    };
    let mut reliability = Vec::new();
    for b in 0..10 {
        let (from, to) = (b as f64 / 10.0, (b + 1) as f64 / 10.0);
        let in_bin: Vec<&(f64, bool)> = pairs.iter().filter(|(p, _)| *p >= from && (*p < to || b == 9)).collect();
        if in_bin.is_empty() {
            continue;
        }
        let n = in_bin.len() as f64;
        reliability.push(Bin {
            from,
            to,
            rows: in_bin.len(),
            mean_predicted: in_bin.iter().map(|x| x.0).sum::<f64>() / n,
            observed_attack_rate: in_bin.iter().filter(|x| x.1).count() as f64 / n,
        });
    }
    let report = Report {
        rows: scored.len(),
        groups: groups.len(),
        folds,
        seconds: started.elapsed().as_secs_f64(),
        classifier,
        random_split,
        rules_only: rules_only.finish(),
        combined: combined.finish(),
        combined_0_1pct: t_both_strict.map(|_| combined_strict.finish()),
        combined_thresholds: (t_both, t_both_strict),
        reliability,
        per_family: to_rows(per_family),
        per_source: to_rows(per_source),
        per_language: to_rows(per_language),
    };
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string(&report)?)?,
        Format::Human => write_human(&mut out, &report)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{:.1}%", 100.0 * v))
}

fn write_human(w: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(
        w,
        "cross-source evaluation: {} rows, {} source groups in {} folds, each fold held out once ({:.0} s)",
        r.rows, r.groups, r.folds, r.seconds
    )?;
    writeln!(w)?;
    writeln!(
        w,
        "{:<28} {:>8} {:>12} {:>12} {:>12} {:>8}",
        "classifier (out of fold)", "ROC-AUC", "recall@5%", "recall@1%", "recall@0.1%", "Brier"
    )?;
    for (name, s) in [("cross-source", &r.classifier), ("random 80/20 split", &r.random_split)] {
        writeln!(
            w,
            "{:<28} {:>8.4} {:>12} {:>12} {:>12} {:>8.4}",
            name,
            s.roc_auc,
            pct(Some(s.recall_at_fpr_5pct)),
            pct(Some(s.recall_at_fpr_1pct)),
            pct(Some(s.recall_at_fpr_0_1pct)),
            s.brier
        )?;
    }
    writeln!(
        w,
        "thresholds for 5% / 1% / 0.1% benign FPR (pooled out-of-fold): {:.4} / {:.4} / {:.4}",
        r.classifier.threshold_fpr_5pct, r.classifier.threshold_fpr_1pct, r.classifier.threshold_fpr_0_1pct
    )?;
    writeln!(w)?;
    writeln!(w, "{:<28} {:>10} {:>10}", "detector", "recall", "benign FPR")?;
    writeln!(w, "{:<28} {:>10} {:>10}", "rules only", pct(r.rules_only.recall), pct(r.rules_only.fpr))?;
    writeln!(w, "{:<28} {:>10} {:>10}", "rules or classifier, 1%", pct(r.combined.recall), pct(r.combined.fpr))?;
    match &r.combined_0_1pct {
        Some(c) => writeln!(w, "{:<28} {:>10} {:>10}", "rules or classifier, 0.1%", pct(c.recall), pct(c.fpr))?,
        None => writeln!(w, "{:<28} {:>10} {:>10}", "rules or classifier, 0.1%", "-", "(rules alone exceed 0.1%)")?,
    }
    writeln!(
        w,
        "classifier thresholds of the pair for 1% / 0.1% benign FPR: {:.4} / {}",
        r.combined_thresholds.0,
        r.combined_thresholds.1.map_or_else(|| "-".to_owned(), |t| format!("{t:.4}"))
    )?;
    writeln!(w)?;
    writeln!(w, "reliability (pooled out-of-fold P(attack)):")?;
    writeln!(w, "  {:>11} {:>7} {:>10} {:>10}", "bin", "rows", "predicted", "observed")?;
    for b in &r.reliability {
        writeln!(
            w,
            "  {:>4.1}–{:<4.1}  {:>7} {:>10.3} {:>10.3}",
            b.from, b.to, b.rows, b.mean_predicted, b.observed_attack_rate
        )?;
    }
    for (what, rows) in [("family", &r.per_family), ("source group", &r.per_source), ("language", &r.per_language)] {
        writeln!(w)?;
        writeln!(
            w,
            "{:<36} {:>7} {:>7} | {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9}",
            format!("per {what}"),
            "attacks",
            "benign",
            "clf rec",
            "clf FPR",
            "rule rec",
            "rule FPR",
            "both rec",
            "both FPR",
            "0.1% rec",
            "0.1% FPR"
        )?;
        for g in rows.iter() {
            writeln!(
                w,
                "{:<36} {:>7} {:>7} | {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9}",
                g.name,
                g.classifier.attacks,
                g.classifier.benign,
                pct(g.classifier.recall),
                pct(g.classifier.fpr),
                pct(g.rules.recall),
                pct(g.rules.fpr),
                pct(g.combined.recall),
                pct(g.combined.fpr),
                pct(g.combined_0_1pct.recall),
                pct(g.combined_0_1pct.fpr)
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_and_random_rankings() {
        let perfect = [(0.1, false), (0.2, false), (0.8, true), (0.9, true)];
        assert!((roc_auc(&perfect) - 1.0).abs() < 1e-12);
        let tied = [(0.5, false), (0.5, true)];
        assert!((roc_auc(&tied) - 0.5).abs() < 1e-12);
        let inverted = [(0.9, false), (0.1, true)];
        assert!(roc_auc(&inverted).abs() < 1e-12);
    }

    #[test]
    fn combined_threshold_counts_the_rules_false_positives() {
        let row = |p: f64, rules: bool, label: Label| Scored {
            label,
            group: "g".into(),
            lang: "en".into(),
            family: "benign",
            content: false,
            p,
            rules,
        };
        // 200 benign rows: 1% allows 2 false positives; the rules make one.
        let mut s: Vec<Scored> = (0..199).map(|i| row(f64::from(i) / 1000.0, false, Label::Benign)).collect();
        s.push(row(0.0, true, Label::Benign));
        let t = combined_threshold(&s, 0.01).unwrap_or(f64::NAN);
        let fps = s.iter().filter(|x| x.rules || x.p >= t).count();
        assert_eq!(fps, 2, "threshold {t}");
        // 0.1% of 200 allows none, and the rules already make one.
        assert_eq!(combined_threshold(&s, 0.001), None);
    }

    #[test]
    fn threshold_keeps_the_fpr() {
        let s: Vec<(f64, bool)> = (0..1000).map(|i| (f64::from(i) / 1000.0, false)).collect();
        let t = threshold_at(&s, 0.01);
        assert!(s.iter().filter(|x| x.0 >= t).count() <= 10);
    }
}
