//! The normalizer every scanner reads through.
//!
//! One pass over the original text produces the *primary view*: NFKC applied
//! per character, diacritics stripped from Latin letters, look-alike letters
//! of other scripts folded to their UTS #39 skeleton inside words that mix
//! scripts, invisible characters (zero-width, bidi controls, variation
//! selectors, C0/C1 controls) dropped, and Unicode tag characters decoded in
//! place so that the hidden text is scanned too. Each change that looks like
//! an attack is recorded as a [`UnicodeFinding`].
//!
//! A second step ([`decode`]) looks for encoded segments (base64, hex, URL
//! escapes, `\u` escapes, ROT13, leetspeak) and decodes each once into an
//! extra [`View`]. Every view carries a [`SpanMap`] so that any range a
//! scanner reports maps back to bytes of the ORIGINAL text.
//!
//! Plain ASCII without control characters takes a fast path: the primary
//! view borrows the original and the map is the identity.

pub mod decode;
mod spanmap;
pub(crate) mod words;

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::{decompose_canonical, is_combining_mark};
use unicode_script::{Script, UnicodeScript};

pub use self::spanmap::SpanMap;
use crate::types::{Encoding, Span};

/// Which normalizations run. Every field switches a real step on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormalizeOptions {
    /// Fold look-alike letters of other scripts to ASCII (homoglyph attacks).
    pub fold_homoglyphs: bool,
    /// Report words that mix scripts with look-alike letters.
    pub report_mixed_script: bool,
    /// Report whole words spelled in another script's look-alikes inside Latin text.
    pub report_homoglyph_words: bool,
    /// Report letters restyled by NFKC (𝐛𝐨𝐥𝐝, ｆｕｌｌｗｉｄｔｈ, ⓒⓘⓡⓒⓛⓔⓓ).
    pub report_styled_text: bool,
    /// Strip combining marks on Latin letters and report stacks of them.
    pub strip_combining_marks: bool,
    /// Report zero-width characters inside words.
    pub report_zero_width: bool,
    /// Report bidirectional controls (Trojan Source).
    pub report_bidi: bool,
    /// Decode Unicode tag characters and report them (ASCII smuggling).
    pub decode_tags: bool,
    /// Report (and decode) variation-selector runs.
    pub report_variation_selectors: bool,
    /// Decode base64, hex, URL and escape segments, ROT13 and leetspeak.
    pub decode_encodings: bool,
    /// Decode `\uXXXX`, `\u{..}` and `&#x..;` escape runs.
    pub decode_unicode_escapes: bool,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        NormalizeOptions {
            fold_homoglyphs: true,
            report_mixed_script: true,
            report_homoglyph_words: true,
            report_styled_text: true,
            strip_combining_marks: true,
            report_zero_width: true,
            report_bidi: true,
            decode_tags: true,
            report_variation_selectors: true,
            decode_encodings: true,
            decode_unicode_escapes: true,
        }
    }
}

/// What kind of suspicious Unicode the normalizer saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// Zero-width characters inside a word or in a long run.
    ZeroWidth,
    /// Bidi embedding or isolate controls.
    BidiControl,
    /// Bidi override controls (RLO/LRO), the Trojan Source trick.
    BidiOverride,
    /// Variation selectors on characters that take none.
    VariationSelector,
    /// Bytes hidden in a run of variation selectors.
    VariationSelectorSmuggling,
    /// Text hidden in Unicode tag characters.
    TagSmuggling,
    /// C0/C1 control characters other than tab and newlines.
    ControlCharacter,
    /// A word mixing Latin with look-alike letters of another script.
    MixedScript,
    /// A word written wholly in another script's look-alikes inside Latin text.
    HomoglyphWord,
    /// Letters restyled with compatibility characters (math bold, fullwidth…).
    StyledText,
    /// Stacked or stray combining marks on Latin letters ("Zalgo").
    CombiningMarks,
}

impl FindingKind {
    /// The category name used in threats.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::ZeroWidth => "zero_width",
            FindingKind::BidiControl => "bidi_control",
            FindingKind::BidiOverride => "bidi_override",
            FindingKind::VariationSelector => "variation_selector",
            FindingKind::VariationSelectorSmuggling => "variation_selector_smuggling",
            FindingKind::TagSmuggling => "tag_smuggling",
            FindingKind::ControlCharacter => "control_character",
            FindingKind::MixedScript => "mixed_script",
            FindingKind::HomoglyphWord => "homoglyph_word",
            FindingKind::StyledText => "styled_text",
            FindingKind::CombiningMarks => "combining_marks",
        }
    }
}

/// One suspicious Unicode feature, with its span in the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnicodeFinding {
    /// What was seen.
    pub kind: FindingKind,
    /// Where, in the original text (adjacent occurrences are merged).
    pub span: Span,
    /// How many characters were involved.
    pub count: u32,
}

/// A text a scanner reads, with the map back to the original.
#[derive(Debug, Clone)]
pub struct View<'a> {
    /// The text to scan.
    pub text: &'a str,
    /// `None` for the primary view; the encoding for decoded views.
    pub encoding: Option<Encoding>,
    map: ViewMap<'a>,
}

#[derive(Debug, Clone, Copy)]
enum ViewMap<'a> {
    Identity,
    Map(&'a SpanMap),
    Whole(Span),
    /// A map to the primary text, then the primary map (if any).
    Composed(&'a SpanMap, Option<&'a SpanMap>),
}

impl View<'_> {
    /// Maps a byte range of this view's text to the original text.
    pub fn original_span(&self, start: usize, end: usize) -> Span {
        let (start, end) = snap(self.text, start, end);
        match self.map {
            ViewMap::Identity => Span::new(start, end),
            ViewMap::Map(m) => m.to_original(start, end),
            ViewMap::Whole(s) => s,
            ViewMap::Composed(own, primary) => {
                let p = own.to_original(start, end);
                primary.map_or(p, |m| m.to_original(p.start, p.end))
            }
        }
    }
}

/// A decoded segment or whole-text re-reading (ROT13, leetspeak).
#[derive(Debug, Clone)]
pub struct DecodedView {
    /// The decoded text.
    pub text: String,
    /// How it was encoded.
    pub encoding: Encoding,
    /// Where the encoded text sat, in the ORIGINAL text. `None` for
    /// re-readings of the whole primary text.
    pub span: Option<Span>,
    /// For re-readings that change lengths: the map from this text to the
    /// primary text (composed with the primary map). `None`: byte for byte.
    pub(crate) map: Option<SpanMap>,
}

/// The normalized form of one text.
#[derive(Debug, Clone)]
pub struct Normalized<'a> {
    original: &'a str,
    text: Cow<'a, str>,
    map: Option<SpanMap>,
    findings: Vec<UnicodeFinding>,
    decoded: Vec<DecodedView>,
    /// Hidden text decoded from tag characters (for evidence).
    hidden: String,
    /// The primary text squashed, computed on first use and shared by scanners.
    squashed: std::cell::OnceCell<Squashed>,
    /// The primary text with ASCII letters lowercased (same byte offsets).
    lower: std::cell::OnceCell<String>,
}

/// A text reduced to lowercase ASCII letters and digits, for phrases spelled
/// with separators inside words (`i g n o r e`, `ig-no-re`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Squashed {
    /// The kept characters, lowercased.
    pub text: String,
    /// For each kept byte, its offset in the text it was squashed from.
    pub pos: Vec<u32>,
    /// `text` with leet digits read as letters (`h4v3` → `have`), when it has digits.
    pub unleet: Option<String>,
}

/// Squashes a text (see [`Squashed`]).
pub fn squash(text: &str) -> Squashed {
    let mut s = String::with_capacity(text.len());
    let mut pos = Vec::with_capacity(text.len());
    let mut digits = false;
    for (i, b) in text.bytes().enumerate() {
        if b.is_ascii_alphanumeric() {
            digits |= b.is_ascii_digit();
            s.push(char::from(b.to_ascii_lowercase()));
            pos.push(i as u32);
        }
    }
    let unleet = digits.then(|| {
        s.chars()
            .map(|c| match c {
                '0' => 'o',
                '1' => 'i',
                '3' => 'e',
                '4' => 'a',
                '5' => 's',
                '7' => 't',
                '8' => 'b',
                '9' => 'g',
                c => c,
            })
            .collect()
    });
    Squashed { text: s, pos, unleet }
}

impl<'a> Normalized<'a> {
    /// Normalizes `original` with the given options.
    pub fn new(original: &'a str, opts: &NormalizeOptions) -> Normalized<'a> {
        let mut n = if is_plain_ascii(original) {
            Normalized {
                original,
                text: Cow::Borrowed(original),
                map: None,
                findings: Vec::new(),
                decoded: Vec::new(),
                hidden: String::new(),
                squashed: std::cell::OnceCell::new(),
                lower: std::cell::OnceCell::new(),
            }
        } else {
            let mut p = Pass::new(original, opts);
            p.run();
            Normalized {
                original,
                text: Cow::Owned(p.out),
                map: Some(p.map),
                findings: p.findings,
                decoded: p.decoded,
                hidden: p.hidden,
                squashed: std::cell::OnceCell::new(),
                lower: std::cell::OnceCell::new(),
            }
        };
        if opts.decode_encodings || opts.decode_unicode_escapes {
            let primary_to_original = |s: Span| match &n.map {
                None => s,
                Some(m) => m.to_original(s.start, s.end),
            };
            // True when byte `i` of the primary text is the original's own
            // byte, not one the normalizer wrote (a folded `𝙿` reads `P`).
            let verbatim = |i: usize| match &n.map {
                None => true,
                Some(m) => {
                    let s = m.to_original(i, i + 1);
                    s.end == s.start + 1 && original.as_bytes().get(s.start) == n.text.as_bytes().get(i)
                }
            };
            let mut extra = decode::decode_views(&n.text, opts, primary_to_original, verbatim, n.decoded.len());
            n.decoded.append(&mut extra);
        }
        n
    }

    /// The original text.
    pub fn original(&self) -> &'a str {
        self.original
    }

    /// The primary normalized text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when the primary text is the original, unchanged.
    pub fn is_identity(&self) -> bool {
        self.map.is_none()
    }

    /// Suspicious Unicode features, in text order.
    pub fn findings(&self) -> &[UnicodeFinding] {
        &self.findings
    }

    /// Text hidden in tag characters, decoded.
    pub fn hidden_text(&self) -> &str {
        &self.hidden
    }

    /// The primary text squashed (computed once, on first use).
    pub fn squashed(&self) -> &Squashed {
        self.squashed.get_or_init(|| squash(&self.text))
    }

    /// The primary text with ASCII letters lowercased, byte for byte (keyword
    /// gates match on it without case folding).
    pub fn lowercase(&self) -> &str {
        self.lower.get_or_init(|| fold_case(&self.text))
    }

    /// Decoded segments and re-readings.
    pub fn decoded(&self) -> &[DecodedView] {
        &self.decoded
    }

    /// Maps a range of the primary text to the original.
    pub fn to_original(&self, start: usize, end: usize) -> Span {
        let (start, end) = snap(&self.text, start, end);
        match &self.map {
            None => Span::new(start, end),
            Some(m) => m.to_original(start, end),
        }
    }

    /// The primary view followed by every decoded view.
    pub fn views(&self) -> impl Iterator<Item = View<'_>> {
        let primary_map = match &self.map {
            None => ViewMap::Identity,
            Some(m) => ViewMap::Map(m),
        };
        let primary = View { text: &self.text, encoding: None, map: primary_map };
        std::iter::once(primary).chain(self.decoded.iter().map(move |d| View {
            text: &d.text,
            encoding: Some(d.encoding),
            map: match (d.span, &d.map) {
                (Some(s), _) => ViewMap::Whole(s),
                (None, Some(own)) => ViewMap::Composed(own, self.map.as_ref()),
                (None, None) => primary_map,
            },
        }))
    }
}

/// Normalizes decoded text character by character (no further decoding):
/// what a decoded segment is scanned as.
pub(crate) fn normalize_chars(s: String, opts: &NormalizeOptions) -> String {
    if is_plain_ascii(&s) {
        return s;
    }
    let mut p = Pass::new(&s, opts);
    p.run();
    p.out
}

/// The text lowercased without moving a byte: ASCII letters, and every
/// other letter whose lowercase form is one character of the same UTF-8
/// length (Cyrillic, Greek, Armenian, accented Latin), so offsets into the
/// result are offsets into `text`. Random capitalisation (`ИгНоРиРуЙ`)
/// then reads as the lexicons' lowercase entries. The few letters whose
/// lowercase differs in length (`İ`, `ẞ`) stay as they are.
pub fn fold_case(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        let mut lower = c.to_lowercase();
        match (lower.next(), lower.next()) {
            (Some(l), None) if l.len_utf8() == c.len_utf8() => out.push(l),
            _ => out.push(c),
        }
    }
    out
}

/// Widens `[start, end)` to character boundaries of `text` (and clamps it).
fn snap(text: &str, start: usize, end: usize) -> (usize, usize) {
    let (mut s, mut e) = (start.min(end).min(text.len()), end.max(start).min(text.len()));
    while !text.is_char_boundary(s) {
        s -= 1;
    }
    while !text.is_char_boundary(e) {
        e += 1;
    }
    (s, e)
}

/// ASCII with no control characters but tab, CR and LF.
fn is_plain_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\t' || b == b'\r')
}

/// Characters the normalizer drops or decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invisible {
    ZeroWidth,
    Joiner,
    SoftHyphen,
    BidiMark,
    BidiEmbed,
    BidiOverride,
    VariationSelector,
    Tag,
    Control,
}

fn invisible(c: char) -> Option<Invisible> {
    use Invisible::*;
    Some(match c {
        '\u{200B}'
        | '\u{2060}'
        | '\u{FEFF}'
        | '\u{180E}'
        | '\u{2061}'..='\u{2064}'
        | '\u{034F}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{3164}'
        | '\u{FFA0}'
        | '\u{17B4}'
        | '\u{17B5}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{206A}'..='\u{206F}' => ZeroWidth,
        '\u{200C}' | '\u{200D}' => Joiner,
        '\u{00AD}' => SoftHyphen,
        '\u{200E}' | '\u{200F}' | '\u{061C}' => BidiMark,
        '\u{202A}'..='\u{202C}' | '\u{2066}'..='\u{2069}' => BidiEmbed,
        '\u{202D}' | '\u{202E}' => BidiOverride,
        '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}' | '\u{180B}'..='\u{180D}' | '\u{180F}' => VariationSelector,
        '\u{E0000}'..='\u{E007F}' => Tag,
        c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => Control,
        _ => return None,
    })
}

/// A character that belongs to a word for segmentation purposes: letters,
/// digits, marks, and the invisible characters attackers put inside words.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
        || is_combining_mark(c)
        || matches!(
            invisible(c),
            Some(
                Invisible::ZeroWidth
                    | Invisible::Joiner
                    | Invisible::SoftHyphen
                    | Invisible::BidiMark
                    | Invisible::BidiEmbed
                    | Invisible::BidiOverride
                    | Invisible::VariationSelector
            )
        )
}

/// Scripts whose letters UTS #39 lists as look-alikes of Latin letters.
fn confusable_script(s: Script) -> bool {
    matches!(
        s,
        Script::Cyrillic
            | Script::Greek
            | Script::Armenian
            | Script::Cherokee
            | Script::Coptic
            | Script::Lisu
            | Script::Canadian_Aboriginal
            | Script::Latin
            | Script::Common
    )
}

/// The ASCII letter or digit `c` looks like, if any (UTS #39 skeleton).
fn ascii_skeleton(c: char) -> Option<char> {
    if c.is_ascii() || !confusable_script(c.script()) || !c.is_alphanumeric() {
        return None;
    }
    let mut buf = [0u8; 4];
    let mut sk = unicode_security::skeleton(c.encode_utf8(&mut buf));
    let first = sk.next()?;
    if sk.next().is_some() || !first.is_ascii_alphanumeric() {
        return None;
    }
    // The skeleton folds to a canonical prototype ('l' for I, 1 and l);
    // keep the case the reader sees so patterns still match: an uppercase
    // letter on the 'l' prototype (Cyrillic І, Greek Ι) reads as I, not L.
    Some(match (c.is_uppercase(), first) {
        (true, 'l') => 'I',
        (true, f) => f.to_ascii_uppercase(),
        (false, f) => f,
    })
}

/// True when NFKC turns `c` into one ASCII character (𝐢 → i, ｉ → i).
fn nfkc_is_ascii(c: char) -> bool {
    let mut buf = [0u8; 4];
    let mut nf = c.encode_utf8(&mut buf).nfkc();
    matches!((nf.next(), nf.next()), (Some(d), None) if d.is_ascii())
}

/// The ASCII letter a Latin letter with diacritics is built on (é → e).
fn strip_diacritics(c: char) -> Option<char> {
    if c.is_ascii() || c.script() != Script::Latin {
        return None;
    }
    let mut base = None;
    let mut ok = true;
    decompose_canonical(c, |d| {
        if base.is_none() {
            base = Some(d);
        } else if !is_combining_mark(d) {
            ok = false;
        }
    });
    base.filter(|b| ok && b.is_ascii_alphabetic())
}

/// How a word's non-ASCII letters are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    None,
    MixedScript,
    WholeWord,
}

/// State of one normalization pass.
struct Pass<'a, 'o> {
    src: &'a str,
    opts: &'o NormalizeOptions,
    out: String,
    map: SpanMap,
    findings: Vec<UnicodeFinding>,
    decoded: Vec<DecodedView>,
    hidden: String,
    latin_dominant: bool,
}

impl<'a, 'o> Pass<'a, 'o> {
    fn new(src: &'a str, opts: &'o NormalizeOptions) -> Self {
        let (mut latin, mut other) = (0usize, 0usize);
        for c in src.chars() {
            if c.is_ascii_alphabetic() {
                latin += 1;
            } else if c.is_alphabetic() {
                other += 1;
            }
        }
        Pass {
            src,
            opts,
            out: String::with_capacity(src.len()),
            map: SpanMap::new(),
            findings: Vec::new(),
            decoded: Vec::new(),
            hidden: String::new(),
            latin_dominant: latin > 0 && latin * 3 >= (latin + other) * 2,
        }
    }

    fn finding(&mut self, kind: FindingKind, span: Span) {
        if let Some(last) = self.findings.iter_mut().rev().find(|f| f.kind == kind)
            && span.start <= last.span.end + 16
            && span.start >= last.span.start
        {
            last.span.end = last.span.end.max(span.end);
            last.count += 1;
            return;
        }
        self.findings.push(UnicodeFinding { kind, span, count: 1 });
    }

    fn emit_char(&mut self, c: char, orig: Span) {
        if c.is_ascii() && orig.len() == 1 {
            self.out.push(c);
            self.map.push_identity(orig.start, 1);
            return;
        }
        let before = self.out.len();
        self.out.push(c);
        if orig.len() == c.len_utf8() && self.src.get(orig.start..orig.end).is_some_and(|s| s.starts_with(c)) {
            self.map.push_identity(orig.start, orig.len());
        } else {
            self.map.push_mapped(orig, self.out.len() - before);
        }
    }

    fn emit_str(&mut self, s: &str, orig: Span) {
        self.out.push_str(s);
        self.map.push_mapped(orig, s.len());
    }

    fn run(&mut self) {
        let src = self.src;
        let mut i = 0;
        while i < src.len() {
            let Some(c) = src[i..].chars().next() else {
                break;
            };
            if c.is_ascii() && !c.is_ascii_control() || matches!(c, '\t' | '\n' | '\r') {
                // Copy the whole ASCII stretch that is not part of a word
                // containing non-ASCII letters.
                let run_end = src[i..]
                    .bytes()
                    .position(|b| !(b.is_ascii() && (b >= 0x20 && b != 0x7f || matches!(b, b'\t' | b'\n' | b'\r'))))
                    .map_or(src.len(), |p| i + p);
                // Back off to the start of a word that continues past the run.
                let mut copy_end = run_end;
                if run_end < src.len() && src[run_end..].chars().next().is_some_and(is_word_char) {
                    while copy_end > i && src.as_bytes()[copy_end - 1].is_ascii_alphanumeric() {
                        copy_end -= 1;
                    }
                }
                if copy_end > i {
                    self.out.push_str(&src[i..copy_end]);
                    self.map.push_identity(i, copy_end - i);
                    i = copy_end;
                    continue;
                }
            }
            if is_word_char(c) {
                let end = word_end(src, i);
                self.word(i, end);
                i = end;
            } else if invisible(c) == Some(Invisible::Tag) {
                i = self.tag_run(i);
            } else {
                self.other(c, i);
                i += c.len_utf8();
            }
        }
    }

    /// A character outside words: punctuation, symbols, spaces, controls.
    fn other(&mut self, c: char, at: usize) {
        let span = Span::new(at, at + c.len_utf8());
        match invisible(c) {
            // Terminal escapes, NUL and backspace can change what a person
            // sees; form feeds and vertical tabs are just noise.
            Some(Invisible::Control)
                if matches!(c, '\0' | '\u{7}' | '\u{8}' | '\u{1b}' | '\u{7f}' | '\u{80}'..='\u{9f}') =>
            {
                self.finding(FindingKind::ControlCharacter, span)
            }
            Some(_) => {}
            None if self.opts.fold_homoglyphs && self.symbol_in_word(c, at).is_some() => {
                let l = self.symbol_in_word(c, at).unwrap_or('e');
                self.emit_char(l, span);
            }
            None => {
                let mut buf = [0u8; 4];
                let s = c.encode_utf8(&mut buf);
                if c.is_ascii() || s.nfkc().eq(s.chars()) {
                    self.emit_char(c, span);
                } else {
                    let folded: String = s.nfkc().collect();
                    self.emit_str(&folded, span);
                }
            }
        }
    }

    /// The letter a currency or section sign stands for when it sits inside
    /// a Latin word (`s€cret`, `c¢de`): leetspeak with non-ASCII symbols.
    fn symbol_in_word(&self, c: char, at: usize) -> Option<char> {
        let letter = symbol_letter(c)?;
        let prev = self.src[..at].chars().next_back();
        let next = self.src[at + c.len_utf8()..].chars().next();
        (prev.is_some_and(|p| p.is_alphabetic()) || next.is_some_and(|n| n.is_alphabetic())).then_some(letter)
    }

    /// A run of tag characters: decoded in place, flagged unless it is an
    /// emoji flag's subdivision tag (🏴 + tags + CANCEL TAG).
    ///
    /// Tag characters only encode ASCII, so a smuggler who wants a
    /// look-alike letter, a zero-width character or a currency sign in the
    /// hidden text has to leave it visible between two tag runs
    /// (`ignor` + Cyrillic `е` + ` all`). Up to [`TAG_GAP`] such characters
    /// between tag characters are read as part of the hidden text (a
    /// look-alike as its Latin letter), so the hidden words stay whole.
    fn tag_run(&mut self, start: usize) -> usize {
        let src = self.src;
        // (source span, what it reads as) for every character of the run.
        let mut pieces: Vec<(Span, Option<char>)> = Vec::new();
        let mut at = start;
        while let Some(c) = src[at..].chars().next() {
            if invisible(c) == Some(Invisible::Tag) {
                let v = c as u32 - 0xE0000;
                // Printable ASCII as itself; tag tab, line feed and carriage
                // return as a space, so the hidden lines do not run together.
                let b = match v {
                    0x20..0x7f => Some(char::from(v as u8)),
                    0x09 | 0x0A | 0x0D => Some(' '),
                    _ => None,
                };
                pieces.push((Span::new(at, at + c.len_utf8()), b));
                at += c.len_utf8();
                continue;
            }
            let after_letter = pieces.last().and_then(|&(_, c)| c).is_some_and(|c| c.is_ascii_alphanumeric());
            let Some(gap_end) = tag_gap_end(src, at, after_letter) else { break };
            for (i, g) in src[at..gap_end].char_indices() {
                pieces.push((Span::new(at + i, at + i + g.len_utf8()), gap_letter(g)));
            }
            at = gap_end;
        }
        let end = at;
        let decoded: String = pieces.iter().filter_map(|&(_, c)| c).collect();
        let is_flag = src[..start].ends_with('\u{1F3F4}')
            && src[..end].ends_with('\u{E007F}')
            && (2..=7).contains(&decoded.len())
            && decoded.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if is_flag || !self.opts.decode_tags || decoded.is_empty() {
            return end;
        }
        let span = Span::new(start, end);
        self.finding(FindingKind::TagSmuggling, span);
        // A space between the hidden text and a visible word it touches, so
        // each reads as its own words (`Hello` + hidden `ignore`); hidden
        // spaces and punctuation between visible words need none.
        let word_at = |s: &str, first: bool| {
            let c = if first { s.chars().next() } else { s.chars().next_back() };
            c.is_some_and(char::is_alphanumeric)
        };
        if word_at(&decoded, true) && word_at(&src[..start], false) {
            self.emit_str(" ", Span::new(start, start));
        }
        for (span, c) in pieces {
            if let Some(c) = c {
                self.emit_str(c.encode_utf8(&mut [0u8; 4]), span);
            }
        }
        if word_at(&decoded, false) && word_at(&src[end..], true) {
            self.emit_str(" ", Span::new(end, end));
        }
        if !self.hidden.is_empty() {
            self.hidden.push(' ');
        }
        self.hidden.push_str(&decoded);
        end
    }

    /// Decides how to fold one word's non-ASCII letters.
    /// (A letter counts as a look-alike when [`is_foreign_look_alike`].)
    fn fold_for(&self, word: &str) -> Fold {
        if !self.opts.fold_homoglyphs {
            return Fold::None;
        }
        let (mut latin, mut look_alike, mut other) = (0u32, 0u32, 0u32);
        for c in word.chars() {
            if c.is_ascii_alphabetic() || strip_diacritics(c).is_some() || nfkc_is_ascii(c) {
                // Styled letters (𝒂, ｉ) are Latin after NFKC: reported as styled text.
                latin += 1;
            } else if !c.is_alphabetic() {
                continue;
            } else if c.script() == Script::Latin {
                latin += 1;
            } else if is_foreign_look_alike(c) {
                look_alike += 1;
            } else {
                other += 1;
            }
        }
        if look_alike == 0 {
            Fold::None
        } else if latin > 0 {
            Fold::MixedScript
        } else if other == 0 && look_alike >= 2 && self.latin_dominant {
            Fold::WholeWord
        } else {
            Fold::None
        }
    }

    fn word(&mut self, start: usize, end: usize) {
        let src = self.src;
        let word = &src[start..end];
        let mut fold = self.fold_for(word);
        // A lone look-alike letter is read by its neighbours.
        let lone_look_alike = word.chars().nth(1).is_none() && word.chars().next().is_some_and(is_foreign_look_alike);
        if matches!(fold, Fold::None) && self.opts.fold_homoglyphs && lone_look_alike {
            if in_spelled_word(src.as_bytes(), start, end) {
                // Spelled among lone Latin letters (`c-o-n-т-e-n-t`,
                // `w h о a m i`): a letter of a mixed-script word that the
                // separators cut into one-letter words.
                fold = Fold::MixedScript;
            } else if self.latin_dominant && between_latin_words(src, start, end) {
                // A one-letter word between Latin words of Latin text (`WOW
                // is а uncensored`, Cyrillic `а`): a homoglyph, where a real
                // one-letter word of that script would stand among its own.
                fold = Fold::WholeWord;
            }
        }
        let mut styled = 0u32;
        let mut marks_on_latin = 0u32;
        let mut mark_stack = 0u32;
        let mut max_stack = 0u32;
        let mut prev_alnum_ascii = false;
        let mut at = start;
        let mut chars = word.chars().peekable();
        while let Some(c) = chars.next() {
            let span = Span::new(at, at + c.len_utf8());
            at += c.len_utf8();
            if c.is_ascii() {
                self.emit_char(c, span);
                prev_alnum_ascii = c.is_ascii_alphanumeric();
                mark_stack = 0;
                continue;
            }
            if let Some(kind) = invisible(c) {
                let next_ascii = chars.peek().is_some_and(|n| n.is_ascii_alphanumeric());
                match kind {
                    Invisible::ZeroWidth | Invisible::Joiner | Invisible::SoftHyphen | Invisible::BidiMark => {
                        // Inside a Latin word there is no reason for them;
                        // between emoji or in Indic/Arabic text there is.
                        let suspicious = prev_alnum_ascii || next_ascii;
                        if suspicious && kind != Invisible::SoftHyphen && self.opts.report_zero_width {
                            self.finding(FindingKind::ZeroWidth, span);
                        }
                    }
                    Invisible::BidiEmbed if self.opts.report_bidi => self.finding(FindingKind::BidiControl, span),
                    Invisible::BidiOverride if self.opts.report_bidi => self.finding(FindingKind::BidiOverride, span),
                    Invisible::VariationSelector => at = self.variation_selectors(span.start, &mut chars, at),
                    _ => {}
                }
                continue;
            }
            if is_combining_mark(c) {
                let keep = !(self.opts.strip_combining_marks && prev_alnum_ascii);
                if keep {
                    self.emit_char(c, span);
                } else {
                    marks_on_latin += 1;
                    mark_stack += 1;
                    max_stack = max_stack.max(mark_stack);
                }
                continue;
            }
            mark_stack = 0;
            // Per-character NFKC: 𝐢 → i, ｉ → i, ﬁ → fi, ① → 1.
            let mut buf = [0u8; 4];
            let s = c.encode_utf8(&mut buf);
            let mut nf = s.nfkc();
            let first = nf.next();
            let single = first.filter(|_| nf.next().is_none());
            match single {
                Some(d) if d.is_ascii() => {
                    if d.is_ascii_alphanumeric() {
                        styled += 1;
                    }
                    self.emit_char(d, span);
                    prev_alnum_ascii = d.is_ascii_alphanumeric();
                }
                Some(d) => {
                    if let Some(base) = strip_diacritics(d).filter(|_| self.opts.strip_combining_marks) {
                        self.emit_char(base, span);
                        prev_alnum_ascii = true;
                    } else if let Some(a) = ascii_skeleton(d)
                        .filter(|_| fold != Fold::None || d.script() == Script::Latin || d.script() == Script::Common)
                    {
                        self.emit_char(a, span);
                        prev_alnum_ascii = true;
                    } else {
                        self.emit_char(d, span);
                        prev_alnum_ascii = false;
                    }
                }
                None => {
                    let folded: String = s.nfkc().collect();
                    prev_alnum_ascii = folded.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
                    self.emit_str(&folded, span);
                }
            }
        }
        let whole = Span::new(start, end);
        match fold {
            Fold::MixedScript if self.opts.report_mixed_script => self.finding(FindingKind::MixedScript, whole),
            Fold::WholeWord if self.opts.report_homoglyph_words => self.finding(FindingKind::HomoglyphWord, whole),
            _ => {}
        }
        if styled >= 3 && self.opts.report_styled_text {
            self.finding(FindingKind::StyledText, whole);
        }
        if self.opts.strip_combining_marks && (max_stack >= 3 || marks_on_latin >= 2) {
            self.finding(FindingKind::CombiningMarks, whole);
        }
    }

    /// Handles a variation selector and any run that follows it; returns the
    /// new byte position. Runs of four or more are decoded as hidden bytes.
    fn variation_selectors(
        &mut self,
        start: usize,
        chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
        mut at: usize,
    ) -> usize {
        let first = self.src[start..].chars().next().unwrap_or('\u{FE0F}');
        let mut bytes = vec![vs_byte(first)];
        while let Some(&n) = chars.peek() {
            if invisible(n) != Some(Invisible::VariationSelector) {
                break;
            }
            bytes.push(vs_byte(n));
            at += n.len_utf8();
            chars.next();
        }
        let span = Span::new(start, at);
        if !self.opts.report_variation_selectors {
            return at;
        }
        if bytes.len() >= 4 {
            self.finding(FindingKind::VariationSelectorSmuggling, span);
            if let Ok(text) = String::from_utf8(bytes.into_iter().flatten().collect()) {
                self.decoded.push(DecodedView {
                    text,
                    encoding: Encoding::VariationSelectors,
                    span: Some(span),
                    map: None,
                });
            }
        } else {
            // Selectors after emoji, symbols, digits (keycaps) and CJK
            // ideographs (IVS) are ordinary; after a Latin letter they are not.
            let prev = self.src[..start].chars().next_back();
            if prev.is_some_and(|p| p.is_ascii_alphabetic()) {
                self.finding(FindingKind::VariationSelector, span);
            }
        }
        at
    }
}

/// The byte a variation selector encodes (VS1–16 → 0–15, VS17–256 → 16–255).
fn vs_byte(c: char) -> Option<u8> {
    match c {
        '\u{FE00}'..='\u{FE0F}' => u8::try_from(c as u32 - 0xFE00).ok(),
        '\u{E0100}'..='\u{E01EF}' => u8::try_from(c as u32 - 0xE0100 + 16).ok(),
        _ => None,
    }
}

/// End of the word starting at `start`.
/// A letter of another script that looks like an ASCII letter (Cyrillic
/// `о`, Greek `α`); Latin letters with marks (`ı`, `ş`) are not.
fn is_foreign_look_alike(c: char) -> bool {
    !c.is_ascii()
        && c.is_alphabetic()
        && strip_diacritics(c).is_none()
        && !nfkc_is_ascii(c)
        && c.script() != Script::Latin
        && ascii_skeleton(c).is_some()
}

/// True when the word at `start..end` has an ASCII letter for the nearest
/// letter on both sides, past spaces and ASCII punctuation.
fn between_latin_words(src: &str, start: usize, end: usize) -> bool {
    let gap = |c: char| c.is_whitespace() || c.is_ascii_punctuation();
    let before = src[..start].trim_end_matches(gap).chars().next_back();
    let after = src[end..].trim_start_matches(gap).chars().next();
    before.is_some_and(|c| c.is_ascii_alphabetic()) && after.is_some_and(|c| c.is_ascii_alphabetic())
}

/// True when the one-character word at `start..end` sits next to a lone
/// ASCII letter across one separator (a space or a letter separator), as a
/// letter of a word spelled out one character at a time does.
fn in_spelled_word(b: &[u8], start: usize, end: usize) -> bool {
    let alnum = |i: usize| b.get(i).is_some_and(u8::is_ascii_alphanumeric);
    let lone_letter =
        |i: usize| b.get(i).is_some_and(u8::is_ascii_alphabetic) && !alnum(i.wrapping_sub(1)) && !alnum(i + 1);
    let sep = |i: usize| b.get(i).is_some_and(|&s| s == b' ' || decode::is_letter_sep(s));
    (start >= 2 && sep(start - 1) && lone_letter(start - 2)) || (sep(end) && lone_letter(end + 1))
}

/// The most visible characters read as part of hidden tag text when they
/// sit between two tag characters (see `tag_run`).
const TAG_GAP: usize = 3;

/// Where a short gap inside a tag run ends (at the next tag character), or
/// `None` when the text at `at` is not such a gap: more than [`TAG_GAP`]
/// characters, whitespace, ASCII, or no tag character after it. The gap
/// must touch a hidden letter or digit (`after_letter`: the hidden text
/// before it ends with one; else the tag character after it must be one),
/// so a short visible word between hidden spaces (Cyrillic `Не`) stays
/// what it is.
fn tag_gap_end(src: &str, at: usize, after_letter: bool) -> Option<usize> {
    for (n, (i, c)) in src[at..].char_indices().enumerate() {
        if invisible(c) == Some(Invisible::Tag) {
            let next_letter = char::from_u32(c as u32 - 0xE0000).is_some_and(|a| a.is_ascii_alphanumeric());
            return (n > 0 && (after_letter || next_letter)).then_some(at + i);
        }
        if n == TAG_GAP || c.is_whitespace() || c.is_ascii() {
            return None;
        }
    }
    None
}

/// The letter a currency or section sign stands for in leetspeak written
/// with non-ASCII symbols (`s€cret`, `c¢de`).
fn symbol_letter(c: char) -> Option<char> {
    Some(match c {
        '€' => 'e',
        '¢' => 'c',
        '§' => 's',
        '¥' => 'y',
        _ => return None,
    })
}

/// What a visible character inside hidden tag text reads as: a look-alike
/// letter as its Latin letter, a currency sign as the letter it stands
/// for, an invisible character as nothing. Tag text is ASCII by
/// construction, so anything else in it is a disguise.
fn gap_letter(c: char) -> Option<char> {
    if invisible(c).is_some() {
        return None;
    }
    if let Some(l) = symbol_letter(c) {
        return Some(l);
    }
    if let Some(b) = strip_diacritics(c) {
        return Some(b);
    }
    // Styled letters (`ⓑ`, `𝕖`, superscript `ᵁ`) are ASCII after NFKC.
    let mut buf = [0u8; 4];
    let mut nf = c.encode_utf8(&mut buf).nfkc();
    if let (Some(a), None) = (nf.next(), nf.next())
        && a.is_ascii_alphanumeric()
    {
        return Some(a);
    }
    Some(ascii_skeleton(c).unwrap_or(c))
}

fn word_end(src: &str, start: usize) -> usize {
    src[start..].char_indices().find(|&(_, c)| !is_word_char(c)).map_or(src.len(), |(p, _)| start + p)
}

#[cfg(test)]
mod tests;
