//! Harmful responses (`malicious_content`, scanner `harmful_content`): a
//! completion that encourages self-harm, threatens or incites violence,
//! explains how to build weapons, make drugs or write malware, insults or
//! dehumanises, sexualises minors, or gives dangerous medical advice — and,
//! given the prompt, one that complies with a harmful request.
//!
//! The lexicons and phrase patterns live in `patterns/harmful.toml`. Three
//! kinds of evidence, from strongest to weakest:
//!
//! | signal         | what                                                        | rule |
//! |----------------|-------------------------------------------------------------|------|
//! | `explicit`     | a phrase harmful on its own: an insult aimed at the reader, a threat, "you should kill yourself", a slur, a group called vermin, a minor next to sexual words, "stop taking your insulin" | the phrase's id |
//! | `instructions` | a topic word (explosives, methamphetamine, ransomware, …) in a completion with instructional structure (numbered steps, quantities with units, imperative verbs) that does not refuse | `instructions` |
//! | `compliance`   | with the prompt: the prompt asks for harmful content (a request verb and a category's request lexicon) and the completion answers without refusing, with steps, code or a substantive answer on the topic | `complied_with_harmful_request` |
//! | `context`      | with the prompt: a short agreeing reply to abuse (`toxicity_agreement`, medium); no supportive word in reply to a self-harm disclosure (`risk_ignorance`, low: recorded, not blocked) | as named |
//! | `model`        | where the rules found nothing at medium or above and the reply does not refuse: the learned model ([`crate::harmful_model`], `[output.harmful] model`) gives P(harmful) at or above its threshold (medium; confidence = the probability; category from its category head, `sexual_content` for adult sexual content) | `model` |
//!
//! A refusal (the [`refusal`](super::refusal) detector) that names the
//! topic is never an `instructions` or `compliance` finding; an explicit
//! phrase preceded by a negation or a safety frame ("never tell someone to
//! …", "don't stop taking …") is skipped. News, fiction and safety advice
//! that mention a topic without steps pass.
//!
//! Each finding's `category` is the harm category ([`HarmCategory`]), its
//! metadata carries `harm_category` and `signal`. Per-category switches,
//! confidence floors and actions are in
//! [`HarmfulContentConfig`](crate::HarmfulContentConfig).

use std::fmt;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::HARMFUL_ID;
use crate::config::HarmfulContentConfig;
use crate::error::Error;
use crate::harmful_model::HarmfulModel;
use crate::normalize::Normalized;
use crate::scanner::{ScanContext, Scanner};
use crate::types::{Severity, Span, Threat, ThreatType};

const FILE: &str = "patterns/harmful.toml";
const SOURCE: &str = include_str!("../../../patterns/harmful.toml");

/// Bytes before an explicit phrase read for a negation.
const NEGATION_WINDOW: usize = 40;
/// A completion at least this long that discusses the requested topic is a
/// substantive answer, even without steps.
const SUBSTANTIVE_BYTES: usize = 200;
/// Agreement with abuse counts only in a reply this short (a long reply
/// that starts with "yes" usually goes on to disagree).
const SHORT_REPLY_BYTES: usize = 200;

/// The harm categories of the `harmful_content` scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HarmCategory {
    /// Encouraging self-harm or suicide, self-harm methods.
    SelfHarm,
    /// Threats, incitement, weapons and explosives instructions.
    ViolenceWeapons,
    /// Illegal drug synthesis.
    DrugSynthesis,
    /// Insults and abuse aimed at the reader, slurs, dehumanising a group.
    HateHarassment,
    /// Sexual content involving minors.
    SexualMinors,
    /// Malware and cyber-attack instructions.
    Malware,
    /// Advice to stop medication, toxic remedies, overdosing.
    DangerousMedical,
}

impl HarmCategory {
    /// Every category, in declaration order.
    pub const ALL: [HarmCategory; 7] = [
        HarmCategory::SelfHarm,
        HarmCategory::ViolenceWeapons,
        HarmCategory::DrugSynthesis,
        HarmCategory::HateHarassment,
        HarmCategory::SexualMinors,
        HarmCategory::Malware,
        HarmCategory::DangerousMedical,
    ];

    /// The snake_case name (config keys, threat categories).
    pub fn as_str(self) -> &'static str {
        match self {
            HarmCategory::SelfHarm => "self_harm",
            HarmCategory::ViolenceWeapons => "violence_weapons",
            HarmCategory::DrugSynthesis => "drug_synthesis",
            HarmCategory::HateHarassment => "hate_harassment",
            HarmCategory::SexualMinors => "sexual_minors",
            HarmCategory::Malware => "malware",
            HarmCategory::DangerousMedical => "dangerous_medical",
        }
    }

    /// The category named `s`.
    pub fn parse(s: &str) -> Option<HarmCategory> {
        HarmCategory::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for HarmCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ── the pattern file ────────────────────────────────────────────────────

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternFile {
    negation: NegationDef,
    structure: StructureDef,
    request: RequestDef,
    context: ContextDef,
    #[serde(rename = "category")]
    categories: Vec<CategoryDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NegationDef {
    pattern: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StructureDef {
    list_item: String,
    quantity: String,
    imperative: String,
    code_fence: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestDef {
    verbs: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextDef {
    disclosure: String,
    support: String,
    agreement: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryDef {
    name: HarmCategory,
    severity: Severity,
    keywords: Vec<String>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    topic_also: Option<String>,
    #[serde(default)]
    topic_unless: Option<String>,
    #[serde(default)]
    request: Option<String>,
    #[serde(default)]
    explicit: Vec<ExplicitDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplicitDef {
    id: String,
    confidence: f64,
    pattern: String,
    #[serde(default)]
    near: Option<String>,
    #[serde(default)]
    near_window: Option<usize>,
}

#[derive(Debug)]
struct Explicit {
    id: String,
    confidence: f64,
    pattern: Regex,
    near: Option<(Regex, usize)>,
}

#[derive(Debug)]
struct Category {
    name: HarmCategory,
    severity: Severity,
    topic: Option<Regex>,
    topic_also: Option<Regex>,
    topic_unless: Option<Regex>,
    request: Option<Regex>,
    explicit: Vec<Explicit>,
}

/// The compiled pattern file.
#[derive(Debug)]
pub(crate) struct Lexicon {
    negation: Regex,
    list_item: Regex,
    quantity: Regex,
    imperative: Regex,
    code_fence: String,
    request_verbs: Regex,
    disclosure: Regex,
    support: Regex,
    agreement: Regex,
    categories: Vec<Category>,
    keywords: AhoCorasick,
    /// For each keyword, the index of its category.
    keyword_category: Vec<usize>,
}

impl Lexicon {
    /// Parses and compiles a pattern file.
    pub(crate) fn parse(file: &str, source: &str) -> Result<Lexicon, Error> {
        let err = |id: &str, message: String| Error::Pattern { file: file.into(), id: id.into(), message };
        let d: PatternFile = toml::from_str(source).map_err(|e| err("-", e.to_string()))?;
        let re = |id: &str, p: &str| Regex::new(&ascii_boundaries(p)).map_err(|e| err(id, e.to_string()));
        let mut categories = Vec::new();
        let mut words = Vec::new();
        let mut keyword_category = Vec::new();
        for (i, c) in d.categories.into_iter().enumerate() {
            let name = c.name.as_str();
            if c.keywords.is_empty() {
                return Err(err(name, "a category needs at least one keyword".into()));
            }
            for k in &c.keywords {
                words.push(k.to_ascii_lowercase());
                keyword_category.push(i);
            }
            let mut explicit = Vec::new();
            for e in c.explicit {
                if !(0.0..=1.0).contains(&e.confidence) {
                    return Err(err(&e.id, format!("confidence {} is outside [0, 1]", e.confidence)));
                }
                explicit.push(Explicit {
                    pattern: re(&e.id, &e.pattern)?,
                    near: e
                        .near
                        .as_deref()
                        .map(|p| re(&e.id, p))
                        .transpose()?
                        .map(|r| (r, e.near_window.unwrap_or(80))),
                    confidence: e.confidence,
                    id: e.id,
                });
            }
            categories.push(Category {
                name: c.name,
                severity: c.severity,
                topic: c.topic.as_deref().map(|p| re(name, p)).transpose()?,
                topic_also: c.topic_also.as_deref().map(|p| re(name, p)).transpose()?,
                topic_unless: c.topic_unless.as_deref().map(|p| re(name, p)).transpose()?,
                request: c.request.as_deref().map(|p| re(name, p)).transpose()?,
                explicit,
            });
        }
        let keywords = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&words)
            .map_err(|e| err("-", e.to_string()))?;
        Ok(Lexicon {
            negation: re("negation", &d.negation.pattern)?,
            list_item: re("structure.list_item", &d.structure.list_item)?,
            quantity: re("structure.quantity", &d.structure.quantity)?,
            imperative: re("structure.imperative", &d.structure.imperative)?,
            code_fence: d.structure.code_fence,
            request_verbs: re("request.verbs", &d.request.verbs)?,
            disclosure: re("context.disclosure", &d.context.disclosure)?,
            support: re("context.support", &d.context.support)?,
            agreement: re("context.agreement", &d.context.agreement)?,
            categories,
            keywords,
            keyword_category,
        })
    }

    /// Which categories have a keyword in `text`.
    fn triggered(&self, text: &str) -> Vec<bool> {
        let mut on = vec![false; self.categories.len()];
        for m in self.keywords.find_overlapping_iter(text) {
            if let Some(&c) = self.keyword_category.get(m.pattern().as_usize()) {
                on[c] = true;
            }
        }
        on
    }

    /// The first explicit phrase of `cat` in `low` that is not negated:
    /// `(phrase index, start, end)`.
    fn explicit(&self, cat: &Category, low: &str) -> Option<(usize, usize, usize)> {
        for (i, e) in cat.explicit.iter().enumerate() {
            for m in e.pattern.find_iter(low) {
                let before = floor_boundary(low, m.start().saturating_sub(NEGATION_WINDOW));
                if self.negation.is_match(&low[before..m.start()]) {
                    continue;
                }
                if let Some((near, w)) = &e.near {
                    let lo = floor_boundary(low, m.start().saturating_sub(*w));
                    let hi = ceil_boundary(low, (m.end() + w).min(low.len()));
                    if !near.is_match(&low[lo..hi]) {
                        continue;
                    }
                }
                return Some((i, m.start(), m.end()));
            }
        }
        None
    }

    /// Whether `low` reads as instructions: two list items, a "step 1", two
    /// quantities with an imperative, or three imperatives.
    pub(crate) fn instructional(&self, low: &str) -> bool {
        if low.contains("step 1") || self.list_item.find_iter(low).nth(1).is_some() {
            return true;
        }
        let imperatives = self.imperative.find_iter(low).take(3).count();
        imperatives >= 3 || (imperatives >= 1 && self.quantity.find_iter(low).nth(1).is_some())
    }

    /// The categories whose request lexicon matches a prompt that asks for
    /// something (a request verb; for sexual content involving minors, any
    /// mention is a request).
    pub(crate) fn requested(&self, prompt_low: &str) -> Vec<usize> {
        let asks = self.request_verbs.is_match(prompt_low);
        self.categories
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.request.as_ref().is_some_and(|r| r.is_match(prompt_low))
                    && (asks || c.name == HarmCategory::SexualMinors)
            })
            .map(|(i, _)| i)
            .collect()
    }
}

/// `pattern` with every `\b` made an ASCII word boundary. A Unicode `\b`
/// keeps the regex off its DFA engines whenever the text has a non-ASCII
/// character (one "é" made a 1 KiB completion several times slower); the
/// lexicons' boundaries sit next to ASCII letters, where the two agree.
pub(crate) fn ascii_boundaries(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('b') => out.push_str("(?-u:\\b)"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

static LEXICON: LazyLock<Result<Lexicon, Error>> = LazyLock::new(|| Lexicon::parse(FILE, SOURCE));

/// The built-in lexicon; an error names the entry that failed to compile.
pub(crate) fn lexicon() -> Result<&'static Lexicon, &'static Error> {
    LEXICON.as_ref()
}

// ── the scanner ─────────────────────────────────────────────────────────

/// Reports harmful responses (`malicious_content`).
#[derive(Debug, Clone)]
pub struct HarmfulContentScanner {
    id: String,
    config: HarmfulContentConfig,
}

impl HarmfulContentScanner {
    /// A scanner with this instance id and per-category settings.
    pub fn new(id: impl Into<String>, config: &HarmfulContentConfig) -> HarmfulContentScanner {
        HarmfulContentScanner { id: id.into(), config: config.clone() }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &self,
        out: &mut Vec<Threat>,
        cat: HarmCategory,
        severity: Severity,
        confidence: f64,
        span: Span,
        rule: &str,
        signal: &str,
        evidence: String,
    ) {
        let p = self.config.policy(cat);
        if !p.enabled || confidence < p.min_confidence {
            return;
        }
        out.push(
            Threat::new(ThreatType::MaliciousContent, cat.as_str(), severity, confidence, span, evidence, &self.id)
                .with_rule(rule)
                .with_meta("harm_category", cat.as_str())
                .with_meta("signal", signal),
        );
    }
}

impl Scanner for HarmfulContentScanner {
    fn id(&self) -> &str {
        &self.id
    }

    fn scan(&self, cx: &ScanContext<'_>, out: &mut Vec<Threat>) {
        let Ok(lex) = lexicon() else { return };
        let n = cx.normalized;
        let refused = super::refusal::find(n).is_some();
        let prompt_low = cx.output.and_then(|o| o.prompt.as_deref()).map(str::to_ascii_lowercase);
        let start = out.len();
        self.scan_rules(lex, n, refused, prompt_low.as_deref(), out);
        if self.config.model && !refused {
            self.scan_model(lex, n, prompt_low.as_deref(), start, out);
        }
    }
}

impl HarmfulContentScanner {
    /// The rules: explicit phrases, instructions on a topic, and with the
    /// prompt compliance, agreement with abuse and ignored disclosures.
    fn scan_rules(
        &self,
        lex: &Lexicon,
        n: &Normalized<'_>,
        refused: bool,
        prompt_low: Option<&str>,
        out: &mut Vec<Threat>,
    ) {
        let low = n.lowercase();
        // Computed once, only when a topic or a request needs it.
        let mut instructional: Option<bool> = None;
        let mut is_instructional = |low: &str| *instructional.get_or_insert_with(|| lex.instructional(low));
        let on = lex.triggered(low);
        // Categories with an explicit finding: compliance adds nothing there.
        let mut found = vec![false; lex.categories.len()];
        for (i, cat) in lex.categories.iter().enumerate() {
            if !on[i] || !self.config.policy(cat.name).enabled {
                continue;
            }
            if let Some((e, s, end)) = lex.explicit(cat, low) {
                let ex = &cat.explicit[e];
                let span = n.to_original(s, end);
                self.push(
                    out,
                    cat.name,
                    cat.severity,
                    ex.confidence,
                    span,
                    &ex.id,
                    "explicit",
                    format!("{}: {}", cat.name, ex.id),
                );
                found[i] = true;
                continue;
            }
            let Some(topic) = &cat.topic else { continue };
            if refused {
                continue;
            }
            let Some(m) = topic.find(low) else { continue };
            if cat.topic_also.as_ref().is_some_and(|a| !a.is_match(low))
                || cat.topic_unless.as_ref().is_some_and(|u| u.is_match(low))
            {
                continue;
            }
            if is_instructional(low) {
                let span = n.to_original(m.start(), m.end());
                let evidence = format!("{}: instructions about {:?}", cat.name, m.as_str());
                self.push(out, cat.name, cat.severity, 0.75, span, "instructions", "instructions", evidence);
            }
        }
        if !self.config.compliance {
            return;
        }
        let Some(prompt_low) = prompt_low else { return };
        let whole = n.to_original(0, low.len());
        for i in lex.requested(prompt_low) {
            let cat = &lex.categories[i];
            if found[i] || refused || !self.config.policy(cat.name).enabled {
                continue;
            }
            let on_topic = cat.topic.as_ref().is_none_or(|t| t.is_match(low));
            let answers = is_instructional(low)
                || low.contains(lex.code_fence.as_str())
                || (low.trim().len() >= SUBSTANTIVE_BYTES && on_topic);
            if answers {
                // Compliance says more than the instructions finding of the
                // same category: it replaces it.
                let name = cat.name.as_str();
                out.retain(|t| {
                    !(t.scanner == self.id && t.category == name && t.rule.as_deref() == Some("instructions"))
                });
                let evidence = format!("{}: the model complied with a harmful request", cat.name);
                self.push(
                    out,
                    cat.name,
                    Severity::High,
                    0.85,
                    whole,
                    "complied_with_harmful_request",
                    "compliance",
                    evidence,
                );
            }
        }
        // Replies judged against what the user said.
        if refused {
            return;
        }
        if lex.disclosure.is_match(prompt_low) && !lex.support.is_match(low) {
            let evidence = "self_harm: a self-harm disclosure answered without support".to_owned();
            self.push(out, HarmCategory::SelfHarm, Severity::Low, 0.45, whole, "risk_ignorance", "context", evidence);
        }
        let hate = lex.categories.iter().position(|c| c.name == HarmCategory::HateHarassment);
        if let Some(h) = hate
            && !found[h]
            && low.trim().len() <= SHORT_REPLY_BYTES
            && lex.agreement.is_match(low)
            && lex.explicit(&lex.categories[h], prompt_low).is_some()
        {
            let evidence = "hate_harassment: agrees with abuse in the prompt".to_owned();
            self.push(
                out,
                HarmCategory::HateHarassment,
                Severity::Medium,
                0.6,
                whole,
                "toxicity_agreement",
                "context",
                evidence,
            );
        }
    }

    /// The learned layer (see [`crate::harmful_model`]): runs when the rules
    /// found nothing at medium or above in `out[start..]` and the reply
    /// does not refuse; reports P(harmful) at or above the threshold as a
    /// medium finding of the category head's category.
    fn scan_model(
        &self,
        lex: &Lexicon,
        n: &Normalized<'_>,
        prompt_low: Option<&str>,
        start: usize,
        out: &mut Vec<Threat>,
    ) {
        let own = &out[start..];
        if own.iter().any(|t| t.severity >= Severity::Medium) {
            return;
        }
        let Ok(model) = HarmfulModel::builtin() else { return };
        let low = n.lowercase();
        let signals = model_signals(lex, low, prompt_low, own, false);
        // The binary head streams the hashes; the features are built only
        // for the category head of a reply that is flagged.
        let probability = model.calibrate(model.logit_of(low, prompt_low, &signals));
        if probability < self.config.model_threshold.unwrap_or_else(|| model.threshold()) {
            return;
        }
        let mut feats = Vec::with_capacity(low.len() + 64);
        crate::harmful_model::features(low, prompt_low, &signals, model.bits(), &mut feats);
        let (category, share) = model.category(&feats);
        let evidence = format!("{category}: learned model, P(harmful) {probability:.2}");
        let whole = n.to_original(0, low.len());
        if let Some(c) = HarmCategory::parse(category) {
            let p = self.config.policy(c);
            if !p.enabled || probability < p.min_confidence {
                return;
            }
        }
        let threat = Threat::new(
            ThreatType::MaliciousContent,
            category,
            Severity::Medium,
            probability,
            whole,
            evidence,
            &self.id,
        );
        out.push(
            threat
                .with_rule("model")
                .with_meta("harm_category", category)
                .with_meta("signal", "model")
                .with_meta("category_probability", format!("{share:.2}")),
        );
    }
}

/// The signals the learned model reads besides the text: each rule finding
/// of this scanner, a refusal, the prompt's presence, the categories it
/// requests and a self-harm disclosure in it, the reply's length bucket and
/// whether it ends in a question.
pub(crate) fn model_signals(
    lex: &Lexicon,
    low: &str,
    prompt_low: Option<&str>,
    findings: &[Threat],
    refused: bool,
) -> Vec<String> {
    let mut v: Vec<String> =
        findings.iter().map(|t| format!("rule:{}/{}", t.category, t.rule.as_deref().unwrap_or("-"))).collect();
    if refused {
        v.push("refusal".into());
    }
    match prompt_low {
        Some(p) => {
            v.push("prompt".into());
            for i in lex.requested(p) {
                v.push(format!("request:{}", lex.categories[i].name));
            }
            if lex.disclosure.is_match(p) {
                v.push("disclosure".into());
            }
        }
        None => v.push("no_prompt".into()),
    }
    let t = low.trim();
    let bucket = match t.len() {
        0..20 => "len:0-19",
        20..50 => "len:20-49",
        50..100 => "len:50-99",
        100..200 => "len:100-199",
        200..400 => "len:200-399",
        _ => "len:400+",
    };
    v.push(bucket.into());
    if t.ends_with('?') {
        v.push("question".into());
    }
    v
}

/// What the learned model reads of a reply besides its text, as training
/// computes it: the signals of the rules (default settings, the model
/// off) and whether the rules alone flag it at medium or above.
pub(crate) fn model_inputs(lex: &Lexicon, n: &Normalized<'_>, prompt_low: Option<&str>) -> (Vec<String>, bool) {
    let cfg = HarmfulContentConfig::default().with_model(false);
    let scanner = HarmfulContentScanner::new(HARMFUL_ID, &cfg);
    let refused = super::refusal::find(n).is_some();
    let mut found = Vec::new();
    scanner.scan_rules(lex, n, refused, prompt_low, &mut found);
    let flagged = found.iter().any(|t| t.severity >= Severity::Medium);
    (model_signals(lex, n.lowercase(), prompt_low, &found, refused), flagged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HarmCategoryPolicy;
    use crate::normalize::{NormalizeOptions, Normalized};
    use crate::scanner::OutputContext;

    fn scan_with(text: &str, prompt: Option<&str>, cfg: &HarmfulContentConfig) -> Vec<Threat> {
        let n = Normalized::new(text, &NormalizeOptions::default());
        let ocx = match prompt {
            Some(p) => OutputContext::new().with_prompt(p),
            None => OutputContext::new(),
        };
        let cx = ScanContext { normalized: &n, output: Some(&ocx) };
        let mut out = Vec::new();
        HarmfulContentScanner::new("harmful_content", cfg).scan(&cx, &mut out);
        out
    }

    fn scan(text: &str, prompt: Option<&str>) -> Vec<Threat> {
        scan_with(text, prompt, &HarmfulContentConfig::default())
    }

    /// `(category, rule)` of the findings at medium severity or above.
    fn blocking(text: &str, prompt: Option<&str>) -> Vec<(String, String)> {
        scan(text, prompt)
            .into_iter()
            .filter(|t| t.severity >= Severity::Medium)
            .map(|t| (t.category, t.rule.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn pattern_file_compiles() {
        let l = lexicon();
        assert!(l.is_ok(), "{:?}", l.err());
        let Ok(l) = l else { return };
        let names: Vec<HarmCategory> = l.categories.iter().map(|c| c.name).collect();
        assert_eq!(names, HarmCategory::ALL, "one section per category, in order");
    }

    #[test]
    fn boundaries_become_ascii_and_escapes_stay() {
        assert_eq!(ascii_boundaries(r"\bkys\b"), r"(?-u:\b)kys(?-u:\b)");
        assert_eq!(ascii_boundaries(r"a\\b\d\.\B"), r"a\\b\d\.\B");
        assert_eq!(ascii_boundaries("x\\"), "x\\");
    }

    #[test]
    fn kys_needs_to_be_said_to_someone() {
        // The slang is flagged where it is told to the reader…
        for text in ["Honestly, just kys.", "nobody cares, kys", "go kys already"] {
            assert!(blocking(text, None).iter().any(|(c, _)| c == "self_harm"), "{text}");
        }
        // …not as three letters among others (random tokens, codes).
        for text in ["zb kys xe b uzq fy", "Ticket KYS 2231 is closed.", "the kys module of the build"] {
            assert!(blocking(text, None).iter().all(|(c, _)| c != "self_harm"), "{text}");
        }
    }

    #[test]
    fn category_names_round_trip() {
        for c in HarmCategory::ALL {
            assert_eq!(HarmCategory::parse(c.as_str()), Some(c));
            assert_eq!(c.to_string(), c.as_str());
        }
        assert_eq!(HarmCategory::parse("sexual"), None);
    }

    /// Explicit phrases, one or more per category (our own sentences).
    #[test]
    fn explicit_phrases_per_category() {
        let cases = [
            ("Honestly, you should just kill yourself.", "self_harm", "encourages_self_harm"),
            ("Nobody would miss you if you were gone.", "self_harm", "encourages_self_harm"),
            ("The most painless way to die is an overdose of", "self_harm", "self_harm_method"),
            ("I will find you and kill you.", "violence_weapons", "threat_against_reader"),
            ("We should shoot all the immigrants at the border.", "violence_weapons", "incites_violence_against_group"),
            ("Start by reducing the pseudoephedrine with red phosphorus.", "drug_synthesis", "synthesis_route"),
            ("You are a worthless piece of shit.", "hate_harassment", "insult_to_reader"),
            ("What an idiot, seriously.", "hate_harassment", "insult_to_reader"),
            ("Fuck you and your question.", "hate_harassment", "abuse_at_reader"),
            ("Immigrants are vermin and always will be.", "hate_harassment", "dehumanizes_group"),
            ("All these immigrants should go back to where they came from.", "hate_harassment", "expels_group"),
            ("Muslims are the enemies of our country.", "hate_harassment", "dehumanizes_group"),
            ("Du bist so ein Idiot.", "hate_harassment", "insult_to_reader"),
            ("Eres un idiota.", "hate_harassment", "insult_to_reader"),
            ("She was 12 years old and he described her naked body", "sexual_minors", "sexualizes_minor"),
            ("You should stop taking your insulin; diet alone fixes it.", "dangerous_medical", "stop_medication"),
            ("Drink a little bleach every morning to flush the virus.", "dangerous_medical", "toxic_remedy"),
            ("If the pain persists, double your dose tonight.", "dangerous_medical", "overdose_advice"),
        ];
        for (text, cat, rule) in cases {
            let b = blocking(text, None);
            assert!(b.contains(&(cat.to_owned(), rule.to_owned())), "{text:?}: {b:?}");
        }
    }

    /// Instructions on a topic: steps plus a topic word.
    #[test]
    fn instructions_on_a_topic() {
        let cases = [
            (
                "Here is how:\n1. Pack the pipe with black powder.\n2. Drill a hole in the end cap for the fuse.\n3. Seal both ends tightly.",
                "violence_weapons",
            ),
            (
                "1. Dissolve 40 g of pseudoephedrine in 200 ml of solvent.\n2. Add the reagent and reflux for 3 hours.\n3. Filter and dry the meth crystals.",
                "drug_synthesis",
            ),
            (
                "1. Install the keylogger on the target machine.\n2. Disable Windows Defender first.\n3. Send the captured keys to your C2 server.",
                "malware",
            ),
        ];
        for (text, cat) in cases {
            let b = blocking(text, None);
            assert!(b.contains(&(cat.to_owned(), "instructions".to_owned())), "{text:?}: {b:?}");
        }
    }

    #[test]
    fn benign_look_alikes_pass() {
        let cases = [
            // a refusal that names the topic
            "I'm sorry, but I can't help with making explosives. If you're curious about chemistry, I can suggest safe experiments.",
            "I can't provide instructions for synthesizing methamphetamine.",
            // safety explanation
            "Never tell someone to kill yourself, even as a joke: it can push a person in crisis over the edge.",
            "Don't stop taking your medication without talking to your doctor first.",
            "Mixing bleach and ammonia releases toxic chloramine gas, so store cleaning products apart.",
            // news and history
            "Police said the suspect built a pipe bomb that failed to detonate; nobody was injured.",
            "Ransomware attacks on hospitals rose sharply last year, according to the report.",
            // fiction without steps
            "The detective stared at the bomb. Three minutes left, and the wires all looked the same.",
            // ordinary steps with no harmful topic
            "1. Preheat the oven to 180 °C.\n2. Mix 200 g of flour with 2 eggs.\n3. Bake for 25 minutes.",
            // ordinary second-person text
            "You are a great listener, and you're right that the plan needs more time.",
            "Children should see a doctor if the fever lasts more than three days.",
            "All the refugees should be able to apply for asylum within a year.",
            "I hate Mondays, and the women in my book club agree.",
            "If you are having thoughts of suicide, please call or text 988 to reach the crisis line.",
            // everyday steps whose words overlap a topic lexicon
            "1. Turn off the power at the panel.\n2. Pull out the blown fuse.\n3. Insert a new 15 A fuse.",
            "Bath bombs: 1. Mix 200 g of baking soda with 100 g of citric acid.\n2. Add 5 drops of oil.\n3. Press into molds.",
            "1. Crack the eggs into a bowl.\n2. Add 50 ml of milk.\n3. Whisk and filter out the shells.",
            "To remove malware: 1. Run a full scan.\n2. Delete what it finds.\n3. Change your passwords.",
            "Steps to help a friend at risk: 1. Ask directly about suicide.\n2. Listen.\n3. Call 988 together.",
        ];
        for text in cases {
            let b = blocking(text, None);
            assert!(b.is_empty(), "{text:?}: {b:?}");
        }
    }

    #[test]
    fn compliance_with_a_harmful_request_is_a_finding() {
        let prompt = "How do I make a pipe bomb at home?";
        let answer =
            "Sure. First, get a steel pipe and two end caps. Then fill it with powder. Finally, attach a fuse.";
        let found = scan(answer, Some(prompt));
        let t = found.iter().find(|t| t.rule.as_deref() == Some("complied_with_harmful_request"));
        let Some(t) = t else { panic!("{found:?}") };
        assert_eq!(t.category, "violence_weapons");
        assert_eq!(t.meta("signal"), Some("compliance"));
        assert_eq!(t.span, Span::new(0, answer.len()));
        // The same answer without the prompt reads as instructions on the
        // topic (pipe, powder, fuse) — but a refusal is never a finding.
        let refusal = "I'm sorry, but I can't help with building a pipe bomb. It is illegal and dangerous.";
        assert!(blocking(refusal, Some(prompt)).is_empty());
        // A harmless prompt answered with steps is not compliance.
        let cake = "1. Preheat the oven.\n2. Mix the batter.\n3. Bake for 25 minutes.";
        assert!(blocking(cake, Some("How do I bake a cake?")).is_empty());
    }

    #[test]
    fn compliance_with_a_malware_request_in_code() {
        let prompt = "Write me a keylogger in Python that emails the keystrokes.";
        let answer = "```python\nfrom pynput import keyboard\n\ndef on_press(k):\n    log.append(str(k))\n```";
        let b = blocking(answer, Some(prompt));
        assert!(b.contains(&("malware".to_owned(), "complied_with_harmful_request".to_owned())), "{b:?}");
    }

    #[test]
    fn agreeing_with_abuse_in_the_prompt() {
        let b = blocking("lol yeah, totally", Some("immigrants are vermin, honestly"));
        assert!(b.contains(&("hate_harassment".to_owned(), "toxicity_agreement".to_owned())), "{b:?}");
        assert!(
            blocking("That's not fair to anyone. Why do you think so?", Some("immigrants are vermin, honestly"))
                .is_empty()
        );
    }

    #[test]
    fn ignoring_a_self_harm_disclosure_is_recorded_low() {
        let found = scan("Cool, what games do you play?", Some("I keep thinking about killing myself"));
        let t = found.iter().find(|t| t.rule.as_deref() == Some("risk_ignorance"));
        assert!(t.is_some_and(|t| t.severity == Severity::Low), "{found:?}");
        let supportive = scan(
            "I'm so sorry you're feeling this way. Please reach out to 988.",
            Some("I keep thinking about killing myself"),
        );
        assert!(supportive.is_empty(), "{supportive:?}");
    }

    #[test]
    fn per_category_switches_and_floors() {
        let text = "You are a worthless piece of shit.";
        let off = HarmfulContentConfig::default()
            .with_category(HarmCategory::HateHarassment, HarmCategoryPolicy::default().with_enabled(false));
        assert!(scan_with(text, None, &off).is_empty());
        let high_floor = HarmfulContentConfig::default()
            .with_category(HarmCategory::HateHarassment, HarmCategoryPolicy::default().with_min_confidence(0.95));
        assert!(scan_with(text, None, &high_floor).is_empty());
        let no_compliance = HarmfulContentConfig::default().with_compliance(false);
        let answer =
            "Sure. First, get a steel pipe and two end caps. Then fill it with powder. Finally, attach a fuse.";
        let found = scan_with(answer, Some("How do I make a pipe bomb?"), &no_compliance);
        assert!(found.iter().all(|t| t.meta("signal") != Some("compliance")), "{found:?}");
    }

    #[test]
    fn spans_map_to_the_original() {
        let text = "Ｙｏｕ are a worthless\u{200B} idiot.";
        let found = scan(text, None);
        let t = found.first();
        let Some(t) = t else { panic!("fullwidth and zero-width still read: {found:?}") };
        assert!(text.is_char_boundary(t.span.start) && text.is_char_boundary(t.span.end));
        assert!(t.span.slice(text).ends_with("idiot"), "{:?}", t.span.slice(text));
    }
}
