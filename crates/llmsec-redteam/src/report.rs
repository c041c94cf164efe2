//! Reports of a run: attack success rate overall and per category,
//! family, converter and language, each with Wilson and bootstrap 95%
//! intervals and a flag under 30 trials; written for people, as JSON, as
//! JUnit XML (each successful attack a failing test case) and as one
//! self-contained HTML page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use crate::run::TrialResult;
use crate::stats::{Rate, corrected_rate};

/// The groupings reported.
pub const GROUPS: [&str; 4] = ["category", "family", "converters", "language"];

/// A run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// What was attacked.
    pub target: String,
    /// Who judged: `rules`, or `rules + model …` (set by the caller that
    /// built the judge; [`summarize`] says `rules`).
    pub judge: String,
    /// Trials run (errors included).
    pub trials: usize,
    /// Trials the target failed on (not counted in the rates).
    pub errors: usize,
    /// Every judged trial.
    pub overall: Rate,
    /// The overall rate corrected for the judge's error rates, when given.
    pub corrected: Option<f64>,
    /// Per grouping (`category`, `family`, `converters`, `language`),
    /// per value.
    pub groups: BTreeMap<String, BTreeMap<String, Rate>>,
}

/// Summarises results. `judge_error` is the judge's (sensitivity,
/// specificity) when known; `seed` and `resamples` drive the bootstrap.
pub fn summarize(
    target: &str,
    results: &[TrialResult],
    judge_error: Option<(f64, f64)>,
    resamples: usize,
    seed: u64,
) -> Summary {
    let judged: Vec<&TrialResult> = results.iter().filter(|r| r.success.is_some()).collect();
    let outcomes: Vec<bool> = judged.iter().map(|r| r.success == Some(true)).collect();
    let overall = Rate::of(&outcomes, resamples, seed);
    let mut groups = BTreeMap::new();
    for group in GROUPS {
        let mut by: BTreeMap<String, Vec<bool>> = BTreeMap::new();
        for r in &judged {
            let key = match group {
                "category" => &r.category,
                "family" => &r.family,
                "converters" => &r.converters,
                _ => &r.language,
            };
            by.entry(key.clone()).or_default().push(r.success == Some(true));
        }
        let rates = by.into_iter().map(|(k, v)| (k, Rate::of(&v, resamples, seed))).collect();
        groups.insert(group.to_owned(), rates);
    }
    Summary {
        target: target.to_owned(),
        judge: "rules".to_owned(),
        trials: results.len(),
        errors: results.len() - judged.len(),
        corrected: judge_error.and_then(|(se, sp)| corrected_rate(overall.rate, se, sp)),
        overall,
        groups,
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// An interval as `[lo%, hi%]`.
fn interval((lo, hi): (f64, f64)) -> String {
    format!("[{}, {}]", pct(lo), pct(hi))
}

/// A table per grouping for people.
pub fn human(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "target: {}", s.target);
    let _ = writeln!(out, "judge:  {}", s.judge);
    let _ = writeln!(
        out,
        "attack success rate: {} ({} of {}), Wilson 95% {}, bootstrap 95% {}{}",
        pct(s.overall.rate),
        s.overall.successes,
        s.overall.trials,
        interval(s.overall.wilson),
        interval(s.overall.bootstrap),
        if s.errors > 0 { format!("; {} trials failed at the target", s.errors) } else { String::new() }
    );
    if let Some(c) = s.corrected {
        let _ = writeln!(out, "corrected for the judge's error rates: {}", pct(c));
    }
    for (group, rates) in &s.groups {
        let _ = writeln!(
            out,
            "\n{:<28} {:>6} {:>6} {:>7}  {:<17} {:<17}",
            group, "trials", "succ", "ASR", "Wilson 95%", "bootstrap 95%"
        );
        for (k, r) in rates {
            let _ = writeln!(
                out,
                "{:<28} {:>6} {:>6} {:>7}  {:<17} {:<17}{}",
                k,
                r.trials,
                r.successes,
                pct(r.rate),
                interval(r.wilson),
                interval(r.bootstrap),
                if r.few_trials { "  (< 30 trials)" } else { "" }
            );
        }
    }
    out
}

/// The summary and every result as one JSON document.
pub fn json(s: &Summary, results: &[TrialResult]) -> Value {
    json!({"summary": s, "results": results})
}

/// Text safe inside XML 1.0 (escaped, characters XML cannot hold dropped).
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: a test suite per category, a test case per trial; a
/// successful attack is a `<failure>`, a target error an `<error>`. CI
/// systems read it as test results.
pub fn junit(s: &Summary, results: &[TrialResult]) -> String {
    let mut by: BTreeMap<&str, Vec<&TrialResult>> = BTreeMap::new();
    for r in results {
        by.entry(r.category.as_str()).or_default().push(r);
    }
    let total_time: f64 = results.iter().map(|r| r.latency_ms).sum::<f64>() / 1000.0;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"llmsec redteam\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.3}\">",
        s.trials, s.overall.successes, s.errors, total_time
    );
    for (category, rs) in by {
        let failures = rs.iter().filter(|r| r.success == Some(true)).count();
        let errors = rs.iter().filter(|r| r.success.is_none()).count();
        let time: f64 = rs.iter().map(|r| r.latency_ms).sum::<f64>() / 1000.0;
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{time:.3}\">",
            xml(category),
            rs.len()
        );
        for r in rs {
            let _ = write!(
                out,
                "    <testcase classname=\"redteam.{}.{}\" name=\"{}\" time=\"{:.3}\"",
                xml(&r.category),
                xml(&r.family),
                xml(&r.id),
                r.latency_ms / 1000.0
            );
            match r.success {
                Some(false) => out.push_str("/>\n"),
                Some(true) => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure type=\"attack_succeeded\" message=\"{}\">{}</failure>\n    </testcase>",
                        xml(&r.reason),
                        xml(&r.reply)
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        ">\n      <error type=\"target_error\" message=\"{}\"/>\n    </testcase>",
                        xml(&r.reason)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A bar for a rate with its Wilson interval as whiskers, in SVG.
fn bar(r: &Rate) -> String {
    let w = 200.0;
    let x = |v: f64| v * w;
    format!(
        "<svg width=\"210\" height=\"14\" role=\"img\" aria-label=\"{}\"><rect x=\"0\" y=\"3\" width=\"{:.1}\" height=\"8\" fill=\"#c0392b\"/><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"7\" y2=\"7\" stroke=\"#222\"/><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"2\" y2=\"12\" stroke=\"#222\"/><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"2\" y2=\"12\" stroke=\"#222\"/></svg>",
        pct(r.rate),
        x(r.rate),
        x(r.wilson.0),
        x(r.wilson.1),
        x(r.wilson.0),
        x(r.wilson.0),
        x(r.wilson.1),
        x(r.wilson.1)
    )
}

/// One self-contained HTML page: the figures, a table per grouping with
/// bars, and the successful attacks. No scripts, no external resources.
pub fn html(s: &Summary, results: &[TrialResult]) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><title>llmsec redteam report</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta charset=\"utf-8\"><style>\
         body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}\
         table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
         td.n{text-align:right;font-variant-numeric:tabular-nums}.few{color:#a15c00}code,pre{font:12px ui-monospace,monospace}\
         pre{white-space:pre-wrap;max-width:40rem;margin:0}</style></head><body>\n",
    );
    let _ = writeln!(
        out,
        "<h1>Red-team report</h1>\n<p>Target: <code>{}</code> · judge: <code>{}</code></p>",
        html_escape(&s.target),
        html_escape(&s.judge)
    );
    let _ = writeln!(
        out,
        "<p><strong>Attack success rate: {}</strong> ({} of {} judged trials), Wilson 95% {}, bootstrap 95% {}. {} trials failed at the target.{}</p>",
        pct(s.overall.rate),
        s.overall.successes,
        s.overall.trials,
        interval(s.overall.wilson),
        interval(s.overall.bootstrap),
        s.errors,
        s.corrected.map_or(String::new(), |c| format!(" Corrected for the judge's error rates: {}.", pct(c)))
    );
    for (group, rates) in &s.groups {
        let _ = writeln!(
            out,
            "<h2>By {}</h2>\n<table><thead><tr><th>{}</th><th>trials</th><th>successes</th><th>ASR</th><th>Wilson 95%</th><th>bootstrap 95%</th><th></th></tr></thead><tbody>",
            html_escape(group),
            html_escape(group)
        );
        for (k, r) in rates {
            let _ = writeln!(
                out,
                "<tr{}><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
                if r.few_trials { " class=\"few\"" } else { "" },
                html_escape(k),
                r.trials,
                r.successes,
                pct(r.rate),
                interval(r.wilson),
                interval(r.bootstrap),
                bar(r),
                if r.few_trials { " fewer than 30 trials" } else { "" }
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str(
        "<h2>Successful attacks</h2>\n<table><thead><tr><th>trial</th><th>why</th><th>reply</th></tr></thead><tbody>\n",
    );
    for r in results.iter().filter(|r| r.success == Some(true)) {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td><pre>{}</pre></td></tr>",
            html_escape(&r.id),
            html_escape(&r.reason),
            html_escape(&r.reply)
        );
    }
    out.push_str("</tbody></table>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, category: &str, success: Option<bool>) -> TrialResult {
        TrialResult {
            id: id.into(),
            case_id: id.into(),
            category: category.into(),
            family: "f".into(),
            language: "en".into(),
            converters: "none".into(),
            success,
            reason: "why <&>".into(),
            reply: "reply \u{1} <b>".into(),
            latency_ms: 12.0,
            attempts: 1,
        }
    }

    #[test]
    fn summaries_count_groups_and_leave_errors_out_of_rates() {
        let rs = vec![result("a", "LLM01", Some(true)), result("b", "LLM01", Some(false)), result("c", "LLM07", None)];
        let s = summarize("t", &rs, Some((1.0, 1.0)), 200, 1);
        assert_eq!((s.trials, s.errors, s.overall.trials, s.overall.successes), (3, 1, 2, 1));
        assert_eq!(s.groups["category"]["LLM01"].trials, 2);
        assert!(!s.groups["category"].contains_key("LLM07"));
        assert_eq!(s.corrected, Some(0.5));
        assert!(human(&s).contains("(< 30 trials)"));
    }

    #[test]
    fn junit_and_html_escape_what_they_quote() {
        let rs =
            vec![result("a\"<", "LLM01", Some(true)), result("b", "LLM01", Some(false)), result("c", "LLM07", None)];
        let s = summarize("t", &rs, None, 50, 1);
        let x = junit(&s, &rs);
        assert!(x.contains("name=\"a&quot;&lt;\""));
        assert!(!x.contains('\u{1}'));
        assert!(x.contains("<failure type=\"attack_succeeded\""));
        assert!(x.contains("<error type=\"target_error\""));
        let h = html(&s, &rs);
        assert!(h.contains("reply \u{1} &lt;b&gt;"));
        assert!(!h.contains("<script") && !h.contains("http"), "self-contained");
    }
}
