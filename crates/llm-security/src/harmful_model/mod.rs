//! A learned harmful-response model: the layer of the `harmful_content`
//! output validator that reads replies the rules cannot (a short agreeing
//! reply to abuse, a flu answer as unauthorised expertise, moderation-style
//! hate without a slur).
//!
//! Two linear heads over one hashed sparse feature vector:
//!
//! 1. a **binary head** (logistic regression): P(harmful), calibrated by a
//!    Platt scaling fitted on out-of-fold scores; the operating threshold
//!    is chosen on the same out-of-fold scores for a target benign
//!    false-positive rate and stored in the model;
//! 2. a **category head** (softmax over [`CATEGORIES`]): which harm a
//!    flagged reply is, learned from the positive rows whose dataset
//!    category maps to one (see [`category_of`]).
//!
//! Features ([`features`]), each namespace L2-normalized on its own:
//! the response's words, word bigrams and byte 4-grams; the prompt's
//! (user turn's) words and bigrams, weighted [`PROMPT_WEIGHT`]; and one
//! feature per *signal* — each rule finding of the scanner
//! (`rule:category/rule`), a refusal, whether a prompt was given, the
//! categories the prompt requests, a self-harm disclosure in the prompt,
//! the reply's length bucket — so the model learns how much each rule is
//! worth next to the text.
//!
//! The model ships inside the crate (`model/harmful.bin`, embedded with
//! `include_bytes!`) and is rebuilt by `llmsec train harmful`. File format
//! (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `LLMSECHM` |
//! | 4 | format version (u32, currently 1) |
//! | 4 | hash bits `b` (u32): `2^b` buckets |
//! | 4 | head count `h` (u32, [`HEADS`]) |
//! | 4 | threshold on P(harmful) (f32) |
//! | 8 | Platt scaling `a`, `b` (f32 each): P = σ(a·z + b) for the binary logit z |
//! | 4·h | bias per head (f32) |
//! | 4·h | weight scale per head (f32) |
//! | 4 | training input count `n` (u32) |
//! | n × (2 + len + 32) | per training file: name length (u16), name (UTF-8), SHA-256 of its bytes |
//! | 2·h·2^b | weights, i16, head-major (`[head][bucket]`) |
//! | 32 | SHA-256 of everything above |

mod train;

use std::sync::LazyLock;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use self::train::{
    HarmExample, HarmPrepared, HarmTrainConfig, HarmTrainReport, fit_and_score, prepare, random_folds, recall_at_fpr,
    train, train_prepared,
};
use crate::classifier::{Feature, TrainingInput, hash, hex_digest, mix, read_inputs, sigmoid};
use crate::error::Error;

const MAGIC: &[u8; 8] = b"LLMSECHM";
/// The model format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Categories of the category head, in model order. The first five are
/// [`HarmCategory`](crate::HarmCategory) names; `sexual_content` (adult
/// sexual content, a moderation category) is not one, and findings of it
/// follow the `malicious_content` policy rule only.
pub const CATEGORIES: [&str; 6] =
    ["hate_harassment", "self_harm", "violence_weapons", "sexual_minors", "dangerous_medical", "sexual_content"];
/// Heads: the binary head, then one per category.
pub const HEADS: usize = 1 + CATEGORIES.len();
const HEADER: usize = 8 + 4 * 3 + 4 * 3 + 4 * HEADS * 2;

/// Weight of the prompt's features next to the response's.
pub const PROMPT_WEIGHT: f32 = 0.6;
/// Weight of one signal feature.
pub const SIGNAL_WEIGHT: f32 = 0.5;

const SEED_WORD: u64 = 0x8A5C_D789_635D_2DFF;
const SEED_BIGRAM: u64 = 0x1219_23A7_1E9D_5A53;
const SEED_CHAR: u64 = 0x7FB5_D329_728E_A185;
const SEED_PROMPT_WORD: u64 = 0x3C6E_F372_FE94_F82B;
const SEED_PROMPT_BIGRAM: u64 = 0xA54F_F53A_5F1D_36F1;
const SEED_SIGNAL: u64 = 0x510E_527F_ADE6_82D1;

/// The category-head index of a dataset category name: DiaSafety's five
/// (Offending User, Toxicity Agreement and Biased Opinion are hate and
/// harassment; Risk Ignorance is self-harm; Unauthorized Expertise is
/// dangerous medical advice) and the moderation set's (a comma-separated
/// list: sexual/minors, self-harm, violence, hate and harassment, adult
/// sexual, first match in that order). `None` for `none` and unknown names.
pub fn category_of(label: &str) -> Option<usize> {
    let parts: Vec<String> = label.split(',').map(|s| s.trim().to_ascii_lowercase()).collect();
    let has = |names: &[&str]| parts.iter().any(|p| names.contains(&p.as_str()));
    let order: [(&[&str], usize); 6] = [
        (&["sexual/minors"], 3),
        (&["self-harm", "risk ignorance"], 1),
        (&["violence", "violence/graphic"], 2),
        (&["unauthorized expertise"], 4),
        (&["hate", "harassment", "hate/threatening", "offending user", "toxicity agreement", "biased opinion"], 0),
        (&["sexual"], 5),
    ];
    order.iter().find(|(names, _)| has(names)).map(|(_, i)| *i)
}

/// The hashed features of a reply: `response` and `prompt` as the scanner
/// sees them (ASCII-lowercased), and the signal names. `out` is cleared.
pub fn features(response: &str, prompt: Option<&str>, signals: &[String], bits: u32, out: &mut Vec<Feature>) {
    out.clear();
    let shift = 64 - bits;
    for (text, seeds, weight) in namespaces(response, prompt) {
        let first = out.len();
        let n = for_each_hash(text, seeds, |h| out.push(feature(h, shift, 1.0)));
        if n > 0 {
            let scale = weight / (n as f32).sqrt();
            for f in &mut out[first..] {
                f.value *= scale;
            }
        }
    }
    for s in signals {
        // Signals are present or not: unsigned.
        out.push(Feature { index: (hash(SEED_SIGNAL, s.as_bytes()) >> shift) as u32, value: SIGNAL_WEIGHT });
    }
}

/// Seeds of one text namespace: words, bigrams, byte 4-grams (if any).
type Seeds = (u64, u64, Option<u64>);

/// The reply's and the prompt's namespaces with their weights.
fn namespaces<'a>(response: &'a str, prompt: Option<&'a str>) -> impl Iterator<Item = (&'a str, Seeds, f32)> {
    let r = (response, (SEED_WORD, SEED_BIGRAM, Some(SEED_CHAR)), 1.0);
    let p = prompt.map(|p| (p, (SEED_PROMPT_WORD, SEED_PROMPT_BIGRAM, None), PROMPT_WEIGHT));
    std::iter::once(r).chain(p)
}

/// A hashed feature: bucket from the top `64 − shift` bits, sign from the
/// bit below them (a byte 4-gram's hash is one multiply, whose low bits
/// depend on the last byte only).
#[inline]
fn feature(h: u64, shift: u32, value: f32) -> Feature {
    let sign = if (h >> (shift - 1)) & 1 == 0 { value } else { -value };
    Feature { index: (h >> shift) as u32, value: sign }
}

/// Calls `sink` with the hash of every word, word bigram and (with a char
/// seed) byte 4-gram of `s`, whitespace runs read as one space; returns how
/// many.
fn for_each_hash(s: &str, (word_seed, bigram_seed, char_seed): Seeds, mut sink: impl FnMut(u64)) -> usize {
    let mut n = 0;
    let mut prev: Option<u64> = None;
    for w in s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let h = hash(word_seed, w.as_bytes());
        sink(h);
        n += 1;
        if let Some(p) = prev {
            sink(mix(p.rotate_left(23) ^ h ^ bigram_seed));
            n += 1;
        }
        prev = Some(h);
    }
    if let Some(seed) = char_seed {
        let mut acc = 0u32;
        let mut len = 0usize;
        let mut space = true;
        for &b in s.as_bytes() {
            let b = if b.is_ascii_whitespace() { b' ' } else { b };
            if b == b' ' {
                if space {
                    continue;
                }
                space = true;
            } else {
                space = false;
            }
            acc = (acc << 8) | u32::from(b);
            len += 1;
            if len >= 4 {
                sink((u64::from(acc) ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                n += 1;
            }
        }
    }
    n
}

/// What the model says about one reply.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HarmScore {
    /// Calibrated P(harmful).
    pub probability: f64,
    /// Whether it reaches the model's threshold (or the one asked for).
    pub flagged: bool,
    /// The most likely category ([`CATEGORIES`]) and its share among them.
    pub category: &'static str,
    /// P(category | harmful) of that category.
    pub category_probability: f64,
}

/// A trained harmful-response model.
#[derive(Clone, PartialEq)]
pub struct HarmfulModel {
    bits: u32,
    threshold: f32,
    platt: [f32; 2],
    bias: [f32; HEADS],
    scale: [f32; HEADS],
    /// `[head][bucket]`, dequantized with `scale`.
    weights: Vec<i16>,
    inputs: Vec<TrainingInput>,
}

impl std::fmt::Debug for HarmfulModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HarmfulModel")
            .field("bits", &self.bits)
            .field("threshold", &self.threshold)
            .field("platt", &self.platt)
            .field("bias", &self.bias)
            .field("inputs", &self.inputs)
            .finish_non_exhaustive()
    }
}

static BUILTIN: LazyLock<Result<HarmfulModel, String>> =
    LazyLock::new(|| HarmfulModel::from_bytes(include_bytes!("../../model/harmful.bin")).map_err(|e| e.to_string()));

impl HarmfulModel {
    /// The model built into the crate (`model/harmful.bin`).
    pub fn builtin() -> Result<&'static HarmfulModel, Error> {
        BUILTIN.as_ref().map_err(|e| Error::Model(e.clone()))
    }

    /// A model from float weights (`[head][bucket]`), quantized to i16 per head.
    pub(crate) fn from_weights(
        bits: u32,
        weights: &[f32],
        bias: [f32; HEADS],
        platt: [f32; 2],
        threshold: f32,
    ) -> HarmfulModel {
        let n = 1usize << bits;
        let mut scale = [0f32; HEADS];
        let mut q = Vec::with_capacity(n * HEADS);
        for (h, s) in scale.iter_mut().enumerate() {
            let col = &weights[h * n..(h + 1) * n];
            let max = col.iter().fold(0f32, |m, w| m.max(w.abs()));
            *s = if max > 0.0 { max / f32::from(i16::MAX) } else { 1.0 };
            q.extend(col.iter().map(|w| (w / *s).round().clamp(-32767.0, 32767.0) as i16));
        }
        HarmfulModel { bits, threshold, platt, bias, scale, weights: q, inputs: Vec::new() }
    }

    /// Hash bits of the feature space.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The threshold on P(harmful) chosen at training.
    pub fn threshold(&self) -> f64 {
        f64::from(self.threshold)
    }

    /// The files it was trained from.
    pub fn training_inputs(&self) -> &[TrainingInput] {
        &self.inputs
    }

    /// The same model recording its training files.
    pub fn with_training_inputs(mut self, inputs: Vec<TrainingInput>) -> HarmfulModel {
        self.inputs = inputs;
        self
    }

    fn head(&self, h: usize, feats: &[Feature]) -> f32 {
        let n = 1usize << self.bits;
        let col = &self.weights[h * n..(h + 1) * n];
        let mut z = 0f32;
        // Features hashed with more bits than the model's fall outside it
        // and count for nothing (the scanner always uses the model's bits).
        for f in feats {
            if let Some(&w) = col.get(f.index as usize) {
                z += f.value * f32::from(w);
            }
        }
        self.bias[h] + z * self.scale[h]
    }

    /// The binary head's raw logit (before calibration).
    pub fn logit(&self, feats: &[Feature]) -> f32 {
        self.head(0, feats)
    }

    /// The binary head's raw logit of a reply, as [`logit`](Self::logit) of
    /// its [`features`] but without building them: each namespace's
    /// weights are summed as integers while hashing, then scaled once.
    pub fn logit_of(&self, response: &str, prompt: Option<&str>, signals: &[String]) -> f32 {
        let n = 1usize << self.bits;
        let col = &self.weights[..n];
        let shift = 64 - self.bits;
        let mut z = 0f32;
        for (text, seeds, weight) in namespaces(response, prompt) {
            let mut acc = 0i64;
            let count = for_each_hash(text, seeds, |h| {
                let w = i64::from(col[(h >> shift) as usize]);
                acc += if (h >> (shift - 1)) & 1 == 0 { w } else { -w };
            });
            if count > 0 {
                z += acc as f32 * (weight / (count as f32).sqrt());
            }
        }
        let mut acc = 0i64;
        for s in signals {
            acc += i64::from(col[(hash(SEED_SIGNAL, s.as_bytes()) >> shift) as usize]);
        }
        z += acc as f32 * SIGNAL_WEIGHT;
        self.bias[0] + z * self.scale[0]
    }

    /// Calibrated P(harmful) of a raw logit.
    pub fn calibrate(&self, z: f32) -> f64 {
        f64::from(sigmoid(self.platt[0] * z + self.platt[1]))
    }

    /// Scores features made by [`features`] with this model's bits;
    /// `threshold` overrides the model's own.
    pub fn score(&self, feats: &[Feature], threshold: Option<f64>) -> HarmScore {
        let probability = self.calibrate(self.logit(feats));
        let flagged = probability >= threshold.unwrap_or_else(|| self.threshold());
        let (category, category_probability) = self.category(feats);
        HarmScore { probability, flagged, category, category_probability }
    }

    /// The category head's most likely category and its probability.
    pub fn category(&self, feats: &[Feature]) -> (&'static str, f64) {
        let z: Vec<f32> = (1..HEADS).map(|h| self.head(h, feats)).collect();
        let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
        let sum: f32 = e.iter().sum();
        let (best, p) = e.iter().enumerate().fold((0, 0f32), |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc });
        (CATEGORIES[best], f64::from(p / sum.max(f32::MIN_POSITIVE)))
    }

    /// The model file (see the module docs for the format).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER + self.weights.len() * 2 + 64);
        b.extend_from_slice(MAGIC);
        for v in [FORMAT_VERSION, self.bits, HEADS as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.threshold, self.platt[0], self.platt[1]].iter().chain(&self.bias).chain(&self.scale) {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(self.inputs.len() as u32).to_le_bytes());
        for input in &self.inputs {
            let mut name = &input.name[..];
            while name.len() > usize::from(u16::MAX) {
                let mut end = name.len() - 1;
                while !name.is_char_boundary(end) {
                    end -= 1;
                }
                name = &name[..end];
            }
            b.extend_from_slice(&(name.len() as u16).to_le_bytes());
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&hex_digest(&input.sha256).unwrap_or([0u8; 32]));
        }
        for w in &self.weights {
            b.extend_from_slice(&w.to_le_bytes());
        }
        let digest = Sha256::digest(&b);
        b.extend_from_slice(&digest);
        b
    }

    /// Reads a model, checking magic, version, sizes and checksum.
    pub fn from_bytes(b: &[u8]) -> Result<HarmfulModel, Error> {
        let bad = |m: String| Error::Model(m);
        if b.len() < HEADER + 32 {
            return Err(bad(format!("model file is {} bytes, too short to be a harmful-response model", b.len())));
        }
        if &b[..8] != MAGIC {
            return Err(bad("not an llm-security harmful-response model (bad magic)".into()));
        }
        let (body, sum) = b.split_at(b.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return Err(bad("model checksum mismatch: the file is corrupt or truncated".into()));
        }
        let u32_at = |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        let f32_at = |i: usize| f32::from_bits(u32_at(i));
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(bad(format!("model format version {version}, this build reads version {FORMAT_VERSION}")));
        }
        let bits = u32_at(12);
        let heads = u32_at(16) as usize;
        if !(8..=24).contains(&bits) || heads != HEADS {
            return Err(bad(format!("unsupported model shape: {bits} hash bits, {heads} heads")));
        }
        let threshold = f32_at(20);
        let platt = [f32_at(24), f32_at(28)];
        let mut bias = [0f32; HEADS];
        let mut scale = [0f32; HEADS];
        for h in 0..HEADS {
            bias[h] = f32_at(32 + 4 * h);
            scale[h] = f32_at(32 + 4 * HEADS + 4 * h);
        }
        let finite = platt.iter().chain(&bias).chain(&scale).all(|v| v.is_finite());
        if !finite || !(0.0..=1.0).contains(&threshold) {
            return Err(bad(format!("invalid model: threshold {threshold}, or a weight that is not a finite number")));
        }
        let (inputs, at) =
            read_inputs(body, HEADER).ok_or_else(|| bad("model training-input table is truncated".into()))?;
        let n = (1usize << bits) * HEADS;
        if body.len() != at + 2 * n {
            return Err(bad(format!("model body is {} bytes, expected {}", body.len(), at + 2 * n)));
        }
        let weights = body[at..].chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
        Ok(HarmfulModel { bits, threshold, platt, bias, scale, weights, inputs })
    }
}

/// P(harmful) of a reply by the built-in model, featurized as the scanner
/// featurizes it (default normalization; the rules' signals at their
/// default settings), whether or not the scanner would run the model (it
/// does not when the rules already flag the reply or it refuses).
pub fn builtin_probability(text: &str, prompt: Option<&str>) -> Result<f64, Error> {
    let model = HarmfulModel::builtin()?;
    let lex = crate::scanners::output::harmful::lexicon().map_err(|e| Error::Model(e.to_string()))?;
    let n = crate::normalize::Normalized::new(text, &crate::normalize::NormalizeOptions::default());
    let prompt_low = prompt.map(str::to_ascii_lowercase);
    let (signals, _) = crate::scanners::output::harmful::model_inputs(lex, &n, prompt_low.as_deref());
    let mut feats = Vec::new();
    features(n.lowercase(), prompt_low.as_deref(), &signals, model.bits(), &mut feats);
    Ok(model.calibrate(model.logit(&feats)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feats_bits(response: &str, prompt: Option<&str>, signals: &[&str], bits: u32) -> Vec<Feature> {
        let signals: Vec<String> = signals.iter().map(|s| (*s).to_owned()).collect();
        let mut out = Vec::new();
        features(response, prompt, &signals, bits, &mut out);
        out
    }

    fn feats(response: &str, prompt: Option<&str>, signals: &[&str]) -> Vec<Feature> {
        feats_bits(response, prompt, signals, 14)
    }

    fn tiny() -> HarmfulModel {
        let bits = 8;
        let w: Vec<f32> = (0..(1usize << bits) * HEADS).map(|i| ((i * 7919) % 17) as f32 / 17.0 - 0.5).collect();
        HarmfulModel::from_weights(bits, &w, [0.1, 0.0, -0.1, 0.2, 0.0, 0.3, -0.2], [1.2, -0.4], 0.6)
    }

    #[test]
    fn namespaces_are_normalized_apart_and_the_prompt_is_its_own_space() {
        let r = feats("you are right", None, &[]);
        let norm: f32 = r.iter().map(|f| f.value * f.value).sum();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        // The same words in the prompt land elsewhere, at the prompt's weight.
        let both = feats("you are right", Some("you are right"), &[]);
        assert_eq!(&both[..r.len()], &r[..]);
        let p = &both[r.len()..];
        let pnorm: f32 = p.iter().map(|f| f.value * f.value).sum();
        assert!((pnorm - PROMPT_WEIGHT * PROMPT_WEIGHT).abs() < 1e-4, "{pnorm}");
        let r_idx: std::collections::BTreeSet<u32> = r.iter().map(|f| f.index).collect();
        let shared = p.iter().filter(|f| r_idx.contains(&f.index)).count();
        assert!(shared <= 1, "prompt words hash apart from response words ({shared} collisions)");
        // Three words, two bigrams, and the byte 4-grams of "you are right".
        assert_eq!(r.len(), 3 + 2 + ("you are right".len() - 3));
    }

    #[test]
    fn whitespace_runs_and_signals() {
        assert_eq!(feats("you  are\n right", None, &[]), feats("you are right", None, &[]));
        let s = feats("ok", None, &["refusal", "len:0-19"]);
        let signals: Vec<&Feature> = s.iter().filter(|f| f.value == SIGNAL_WEIGHT).collect();
        assert_eq!(signals.len(), 2);
        assert!(feats("", None, &[]).is_empty());
        assert!(s.iter().all(|f| f.index < 1 << 14));
    }

    #[test]
    fn categories_map_from_both_datasets() {
        assert_eq!(category_of("Offending User"), Some(0));
        assert_eq!(category_of("Risk Ignorance"), Some(1));
        assert_eq!(category_of("Unauthorized Expertise"), Some(4));
        assert_eq!(category_of("hate,violence,hate/threatening"), Some(2));
        assert_eq!(category_of("sexual,sexual/minors"), Some(3));
        assert_eq!(category_of("sexual"), Some(5));
        assert_eq!(category_of("none"), None);
        assert_eq!(CATEGORIES[1], crate::HarmCategory::SelfHarm.as_str());
    }

    #[test]
    fn round_trips_and_scores_the_same_after_reading() {
        let m = tiny().with_training_inputs(vec![TrainingInput {
            name: "outputs-dev-harmful.jsonl".into(),
            sha256: "ab".repeat(32),
        }]);
        let back = HarmfulModel::from_bytes(&m.to_bytes()).map_err(|e| e.to_string());
        assert_eq!(back.as_ref(), Ok(&m));
        let f = feats_bits("what a stupid thing to say", Some("tell me"), &["prompt"], 8);
        let a = m.score(&f, None);
        // Features of a wider hash space do not panic: they fall outside.
        let wide = feats("what a stupid thing to say", Some("tell me"), &["prompt"]);
        assert!((0.0..=1.0).contains(&m.score(&wide, None).probability));
        assert!((0.0..=1.0).contains(&a.probability) && (0.0..=1.0).contains(&a.category_probability));
        assert_eq!(back.map(|b| b.score(&f, None)), Ok(a));
        assert!(m.score(&f, Some(0.0)).flagged && !m.score(&f, Some(1.01)).flagged);
    }

    #[test]
    fn corrupt_and_foreign_files_are_clear_errors() {
        let b = tiny().to_bytes();
        let mut flipped = b.clone();
        flipped[HEADER + 10] ^= 1;
        let e = HarmfulModel::from_bytes(&flipped).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("checksum"), "{e}");
        let e = HarmfulModel::from_bytes(&b[..40]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("too short"), "{e}");
        let mut other = b.clone();
        other[..8].copy_from_slice(b"LLMSECCL");
        let e = HarmfulModel::from_bytes(&other).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("magic"), "{e}");
        let mut next = b[..b.len() - 32].to_vec();
        next[8] = 9;
        let digest = Sha256::digest(&next);
        next.extend_from_slice(&digest);
        let e = HarmfulModel::from_bytes(&next).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("version 9"), "{e}");
    }

    #[test]
    fn streaming_logit_matches_the_feature_vector() {
        let m = tiny();
        let signals = vec!["prompt".to_owned(), "len:20-49".to_owned()];
        for (r, p) in [("you are so dumb, honestly", Some("what do you think?")), ("ok", None), ("", Some("hi"))] {
            let f = feats_bits(r, p, &["prompt", "len:20-49"], 8);
            let (a, b) = (m.logit(&f), m.logit_of(r, p, &signals));
            assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{r:?}: {a} vs {b}");
        }
    }

    #[test]
    fn builtin_model_loads() {
        let m = HarmfulModel::builtin().map_err(|e| e.to_string());
        assert!(m.is_ok(), "{m:?}");
    }
}
