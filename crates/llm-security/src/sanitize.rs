//! The sanitizer: redacts secrets and personal data with typed, numbered
//! placeholders and strips invisible characters.
//!
//! Spans of `secret_leak` and `sensitive_data` threats are replaced by
//! `[REDACTED_<CATEGORY>_<n>]` (`[REDACTED_EMAIL_1]`,
//! `[REDACTED_OPENAI_API_KEY_1]`). The same value in the same category gets
//! the same number, so a reader can still tell "the same address twice" from
//! "two addresses". Overlapping spans are merged into one redaction that
//! covers both, named after the larger. A number whose placeholder already
//! occurs in the text is skipped, so [`restore`] never touches text the
//! model wrote itself.
//!
//! With `strip_invisible`, zero-width characters, bidi controls, variation
//! selectors and tag characters are dropped — except where they are part of
//! an emoji: a zero-width joiner (or non-joiner) between two visible
//! non-ASCII characters (👨‍👩‍👧, and joiners in Indic and Persian text), a
//! VS15/VS16 presentation selector after a symbol (❤️) or before a keycap
//! (1️⃣), and the tag characters of a subdivision flag (🏴󠁧󠁢󠁳󠁣󠁴󠁿). These are
//! the rules the normalizer uses to decide what is suspicious.
//!
//! With `reversible`, each [`Redaction`] keeps the value it replaced, and
//! [`restore`] puts values back into a text that echoes the placeholders
//! (for example the model's reply to a redacted prompt).
//!
//! ```
//! use llm_security::sanitize::{restore, sanitize};
//! use llm_security::{SanitizeConfig, Severity, Span, Threat, ThreatType};
//!
//! let text = "Mail ada@example.com or ada@example.com";
//! let t = |s, e| Threat::new(ThreatType::SensitiveData, "email", Severity::Low, 0.9, Span::new(s, e), "", "pii");
//! let cfg = SanitizeConfig { reversible: true, ..SanitizeConfig::default() };
//! let s = sanitize(text, &[t(5, 20), t(24, 39)], &cfg);
//! assert_eq!(s.text, "Mail [REDACTED_EMAIL_1] or [REDACTED_EMAIL_1]");
//! assert_eq!(restore(&s.text, &s.redactions), text);
//! ```

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::config::SanitizeConfig;
use crate::types::{Redaction, Severity, Span, Threat, ThreatType};

/// Text after sanitizing, with the placeholders used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sanitized {
    /// The sanitized text.
    pub text: String,
    /// One entry per redacted span, in text order.
    pub redactions: Vec<Redaction>,
}

/// The start of every placeholder.
pub const PLACEHOLDER_PREFIX: &str = "[REDACTED_";

/// One span to redact, after merging.
#[derive(Debug, Clone)]
pub(crate) struct Cut {
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// Category of the largest threat merged into this cut.
    pub(crate) category: String,
    /// Length, severity and kind of that threat, to pick the winner.
    rank: (usize, Severity, bool),
}

/// Placeholder numbers: the same value in the same category keeps its
/// number, a new value takes the next free one. The output stream keeps one
/// across its releases, so that numbers run as they would over the whole text.
#[derive(Debug, Default)]
pub(crate) struct Numbering {
    numbers: HashMap<(String, String), usize>,
    next: HashMap<String, usize>,
}

impl Numbering {
    /// The placeholder for `value` in the category named `name`, skipping
    /// numbers whose placeholder `taken` says already occurs in the text.
    pub(crate) fn placeholder(&mut self, name: &str, value: &str, taken: impl Fn(&str) -> bool) -> String {
        let next = &mut self.next;
        let n = *self.numbers.entry((name.to_owned(), value.to_owned())).or_insert_with(|| {
            let counter = next.entry(name.to_owned()).or_insert(0);
            loop {
                *counter += 1;
                let candidate = format!("{PLACEHOLDER_PREFIX}{name}_{counter}]");
                if !taken(&candidate) {
                    break *counter;
                }
            }
        });
        format!("{PLACEHOLDER_PREFIX}{name}_{n}]")
    }
}

/// The placeholder name for a category: upper-cased, anything but ASCII
/// letters and digits turned into `_`.
pub fn placeholder_name(category: &str) -> String {
    let mut s: String =
        category.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    if s.is_empty() {
        s.push_str("VALUE");
    }
    s
}

/// Widens `[start, end)` to character boundaries of `text`, clamped.
fn snap(text: &str, start: usize, end: usize) -> (usize, usize) {
    let mut s = start.min(text.len());
    let mut e = end.clamp(s, text.len());
    while !text.is_char_boundary(s) {
        s -= 1;
    }
    while !text.is_char_boundary(e) {
        e += 1;
    }
    (s, e)
}

/// Redacts the secret and PII spans of `threats` in `original` and, when
/// configured, strips invisible characters. Spans out of range or off
/// character boundaries are clamped and widened; other threat types are
/// ignored.
pub fn sanitize(original: &str, threats: &[Threat], cfg: &SanitizeConfig) -> Sanitized {
    let merged = merged_cuts(original, threats);
    let guard = original.contains(PLACEHOLDER_PREFIX);
    let mut numbering = Numbering::default();
    let mut text = String::with_capacity(original.len());
    let mut redactions = Vec::with_capacity(merged.len());
    let mut at = 0;
    for c in &merged {
        push_visible(&mut text, original, at, c.start, cfg.strip_invisible);
        let name = placeholder_name(&c.category);
        let value = &original[c.start..c.end];
        let placeholder = numbering.placeholder(&name, value, |cand| guard && original.contains(cand));
        text.push_str(&placeholder);
        redactions.push(Redaction {
            placeholder,
            original: cfg.reversible.then(|| value.to_owned()),
            span: Span::new(c.start, c.end),
        });
        at = c.end;
    }
    push_visible(&mut text, original, at, original.len(), cfg.strip_invisible);
    Sanitized { text, redactions }
}

/// The secret and PII spans of `threats` in `original`, widened to
/// character boundaries, sorted, with overlapping spans merged (named after
/// the larger).
pub(crate) fn merged_cuts(original: &str, threats: &[Threat]) -> Vec<Cut> {
    let mut cuts: Vec<Cut> = threats
        .iter()
        .filter(|t| matches!(t.kind, ThreatType::SecretLeak | ThreatType::SensitiveData))
        .filter(|t| t.span.start < t.span.end && t.span.start < original.len())
        .filter_map(|t| {
            let (s, e) = snap(original, t.span.start, t.span.end);
            (s < e).then(|| Cut {
                start: s,
                end: e,
                category: t.category.clone(),
                rank: (e - s, t.severity, t.kind == ThreatType::SecretLeak),
            })
        })
        .collect();
    cuts.sort_by(|a, b| {
        a.start.cmp(&b.start).then(b.end.cmp(&a.end)).then(b.rank.cmp(&a.rank)).then(a.category.cmp(&b.category))
    });
    let mut merged: Vec<Cut> = Vec::with_capacity(cuts.len());
    for c in cuts {
        match merged.last_mut() {
            Some(last) if c.start < last.end => {
                last.end = last.end.max(c.end);
                if c.rank > last.rank {
                    last.rank = c.rank;
                    last.category = c.category;
                }
            }
            _ => merged.push(c),
        }
    }
    merged
}

/// Appends `original[from..to]`, without invisible characters when `strip`.
pub(crate) fn push_visible(out: &mut String, original: &str, from: usize, to: usize, strip: bool) {
    let piece = &original[from..to];
    if !strip || piece.is_ascii() {
        out.push_str(piece);
        return;
    }
    let mut chars = piece.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if !is_strippable(c) {
            out.push(c);
            continue;
        }
        let at = from + i;
        let keep = match c {
            '\u{200C}' | '\u{200D}' => joiner_in_context(original, at, c),
            '\u{FE0E}' | '\u{FE0F}' => presentation_selector(original, at, c),
            '\u{E0000}'..='\u{E007F}' if original[..at].ends_with('\u{1F3F4}') => {
                // Keep the whole subdivision-flag tag run, if this starts one.
                let run_end = original[at..]
                    .char_indices()
                    .find(|&(_, t)| !('\u{E0000}'..='\u{E007F}').contains(&t))
                    .map_or(original.len(), |(p, _)| at + p);
                if flag_tags(original, at, run_end) {
                    let stop = run_end.min(to);
                    out.push_str(&original[at..stop]);
                    while chars.peek().is_some_and(|&(j, _)| from + j < stop) {
                        chars.next();
                    }
                }
                false
            }
            _ => false,
        };
        if keep {
            out.push(c);
        }
    }
}

/// Characters the sanitizer drops: zero-width and invisible format
/// characters, soft hyphen, bidi marks and controls, variation selectors
/// and tag characters.
pub fn is_strippable(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{180E}'
            | '\u{061C}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{E0100}'..='\u{E01EF}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// A visible character that can carry an emoji joiner or selector.
fn visible_non_ascii(c: Option<char>) -> bool {
    c.is_some_and(|c| !c.is_ascii() && !is_strippable(c) && !c.is_whitespace())
}

/// ZWJ / ZWNJ between two visible non-ASCII characters (a VS16 before the
/// joiner belongs to the emoji before it).
fn joiner_in_context(text: &str, at: usize, c: char) -> bool {
    let mut before = text[..at].chars().rev();
    let mut prev = before.next();
    if matches!(prev, Some('\u{FE0F}')) {
        prev = before.next();
    }
    let next = text[at + c.len_utf8()..].chars().next();
    visible_non_ascii(prev) && visible_non_ascii(next)
}

/// VS15/VS16 directly after a non-alphanumeric visible character (❤️), or
/// after a keycap base and before U+20E3 (1️⃣).
fn presentation_selector(text: &str, at: usize, c: char) -> bool {
    let prev = text[..at].chars().next_back();
    let next = text[at + c.len_utf8()..].chars().next();
    let keycap = next == Some('\u{20E3}') && prev.is_some_and(|p| p.is_ascii_digit() || p == '#' || p == '*');
    let symbol = prev.is_some_and(|p| !p.is_ascii() && !p.is_alphanumeric() && !is_strippable(p) && !p.is_whitespace());
    keycap || symbol
}

/// True when the tag run `[start, end)` follows 🏴 and ends with CANCEL TAG,
/// holding 2–7 lowercase letters or digits: an emoji subdivision flag.
fn flag_tags(text: &str, start: usize, end: usize) -> bool {
    let run = &text[start..end];
    if !text[..start].ends_with('\u{1F3F4}') || !run.ends_with('\u{E007F}') {
        return false;
    }
    let inner: Vec<u32> = run.chars().map(|c| c as u32 - 0xE0000).collect();
    let body = &inner[..inner.len().saturating_sub(1)];
    (2..=7).contains(&body.len()) && body.iter().all(|&v| (0x61..=0x7a).contains(&v) || (0x30..=0x39).contains(&v))
}

/// Puts the original values back in place of the placeholders of
/// `redactions` found in `text`. Placeholders without a stored original
/// (redaction was not reversible) and unknown placeholders are left as they
/// are; text inserted by a replacement is never scanned again.
pub fn restore(text: &str, redactions: &[Redaction]) -> String {
    let map: HashMap<&str, &str> =
        redactions.iter().filter_map(|r| r.original.as_deref().map(|o| (r.placeholder.as_str(), o))).collect();
    if map.is_empty() || !text.contains(PLACEHOLDER_PREFIX) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find(PLACEHOLDER_PREFIX) {
        out.push_str(&rest[..p]);
        let cand = &rest[p..];
        // A placeholder holds no `[` after its first byte and ends at `]`.
        let close = cand[1..].find([']', '[']).map(|q| q + 1).filter(|&q| cand.as_bytes()[q] == b']');
        match close.and_then(|q| map.get(&cand[..=q]).map(|o| (q, o))) {
            Some((q, original)) => {
                out.push_str(original);
                rest = &cand[q + 1..];
            }
            None => {
                out.push('[');
                rest = &cand[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn threat(kind: ThreatType, cat: &str, s: usize, e: usize) -> Threat {
        Threat::new(kind, cat, Severity::Medium, 0.9, Span::new(s, e), "", "t")
    }

    fn pii(cat: &str, s: usize, e: usize) -> Threat {
        threat(ThreatType::SensitiveData, cat, s, e)
    }

    fn reversible() -> SanitizeConfig {
        SanitizeConfig { reversible: true, strip_invisible: false, always: false }
    }

    #[test]
    fn numbers_values_per_category() {
        let text = "a@x.io b@x.io a@x.io +1 415 555 0132";
        let ts = [pii("email", 0, 6), pii("email", 7, 13), pii("email", 14, 20), pii("phone_number", 21, 36)];
        let s = sanitize(text, &ts, &SanitizeConfig::default());
        assert_eq!(s.text, "[REDACTED_EMAIL_1] [REDACTED_EMAIL_2] [REDACTED_EMAIL_1] [REDACTED_PHONE_NUMBER_1]");
        assert_eq!(s.redactions.len(), 4);
        assert!(s.redactions.iter().all(|r| r.original.is_none()));
        assert_eq!(s.redactions[3].span, Span::new(21, 36));
    }

    #[test]
    fn only_secrets_and_pii_are_redacted() {
        let text = "<script>alert(1)</script> sk-abc";
        let ts = [
            threat(ThreatType::MaliciousContent, "script_tag", 0, 25),
            threat(ThreatType::SecretLeak, "openai_api_key", 26, 32),
        ];
        let s = sanitize(text, &ts, &SanitizeConfig::default());
        assert_eq!(s.text, "<script>alert(1)</script> [REDACTED_OPENAI_API_KEY_1]");
    }

    #[test]
    fn overlapping_spans_merge_and_the_larger_names_them() {
        // An email inside a longer secret assignment value.
        let text = "token=abc.jane@x.io.def end";
        let ts =
            [pii("email", 10, 19), threat(ThreatType::SecretLeak, "high_entropy_secret", 6, 23), pii("email", 20, 27)];
        let s = sanitize(text, &ts, &reversible());
        assert_eq!(s.text, "token=[REDACTED_HIGH_ENTROPY_SECRET_1]");
        assert_eq!(s.redactions.len(), 1);
        assert_eq!(s.redactions[0].span, Span::new(6, 27));
        assert_eq!(restore(&s.text, &s.redactions), text);
    }

    #[test]
    fn placeholders_already_in_the_text_are_not_reused() {
        let text = "literal [REDACTED_EMAIL_1] and a@b.co";
        let s = sanitize(text, &[pii("email", 31, 37)], &reversible());
        assert_eq!(s.text, "literal [REDACTED_EMAIL_1] and [REDACTED_EMAIL_2]");
        assert_eq!(restore(&s.text, &s.redactions), text);
    }

    #[test]
    fn bad_spans_are_clamped() {
        let text = "héllo";
        let ts = [pii("x", 2, 2), pii("x", 2, 3), pii("x", 4, 99), pii("x", 99, 100)];
        let s = sanitize(text, &ts, &SanitizeConfig::default());
        // [1,3) is é widened to its boundaries; [4, 6) is "lo"... clamped.
        assert_eq!(s.text, "h[REDACTED_X_1]l[REDACTED_X_2]");
    }

    #[test]
    fn strips_invisible_but_keeps_emoji_sequences() {
        let cfg = SanitizeConfig::default();
        // (input, expected, note)
        let cases: &[(&str, &str, &str)] = &[
            ("pass\u{200B}word", "password", "zero-width space in a word"),
            ("ig\u{200D}nore", "ignore", "ZWJ between ASCII letters"),
            ("a\u{202E}evil\u{202C}b", "aevilb", "Trojan Source bidi override"),
            ("x\u{2066}y\u{2069}", "xy", "bidi isolates"),
            ("soft\u{00AD}hyphen", "softhyphen", "soft hyphen"),
            ("\u{FEFF}bom", "bom", "BOM"),
            ("a\u{E0069}\u{E0067}\u{E006E}b", "ab", "tag-character smuggling"),
            ("a\u{FE01}\u{E0101}b", "ab", "variation-selector smuggling"),
            ("e\u{FE0F}", "e", "VS16 after a letter"),
            ("👨\u{200D}👩\u{200D}👧", "👨\u{200D}👩\u{200D}👧", "family emoji ZWJ sequence"),
            ("❤\u{FE0F}", "❤\u{FE0F}", "red heart presentation selector"),
            ("1\u{FE0F}\u{20E3}", "1\u{FE0F}\u{20E3}", "keycap one"),
            ("🏳\u{FE0F}\u{200D}🌈", "🏳\u{FE0F}\u{200D}🌈", "rainbow flag: VS16 then ZWJ"),
            (
                "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
                "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
                "Scotland subdivision flag",
            ),
            ("می\u{200C}خواهم", "می\u{200C}خواهم", "Persian ZWNJ"),
        ];
        for (input, want, note) in cases {
            let s = sanitize(input, &[], &cfg);
            assert_eq!(s.text, *want, "{note}");
        }
        let off = SanitizeConfig { strip_invisible: false, ..cfg };
        assert_eq!(sanitize("a\u{200B}b", &[], &off).text, "a\u{200B}b");
    }

    #[test]
    fn restore_handles_echoes_and_unknowns() {
        let text = "mail a@b.co";
        let s = sanitize(text, &[pii("email", 5, 11)], &reversible());
        let reply = "I will write to [REDACTED_EMAIL_1] and [REDACTED_EMAIL_1]; not [REDACTED_EMAIL_9] or [REDACTED_[REDACTED_EMAIL_1]";
        assert_eq!(
            restore(reply, &s.redactions),
            "I will write to a@b.co and a@b.co; not [REDACTED_EMAIL_9] or [REDACTED_a@b.co"
        );
        // Not reversible: nothing to restore.
        let s = sanitize(text, &[pii("email", 5, 11)], &SanitizeConfig::default());
        assert_eq!(restore(&s.text, &s.redactions), s.text);
    }

    #[test]
    fn placeholder_names() {
        assert_eq!(placeholder_name("openai_api_key"), "OPENAI_API_KEY");
        assert_eq!(placeholder_name("a-b c"), "A_B_C");
        assert_eq!(placeholder_name(""), "VALUE");
    }

    fn any_threats(len: usize) -> impl Strategy<Value = Vec<Threat>> {
        let kinds = prop_oneof![
            Just(ThreatType::SecretLeak),
            Just(ThreatType::SensitiveData),
            Just(ThreatType::DataExfiltration),
        ];
        let cats = prop_oneof![Just("email"), Just("jwt"), Just("a b"), Just("")];
        proptest::collection::vec(
            (kinds, cats, 0..len + 8, 0..len + 8).prop_map(|(k, c, s, e)| threat(k, c, s, e)),
            0..8,
        )
    }

    proptest! {
        #[test]
        fn never_panics(
            (text, threats) in "\\PC{0,60}|[\u{200B}-\u{200F}\u{FE0F}\u{E0061}\u{E007F}\u{1F3F4}a-z👨]{0,30}"
                .prop_flat_map(|t| { let n = t.len(); (Just(t), any_threats(n)) })
        ) {
            for strip in [false, true] {
                for rev in [false, true] {
                    let cfg = SanitizeConfig { reversible: rev, strip_invisible: strip, always: false };
                    let s = sanitize(&text, &threats, &cfg);
                    for r in &s.redactions {
                        prop_assert!(r.span.end <= text.len());
                        prop_assert!(text.is_char_boundary(r.span.start) && text.is_char_boundary(r.span.end));
                    }
                }
            }
        }

        #[test]
        fn restore_inverts_sanitize(text in "\\PC{0,80}", raw in proptest::collection::vec((0usize..100, 0usize..100, 0usize..3), 0..6)) {
            let threats: Vec<Threat> = raw
                .iter()
                .map(|&(s, e, k)| {
                    let kind = if k == 0 { ThreatType::SecretLeak } else { ThreatType::SensitiveData };
                    threat(kind, ["email", "jwt", "iban"][k], s % (text.len() + 1), e % (text.len() + 1))
                })
                .collect();
            let s = sanitize(&text, &threats, &reversible());
            prop_assert_eq!(restore(&s.text, &s.redactions), text);
        }

        #[test]
        fn redacted_values_never_survive(
            filler in proptest::collection::vec("[a-z ,.]{0,12}", 1..6),
            secrets in proptest::collection::vec("[A-Z0-9]{6,16}", 1..6),
        ) {
            // Secrets are made of characters the filler never uses, so any
            // occurrence in the output would be a leak.
            let mut text = String::new();
            let mut threats = Vec::new();
            for (i, f) in filler.iter().enumerate() {
                text.push_str(f);
                if let Some(sec) = secrets.get(i) {
                    let start = text.len();
                    text.push('#');
                    text.push_str(sec);
                    threats.push(threat(ThreatType::SecretLeak, "token", start, text.len()));
                }
            }
            for strip in [false, true] {
                let cfg = SanitizeConfig { reversible: false, strip_invisible: strip, always: false };
                let s = sanitize(&text, &threats, &cfg);
                for sec in &secrets[..threats.len()] {
                    prop_assert!(!s.text.contains(&format!("#{sec}")), "{:?}", s.text);
                }
                prop_assert!(!s.text.contains('#'));
            }
        }
    }
}
