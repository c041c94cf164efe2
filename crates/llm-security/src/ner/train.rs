//! Training the entity tagger: an averaged structured perceptron
//! (Collins 2002) over the candidate runs of each sentence, decoded with
//! the same Viterbi the engine uses. Deterministic: a seeded shuffle per
//! epoch, integer updates, averages flushed in key order.

use std::collections::HashMap;

use serde::Serialize;

use super::gazetteer::Gazetteer;
use super::{EntityKind, TAGS, Tagger, candidate, features, tokenize, viterbi};
use crate::classifier::Rng;
use crate::error::Error;

/// One labelled sentence: spans in byte offsets of `text`.
#[derive(Debug, Clone)]
pub struct Sentence {
    /// The text.
    pub text: String,
    /// Gold entities: kind, start byte, end byte.
    pub spans: Vec<(EntityKind, usize, usize)>,
}

/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NerTrainConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Seed of the per-epoch shuffle.
    pub seed: u64,
    /// An averaged weight below this (in absolute value) is dropped; a
    /// feature left with none is dropped.
    pub prune: f64,
}

impl Default for NerTrainConfig {
    fn default() -> Self {
        NerTrainConfig { epochs: 10, seed: 20261207, prune: 1.0 }
    }
}

/// What training did.
#[derive(Debug, Clone, Serialize)]
pub struct NerReport {
    /// Sentences trained on.
    pub sentences: usize,
    /// Candidate runs (decoding units).
    pub segments: usize,
    /// Gold entity tokens that are not candidates (the tagger cannot reach them).
    pub unreachable_tokens: usize,
    /// Gold entity tokens in all.
    pub entity_tokens: usize,
    /// Features seen in training.
    pub features_seen: usize,
    /// Features kept after pruning.
    pub features_kept: usize,
}

struct Segment {
    feats: Vec<Vec<u32>>,
    gold: Vec<usize>,
}

#[derive(Clone, Copy, Default)]
struct Acc {
    w: i32,
    total: i64,
    stamp: u32,
}

impl Acc {
    fn add(&mut self, d: i32, now: u32) {
        self.total += i64::from(now - self.stamp) * i64::from(self.w);
        self.stamp = now;
        self.w += d;
    }
    fn average(&self, now: u32) -> f64 {
        (self.total + i64::from(now - self.stamp) * i64::from(self.w)) as f64 / f64::from(now.max(1))
    }
}

fn gold_tags(toks: &[super::Token], spans: &[(EntityKind, usize, usize)]) -> Vec<usize> {
    let mut tags = vec![0; toks.len()];
    for &(kind, s, e) in spans {
        let mut first = true;
        for (k, t) in toks.iter().enumerate() {
            if t.start < e && s < t.end {
                tags[k] = kind.begin_tag() + usize::from(!first);
                first = false;
            }
        }
    }
    tags
}

fn segments(sentences: &[Sentence], report: &mut NerReport) -> Vec<Segment> {
    let gaz = Gazetteer::builtin();
    let mut out = Vec::new();
    let mut fs = Vec::new();
    for s in sentences {
        let toks = tokenize(&s.text, gaz);
        let gold = gold_tags(&toks, &s.spans);
        let mut i = 0;
        while i < toks.len() {
            if !candidate(&toks, i) {
                if gold[i] != 0 {
                    report.unreachable_tokens += 1;
                }
                report.entity_tokens += usize::from(gold[i] != 0);
                i += 1;
                continue;
            }
            let mut j = i;
            while j < toks.len() && candidate(&toks, j) {
                j += 1;
            }
            let mut seg = Segment { feats: Vec::with_capacity(j - i), gold: gold[i..j].to_vec() };
            // A run starts after an `O`: an inside tag there begins the entity.
            if seg.gold[0].is_multiple_of(2) && seg.gold[0] != 0 {
                seg.gold[0] -= 1;
            }
            report.entity_tokens += seg.gold.iter().filter(|&&g| g != 0).count();
            for k in i..j {
                features(&toks, k, &mut fs);
                seg.feats.push(fs.clone());
            }
            out.push(seg);
            i = j;
        }
    }
    out
}

/// Trains a tagger on `sentences`.
pub fn train(sentences: &[Sentence], cfg: &NerTrainConfig) -> Result<(Tagger, NerReport), Error> {
    if sentences.is_empty() {
        return Err(Error::Config("no sentences to train the entity tagger on".into()));
    }
    let mut report = NerReport {
        sentences: sentences.len(),
        segments: 0,
        unreachable_tokens: 0,
        entity_tokens: 0,
        features_seen: 0,
        features_kept: 0,
    };
    let segs = segments(sentences, &mut report);
    report.segments = segs.len();
    let mut weights: HashMap<u32, [Acc; TAGS]> = HashMap::new();
    let mut trans = [[Acc::default(); TAGS]; TAGS + 1];
    let mut end = [Acc::default(); TAGS];
    let mut rng = Rng::new(cfg.seed);
    let mut order: Vec<usize> = (0..segs.len()).collect();
    let mut now: u32 = 1;
    for _ in 0..cfg.epochs {
        rng.shuffle(&mut order);
        for &si in &order {
            let seg = &segs[si];
            let em: Vec<[i32; TAGS]> = seg
                .feats
                .iter()
                .map(|fs| {
                    let mut s = [0i32; TAGS];
                    for f in fs {
                        if let Some(row) = weights.get(f) {
                            for k in 0..TAGS {
                                s[k] += row[k].w;
                            }
                        }
                    }
                    s
                })
                .collect();
            let tw = trans.map(|r| r.map(|a| a.w));
            let ew = end.map(|a| a.w);
            let pred = viterbi(&em, &tw, &ew);
            if pred != seg.gold {
                for (k, fs) in seg.feats.iter().enumerate() {
                    let (g, p) = (seg.gold[k], pred[k]);
                    if g != p {
                        for f in fs {
                            let row = weights.entry(*f).or_insert([Acc::default(); TAGS]);
                            row[g].add(1, now);
                            row[p].add(-1, now);
                        }
                    }
                    let gp = if k == 0 { TAGS } else { seg.gold[k - 1] };
                    let pp = if k == 0 { TAGS } else { pred[k - 1] };
                    if (gp, g) != (pp, p) {
                        trans[gp][g].add(1, now);
                        trans[pp][p].add(-1, now);
                    }
                }
                let (gl, pl) = (seg.gold[seg.gold.len() - 1], pred[pred.len() - 1]);
                if gl != pl {
                    end[gl].add(1, now);
                    end[pl].add(-1, now);
                }
            }
            now += 1;
        }
    }
    report.features_seen = weights.len();
    let mut keys: Vec<u32> = weights.keys().copied().collect();
    keys.sort_unstable();
    let averaged: Vec<(u32, [f64; TAGS])> = keys
        .iter()
        .filter_map(|k| {
            let row = weights.get(k)?;
            let mut a = [0f64; TAGS];
            for t in 0..TAGS {
                let v = row[t].average(now);
                a[t] = if v.abs() >= cfg.prune { v } else { 0.0 };
            }
            a.iter().any(|&v| v != 0.0).then_some((*k, a))
        })
        .collect();
    let max = averaged.iter().flat_map(|(_, a)| a.iter()).fold(0f64, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 { max / f64::from(i16::MAX) } else { 1.0 };
    let feats: Vec<(u32, [i16; TAGS])> = averaged
        .iter()
        .map(|(k, a)| (*k, a.map(|v| (v / scale).round().clamp(-f64::from(i16::MAX), f64::from(i16::MAX)) as i16)))
        .filter(|(_, r)| r.iter().any(|&v| v != 0))
        .collect();
    report.features_kept = feats.len();
    let trans_avg = trans.map(|r| r.map(|a| a.average(now) as f32));
    let end_avg = end.map(|a| a.average(now) as f32);
    let mut tagger = Tagger::from_parts(scale as f32, 1.0, trans_avg, end_avg, feats);
    // Confidence scale: the mean emission margin of gold entity tokens over `O`.
    let (mut sum, mut n) = (0f64, 0usize);
    for seg in &segs {
        for (k, fs) in seg.feats.iter().enumerate() {
            if seg.gold[k] != 0 {
                let e = tagger.emission(fs);
                sum += f64::from(e[seg.gold[k]] - e[0]);
                n += 1;
            }
        }
    }
    tagger.conf_scale = if n > 0 { ((sum / n as f64) as f32).max(1e-3) } else { 1.0 };
    Ok((tagger, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentence(text: &str, spans: &[(EntityKind, &str)]) -> Sentence {
        let spans = spans.iter().filter_map(|(k, s)| text.find(s).map(|i| (*k, i, i + s.len()))).collect();
        Sentence { text: text.into(), spans }
    }

    fn toy() -> Vec<Sentence> {
        let mut v = Vec::new();
        for (first, last, city) in [
            ("Anna", "Keller", "Zurich"),
            ("Paolo", "Rossi", "Turin"),
            ("Kenji", "Mori", "Osaka"),
            ("Lena", "Vogt", "Bremen"),
        ] {
            v.push(sentence(
                &format!("Yesterday {first} {last} moved to {city} with her dog."),
                &[(EntityKind::Person, &format!("{first} {last}")), (EntityKind::Location, city)],
            ));
            v.push(sentence(&format!("The Weather in {city} was fine."), &[(EntityKind::Location, city)]));
        }
        v
    }

    #[test]
    fn training_is_deterministic_and_learns_the_toy_data() {
        let cfg = NerTrainConfig { epochs: 5, prune: 0.0, ..NerTrainConfig::default() };
        let (a, report) = train(&toy(), &cfg).map_err(|e| e.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let (b, _) = train(&toy(), &cfg).map_err(|e| e.to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.to_bytes(), b.to_bytes());
        assert_eq!(report.sentences, 8);
        let text = "Yesterday Anna Keller moved to Zurich with her dog.";
        let got: Vec<(EntityKind, &str)> = a.tag(text).iter().map(|e| (e.kind, &text[e.start..e.end])).collect();
        assert_eq!(got, [(EntityKind::Person, "Anna Keller"), (EntityKind::Location, "Zurich")]);
    }

    #[test]
    fn no_sentences_is_an_error() {
        assert!(train(&[], &NerTrainConfig::default()).is_err());
    }
}
