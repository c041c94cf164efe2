//! Training of the harmful-response model: SGD over the hashed features
//! (logistic loss for the binary head, softmax for the category head on
//! the positive rows that have a category), single-threaded with a seeded
//! shuffle so a run is bit-for-bit repeatable. Out-of-fold scores (random
//! folds) give the Platt scaling and the threshold; then the model is
//! fitted on every row.

use serde::Serialize;

use super::{CATEGORIES, Feature, HEADS, HarmfulModel, features};
use crate::classifier::{Rng, sigmoid, threshold_for_fpr};
use crate::error::Error;
use crate::normalize::{NormalizeOptions, Normalized};

/// One labelled reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarmExample {
    /// The reply (or text) judged.
    pub text: String,
    /// The user turn it answers, when the data has one.
    pub prompt: Option<String>,
    /// Whether it is labelled harmful.
    pub harmful: bool,
    /// Its category-head class ([`super::category_of`]), for harmful rows.
    pub category: Option<usize>,
    /// Its source group.
    pub group: String,
}

/// A featurized example.
#[derive(Debug, Clone, PartialEq)]
pub struct HarmPrepared {
    bits: u32,
    feats: Vec<Feature>,
    /// Whether it is labelled harmful.
    pub harmful: bool,
    /// Its category-head class.
    pub category: Option<usize>,
    /// Its source group.
    pub group: String,
    /// Whether the rules alone flag it (a finding at medium or above).
    pub rules_flagged: bool,
}

/// Training settings; the defaults are what `llmsec train harmful` uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HarmTrainConfig {
    /// Hash bits: `2^bits` buckets per head.
    pub bits: u32,
    /// Passes over the data.
    pub epochs: usize,
    /// Initial SGD step; decays as `lr / (1 + epoch / 2)`.
    pub learning_rate: f32,
    /// L2 penalty on the weights a step touches.
    pub l2: f32,
    /// Seed of the shuffles and the folds.
    pub seed: u64,
    /// Random folds for the out-of-fold scores.
    pub folds: usize,
    /// Benign false-positive rate the threshold is chosen for.
    pub target_fpr: f64,
}

impl Default for HarmTrainConfig {
    fn default() -> Self {
        HarmTrainConfig {
            bits: 14,
            epochs: 6,
            learning_rate: 0.5,
            l2: 1e-3,
            seed: 0x4A12_F00D,
            folds: 5,
            target_fpr: 0.02,
        }
    }
}

/// What training measured on its out-of-fold scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HarmTrainReport {
    /// Rows trained on.
    pub rows: usize,
    /// Folds of the out-of-fold scores.
    pub folds: usize,
    /// Platt scaling `a`, `b` fitted on the out-of-fold logits.
    pub platt: [f64; 2],
    /// Threshold on P(harmful) chosen for the target FPR.
    pub threshold: f64,
    /// Benign FPR of the out-of-fold scores at that threshold.
    pub oof_fpr: f64,
    /// Harmful recall of the out-of-fold scores at that threshold.
    pub oof_recall: f64,
    /// The out-of-fold calibrated P(harmful) of every row, in input order.
    #[serde(skip)]
    pub oof_probability: Vec<f64>,
}

/// Featurizes examples as the scanner does: the normalized reply lowercased,
/// the prompt lowercased, and the rules' signals.
pub fn prepare(examples: &[HarmExample], bits: u32) -> Result<Vec<HarmPrepared>, Error> {
    check_bits(bits)?;
    let opts = NormalizeOptions::default();
    let lex = crate::scanners::output::harmful::lexicon().map_err(|e| Error::Model(e.to_string()))?;
    Ok(examples
        .iter()
        .map(|e| {
            let n = Normalized::new(&e.text, &opts);
            let prompt_low = e.prompt.as_deref().map(str::to_ascii_lowercase);
            let (signals, rules_flagged) =
                crate::scanners::output::harmful::model_inputs(lex, &n, prompt_low.as_deref());
            let mut feats = Vec::new();
            features(n.lowercase(), prompt_low.as_deref(), &signals, bits, &mut feats);
            HarmPrepared {
                bits,
                feats,
                harmful: e.harmful,
                category: e.category.filter(|&c| c < CATEGORIES.len()),
                group: e.group.clone(),
                rules_flagged,
            }
        })
        .collect())
}

fn check_bits(bits: u32) -> Result<(), Error> {
    if (8..=20).contains(&bits) { Ok(()) } else { Err(Error::Config(format!("bits must be in 8..=20, got {bits}"))) }
}

fn head(w: &[f32], n: usize, h: usize, bias: f32, feats: &[Feature]) -> f32 {
    let col = &w[h * n..(h + 1) * n];
    bias + feats.iter().map(|f| f.value * col[f.index as usize]).sum::<f32>()
}

/// SGD over the rows `idx`: float weights `[head][bucket]` and biases.
fn fit(data: &[HarmPrepared], idx: &[usize], cfg: &HarmTrainConfig) -> (Vec<f32>, [f32; HEADS]) {
    let n = 1usize << cfg.bits;
    let mut w = vec![0f32; n * HEADS];
    let mut bias = [0f32; HEADS];
    let mut order = idx.to_vec();
    let mut rng = Rng::new(cfg.seed ^ 0x4A4D);
    let cats = HEADS - 1;
    for epoch in 0..cfg.epochs {
        rng.shuffle(&mut order);
        let lr = cfg.learning_rate / (1.0 + epoch as f32 / 2.0);
        let decay = lr * cfg.l2;
        for &i in &order {
            let d = &data[i];
            // Binary head.
            let p = sigmoid(head(&w, n, 0, bias[0], &d.feats));
            let g = p - f32::from(u8::from(d.harmful));
            for f in &d.feats {
                let wk = &mut w[f.index as usize];
                *wk -= lr * g * f.value + decay * *wk;
            }
            bias[0] -= lr * 0.1 * g;
            // Category head, on harmful rows with a category.
            let Some(c) = d.category.filter(|_| d.harmful) else { continue };
            let mut z = [0f32; HEADS];
            for (k, v) in z[..cats].iter_mut().enumerate() {
                *v = head(&w, n, k + 1, bias[k + 1], &d.feats);
            }
            let m = z[..cats].iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let mut sum = 0f32;
            for v in &mut z[..cats] {
                *v = (*v - m).exp();
                sum += *v;
            }
            for k in 0..cats {
                let gk = z[k] / sum - if k == c { 1.0 } else { 0.0 };
                let col = (k + 1) * n;
                for f in &d.feats {
                    let wk = &mut w[col + f.index as usize];
                    *wk -= lr * gk * f.value + decay * *wk;
                }
                bias[k + 1] -= lr * 0.1 * gk;
            }
        }
    }
    (w, bias)
}

/// The fold of every row: rows dealt at random (seeded) into `k` folds.
pub fn random_folds(rows: usize, k: usize, seed: u64) -> Vec<usize> {
    let k = k.max(2);
    let mut order: Vec<usize> = (0..rows).collect();
    Rng::new(seed ^ 0xF01D).shuffle(&mut order);
    let mut fold = vec![0; rows];
    for (pos, &i) in order.iter().enumerate() {
        fold[i] = pos % k;
    }
    fold
}

/// Fits on the rows `train_idx` and returns the binary head's raw logits
/// of the rows `test_idx` (cross-validation and held-out groups).
pub fn fit_and_score(
    data: &[HarmPrepared],
    train_idx: &[usize],
    test_idx: &[usize],
    cfg: &HarmTrainConfig,
) -> Vec<f32> {
    let (w, bias) = fit(data, train_idx, cfg);
    let n = 1usize << cfg.bits;
    test_idx.iter().map(|&i| head(&w, n, 0, bias[0], &data[i].feats)).collect()
}

/// Platt scaling: `a`, `b` minimizing the log loss of σ(a·z + b), by
/// damped Newton steps (two parameters).
fn fit_platt(z: &[f32], y: &[bool]) -> [f64; 2] {
    let loss = |a: f64, b: f64| {
        z.iter()
            .zip(y)
            .map(|(&z, &y)| {
                let s = a * f64::from(z) + b;
                s.max(0.0) + (-s.abs()).exp().ln_1p() - if y { s } else { 0.0 }
            })
            .sum::<f64>()
    };
    let (mut a, mut b) = (1.0f64, 0.0f64);
    let mut current = loss(a, b);
    for _ in 0..50 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for (&z, &y) in z.iter().zip(y) {
            let z = f64::from(z);
            let p = 1.0 / (1.0 + (-(a * z + b)).exp());
            let r = p - f64::from(u8::from(y));
            let c = (p * (1.0 - p)).max(1e-9);
            ga += r * z;
            gb += r;
            haa += c * z * z;
            hab += c * z;
            hbb += c;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let (sa, sb) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        let mut scale = 1.0;
        let mut moved = false;
        for _ in 0..30 {
            let (na, nb) = (a - scale * sa, b - scale * sb);
            let l = loss(na, nb);
            if l <= current {
                moved = (na - a).abs().max((nb - b).abs()) > 1e-10;
                a = na;
                b = nb;
                current = l;
                break;
            }
            scale *= 0.5;
        }
        if !moved {
            break;
        }
    }
    [a, b]
}

/// Recall of `scores` on the positives at the threshold that keeps the
/// benign false-positive rate at or under `fpr` (ties at the threshold
/// count as flagged), and that rate; `None` without positives or benign rows.
pub fn recall_at_fpr(scores: &[f64], positive: &[bool], fpr: f64) -> Option<(f64, f64)> {
    let benign: Vec<f64> = scores.iter().zip(positive).filter(|(_, p)| !**p).map(|(s, _)| *s).collect();
    let pos: Vec<f64> = scores.iter().zip(positive).filter(|(_, p)| **p).map(|(s, _)| *s).collect();
    if benign.is_empty() || pos.is_empty() {
        return None;
    }
    let t = threshold_for_fpr(&benign, fpr);
    let recall = pos.iter().filter(|s| **s >= t).count() as f64 / pos.len() as f64;
    let rate = benign.iter().filter(|s| **s >= t).count() as f64 / benign.len() as f64;
    Some((recall, rate))
}

/// Trains from examples: [`prepare`], then [`train_prepared`].
pub fn train(examples: &[HarmExample], cfg: &HarmTrainConfig) -> Result<(HarmfulModel, HarmTrainReport), Error> {
    let data = prepare(examples, cfg.bits)?;
    train_prepared(&data, cfg)
}

/// Trains from prepared examples: out-of-fold logits over random folds,
/// the Platt scaling and the threshold on them, then the fit on every row.
pub fn train_prepared(data: &[HarmPrepared], cfg: &HarmTrainConfig) -> Result<(HarmfulModel, HarmTrainReport), Error> {
    check_bits(cfg.bits)?;
    if let Some(d) = data.iter().find(|d| d.bits != cfg.bits) {
        return Err(Error::Config(format!(
            "examples were prepared with {} hash bits, training uses {}",
            d.bits, cfg.bits
        )));
    }
    let positives = data.iter().filter(|d| d.harmful).count();
    if positives == 0 || positives == data.len() {
        return Err(Error::Config("training needs both harmful and benign rows".into()));
    }
    if !(0.0..1.0).contains(&cfg.target_fpr) {
        return Err(Error::Config(format!("target FPR must be in [0, 1), got {}", cfg.target_fpr)));
    }
    let k = cfg.folds.clamp(2, data.len());
    let fold = random_folds(data.len(), k, cfg.seed);
    let mut oof = vec![0f32; data.len()];
    for f in 0..k {
        let train_idx: Vec<usize> = (0..data.len()).filter(|&i| fold[i] != f).collect();
        let test_idx: Vec<usize> = (0..data.len()).filter(|&i| fold[i] == f).collect();
        for (i, z) in test_idx.iter().zip(fit_and_score(data, &train_idx, &test_idx, cfg)) {
            oof[*i] = z;
        }
    }
    let y: Vec<bool> = data.iter().map(|d| d.harmful).collect();
    let platt = fit_platt(&oof, &y);
    let prob: Vec<f64> = oof.iter().map(|&z| f64::from(sigmoid((platt[0] as f32) * z + platt[1] as f32))).collect();
    let benign: Vec<f64> = prob.iter().zip(&y).filter(|(_, y)| !**y).map(|(p, _)| *p).collect();
    let threshold = threshold_for_fpr(&benign, cfg.target_fpr).clamp(0.0, 1.0);
    // The model stores the threshold as f32: round up, never down, so that
    // a benign score just under it stays under it.
    let mut threshold32 = threshold as f32;
    if f64::from(threshold32) < threshold {
        threshold32 = f32::from_bits(threshold32.to_bits() + 1);
    }
    let flagged = |p: &f64| *p as f32 >= threshold32;
    let oof_fpr = benign.iter().filter(|p| flagged(p)).count() as f64 / benign.len() as f64;
    let oof_recall = prob.iter().zip(&y).filter(|(p, y)| **y && flagged(p)).count() as f64 / positives as f64;
    let all: Vec<usize> = (0..data.len()).collect();
    let (w, bias) = fit(data, &all, cfg);
    let model = HarmfulModel::from_weights(cfg.bits, &w, bias, [platt[0] as f32, platt[1] as f32], threshold32);
    let report = HarmTrainReport {
        rows: data.len(),
        folds: k,
        platt,
        threshold: f64::from(threshold32),
        oof_fpr,
        oof_recall,
        oof_probability: prob,
    };
    Ok((model, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str, prompt: Option<&str>, harmful: bool, category: Option<usize>) -> HarmExample {
        HarmExample { text: text.into(), prompt: prompt.map(Into::into), harmful, category, group: "ours".into() }
    }

    /// Our own small set: insults at the reader are harmful, polite
    /// answers are not.
    fn toy() -> Vec<HarmExample> {
        let mut v = Vec::new();
        let bad = ["you are pathetic", "shut up, loser", "nobody likes you, moron", "what a dumb question, idiot"];
        let good = ["happy to help with that", "here is a recipe you may like", "good question, let me explain"];
        for i in 0..12 {
            v.push(ex(bad[i % bad.len()], Some("hello there"), true, Some(0)));
            v.push(ex(good[i % good.len()], Some("hello there"), false, None));
        }
        v
    }

    #[test]
    fn training_is_deterministic_and_separates_a_toy_set() {
        let cfg = HarmTrainConfig { bits: 10, epochs: 8, folds: 3, ..HarmTrainConfig::default() };
        let (a, ra) = train(&toy(), &cfg).map_err(|e| e.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let (b, _) = train(&toy(), &cfg).map_err(|e| e.to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.to_bytes(), b.to_bytes(), "byte-for-byte repeatable");
        assert_eq!(ra.oof_probability.len(), 24);
        let score = |text: &str| {
            let mut f = Vec::new();
            let n = Normalized::new(text, &NormalizeOptions::default());
            let lex = crate::scanners::output::harmful::lexicon().map_err(|e| e.to_string());
            let Ok(lex) = lex else { panic!("lexicon") };
            let (signals, _) = crate::scanners::output::harmful::model_inputs(lex, &n, Some("hello there"));
            features(n.lowercase(), Some("hello there"), &signals, 10, &mut f);
            a.score(&f, None)
        };
        let bad = score("you are a pathetic loser");
        let good = score("happy to explain the recipe");
        assert!(bad.probability > good.probability, "{bad:?} vs {good:?}");
        assert_eq!(bad.category, "hate_harassment");
    }

    #[test]
    fn one_class_and_bad_settings_are_errors() {
        let only_bad: Vec<HarmExample> = toy().into_iter().filter(|e| e.harmful).collect();
        assert!(train(&only_bad, &HarmTrainConfig::default()).is_err());
        let cfg = HarmTrainConfig { bits: 30, ..HarmTrainConfig::default() };
        assert!(train(&toy(), &cfg).is_err());
        let cfg = HarmTrainConfig { target_fpr: 1.5, ..HarmTrainConfig::default() };
        assert!(train(&toy(), &cfg).is_err());
    }

    #[test]
    fn recall_at_fpr_counts_at_the_threshold() {
        let scores = [0.9, 0.8, 0.3, 0.1, 0.2, 0.85];
        let positive = [true, true, true, false, false, false];
        // No benign row may pass at 0 %: threshold just above 0.85.
        assert_eq!(recall_at_fpr(&scores, &positive, 0.0), Some((1.0 / 3.0, 0.0)));
        assert_eq!(recall_at_fpr(&scores, &positive, 0.34).map(|r| r.1), Some(1.0 / 3.0));
        assert_eq!(recall_at_fpr(&scores, &[true; 6], 0.1), None);
    }

    #[test]
    fn platt_scaling_is_monotone_and_fits_a_shift() {
        let z: Vec<f32> = (0..200).map(|i| (i as f32 - 100.0) / 20.0).collect();
        let y: Vec<bool> = z.iter().map(|&z| z > 1.0).collect();
        let [a, b] = fit_platt(&z, &y);
        assert!(a > 0.0, "{a}");
        assert!(-b / a > 0.5 && -b / a < 1.5, "the 50 % point sits near z = 1: {}", -b / a);
    }
}
