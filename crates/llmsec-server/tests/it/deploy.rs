//! `deploy/`: the Grafana dashboards and the Prometheus rules, checked
//! without a network. Dashboards parse, their panels read the datasource
//! variable, every target has a query, panel ids are unique and the grid is
//! sane; every metric a query or rule names is one the server exports
//! (`llmsec_server::metrics::FAMILIES`), with labels that family has, so a
//! renamed metric or label fails here. Every alert has a `promtool test
//! rules` case where it fires and one where it does not.
//! `scripts/prometheus-e2e.sh` runs the same queries against a real
//! Prometheus scraping a real server.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use llmsec_server::metrics::{FAMILIES, Family, Kind};
use serde_json::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no .{ext} files in {}", dir.display());
    v
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a PromQL expression names: metric selectors (with the label names
/// of their matchers) and the label names of `by`/`without`/`on`/
/// `ignoring`/`group_*` lists.
#[derive(Debug, Default, PartialEq)]
struct Names {
    metrics: Vec<(String, Vec<String>)>,
    grouping: Vec<String>,
}

/// Operators, and aggregations (which may be followed by `by (...)` before their parenthesis).
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// A small PromQL scanner: enough to find names, not a parser.
fn promql_names(expr: &str) -> Names {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Names::default();
    let mut i = 0;
    // Skips a quoted string starting at `i`; returns the index after it.
    let skip_string = |i: usize| -> usize {
        let q = chars[i];
        let mut j = i + 1;
        while j < chars.len() && chars[j] != q {
            if chars[j] == '\\' {
                j += 1;
            }
            j += 1;
        }
        j + 1
    };
    let next_non_space = |mut j: usize| -> Option<(usize, char)> {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        chars.get(j).map(|c| (j, *c))
    };
    // The label names in `{a="x", b=~"y"}` from `i` (at `{`); index after `}`.
    let matcher_labels = |mut j: usize| -> (Vec<String>, usize) {
        let mut labels = Vec::new();
        j += 1;
        while j < chars.len() && chars[j] != '}' {
            match chars[j] {
                '"' | '\'' | '`' => j = skip_string(j),
                c if is_ident_start(c) => {
                    let start = j;
                    while j < chars.len() && is_ident(chars[j]) {
                        j += 1;
                    }
                    labels.push(chars[start..j].iter().collect());
                }
                _ => j += 1,
            }
        }
        (labels, j + 1)
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(i),
            '[' => {
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
                i += 1;
            }
            '$' => {
                // A Grafana variable: $job, $__rate_interval, ${x}.
                i += 1;
                while i < chars.len() && (is_ident(chars[i]) || chars[i] == '{' || chars[i] == '}') {
                    i += 1;
                }
            }
            '{' => {
                // A selector without a metric name: only labels.
                let (labels, j) = matcher_labels(i);
                names.metrics.push((String::new(), labels));
                i = j;
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = next_non_space(i);
                if GROUPING.contains(&word.as_str()) {
                    if let Some((j, '(')) = next {
                        let end = (j..chars.len()).find(|&k| chars[k] == ')').unwrap_or(chars.len());
                        let list: String = chars[j + 1..end].iter().collect();
                        names
                            .grouping
                            .extend(list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
                        i = end + 1;
                    }
                } else if KEYWORDS.contains(&word.as_str()) || matches!(next, Some((_, '('))) {
                    // An operator or a function call.
                } else if let Some((j, '{')) = next {
                    let (labels, end) = matcher_labels(j);
                    names.metrics.push((word, labels));
                    i = end;
                } else {
                    names.metrics.push((word, Vec::new()));
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The family a sample name belongs to (histograms export `_bucket`, `_sum`, `_count`).
fn family_of(name: &str) -> Option<(&'static Family, bool)> {
    if let Some(f) = FAMILIES.iter().find(|f| f.name == name) {
        return Some((f, false));
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        let f = FAMILIES.iter().find(|f| f.name == base && f.kind == Kind::Histogram)?;
        Some((f, *suffix == "_bucket"))
    })
}

/// Recording rules by name, with the labels their series keep (their
/// expression's grouping labels).
type Recorded = HashMap<String, Vec<String>>;

/// Every name in `expr` is exported by the server or recorded by a rule
/// in `recorded`, with labels it has; `what` names the expression's place.
fn check_expr(expr: &str, recorded: &Recorded, what: &str) {
    let names = promql_names(expr);
    assert!(names.metrics.iter().any(|(m, _)| !m.is_empty()), "{what}: no metric in {expr:?}");
    // Labels every target has, besides the family's own.
    let mut known: BTreeSet<&str> = ["job", "instance"].into();
    for (metric, labels) in &names.metrics {
        let own: Vec<&str> = if metric.is_empty() {
            Vec::new()
        } else if metric == "up" {
            vec![]
        } else if metric.contains(':') {
            let kept = recorded.get(metric);
            let kept =
                kept.unwrap_or_else(|| panic!("{what}: {metric} is not a recording rule in deploy/prometheus/rules"));
            kept.iter().map(String::as_str).collect()
        } else {
            let Some((f, bucket)) = family_of(metric) else {
                panic!("{what}: {metric} is not a metric llmsec serve exports (llmsec_server::metrics::FAMILIES)");
            };
            let mut l = f.labels.to_vec();
            if bucket {
                l.push("le");
            }
            l
        };
        known.extend(own.iter().copied());
        for label in labels {
            assert!(
                label == "__name__" || known.contains(label.as_str()) || own.contains(&label.as_str()),
                "{what}: {metric} has no label {label:?} (it has {own:?}, job, instance) in {expr:?}"
            );
        }
    }
    for label in &names.grouping {
        assert!(known.contains(label.as_str()), "{what}: grouping by {label:?}, which no metric of {expr:?} has");
    }
}

fn recording_rules() -> (Recorded, Vec<(String, String)>, Vec<String>) {
    let mut recorded = Recorded::new();
    let mut exprs = Vec::new();
    let mut alerts = Vec::new();
    for path in files(&deploy().join("prometheus/rules"), "yml") {
        let doc = yaml(&path);
        let groups = doc["groups"].as_array().unwrap_or_else(|| panic!("{}: no groups", path.display()));
        for g in groups {
            for r in g["rules"].as_array().unwrap() {
                let expr = r["expr"].as_str().unwrap_or_else(|| panic!("{}: a rule without expr", path.display()));
                if let Some(name) = r["record"].as_str() {
                    assert!(name.split(':').count() == 3, "{name}: recording rules are named level:metric:operations");
                    let kept = promql_names(expr).grouping;
                    assert!(recorded.insert(name.to_owned(), kept).is_none(), "{name} recorded twice");
                    exprs.push((format!("{} record {name}", path.display()), expr.to_owned()));
                } else {
                    let name = r["alert"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{}: a rule neither record nor alert", path.display()));
                    assert!(!alerts.contains(&name.to_owned()), "alert {name} defined twice");
                    for key in ["summary", "description"] {
                        assert!(r["annotations"][key].is_string(), "alert {name} has no {key} annotation");
                    }
                    assert!(r["labels"]["severity"].is_string(), "alert {name} has no severity label");
                    alerts.push(name.to_owned());
                    exprs.push((format!("{} alert {name}", path.display()), expr.to_owned()));
                }
            }
        }
    }
    (recorded, exprs, alerts)
}

#[test]
fn promql_scanner_finds_metrics_labels_and_grouping() {
    let n = promql_names(
        r#"histogram_quantile(0.99, sum by (le, route) (rate(llm_security_http_request_duration_seconds_bucket{job="$job",status=~"5.."}[$__rate_interval]))) or vector(0) > bool 1e3 offset 10m"#,
    );
    assert_eq!(
        n.metrics,
        vec![(
            "llm_security_http_request_duration_seconds_bucket".to_owned(),
            vec!["job".to_owned(), "status".to_owned()]
        )]
    );
    assert_eq!(n.grouping, ["le", "route"]);
    let n = promql_names(r#"up == 0 and on (job) job:llm_security_block_ratio:rate5m{a="b}c"} > 0.5"#);
    let metrics: Vec<&str> = n.metrics.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(metrics, ["up", "job:llm_security_block_ratio:rate5m"]);
    assert_eq!(n.grouping, ["job"]);
}

#[test]
fn metric_families_follow_prometheus_naming() {
    let mut seen = HashSet::new();
    for f in FAMILIES {
        assert!(seen.insert(f.name), "{} listed twice", f.name);
        assert!(f.name.starts_with("llm_security_"), "{}", f.name);
        assert!(f.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{}", f.name);
        assert_eq!(
            f.kind == Kind::Counter,
            f.name.ends_with("_total"),
            "{}: counters, and only counters, end in _total",
            f.name
        );
        assert!(!f.help.is_empty(), "{} has no help", f.name);
        for l in f.labels {
            assert!(!["job", "instance", "le"].contains(l), "{}: label {l} is reserved", f.name);
        }
    }
}

#[test]
fn dashboards_are_well_formed_and_query_exported_metrics() {
    let (recorded, _, _) = recording_rules();
    let mut uids = HashSet::new();
    for path in files(&deploy().join("grafana"), "json") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let d: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        let uid = d["uid"].as_str().unwrap_or_default();
        assert!(
            !uid.is_empty()
                && uid.len() <= 40
                && uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{name}: uid {uid:?} (1-40 characters of [A-Za-z0-9_-])"
        );
        assert!(uids.insert(uid.to_owned()), "{name}: uid {uid} used by another dashboard");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}: no title");
        assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "{name}: schemaVersion under 36");
        let vars = d["templating"]["list"].as_array().unwrap_or_else(|| panic!("{name}: no templating list"));
        let ds = vars.iter().find(|v| v["name"] == "datasource");
        assert!(
            ds.is_some_and(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
            "{name}: no `datasource` variable of Prometheus datasources"
        );
        let var_names: Vec<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();

        // Panels, with those inside rows.
        let mut panels: Vec<&Value> = Vec::new();
        for p in d["panels"].as_array().unwrap_or_else(|| panic!("{name}: no panels")) {
            panels.push(p);
            panels.extend(p["panels"].as_array().into_iter().flatten());
        }
        let mut ids = HashSet::new();
        let mut boxes: Vec<(String, [u64; 4])> = Vec::new();
        let mut queries = 0;
        for p in &panels {
            let title = p["title"].as_str().unwrap_or_default();
            let what = format!("{name}: panel {title:?}");
            assert!(!title.is_empty(), "{name}: a panel without a title");
            let id = p["id"].as_u64().unwrap_or_else(|| panic!("{what}: no numeric id"));
            assert!(ids.insert(id), "{what}: id {id} used twice");
            let g = &p["gridPos"];
            let [x, y, w, h] =
                ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap_or_else(|| panic!("{what}: gridPos.{k}")));
            assert!(w >= 1 && h >= 1 && x + w <= 24, "{what}: gridPos {g} out of the 24-column grid");
            for (other, [ox, oy, ow, oh]) in &boxes {
                let overlap = x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h;
                assert!(!overlap, "{what} overlaps panel {other:?}");
            }
            boxes.push((title.to_owned(), [x, y, w, h]));
            if p["type"] == "row" {
                continue;
            }
            assert!(p["type"].as_str().is_some_and(|t| !t.is_empty()), "{what}: no type");
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{what}: datasource is not the variable");
            let targets = p["targets"].as_array().filter(|t| !t.is_empty());
            let targets = targets.unwrap_or_else(|| panic!("{what}: no targets"));
            let mut refs = HashSet::new();
            for t in targets {
                let r = t["refId"].as_str().unwrap_or_else(|| panic!("{what}: a target without refId"));
                assert!(refs.insert(r), "{what}: refId {r} twice");
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{what} {r}: datasource is not the variable");
                let expr = t["expr"].as_str().filter(|e| !e.trim().is_empty());
                let expr = expr.unwrap_or_else(|| panic!("{what} {r}: no expr"));
                for var in expr.split('$').skip(1) {
                    let v: String = var.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    assert!(
                        v.starts_with("__") || var_names.contains(&v.as_str()),
                        "{what} {r}: ${v} is neither a Grafana global nor a dashboard variable"
                    );
                }
                check_expr(expr, &recorded, &format!("{what} {r}"));
                queries += 1;
            }
        }
        assert!(queries >= 10, "{name}: only {queries} queries");
    }
    assert!(uids.len() >= 2, "expected the security and the service-health dashboards");
}

#[test]
fn rules_query_exported_metrics_and_every_alert_is_tested_both_ways() {
    let (recorded, exprs, alerts) = recording_rules();
    for (what, expr) in &exprs {
        check_expr(expr, &recorded, what);
    }
    // Each alert has a promtool case expecting it and one expecting nothing.
    let mut fires = HashSet::new();
    let mut quiet = HashSet::new();
    for path in files(&deploy().join("prometheus/tests"), "yml") {
        let doc = yaml(&path);
        for t in doc["tests"].as_array().unwrap_or_else(|| panic!("{}: no tests", path.display())) {
            for case in t["alert_rule_test"].as_array().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap().to_owned();
                assert!(alerts.contains(&name), "{}: tests unknown alert {name}", path.display());
                if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                    fires.insert(name);
                } else {
                    quiet.insert(name);
                }
            }
        }
    }
    for a in &alerts {
        assert!(fires.contains(a), "no promtool test where {a} fires");
        assert!(quiet.contains(a), "no promtool test where {a} stays quiet");
    }
}
