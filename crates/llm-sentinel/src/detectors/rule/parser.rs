//! The rule language's syntax tree (with fields resolved and types checked
//! as it is built), its recursive-descent parser, and its canonical
//! rendering back to text.

use std::fmt;

use super::lexer::{Tok, describe, lex};
use crate::detector::{Millis, format_duration};
use crate::event::{FIELDS, FieldValue, TelemetryEvent};

/// The deepest an expression may nest.
const MAX_DEPTH: usize = 100;

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

pub(super) fn error(offset: usize, message: impl Into<String>) -> ParseError {
    ParseError { offset, message: message.into() }
}

/// A parsed, type-checked expression. `Display` writes it back in canonical
/// form, which parses to an equal `Expr`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr(pub(super) Node);

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
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
pub(super) enum Op {
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

pub(super) const CMP: [Op; 6] = [Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le];

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
pub(super) struct Aggregate {
    pub(super) func: Func,
    pub(super) field: Option<Field>,
    pub(super) window: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Func {
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
pub(super) enum Field {
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
    pub(super) fn get<'e>(&self, e: &'e TelemetryEvent) -> Option<FieldValue<'e>> {
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

/// Parses and type-checks an expression (grammar and types in the [module docs](super)).
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
    pub(super) fn aggregates(&self, out: &mut Vec<Aggregate>) {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::sample::select;
    use serde_json::json;

    use super::*;

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
    }
}
