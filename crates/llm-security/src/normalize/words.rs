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
    let ac = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        // An NFA: a DFA over 1,600 words takes ~5 ms to build, paid on the
        // first spaced-out text; the NFA builds in a fraction of that and
        // only ever runs over rare, short runs.
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(&words)
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
    ends.sort_unstable();
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
