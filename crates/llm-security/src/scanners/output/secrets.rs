//! Secrets in completions: provider API keys, tokens, private keys, JWTs and
//! high-entropy values assigned to secret-looking names.
//!
//! Provider rules have literal triggers (`sk-`, `ghp_`, `AKIA`, `eyJ`, …,
//! matched exactly, so the search runs on aho-corasick's SIMD prefilter);
//! one pass decides which rules can match at all, and only those run their
//! regex. Secrets assigned to names (`api_key = "…"`, `"client_secret":
//! "…"`, `AWS_SECRET_ACCESS_KEY=…`, `password: …`) are read by hand from
//! each `=` / `:`: the name before it must mention a secret, the value after
//! it must be long, mixed and random enough, and not a placeholder
//! (`YOUR_API_KEY`, `xxxx`, `<token>`, `changeme`, `os.environ[…]`).
//!
//! Rules run from most to least specific and a match that overlaps one
//! already reported is dropped, so an `sk-proj-…` key in
//! `OPENAI_API_KEY="…"` is reported once, as `openai_api_key`.
//!
//! Evidence shows the rule's name, a short prefix and the length, never the
//! secret itself.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use regex::Regex;

use super::{char_classes, preview, shannon_entropy};
use crate::scanner::{ScanContext, Scanner};
use crate::types::{Severity, Threat, ThreatType};

/// Reports credentials (`secret_leak`).
#[derive(Debug, Clone)]
pub struct SecretsScanner {
    id: String,
}

impl SecretsScanner {
    /// A scanner with this instance id.
    pub fn new(id: impl Into<String>) -> SecretsScanner {
        SecretsScanner { id: id.into() }
    }
}

/// How a rule checks a candidate beyond its regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// The regex is enough (after the placeholder check).
    None,
    /// Upper, lower and digit all present.
    Mixed,
    /// A Slack token: enough digits to be real.
    Slack,
    /// A JWT: the header decodes to a JSON object with `alg`.
    Jwt,
    /// An AWS secret: 40 base64 characters, mixed, not followed by more.
    AwsSecret,
    /// A value assigned to a secret-looking name: entropy and classes.
    Entropy,
    /// A PEM private key header: find the block it opens.
    Pem,
}

/// One detection rule.
#[derive(Debug)]
struct Rule {
    category: &'static str,
    rule: &'static str,
    label: &'static str,
    severity: Severity,
    confidence: f64,
    /// Literals (matched exactly) one of which must occur.
    triggers: &'static [&'static str],
    pattern: &'static str,
    /// Capture group holding the secret (0: the whole match).
    group: usize,
    check: Check,
}

const RULES: &[Rule] = &[
    Rule {
        category: "private_key",
        rule: "pem_private_key",
        label: "PEM private key",
        severity: Severity::Critical,
        confidence: 0.99,
        triggers: &["-----BEGIN"],
        pattern: r"-----BEGIN ((?:[A-Z0-9]+ ){0,3})PRIVATE KEY(?: BLOCK)?-----",
        group: 0,
        check: Check::Pem,
    },
    Rule {
        category: "anthropic_api_key",
        rule: "anthropic_key",
        label: "Anthropic API key",
        severity: Severity::Critical,
        confidence: 0.99,
        triggers: &["sk-ant-"],
        pattern: r"(?-u:\b)sk-ant-[a-z]{2,8}[0-9]{2}-[A-Za-z0-9_-]{32,300}",
        group: 0,
        check: Check::None,
    },
    Rule {
        category: "openai_api_key",
        rule: "openai_legacy_key",
        label: "OpenAI API key",
        severity: Severity::Critical,
        confidence: 0.99,
        triggers: &["T3BlbkFJ"],
        pattern: r"(?-u:\b)sk-(?:[A-Za-z0-9]+-)?[A-Za-z0-9_-]{8,200}T3BlbkFJ[A-Za-z0-9_-]{8,200}",
        group: 0,
        check: Check::None,
    },
    Rule {
        category: "openai_api_key",
        rule: "openai_project_key",
        label: "OpenAI API key",
        severity: Severity::Critical,
        confidence: 0.97,
        triggers: &["sk-proj-", "sk-svcacct-", "sk-admin-", "sk-None-"],
        pattern: r"(?-u:\b)sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{32,300}",
        group: 0,
        check: Check::Mixed,
    },
    Rule {
        category: "openai_api_key",
        rule: "openai_key",
        label: "OpenAI API key",
        severity: Severity::High,
        confidence: 0.8,
        triggers: &["sk-"],
        pattern: r"(?-u:\b)sk-[A-Za-z0-9]{32,100}(?-u:\b)",
        group: 0,
        check: Check::Mixed,
    },
    Rule {
        category: "github_token",
        rule: "github_token",
        label: "GitHub token",
        severity: Severity::Critical,
        confidence: 0.99,
        triggers: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        pattern: r"(?-u:\b)gh[pousr]_[A-Za-z0-9]{36,255}(?-u:\b)",
        group: 0,
        check: Check::None,
    },
    Rule {
        category: "github_token",
        rule: "github_pat",
        label: "GitHub fine-grained token",
        severity: Severity::Critical,
        confidence: 0.99,
        triggers: &["github_pat_"],
        pattern: r"(?-u:\b)github_pat_[A-Za-z0-9_]{22,255}",
        group: 0,
        check: Check::None,
    },
    Rule {
        category: "slack_token",
        rule: "slack_token",
        label: "Slack token",
        severity: Severity::Critical,
        confidence: 0.95,
        triggers: &["xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-", "xoxo-", "xoxe"],
        pattern: r"(?-u:\b)xox(?:[abposr]|e\.xox[bp]|e)-[A-Za-z0-9-]{10,250}",
        group: 0,
        check: Check::Slack,
    },
    Rule {
        category: "slack_webhook",
        rule: "slack_webhook",
        label: "Slack webhook URL",
        severity: Severity::High,
        confidence: 0.95,
        triggers: &["hooks.slack.com"],
        pattern: r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,200}",
        group: 0,
        check: Check::None,
    },
    Rule {
        category: "stripe_api_key",
        rule: "stripe_key",
        label: "Stripe API key",
        severity: Severity::Critical,
        confidence: 0.97,
        triggers: &["sk_live_", "rk_live_", "sk_test_", "rk_test_"],
        pattern: r"(?-u:\b)[sr]k_(?:live|test)_[A-Za-z0-9]{16,247}(?-u:\b)",
        group: 0,
        check: Check::None,
    },
    Rule {
        category: "google_api_key",
        rule: "google_api_key",
        label: "Google API key",
        severity: Severity::High,
        confidence: 0.95,
        triggers: &["AIza"],
        pattern: r"(?-u:\b)(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)",
        group: 1,
        check: Check::None,
    },
    Rule {
        category: "aws_access_key_id",
        rule: "aws_access_key_id",
        label: "AWS access key id",
        severity: Severity::High,
        confidence: 0.9,
        triggers: &["AKIA", "ASIA", "ABIA", "ACCA"],
        pattern: r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?-u:\b)",
        group: 0,
        check: Check::None,
    },
    Rule {
        category: "jwt",
        rule: "jwt",
        label: "JSON Web Token",
        severity: Severity::High,
        confidence: 0.9,
        triggers: &["eyJ"],
        pattern: r"(?-u:\b)eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*",
        group: 0,
        check: Check::Jwt,
    },
    Rule {
        category: "high_entropy_secret",
        rule: "bearer_token",
        label: "bearer token",
        severity: Severity::High,
        confidence: 0.75,
        triggers: &["bearer", "Bearer", "BEARER"],
        pattern: r"(?i)(?-u:\b)bearer[ \t]+([A-Za-z0-9._~+/=-]{16,512})",
        group: 1,
        check: Check::Entropy,
    },
];

/// A 40-character AWS secret assigned to a name mentioning `aws` or `secret`.
const AWS_SECRET: Rule = Rule {
    category: "aws_secret_access_key",
    rule: "aws_secret_access_key",
    label: "AWS secret access key",
    severity: Severity::Critical,
    confidence: 0.9,
    triggers: &[],
    pattern: "",
    group: 0,
    check: Check::AwsSecret,
};

/// A high-entropy value assigned to a secret-looking name.
const ASSIGNMENT: Rule = Rule {
    category: "high_entropy_secret",
    rule: "secret_assignment",
    label: "high-entropy secret",
    severity: Severity::High,
    confidence: 0.7,
    triggers: &[],
    pattern: "",
    group: 0,
    check: Check::Entropy,
};

/// The `…key` names that hold secrets (`api_key`, `AccessKey`), unlike
/// `sort_key` or `primary_key`.
const KEY_COMPOUNDS: &[&[u8]] = &[
    b"api_key",
    b"api-key",
    b"api.key",
    b"apikey",
    b"auth_key",
    b"authkey",
    b"access_key",
    b"accesskey",
    b"private_key",
    b"privatekey",
    b"signing_key",
    b"encryption_key",
    b"master_key",
    b"secret_key",
];

/// Stems that make any name a secret's.
const NAME_STEMS: &[&[u8]] = &[b"secret", b"token", b"passw", b"pwd", b"passphrase", b"credential"];

#[allow(clippy::expect_used)] // constant patterns, checked by the tests
static COMPILED: LazyLock<Vec<Regex>> =
    LazyLock::new(|| RULES.iter().map(|r| Regex::new(r.pattern).expect("built-in secret pattern compiles")).collect());

/// Trigger literal index → rule index.
static TRIGGER_RULE: LazyLock<Vec<usize>> =
    LazyLock::new(|| RULES.iter().enumerate().flat_map(|(i, r)| r.triggers.iter().map(move |_| i)).collect());

/// The trigger literals, matched exactly (so the search runs on the
/// SIMD prefilter).
static TRIGGERS: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(RULES.iter().flat_map(|r| r.triggers.iter()))
        .ok()
});

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// A `name = value` found around an operator (byte ranges of the text).
#[derive(Debug, Clone, Copy)]
struct Assignment {
    name: (usize, usize),
    value: (usize, usize),
    quoted: bool,
}

/// Reads `name [quote] op value` around the operator byte at `op` (`=`
/// or `:`; `:=` and `=>` too, not `==`, `::`, `!=`, `<=`, `>=`). The name
/// is the run of identifier bytes before it (an optional quote and spaces
/// between), the value quoted or up to whitespace or punctuation. Values
/// longer than 256 bytes are not secrets.
fn assignment_at(text: &str, op: usize) -> Option<Assignment> {
    let b = text.as_bytes();
    let mut i = op + 1;
    match (b[op], b.get(i)) {
        (b':', Some(b'=')) | (b'=', Some(b'>')) => i += 1,
        (b'=', Some(b'=')) | (b':', Some(b':')) => return None,
        _ => {}
    }
    if op > 0 && matches!(b[op - 1], b'=' | b':' | b'!' | b'<' | b'>') {
        return None;
    }
    // The name.
    let mut ne = op;
    while ne > 0 && matches!(b[ne - 1], b' ' | b'\t') && op - ne < 8 {
        ne -= 1;
    }
    if ne > 0 && matches!(b[ne - 1], b'"' | b'\'') {
        ne -= 1;
    }
    let mut ns = ne;
    while ns > 0 && ne - ns < 64 && is_name_byte(b[ns - 1]) {
        ns -= 1;
    }
    if ne - ns < 3 {
        return None;
    }
    // The value.
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    let (vs, ve, quoted) = match b.get(i) {
        Some(&q @ (b'"' | b'\'' | b'`')) => {
            let vs = i + 1;
            let mut j = vs;
            while j < b.len() && b[j] != q && !b[j].is_ascii_whitespace() && j - vs <= 256 {
                j += 1;
            }
            if b.get(j) != Some(&q) {
                return None;
            }
            (vs, j, true)
        }
        _ => {
            let mut j = i;
            while j < b.len()
                && !b[j].is_ascii_whitespace()
                && !matches!(
                    b[j],
                    b'"' | b'\'' | b'`' | b',' | b';' | b'(' | b')' | b'{' | b'}' | b'[' | b']' | b'<' | b'>'
                )
            {
                j += 1;
                if j - i > 256 {
                    return None;
                }
            }
            (i, j, false)
        }
    };
    (ve >= vs + 6).then_some(Assignment { name: (ns, ne), value: (vs, ve), quoted })
}

/// What a name says about the value assigned to it: (may hold an AWS
/// secret, holds some secret).
fn name_kind(name: &str) -> (bool, bool) {
    let mut buf = [0u8; 64];
    let n = name.len().min(64);
    for (d, s) in buf.iter_mut().zip(name.bytes()) {
        *d = s.to_ascii_lowercase();
    }
    let lower = &buf[..n];
    let has = |w: &[u8]| lower.windows(w.len()).any(|x| x[0] == w[0] && x.iter().zip(w).all(|(a, b)| a == b));
    let generic = NAME_STEMS.iter().any(|w| has(w)) || (has(b"key") && KEY_COMPOUNDS.iter().any(|w| has(w)));
    let aws = has(b"aws") || has(b"secret");
    (aws, generic)
}

/// Values that stand in for a secret in docs and templates.
const PLACEHOLDER_WORDS: &[&str] = &[
    "example",
    "your_",
    "your-",
    "yourkey",
    "yourtoken",
    "yourapi",
    "yoursecret",
    "placeholder",
    "xxxx",
    "dummy",
    "redacted",
    "changeme",
    "change_me",
    "replace",
    "insert",
    "sample",
    "****",
    "...",
    "…",
    "<",
    ">",
    "{{",
    "${",
    "%s",
    "todo",
    "fixme",
    "notreal",
    "not_real",
    "not-a-real",
    "fake",
];

/// True when `v` is a documentation or template stand-in rather than a
/// credential: placeholder words, or six or more of one character in a row.
pub(crate) fn is_placeholder(v: &str) -> bool {
    let lower = v.to_ascii_lowercase();
    if PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w)) {
        return true;
    }
    // `eXamPl3T0K3n`, `p4ssw0rd`: placeholders in leetspeak.
    let unleet: String = lower
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' => 'l',
            '3' => 'e',
            '4' | '@' => 'a',
            '5' | '$' => 's',
            '7' => 't',
            c => c,
        })
        .collect();
    if unleet != lower && PLACEHOLDER_WORDS.iter().any(|w| unleet.contains(w)) {
        return true;
    }
    let mut run = 0;
    let mut prev = 0u8;
    for b in lower.bytes() {
        if b == prev {
            run += 1;
            if run >= 6 {
                return true;
            }
        } else {
            run = 1;
            prev = b;
        }
    }
    false
}

/// Upper, lower and digits all present.
fn mixed(v: &str) -> bool {
    let b = v.as_bytes();
    b.iter().any(u8::is_ascii_uppercase) && b.iter().any(u8::is_ascii_lowercase) && b.iter().any(u8::is_ascii_digit)
}

/// True when a value assigned to a secret-looking name looks like a real
/// secret: long and random enough, several character classes, not code.
fn secret_like(v: &str) -> bool {
    let n = v.len();
    if n < 8 || is_placeholder(v) {
        return false;
    }
    let b = v.as_bytes();
    if matches!(b[0], b'$' | b'{' | b'%' | b'@' | b'#' | b'/' | b'.') {
        return false;
    }
    // Identifiers and dotted paths (`process.env.API_KEY`, `settings.TOKEN`,
    // `OPENAI_API_KEY`) name a secret, they are not one.
    let ident_path = v.split('.').all(|seg| {
        !seg.is_empty()
            && seg.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            && !seg.as_bytes()[0].is_ascii_digit()
    });
    if ident_path && !mixed(v) {
        return false;
    }
    // Calls and indexing are code, not secrets.
    if v.contains('(') && v.contains(')') || v.contains('[') && v.contains(']') {
        return false;
    }
    // URLs and paths are not secrets by themselves.
    if v.contains("://") || v.starts_with("http") {
        return false;
    }
    let classes = char_classes(v);
    let h = shannon_entropy(v);
    if classes < 2 {
        return false;
    }
    if n >= 16 { h >= 3.5 } else { h >= 3.0 && classes >= 3 }
}

/// True when `token` is a JWT: its header decodes to a JSON object with `alg`.
fn jwt_header_ok(token: &str) -> bool {
    let Some(header) = token.split('.').next() else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(m)) => m.contains_key("alg"),
        _ => false,
    }
}

/// The signature of jwt.io's example token, printed in countless tutorials.
const JWT_IO_EXAMPLE_SIG: &str = "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

/// Where the PEM block opened by a header at `[start, hdr_end)` ends, and how
/// many base64 characters its body holds. `None` when the body is too short
/// to be a key (a `...` placeholder in a tutorial).
fn pem_block(text: &str, start: usize, hdr_end: usize) -> Option<(usize, usize)> {
    let rest = &text[hdr_end..];
    let (body, end) = match rest.find("-----END ") {
        Some(p) => {
            let after = hdr_end + p + "-----END ".len();
            let close = text[after..].find("-----").filter(|&q| q <= 64).map_or(after, |q| after + q + 5);
            (&rest[..p], close)
        }
        None => {
            // Truncated block: the body runs over lines of base64.
            let mut end = hdr_end;
            for line in rest.split_inclusive('\n') {
                let t = line.trim();
                let is_body = t.is_empty()
                    || t.contains(':')
                    || t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
                if !is_body || (t.is_empty() && end > hdr_end + 1) {
                    break;
                }
                end += line.len();
            }
            (&text[hdr_end..end], end)
        }
    };
    let b64 = body.bytes().filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/')).count();
    (b64 >= 32 && start < end).then_some((end, b64))
}

impl Scanner for SecretsScanner {
    fn id(&self) -> &str {
        &self.id
    }

    fn scan(&self, cx: &ScanContext<'_>, out: &mut Vec<Threat>) {
        let text = cx.normalized.text();
        let Some(ac) = TRIGGERS.as_ref() else {
            return;
        };
        let map = &*TRIGGER_RULE;
        let mut active = [false; RULES.len()];
        for m in ac.find_iter(text) {
            if let Some(&r) = map.get(m.pattern().as_usize()) {
                active[r] = true;
            }
        }
        // Assignment operators, for `name = value` secrets.
        let mut ops: Vec<usize> = text.match_indices('=').chain(text.match_indices(':')).map(|(i, _)| i).collect();
        if !active.contains(&true) && ops.is_empty() {
            return;
        }
        let compiled = &*COMPILED;
        // Accepted ranges of the normalized text, to drop weaker overlaps.
        let mut taken: Vec<(usize, usize)> = Vec::new();
        let mut emit = |rule: &Rule, s: usize, e: usize, value: &str, evidence: String| {
            if taken.iter().any(|&(a, b)| s < b && a < e) {
                return;
            }
            taken.push((s, e));
            let (severity, confidence) = grade(rule, value);
            out.push(
                Threat::new(
                    ThreatType::SecretLeak,
                    rule.category,
                    severity,
                    confidence,
                    cx.normalized.to_original(s, e),
                    evidence,
                    self.id.as_str(),
                )
                .with_rule(rule.rule),
            );
        };
        for (i, rule) in RULES.iter().enumerate() {
            if !active[i] {
                continue;
            }
            let Some(re) = compiled.get(i) else { continue };
            for caps in re.captures_iter(text) {
                let m = if rule.group == 0 { caps.get(0) } else { (rule.group..caps.len()).find_map(|g| caps.get(g)) };
                let Some(m) = m else { continue };
                let s = m.start();
                let mut e = m.end();
                let mut value = m.as_str();
                let ok = match rule.check {
                    Check::None => !is_placeholder(value),
                    Check::Mixed => mixed(value) && !is_placeholder(value),
                    Check::Slack => {
                        value.bytes().filter(u8::is_ascii_digit).count() >= 8
                            && value.matches('-').count() >= 2
                            && !is_placeholder(value)
                    }
                    Check::Jwt => {
                        !value.ends_with(JWT_IO_EXAMPLE_SIG) && jwt_header_ok(value) && !is_placeholder(value)
                    }
                    Check::Entropy | Check::AwsSecret => {
                        value = value.trim_end_matches(['.', ',', ';', ':', '!', '?']);
                        e = s + value.len();
                        secret_like(value)
                    }
                    Check::Pem => match pem_block(text, s, e) {
                        Some((end, b64)) => {
                            let label = caps.get(1).map_or("", |g| g.as_str()).trim();
                            let what = if label.is_empty() { String::new() } else { format!(", {label}") };
                            emit(
                                rule,
                                s,
                                end,
                                "",
                                format!("{} block{what} ({} bytes, {b64} base64 chars)", rule.label, end - s),
                            );
                            false
                        }
                        None => false,
                    },
                };
                if ok {
                    emit(rule, s, e, value, format!("{} {}", rule.label, preview(value)));
                }
            }
        }
        ops.sort_unstable();
        for &op in &ops {
            let Some(a) = assignment_at(text, op) else {
                continue;
            };
            let (vs, mut ve) = a.value;
            let mut value = &text[vs..ve];
            let next = text.as_bytes().get(ve).copied();
            let aws_value = value.len() == 40
                && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+'))
                && next != Some(b'=');
            if !(aws_value || value.len() >= 8 && char_classes(value) >= 2) {
                continue;
            }
            let (aws_name, generic_name) = name_kind(&text[a.name.0..a.name.1]);
            if aws_name && aws_value && mixed(value) && shannon_entropy(value) >= 4.0 && !is_placeholder(value) {
                let evidence = format!("{} {}", AWS_SECRET.label, preview(value));
                emit(&AWS_SECRET, vs, ve, value, evidence);
                continue;
            }
            if !generic_name {
                continue;
            }
            if !a.quoted {
                value = value.trim_end_matches(['.', ',', ';', ':', '!', '?']);
                ve = vs + value.len();
            }
            if secret_like(value) {
                let evidence = format!("{} {}", ASSIGNMENT.label, preview(value));
                emit(&ASSIGNMENT, vs, ve, value, evidence);
            }
        }
    }
}

/// Severity and confidence for one match of `rule`.
fn grade(rule: &Rule, value: &str) -> (Severity, f64) {
    match rule.rule {
        "stripe_key" if value.contains("_test_") => (Severity::High, 0.9),
        "secret_assignment" | "bearer_token" => {
            let h = shannon_entropy(value);
            (rule.severity, (rule.confidence + (h - 3.5) / 10.0).clamp(0.5, 0.9))
        }
        _ => (rule.severity, rule.confidence),
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
        SecretsScanner::new("secrets").scan(&cx, &mut out);
        out
    }

    // Test keys below are made of random characters in each provider's
    // published format; none is a real credential.
    const OPENAI_PROJ: &str = "sk-proj-Vq3XbT9kLm2RpZa7Yc4HdW8nE1fGu6JsKo5Qi0MtBvNx-_Ar7LpCe2Dw9Fg4Hj3Kl6Mn";
    const OPENAI_LEGACY: &str = "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";
    const ANTHROPIC: &str =
        "sk-ant-api03-Xy7Qm2Lr9Tp4Vb8Nc3Kd6Jh1Fg5Ws0Ae7Ro2Ui9Pz4Ty8Mb3Lc6Nd1Ke5Jf0Hg7Qs2Wa9Vx4-ZtR8yU3iO6pAA";

    #[test]
    fn detects_provider_keys() {
        let aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ8kM3nT2q";
        let cases: &[(&str, &str, &str)] = &[
            // OpenAI project key as printed by platform.openai.com.
            (&format!("export OPENAI_API_KEY={OPENAI_PROJ}"), "openai_api_key", "openai project key in a shell export"),
            // Legacy OpenAI key with the T3BlbkFJ ("OpenAI" in base64) marker.
            (&format!("client = OpenAI(api_key=\"{OPENAI_LEGACY}\")"), "openai_api_key", "legacy key in python"),
            // Anthropic console key format.
            (&format!("ANTHROPIC_API_KEY={ANTHROPIC}"), "anthropic_api_key", "anthropic env line"),
            (
                "sk-ant-admin01-Qw8Er5Ty2Ui9Op6As3Df0Gh7Jk4Lz1Xc8Vb5Nm2Qw9Er6Ty3Ui0Op7As4Df1Gh8Jk5Lz2-AA",
                "anthropic_api_key",
                "anthropic admin key",
            ),
            // AWS: access key id and secret in ~/.aws/credentials form.
            ("aws_access_key_id = AKIA2OGYBAH6QTZXKB7M", "aws_access_key_id", "credentials file key id"),
            (&format!("aws_secret_access_key = {aws_secret}"), "aws_secret_access_key", "credentials file secret"),
            (
                &format!("{{\"SecretAccessKey\": \"{aws_secret}\"}}"),
                "aws_secret_access_key",
                "sts get-session-token JSON output",
            ),
            // GitHub classic and fine-grained tokens.
            (
                "git clone https://ghp_R8sKq2Lm5Np7Tv9Xw1Yz3Ab4Cd6Ef8Gh0Ij2K@github.com/o/r",
                "github_token",
                "token embedded in a clone URL",
            ),
            (
                "GITHUB_TOKEN=github_pat_11ABCDEFG0Xy7Qm2Lr9Tp4_Vb8Nc3Kd6Jh1Fg5Ws0Ae7Ro2Ui9Pz4Ty8Mb3Lc6Nd1Ke5Jf0Hg7Qs2",
                "github_token",
                "fine-grained PAT",
            ),
            // Slack bot token and incoming webhook.
            ("SLACK_BOT_TOKEN=xoxb-2048123456-5012345678901-Hq7Lr2Tp9Vb4Nc8Kd3Jh6F", "slack_token", "slack bot token"),
            (
                "curl -X POST https://hooks.slack.com/services/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",
                "slack_webhook",
                "slack webhook in curl",
            ),
            // Stripe live secret key.
            (
                "stripe.api_key = 'sk_live_51Hq7Lr2Tp9Vb4Nc8Kd3Jh6Fg1Ws5Ae0Ro7Ui2Pz'",
                "stripe_api_key",
                "stripe python client",
            ),
            // Google API key (AIza + 35).
            (
                "https://maps.googleapis.com/maps/api/js?key=AIzaSyB7Lr2Tp9Vb4Nc8Kd3Jh6Fg1Ws5Ae0Ro7U",
                "google_api_key",
                "maps javascript API key",
            ),
            // JWT with an HS256 header.
            (
                "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIiwiaWF0IjoxNzAwMDAwMDAwfQ.Hq7Lr2Tp9Vb4Nc8Kd3Jh6Fg1Ws5Ae0Ro7Ui2PzQ4",
                "jwt",
                "bearer JWT",
            ),
            // Generic assignments with high entropy.
            ("DB_PASSWORD=\"Zq8#vL2!pR7mK4@x\"", "high_entropy_secret", "database password in .env"),
            ("api_key: 9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a", "high_entropy_secret", "hex api key in YAML"),
            (
                "\"client_secret\": \"Gx7Kq2Lm9Np4Rs6Tv8Wy1Za3Bc5De\"",
                "high_entropy_secret",
                "OAuth client secret in JSON",
            ),
        ];
        for (text, cat, note) in cases {
            let found = scan(text);
            assert!(found.iter().any(|t| t.category == *cat), "{note}: {text:?} → {found:?}");
            for t in &found {
                assert_eq!(t.kind, ThreatType::SecretLeak);
                assert!(t.severity >= Severity::High, "{note}");
                let value = t.span.slice(text);
                assert!(!t.evidence.contains(value), "{note}: evidence leaks");
            }
        }
    }

    #[test]
    fn one_threat_per_key() {
        // The generic assignment rule must not repeat a provider match.
        let text = format!("OPENAI_API_KEY=\"{OPENAI_PROJ}\"");
        let found = scan(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].span.slice(&text), OPENAI_PROJ);
    }

    #[test]
    fn pem_block_span_covers_the_block() {
        let body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n";
        let text =
            format!("Here is the key:\n-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----\nDone.");
        let found = scan(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        let s = found[0].span.slice(&text);
        assert!(s.starts_with("-----BEGIN RSA"), "{s}");
        assert!(s.ends_with("-----END RSA PRIVATE KEY-----"), "{s}");
        assert_eq!(found[0].category, "private_key");
        assert!(!found[0].evidence.contains("MIIE"));
        // A block cut off by the token limit is still reported.
        let cut = format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{body}");
        let found = scan(&cut);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].span.end >= cut.len() - 1);
    }

    #[test]
    fn zero_width_split_key_is_found_and_mapped() {
        // A key with a zero-width space inside still works once copied
        // through many sanitizers; the span covers the whole original.
        let text = format!("key: sk-proj-\u{200B}{}", &OPENAI_PROJ[8..]);
        let found = scan(&text);
        assert!(found.iter().any(|t| t.category == "openai_api_key"), "{found:?}");
        let t = &found[0];
        assert!(t.span.slice(&text).ends_with(&OPENAI_PROJ[60..]));
        assert!(text.is_char_boundary(t.span.start));
    }

    #[test]
    fn benign_look_alikes_are_not_secrets() {
        let cases: &[(&str, &str)] = &[
            ("export OPENAI_API_KEY=YOUR_API_KEY", "quickstart placeholder"),
            ("api_key = \"<your-api-key>\"", "template placeholder"),
            ("token=xxxxxxxxxxxxxxxxxxxx", "masked token"),
            ("password: changeme", "default password placeholder"),
            ("PASSWORD = 'hunter2'", "low-entropy demo password"),
            ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AWS documentation example key id"),
            ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS documentation example secret"),
            ("api_key = os.environ[\"OPENAI_API_KEY\"]", "key read from the environment"),
            ("token = process.env.GITHUB_TOKEN", "node reads a token from env"),
            ("max_tokens: 4096", "completion length setting"),
            ("The task-sk-runner and risk-assessment docs", "sk- inside words"),
            ("Travel to Asia and AKIAbc is not a key", "AWS prefix lookalikes"),
            (
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
                "jwt.io example token",
            ),
            ("-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----", "elided key in a tutorial"),
            ("commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a3f", "git sha is not a secret"),
            ("xoxb-your-token-here", "slack placeholder from the Bolt docs"),
            ("token = \"eXamPl3T0K3n\"", "leetspeak placeholder"),
            ("password: \"print(globals()['__builtins__'])\"", "code in a quoted value"),
            ("The keyword `secret` is reserved; the token: identifier rule applies.", "prose about tokens"),
        ];
        for (text, note) in cases {
            let found = scan(text);
            assert!(found.is_empty(), "{note}: {text:?} → {found:?}");
        }
    }

    #[test]
    fn patterns_compile() {
        assert_eq!(COMPILED.len(), RULES.len());
        assert!(TRIGGERS.is_some());
    }
}
