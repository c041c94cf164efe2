//! Names of people, places and organisations in free text: a sequence
//! tagger (an averaged structured perceptron over BIO tags with Viterbi
//! decoding), a gazetteer, and rules for addresses, dates of birth and
//! Chinese/Japanese names.
//!
//! **Tokens** are runs of letters and digits (with an inner apostrophe:
//! `O'Brien`, `d'Aire`), single punctuation characters, and runs of CJK
//! characters. **Features** of a token: its lowercased form and those of
//! two neighbours on each side, its 3-character prefix and suffix, its
//! short shape (`Xx`, `X.`, `dd-Xx`…) and the shapes of its neighbours,
//! whether it starts a sentence, the gazetteer kinds of it and its
//! neighbours (given name, surname, city, country, street word, company
//! suffix), and the previous word with its shape (`Mr` + `Xx`,
//! `Frau` + `Xx`, `in` + `Xx`). A transition weight per tag pair couples
//! neighbouring tags.
//!
//! **Name rules** run beside the tagger and win where they overlap it:
//! capitalised words after a title or a naming phrase (`Mr.`, `Frau`,
//! `Sra.`, `Dear`, `my name is`, `je m'appelle`, `меня зовут`), and a
//! gazetteer given name followed by a gazetteer surname.
//!
//! **Speed.** Only tokens that can begin or continue a name are tagged:
//! words that start with a capital letter, words in the gazetteer, and
//! short lowercase connectors between capitalised words (`de`, `von`,
//! `of`). Everything else is `O` without computing a feature, and each
//! run of candidate tokens is decoded on its own (it starts and ends next
//! to an `O`). Training uses the same rule, so the model is trained on
//! exactly the decisions it makes at run time.
//!
//! The model ships in the crate (`model/ner.bin`) and is rebuilt by
//! `llmsec train ner`. Format (little endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `LLMSECNE` |
//! | 4 | format version (u32, 1) |
//! | 4 | tag count `T` (u32, 7: O, B/I-PER, B/I-LOC, B/I-ORG) |
//! | 4 | weight scale (f32): a weight is its i16 times this |
//! | 4 | confidence scale (f32) |
//! | 4·T·(T+1) | transition weights (f32), from START and each tag to each tag |
//! | 4·T | weights of ending on each tag (f32) |
//! | 4 + n × (2 + len + 32) | training files: count (u32), then name length (u16), name, SHA-256 |
//! | 4 | feature count `f` (u32) |
//! | f × (4 + 1 + 2·k) | per feature in key order: key (u32), tag mask (u8), an i16 per set bit |
//! | 32 | SHA-256 of everything above |

pub mod gazetteer;
pub mod rules;
mod train;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use self::train::{NerReport, NerTrainConfig, Sentence, train};
use crate::classifier::TrainingInput;
use crate::error::Error;
use gazetteer::Gazetteer;

/// Number of tags: O, B-PER, I-PER, B-LOC, I-LOC, B-ORG, I-ORG.
pub const TAGS: usize = 7;
const MAGIC: &[u8; 8] = b"LLMSECNE";
const FORMAT_VERSION: u32 = 1;

/// What a tagged span names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A person's name.
    Person,
    /// A place: city, region, country, landmark.
    Location,
    /// A company, institution, party, team.
    Organization,
}

impl EntityKind {
    /// Index of the B- tag (the I- tag is one more).
    fn begin_tag(self) -> usize {
        match self {
            EntityKind::Person => 1,
            EntityKind::Location => 3,
            EntityKind::Organization => 5,
        }
    }

    fn of_tag(tag: usize) -> Option<EntityKind> {
        match tag {
            1 | 2 => Some(EntityKind::Person),
            3 | 4 => Some(EntityKind::Location),
            5 | 6 => Some(EntityKind::Organization),
            _ => None,
        }
    }

    /// The dataset name of the kind (`PERSON`, `LOCATION`, `ORGANIZATION`).
    pub fn label(self) -> &'static str {
        match self {
            EntityKind::Person => "PERSON",
            EntityKind::Location => "LOCATION",
            EntityKind::Organization => "ORGANIZATION",
        }
    }

    /// The kind a dataset label names, if it is one of the three.
    pub fn parse(s: &str) -> Option<EntityKind> {
        match s {
            "PERSON" | "PER" => Some(EntityKind::Person),
            "LOCATION" | "LOC" | "GPE" => Some(EntityKind::Location),
            "ORGANIZATION" | "ORG" => Some(EntityKind::Organization),
            _ => None,
        }
    }
}

/// One tagged span, in byte offsets of the text given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entity {
    /// What it names.
    pub kind: EntityKind,
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// A score in 0..=1 from the tagger's margin over tagging the span `O`
    /// (a logistic of the mean margin over the training set's typical
    /// margin); not a calibrated probability.
    pub confidence: f64,
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
pub(crate) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

const K: u64 = 0x517C_C1B7_2722_0A95;

#[inline]
fn step(h: u64, b: u8) -> u64 {
    (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K)
}

/// Hash of the lowercased word (stable across runs and platforms).
pub(crate) fn word_hash(w: &str) -> u64 {
    let mut h = 0xCBF2_9CE4_8422_2325;
    if w.is_ascii() {
        for b in w.bytes() {
            h = step(h, b.to_ascii_lowercase());
        }
    } else {
        let mut buf = [0u8; 4];
        for c in w.chars().flat_map(char::to_lowercase) {
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                h = step(h, b);
            }
        }
    }
    h
}

/// Final mixer (murmur3's fmix64).
#[inline]
fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

#[inline]
fn feat(template: u64, v: u64) -> u32 {
    (fmix(v ^ template.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32) as u32
}

/// A token: byte range and what the features need of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub(crate) start: usize,
    pub(crate) end: usize,
    lw: u64,
    pre: u64,
    suf: u64,
    shape: u64,
    gaz: u8,
    upper: bool,
    word: bool,
    short_lower: bool,
    sent_start: bool,
    cjk: bool,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !gazetteer::is_cjk_char(c)
}

/// Hash of the short shape: each character mapped to `X`, `x`, `d` or
/// itself, runs of one class collapsed, at most 6 symbols.
fn shape_hash(w: &str) -> u64 {
    let mut h = 0x84222325u64;
    let mut last = '\0';
    let mut n = 0;
    for c in w.chars() {
        let s = if c.is_uppercase() {
            'X'
        } else if c.is_lowercase() {
            'x'
        } else if c.is_numeric() {
            'd'
        } else {
            c
        };
        if s != last {
            n += 1;
            if n > 6 {
                break;
            }
            h = step(h, s as u32 as u8);
            last = s;
        }
    }
    h
}

fn affix_hashes(w: &str) -> (u64, u64) {
    let n = w.chars().count();
    if n <= 3 {
        return (0, 0);
    }
    let pre_end = w.char_indices().nth(3).map_or(w.len(), |(i, _)| i);
    let suf_start = w.char_indices().nth(n - 3).map_or(0, |(i, _)| i);
    (word_hash(&w[..pre_end]), word_hash(&w[suf_start..]))
}

/// Titles written with a full stop before a name.
fn is_title(w: &str) -> bool {
    const TITLES: &[&str] = &[
        "mr", "mrs", "ms", "dr", "prof", "sr", "sra", "srta", "hr", "fr", "st", "jr", "mme", "mlle", "dott", "gen",
        "col", "lt", "sgt", "rev", "hon", "dipl", "ing", "gov", "sen", "rep", "pres",
    ];
    w.len() <= 5 && TITLES.iter().any(|t| w.eq_ignore_ascii_case(t))
}

/// Splits `text` into tokens with their feature inputs.
pub(crate) fn tokenize(text: &str, gaz: &Gazetteer) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::with_capacity(text.len() / 5);
    let b = text.as_bytes();
    let mut newline = true;
    let mut next = 0;
    while next < b.len() {
        let i = next;
        // ASCII bytes are read as bytes; anything else as a char.
        let c = if b[i] < 0x80 { char::from(b[i]) } else { text[i..].chars().next().unwrap_or(' ') };
        next = i + c.len_utf8();
        if c.is_whitespace() {
            if c == '\n' {
                newline = true;
            }
            continue;
        }
        let mut end = next;
        let cjk = gazetteer::is_cjk_char(c);
        let word = is_word_char(c);
        if cjk {
            while let Some(d) = text[end..].chars().next().filter(|&d| gazetteer::is_cjk_char(d)) {
                end += d.len_utf8();
            }
        } else if word {
            loop {
                while end < b.len() && b[end].is_ascii_alphanumeric() {
                    end += 1;
                }
                let Some(d) = text[end..].chars().next() else { break };
                if d.is_ascii() && d != '\'' {
                    break;
                }
                // An apostrophe joins letters on both sides (`O'Brien`).
                let joins = matches!(d, '\'' | '’')
                    && text[end + d.len_utf8()..].chars().next().is_some_and(char::is_alphabetic);
                if !(is_word_char(d) || joins) {
                    break;
                }
                end += d.len_utf8();
            }
        }
        next = end;
        let w = &text[i..end];
        // A full stop after a title (`Mr.`, `Dr.`, `Sr.`) is an
        // abbreviation's, not a sentence's end.
        let abbreviation = |k: usize| k >= 2 && is_title(&text[out[k - 2].start..out[k - 2].end]);
        let prev_ends_sentence = out.last().is_none_or(|p: &Token| {
            let s = &text[p.start..p.end];
            (s == "." && !abbreviation(out.len()))
                || matches!(s, "!" | "?" | ":" | "\"" | "“" | "„" | "«" | "(" | "•" | "*" | "-" | "–")
        });
        let sent_start = newline || prev_ends_sentence;
        newline = false;
        let lw = word_hash(w);
        let upper = c.is_uppercase();
        let short_lower = word && c.is_lowercase() && w.chars().count() <= 3;
        // Affixes and shape are filled in below, only where features read them.
        out.push(Token {
            start: i,
            end,
            lw,
            pre: 0,
            suf: 0,
            shape: 0,
            gaz: if word { gaz.kinds(lw) } else { 0 },
            upper,
            word,
            short_lower: short_lower || matches!(w, "&" | "-" | "'" | "’"),
            sent_start,
            cjk,
        });
    }
    // Features of a candidate read its affixes and the shapes of it and its
    // two neighbours; other tokens never need them.
    let cand: Vec<bool> = (0..out.len()).map(|k| candidate(&out, k)).collect();
    for k in 0..out.len() {
        let near = cand[k] || (k > 0 && cand[k - 1]) || cand.get(k + 1).copied().unwrap_or(false);
        if !near {
            continue;
        }
        let w = &text[out[k].start..out[k].end];
        out[k].shape = if out[k].cjk { 0xC1 } else { shape_hash(w) };
        if cand[k] && out[k].word {
            (out[k].pre, out[k].suf) = affix_hashes(w);
        }
    }
    out
}

/// Titles and phrases after which capitalised words are a person's name
/// (`Mr`, `Frau`, `Sra`, `my name is`, `je m'appelle`, `меня зовут`), as
/// lowercased word hashes; the second list must follow `name`/`nome`/`naam`.
static NAME_CUES: LazyLock<(Vec<u64>, Vec<u64>)> = LazyLock::new(|| {
    let titles = [
        "mr",
        "mrs",
        "ms",
        "miss",
        "dr",
        "prof",
        "sir",
        "madam",
        "frau",
        "herr",
        "sr",
        "sra",
        "srta",
        "señor",
        "señora",
        "senhor",
        "senhora",
        "dona",
        "mme",
        "mlle",
        "monsieur",
        "madame",
        "signor",
        "signora",
        "sig",
        "dott",
        "dhr",
        "mevrouw",
        "mevr",
        "господин",
        "госпожа",
        "dear",
        "querido",
        "querida",
        "cher",
        "chère",
        "caro",
        "cara",
        "heiße",
        "heisse",
        "appelle",
        "m'appelle",
        "m’appelle",
        "llamo",
        "chiamo",
        "зовут",
        "chamo",
    ];
    let after_name = ["is", "é", "ist", "est", "es", "è", "was"];
    let mut titles: Vec<u64> = titles.iter().map(|w| word_hash(w)).collect();
    titles.sort_unstable();
    let mut after_name: Vec<u64> = after_name.iter().map(|w| word_hash(w)).collect();
    after_name.sort_unstable();
    (titles, after_name)
});

/// Person names from cues: capitalised words after a title or a naming
/// phrase, and a gazetteer given name followed by a gazetteer surname.
fn name_rules(text: &str, toks: &[Token]) -> Vec<Entity> {
    let (titles, after_name) = &*NAME_CUES;
    let name_h = [word_hash("name"), word_hash("nome"), word_hash("naam"), word_hash("nom"), word_hash("nombre")];
    let cap = |k: usize| toks.get(k).is_some_and(|t| t.upper && t.word && !t.cjk);
    let mut out: Vec<Entity> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        // Sorted lists: a binary search per token, most tokens are no cue.
        let cue = titles.binary_search(&t.lw).is_ok()
            || (after_name.binary_search(&t.lw).is_ok() && i > 0 && name_h.contains(&toks[i - 1].lw));
        if cue && t.word {
            let mut k = i + 1;
            // Skip the cue's full stop and any further titles ("Dear Mr. X").
            while toks.get(k).is_some_and(|n| &text[n.start..n.end] == "." || titles.binary_search(&n.lw).is_ok()) {
                k += 1;
            }
            let first = k;
            while cap(k) && k - first < 3 {
                k += 1;
            }
            if k > first {
                out.push(Entity {
                    kind: EntityKind::Person,
                    start: toks[first].start,
                    end: toks[k - 1].end,
                    confidence: 0.9,
                });
                i = k;
                continue;
            }
        }
        if cap(i) && t.gaz & gazetteer::GIVEN != 0 && cap(i + 1) && toks[i + 1].gaz & gazetteer::SURNAME != 0 {
            let mut k = i + 2;
            while cap(k) && toks[k].gaz & gazetteer::SURNAME != 0 && k - i < 3 {
                k += 1;
            }
            out.push(Entity { kind: EntityKind::Person, start: t.start, end: toks[k - 1].end, confidence: 0.8 });
            i = k;
            continue;
        }
        i += 1;
    }
    out
}

/// Whether token `i` may carry a non-`O` tag (see the module docs).
pub(crate) fn candidate(toks: &[Token], i: usize) -> bool {
    let t = &toks[i];
    if t.cjk {
        return false;
    }
    if t.upper {
        return true;
    }
    let name_like = gazetteer::GIVEN | gazetteer::SURNAME | gazetteer::CITY | gazetteer::COUNTRY;
    if t.word && t.gaz & name_like != 0 && t.end - t.start >= 4 {
        return true;
    }
    t.short_lower && i > 0 && toks[i - 1].upper && toks[i + 1..toks.len().min(i + 3)].iter().any(|n| n.upper)
}

const BOS: u64 = 0xB05;
const EOS: u64 = 0xE05;

/// The hashed features of token `i`.
pub(crate) fn features(toks: &[Token], i: usize, out: &mut Vec<u32>) {
    out.clear();
    let t = &toks[i];
    let lw = |j: isize| -> u64 {
        let k = i as isize + j;
        if k < 0 { BOS } else { toks.get(k as usize).map_or(EOS, |x| x.lw) }
    };
    let shape = |j: isize| -> u64 {
        let k = i as isize + j;
        if k < 0 { BOS } else { toks.get(k as usize).map_or(EOS, |x| x.shape) }
    };
    let gaz = |j: isize| -> u8 {
        let k = i as isize + j;
        if k < 0 { 0 } else { toks.get(k as usize).map_or(0, |x| x.gaz) }
    };
    out.push(feat(0, 1));
    out.push(feat(1, t.lw));
    out.push(feat(2, lw(-1)));
    out.push(feat(3, lw(1)));
    out.push(feat(4, lw(-2)));
    out.push(feat(5, lw(2)));
    if t.pre != 0 {
        out.push(feat(6, t.pre));
        out.push(feat(7, t.suf));
    }
    out.push(feat(8, t.shape));
    out.push(feat(9, shape(-1).wrapping_mul(31) ^ t.shape));
    out.push(feat(10, t.shape.wrapping_mul(31) ^ shape(1)));
    out.push(feat(11, t.shape ^ u64::from(t.sent_start)));
    for (template, g) in [(12u64, gaz(0)), (13, gaz(-1)), (14, gaz(1))] {
        let mut bits = g;
        while bits != 0 {
            let b = bits.trailing_zeros();
            out.push(feat(template, u64::from(b) + 1 + if t.sent_start && template == 12 { 100 } else { 0 }));
            bits &= bits - 1;
        }
    }
    out.push(feat(15, lw(-1).wrapping_mul(31) ^ t.shape));
    out.push(feat(16, t.shape.wrapping_mul(31) ^ lw(1)));
    out.push(feat(17, lw(-1).wrapping_mul(31) ^ t.lw));
    out.push(feat(18, lw(-2).wrapping_mul(31) ^ lw(-1)));
}

/// A trained tagger.
#[derive(Clone, PartialEq)]
pub struct Tagger {
    scale: f32,
    conf_scale: f32,
    trans: [[f32; TAGS]; TAGS + 1],
    end: [f32; TAGS],
    /// Quantized features in key order (the serialized form).
    feats: Vec<(u32, [i16; TAGS])>,
    index: HashMap<u32, u32, BuildHasherDefault<PreHashed>>,
    inputs: Vec<TrainingInput>,
}

impl std::fmt::Debug for Tagger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tagger")
            .field("features", &self.feats.len())
            .field("scale", &self.scale)
            .field("conf_scale", &self.conf_scale)
            .field("inputs", &self.inputs)
            .finish_non_exhaustive()
    }
}

static BUILTIN: LazyLock<Result<Tagger, String>> =
    LazyLock::new(|| Tagger::from_bytes(include_bytes!("../../model/ner.bin")).map_err(|e| e.to_string()));

fn valid_transition(prev: usize, cur: usize) -> bool {
    // I-X only after B-X or I-X; prev == TAGS is START.
    cur == 0 || cur % 2 == 1 || (prev < TAGS && (prev == cur || prev + 1 == cur))
}

impl Tagger {
    /// The tagger shipped in the crate.
    pub fn builtin() -> Result<&'static Tagger, Error> {
        BUILTIN.as_ref().map_err(|e| Error::Model(e.clone()))
    }

    /// Builds a tagger from quantized parts.
    pub(crate) fn from_parts(
        scale: f32,
        conf_scale: f32,
        trans: [[f32; TAGS]; TAGS + 1],
        end: [f32; TAGS],
        feats: Vec<(u32, [i16; TAGS])>,
    ) -> Tagger {
        let index = feats.iter().enumerate().map(|(i, (k, _))| (*k, i as u32)).collect();
        Tagger { scale, conf_scale, trans, end, feats, index, inputs: Vec::new() }
    }

    /// The files it was trained from.
    pub fn training_inputs(&self) -> &[TrainingInput] {
        &self.inputs
    }

    /// Records the files it was trained from.
    pub fn with_training_inputs(mut self, inputs: Vec<TrainingInput>) -> Tagger {
        self.inputs = inputs;
        self
    }

    /// Number of features kept.
    pub fn feature_count(&self) -> usize {
        self.feats.len()
    }

    fn emission(&self, fs: &[u32]) -> [f32; TAGS] {
        let mut s = [0i32; TAGS];
        for f in fs {
            if let Some(&i) = self.index.get(f) {
                let row = &self.feats[i as usize].1;
                for k in 0..TAGS {
                    s[k] += i32::from(row[k]);
                }
            }
        }
        s.map(|v| v as f32 * self.scale)
    }

    /// The entities in `text`.
    pub fn tag(&self, text: &str) -> Vec<Entity> {
        let toks = tokenize(text, Gazetteer::builtin());
        let tags = self.tag_tokens(&toks);
        let mut out = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            let Some(kind) = EntityKind::of_tag(tags[i].0) else {
                i += 1;
                continue;
            };
            let mut j = i + 1;
            while j < toks.len() && tags[j].0 == kind.begin_tag() + 1 {
                j += 1;
            }
            let margin = tags[i..j].iter().map(|t| t.1).sum::<f32>() / (j - i) as f32;
            let confidence = 1.0 / (1.0 + f64::from(-margin / self.conf_scale.max(1e-6)).exp());
            out.push(Entity { kind, start: toks[i].start, end: toks[j - 1].end, confidence });
            i = j;
        }
        // Name rules win over the tagger's overlapping spans.
        let named = name_rules(text, &toks);
        if !named.is_empty() {
            out.retain(|e| !named.iter().any(|n| e.start < n.end && n.start < e.end));
            out.extend(named);
            out.sort_by_key(|e| (e.start, e.end));
        }
        out
    }

    /// Tag and emission margin over `O` per token.
    pub(crate) fn tag_tokens(&self, toks: &[Token]) -> Vec<(usize, f32)> {
        let mut tags = vec![(0usize, 0f32); toks.len()];
        let mut fs = Vec::with_capacity(32);
        let mut em: Vec<[f32; TAGS]> = Vec::with_capacity(8);
        let mut i = 0;
        while i < toks.len() {
            if !candidate(toks, i) {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < toks.len() && candidate(toks, j) {
                j += 1;
            }
            em.clear();
            for k in i..j {
                features(toks, k, &mut fs);
                em.push(self.emission(&fs));
            }
            if em.len() == 1 {
                // One token: the best single tag that may start and end a run.
                let e = &em[0];
                let score = |t: usize| self.trans[TAGS][t] + e[t] + self.end[t];
                let best = (0..TAGS)
                    .filter(|&t| valid_transition(TAGS, t))
                    .fold(0, |b, t| if score(t) > score(b) { t } else { b });
                tags[i] = (best, e[best] - e[0]);
            } else {
                let path = viterbi(&em, &self.trans, &self.end);
                for (k, &t) in path.iter().enumerate() {
                    tags[i + k] = (t, em[k][t] - em[k][0]);
                }
            }
            i = j;
        }
        tags
    }

    /// Serializes the tagger (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.feats.len() * 8);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&(TAGS as u32).to_le_bytes());
        b.extend_from_slice(&self.scale.to_le_bytes());
        b.extend_from_slice(&self.conf_scale.to_le_bytes());
        for v in self.trans.iter().flatten().chain(&self.end) {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(self.inputs.len() as u32).to_le_bytes());
        for input in &self.inputs {
            let name = &input.name.as_bytes()[..input.name.len().min(usize::from(u16::MAX))];
            b.extend_from_slice(&(name.len() as u16).to_le_bytes());
            b.extend_from_slice(name);
            let mut digest = [0u8; 32];
            // An invalid hex digest is stored as zeros and never matches a file.
            let _ = hex::decode_to_slice(&input.sha256, &mut digest);
            b.extend_from_slice(&digest);
        }
        b.extend_from_slice(&(self.feats.len() as u32).to_le_bytes());
        for (key, row) in &self.feats {
            b.extend_from_slice(&key.to_le_bytes());
            let mask = row.iter().enumerate().fold(0u8, |m, (k, &w)| if w != 0 { m | 1 << k } else { m });
            b.push(mask);
            for &w in row.iter().filter(|&&w| w != 0) {
                b.extend_from_slice(&w.to_le_bytes());
            }
        }
        let digest = Sha256::digest(&b);
        b.extend_from_slice(&digest);
        b
    }

    /// Reads a tagger, checking magic, version, sizes and checksum.
    pub fn from_bytes(b: &[u8]) -> Result<Tagger, Error> {
        let bad = |m: &str| Error::Model(format!("entity tagger: {m}"));
        if b.len() < 8 + 32 || &b[..8] != MAGIC {
            return Err(bad("not an llm-security entity tagger (bad magic or too short)"));
        }
        let (body, sum) = b.split_at(b.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return Err(bad("checksum mismatch: the file is corrupt or truncated"));
        }
        let mut r = Reader { b: body, at: 8 };
        let truncated = || bad("truncated");
        let version = r.u32().ok_or_else(truncated)?;
        if version != FORMAT_VERSION {
            return Err(bad(&format!("format version {version}, this build reads {FORMAT_VERSION}")));
        }
        if r.u32().ok_or_else(truncated)? as usize != TAGS {
            return Err(bad("unsupported tag count"));
        }
        let scale = r.f32().ok_or_else(truncated)?;
        let conf_scale = r.f32().ok_or_else(truncated)?;
        let mut trans = [[0f32; TAGS]; TAGS + 1];
        for v in trans.iter_mut().flatten() {
            *v = r.f32().ok_or_else(truncated)?;
        }
        let mut end = [0f32; TAGS];
        for v in &mut end {
            *v = r.f32().ok_or_else(truncated)?;
        }
        let finite = trans.iter().flatten().chain(&end).chain([&scale, &conf_scale]).all(|v| v.is_finite());
        if !finite {
            return Err(bad("a weight is not a finite number"));
        }
        let n = r.u32().ok_or_else(truncated)? as usize;
        let mut inputs = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let len = usize::from(r.u16().ok_or_else(truncated)?);
            let name = String::from_utf8_lossy(r.take(len).ok_or_else(truncated)?).into_owned();
            let sha256 = hex::encode(r.take(32).ok_or_else(truncated)?);
            inputs.push(TrainingInput { name, sha256 });
        }
        let f = r.u32().ok_or_else(truncated)? as usize;
        let mut feats = Vec::with_capacity(f.min(1 << 20));
        let mut last: Option<u32> = None;
        for _ in 0..f {
            let key = r.u32().ok_or_else(truncated)?;
            if last.is_some_and(|l| l >= key) {
                return Err(bad("feature keys out of order"));
            }
            last = Some(key);
            let mask = r.take(1).ok_or_else(truncated)?[0];
            let mut row = [0i16; TAGS];
            for (k, w) in row.iter_mut().enumerate() {
                if mask & (1 << k) != 0 {
                    *w = r.u16().ok_or_else(truncated)? as i16;
                }
            }
            feats.push((key, row));
        }
        if r.at != body.len() {
            return Err(bad("trailing bytes after the features"));
        }
        Ok(Tagger::from_parts(scale, conf_scale, trans, end, feats).with_training_inputs(inputs))
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn f32(&mut self) -> Option<f32> {
        self.u32().map(f32::from_bits)
    }
}

/// The best BIO-valid tag path over emission scores `em`, starting after
/// START and ending before `O`.
pub(crate) fn viterbi<W: Copy + Into<f64>>(
    em: &[[W; TAGS]],
    trans: &[[W; TAGS]; TAGS + 1],
    end: &[W; TAGS],
) -> Vec<usize> {
    let n = em.len();
    if n == 0 {
        return Vec::new();
    }
    let neg = f64::NEG_INFINITY;
    let mut score = vec![[neg; TAGS]; n];
    let mut back = vec![[0usize; TAGS]; n];
    for t in 0..TAGS {
        if valid_transition(TAGS, t) {
            score[0][t] = trans[TAGS][t].into() + em[0][t].into();
        }
    }
    for i in 1..n {
        for t in 0..TAGS {
            let mut best = neg;
            let mut arg = 0;
            for p in 0..TAGS {
                if score[i - 1][p] == neg || !valid_transition(p, t) {
                    continue;
                }
                let s = score[i - 1][p] + trans[p][t].into();
                if s > best {
                    best = s;
                    arg = p;
                }
            }
            if best > neg {
                score[i][t] = best + em[i][t].into();
                back[i][t] = arg;
            }
        }
    }
    let mut best = neg;
    let mut last = 0;
    for t in 0..TAGS {
        let s = score[n - 1][t] + end[t].into();
        if s > best {
            best = s;
            last = t;
        }
    }
    let mut path = vec![0; n];
    path[n - 1] = last;
    for i in (1..n).rev() {
        path[i - 1] = back[i][path[i]];
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_apostrophes_inside_words_and_split_punctuation() {
        let text = "Mr. O'Brien lives in São Paulo, Brasil.";
        let toks = tokenize(text, Gazetteer::builtin());
        let words: Vec<&str> = toks.iter().map(|t| &text[t.start..t.end]).collect();
        assert_eq!(words, ["Mr", ".", "O'Brien", "lives", "in", "São", "Paulo", ",", "Brasil", "."]);
        assert!(toks[0].sent_start && !toks[2].sent_start);
    }

    #[test]
    fn viterbi_never_starts_an_entity_with_an_inside_tag() {
        let mut em = [[0f32; TAGS]; 2];
        em[0][2] = 10.0; // I-PER first: invalid
        em[0][1] = 1.0;
        em[1][2] = 5.0;
        let trans = [[0f32; TAGS]; TAGS + 1];
        let path = viterbi(&em, &trans, &[0f32; TAGS]);
        assert_eq!(path, vec![1, 2]);
    }

    #[test]
    fn the_builtin_tagger_round_trips_and_finds_a_name_and_a_city() {
        let t = Tagger::builtin().map_err(|e| e.to_string());
        let Ok(t) = t else { panic!("{t:?}") };
        assert_eq!(Tagger::from_bytes(&t.to_bytes()).ok().as_ref(), Some(t));
        let text = "Yesterday Maria Schmidt flew from Berlin to Lisbon.";
        let found = t.tag(text);
        let kinds: Vec<(EntityKind, &str)> = found.iter().map(|e| (e.kind, &text[e.start..e.end])).collect();
        assert!(kinds.contains(&(EntityKind::Person, "Maria Schmidt")), "{kinds:?}");
        assert!(kinds.contains(&(EntityKind::Location, "Berlin")), "{kinds:?}");
        assert!(found.iter().all(|e| (0.0..=1.0).contains(&e.confidence)));
    }

    #[test]
    fn names_after_titles_and_naming_phrases() {
        let Ok(t) = Tagger::builtin() else { return };
        for (text, name) in [
            ("Please ask Mrs. Okonkwo about the invoice.", "Okonkwo"),
            ("Dear Dr. Abernathy, thank you.", "Abernathy"),
            ("Hi, my name is Tamsin and I need help.", "Tamsin"),
            ("Bitte rufen Sie Frau Brandtner an.", "Brandtner"),
            ("Bonjour, je m'appelle Elodie.", "Elodie"),
        ] {
            let found: Vec<(EntityKind, &str)> = t.tag(text).iter().map(|e| (e.kind, &text[e.start..e.end])).collect();
            assert!(found.contains(&(EntityKind::Person, name)), "{text}: {found:?}");
        }
    }

    fn spans_are_sound(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        let Ok(t) = Tagger::builtin() else { return Ok(()) };
        for e in t.tag(text) {
            proptest::prop_assert!(e.start < e.end && e.end <= text.len(), "{e:?}");
            proptest::prop_assert!(text.is_char_boundary(e.start) && text.is_char_boundary(e.end));
            proptest::prop_assert!((0.0..=1.0).contains(&e.confidence));
        }
        for m in rules::find(text) {
            proptest::prop_assert!(m.start < m.end && m.end <= text.len(), "{m:?}");
            proptest::prop_assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end));
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn any_text_gives_spans_inside_it(text in "\\PC{0,300}") {
            spans_are_sound(&text)?;
        }

        #[test]
        fn name_and_address_shaped_text_gives_spans_inside_it(
            text in "((Mr\\.|Frau|born on|[A-ZÄÖÜ][a-zäöüß]{1,8}|[0-9]{1,5}|Street|straße|rue|Via|Apt\\.|さん|王|東京都|[,.\\n'’ -]) ?){0,40}"
        ) {
            spans_are_sound(&text)?;
        }
    }

    #[test]
    fn corrupt_models_are_errors_not_panics() {
        let Ok(t) = Tagger::builtin() else { return };
        let bytes = t.to_bytes();
        for cut in [0, 7, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(Tagger::from_bytes(&bytes[..cut]).is_err());
        }
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert!(Tagger::from_bytes(&flipped).is_err());
    }
}
