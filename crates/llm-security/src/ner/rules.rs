//! Rules beside the tagger: street addresses (US, UK, DE, AT, CH, FR, ES,
//! IT, PT, NL, the Nordic countries, PL, RU, JP, CN, military and PO
//! boxes), postal codes (only as part of an address), dates of birth (a
//! date right after a birth cue in en, de, fr, es, it, pt, nl, ja, zh, ru),
//! and Chinese/Japanese person names (a gazetteer surname before an
//! honorific or a gazetteer given name) and places.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

use super::gazetteer::{Gazetteer, is_cjk_char};

/// What a rule found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// A street address (or a part of one: street line, unit, postal box).
    Address,
    /// A date of birth.
    DateOfBirth,
    /// A Chinese or Japanese person name.
    Person,
    /// A Chinese or Japanese place name.
    Location,
}

/// One rule finding, in byte offsets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleMatch {
    /// What it is.
    pub kind: RuleKind,
    /// Start byte.
    pub start: usize,
    /// End byte.
    pub end: usize,
    /// Fixed confidence of the rule.
    pub confidence: f64,
}

#[allow(clippy::expect_used)] // constant patterns, checked by the tests
fn re(p: &str) -> Regex {
    Regex::new(p).expect("built-in address pattern compiles")
}

const EN_TYPES: &str = r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Close|Crescent|Parkway|Pkwy|Highway|Hwy|Square|Sq|Circle|Cir|Trail|Row|Mews|Gardens|Grove|Loop|Pass|Crossing|Crossroad|Radial|Pike|Heights|Walk)";
const PREFIX_TYPES: &str = r"(?i:rue|avenue|av\.|boulevard|bd|chemin|allée|impasse|quai|calle|c/|avenida|avda\.|plaza|paseo|camino|carrer|via|viale|piazza|corso|largo|vicolo|rua|travessa|praça|alameda|estrada|ul\.|ulica|улица|ул\.|проспект|переулок)";
const SUFFIX_TYPES: &str = r"(?:straße|strasse|str\.|weg|allee|platz|gasse|damm|ufer|chaussee|straat|laan|gracht|plein|kade|dijk|singel|vej|gade|gatan|gata|vägen|veien|vegen|vegur|braut|katu|kuja|tie|polku|utca)";
const CUES: &str = r"(?i:address(?:\s+is)?|live[sd]? (?:at|on)|located (?:at|on)|moved to|send (?:it |them )?to|ship (?:it )?to|deliver(?:ed)? to|stop at|meet (?:you )?at|adresse|anschrift|wohnt in der|dirección|indirizzo|endereço|adres)[:\s]+(?:is\s+)?(?:the corner of\s+)?";

/// Street lines: the main alternation, one pass over the text.
static STREET: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?-u:\b)(?:\d{{1,6}}[A-Za-z]?(?:-\d{{1,4}})?\s+(?:\d{{1,4}}\s+)?(?:[NSEW]\.?\s+)?(?:\p{{Lu}}[\p{{L}}'.-]*\s+){{1,4}}{EN_TYPES}(?-u:\b)\.?|(?:\d{{1,6}}(?:\s?(?:bis|ter))?,?\s+)?{PREFIX_TYPES}\s+(?:(?:de|du|des|la|le|del|della|di|da|do|dos|das|d'|l')\s*){{0,2}}[\p{{Lu}}\d][\p{{L}}'.-]*(?:\s+\p{{Lu}}[\p{{L}}'.-]*){{0,3}},?\s*(?:n[º°o.]\s*)?\d{{1,4}}[a-zA-Z]?(?-u:\b)|(?:\d{{1,6}}\s+)?\p{{Lu}}[\p{{L}}-]*{SUFFIX_TYPES}\s+\d{{1,5}}[a-zA-Z]?(?-u:\b)|\d{{1,5}}(?:\s?(?:bis|ter))?,?\s+{PREFIX_TYPES}\s+(?:(?:de|du|des|la|le|del|della|di|da|do|dos|das|d'|l')\s*){{0,2}}\p{{L}}[\p{{L}}'.-]*(?:\s+\p{{L}}[\p{{L}}'.-]*){{0,3}}|(?-u:\b)(?:PSC|Unit)\s+\d{{3,5}},?\s+Box\s+\d{{3,5}}(?:\s+[AFD]PO\s+A[AEP]\s+\d{{5}})?|(?-u:\b)(?:USNS|USNV|USS|USCGC)\s+\p{{Lu}}[a-z]+\s+FPO\s+A[AEP]\s+\d{{5}}|(?-u:\b)P\.?\s?O\.?\s+Box\s+\d{{1,6}}|(?-u:\b)(?:Apt\.?|Apartment|Suite)\s*#?\d{{1,5}}[A-Za-z]?(?-u:\b))"
    ))
});

/// A street line after an address cue ("my address is Beiteveien 2").
static CUED: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(r"{CUES}((?:\d{{1,6}}\s+)?(?:\p{{Lu}}[\p{{L}}.'-]*\s+){{1,3}}\d{{1,5}}[a-zA-Z]?(?-u:\b))"))
});

/// What may follow a street line: units, then a locality with a postal
/// code in one of the shapes below, or a line of its own.
static TAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:[,\s]*(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|Wohnung|Whg\.)\s*#?\d{1,5}[A-Za-z]?(?-u:\b))*(?:[,\s]*(?:(?:\d{4,5}|\d{4}\s?[A-Z]{2}|\d{3}-\d{4})\s+\p{Lu}[\p{L}'-]+(?:[ -]\p{Lu}[\p{L}'-]+){0,2}|\p{Lu}[\p{L}'-]+(?:[ -]\p{Lu}[\p{L}'-]+){0,2},?\s+(?:[A-Z]{2}\s+)?(?:\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}|\d{4}\s?[A-Z]{2})))?",
    )
});

/// Japanese and Chinese addresses.
static CJK_ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:〒\s?\d{3}-\d{4}\s*)?(?:東京都|北海道|京都府|大阪府|\p{Han}{2,3}県)[\p{Han}\p{Hiragana}\p{Katakana}ー]{1,12}?[市区町村郡][\p{Han}\p{Hiragana}\p{Katakana}ー\d０-９\-－]{1,20}?(?:\d+|[０-９]+)(?:丁目|番地|番|号)(?:\d+|[０-９]+)?(?:番地|番|号)?(?:[\-－]\d+)*|\p{Han}{2,8}?[省市]\p{Han}{1,8}?[市区县]\p{Han}{1,12}?(?:路|街|道|巷)\d{1,5}号",
    )
});

const MONTHS: &str = r"(?i:jan(?:uary|\.)?|feb(?:ruary|\.)?|mar(?:ch|\.)?|apr(?:il|\.)?|may|jun(?:e|\.)?|jul(?:y|\.)?|aug(?:ust|\.)?|sep(?:t(?:ember)?|\.)?|oct(?:ober|\.)?|nov(?:ember|\.)?|dec(?:ember|\.)?|januar|februar|märz|mai|juni|juli|oktober|dezember|janvier|février|mars|avril|juin|juillet|août|septembre|octobre|novembre|décembre|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre|gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre|janeiro|fevereiro|março|maio|junho|julho|setembro|outubro|novembro|dezembro|januari|februari|maart|mei|augustus|oktober|января|февраля|марта|апреля|мая|июня|июля|августа|сентября|октября|ноября|декабря)";

/// A date right after a birth cue.
static DOB_DATE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"^(?:[\s:,：は\-–]|(?-u:\b)(?:on|am|le|el|il|em|op|is|was|den|der|:)(?-u:\b))*((?:\d{{1,2}}[./-]\d{{1,2}}[./-](?:\d{{4}}|\d{{2}})|\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}(?:st|nd|rd|th|er|º)?\.?\s+(?:of\s+|de\s+)?{MONTHS}\.?,?\s+(?:de\s+)?\d{{4}}|{MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{4}}\s?年\s?\d{{1,2}}\s?月\s?\d{{1,2}}\s?日))"
    ))
});

const DOB_CUES: &[&str] = &[
    "born on",
    "born",
    "date of birth",
    "dob",
    "d.o.b",
    "birthday",
    "birth date",
    "birthdate",
    "geboren am",
    "geboren",
    "geb.",
    "geburtsdatum",
    "né le",
    "née le",
    "date de naissance",
    "nacido el",
    "nacida el",
    "fecha de nacimiento",
    "nato il",
    "nata il",
    "data di nascita",
    "nascido em",
    "nascida em",
    "data de nascimento",
    "geboren op",
    "geboortedatum",
    "生年月日",
    "出生日期",
    "出生于",
    "дата рождения",
    "родился",
    "родилась",
];

static DOB_AC: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    AhoCorasickBuilder::new().ascii_case_insensitive(true).match_kind(MatchKind::LeftmostLongest).build(DOB_CUES).ok()
});

const HONORIFICS: &[&str] = &["さん", "様", "さま", "先生", "氏", "くん", "ちゃん", "女士", "小姐", "太太", "老师"];

fn push(out: &mut Vec<RuleMatch>, kind: RuleKind, start: usize, end: usize, confidence: f64) {
    if start < end {
        out.push(RuleMatch { kind, start, end, confidence });
    }
}

/// Street addresses, dates of birth and CJK names and places in `text`.
pub fn find(text: &str) -> Vec<RuleMatch> {
    let mut out = Vec::new();
    // Street and birth-date rules both start from the digits: found once.
    let runs = digit_runs(text.as_bytes());
    let has_digit = !runs.is_empty();
    if has_digit {
        addresses(text, &runs, &mut out);
        dates_of_birth(text, &runs, &mut out);
    }
    if !text.is_ascii() && text.chars().any(is_cjk_char) {
        if has_digit {
            for m in CJK_ADDRESS.find_iter(text) {
                push(&mut out, RuleKind::Address, m.start(), m.end(), 0.85);
            }
        }
        cjk_names(text, &mut out);
    }
    out.sort_by_key(|m| (m.start, std::cmp::Reverse(m.end)));
    out
}

/// Every street pattern needs a digit: the patterns run only over windows
/// of text around digit runs (from the start of a line or after a space up
/// to `REACH` bytes before the run, to the same distance after it), merged.
const REACH: usize = 90;

/// The `(start, end)` byte ranges of the runs of ASCII digits in `b`.
fn digit_runs(b: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        runs.push((s, i));
    }
    runs
}

fn digit_windows(text: &str, runs: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut windows: Vec<(usize, usize)> = Vec::new();
    for &(s, i) in runs {
        let mut ws = s.saturating_sub(REACH);
        // Start at a word boundary, so that no match begins inside a word.
        while ws > 0 && !(b[ws - 1].is_ascii_whitespace()) && ws < s {
            ws += 1;
        }
        while !text.is_char_boundary(ws) {
            ws += 1;
        }
        let mut we = (i + REACH).min(b.len());
        while !text.is_char_boundary(we) {
            we += 1;
        }
        match windows.last_mut() {
            Some(w) if ws <= w.1 => w.1 = w.1.max(we),
            _ => windows.push((ws, we)),
        }
    }
    windows
}

fn addresses(text: &str, runs: &[(usize, usize)], out: &mut Vec<RuleMatch>) {
    for (ws, we) in digit_windows(text, runs) {
        let window = &text[ws..we];
        for m in STREET.find_iter(window) {
            let mut end = ws + m.end();
            if let Some(t) = TAIL.find(&text[end..]) {
                end += t.end();
            }
            if !out.iter().any(|o| o.start < end && ws + m.start() < o.end) {
                push(out, RuleKind::Address, ws + m.start(), end, 0.85);
            }
        }
        for c in CUED.captures_iter(window) {
            if let Some(g) = c.get(1) {
                let (gs, ge) = (ws + g.start(), ws + g.end());
                if out.iter().any(|o| o.start < ge && gs < o.end) {
                    continue;
                }
                let mut end = ge;
                if let Some(t) = TAIL.find(&text[end..]) {
                    end += t.end();
                }
                push(out, RuleKind::Address, gs, end, 0.75);
            }
        }
    }
}

/// Where the dates of `text` may end: after a year (`19xx`, `20xx`), the
/// two-digit year of `dd/mm/yy`, or `日`. Birth cues are looked for only
/// shortly before one, so prose without dates costs one byte scan.
fn date_ends(text: &str, runs: &[(usize, usize)]) -> Vec<usize> {
    let b = text.as_bytes();
    let mut ends = Vec::new();
    for &(s, i) in runs {
        let run = &b[s..i];
        let year = run.len() == 4 && (run.starts_with(b"19") || run.starts_with(b"20"));
        let short_year =
            run.len() == 2 && s >= 2 && matches!(b[s - 1], b'/' | b'.' | b'-') && b[s - 2].is_ascii_digit();
        if year || short_year {
            ends.push(i);
        }
    }
    ends.extend(text.match_indices('日').map(|(at, _)| at));
    ends.sort_unstable();
    ends
}

fn dates_of_birth(text: &str, runs: &[(usize, usize)], out: &mut Vec<RuleMatch>) {
    let Some(ac) = DOB_AC.as_ref() else { return };
    // Windows of up to 100 bytes before each possible date, merged.
    let mut windows: Vec<(usize, usize)> = Vec::new();
    for e in date_ends(text, runs) {
        let mut s = e.saturating_sub(100);
        while !text.is_char_boundary(s) {
            s += 1;
        }
        match windows.last_mut() {
            Some(w) if s <= w.1 => w.1 = e,
            _ => windows.push((s, e)),
        }
    }
    for (ws, we) in windows {
        dob_window(text, ws, we, ac, out);
    }
}

fn dob_window(text: &str, ws: usize, we: usize, ac: &AhoCorasick, out: &mut Vec<RuleMatch>) {
    for m in ac.find_iter(&text[ws..we]) {
        let m = aho_corasick::Match::must(0, ws + m.start()..ws + m.end());
        // A cue must start a word ("born", not "reborn" or "stubborn").
        if text[..m.start()].chars().next_back().is_some_and(char::is_alphanumeric) {
            continue;
        }
        // The 60 bytes after the cue, cut back to a character boundary.
        let mut end = text.len().min(m.end() + 60);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let rest = &text[m.end()..end];
        if let Some(d) = DOB_DATE.captures(rest).and_then(|c| c.get(1)) {
            push(out, RuleKind::DateOfBirth, m.end() + d.start(), m.end() + d.end(), 0.9);
        }
    }
}

fn cjk_names(text: &str, out: &mut Vec<RuleMatch>) {
    let g = Gazetteer::builtin();
    // Surname (+ up to two characters) before an honorific.
    for h in HONORIFICS {
        for (at, _) in text.match_indices(h) {
            let before: Vec<(usize, char)> = text[..at].char_indices().rev().take(4).collect();
            let mut best: Option<usize> = None;
            for &(i, c) in &before {
                if !is_cjk_char(c) {
                    break;
                }
                let cand = &text[i..at];
                if g.cjk_surnames.iter().any(|s| cand.starts_with(s)) && cand.chars().count() <= 4 {
                    best = Some(i);
                }
            }
            if let Some(s) = best {
                push(out, RuleKind::Person, s, at, 0.8);
            }
        }
    }
    // Surname followed by a known given name (佐藤篤司).
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        if !is_cjk_char(c) || (k > 0 && is_cjk_char(chars[k - 1].1) && out.iter().any(|o| o.start < i && i < o.end)) {
            continue;
        }
        let rest = &text[i..];
        if let Some(s) = g.cjk_surnames.iter().find(|s| s.chars().count() >= 2 && rest.starts_with(*s))
            && let Some(given) = g.cjk_given.iter().find(|n| n.chars().count() >= 2 && rest[s.len()..].starts_with(*n))
        {
            let end = i + s.len() + given.len();
            if !out.iter().any(|o| o.start < end && i < o.end) {
                push(out, RuleKind::Person, i, end, 0.7);
            }
        }
    }
    for p in &g.cjk_places {
        if p.chars().count() < 2 {
            continue;
        }
        for (at, _) in text.match_indices(p) {
            let end = at + p.len();
            if !out.iter().any(|o| o.start < end && at < o.end) {
                push(out, RuleKind::Location, at, end, 0.7);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(RuleKind, &str)> {
        find(text).iter().map(|m| (m.kind, &text[m.start..m.end])).collect()
    }

    #[test]
    fn street_addresses_per_country() {
        for (text, want) in [
            (
                "Ship it to 742 Evergreen Terrace, Springfield, OR 97403 today.",
                "742 Evergreen Terrace, Springfield, OR 97403",
            ),
            ("He lives at 10 Downing Street, London SW1A 2AA.", "10 Downing Street, London SW1A 2AA"),
            ("Bitte an Hauptstraße 12, 10115 Berlin schicken.", "Hauptstraße 12, 10115 Berlin"),
            ("Rendez-vous au 5 rue de la Paix, 75002 Paris.", "5 rue de la Paix, 75002 Paris"),
            ("Vive en Calle Mayor 3, 28013 Madrid.", "Calle Mayor 3, 28013 Madrid"),
            ("Abita in Via Roma 131, 00184 Roma.", "Via Roma 131, 00184 Roma"),
            ("Woont op Keizersgracht 123, 1015 CJ Amsterdam.", "Keizersgracht 123, 1015 CJ Amsterdam"),
            ("PSC 6477, Box 2981\nAPO AE 83700", "PSC 6477, Box 2981\nAPO AE 83700"),
        ] {
            let got = kinds(text);
            assert!(got.contains(&(RuleKind::Address, want)), "{text}: {got:?}");
        }
        let jp = "住所は東京都千代田区千代田1丁目1番です。";
        assert!(kinds(jp).iter().any(|(k, s)| *k == RuleKind::Address && s.contains("千代田区")), "{:?}", kinds(jp));
        let cn = "地址：北京市朝阳区建国路88号。";
        assert!(kinds(cn).iter().any(|(k, s)| *k == RuleKind::Address && s.ends_with("88号")), "{:?}", kinds(cn));
    }

    #[test]
    fn plain_numbers_versions_and_dates_are_not_addresses() {
        for text in [
            "Windows 10 and Python 3 are installed.",
            "Chapter 3 covers the Main Street problem in 2019.",
            "The meeting is on 12 March 2024 at 10:00.",
            "Run the test suite 3 times.",
            "We shipped 500 units via Google Cloud.",
        ] {
            assert!(kinds(text).is_empty(), "{text}: {:?}", kinds(text));
        }
    }

    #[test]
    fn dates_of_birth_need_a_birth_cue() {
        for (text, want) in [
            ("She was born on 12 March 1985 in Leeds.", "12 March 1985"),
            ("DOB: 03/04/1990", "03/04/1990"),
            ("Er ist geboren am 3. Mai 1970.", "3. Mai 1970"),
            ("Il est né le 14 juillet 1989.", "14 juillet 1989"),
            ("生年月日：1985年3月12日", "1985年3月12日"),
        ] {
            let got = kinds(text);
            assert!(got.contains(&(RuleKind::DateOfBirth, want)), "{text}: {got:?}");
        }
        assert!(kinds("The release on 12 March 1985 was late.").is_empty());
        assert!(kinds("A stubborn 12/03/1985 bug.").is_empty());
    }

    #[test]
    fn a_cue_followed_by_wide_characters_does_not_cut_one() {
        // 60 bytes after "born on" end inside a three-byte character.
        let text = "born onÄääöüa Aöß東京都1900 Frauさん 000Street Streetさん";
        let _ = find(text);
        for pad in 0..4 {
            let t = format!("born on {}{}", "x".repeat(pad), "東".repeat(30));
            let _ = find(&t);
        }
    }

    #[test]
    fn chinese_and_japanese_names_before_honorifics() {
        let got = kinds("佐藤さんと王女士が来ました。");
        assert!(got.contains(&(RuleKind::Person, "佐藤")), "{got:?}");
        assert!(got.contains(&(RuleKind::Person, "王")), "{got:?}");
    }
}
