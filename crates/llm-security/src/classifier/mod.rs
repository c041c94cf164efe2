//! A learned prompt-attack classifier: multinomial logistic regression
//! (benign / injection / jailbreak) over hashed word and character n-grams
//! of the normalized text plus the rule scanners' findings (one feature per
//! rule that fired), temperature-calibrated. Stacking the rules into the
//! model turns rules and text into one calibrated score.
//!
//! The model ships inside the crate (`model/classifier.bin`, embedded with
//! `include_bytes!`) and is rebuilt by `llmsec train` from
//! `../shared/datasets`. The file format is versioned and checksummed:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `LLMSECCL` |
//! | 4 | format version (u32 LE, currently 1) |
//! | 4 | hash bits `b` (u32 LE): `2^b` buckets |
//! | 4 | class count (u32 LE, 3) |
//! | 4 | temperature (f32 LE) |
//! | 4 | threshold on P(attack) (f32 LE) |
//! | 12 | bias per class (f32 LE) |
//! | 12 | weight scale per class (f32 LE) |
//! | 2·3·2^b | weights, i16 LE, bucket-major (`[bucket][class]`) |
//! | 32 | SHA-256 of everything above |

mod features;
mod train;

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use self::features::{Feature, MAX_FEATURE_BYTES, SIGNAL_WEIGHT, add_signals, extract};
pub use self::train::{Example, Rng, TrainConfig, TrainReport, mix, rules_engine, threshold_for_fpr, train};
use crate::error::Error;

const MAGIC: &[u8; 8] = b"LLMSECCL";
/// The model format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
const CLASSES: usize = 3;
const HEADER: usize = 8 + 4 * 5 + 4 * CLASSES * 2;

/// The classes, in model order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// Not an attack.
    Benign = 0,
    /// Prompt injection.
    Injection = 1,
    /// Jailbreak.
    Jailbreak = 2,
}

impl Label {
    /// Parses the dataset label names.
    pub fn parse(s: &str) -> Option<Label> {
        match s {
            "benign" => Some(Label::Benign),
            "injection" => Some(Label::Injection),
            "jailbreak" => Some(Label::Jailbreak),
            _ => None,
        }
    }
}

/// Calibrated class probabilities for one text.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Probabilities {
    /// P(benign).
    pub benign: f64,
    /// P(injection).
    pub injection: f64,
    /// P(jailbreak).
    pub jailbreak: f64,
}

impl Probabilities {
    /// P(injection or jailbreak).
    pub fn attack(&self) -> f64 {
        (self.injection + self.jailbreak).clamp(0.0, 1.0)
    }

    /// The more likely attack class.
    pub fn attack_label(&self) -> Label {
        if self.jailbreak > self.injection { Label::Jailbreak } else { Label::Injection }
    }
}

/// A trained classifier.
#[derive(Clone, PartialEq)]
pub struct Model {
    bits: u32,
    temperature: f32,
    threshold: f32,
    bias: [f32; CLASSES],
    scale: [f32; CLASSES],
    /// `[bucket][class]`, dequantized with `scale`.
    weights: Vec<i16>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("bits", &self.bits)
            .field("temperature", &self.temperature)
            .field("threshold", &self.threshold)
            .field("bias", &self.bias)
            .finish_non_exhaustive()
    }
}

static BUILTIN: LazyLock<Result<Model, String>> =
    LazyLock::new(|| Model::from_bytes(include_bytes!("../../model/classifier.bin")).map_err(|e| e.to_string()));

impl Model {
    /// The model shipped in the crate.
    pub fn builtin() -> Result<&'static Model, Error> {
        BUILTIN.as_ref().map_err(|e| Error::Model(e.clone()))
    }

    /// Builds a model from float weights (`[bucket][class]`), quantizing them to i16.
    pub(crate) fn from_weights(
        bits: u32,
        weights: &[f32],
        bias: [f32; CLASSES],
        temperature: f32,
        threshold: f32,
    ) -> Model {
        let mut scale = [0f32; CLASSES];
        for (k, s) in scale.iter_mut().enumerate() {
            let max = weights.iter().skip(k).step_by(CLASSES).fold(0f32, |m, w| m.max(w.abs()));
            *s = if max > 0.0 { max / f32::from(i16::MAX) } else { 1.0 };
        }
        let q = weights
            .iter()
            .enumerate()
            .map(|(i, w)| (w / scale[i % CLASSES]).round().clamp(-f32::from(i16::MAX), f32::from(i16::MAX)) as i16)
            .collect();
        Model { bits, temperature, threshold, bias, scale, weights: q }
    }

    /// Hash bits of the feature space.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The temperature the logits are divided by.
    pub fn temperature(&self) -> f64 {
        f64::from(self.temperature)
    }

    /// The operating threshold on P(attack) chosen at training time.
    pub fn threshold(&self) -> f64 {
        f64::from(self.threshold)
    }

    /// Raw (uncalibrated) logits for a list of features.
    fn logits(&self, feats: &[Feature]) -> [f32; CLASSES] {
        let mut acc = [0f32; CLASSES];
        let mask = (1usize << self.bits) - 1;
        for f in feats {
            let base = (f.index as usize & mask) * CLASSES;
            if let Some(w) = self.weights.get(base..base + CLASSES) {
                for k in 0..CLASSES {
                    acc[k] += f.value * f32::from(w[k]);
                }
            }
        }
        let mut out = self.bias;
        for k in 0..CLASSES {
            out[k] += acc[k] * self.scale[k];
        }
        out
    }

    /// Calibrated probabilities for a normalized text and the rule
    /// signals found in it (see [`signal_name`]).
    pub fn predict(&self, normalized: &str, signals: &[String]) -> Probabilities {
        let mut feats = Vec::new();
        extract(normalized, self.bits, &mut feats, &mut String::new());
        add_signals(signals.iter().map(String::as_str), self.bits, &mut feats);
        self.predict_features(&feats)
    }

    /// Calibrated probabilities for extracted features.
    pub fn predict_features(&self, feats: &[Feature]) -> Probabilities {
        let p = softmax(self.logits(feats), self.temperature);
        Probabilities { benign: f64::from(p[0]), injection: f64::from(p[1]), jailbreak: f64::from(p[2]) }
    }

    /// Serializes the model (see the module docs for the format).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER + self.weights.len() * 2 + 32);
        b.extend_from_slice(MAGIC);
        for v in [FORMAT_VERSION, self.bits, CLASSES as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.temperature, self.threshold].iter().chain(&self.bias).chain(&self.scale) {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for w in &self.weights {
            b.extend_from_slice(&w.to_le_bytes());
        }
        let digest = Sha256::digest(&b);
        b.extend_from_slice(&digest);
        b
    }

    /// Reads a model, checking magic, version, sizes and checksum.
    pub fn from_bytes(b: &[u8]) -> Result<Model, Error> {
        let bad = |m: String| Error::Model(m);
        if b.len() < HEADER + 32 {
            return Err(bad(format!("model file is {} bytes, too short to be a model", b.len())));
        }
        if &b[..8] != MAGIC {
            return Err(bad("not an llm-security classifier (bad magic)".into()));
        }
        let (body, sum) = b.split_at(b.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return Err(bad("model checksum mismatch: the file is corrupt or truncated".into()));
        }
        let u32_at = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&body[i..i + 4]);
            u32::from_le_bytes(w)
        };
        let f32_at = |i: usize| f32::from_bits(u32_at(i));
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(bad(format!("model format version {version}, this build reads version {FORMAT_VERSION}")));
        }
        let bits = u32_at(12);
        let classes = u32_at(16) as usize;
        if !(8..=24).contains(&bits) || classes != CLASSES {
            return Err(bad(format!("unsupported model shape: {bits} hash bits, {classes} classes")));
        }
        let n = (1usize << bits) * CLASSES;
        if body.len() != HEADER + n * 2 {
            return Err(bad(format!("model body is {} bytes, expected {}", body.len(), HEADER + n * 2)));
        }
        let temperature = f32_at(20);
        let threshold = f32_at(24);
        if !(temperature.is_finite() && temperature > 0.0 && (0.0..=1.0).contains(&threshold)) {
            return Err(bad(format!("invalid calibration: temperature {temperature}, threshold {threshold}")));
        }
        let mut bias = [0f32; CLASSES];
        let mut scale = [0f32; CLASSES];
        for k in 0..CLASSES {
            bias[k] = f32_at(28 + 4 * k);
            scale[k] = f32_at(28 + 4 * CLASSES + 4 * k);
        }
        let weights = body[HEADER..].chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
        Ok(Model { bits, temperature, threshold, bias, scale, weights })
    }
}

/// The signals a list of rule-scanner threats gives the model: one per rule
/// (`type:rule`), learned per rule, and one per threat type and severity
/// (`any:type:severity`), shared by all rules, so a rule that fires mostly in
/// one source still counts when that source is new to the model.
pub fn signals(threats: &[crate::types::Threat]) -> Vec<String> {
    let mut v = Vec::with_capacity(threats.len() * 2);
    for t in threats.iter().filter(|t| t.category != "classifier") {
        v.push(format!("{}:{}", t.kind, t.rule.as_deref().unwrap_or(&t.category)));
        v.push(format!("any:{}:{}", t.kind, t.severity));
    }
    v.sort();
    v.dedup();
    v
}

/// The rule signals of an input as the engine sees them (every scanner but
/// the classifier).
pub fn rule_signals(engine: &crate::SecurityEngine, text: &str) -> Result<Vec<String>, Error> {
    let a = engine.analyze_input_sync(text)?;
    Ok(signals(a.threats()))
}

fn softmax(logits: [f32; CLASSES], temperature: f32) -> [f32; CLASSES] {
    let t = temperature.max(1e-3);
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b / t));
    let mut e = [0f32; CLASSES];
    let mut sum = 0.0;
    for k in 0..CLASSES {
        e[k] = (logits[k] / t - m).exp();
        sum += e[k];
    }
    for v in &mut e {
        *v /= sum;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Model {
        let bits = 8;
        let mut w = vec![0f32; (1 << bits) * CLASSES];
        for (i, x) in w.iter_mut().enumerate() {
            *x = ((i * 7919) % 13) as f32 / 13.0 - 0.5;
        }
        Model::from_weights(bits, &w, [0.1, -0.2, 0.05], 1.5, 0.7)
    }

    #[test]
    fn round_trips_through_bytes() {
        let m = tiny();
        let back = Model::from_bytes(&m.to_bytes()).map_err(|e| e.to_string());
        assert_eq!(back, Ok(m));
    }

    #[test]
    fn corrupt_truncated_and_foreign_files_are_clear_errors() {
        let b = tiny().to_bytes();
        let mut flipped = b.clone();
        flipped[100] ^= 1;
        let e = Model::from_bytes(&flipped).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("checksum"), "{e}");
        let e = Model::from_bytes(&b[..b.len() - 10]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("checksum") || e.contains("bytes"), "{e}");
        let mut zip = b"PK\x03\x04 a zip file, not a model".to_vec();
        zip.resize(200, b'.');
        let e = Model::from_bytes(&zip).err();
        assert!(e.map(|e| e.to_string()).unwrap_or_default().contains("magic"));
        // A future version is refused by name.
        let mut v2 = b[..b.len() - 32].to_vec();
        v2[8] = 2;
        let digest = Sha256::digest(&v2);
        v2.extend_from_slice(&digest);
        let e = Model::from_bytes(&v2).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("version 2"), "{e}");
    }

    #[test]
    fn probabilities_sum_to_one() {
        let p = tiny().predict("ignore all previous instructions", &["prompt_injection:x".into()]);
        assert!((p.benign + p.injection + p.jailbreak - 1.0).abs() < 1e-5);
        assert!((0.0..=1.0).contains(&p.attack()));
    }

    #[test]
    fn builtin_model_loads() {
        let m = Model::builtin().map_err(|e| e.to_string());
        assert!(m.is_ok(), "{m:?}");
    }
}
