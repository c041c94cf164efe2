//! A small English-and-rules vocabulary (`words.txt`) and the word
//! segmenter built on it.
//!
//! Text spelled one letter per space (`s t a r t i n g i n s t r u c t i o n s`)
//! loses its word boundaries: joining the letters gives one long run, and the
//! rules, which match whole words, need the boundaries back. The segmenter
//! finds them by dynamic programming over the vocabulary's words found in the
//! run (one overlapping Aho-Corasick pass), preferring the reading with the
//! fewest pieces. Letters no word covers are kept together as one piece.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind};

/// The vocabulary file: `#` comment lines, then one lowercase word per line.
const WORDS_TXT: &str = include_str!("words.txt");

/// Runs longer than this many letters are left unsegmented: the work is
/// linear, but a cap keeps an adversarial 32 KiB of spaced letters cheap.
const MAX_RUN: usize = 1024;

struct Vocabulary {
    /// Sorted, lowercase.
    words: Vec<&'static str>,
    /// Every word, ASCII case-insensitive, for overlapping search.
    ac: Option<AhoCorasick>,
}

static VOCABULARY: LazyLock<Vocabulary> = LazyLock::new(|| {
    let mut words: Vec<&'static str> =
        WORDS_TXT.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    words.sort_unstable();
    words.dedup();
    // The segmenter also knows the words of the intent grammar's lexicons
    // (Latin-script languages, diacritics stripped as the normalizer
    // strips them), so a spaced-out `i g n o r e z l a c o m m a n d e`
    // is cut at the words an override is made of, in every language the
    // grammar reads. `is_word` stays English: other detectors use it to
    // tell words from gibberish.
    let mut seg: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    seg.extend(lexicon_words(INTENT_TOML));
    seg.extend(SHORT_WORDS.iter().map(|w| (*w).to_owned()));
    seg.sort_unstable();
    seg.dedup();
    let ac = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        // An NFA: a DFA over 1,600 words takes ~5 ms to build, paid on the
        // first spaced-out text; the NFA builds in a fraction of that and
        // only ever runs over rare, short runs.
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(&seg)
        .ok();
    Vocabulary { words, ac }
});

/// True when `w` (ASCII, any case) is a vocabulary word.
pub(crate) fn is_word(w: &[u8]) -> bool {
    let v = &*VOCABULARY;
    v.words.binary_search_by(|probe| cmp_ignore_case(probe.as_bytes(), w)).is_ok()
}

/// Every vocabulary word, sorted and lowercase.
pub(crate) fn all() -> &'static [&'static str] {
    &VOCABULARY.words
}

/// True when `w` starts some vocabulary word (`apolog` of `apologize`).
#[cfg(test)]
pub(crate) fn is_prefix(w: &[u8]) -> bool {
    let w = w.to_ascii_lowercase();
    VOCABULARY.words.iter().any(|v| v.as_bytes().starts_with(&w))
}

/// English endings a listed word may take and still count as one word.
const INFLECTIONS: [&str; 10] = ["s", "es", "ed", "d", "ing", "ment", "ments", "er", "ers", "ly"];

/// The intent grammar's lexicons, read for their words.
const INTENT_TOML: &str = include_str!("../../patterns/intent.toml");

/// Two-letter function words of the languages the intent grammar reads
/// with Latin letters (articles, pronouns, prepositions: `la`, `tu`, `de`),
/// which English lacks: two spaced-out letters spelling one of them are a
/// word (`l.a`, `t u`), as two spelling an English word are.
const SHORT_WORDS: [&str; 34] = [
    "al", "au", "ce", "ci", "da", "de", "di", "du", "el", "em", "en", "er", "es", "et", "il", "im", "ja", "je", "la",
    "le", "lo", "mi", "na", "ne", "os", "ou", "se", "si", "su", "ta", "te", "tu", "un", "zu",
];

/// A word of the segmenter's vocabulary or one of [`SHORT_WORDS`]: what two
/// spaced-out letters must spell to be read as a word.
pub(crate) fn is_short_word(w: &[u8]) -> bool {
    is_word(w) || SHORT_WORDS.iter().any(|s| s.as_bytes().eq_ignore_ascii_case(w))
}

/// The words in the quoted strings of a lexicon file, diacritics stripped
/// and lowercased: those made of ASCII letters only, three or more (two-letter
/// words come from [`SHORT_WORDS`] alone).
fn lexicon_words(toml: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in toml.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for (k, quoted) in line.split('"').enumerate() {
            if k % 2 == 0 {
                continue;
            }
            for w in quoted.split(|c: char| !c.is_alphabetic()) {
                let folded: Option<String> =
                    w.chars().map(|c| super::strip_diacritics(c).or(Some(c)).map(|c| c.to_ascii_lowercase())).collect();
                if let Some(f) = folded.filter(|f| f.len() >= 3 && f.bytes().all(|b| b.is_ascii_lowercase())) {
                    out.push(f);
                }
            }
        }
    }
    out
}

fn cmp_ignore_case(word: &[u8], w: &[u8]) -> std::cmp::Ordering {
    word.iter().copied().cmp(w.iter().map(u8::to_ascii_lowercase))
}

/// Where word boundaries fall in `letters` (a run of ASCII letters and
/// digits): the sorted offsets `k` (0 < k < len) with a boundary between
/// `letters[k - 1]` and `letters[k]`. Empty when the run reads as one piece.
pub(crate) fn segment(letters: &[u8]) -> Vec<usize> {
    let n = letters.len();
    let Some(ac) = VOCABULARY.ac.as_ref() else { return Vec::new() };
    if !(2..=MAX_RUN).contains(&n) {
        return Vec::new();
    }
    // Costs: a word is one piece (a one-letter word slightly more, so `a`
    // and `i` do not win ties against longer readings); a letter no word
    // covers costs a piece of its own, so covering letters with words wins.
    const WORD: u32 = 10;
    const ONE_LETTER_WORD: u32 = 11;
    const UNCOVERED: u32 = 10;
    let mut ends: Vec<(usize, usize)> =
        ac.try_find_overlapping_iter(letters).map(|it| it.map(|m| (m.end(), m.start())).collect()).unwrap_or_default();
    // A word with an inflection the list leaves out (`appear` + `s`,
    // `develop` + `ment`) is one word, not a word and a stray piece.
    let inflected: Vec<(usize, usize)> = ends
        .iter()
        .filter(|&&(end, start)| end - start >= 3)
        .flat_map(|&(end, start)| {
            INFLECTIONS.iter().filter_map(move |suf| {
                let to = end + suf.len();
                letters.get(end..to).filter(|l| l.eq_ignore_ascii_case(suf.as_bytes())).map(|_| (to, start))
            })
        })
        .collect();
    ends.extend(inflected);
    ends.sort_unstable();
    ends.dedup();
    // best[i]: cost of reading letters[..i]; from[i]: where its last piece
    // starts, and whether that piece is a word.
    let mut best = vec![u32::MAX; n + 1];
    let mut from = vec![(0usize, false); n + 1];
    best[0] = 0;
    let mut e = 0;
    for i in 1..=n {
        best[i] = best[i - 1] + UNCOVERED;
        from[i] = (i - 1, false);
        while e < ends.len() && ends[e].0 == i {
            let start = ends[e].1;
            let cost = if i - start == 1 { ONE_LETTER_WORD } else { WORD };
            if best[start] + cost < best[i] {
                best[i] = best[start] + cost;
                from[i] = (start, true);
            }
            e += 1;
        }
    }
    // Walk back; a boundary goes before every word and after it, but not
    // between two uncovered letters.
    let mut cuts = Vec::new();
    let mut i = n;
    let mut next_is_word = false;
    while i > 0 {
        let (start, word) = from[i];
        if i < n && (word || next_is_word) {
            cuts.push(i);
        }
        next_is_word = word;
        i = start;
    }
    cuts.reverse();
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spaced(s: &str) -> String {
        let cuts = segment(s.as_bytes());
        let mut out = String::new();
        for (i, c) in s.char_indices() {
            if cuts.contains(&i) {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn the_vocabulary_file_is_sorted_lowercase_ascii_words() {
        let words: Vec<&str> = WORDS_TXT.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        assert!(words.len() > 1000);
        assert!(words.windows(2).all(|w| w[0] < w[1]), "words.txt must stay sorted and unique");
        assert!(words.iter().all(|w| w.bytes().all(|b| b.is_ascii_lowercase())), "lowercase letters only");
    }

    #[test]
    fn inflections_and_other_languages_are_cut_as_words() {
        assert_eq!(spaced("appearsbefore"), "appears before");
        assert_eq!(spaced("yourdevelopment"), "your development");
        assert_eq!(spaced("ignorezlacommande"), "ignorez la commande");
        assert!(is_short_word(b"la") && is_short_word(b"TU") && is_short_word(b"is"));
        assert!(!is_short_word(b"ab") && !is_short_word(b"eg") && !is_short_word(b"ie"));
    }

    #[test]
    fn words_are_found_in_any_case() {
        assert!(is_word(b"ignore") && is_word(b"IGNORE") && is_word(b"Instructions"));
        assert!(!is_word(b"ignorex") && !is_word(b"") && !is_word(b"zzq"));
    }

    #[test]
    fn runs_split_into_their_words() {
        assert_eq!(spaced("startinginstructions"), "starting instructions");
        assert_eq!(spaced("theprevious"), "the previous");
        assert_eq!(spaced("IhavebeenPWNED"), "I have been PWNED");
        assert_eq!(spaced("ignore"), "ignore");
    }

    #[test]
    fn letters_no_word_covers_stay_together() {
        assert_eq!(spaced("xqzv"), "xqzv");
        assert_eq!(spaced("xqzvprompt"), "xqzv prompt");
        assert!(segment(b"").is_empty() && segment(b"a").is_empty());
        assert!(segment(&vec![b'a'; MAX_RUN + 1]).is_empty(), "over the cap: one piece");
    }
}
