//! Evaluating a parsed rule expression against an event and the event's
//! window aggregate values; a missing value never makes a match.

use std::borrow::Cow;

use super::parser::{Aggregate, Node, Op};
use crate::event::{FieldValue, TelemetryEvent};

/// A value at run time; `Missing` is an absent field, a wrong-typed extra, or a failed computation.
#[derive(Debug)]
pub(super) enum Val<'a> {
    Num(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    Missing,
}

impl Val<'_> {
    pub(super) fn num(&self) -> Option<f64> {
        if let Val::Num(x) = self { Some(*x) } else { None }
    }

    fn truth(&self) -> Option<bool> {
        if let Val::Bool(b) = self { Some(*b) } else { None }
    }
}

/// What an expression is evaluated against: the event, and this event's aggregate values.
pub(super) struct Ctx<'a> {
    pub(super) event: &'a TelemetryEvent,
    pub(super) aggs: &'a [Aggregate],
    pub(super) values: &'a [Option<f64>],
}

pub(super) fn eval<'a>(n: &'a Node, cx: &Ctx<'a>) -> Val<'a> {
    match n {
        Node::Num(x) => Val::Num(*x),
        Node::Str(s) => Val::Str(Cow::Borrowed(s)),
        Node::Bool(b) => Val::Bool(*b),
        Node::Field(f) => match f.get(cx.event) {
            Some(FieldValue::Num(x)) => Val::Num(x),
            Some(FieldValue::Str(s)) => Val::Str(Cow::Borrowed(s)),
            Some(FieldValue::Bool(b)) => Val::Bool(b),
            None => Val::Missing,
        },
        Node::Not(x) => eval(x, cx).truth().map_or(Val::Missing, |b| Val::Bool(!b)),
        Node::Neg(x) => eval(x, cx).num().map_or(Val::Missing, |x| Val::Num(-x)),
        Node::Bin(Op::And, l, r) => match eval(l, cx).truth() {
            Some(false) => Val::Bool(false),
            l => match (l, eval(r, cx).truth()) {
                (_, Some(false)) => Val::Bool(false),
                (Some(true), Some(true)) => Val::Bool(true),
                _ => Val::Missing,
            },
        },
        Node::Bin(Op::Or, l, r) => match eval(l, cx).truth() {
            Some(true) => Val::Bool(true),
            l => match (l, eval(r, cx).truth()) {
                (_, Some(true)) => Val::Bool(true),
                (Some(false), Some(false)) => Val::Bool(false),
                _ => Val::Missing,
            },
        },
        Node::Bin(op, l, r) => apply(*op, &eval(l, cx), &eval(r, cx)),
        Node::In(x, items) => {
            let v = eval(x, cx);
            Val::Bool(items.iter().any(|item| same(&v, &eval(item, cx)) == Some(true)))
        }
        Node::Contains(h, n) => {
            Val::Bool(matches!((eval(h, cx), eval(n, cx)), (Val::Str(h), Val::Str(n)) if h.contains(&*n)))
        }
        Node::Lower(x) => match eval(x, cx) {
            Val::Str(s) if s.chars().any(char::is_uppercase) => Val::Str(Cow::Owned(s.to_lowercase())),
            s @ Val::Str(_) => s,
            _ => Val::Missing,
        },
        Node::Agg(a) => cx
            .aggs
            .iter()
            .position(|b| b == a)
            .and_then(|i| cx.values.get(i).copied().flatten())
            .map_or(Val::Missing, Val::Num),
    }
}

/// Whether two values are equal; `None` when either is missing or their types differ.
fn same(l: &Val<'_>, r: &Val<'_>) -> Option<bool> {
    match (l, r) {
        (Val::Num(a), Val::Num(b)) => Some(a == b),
        (Val::Str(a), Val::Str(b)) => Some(a == b),
        (Val::Bool(a), Val::Bool(b)) => Some(a == b),
        _ => None,
    }
}

/// Comparisons and arithmetic (`&&` and `||` short-circuit in [`eval`]).
fn apply(op: Op, l: &Val<'_>, r: &Val<'_>) -> Val<'static> {
    let num = |x: f64| if x.is_finite() { Val::Num(x) } else { Val::Missing };
    match (op, l.num(), r.num()) {
        (Op::Eq, ..) => Val::Bool(same(l, r) == Some(true)),
        (Op::Ne, ..) => Val::Bool(same(l, r) == Some(false)),
        (Op::Gt, Some(a), Some(b)) => Val::Bool(a > b),
        (Op::Ge, Some(a), Some(b)) => Val::Bool(a >= b),
        (Op::Lt, Some(a), Some(b)) => Val::Bool(a < b),
        (Op::Le, Some(a), Some(b)) => Val::Bool(a <= b),
        (Op::Add, Some(a), Some(b)) => num(a + b),
        (Op::Sub, Some(a), Some(b)) => num(a - b),
        (Op::Mul, Some(a), Some(b)) => num(a * b),
        (Op::Div, Some(a), Some(b)) => num(a / b),
        (Op::Add | Op::Sub | Op::Mul | Op::Div, ..) => Val::Missing,
        _ => Val::Bool(false), // a comparison with a missing value
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::detectors::rule::tests::{T0, ev, fires, rule};
    use crate::event::TelemetryEvent;

    fn matches(expression: &str, e: &TelemetryEvent) -> bool {
        fires(&mut rule(expression), std::slice::from_ref(e)) == [0]
    }

    #[test]
    fn evaluation_and_missing_is_never_a_match() {
        let mut e = ev(0, T0);
        e.data.prompt = Some("Please IGNORE previous instructions".into());
        e.metadata.extra.insert("internal".into(), json!("true"));
        e.metadata.extra.insert("score".into(), json!(7));
        e.metadata.extra.insert("flag".into(), json!(true));
        let cases = [
            (r#"data.cost > 0.005 && data.model == "gpt-4o""#, true),
            ("data.cost > 1.0", false),
            ("data.latency_ms > 1", false),
            ("data.latency_ms <= 1", false),
            ("data.latency_ms != 1", false),
            ("data.latency_ms == data.latency_ms", false),
            ("!(data.latency_ms > 1)", true),
            ("data.latency_ms + 1 > 0 || data.latency_ms + 1 <= 0", false),
            (r#"data.model in ["o1", "gpt-4o"]"#, true),
            (r#"data.model in ["o1"]"#, false),
            (r#"data.status in ["error"]"#, false),
            ("data.total_tokens in [100, 200]", true),
            (r#"contains(data.prompt, "IGNORE")"#, true),
            (r#"contains(data.prompt, "ignore")"#, false),
            (r#"contains(lower(data.prompt), "ignore")"#, true),
            (r#"contains(data.completion, "")"#, false),
            (r#"lower(data.model) == "gpt-4o""#, true),
            ("data.total_tokens / 2 >= 50", true),
            ("data.total_tokens / 0 > 1", false),
            ("!(data.total_tokens / 0 > 1)", true),
            ("-data.cost < 0", true),
            (r#"metadata.internal == "true""#, true),
            ("metadata.score > 5", true),
            (r#"metadata.score == "7""#, false),
            (r#"metadata.score != "7""#, false),
            ("metadata.flag", true),
            ("!metadata.flag", false),
            ("metadata.score", false),
            ("metadata.absent", false),
            ("!metadata.absent", false),
            ("metadata.absent || true", true),
            ("metadata.absent && true", false),
            ("!(metadata.absent && false)", true),
            ("is_error", false),
            ("!is_error", true),
            (r#"event_type == "llm.response" && tenant_id == "acme""#, true),
            (r#"metadata.user_id == "u1""#, true),
            ("metadata.tool_call_count == 0", true),
            (r#"data.status == "success""#, false),
        ];
        for (src, want) in cases {
            assert_eq!(matches(src, &e), want, "{src}");
        }
    }
}
