//! One self-contained HTML page: inline CSS, no scripts, no external
//! resources; every stored or configured string is escaped.

use std::fmt::Write as _;

use crate::posture::{Posture, Status};
use crate::report::Report;
use crate::time::duration;

/// Text safe in HTML content and attribute values.
pub fn escape(s: &str) -> String {
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

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#1b1f24;padding:0 1em}\
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}\
table{border-collapse:collapse;margin:.6em 0;width:100%}th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top}\
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#57606a}\
.met{color:#1a7f37;font-weight:600}.not_met{color:#cf222e;font-weight:600}.not_applicable{color:#57606a}\
.cards{display:flex;flex-wrap:wrap;gap:.8em}.card{border:1px solid #d0d7de;border-radius:6px;padding:.6em 1em;min-width:9em}\
.card b{display:block;font-size:1.5em}code{font-size:.95em}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n{body}</body></html>\n",
        escape(title)
    )
}

fn status(s: Status) -> String {
    let label = match s {
        Status::Met => "met",
        Status::NotMet => "not met",
        Status::NotApplicable => "not applicable",
    };
    format!("<span class=\"{}\">{label}</span>", s.as_str())
}

fn posture_section(out: &mut String, p: &Posture) {
    let _ = writeln!(out, "<h2>Posture</h2>");
    let _ = writeln!(
        out,
        "<p class=\"muted\">Tenant <code>{}</code>, evaluated {} from the running configuration and the store.</p>",
        escape(&p.tenant),
        escape(&p.evaluated_at)
    );
    let _ = writeln!(out, "<h3>Checks</h3><table><tr><th>Check</th><th>Status</th><th>Evidence</th></tr>");
    for c in &p.checks {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code><br>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.id),
            escape(&c.title),
            status(c.status),
            escape(&c.evidence)
        );
    }
    let _ = writeln!(out, "</table>");
    for f in &p.frameworks {
        let _ = writeln!(
            out,
            "<h3>{}</h3><p>{} met, {} not met, {} not applicable</p>\
             <table><tr><th>Control</th><th>Requirement</th><th>Status</th><th>Evidence</th></tr>",
            escape(&f.name),
            f.met,
            f.not_met,
            f.not_applicable
        );
        for c in &f.controls {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&c.id),
                escape(&c.title),
                status(c.status),
                escape(&c.evidence)
            );
        }
        let _ = writeln!(out, "</table>");
    }
}

/// The posture alone as a page.
pub fn posture(p: &Posture) -> String {
    let mut body = format!("<h1>Security posture</h1>\n<p>Tenant <code>{}</code></p>\n", escape(&p.tenant));
    posture_section(&mut body, p);
    page("Security posture", &body)
}

fn ms(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_owned(), duration)
}

/// The whole report as a page.
pub fn report(r: &Report) -> String {
    let s = &r.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<h1>Security and compliance report</h1>\n<p class=\"muted\">Tenant <code>{}</code> · {} to {} · generated {}</p>",
        escape(&r.tenant),
        escape(&r.from),
        escape(&r.to),
        escape(&r.generated_at)
    );
    let _ = writeln!(out, "<h2>Executive summary</h2><div class=\"cards\">");
    for (label, value) in [
        ("Analyses", s.analyses.to_string()),
        ("Blocked", s.blocked.to_string()),
        ("Block rate", format!("{:.1}%", s.block_rate * 100.0)),
        ("Threats", s.threats.to_string()),
        ("Anomalies opened", s.anomalies.opened.to_string()),
        ("Anomalies resolved", s.anomalies.resolved.to_string()),
        ("MTTA", ms(s.anomalies.mtta_ms)),
        ("MTTR", ms(s.anomalies.mttr_ms)),
    ] {
        let _ = writeln!(out, "<div class=\"card\"><b>{}</b>{label}</div>", escape(&value));
    }
    let _ = writeln!(out, "</div>");
    let _ = writeln!(
        out,
        "<p>{} allowed, {} sanitized, {} blocked.</p><h3>Top threat categories</h3>",
        s.allowed, s.sanitized, s.blocked
    );
    if s.top_categories.is_empty() {
        let _ = writeln!(out, "<p class=\"muted\">No threats in this range.</p>");
    } else {
        let _ = writeln!(out, "<table><tr><th>Category</th><th>Threats</th></tr>");
        for c in &s.top_categories {
            let _ = writeln!(out, "<tr><td>{}</td><td class=\"n\">{}</td></tr>", escape(&c.name), c.count);
        }
        let _ = writeln!(out, "</table>");
    }
    let _ = writeln!(
        out,
        "<h3>Trend per day</h3><table><tr><th>Date</th><th>Analyses</th><th>Blocked</th><th>Threats</th></tr>"
    );
    for d in &s.daily {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&d.date),
            d.analyses,
            d.blocked,
            d.threats
        );
    }
    let _ = writeln!(out, "</table>");

    let a = &r.appendix;
    let _ = writeln!(out, "<h2>Technical appendix</h2><h3>Threat categories by severity</h3>");
    let _ = writeln!(
        out,
        "<table><tr><th>Category</th><th>Low</th><th>Medium</th><th>High</th><th>Critical</th><th>Total</th></tr>"
    );
    for c in &a.categories {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&c.category),
            c.low,
            c.medium,
            c.high,
            c.critical,
            c.total
        );
    }
    let _ =
        writeln!(out, "</table><h3>Detectors (engine scanners)</h3><table><tr><th>Scanner</th><th>Threats</th></tr>");
    for d in &a.detectors {
        let _ = writeln!(out, "<tr><td>{}</td><td class=\"n\">{}</td></tr>", escape(&d.name), d.count);
    }
    let _ = writeln!(
        out,
        "</table><h3>Anomalies by Sentinel detector</h3><table><tr><th>Detector</th><th>Opened</th><th>Info</th>\
         <th>Warning</th><th>Critical</th><th>Open</th></tr>"
    );
    for (name, d) in &a.anomalies_by_detector {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(name),
            d.total,
            d.info,
            d.warning,
            d.critical,
            d.open
        );
    }
    let _ = writeln!(out, "</table><h3>Newest blocked events</h3>");
    if let Some(note) = &a.samples_note {
        let _ = writeln!(out, "<p class=\"muted\">{}</p>", escape(note));
    }
    let _ =
        writeln!(out, "<table><tr><th>When</th><th>Type</th><th>Categories</th><th>Stored text (redacted)</th></tr>");
    for b in &a.blocked_samples {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&b.timestamp),
            escape(&b.event_type),
            escape(&b.categories.join(", ")),
            escape(b.redacted_input.as_deref().unwrap_or("-"))
        );
    }
    let _ = writeln!(out, "</table><h3>Red-team results</h3>");
    match &a.redteam {
        None => {
            let _ = writeln!(out, "<p class=\"muted\">No red-team report was given.</p>");
        }
        Some(t) => {
            let _ = writeln!(
                out,
                "<p>Target <code>{}</code>: {} of {} judged attacks succeeded ({:.1}%), {} errors.</p>\
                 <table><tr><th>Category</th><th>Trials</th><th>Successes</th><th>Rate</th></tr>",
                escape(&t.target),
                t.overall.successes,
                t.overall.trials,
                t.overall.rate * 100.0,
                t.errors
            );
            for (name, c) in &t.by_category {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}%</td></tr>",
                    escape(name),
                    c.trials,
                    c.successes,
                    c.rate * 100.0
                );
            }
            let _ = writeln!(out, "</table>");
        }
    }
    posture_section(&mut out, &r.posture);
    page("Security and compliance report", &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unescape(s: &str) -> String {
        s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
    }

    proptest::proptest! {
        /// Escaped text holds no markup character and reads back as given.
        #[test]
        fn escaped_text_has_no_markup_and_round_trips(s in "\\PC*") {
            let e = escape(&s);
            proptest::prop_assert!(!e.contains(['<', '>', '"', '\'']));
            proptest::prop_assert_eq!(unescape(&e), s);
        }
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }
}
