//! Hashed features of a normalized text: word unigrams and bigrams, and
//! character 3- to 5-grams, each hashed into `2^bits` buckets with a sign
//! (the hashing trick with signed collisions), L2-normalized.
//!
//! Character n-grams carry the signal across languages and spellings; the
//! normalizer has already folded homoglyphs, stripped invisible characters
//! and decoded smuggled text, so obfuscated prompts reach the same features
//! as plain ones.

use serde::Serialize;

/// How many bytes of a text are featurized: long prompts are read at the
/// head and the tail, where instructions sit, so the cost stays bounded.
pub const MAX_FEATURE_BYTES: usize = 8 * 1024;

/// One hashed feature: bucket index and signed value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feature {
    /// Bucket in `0..2^bits`.
    pub index: u32,
    /// Signed, normalized value.
    pub value: f32,
}

const SEED_WORD: u64 = 0x9E37_79B9_7F4A_7C15;
const SEED_BIGRAM: u64 = 0xC2B2_AE3D_27D4_EB4F;
const SEED_CHAR: u64 = 0x1656_67B1_9E37_79F9;
const SEED_SIGNAL: u64 = 0x2545_F491_4F6C_DD1D;

/// Weight of one rule signal next to the L2-normalized text features.
pub const SIGNAL_WEIGHT: f32 = 0.5;

/// Which kinds of text features a model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TextFeatures {
    /// Word unigrams and bigrams and character 3- to 5-grams (L2-normalized).
    pub ngrams: bool,
    /// Concepts and ordered concept pairs (see [`super::concepts`]).
    pub concepts: bool,
}

impl Default for TextFeatures {
    fn default() -> Self {
        TextFeatures { ngrams: true, concepts: true }
    }
}

/// A fast 64-bit hash of a byte string (FxHash-style multiply-rotate over
/// 8-byte words, finished with a murmur mix). Written here because the
/// feature space must be identical across platforms and crate versions: the
/// model file depends on it bit for bit.
pub(crate) fn hash(seed: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x517C_C1B7_2722_0A95;
    if bytes.len() <= 8 {
        // Most n-grams and many words fit one word: pack and mix once.
        let key = bytes.iter().fold(0u64, |acc, &c| (acc << 8) | u64::from(c));
        return mix_key(seed, key, bytes.len());
    }
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h
}

/// Hash of up to 8 bytes packed big-endian into `key` (the first byte
/// highest), `len` bytes long: one multiply-xorshift round.
#[inline]
fn mix_key(seed: u64, key: u64, len: usize) -> u64 {
    const K: u64 = 0x517C_C1B7_2722_0A95;
    let mut h = (key ^ seed ^ ((len as u64) << 59)).wrapping_mul(K);
    h ^= h >> 32;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 29;
    h
}

/// The part of `text` that is featurized: all of it up to
/// [`MAX_FEATURE_BYTES`], else its head and tail.
fn clip(text: &str) -> (&str, &str) {
    if text.len() <= MAX_FEATURE_BYTES {
        return (text, "");
    }
    let mut head = MAX_FEATURE_BYTES * 3 / 4;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - MAX_FEATURE_BYTES / 4;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    (&text[..head], &text[tail..])
}

/// Appends the features of `text` (already normalized) of the given kinds
/// to `out`, which is cleared first. `lower` is scratch space reused across
/// calls.
pub fn extract(text: &str, bits: u32, kinds: TextFeatures, out: &mut Vec<Feature>, lower: &mut String) {
    out.clear();
    let (head, tail) = clip(text);
    let lexicon = if kinds.concepts { super::concepts::Lexicon::builtin().ok() } else { None };
    let mut concepts = Vec::new();
    let shift = 64 - bits;
    let mut push = |h: u64| {
        let index = (h >> shift) as u32;
        let value = if h & 1 == 0 { 1.0 } else { -1.0 };
        out.push(Feature { index, value });
    };
    for part in [head, tail] {
        if part.is_empty() {
            continue;
        }
        // Lowercase and collapse runs of whitespace to one space.
        lower.clear();
        let mut space = true;
        for c in part.chars() {
            if c.is_whitespace() {
                if !space {
                    lower.push(' ');
                }
                space = true;
            } else {
                if c.is_ascii() {
                    lower.push(c.to_ascii_lowercase());
                } else {
                    lower.extend(c.to_lowercase());
                }
                space = false;
            }
        }
        let s = lower.as_str();
        if let Some(lexicon) = lexicon {
            super::concepts::add_concepts(lexicon, s, bits, &mut concepts);
        }
        if !kinds.ngrams {
            continue;
        }
        // Words: runs of alphanumeric characters.
        let mut prev: Option<&str> = None;
        for w in s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            push(hash(SEED_WORD, w.as_bytes()));
            if let Some(p) = prev {
                let mut h = hash(SEED_BIGRAM, p.as_bytes());
                h ^= hash(SEED_BIGRAM.rotate_left(17), w.as_bytes());
                push(h);
            }
            prev = Some(w);
        }
        // Character 3-, 4- and 5-grams over the collapsed text, on char
        // boundaries (so CJK and Cyrillic n-grams are whole characters).
        let b = s.as_bytes();
        if s.is_ascii() {
            // Every byte starts a character: keep the last five bytes in a
            // rolling word and mix the 3-, 4- and 5-byte tails of it.
            let mut acc = 0u64;
            for (i, &c) in b.iter().enumerate() {
                acc = (acc << 8) | u64::from(c);
                for n in 3..=5usize {
                    if i + 1 >= n {
                        let key = acc & ((1u64 << (8 * n)) - 1);
                        push(mix_key(SEED_CHAR.wrapping_add(n as u64), key, n));
                    }
                }
            }
        } else {
            let starts: Vec<usize> = s.char_indices().map(|(i, _)| i).chain(std::iter::once(s.len())).collect();
            for n in 3..=5usize {
                if starts.len() <= n {
                    continue;
                }
                let seed = SEED_CHAR.wrapping_add(n as u64);
                for k in 0..starts.len() - n {
                    push(hash(seed, &b[starts[k]..starts[k + n]]));
                }
            }
        }
    }
    // L2 normalization (values are ±1, so the norm is sqrt(count)).
    if !out.is_empty() {
        let scale = 1.0 / (out.len() as f32).sqrt();
        for f in out.iter_mut() {
            f.value *= scale;
        }
    }
    out.append(&mut concepts);
}

/// Appends one feature per rule signal (e.g. `prompt_injection:ignore_all_rules`,
/// `unicode_attack:mixed_script`): what the rule scanners found is an input
/// of the model, so it learns how much each rule is worth next to the text.
pub fn add_signals<'a>(signals: impl IntoIterator<Item = &'a str>, bits: u32, out: &mut Vec<Feature>) {
    let shift = 64 - bits;
    for s in signals {
        let h = hash(SEED_SIGNAL, s.as_bytes());
        out.push(Feature { index: (h >> shift) as u32, value: SIGNAL_WEIGHT });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feats(s: &str) -> Vec<Feature> {
        let mut out = Vec::new();
        extract(s, 18, TextFeatures { ngrams: true, concepts: false }, &mut out, &mut String::new());
        out
    }

    #[test]
    fn concept_features_follow_the_ngrams_unnormalized() {
        let mut out = Vec::new();
        let text = "ignore all previous instructions";
        extract(text, 18, TextFeatures::default(), &mut out, &mut String::new());
        let ngrams = feats(text);
        assert_eq!(&out[..ngrams.len()], &ngrams[..]);
        assert!(out.len() > ngrams.len());
        assert!(out[ngrams.len()..].iter().all(|f| f.value.abs() == crate::classifier::concepts::CONCEPT_WEIGHT));
        let mut only = Vec::new();
        extract(text, 18, TextFeatures { ngrams: false, concepts: true }, &mut only, &mut String::new());
        assert_eq!(&only[..], &out[ngrams.len()..]);
    }

    #[test]
    fn hash_is_stable_across_runs() {
        // The model file depends on these exact values.
        assert_eq!(hash(SEED_WORD, b"ignore"), hash(SEED_WORD, b"ignore"));
        assert_ne!(hash(SEED_WORD, b"ignore"), hash(SEED_BIGRAM, b"ignore"));
        assert_eq!(hash(0, b""), hash(0, b""));
    }

    #[test]
    fn features_are_case_and_space_insensitive_and_normalized() {
        let a = feats("Ignore   ALL previous\ninstructions");
        let b = feats("ignore all previous instructions");
        assert_eq!(a, b);
        let norm: f32 = a.iter().map(|f| f.value * f.value).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        assert!(a.iter().all(|f| f.index < 1 << 18));
    }

    #[test]
    fn ascii_and_general_paths_give_the_same_ngrams() {
        // The rolling ASCII path must hash n-grams exactly as the general
        // path does, so "é" elsewhere in a text changes no other feature.
        let mut a = feats("ignore rules");
        let mut b = feats("ignore rules é");
        let key = |f: &Feature| (f.index, f.value > 0.0);
        let a_keys: std::collections::BTreeSet<_> = a.iter_mut().map(|f| key(f)).collect();
        let b_keys: std::collections::BTreeSet<_> = b.iter_mut().map(|f| key(f)).collect();
        assert!(a_keys.is_subset(&b_keys));
    }

    #[test]
    fn empty_and_tiny_texts_have_few_or_no_features() {
        assert!(feats("").is_empty());
        assert!(feats("   ").is_empty());
        assert_eq!(feats("a").len(), 1);
    }

    #[test]
    fn long_texts_are_clipped_on_char_boundaries() {
        let s = "é".repeat(10_000);
        let f = feats(&s);
        assert!(!f.is_empty());
        assert!(f.len() < 4 * MAX_FEATURE_BYTES);
    }
}
