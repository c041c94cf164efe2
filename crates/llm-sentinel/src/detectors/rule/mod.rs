//! The rule detector: a threshold expression over an event's fields and
//! per-entity window aggregates, e.g. `count(5m) > 100` or
//! `sum(data.cost, 1h) > 50 && data.model == "gpt-4o"`.
//!
//! # Language
//!
//! ```text
//! expr    := and ('||' and)*
//! and     := not ('&&' not)*
//! not     := '!' not | cmp
//! cmp     := sum (('==' | '!=' | '>' | '>=' | '<' | '<=') sum | 'in' '[' literal (',' literal)* ']')?
//! sum     := product (('+' | '-') product)*
//! product := unary (('*' | '/') unary)*
//! unary   := '-' unary | atom
//! atom    := number | string | 'true' | 'false' | field | '(' expr ')'
//!          | 'contains' '(' expr ',' expr ')' | 'lower' '(' expr ')'
//!          | ('count' | 'rate' | 'errors') '(' window ')'
//!          | ('sum' | 'avg' | 'max' | 'min') '(' field ',' window ')'
//! ```
//!
//! Numbers are `1`, `0.5`, `1e3`; strings are double-quoted with `\"` and
//! `\\` as the only escapes; windows are `500ms`, `30s`, `5m`, `1h`, `1d`.
//! A field is a name of [`FIELDS`](crate::event::FIELDS) or `metadata.<key>` (an extra the reporter
//! attached, typed when the event arrives). `!` binds looser than comparisons
//! (`!a == b` is `!(a == b)`); comparisons do not chain. Nesting is limited to
//! 100 levels.
//!
//! # Types
//!
//! Checked when the expression is parsed: `>`, `>=`, `<`, `<=` and arithmetic
//! take numbers; `==` and `!=` take two values of one type (numbers, strings
//! or booleans); `!`, `&&`, `||` take booleans; `contains` and `lower` take
//! strings; `in` takes a list of literals of the left side's type; the whole
//! expression must be boolean. A metadata extra fits anywhere.
//!
//! **Missing is never a match.** A comparison (`in` and `contains` included)
//! with a field the event lacks, or with an extra of the wrong type, is false:
//! without a cost both `data.cost > 1` and `data.cost <= 1` are false (and
//! `!(data.cost > 1)` is true). Arithmetic with a missing value, or a division
//! by zero, is missing. A bare extra in a boolean place is missing unless it
//! is a boolean; `!` keeps it missing, `false && missing` is false,
//! `true || missing` is true, and an expression that ends up missing does not
//! match.
//!
//! # Windows
//!
//! Aggregates are kept per [`RuleConfig::group_by`] entity, over the window
//! `(t - w, t]` that ends at the event's timestamp `t` and includes the event
//! (an event older than the newest already seen for its entity counts at that
//! newest time: windows never move back). `count` is events, `rate` events per
//! minute, `errors` events with `is_error`; `sum`, `avg`, `max`, `min` run over
//! the events that have the field as a number (a sum of none is 0; the others
//! are missing).
//!
//! Memory is bounded: each distinct `(source, window)` of an expression
//! (`sum(data.cost, 1h)` and `avg(data.cost, 1h)` share one, as do `count`
//! and `rate` of one window) keeps per entity at most [`WINDOW_BUCKETS`]
//! buckets of `window / 1000` (rounded up, at least 1 ms) however many events
//! arrive: 24 KB, plus 16 KB each when `max` or `min` reads it. Entities are
//! bounded by [`RuleConfig::max_entities`] (least recently seen dropped
//! first), so the worst case is `max_entities ×` that. Counts never saturate;
//! the price is that windows longer than 1 s have their trailing edge rounded
//! to a bucket (60 ms for `1m`, 3.6 s for `1h`).
//!
//! # Findings
//!
//! Every matching event gives one finding (the pipeline deduplicates per
//! detector, entity and window) about its group-by entity; events without
//! that entity are skipped. `observed` is the left side of the first numeric
//! comparison among the top-level `&&` terms, `threshold` its right side when
//! that is a number literal, `deviation` their ratio, and the score is
//! `0.5 + 0.5 · min(1, |observed − threshold| / max(|threshold|, ε))` when
//! both are known, else 0.75.
//!
//! This file holds the detector ([`RuleConfig`], [`RuleDetector`]); the
//! language is in `lexer` (tokens), `parser` (the syntax tree, its parser
//! and type checks, and its canonical rendering), `eval` (evaluating a tree
//! against an event) and `window` (the per-entity time-window aggregates).

mod eval;
mod lexer;
mod parser;
mod window;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};

use self::eval::{Ctx, Val, eval};
use self::parser::{Aggregate, CMP, Func, Node, Op};
pub use self::parser::{Expr, ParseError, parse};
pub use self::window::WINDOW_BUCKETS;
use self::window::{Source, Spec, Window};
use crate::detector::{Detector, DetectorKind, Entity, EntityKind, EntityMap, Finding, Millis, Severity};
use crate::event::{FieldValue, TelemetryEvent};

/// A rule detector's config (the `config:` block of a `type: rule` detector).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The expression, e.g. `count(5m) > 100 && data.model == "gpt-4o"` (see the module docs).
    pub expression: String,
    /// The entity window aggregates are kept per and findings are about.
    #[serde(default)]
    pub group_by: EntityKind,
    /// The findings' title; default `rule <id> matched`.
    #[serde(default)]
    pub title: Option<String>,
    /// The most entities tracked (the least recently seen is dropped first).
    #[serde(default = "default_max_entities")]
    pub max_entities: usize,
}

fn default_max_entities() -> usize {
    10_000
}

#[derive(Debug)]
struct EntityState {
    /// Checked on every lookup: the map is keyed by a hash of it.
    id: String,
    newest: Millis,
    windows: Vec<Window>,
}

/// Evaluates a [`RuleConfig`] expression on every event (see the module docs).
#[derive(Debug)]
pub struct RuleDetector {
    id: String,
    severity: Severity,
    group_by: EntityKind,
    title: String,
    /// The expression as configured, for descriptions.
    source: String,
    expr: Expr,
    /// The distinct aggregates, the spec each reads, and their values for the current event.
    aggs: Vec<Aggregate>,
    agg_spec: Vec<usize>,
    values: Vec<Option<f64>>,
    specs: Vec<Spec>,
    longest: Millis,
    entities: EntityMap<u64, EntityState>,
    hasher: RandomState,
}

impl RuleDetector {
    /// Parses and type-checks the expression; the error names the problem and
    /// its byte offset, e.g. "expression: unknown field `data.cots` at 0; known: …".
    pub fn new(id: &str, severity: Severity, config: RuleConfig) -> Result<RuleDetector, String> {
        let expr = parse(&config.expression).map_err(|e| format!("expression: {e}"))?;
        if config.max_entities == 0 {
            return Err("max_entities: must be at least 1".into());
        }
        let mut aggs = Vec::new();
        expr.0.aggregates(&mut aggs);
        let (mut specs, mut agg_spec) = (Vec::<Spec>::new(), Vec::new());
        for a in &aggs {
            let source = match (a.func, &a.field) {
                (Func::Errors, _) => Source::Errors,
                (_, Some(f)) => Source::Field(f.clone()),
                (_, None) => Source::Events,
            };
            let i = specs.iter().position(|s| s.source == source && s.window == a.window).unwrap_or_else(|| {
                let bucket = (a.window - 1) / WINDOW_BUCKETS + 1;
                specs.push(Spec { source, window: a.window, bucket, max: false, min: false });
                specs.len() - 1
            });
            specs[i].max |= a.func == Func::Max;
            specs[i].min |= a.func == Func::Min;
            agg_spec.push(i);
        }
        Ok(RuleDetector {
            id: id.to_owned(),
            severity,
            group_by: config.group_by,
            title: config.title.unwrap_or_else(|| format!("rule {id} matched")),
            source: config.expression.trim().to_owned(),
            expr,
            values: vec![None; aggs.len()],
            longest: aggs.iter().map(|a| a.window).max().unwrap_or(0),
            aggs,
            agg_spec,
            specs,
            entities: EntityMap::new(config.max_entities),
            hasher: RandomState::new(),
        })
    }

    fn finding(&self, e: &TelemetryEvent, id: &str, cx: &Ctx<'_>) -> Finding {
        let (observed, threshold) = observed(&self.expr.0, cx).unwrap_or_default();
        let score = match (observed, threshold) {
            (Some(o), Some(t)) => 0.5 + 0.5 * ((o - t).abs() / t.abs().max(f64::EPSILON)).min(1.0),
            _ => 0.75,
        };
        let mut f = Finding::from_event(e, Entity::new(self.group_by, id), self.severity, score, self.title.clone());
        f.observed = observed;
        f.threshold = threshold;
        f.deviation = observed.zip(threshold.filter(|t| *t != 0.0)).map(|(o, t)| o / t);
        f.description = match observed {
            Some(o) => format!("{} (observed {o})", self.source),
            None => self.source.clone(),
        };
        f.window_start = f.window_end.saturating_sub(self.longest);
        f
    }
}

/// The left side of the first numeric comparison among the top-level `&&`
/// terms, and its right side when that is a number literal.
fn observed<'a>(n: &'a Node, cx: &Ctx<'a>) -> Option<(Option<f64>, Option<f64>)> {
    match n {
        Node::Bin(Op::And, l, r) => observed(l, cx).or_else(|| observed(r, cx)),
        Node::Bin(op, l, r) if CMP.contains(op) => {
            let observed = eval(l, cx).num().filter(|x| x.is_finite())?;
            let threshold = match &**r {
                Node::Num(x) => Some(*x),
                Node::Neg(x) => {
                    if let Node::Num(x) = **x {
                        Some(-x)
                    } else {
                        None
                    }
                }
                _ => None,
            };
            Some((Some(observed), threshold))
        }
        _ => None,
    }
}

impl Detector for RuleDetector {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> DetectorKind {
        DetectorKind::Rule
    }

    fn observe(&mut self, event: &TelemetryEvent, _now: Millis, out: &mut Vec<Finding>) {
        let Some(id) = self.group_by.of(event) else { return };
        if !self.specs.is_empty() {
            let n = self.specs.len();
            let fresh = || EntityState {
                id: id.to_owned(),
                newest: Millis::MIN,
                windows: (0..n).map(|_| Window::default()).collect(),
            };
            let state = self.entities.get_or_insert_with(self.hasher.hash_one(id), fresh);
            if state.id != id {
                *state = fresh(); // a hash collision: start over
            }
            let t = event.millis().max(state.newest);
            state.newest = t;
            for (w, spec) in state.windows.iter_mut().zip(&self.specs) {
                let v = match &spec.source {
                    Source::Events => Some(1.0),
                    Source::Errors => event.is_error().then_some(1.0),
                    Source::Field(f) => {
                        if let Some(FieldValue::Num(x)) = f.get(event) {
                            Some(x)
                        } else {
                            None
                        }
                    }
                };
                w.add(spec, t, v);
            }
            for ((v, a), &s) in self.values.iter_mut().zip(&self.aggs).zip(&self.agg_spec) {
                *v = state.windows[s].value(a.func, &self.specs[s]);
            }
        }
        let cx = Ctx { event, aggs: &self.aggs, values: &self.values };
        if matches!(eval(&self.expr.0, &cx), Val::Bool(true)) {
            out.push(self.finding(event, id, &cx));
        }
    }

    fn tracked(&self) -> usize {
        self.entities.len()
    }

    fn forget(&mut self, entity: &Entity) {
        let key = self.hasher.hash_one(entity.id.as_str());
        if entity.kind == self.group_by && self.entities.get_mut(&key).is_some_and(|s| s.id == entity.id) {
            self.entities.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A time divisible by every window the tests use, so bucket edges are exact.
    pub(super) const T0: Millis = 1_800_000_000_000;

    fn config(expression: &str) -> RuleConfig {
        RuleConfig {
            expression: expression.into(),
            group_by: EntityKind::Application,
            title: None,
            max_entities: 10_000,
        }
    }

    pub(super) fn rule(expression: &str) -> RuleDetector {
        RuleDetector::new("r1", Severity::Warning, config(expression)).unwrap()
    }

    pub(super) fn ev(i: usize, ms: Millis) -> TelemetryEvent {
        crate::event::tests::event(&format!("e{i}"), ms)
    }

    /// The findings of each event.
    pub(super) fn run(d: &mut RuleDetector, events: &[TelemetryEvent]) -> Vec<Vec<Finding>> {
        events
            .iter()
            .map(|e| {
                let mut out = Vec::new();
                d.observe(e, e.millis(), &mut out);
                out
            })
            .collect()
    }

    /// The indices of the events that matched.
    pub(super) fn fires(d: &mut RuleDetector, events: &[TelemetryEvent]) -> Vec<usize> {
        run(d, events).iter().enumerate().filter(|(_, f)| !f.is_empty()).map(|(i, _)| i).collect()
    }

    #[test]
    fn errors_display_the_offset_before_the_hint() {
        let e = parse("data.cots > 1").unwrap_err().to_string();
        assert!(e.starts_with("unknown field `data.cots` at 0; known: event_id, event_type"), "{e}");
        assert!(e.ends_with("is_error, metadata.<key>"), "{e}");
        assert_eq!(parse("1 <").unwrap_err().to_string(), "expected a value, found the end at 3");
        let e = RuleDetector::new("r", Severity::Info, config("data.cots > 1")).unwrap_err();
        assert!(e.starts_with("expression: unknown field `data.cots` at 0; known: "), "{e}");
        let e =
            RuleDetector::new("r", Severity::Info, RuleConfig { max_entities: 0, ..config("is_error") }).unwrap_err();
        assert!(e.starts_with("max_entities"), "{e}");
    }

    #[test]
    fn a_finding_reports_observed_threshold_and_score() {
        let mut d = rule("count(1m) > 4 && data.model == \"gpt-4o\"");
        let events: Vec<_> = (0..5).map(|i| ev(i, T0 + i as Millis * 1000)).collect();
        let findings = run(&mut d, &events);
        assert!(findings[..4].iter().all(Vec::is_empty));
        let f = &findings[4][0];
        assert_eq!(f.entity, Entity::new(EntityKind::Application, "chatbot"));
        assert_eq!((f.observed, f.threshold, f.deviation), (Some(5.0), Some(4.0), Some(1.25)));
        assert_eq!(f.score, 0.625);
        assert_eq!(f.title, "rule r1 matched");
        assert_eq!(f.description, "count(1m) > 4 && data.model == \"gpt-4o\" (observed 5)");
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!((f.window_start, f.window_end), (T0 + 4000 - 60_000, T0 + 4000));
        assert_eq!(f.event_id.as_deref(), Some("e4"));

        let cfg = RuleConfig { title: Some("gpt-4o in use".into()), ..config(r#"data.model == "gpt-4o""#) };
        let mut d = RuleDetector::new("r2", Severity::Critical, cfg).unwrap();
        let f = run(&mut d, &events[..1]).remove(0).remove(0);
        assert_eq!((f.title.as_str(), f.score, f.observed, f.threshold), ("gpt-4o in use", 0.75, None, None));
        assert_eq!(f.description, r#"data.model == "gpt-4o""#);
        assert_eq!(f.window_start, f.window_end);

        let f = run(&mut rule("data.cost < -1 || data.cost < 0.5"), &events[..1]).remove(0).remove(0);
        assert_eq!(f.observed, None, "no observed value under a top-level ||");
        let f = run(&mut rule("data.total_tokens * 10 >= 100"), &events[..1]).remove(0).remove(0);
        assert_eq!((f.observed, f.threshold, f.score), (Some(1000.0), Some(100.0), 1.0));
        assert_eq!(d.kind(), DetectorKind::Rule);
        assert_eq!(d.id(), "r2");
    }

    #[test]
    fn entities_are_kept_apart() {
        let events: Vec<_> = (0..6)
            .map(|i| {
                let mut e = ev(i, T0 + i as Millis * 1000);
                e.metadata.user_id = Some(format!("u{}", i % 2));
                e
            })
            .collect();
        let cfg = RuleConfig { group_by: EntityKind::User, ..config("count(1m) > 3") };
        let mut d = RuleDetector::new("r", Severity::Warning, cfg).unwrap();
        assert!(fires(&mut d, &events).is_empty());
        assert_eq!(d.tracked(), 2);
        let findings = run(&mut rule("count(1m) > 3"), &events);
        assert_eq!(findings.iter().filter(|f| !f.is_empty()).count(), 3, "events 4, 5 and 6 of the application");
        let cfg = RuleConfig { group_by: EntityKind::User, ..config("count(1m) > 2") };
        let mut d = RuleDetector::new("r", Severity::Warning, cfg).unwrap();
        let users: Vec<_> = run(&mut d, &events).into_iter().flatten().map(|f| f.entity.id).collect();
        assert_eq!(users, ["u0", "u1"]);
    }

    #[test]
    fn events_without_the_group_by_entity_are_skipped() {
        let cfg = RuleConfig { group_by: EntityKind::Session, ..config("count(1m) >= 1 || true") };
        let mut d = RuleDetector::new("r", Severity::Warning, cfg).unwrap();
        assert!(fires(&mut d, &[ev(0, T0)]).is_empty());
        assert_eq!(d.tracked(), 0);
    }

    #[test]
    fn tracked_entities_are_bounded() {
        let cfg = RuleConfig { group_by: EntityKind::User, max_entities: 3, ..config("count(1h) > 1") };
        let mut d = RuleDetector::new("r", Severity::Warning, cfg).unwrap();
        let events: Vec<_> = (0..10)
            .map(|i| {
                let mut e = ev(i, T0 + i as Millis);
                e.metadata.user_id = Some(format!("u{i}"));
                e
            })
            .collect();
        assert!(fires(&mut d, &events).is_empty());
        assert_eq!(d.tracked(), 3);
        // u0 was dropped: its next event starts a fresh count.
        assert!(fires(&mut d, &events[..1]).is_empty());
        // u9 is still tracked.
        assert_eq!(fires(&mut d, &events[9..]), [0]);
        assert_eq!(rule("is_error").tracked(), 0);
    }

    #[test]
    fn rule_config_refuses_unknown_keys_and_round_trips() {
        let e = serde_json::from_str::<RuleConfig>(r#"{"expression": "is_error", "groupby": "user"}"#).unwrap_err();
        assert!(e.to_string().contains("groupby"), "{e}");
        let e = serde_norway::from_str::<RuleConfig>("expression: is_error\nwindow: 5m\n").unwrap_err();
        assert!(e.to_string().contains("window"), "{e}");
        let c: RuleConfig = serde_norway::from_str("expression: count(5m) > 100\ngroup_by: user\n").unwrap();
        assert_eq!(
            c,
            RuleConfig {
                expression: "count(5m) > 100".into(),
                group_by: EntityKind::User,
                title: None,
                max_entities: 10_000
            }
        );
        let c = RuleConfig { title: Some("spend".into()), max_entities: 5, ..c };
        assert_eq!(serde_norway::from_str::<RuleConfig>(&serde_norway::to_string(&c).unwrap()).unwrap(), c);
        assert_eq!(serde_json::from_str::<RuleConfig>(&serde_json::to_string(&c).unwrap()).unwrap(), c);
    }
}
