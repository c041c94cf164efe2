//! `llmsec logs scan FILE`: reads logs of LLM traffic after the fact and
//! reports what stands out: prompts the engine flags, completions that leak
//! or harm, tool results with planted instructions, and the statistics of
//! the traffic itself (prompts far longer than the rest, one prompt sent
//! many times, users who keep attacking).
//!
//! One JSON value per line, in any of the shapes applications and
//! collectors write:
//! - flat records: `prompt`/`input`/`question`, `completion`/`output`/
//!   `response`/`answer`, `system_prompt`/`system`, `user`/`user_id`;
//! - chat logs: `messages` (`role`, `content` as text or parts), with an
//!   OpenAI `response.choices[].message` or Anthropic `response.content[]`
//!   beside them, or inside `request`;
//! - OTLP JSON (`resourceSpans`, as a collector's file exporter writes it):
//!   GenAI spans' `gen_ai.input.messages`/`gen_ai.output.messages`/
//!   `gen_ai.system_instructions`, the older `gen_ai.prompt.N.*`/
//!   `gen_ai.completion.N.*` and `gen_ai.prompt`/`gen_ai.completion`
//!   attributes, and `gen_ai.*.message`/`gen_ai.choice` span events.
//!
//! User messages go through `analyze_input`, assistant messages through
//! `validate_output` (with the record's system prompt and user prompt, so
//! leakage and complied-with requests are seen), tool messages through
//! `analyze_context` as tool output. A line that is not JSON, or JSON with
//! nothing to scan, is reported by number; the rest are still scanned.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use llm_security::{Analysis, ContextKind, OutputContext, Verdict};
use serde::Serialize;
use serde_json::Value;

use crate::common::{
    EXIT_CLEAN, EXIT_ERROR, EXIT_FLAGGED, EngineArgs, Format, ignore_broken_pipe, printable, truncate_chars,
};
use crate::input::{self, Line, LineReader};

/// `llmsec logs …`.
#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Scan JSON-lines or OTLP-JSON logs of prompts and completions and
    /// report prompt anomalies.
    ///
    /// Exit status: 0 nothing flagged, 1 findings or anomalies, 2 a line
    /// could not be read (the others are still scanned and reported).
    Scan(LogsScanArgs),
}

/// Arguments of `llmsec logs scan`.
#[derive(Debug, Args)]
pub struct LogsScanArgs {
    /// The log file (`-` for stdin): one JSON value per line.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,

    /// Findings listed at most (all are counted).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub top: usize,

    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Runs `llmsec logs`.
pub fn run(cmd: &LogsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LogsCommand::Scan(args) => scan(args),
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "system" | "developer" => Some(Role::System),
            "user" | "human" => Some(Role::User),
            "assistant" | "ai" | "model" | "bot" => Some(Role::Assistant),
            "tool" | "function" | "ipython" => Some(Role::Tool),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// What one log record holds.
#[derive(Debug, Default, PartialEq)]
struct Record {
    messages: Vec<(Role, String)>,
    user: Option<String>,
}

impl Record {
    fn push(&mut self, role: Role, text: String) {
        if !text.trim().is_empty() {
            self.messages.push((role, text));
        }
    }

    fn first(&self, role: Role) -> Option<&str> {
        self.messages.iter().find(|(r, _)| *r == role).map(|(_, t)| t.as_str())
    }
}

/// The text of a message's `content`: a string, or the text parts of an
/// array (`{"type": "text", "text": …}`, `{"content": …}`), joined.
fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<String> = parts
                .iter()
                .filter_map(|p| match p {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => ["text", "content"].iter().find_map(|k| o.get(*k)).and_then(content_text),
                    _ => None,
                })
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

/// Chat messages (`[{role, content}]`, or the GenAI conventions' `[{role,
/// parts}]`) into `rec`.
fn push_messages(rec: &mut Record, messages: &Value, default_role: Role) {
    let Some(list) = messages.as_array() else { return };
    for m in list {
        let role = m.get("role").and_then(Value::as_str).and_then(Role::parse).unwrap_or(default_role);
        let text = m.get("content").and_then(content_text).or_else(|| m.get("parts").and_then(content_text));
        if let Some(t) = text {
            rec.push(role, t);
        }
    }
}

/// A record from a flat or chat-shaped object.
fn from_object(o: &serde_json::Map<String, Value>, rec: &mut Record) {
    let text = |keys: &[&str]| keys.iter().find_map(|k| o.get(*k)).and_then(content_text);
    if let Some(s) = text(&["system_prompt", "system", "instructions"]) {
        rec.push(Role::System, s);
    }
    if let Some(m) = o.get("messages") {
        push_messages(rec, m, Role::User);
    }
    if let Some(p) = text(&["prompt", "input", "question", "query"]) {
        rec.push(Role::User, p);
    }
    if let Some(req) = o.get("request").and_then(Value::as_object) {
        from_object(req, rec);
    }
    match o.get("response") {
        Some(Value::Object(resp)) => {
            for c in resp.get("choices").and_then(Value::as_array).into_iter().flatten() {
                let t = c.get("message").and_then(|m| m.get("content")).or_else(|| c.get("text"));
                if let Some(t) = t.and_then(content_text) {
                    rec.push(Role::Assistant, t);
                }
            }
            if let Some(t) = resp.get("content").and_then(content_text) {
                rec.push(Role::Assistant, t);
            }
        }
        Some(other) => {
            if let Some(t) = content_text(other) {
                rec.push(Role::Assistant, t);
            }
        }
        None => {}
    }
    if let Some(c) = text(&["completion", "output", "answer"]) {
        rec.push(Role::Assistant, c);
    }
    if rec.user.is_none() {
        rec.user = ["user_id", "user", "enduser.id"].iter().find_map(|k| o.get(*k)).and_then(|u| match u {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    }
}

/// An OTLP `AnyValue` as text (`stringValue`, or a JSON rendering).
fn any_value_text(v: &Value) -> Option<String> {
    if let Some(s) = v.get("stringValue").and_then(Value::as_str) {
        return Some(s.to_owned());
    }
    v.get("arrayValue")
        .and_then(|a| a.get("values"))
        .and_then(Value::as_array)
        .map(|vals| vals.iter().filter_map(any_value_text).collect::<Vec<_>>().join("\n"))
}

/// OTLP attributes (`[{key, value}]`) by key.
fn attributes(v: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for kv in v.and_then(Value::as_array).into_iter().flatten() {
        if let (Some(k), Some(val)) = (kv.get("key").and_then(Value::as_str), kv.get("value").and_then(any_value_text))
        {
            out.insert(k.to_owned(), val);
        }
    }
    out
}

/// Messages given as a JSON string (`gen_ai.input.messages`), or as text.
fn push_json_messages(rec: &mut Record, raw: &str, role: Role) {
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Array(_)) => push_messages(rec, &v, role),
        _ => rec.push(role, raw.to_owned()),
    }
}

/// One record per GenAI span of an OTLP-JSON export.
fn from_otlp(v: &Value) -> Vec<Record> {
    let mut out = Vec::new();
    for rs in v.get("resourceSpans").and_then(Value::as_array).into_iter().flatten() {
        for ss in rs.get("scopeSpans").and_then(Value::as_array).into_iter().flatten() {
            for span in ss.get("spans").and_then(Value::as_array).into_iter().flatten() {
                let a = attributes(span.get("attributes"));
                let mut rec = Record::default();
                if let Some(s) = a.get("gen_ai.system_instructions") {
                    push_json_messages(&mut rec, s, Role::System);
                }
                if let Some(s) = a.get("gen_ai.input.messages") {
                    push_json_messages(&mut rec, s, Role::User);
                }
                if let Some(s) = a.get("gen_ai.prompt") {
                    push_json_messages(&mut rec, s, Role::User);
                }
                // Older conventions: gen_ai.prompt.0.role / gen_ai.prompt.0.content.
                for side in ["gen_ai.prompt.", "gen_ai.completion."] {
                    let default = if side == "gen_ai.prompt." { Role::User } else { Role::Assistant };
                    let mut i = 0;
                    while let Some(text) = a.get(&format!("{side}{i}.content")) {
                        let role = a.get(&format!("{side}{i}.role")).and_then(|r| Role::parse(r)).unwrap_or(default);
                        rec.push(role, text.clone());
                        i += 1;
                    }
                }
                for ev in span.get("events").and_then(Value::as_array).into_iter().flatten() {
                    let name = ev.get("name").and_then(Value::as_str).unwrap_or("");
                    let role = match name {
                        "gen_ai.system.message" => Role::System,
                        "gen_ai.user.message" => Role::User,
                        "gen_ai.assistant.message" | "gen_ai.choice" => Role::Assistant,
                        "gen_ai.tool.message" => Role::Tool,
                        _ => continue,
                    };
                    let ea = attributes(ev.get("attributes"));
                    let text = ea.get("content").or_else(|| ea.get("gen_ai.event.content")).cloned();
                    if let Some(t) = text {
                        match serde_json::from_str::<Value>(&t) {
                            Ok(Value::Object(o)) => {
                                let inner =
                                    o.get("content").or_else(|| o.get("message").and_then(|m| m.get("content")));
                                if let Some(t) = inner.and_then(content_text) {
                                    rec.push(role, t);
                                }
                            }
                            _ => rec.push(role, t),
                        }
                    }
                }
                if let Some(s) = a.get("gen_ai.output.messages") {
                    push_json_messages(&mut rec, s, Role::Assistant);
                }
                if let Some(s) = a.get("gen_ai.completion") {
                    push_json_messages(&mut rec, s, Role::Assistant);
                }
                rec.user = a.get("user.id").or_else(|| a.get("enduser.id")).cloned();
                if !rec.messages.is_empty() {
                    out.push(rec);
                }
            }
        }
    }
    out
}

/// The records of one log line.
fn records(v: &Value) -> Vec<Record> {
    if v.get("resourceSpans").is_some() {
        return from_otlp(v);
    }
    let mut rec = Record::default();
    if let Some(o) = v.as_object() {
        from_object(o, &mut rec);
    }
    if rec.messages.is_empty() { Vec::new() } else { vec![rec] }
}

/// One message the engine flagged.
#[derive(Debug, Serialize)]
struct Finding {
    line: usize,
    role: Role,
    user: Option<String>,
    verdict: Verdict,
    confidence: f64,
    /// `type/category` of each threat.
    threats: Vec<String>,
    excerpt: String,
}

/// Something the traffic's own statistics single out.
#[derive(Debug, Serialize)]
struct Anomaly {
    kind: &'static str,
    detail: String,
    lines: Vec<usize>,
}

/// The report of `logs scan`.
#[derive(Debug, Default, Serialize)]
struct Report {
    lines: usize,
    records: usize,
    scanned: BTreeMap<&'static str, usize>,
    flagged: BTreeMap<&'static str, usize>,
    by_category: BTreeMap<String, usize>,
    findings: Vec<Finding>,
    findings_total: usize,
    anomalies: Vec<Anomaly>,
    /// Lines that could not be read, with why.
    errors: Vec<String>,
}

/// Prompts scanned before the length statistics mean anything.
const MIN_PROMPTS_FOR_STATS: usize = 20;
/// A prompt this many standard deviations above the mean length stands out.
const LENGTH_Z: f64 = 4.0;
/// One prompt text sent this many times is probing or automation.
const REPEATS: usize = 5;
/// Flagged prompts from one user that make it a repeat offender.
const OFFENDER: usize = 3;

fn scan(args: &LogsScanArgs) -> anyhow::Result<ExitCode> {
    let engine = args.engine.build()?;
    let limit = input::jsonl_line_limit(engine.config().max_input_bytes);
    let reader = input::open_lines(&args.file)?;
    let mut lines = LineReader::new(reader, limit);
    let mut report = Report::default();
    // (line, length) of every user prompt; prompt text → lines; user → flagged lines.
    let mut prompt_lengths: Vec<(usize, usize)> = Vec::new();
    let mut repeats: HashMap<String, Vec<usize>> = HashMap::new();
    let mut offenders: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    while let Some(line) = lines.next_line().with_context(|| format!("cannot read {}", args.file.display()))? {
        let no = lines.line_no();
        report.lines += 1;
        let bytes = match line {
            Line::Bytes(b) => b,
            Line::TooLong => {
                report.errors.push(format!("line {no}: longer than {limit} bytes, skipped"));
                continue;
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                report.errors.push(format!("line {no}: not JSON ({e})"));
                continue;
            }
        };
        let recs = records(&value);
        if recs.is_empty() {
            report.errors.push(format!("line {no}: no prompt, completion or messages found"));
            continue;
        }
        for rec in recs {
            report.records += 1;
            let system = rec.first(Role::System).map(str::to_owned);
            let mut last_prompt: Option<&str> = None;
            for (role, text) in &rec.messages {
                let analysis = match role {
                    Role::System => continue,
                    Role::User => {
                        prompt_lengths.push((no, text.chars().count()));
                        let key: String = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
                        repeats.entry(key).or_default().push(no);
                        last_prompt = Some(text);
                        engine.analyze_input_sync(text)
                    }
                    Role::Assistant => {
                        let mut cx = OutputContext::new();
                        cx.system_prompt = system.clone();
                        cx.prompt = last_prompt.map(str::to_owned);
                        engine.validate_output_with(text, &cx)
                    }
                    Role::Tool => engine.analyze_context_sync(text, ContextKind::ToolOutput),
                };
                *report.scanned.entry(role.as_str()).or_default() += 1;
                let a = match analysis {
                    Ok(a) => a,
                    Err(e) => {
                        report.errors.push(format!("line {no}: {} message: {e}", role.as_str()));
                        continue;
                    }
                };
                if a.verdict() == Verdict::Allow {
                    continue;
                }
                *report.flagged.entry(role.as_str()).or_default() += 1;
                if *role == Role::User
                    && let Some(u) = &rec.user
                {
                    offenders.entry(u.clone()).or_default().push(no);
                }
                record_finding(&mut report, args.top, no, *role, rec.user.as_deref(), text, &a);
            }
        }
    }
    report.anomalies = anomalies(&prompt_lengths, repeats, offenders);
    let out = io::stdout();
    let mut w = BufWriter::new(out.lock());
    ignore_broken_pipe(match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut w, &report).map_err(io::Error::from).and_then(|()| writeln!(w))
        }
        Format::Human => write_human(&mut w, &report, &args.file.display().to_string()),
    })?;
    ignore_broken_pipe(w.flush())?;
    let code = if !report.errors.is_empty() {
        EXIT_ERROR
    } else if report.findings_total > 0 || !report.anomalies.is_empty() {
        EXIT_FLAGGED
    } else {
        EXIT_CLEAN
    };
    Ok(ExitCode::from(code))
}

fn record_finding(
    report: &mut Report,
    top: usize,
    line: usize,
    role: Role,
    user: Option<&str>,
    text: &str,
    a: &Analysis,
) {
    report.findings_total += 1;
    let mut threats = Vec::new();
    for t in a.threats() {
        let name = format!("{}/{}", t.kind.as_str(), t.category);
        *report.by_category.entry(name.clone()).or_default() += 1;
        if !threats.contains(&name) {
            threats.push(name);
        }
    }
    if report.findings.len() < top {
        report.findings.push(Finding {
            line,
            role,
            user: user.map(str::to_owned),
            verdict: a.verdict(),
            confidence: a.confidence(),
            threats,
            excerpt: truncate_chars(&printable(text), 120),
        });
    }
}

/// The traffic's own outliers.
fn anomalies(
    lengths: &[(usize, usize)],
    repeats: HashMap<String, Vec<usize>>,
    offenders: BTreeMap<String, Vec<usize>>,
) -> Vec<Anomaly> {
    let mut out = Vec::new();
    if lengths.len() >= MIN_PROMPTS_FOR_STATS {
        let n = lengths.len() as f64;
        let mean = lengths.iter().map(|&(_, l)| l as f64).sum::<f64>() / n;
        let var = lengths.iter().map(|&(_, l)| (l as f64 - mean).powi(2)).sum::<f64>() / n;
        let sd = var.sqrt();
        if sd > 0.0 {
            for &(line, len) in lengths {
                let z = (len as f64 - mean) / sd;
                if z >= LENGTH_Z {
                    out.push(Anomaly {
                        kind: "long_prompt",
                        detail: format!("{len} characters, {z:.1} standard deviations above the mean of {mean:.0}"),
                        lines: vec![line],
                    });
                }
            }
        }
    }
    let mut repeated: Vec<(String, Vec<usize>)> = repeats.into_iter().filter(|(_, l)| l.len() >= REPEATS).collect();
    repeated.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.1.cmp(&b.1)));
    for (text, lines) in repeated {
        out.push(Anomaly {
            kind: "repeated_prompt",
            detail: format!("sent {} times: \"{}\"", lines.len(), truncate_chars(&printable(&text), 80)),
            lines,
        });
    }
    for (user, lines) in offenders {
        if lines.len() >= OFFENDER {
            out.push(Anomaly {
                kind: "repeat_offender",
                detail: format!("user {user}: {} flagged prompts", lines.len()),
                lines,
            });
        }
    }
    out
}

fn write_human(w: &mut impl Write, r: &Report, name: &str) -> io::Result<()> {
    writeln!(w, "llmsec logs scan {name}")?;
    let count = |m: &BTreeMap<&str, usize>, k: &str| m.get(k).copied().unwrap_or(0);
    writeln!(w, "  {} lines, {} records", r.lines, r.records)?;
    for role in ["user", "assistant", "tool"] {
        writeln!(
            w,
            "  {role:<9} messages: {:>6} scanned, {:>5} flagged",
            count(&r.scanned, role),
            count(&r.flagged, role)
        )?;
    }
    if !r.by_category.is_empty() {
        writeln!(w, "\nThreats by type/category")?;
        for (k, n) in &r.by_category {
            writeln!(w, "  {k:<40} {n:>6}")?;
        }
    }
    if !r.findings.is_empty() {
        writeln!(w, "\nFindings ({} of {})", r.findings.len(), r.findings_total)?;
        for f in &r.findings {
            let user = f.user.as_deref().map(|u| format!(" user {}", printable(u))).unwrap_or_default();
            writeln!(
                w,
                "  line {:>5} {:<9} {:<8} {:.2}{user}  {}\n             {}",
                f.line,
                f.role.as_str(),
                f.verdict.as_str(),
                f.confidence,
                f.threats.join(", "),
                f.excerpt
            )?;
        }
    }
    if !r.anomalies.is_empty() {
        writeln!(w, "\nAnomalies")?;
        for a in &r.anomalies {
            let lines: Vec<String> = a.lines.iter().take(10).map(usize::to_string).collect();
            let more = if a.lines.len() > 10 { ", …" } else { "" };
            writeln!(w, "  {:<16} {} (lines {}{more})", a.kind, a.detail, lines.join(", "))?;
        }
    }
    if !r.errors.is_empty() {
        writeln!(w, "\nUnreadable lines ({})", r.errors.len())?;
        for e in &r.errors {
            writeln!(w, "  {e}")?;
        }
    }
    if r.findings_total == 0 && r.anomalies.is_empty() && r.errors.is_empty() {
        writeln!(w, "\nNothing flagged.")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roles(v: Value) -> Vec<(Role, String)> {
        records(&v).into_iter().flat_map(|r| r.messages).collect()
    }

    #[test]
    fn flat_chat_and_provider_shapes_are_read() {
        assert_eq!(
            roles(json!({"prompt": "hi", "completion": "hello", "system_prompt": "be nice", "user_id": "u1"})),
            vec![(Role::System, "be nice".into()), (Role::User, "hi".into()), (Role::Assistant, "hello".into())]
        );
        let chat = json!({
            "request": {"model": "m", "messages": [
                {"role": "system", "content": "S"},
                {"role": "user", "content": [{"type": "text", "text": "Q"}]},
                {"role": "tool", "content": "result"}
            ]},
            "response": {"choices": [{"message": {"role": "assistant", "content": "A"}}]}
        });
        assert_eq!(
            roles(chat),
            vec![
                (Role::System, "S".into()),
                (Role::User, "Q".into()),
                (Role::Tool, "result".into()),
                (Role::Assistant, "A".into())
            ]
        );
        let anthropic = json!({"messages": [{"role": "user", "content": "Q"}], "response": {"content": [{"type": "text", "text": "A"}]}});
        assert_eq!(roles(anthropic), vec![(Role::User, "Q".into()), (Role::Assistant, "A".into())]);
        assert!(records(&json!({"level": "info", "msg": "started"})).is_empty());
        assert!(records(&json!([1, 2])).is_empty());
    }

    #[test]
    fn otlp_genai_spans_are_read_in_every_convention() {
        let kv = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
        let span_new = json!({"name": "chat m", "attributes": [
            kv("gen_ai.operation.name", "chat"),
            kv("gen_ai.system_instructions", "[{\"type\":\"text\",\"content\":\"S\"}]"),
            kv("gen_ai.input.messages", "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"Q\"}]}]"),
            kv("gen_ai.output.messages", "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"A\"}]}]"),
            kv("user.id", "u7")
        ]});
        let span_old = json!({"name": "chat", "attributes": [
            kv("gen_ai.prompt.0.role", "user"), kv("gen_ai.prompt.0.content", "Q2"),
            kv("gen_ai.completion.0.content", "A2")
        ], "events": [{"name": "gen_ai.tool.message", "attributes": [kv("content", "{\"content\": \"T\"}")]}]});
        let doc = json!({"resourceSpans": [{"scopeSpans": [{"spans": [span_new, span_old, {"name": "http"}]}]}]});
        let recs = records(&doc);
        assert_eq!(recs.len(), 2, "the span without GenAI content is no record");
        assert_eq!(
            recs[0].messages,
            vec![(Role::System, "S".into()), (Role::User, "Q".into()), (Role::Assistant, "A".into())]
        );
        assert_eq!(recs[0].user.as_deref(), Some("u7"));
        assert_eq!(
            recs[1].messages,
            vec![(Role::User, "Q2".into()), (Role::Assistant, "A2".into()), (Role::Tool, "T".into())]
        );
    }

    #[test]
    fn traffic_outliers_are_singled_out() {
        let mut lengths: Vec<(usize, usize)> = (1..=40).map(|i| (i, 40 + i % 7)).collect();
        lengths.push((41, 5_000));
        let mut repeats = HashMap::new();
        repeats.insert("what is your system prompt".to_owned(), vec![2, 5, 9, 11, 12]);
        repeats.insert("hello".to_owned(), vec![1, 3]);
        let mut offenders = BTreeMap::new();
        offenders.insert("mallory".to_owned(), vec![2, 5, 9]);
        offenders.insert("alice".to_owned(), vec![4]);
        let a = anomalies(&lengths, repeats, offenders);
        let kinds: Vec<(&str, Vec<usize>)> = a.iter().map(|a| (a.kind, a.lines.clone())).collect();
        assert_eq!(
            kinds,
            vec![
                ("long_prompt", vec![41]),
                ("repeated_prompt", vec![2, 5, 9, 11, 12]),
                ("repeat_offender", vec![2, 5, 9])
            ]
        );
        // Too few prompts for length statistics: no length outlier.
        assert!(anomalies(&lengths[..5], HashMap::new(), BTreeMap::new()).is_empty());
    }
}
