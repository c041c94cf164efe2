//! The gazetteer: given names, surnames, cities and regions, countries,
//! street-type words and company suffixes in en, de, fr, es, pt, it, nl,
//! zh, ja and ru, read once from `data/gazetteer.tsv` (built from Faker's
//! per-locale lists by `scripts/build-gazetteers.py`; its header names the
//! version and licence).
//!
//! Latin and Cyrillic entries are keyed by the hash of each lowercased word
//! (a multi-word entry such as "New York" marks each of its words as part of
//! a place); Chinese and Japanese entries, which are not split by spaces,
//! are kept whole for the CJK name and place rules.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::LazyLock;

use super::{PreHashed, word_hash};

/// A given name (one word of one).
pub const GIVEN: u8 = 1;
/// A surname.
pub const SURNAME: u8 = 2;
/// A city or region, or a single word of a multi-word one.
pub const CITY: u8 = 4;
/// A country, or a word of one.
pub const COUNTRY: u8 = 8;
/// A street-type word (Street, Straße, rue, Via…).
pub const STREET: u8 = 16;
/// A company suffix (GmbH, Inc, Ltda…).
pub const COMPANY: u8 = 32;
/// A word of a multi-word place name, not the whole of one.
pub const PLACE_PART: u8 = 64;

/// The file as committed.
const SOURCE: &str = include_str!("../../data/gazetteer.tsv");

/// Words and their kinds, and whole CJK entries.
pub struct Gazetteer {
    words: HashMap<u64, u8, BuildHasherDefault<PreHashed>>,
    /// CJK surnames, longest first.
    pub cjk_surnames: Vec<&'static str>,
    /// CJK given names.
    pub cjk_given: Vec<&'static str>,
    /// CJK cities, prefectures and provinces, longest first.
    pub cjk_places: Vec<&'static str>,
}

impl std::fmt::Debug for Gazetteer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gazetteer").field("words", &self.words.len()).finish_non_exhaustive()
    }
}

fn is_cjk(s: &str) -> bool {
    s.chars().any(is_cjk_char)
}

/// Han ideographs, kana and CJK punctuation blocks.
pub(crate) fn is_cjk_char(c: char) -> bool {
    matches!(c as u32, 0x2E80..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

impl Gazetteer {
    fn parse(src: &'static str) -> Gazetteer {
        let mut words: HashMap<u64, u8, BuildHasherDefault<PreHashed>> = HashMap::default();
        let (mut cjk_surnames, mut cjk_given, mut cjk_places) = (Vec::new(), Vec::new(), Vec::new());
        for line in src.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let mut parts = line.splitn(3, '\t');
            let (Some(kind), Some(_lang), Some(entry)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let bit = match kind {
                "given" => GIVEN,
                "surname" => SURNAME,
                "city" => CITY,
                "country" => COUNTRY,
                "street" => STREET,
                "company" => COMPANY,
                _ => continue,
            };
            if is_cjk(entry) {
                match bit {
                    GIVEN => cjk_given.push(entry),
                    SURNAME => cjk_surnames.push(entry),
                    CITY | COUNTRY => cjk_places.push(entry),
                    _ => {}
                }
                continue;
            }
            let parts: Vec<&str> =
                entry.split(|c: char| c.is_whitespace() || c == '-').filter(|w| !w.is_empty()).collect();
            let several = parts.len() > 1;
            for w in parts {
                let mut b = bit;
                if several && (bit == CITY || bit == COUNTRY) {
                    b = PLACE_PART;
                }
                *words.entry(word_hash(w)).or_insert(0) |= b;
            }
        }
        for v in [&mut cjk_surnames, &mut cjk_given, &mut cjk_places] {
            v.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
            v.dedup();
        }
        Gazetteer { words, cjk_surnames, cjk_given, cjk_places }
    }

    /// The built-in gazetteer, parsed on first use.
    pub fn builtin() -> &'static Gazetteer {
        static G: LazyLock<Gazetteer> = LazyLock::new(|| Gazetteer::parse(SOURCE));
        &G
    }

    /// The kinds of the word whose lowercased hash is `h` (0 when none).
    pub fn kinds(&self, h: u64) -> u8 {
        self.words.get(&h).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_places_and_suffixes_from_several_languages_are_known() {
        let g = Gazetteer::builtin();
        for (w, bit) in [
            ("James", GIVEN),
            ("müller", SURNAME),
            ("Berlin", CITY),
            ("Deutschland", COUNTRY),
            ("GmbH", COMPANY),
            ("Straße", STREET),
            ("Giuseppe", GIVEN),
            ("Иван", GIVEN),
        ] {
            assert!(g.kinds(word_hash(w)) & bit != 0, "{w}");
        }
        assert!(g.cjk_surnames.contains(&"王") && g.cjk_surnames.contains(&"佐藤"));
        assert!(!g.cjk_places.is_empty());
    }
}
