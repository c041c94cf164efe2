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
//! A field is a name of [`FIELDS`] or `metadata.<key>` (an extra the reporter
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

use std::borrow::Cow;
use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};

use crate::detector::{
    Detector, DetectorKind, Entity, EntityKind, EntityMap, Finding, Millis, Severity, format_duration, parse_duration,
};
use crate::event::{FIELDS, FieldValue, TelemetryEvent};

/// The most buckets one window aggregate keeps per entity (see the module docs).
pub const WINDOW_BUCKETS: i64 = 1_000;

/// The deepest an expression may nest.
const MAX_DEPTH: usize = 100;

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

/// Why an expression did not parse or type-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The byte offset of the problem in the expression.
    pub offset: usize,
    /// What is wrong, possibly followed by `; ` and a hint (such as the known fields).
    pub message: String,
}

impl fmt::Display for ParseError {
    /// `<problem> at <offset>`, then the hint if any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, hint) = self.message.split_once("; ").unwrap_or((&self.message, ""));
        write!(f, "{what} at {}", self.offset)?;
        if !hint.is_empty() {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

fn error(offset: usize, message: impl Into<String>) -> ParseError {
    ParseError { offset, message: message.into() }
}

/// A parsed, type-checked expression. `Display` writes it back in canonical
/// form, which parses to an equal `Expr`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr(Node);

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Num(f64),
    Str(String),
    Bool(bool),
    Field(Field),
    Not(Box<Node>),
    Neg(Box<Node>),
    Bin(Op, Box<Node>, Box<Node>),
    /// Items are literals.
    In(Box<Node>, Vec<Node>),
    Contains(Box<Node>, Box<Node>),
    Lower(Box<Node>),
    Agg(Aggregate),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Or,
    And,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Add,
    Sub,
    Mul,
    Div,
}

const CMP: [Op; 6] = [Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le];

impl Op {
    fn sym(self) -> &'static str {
        match self {
            Op::Or => "||",
            Op::And => "&&",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
        }
    }

    /// Binding strength; `!` is 3, unary `-` 7, atoms 8.
    fn prec(self) -> u8 {
        match self {
            Op::Or => 1,
            Op::And => 2,
            Op::Eq | Op::Ne | Op::Gt | Op::Ge | Op::Lt | Op::Le => 4,
            Op::Add | Op::Sub => 5,
            Op::Mul | Op::Div => 6,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Aggregate {
    func: Func,
    field: Option<Field>,
    window: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Count,
    Rate,
    Errors,
    Sum,
    Avg,
    Max,
    Min,
}

impl Func {
    const ALL: [(&str, Func); 7] = [
        ("count", Func::Count),
        ("rate", Func::Rate),
        ("errors", Func::Errors),
        ("sum", Func::Sum),
        ("avg", Func::Avg),
        ("max", Func::Max),
        ("min", Func::Min),
    ];

    fn name(self) -> &'static str {
        Func::ALL.iter().find(|(_, f)| *f == self).map_or("?", |(n, _)| n)
    }
}

/// A field path, resolved at parse time so evaluation never looks names up.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    EventId,
    EventType,
    ApplicationId,
    TenantId,
    SourceService,
    SourceHost,
    Model,
    Prompt,
    Completion,
    PromptTokens,
    CompletionTokens,
    TotalTokens,
    LatencyMs,
    Cost,
    Status,
    FinishReason,
    Error,
    UserId,
    SessionId,
    Ip,
    Role,
    ToolCallCount,
    IsError,
    /// `metadata.<key>`: an extra, typed at run time.
    Meta(String),
}

/// The fields besides `metadata.<key>`, in [`FIELDS`]' order (a test checks they agree).
const KNOWN: &[(&str, Field)] = &[
    ("event_id", Field::EventId),
    ("event_type", Field::EventType),
    ("application_id", Field::ApplicationId),
    ("tenant_id", Field::TenantId),
    ("source.service", Field::SourceService),
    ("source.host", Field::SourceHost),
    ("data.model", Field::Model),
    ("data.prompt", Field::Prompt),
    ("data.completion", Field::Completion),
    ("data.prompt_tokens", Field::PromptTokens),
    ("data.completion_tokens", Field::CompletionTokens),
    ("data.total_tokens", Field::TotalTokens),
    ("data.latency_ms", Field::LatencyMs),
    ("data.cost", Field::Cost),
    ("data.status", Field::Status),
    ("data.finish_reason", Field::FinishReason),
    ("data.error", Field::Error),
    ("metadata.user_id", Field::UserId),
    ("metadata.session_id", Field::SessionId),
    ("metadata.ip", Field::Ip),
    ("metadata.role", Field::Role),
    ("metadata.tool_call_count", Field::ToolCallCount),
    ("is_error", Field::IsError),
];

impl Field {
    fn resolve(name: &str, at: usize) -> Result<Field, ParseError> {
        if let Some((_, f)) = KNOWN.iter().find(|(n, _)| *n == name) {
            return Ok(f.clone());
        }
        match name.strip_prefix("metadata.") {
            Some(key) => Ok(Field::Meta(key.to_owned())),
            None => Err(error(at, format!("unknown field `{name}`; known: {}, metadata.<key>", FIELDS.join(", ")))),
        }
    }

    fn ty(&self) -> Ty {
        match self {
            Field::PromptTokens
            | Field::CompletionTokens
            | Field::TotalTokens
            | Field::LatencyMs
            | Field::Cost
            | Field::ToolCallCount => Ty::Num,
            Field::IsError => Ty::Bool,
            Field::Meta(_) => Ty::Any,
            _ => Ty::Str,
        }
    }

    /// The same as [`TelemetryEvent::field`] with this field's path.
    fn get<'e>(&self, e: &'e TelemetryEvent) -> Option<FieldValue<'e>> {
        use FieldValue::{Bool, Num, Str};
        let (d, m) = (&e.data, &e.metadata);
        Some(match self {
            Field::EventId => Str(&e.event_id),
            Field::EventType => Str(e.event_type.as_str()),
            Field::ApplicationId => Str(&e.application_id),
            Field::TenantId => Str(e.tenant_id.as_deref()?),
            Field::SourceService => Str(e.source.as_ref()?.service.as_deref()?),
            Field::SourceHost => Str(e.source.as_ref()?.host.as_deref()?),
            Field::Model => Str(d.model.as_deref()?),
            Field::Prompt => Str(d.prompt.as_deref()?),
            Field::Completion => Str(d.completion.as_deref()?),
            Field::PromptTokens => Num(d.prompt_tokens? as f64),
            Field::CompletionTokens => Num(d.completion_tokens? as f64),
            Field::TotalTokens => Num(e.total_tokens()? as f64),
            Field::LatencyMs => Num(d.latency_ms?),
            Field::Cost => Num(d.cost?),
            Field::Status => Str(d.status.as_deref()?),
            Field::FinishReason => Str(d.finish_reason.as_deref()?),
            Field::Error => Str(d.error.as_deref()?),
            Field::UserId => Str(m.user_id.as_deref()?),
            Field::SessionId => Str(m.session_id.as_deref()?),
            Field::Ip => Str(m.ip.as_deref()?),
            Field::Role => Str(m.role.as_deref()?),
            Field::ToolCallCount => Num(m.tool_calls.as_ref().map_or(0, Vec::len) as f64),
            Field::IsError => Bool(e.is_error()),
            Field::Meta(key) => match m.extra.get(key)? {
                serde_json::Value::String(s) => Str(s),
                serde_json::Value::Number(n) => Num(n.as_f64()?),
                serde_json::Value::Bool(b) => Bool(*b),
                _ => return None,
            },
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Meta(key) => write!(f, "metadata.{key}"),
            known => f.write_str(KNOWN.iter().find(|(_, k)| k == known).map_or("?", |(n, _)| n)),
        }
    }
}

/// A static type; `Any` is a metadata extra, known only at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Num,
    Str,
    Bool,
    Any,
}

impl Ty {
    fn fits(self, other: Ty) -> bool {
        self == other || self == Ty::Any || other == Ty::Any
    }

    fn name(self) -> &'static str {
        match self {
            Ty::Num => "a number",
            Ty::Str => "a string",
            Ty::Bool => "a boolean",
            Ty::Any => "a metadata value",
        }
    }
}

// ---- lexer ----

#[derive(Debug, Clone, PartialEq)]
enum Tok<'s> {
    Num(f64),
    Str(String),
    Dur(Millis),
    Word(&'s str),
    Sym(&'static str),
    End,
}

const SYMS: [&str; 18] =
    ["||", "&&", "==", "!=", ">=", "<=", ">", "<", "!", "+", "-", "*", "/", "(", ")", "[", "]", ","];

fn skip(b: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while b.get(i).is_some_and(|&c| f(c)) {
        i += 1;
    }
    i
}

fn lex(src: &str) -> Result<Vec<(Tok<'_>, usize)>, ParseError> {
    let b = src.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let at = i;
        let tok = if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c.is_ascii_digit() {
            i = skip(b, i, |c| c.is_ascii_digit());
            if b.get(i) == Some(&b'.') {
                let end = skip(b, i + 1, |c| c.is_ascii_digit());
                if end == i + 1 {
                    return Err(error(i, "expected digits after `.`"));
                }
                i = end;
            }
            if matches!(b.get(i), Some(b'e' | b'E')) {
                let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
                let end = skip(b, i + 1 + sign, |c| c.is_ascii_digit());
                if end > i + 1 + sign {
                    i = end;
                }
            }
            if b.get(i).is_some_and(|&c| word(c)) {
                i = skip(b, i, word);
                Tok::Dur(parse_duration(&src[at..i]).map_err(|m| error(at, format!("bad window: {m}")))?)
            } else {
                match src[at..i].parse::<f64>() {
                    Ok(x) if x.is_finite() => Tok::Num(x),
                    _ => return Err(error(at, "number out of range")),
                }
            }
        } else if c == b'"' {
            let mut s = String::new();
            i += 1;
            loop {
                let rest = &src[i..];
                let Some(j) = rest.find(['"', '\\']) else { return Err(error(at, "unterminated string")) };
                s.push_str(&rest[..j]);
                i += j;
                if b[i] == b'"' {
                    i += 1;
                    break;
                }
                match b.get(i + 1) {
                    Some(&c @ (b'"' | b'\\')) => s.push(char::from(c)),
                    _ => return Err(error(i, r#"unknown escape: only \" and \\ are allowed"#)),
                }
                i += 2;
            }
            Tok::Str(s)
        } else if c.is_ascii_alphabetic() || c == b'_' {
            i = skip(b, i, word);
            while b.get(i) == Some(&b'.') {
                if !b.get(i + 1).is_some_and(|&c| word(c)) {
                    return Err(error(i, "expected a name after `.`"));
                }
                i = skip(b, i + 1, word);
            }
            Tok::Word(&src[at..i])
        } else if let Some(sym) = SYMS.iter().find(|s| src[i..].starts_with(**s)) {
            i += sym.len();
            Tok::Sym(sym)
        } else {
            let ch = src[i..].chars().next().unwrap_or_default();
            return Err(error(at, format!("unexpected character `{ch}`")));
        };
        toks.push((tok, at));
    }
    toks.push((Tok::End, src.len()));
    Ok(toks)
}

fn describe(t: &Tok<'_>) -> String {
    match t {
        Tok::Num(_) => "a number".into(),
        Tok::Str(_) => "a string".into(),
        Tok::Dur(_) => "a window".into(),
        Tok::Word(w) => format!("`{w}`"),
        Tok::Sym(s) => format!("`{s}`"),
        Tok::End => "the end".into(),
    }
}

// ---- parser ----

/// Parses and type-checks an expression (grammar and types in the module docs).
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser { toks: lex(src)?, pos: 0, nesting: 0 };
    let x = p.or()?;
    if *p.peek() != Tok::End {
        return Err(error(p.at(), format!("unexpected {}", describe(p.peek()))));
    }
    if !x.ty.fits(Ty::Bool) {
        return Err(error(x.at, format!("the expression must be a boolean (a comparison), not {}", x.ty.name())));
    }
    Ok(Expr(x.node))
}

struct Parser<'s> {
    /// Ends with `Tok::End`.
    toks: Vec<(Tok<'s>, usize)>,
    pos: usize,
    nesting: usize,
}

/// A parsed subexpression: its type, where it starts, and how deep it is.
struct Typed {
    node: Node,
    ty: Ty,
    at: usize,
    depth: usize,
}

fn typed(node: Node, ty: Ty, at: usize, child_depth: usize) -> Result<Typed, ParseError> {
    if child_depth >= MAX_DEPTH {
        return Err(error(at, format!("expression nests too deeply (more than {MAX_DEPTH} levels)")));
    }
    Ok(Typed { node, ty, at, depth: child_depth + 1 })
}

fn want(x: &Typed, ty: Ty, what: &str) -> Result<(), ParseError> {
    if x.ty.fits(ty) { Ok(()) } else { Err(error(x.at, format!("{what} needs {}, found {}", ty.name(), x.ty.name()))) }
}

fn binary(op: Op, l: Typed, r: Typed) -> Result<Typed, ParseError> {
    let what = format!("`{}`", op.sym());
    let (operands, ty) = match op {
        Op::Or | Op::And => (Some(Ty::Bool), Ty::Bool),
        Op::Eq | Op::Ne => (None, Ty::Bool),
        Op::Gt | Op::Ge | Op::Lt | Op::Le => (Some(Ty::Num), Ty::Bool),
        Op::Add | Op::Sub | Op::Mul | Op::Div => (Some(Ty::Num), Ty::Num),
    };
    match operands {
        Some(operands) => {
            want(&l, operands, &what)?;
            want(&r, operands, &what)?;
        }
        None if !l.ty.fits(r.ty) => {
            return Err(error(r.at, format!("{what} compares {} with {}", l.ty.name(), r.ty.name())));
        }
        None => {}
    }
    typed(Node::Bin(op, Box::new(l.node), Box::new(r.node)), ty, l.at, l.depth.max(r.depth))
}

impl<'s> Parser<'s> {
    fn peek(&self) -> &Tok<'s> {
        &self.toks[self.pos].0
    }

    fn at(&self) -> usize {
        self.toks[self.pos].1
    }

    fn next(&mut self) -> (Tok<'s>, usize) {
        let t = self.toks[self.pos].clone();
        self.pos = (self.pos + 1).min(self.toks.len() - 1);
        t
    }

    fn eat(&mut self, sym: &str) -> bool {
        let found = matches!(self.peek(), Tok::Sym(s) if *s == sym);
        if found {
            self.next();
        }
        found
    }

    fn expect(&mut self, sym: &str) -> Result<(), ParseError> {
        if self.eat(sym) {
            Ok(())
        } else {
            Err(error(self.at(), format!("expected `{sym}`, found {}", describe(self.peek()))))
        }
    }

    fn op(&mut self, ops: &[Op]) -> Option<Op> {
        let op = ops.iter().copied().find(|op| matches!(self.peek(), Tok::Sym(s) if *s == op.sym()))?;
        self.next();
        Some(op)
    }

    /// Guards the parser's own recursion.
    fn enter(&mut self) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(error(self.at(), format!("expression nests too deeply (more than {MAX_DEPTH} levels)")));
        }
        Ok(())
    }

    fn chain(&mut self, ops: &[Op], operand: fn(&mut Self) -> Result<Typed, ParseError>) -> Result<Typed, ParseError> {
        let mut l = operand(self)?;
        while let Some(op) = self.op(ops) {
            let r = operand(self)?;
            l = binary(op, l, r)?;
        }
        Ok(l)
    }

    fn or(&mut self) -> Result<Typed, ParseError> {
        self.enter()?;
        let x = self.chain(&[Op::Or], Self::and)?;
        self.nesting -= 1;
        Ok(x)
    }

    fn and(&mut self) -> Result<Typed, ParseError> {
        self.chain(&[Op::And], Self::not)
    }

    fn not(&mut self) -> Result<Typed, ParseError> {
        let at = self.at();
        if !self.eat("!") {
            return self.cmp();
        }
        self.enter()?;
        let x = self.not()?;
        self.nesting -= 1;
        want(&x, Ty::Bool, "`!`")?;
        typed(Node::Not(Box::new(x.node)), Ty::Bool, at, x.depth)
    }

    fn cmp(&mut self) -> Result<Typed, ParseError> {
        let l = self.sum()?;
        let x = if let Some(op) = self.op(&CMP) {
            let r = self.sum()?;
            binary(op, l, r)?
        } else if *self.peek() == Tok::Word("in") {
            self.next();
            self.list(l)?
        } else {
            return Ok(l);
        };
        if matches!(self.peek(), Tok::Sym(s) if CMP.iter().any(|op| op.sym() == *s)) || *self.peek() == Tok::Word("in")
        {
            return Err(error(self.at(), "comparisons don't chain; use && or parentheses"));
        }
        Ok(x)
    }

    fn list(&mut self, l: Typed) -> Result<Typed, ParseError> {
        self.expect("[")?;
        if *self.peek() == Tok::Sym("]") {
            return Err(error(self.at(), "`in` needs at least one item"));
        }
        let (mut ty, mut items) = (l.ty, Vec::new());
        loop {
            let item = self.unary()?;
            let not_literal = || error(item.at, "list items must be literals (numbers, strings, true, false)");
            let node = match item.node {
                Node::Neg(x) => match *x {
                    Node::Num(v) => Node::Num(-v),
                    _ => return Err(not_literal()),
                },
                n @ (Node::Num(_) | Node::Str(_) | Node::Bool(_)) => n,
                _ => return Err(not_literal()),
            };
            if !ty.fits(item.ty) {
                return Err(error(item.at, format!("`in` compares {} with {}", ty.name(), item.ty.name())));
            }
            if ty == Ty::Any {
                ty = item.ty;
            }
            items.push(node);
            if !self.eat(",") {
                break;
            }
        }
        self.expect("]")?;
        typed(Node::In(Box::new(l.node), items), Ty::Bool, l.at, l.depth)
    }

    fn sum(&mut self) -> Result<Typed, ParseError> {
        self.chain(&[Op::Add, Op::Sub], Self::product)
    }

    fn product(&mut self) -> Result<Typed, ParseError> {
        self.chain(&[Op::Mul, Op::Div], Self::unary)
    }

    fn unary(&mut self) -> Result<Typed, ParseError> {
        let at = self.at();
        if !self.eat("-") {
            return self.atom();
        }
        self.enter()?;
        let x = self.unary()?;
        self.nesting -= 1;
        want(&x, Ty::Num, "`-`")?;
        typed(Node::Neg(Box::new(x.node)), Ty::Num, at, x.depth)
    }

    fn atom(&mut self) -> Result<Typed, ParseError> {
        let (tok, at) = self.next();
        let leaf = |node, ty| Ok(Typed { node, ty, at, depth: 1 });
        match tok {
            Tok::Num(x) => leaf(Node::Num(x), Ty::Num),
            Tok::Str(s) => leaf(Node::Str(s), Ty::Str),
            Tok::Word("true") => leaf(Node::Bool(true), Ty::Bool),
            Tok::Word("false") => leaf(Node::Bool(false), Ty::Bool),
            Tok::Word(name) if *self.peek() == Tok::Sym("(") => self.call(name, at),
            Tok::Word(name) => {
                let f = Field::resolve(name, at)?;
                let ty = f.ty();
                leaf(Node::Field(f), ty)
            }
            Tok::Sym("(") => {
                let x = self.or()?;
                self.expect(")")?;
                Ok(Typed { at, ..x })
            }
            Tok::Dur(_) => Err(error(at, "a window like `5m` only goes in an aggregate such as count(5m)")),
            tok => Err(error(at, format!("expected a value, found {}", describe(&tok)))),
        }
    }

    fn call(&mut self, name: &str, at: usize) -> Result<Typed, ParseError> {
        self.next(); // `(`
        let what = format!("`{name}`");
        let (node, ty, depth) = match name {
            "contains" => {
                let (h, _, n) = (self.or()?, self.expect(",")?, self.or()?);
                want(&h, Ty::Str, &what)?;
                want(&n, Ty::Str, &what)?;
                (Node::Contains(Box::new(h.node), Box::new(n.node)), Ty::Bool, h.depth.max(n.depth))
            }
            "lower" => {
                let x = self.or()?;
                want(&x, Ty::Str, &what)?;
                (Node::Lower(Box::new(x.node)), Ty::Str, x.depth)
            }
            _ => {
                let Some(&(_, func)) = Func::ALL.iter().find(|(n, _)| *n == name) else {
                    return Err(error(
                        at,
                        format!(
                            "unknown function {what}; known: contains, lower, count, rate, errors, sum, avg, max, min"
                        ),
                    ));
                };
                let field = if matches!(func, Func::Count | Func::Rate | Func::Errors) {
                    None
                } else {
                    let (tok, at) = self.next();
                    let Tok::Word(path) = tok else {
                        return Err(error(at, format!("{what} needs a field first, found {}", describe(&tok))));
                    };
                    let f = Field::resolve(path, at)?;
                    if !f.ty().fits(Ty::Num) {
                        return Err(error(at, format!("{what} needs a number, `{f}` is {}", f.ty().name())));
                    }
                    self.expect(",")?;
                    Some(f)
                };
                let (tok, at) = self.next();
                let Tok::Dur(window) = tok else {
                    return Err(error(at, format!("{what} needs a window like 5m, found {}", describe(&tok))));
                };
                (Node::Agg(Aggregate { func, field, window }), Ty::Num, 0)
            }
        };
        self.expect(")")?;
        typed(node, ty, at, depth)
    }
}

// ---- rendering ----

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(0, f)
    }
}

impl Node {
    fn prec(&self) -> u8 {
        match self {
            Node::Bin(op, ..) => op.prec(),
            Node::In(..) => 4,
            Node::Not(_) => 3,
            Node::Neg(_) => 7,
            _ => 8,
        }
    }

    /// Writes the node, in parentheses when it binds looser than `min`.
    fn write(&self, min: u8, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prec() < min {
            f.write_str("(")?;
            self.write(0, f)?;
            return f.write_str(")");
        }
        match self {
            Node::Num(x) => write!(f, "{x}"),
            Node::Str(s) => write!(f, "\"{}\"", s.replace('\\', r"\\").replace('"', r#"\""#)),
            Node::Bool(b) => write!(f, "{b}"),
            Node::Field(x) => write!(f, "{x}"),
            Node::Not(x) => {
                f.write_str("!")?;
                x.write(3, f)
            }
            Node::Neg(x) => {
                f.write_str("-")?;
                x.write(7, f)
            }
            Node::Bin(op, l, r) => {
                // Comparisons don't chain; the others are left-associative.
                let p = op.prec();
                let (lmin, rmin) = if p == 4 { (5, 5) } else { (p, p + 1) };
                l.write(lmin, f)?;
                write!(f, " {} ", op.sym())?;
                r.write(rmin, f)
            }
            Node::In(x, items) => {
                x.write(5, f)?;
                f.write_str(" in [")?;
                for (i, item) in items.iter().enumerate() {
                    f.write_str(if i == 0 { "" } else { ", " })?;
                    item.write(0, f)?;
                }
                f.write_str("]")
            }
            Node::Contains(h, n) => {
                f.write_str("contains(")?;
                h.write(0, f)?;
                f.write_str(", ")?;
                n.write(0, f)?;
                f.write_str(")")
            }
            Node::Lower(x) => {
                f.write_str("lower(")?;
                x.write(0, f)?;
                f.write_str(")")
            }
            Node::Agg(a) => {
                write!(f, "{}(", a.func.name())?;
                if let Some(field) = &a.field {
                    write!(f, "{field}, ")?;
                }
                write!(f, "{})", format_duration(a.window))
            }
        }
    }

    /// Collects the distinct aggregates.
    fn aggregates(&self, out: &mut Vec<Aggregate>) {
        match self {
            Node::Agg(a) if !out.contains(a) => out.push(a.clone()),
            Node::Not(x) | Node::Neg(x) | Node::Lower(x) | Node::In(x, _) => x.aggregates(out),
            Node::Bin(_, l, r) | Node::Contains(l, r) => {
                l.aggregates(out);
                r.aggregates(out);
            }
            _ => {}
        }
    }
}

// ---- evaluation ----

/// A value at run time; `Missing` is an absent field, a wrong-typed extra, or a failed computation.
#[derive(Debug)]
enum Val<'a> {
    Num(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    Missing,
}

impl Val<'_> {
    fn num(&self) -> Option<f64> {
        if let Val::Num(x) = self { Some(*x) } else { None }
    }

    fn truth(&self) -> Option<bool> {
        if let Val::Bool(b) = self { Some(*b) } else { None }
    }
}

/// What an expression is evaluated against: the event, and this event's aggregate values.
struct Ctx<'a> {
    event: &'a TelemetryEvent,
    aggs: &'a [Aggregate],
    values: &'a [Option<f64>],
}

fn eval<'a>(n: &'a Node, cx: &Ctx<'a>) -> Val<'a> {
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

// ---- windows ----

/// What a window collects.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Events,
    Errors,
    Field(Field),
}

/// One distinct `(source, window)` of the expression.
#[derive(Debug)]
struct Spec {
    source: Source,
    window: Millis,
    /// `window / WINDOW_BUCKETS`, rounded up.
    bucket: Millis,
    max: bool,
    min: bool,
}

/// One entity's window: buckets `(index, events, sum)` oldest first, their
/// totals, and monotonic queues `(index, value)` for max and (negated) min.
#[derive(Debug, Default)]
struct Window {
    buckets: VecDeque<(i64, u64, f64)>,
    n: u64,
    sum: f64,
    max: VecDeque<(i64, f64)>,
    min: VecDeque<(i64, f64)>,
}

/// Adds a value to a queue whose values decrease from front to back.
fn push_max(q: &mut VecDeque<(i64, f64)>, k: i64, v: f64) {
    while q.back().is_some_and(|b| b.1 <= v) {
        q.pop_back();
    }
    if q.back().is_none_or(|b| b.0 < k) {
        q.push_back((k, v)); // else a larger value in the same bucket stands for it
    }
}

impl Window {
    /// Adds the value (if any) seen at `t`, never earlier than the last call's `t`, and drops what fell out.
    fn add(&mut self, spec: &Spec, t: Millis, v: Option<f64>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            let k = t.div_euclid(spec.bucket);
            match self.buckets.back_mut() {
                Some(b) if b.0 >= k => (b.1, b.2) = (b.1 + 1, b.2 + v),
                _ => self.buckets.push_back((k, 1, v)),
            }
            (self.n, self.sum) = (self.n + 1, self.sum + v);
            if spec.max {
                push_max(&mut self.max, k, v);
            }
            if spec.min {
                push_max(&mut self.min, k, -v);
            }
        }
        let oldest = t.saturating_sub(spec.window).div_euclid(spec.bucket); // this bucket and older are out
        while let Some(&(k, n, sum)) = self.buckets.front()
            && k <= oldest
        {
            self.buckets.pop_front();
            (self.n, self.sum) = (self.n - n, self.sum - sum);
        }
        if self.buckets.is_empty() {
            self.sum = 0.0; // no rounding residue
        }
        for q in [&mut self.max, &mut self.min] {
            while q.front().is_some_and(|f| f.0 <= oldest) {
                q.pop_front();
            }
        }
    }

    fn value(&self, func: Func, spec: &Spec) -> Option<f64> {
        let n = self.n as f64;
        match func {
            Func::Count | Func::Errors => Some(n),
            Func::Rate => Some(n * 60_000.0 / spec.window as f64),
            Func::Sum => Some(self.sum),
            Func::Avg => (self.n > 0).then(|| self.sum / n),
            Func::Max => self.max.front().map(|m| m.1),
            Func::Min => self.min.front().map(|m| -m.1),
        }
    }
}

#[derive(Debug)]
struct EntityState {
    /// Checked on every lookup: the map is keyed by a hash of it.
    id: String,
    newest: Millis,
    windows: Vec<Window>,
}

// ---- the detector ----

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
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::sample::select;
    use serde_json::json;

    use super::*;
    use crate::event::EventType;

    /// A time divisible by every window the tests use, so bucket edges are exact.
    const T0: Millis = 1_800_000_000_000;

    fn config(expression: &str) -> RuleConfig {
        RuleConfig {
            expression: expression.into(),
            group_by: EntityKind::Application,
            title: None,
            max_entities: 10_000,
        }
    }

    fn rule(expression: &str) -> RuleDetector {
        RuleDetector::new("r1", Severity::Warning, config(expression)).unwrap()
    }

    fn ev(i: usize, ms: Millis) -> TelemetryEvent {
        crate::event::tests::event(&format!("e{i}"), ms)
    }

    /// The findings of each event.
    fn run(d: &mut RuleDetector, events: &[TelemetryEvent]) -> Vec<Vec<Finding>> {
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
    fn fires(d: &mut RuleDetector, events: &[TelemetryEvent]) -> Vec<usize> {
        run(d, events).iter().enumerate().filter(|(_, f)| !f.is_empty()).map(|(i, _)| i).collect()
    }

    fn matches(expression: &str, e: &TelemetryEvent) -> bool {
        fires(&mut rule(expression), std::slice::from_ref(e)) == [0]
    }

    #[test]
    fn parse_accepts_the_language_and_renders_it_canonically() {
        let cases = [
            (r#"data.cost > 1.0 && data.model == "gpt-4o""#, r#"data.cost > 1 && data.model == "gpt-4o""#),
            ("count(5m) > 100", "count(5m) > 100"),
            ("sum(data.cost, 1h) > 1.0", "sum(data.cost, 1h) > 1"),
            ("avg(data.latency_ms,300s)>2e3", "avg(data.latency_ms, 5m) > 2000"),
            (
                "max(data.latency_ms, 5m) >= 1e4 || min(data.cost, 1d) < 0.001",
                "max(data.latency_ms, 5m) >= 10000 || min(data.cost, 1d) < 0.001",
            ),
            ("rate(500ms) > 10 && errors(5m) >= 3", "rate(500ms) > 10 && errors(5m) >= 3"),
            (r#"data.model in ["gpt-4o", "o1"]"#, r#"data.model in ["gpt-4o", "o1"]"#),
            ("data.total_tokens in [-1, 2.5]", "data.total_tokens in [-1, 2.5]"),
            (r#"contains(data.prompt, "ignore")"#, r#"contains(data.prompt, "ignore")"#),
            (r#"lower(data.model) == "gpt-4o""#, r#"lower(data.model) == "gpt-4o""#),
            ("!(data.cost > 1)", "!data.cost > 1"),
            ("!!is_error", "!!is_error"),
            ("metadata.internal == \"true\" && metadata.flag", "metadata.internal == \"true\" && metadata.flag"),
            ("metadata.a.b > 1", "metadata.a.b > 1"),
            ("-data.cost < -1", "-data.cost < -1"),
            (
                "(data.prompt_tokens + data.completion_tokens) * 2 / 3 >= 1e3",
                "(data.prompt_tokens + data.completion_tokens) * 2 / 3 >= 1000",
            ),
            ("1 - (2 - 3) > 1 - 2 - 3", "1 - (2 - 3) > 1 - 2 - 3"),
            (r#""a\"b\\c" == data.prompt"#, r#""a\"b\\c" == data.prompt"#),
            ("true", "true"),
            ("(is_error == false) == true", "(is_error == false) == true"),
            (
                "event_type == \"llm.error\" || metadata.tool_call_count > 2",
                "event_type == \"llm.error\" || metadata.tool_call_count > 2",
            ),
        ];
        for (src, canonical) in cases {
            let e = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(e.to_string(), canonical, "{src}");
            assert_eq!(parse(canonical), Ok(e), "{src}");
        }
        let tree = parse("is_error || is_error && !is_error").unwrap();
        assert_eq!(tree.to_string(), "is_error || is_error && !is_error");
        assert!(matches!(tree.0, Node::Bin(Op::Or, _, _)), "&& binds tighter than ||");
    }

    #[test]
    fn parse_rejects_with_the_offset_of_the_problem() {
        let cases = [
            ("data.cots > 1", 0, "unknown field `data.cots`"),
            (r#"data.cost > 1 && data.mdl == "x""#, 17, "unknown field `data.mdl`"),
            ("data.cost > 1 $", 14, "unexpected character `$`"),
            ("data.cost = 1", 10, "unexpected character `=`"),
            ("(data.cost > 1", 14, "expected `)`, found the end"),
            ("data.cost > 1)", 13, "unexpected `)`"),
            ("((data.cost > 1) && is_error", 28, "expected `)`"),
            (r#""a" > 1"#, 0, "`>` needs a number, found a string"),
            ("data.model > 3", 0, "`>` needs a number, found a string"),
            (r#"count(5m) == "x""#, 13, "`==` compares a number with a string"),
            ("!data.cost", 1, "`!` needs a boolean, found a number"),
            ("data.cost", 0, "must be a boolean"),
            ("data.cost + 1", 0, "must be a boolean"),
            ("lower(data.model)", 0, "must be a boolean"),
            ("", 0, "expected a value, found the end"),
            ("data.cost >", 11, "expected a value"),
            ("data.cost > 1 &&", 16, "expected a value"),
            ("count(5) > 1", 6, "`count` needs a window like 5m, found a number"),
            ("count(1x) > 1", 6, "bad window"),
            ("sum(data.model, 5m) > 1", 4, "`sum` needs a number, `data.model` is a string"),
            ("sum(5m) > 1", 4, "`sum` needs a field first"),
            ("avg(data.cost 5m) > 1", 14, "expected `,`"),
            ("foo(1) > 1", 0, "unknown function `foo`"),
            ("data.cost > 5m", 12, "only goes in an aggregate"),
            ("1 < 2 < 3", 6, "comparisons don't chain"),
            ("data.model in []", 15, "at least one item"),
            ("data.model in [1]", 15, "`in` compares a string with a number"),
            ("metadata.x in [1, \"a\"]", 18, "`in` compares a number with a string"),
            ("data.model in [data.prompt]", 15, "must be literals"),
            ("\"abc", 0, "unterminated string"),
            (r#""a\n" == data.model"#, 2, "unknown escape"),
            ("data.cost > 1e999", 12, "out of range"),
            ("data.cost > 1.", 13, "expected digits"),
            ("data. > 1", 4, "expected a name after `.`"),
            ("data.cost > 1 && 2", 17, "`&&` needs a boolean, found a number"),
            (r#"contains(data.cost, "x")"#, 9, "`contains` needs a string"),
            ("lower(data.model) > 1", 0, "`>` needs a number"),
            ("-data.model == 1", 1, "`-` needs a number"),
            ("is_error == \"yes\"", 12, "compares a boolean with a string"),
            ("in", 0, "unknown field `in`"),
        ];
        for (src, offset, message) in cases {
            let e = parse(src).expect_err(src);
            assert!(e.message.contains(message), "{src}: {e}");
            assert_eq!(e.offset, offset, "{src}: {e}");
        }
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
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = [
            format!("{}is_error{}", "(".repeat(100_000), ")".repeat(100_000)),
            format!("{}is_error", "!".repeat(100_000)),
            format!("{}1 > 0", "-".repeat(100_000)),
            format!("{}1 > 0", "1 + ".repeat(100_000)),
            format!("{}true", "true && ".repeat(100_000)),
            format!("{}\"a\"{} == \"a\"", "lower(".repeat(100_000), ")".repeat(100_000)),
        ];
        for src in deep {
            let e = parse(&src).unwrap_err();
            assert!(e.message.contains("nests too deeply"), "{}: {e}", &src[..20]);
        }
        let wide = vec!["is_error"; 90].join(" || ");
        assert!(parse(&wide).is_ok());
    }

    #[test]
    fn field_accessors_agree_with_telemetry_event_field() {
        assert_eq!(KNOWN.iter().map(|(n, _)| *n).collect::<Vec<_>>(), FIELDS);
        let full: TelemetryEvent = serde_json::from_value(json!({
            "event_id": "e1", "timestamp": "2026-11-26T10:00:00Z", "event_type": "llm.error",
            "application_id": "app", "tenant_id": "t", "source": {"service": "s", "host": "h"},
            "data": {"model": "m", "prompt": "p", "completion": "c", "prompt_tokens": 1, "completion_tokens": 2,
                     "total_tokens": 3, "latency_ms": 4.5, "cost": 0.5, "status": "error", "finish_reason": "stop",
                     "error": "boom"},
            "metadata": {"user_id": "u", "session_id": "s", "ip": "1.2.3.4", "role": "r", "tool_calls": ["x"],
                         "internal": "yes", "score": 7, "flag": true, "nested": {"a": 1}}
        }))
        .unwrap();
        let bare: TelemetryEvent = serde_json::from_value(json!({
            "event_id": "e2", "timestamp": "2026-11-26T10:00:00Z", "event_type": "llm.request", "application_id": "app"
        }))
        .unwrap();
        for e in [&full, &bare] {
            for (name, f) in KNOWN {
                assert_eq!(f.get(e), e.field(name), "{name}");
                let ty = match f.get(e) {
                    Some(FieldValue::Num(_)) => Ty::Num,
                    Some(FieldValue::Str(_)) => Ty::Str,
                    Some(FieldValue::Bool(_)) => Ty::Bool,
                    None => f.ty(),
                };
                assert_eq!(f.ty(), ty, "{name}");
            }
            for key in ["internal", "score", "flag", "nested", "absent"] {
                assert_eq!(Field::Meta(key.into()).get(e), e.field(&format!("metadata.{key}")), "{key}");
            }
        }
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

    #[test]
    fn count_fires_on_the_sixth_event_within_a_minute() {
        let mut d = rule("count(1m) > 5");
        let events: Vec<_> = (0..8).map(|i| ev(i, T0 + i as Millis * 5_000)).collect();
        assert_eq!(fires(&mut d, &events), [5, 6, 7]);
        // The window is (t - 1m, t]: an event exactly a minute old is out.
        let at = |s: &[Millis]| s.iter().enumerate().map(|(i, ms)| ev(i, T0 + ms)).collect::<Vec<_>>();
        assert!(fires(&mut rule("count(1m) > 5"), &at(&[0, 10_000, 20_000, 30_000, 40_000, 60_000])).is_empty());
        assert_eq!(fires(&mut rule("count(1m) > 5"), &at(&[0, 10_000, 20_000, 30_000, 40_000, 59_999])), [5]);
    }

    #[test]
    fn count_does_not_fire_for_events_spread_over_ten_minutes() {
        let mut d = rule("count(1m) > 5");
        let events: Vec<_> = (0..20).map(|i| ev(i, T0 + i as Millis * 30_000)).collect();
        assert!(fires(&mut d, &events).is_empty());
    }

    #[test]
    fn sum_of_cost_over_an_hour() {
        let mut d = rule("sum(data.cost, 1h) > 1.0");
        let mut events: Vec<_> = (0..6).map(|i| ev(i, T0 + i as Millis * 600_000)).collect();
        events.push(ev(6, T0 + 3 * 3_600_000));
        for e in &mut events {
            e.data.cost = Some(0.25);
        }
        events[2].data.cost = None; // contributes nothing
        assert_eq!(fires(&mut d, &events), [5]);
        let findings = run(&mut rule("sum(data.cost, 1h) > 1.0"), &events);
        assert_eq!(findings[5][0].observed, Some(1.25));
    }

    #[test]
    fn errors_in_five_minutes() {
        let mut d = rule("errors(5m) >= 3");
        let mut events: Vec<_> = [0, 60_000, 120_000, 180_000, 240_000, 420_000, 430_000]
            .iter()
            .enumerate()
            .map(|(i, ms)| ev(i, T0 + ms))
            .collect();
        for i in [0, 2, 3, 5, 6] {
            events[i].event_type = EventType::Error;
        }
        events[1].data.status = Some("success".into());
        // Errors at 0, 2m, 3m (fires at 3m), 4m is fine (3 errors still), 7m sees 3m, 7m; 7m10s sees 3m, 7m, 7m10s.
        assert_eq!(fires(&mut d, &events), [3, 4, 6]);
    }

    #[test]
    fn aggregate_values_and_sharing() {
        let latencies = [100.0, 300.0, 200.0];
        let events: Vec<_> = latencies
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut e = ev(i, T0 + i as Millis * 1000);
                e.data.latency_ms = Some(*l);
                e
            })
            .collect();
        for (src, want) in [
            ("avg(data.latency_ms, 5m) > 0", 200.0),
            ("max(data.latency_ms, 5m) > 0", 300.0),
            ("min(data.latency_ms, 5m) > 0", 100.0),
            ("sum(data.latency_ms, 5m) > 0", 600.0),
            ("rate(5m) > 0", 0.6),
            ("count(5m) > 0", 3.0),
            ("count(5m) * 2 - errors(5m) > 0", 6.0),
        ] {
            let findings = run(&mut rule(src), &events);
            assert_eq!(findings[2][0].observed, Some(want), "{src}");
        }
        let d = rule("sum(data.cost, 1h) > avg(data.cost, 1h) && rate(1h) > count(1h) && max(data.cost, 1h) > 0");
        assert_eq!(d.specs.len(), 2);
        assert_eq!(d.aggs.len(), 5);
        assert!(d.specs[0].max && !d.specs[0].min);
        assert!(rule("count(5m) > 1 && count(5m) < 9").aggs.len() == 1);
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
    fn window_memory_is_bounded_and_counts_do_not_saturate() {
        let mut d = rule("count(1h) > 0 && max(data.cost, 1h) > 0 && min(data.cost, 1h) > 0");
        let mut out = Vec::new();
        for i in 0..5_000 {
            let mut e = ev(i, T0 + i as Millis * 1000);
            e.data.cost = Some((5_000 - i) as f64); // decreasing: the worst case for the max queue
            out.clear();
            d.observe(&e, 0, &mut out);
        }
        // (T0 + 1399 s, T0 + 4999 s] holds 3600 events; the trailing edge is rounded to 3.6 s buckets.
        let count = out[0].observed.unwrap();
        assert!((3599.0..=3600.0).contains(&count), "{count}");
        let (_, state) = d.entities.iter_mut().next().unwrap();
        for w in &state.windows {
            assert!(w.buckets.len() <= WINDOW_BUCKETS as usize, "{}", w.buckets.len());
            assert!(w.max.len() <= WINDOW_BUCKETS as usize && w.min.len() <= WINDOW_BUCKETS as usize);
        }
        let mut d = rule("count(1s) > 100000");
        for i in 0..20_000 {
            d.observe(&ev(i, T0 + i as Millis / 4), 0, &mut out);
        }
        let (_, state) = d.entities.iter_mut().next().unwrap();
        assert!(state.windows[0].buckets.len() <= 1_000);
        assert_eq!(state.windows[0].n, 4_000);
    }

    #[test]
    fn late_events_count_at_the_newest_time() {
        let mut d = rule("count(1m) > 5");
        let mut events: Vec<_> = (0..5).map(|i| ev(i, T0 + 10_000)).collect();
        events.push(ev(5, T0 - 3_600_000)); // an hour late: still counted, as of T0 + 10 s
        events.push(ev(6, T0 + 70_000)); // the window moved past all of them
        assert_eq!(fires(&mut d, &events), [5]);
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

    fn bin((op, l, r): (Op, Node, Node)) -> Node {
        Node::Bin(op, Box::new(l), Box::new(r))
    }

    fn meta() -> impl Strategy<Value = Node> {
        "[a-z_][a-z0-9_]{0,6}(\\.[a-z0-9_]{1,4})?"
            .prop_filter("a known field", |k| !FIELDS.contains(&format!("metadata.{k}").as_str()))
            .prop_map(|k| Node::Field(Field::Meta(k)))
    }

    fn num_node() -> impl Strategy<Value = Node> {
        let window = prop_oneof![Just(250), Just(30_000), Just(300_000), Just(3_600_000), 1i64..1_000_000_000];
        let leaf = prop_oneof![
            (0u32..10_000).prop_map(|x| Node::Num(f64::from(x))),
            (0.0f64..1e9).prop_map(Node::Num),
            select(vec![Field::Cost, Field::LatencyMs, Field::TotalTokens, Field::ToolCallCount]).prop_map(Node::Field),
            meta(),
            (select(vec![Func::Count, Func::Rate, Func::Errors]), window.clone())
                .prop_map(|(func, window)| Node::Agg(Aggregate { func, field: None, window })),
            (select(vec![Func::Sum, Func::Avg, Func::Max, Func::Min]), window)
                .prop_map(|(func, window)| Node::Agg(Aggregate { func, field: Some(Field::Cost), window })),
        ];
        leaf.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (select(vec![Op::Add, Op::Sub, Op::Mul, Op::Div]), inner.clone(), inner.clone()).prop_map(bin),
                inner.prop_map(|x| Node::Neg(Box::new(x))),
            ]
        })
    }

    fn str_node() -> impl Strategy<Value = Node> {
        let leaf = prop_oneof![
            any::<String>().prop_map(Node::Str),
            select(vec![Field::Model, Field::Prompt, Field::EventType]).prop_map(Node::Field),
            meta(),
        ];
        leaf.prop_recursive(2, 4, 1, |inner| inner.prop_map(|x| Node::Lower(Box::new(x))))
    }

    fn bool_node() -> impl Strategy<Value = Node> {
        let items = |s: BoxedStrategy<Node>| prop::collection::vec(s, 1..4);
        let leaf = prop_oneof![
            any::<bool>().prop_map(Node::Bool),
            Just(Node::Field(Field::IsError)),
            (select(CMP.to_vec()), num_node(), num_node()).prop_map(bin),
            (select(vec![Op::Eq, Op::Ne]), str_node(), str_node()).prop_map(bin),
            (str_node(), items(any::<String>().prop_map(Node::Str).boxed()))
                .prop_map(|(x, items)| Node::In(Box::new(x), items)),
            (num_node(), items((-1e6f64..1e6).prop_map(Node::Num).boxed()))
                .prop_map(|(x, items)| Node::In(Box::new(x), items)),
            (str_node(), str_node()).prop_map(|(h, n)| Node::Contains(Box::new(h), Box::new(n))),
        ];
        leaf.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (select(vec![Op::And, Op::Or]), inner.clone(), inner.clone()).prop_map(bin),
                inner.prop_map(|x| Node::Not(Box::new(x))),
            ]
        })
    }

    fn token_soup() -> impl Strategy<Value = String> {
        // Space-separated; the trailing space adds the empty token.
        let tokens = concat!(
            r#"data.cost data.model metadata.x is_error count( sum( lower( contains( 5m 1h ) ( [ ] , "#,
            r#"&& || ! > == != <= in 1 0.5 1e3 - * / + "x" " \ true data. é "#,
        );
        let tokens: Vec<&str> = tokens.split(' ').collect();
        (prop::collection::vec(select(tokens), 0..30), select(vec![" ", ""])).prop_map(|(t, sep)| t.join(sep))
    }

    proptest! {
        #[test]
        fn parse_never_panics(src in any::<String>()) {
            if let Err(e) = parse(&src) {
                prop_assert!(e.offset <= src.len());
            }
        }

        #[test]
        fn parse_never_panics_on_token_soup_and_its_rendering_is_stable(src in token_soup()) {
            match parse(&src) {
                Ok(e) => prop_assert_eq!(parse(&e.to_string()), Ok(e)),
                Err(e) => prop_assert!(e.offset <= src.len() && src.is_char_boundary(e.offset)),
            }
        }

        #[test]
        fn parse_of_render_is_the_identity(node in bool_node()) {
            let text = Expr(node.clone()).to_string();
            prop_assert_eq!(parse(&text), Ok(Expr(node)), "{}", text);
        }

        #[test]
        fn windows_agree_with_a_naive_scan(
            steps in prop::collection::vec((0i64..400, prop::option::of(0u8..100)), 1..300),
        ) {
            let spec = Spec { source: Source::Events, window: 1000, bucket: 1, max: true, min: true };
            let (mut w, mut seen, mut t) = (Window::default(), Vec::new(), 0);
            for (dt, v) in steps {
                t += dt;
                let v = v.map(f64::from);
                w.add(&spec, t, v);
                seen.extend(v.map(|v| (t, v)));
                let live: Vec<f64> = seen.iter().filter(|(s, _)| *s > t - 1000).map(|(_, v)| *v).collect();
                prop_assert_eq!(w.value(Func::Count, &spec), Some(live.len() as f64));
                prop_assert_eq!(w.value(Func::Sum, &spec), Some(live.iter().sum()));
                prop_assert_eq!(w.value(Func::Max, &spec), live.iter().copied().reduce(f64::max));
                prop_assert_eq!(w.value(Func::Min, &spec), live.iter().copied().reduce(f64::min));
            }
        }
    }
}
