//! Format validation: the completion must be the JSON (optionally matching a
//! JSON Schema) or XML document the application asked for.
//!
//! Runs only when the caller passes an [`OutputContext`] with an
//! `expected_format` or a `json_schema` (a schema implies JSON). The
//! document is the whole completion, trimmed, or the inside of a single
//! fenced code block (```` ```json ```` / ```` ```xml ```` or a bare fence)
//! that makes up the whole completion.
//!
//! | category           | when                                                     | severity |
//! |--------------------|----------------------------------------------------------|----------|
//! | `invalid_json`     | the document does not parse as JSON                      | Medium   |
//! | `schema_violation` | it parses but fails the schema (evidence: up to five instance paths) | Medium |
//! | `invalid_xml`      | not well-formed: syntax, mismatched or unclosed tags, text or a second element outside the root, undeclared entities | Medium |
//! | `invalid_schema`   | the caller's schema does not compile                     | Low      |
//!
//! An invalid schema is the caller's mistake, not the model's, so it is
//! reported as a `Low`, low-confidence `invalid_schema` threat (the
//! completion is still checked for JSON syntax) rather than a panic or a
//! silent pass. Schemas are compiled with remote references disabled (the
//! crate is built without `resolve-http`/`resolve-file`), so a schema never
//! makes the engine do I/O. The last few compiled schemas are cached per
//! validator, keyed by the schema value itself.
//!
//! [`OutputContext`]: crate::scanner::OutputContext

use std::fmt;
use std::sync::{Arc, Mutex};

use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::Value;

use crate::scanner::{ExpectedFormat, ScanContext, Scanner};
use crate::types::{Severity, Span, Threat, ThreatType};

/// How many compiled schemas a validator keeps.
const SCHEMA_CACHE: usize = 8;
/// How many schema violations the evidence lists.
const MAX_LISTED: usize = 5;

/// A compiled schema, or why it does not compile.
type Compiled = Result<Arc<jsonschema::Validator>, String>;

/// Checks completions against the expected format (`output_manipulation`).
pub struct FormatValidator {
    id: String,
    /// Most recently used last.
    cache: Mutex<Vec<(Value, Compiled)>>,
}

impl fmt::Debug for FormatValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FormatValidator").field("id", &self.id).finish_non_exhaustive()
    }
}

impl FormatValidator {
    /// A validator with this instance id.
    pub fn new(id: impl Into<String>) -> FormatValidator {
        FormatValidator { id: id.into(), cache: Mutex::new(Vec::new()) }
    }

    /// The compiled form of `schema`, from the cache when possible.
    fn compile(&self, schema: &Value) -> Compiled {
        // A poisoned lock only means another thread panicked mid-update of
        // a cache of immutable entries; the entries are still valid.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = cache.iter().position(|(s, _)| s == schema) {
            let entry = cache.remove(i);
            let compiled = entry.1.clone();
            cache.push(entry);
            return compiled;
        }
        drop(cache);
        let compiled = jsonschema::validator_for(schema).map(Arc::new).map_err(|e| e.to_string());
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= SCHEMA_CACHE {
            let _evicted = cache.remove(0);
        }
        cache.push((schema.clone(), compiled.clone()));
        compiled
    }

    fn threat(&self, category: &str, severity: Severity, confidence: f64, span: Span, evidence: String) -> Threat {
        Threat::new(ThreatType::OutputManipulation, category, severity, confidence, span, evidence, self.id.as_str())
            .with_rule(category)
    }
}

/// The document inside `text`: the trimmed text, or the inside of a single
/// fenced block (with one of `langs` or no language) that is the whole
/// text. Returns the document and its byte offset in `text`.
pub(crate) fn document<'t>(text: &'t str, langs: &[&str]) -> (&'t str, usize) {
    let trimmed = text.trim();
    let lead = trimmed.as_ptr() as usize - text.as_ptr() as usize;
    let plain = (trimmed, lead);
    let Some(rest) = trimmed.strip_prefix("```") else {
        return plain;
    };
    let Some(nl) = rest.find('\n') else {
        return plain;
    };
    let lang = rest[..nl].trim();
    if !(lang.is_empty() || langs.iter().any(|l| l.eq_ignore_ascii_case(lang))) {
        return plain;
    }
    let body = &rest[nl + 1..];
    let Some(inner) = body.trim_end().strip_suffix("```") else {
        return plain;
    };
    if inner.contains("```") {
        return plain;
    }
    let offset = lead + 3 + nl + 1;
    let doc = inner.trim();
    let doc_off = offset + (doc.as_ptr() as usize - inner.as_ptr() as usize);
    (doc, doc_off)
}

/// Byte offset of a 1-based line and column (in characters) in `doc`.
fn line_col_offset(doc: &str, line: usize, col: usize) -> usize {
    let mut off = 0;
    for (i, l) in doc.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let c = l.char_indices().nth(col.saturating_sub(1)).map_or(l.len(), |(p, _)| p);
            return off + c;
        }
        off += l.len();
    }
    doc.len()
}

/// Why `doc` is not a well-formed XML document, and the byte offset.
pub(crate) fn xml_error(doc: &str) -> Option<(String, usize)> {
    let mut r = Reader::from_str(doc);
    {
        let c = r.config_mut();
        c.check_end_names = true;
        c.check_comments = true;
        c.allow_unmatched_ends = false;
    }
    let mut depth = 0usize;
    let mut roots = 0usize;
    let mut doctype = false;
    let mut first = true;
    let mut open: Vec<String> = Vec::new();
    loop {
        let at = usize::try_from(r.buffer_position()).unwrap_or(usize::MAX);
        let ev = match r.read_event() {
            Ok(ev) => ev,
            Err(e) => {
                let pos = usize::try_from(r.error_position()).unwrap_or(0);
                return Some((e.to_string(), pos.min(doc.len())));
            }
        };
        let was_first = first;
        first = false;
        match ev {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) if depth == 0 && roots > 0 => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                return Some((format!("second root element <{name}>"), at));
            }
            Event::Start(e) => {
                if let Some(err) = e.attributes().find_map(Result::err) {
                    return Some((err.to_string(), at));
                }
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
                open.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
            }
            Event::Empty(e) => {
                if let Some(err) = e.attributes().find_map(Result::err) {
                    return Some((err.to_string(), at));
                }
                if depth == 0 {
                    roots += 1;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                open.pop();
            }
            Event::Text(t) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => {
                return Some(("text outside the root element".into(), at));
            }
            Event::CData(_) if depth == 0 => {
                return Some(("CDATA outside the root element".into(), at));
            }
            Event::GeneralRef(g) => {
                if depth == 0 {
                    return Some(("entity reference outside the root element".into(), at));
                }
                let name = String::from_utf8_lossy(&g).into_owned();
                let predefined = matches!(name.as_str(), "lt" | "gt" | "amp" | "apos" | "quot");
                if g.is_char_ref() {
                    if !matches!(g.resolve_char_ref(), Ok(Some(_))) {
                        return Some((format!("invalid character reference &{name};"), at));
                    }
                } else if !predefined && !doctype {
                    return Some((format!("undeclared entity &{name};"), at));
                }
            }
            Event::DocType(_) => {
                if roots > 0 {
                    return Some(("DOCTYPE after the root element".into(), at));
                }
                doctype = true;
            }
            Event::Decl(_) if !was_first => {
                return Some(("XML declaration not at the start".into(), at));
            }
            _ => {}
        }
    }
    if let Some(name) = open.last() {
        return Some((format!("unclosed element <{name}>"), doc.len()));
    }
    if roots == 0 {
        return Some(("no root element".into(), 0));
    }
    None
}

impl Scanner for FormatValidator {
    fn id(&self) -> &str {
        &self.id
    }

    fn scan(&self, cx: &ScanContext<'_>, out: &mut Vec<Threat>) {
        let Some(o) = cx.output else { return };
        let json = o.json_schema.is_some() || o.expected_format == Some(ExpectedFormat::Json);
        let xml = !json && o.expected_format == Some(ExpectedFormat::Xml);
        let text = cx.original();
        if json {
            let (doc, off) = document(text, &["json", "jsonc", "json5"]);
            let whole = Span::new(off, off + doc.len());
            let compiled = o.json_schema.as_ref().map(|s| self.compile(s));
            if let Some(Err(e)) = &compiled {
                let msg: String = e.chars().take(200).collect();
                out.push(self.threat(
                    "invalid_schema",
                    Severity::Low,
                    0.1,
                    whole,
                    format!(
                        "the JSON Schema supplied by the caller does not compile ({msg}); only JSON syntax was checked"
                    ),
                ));
            }
            let value: Value = match serde_json::from_str(doc) {
                Ok(v) => v,
                Err(e) => {
                    let at = line_col_offset(doc, e.line(), e.column());
                    out.push(self.threat(
                        "invalid_json",
                        Severity::Medium,
                        0.9,
                        whole,
                        format!("completion is not valid JSON: {e} (byte {at})"),
                    ));
                    return;
                }
            };
            if let Some(Ok(v)) = compiled {
                let mut count = 0usize;
                let mut listed = Vec::new();
                for err in v.iter_errors(&value) {
                    count += 1;
                    if listed.len() < MAX_LISTED {
                        let path = err.instance_path().to_string();
                        let path = if path.is_empty() { "/".to_owned() } else { path };
                        let msg: String = err.masked().to_string().chars().take(120).collect();
                        listed.push(format!("{path}: {msg}"));
                    }
                }
                if count > 0 {
                    let more = if count > listed.len() {
                        format!("; and {} more", count - listed.len())
                    } else {
                        String::new()
                    };
                    out.push(self.threat(
                        "schema_violation",
                        Severity::Medium,
                        0.9,
                        whole,
                        format!(
                            "{count} schema violation{}: {}{more}",
                            if count == 1 { "" } else { "s" },
                            listed.join("; ")
                        ),
                    ));
                }
            }
        } else if xml {
            let (doc, off) = document(text, &["xml", "html", "svg"]);
            if let Some((msg, at)) = xml_error(doc) {
                let msg: String = msg.chars().take(200).collect();
                out.push(self.threat(
                    "invalid_xml",
                    Severity::Medium,
                    0.9,
                    Span::new(off, off + doc.len()),
                    format!("completion is not well-formed XML: {msg} (byte {at})"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{NormalizeOptions, Normalized};
    use crate::scanner::OutputContext;
    use serde_json::json;

    fn scan_with(v: &FormatValidator, text: &str, cx: &OutputContext) -> Vec<Threat> {
        let n = Normalized::new(text, &NormalizeOptions::default());
        let scx = ScanContext { normalized: &n, output: Some(cx) };
        let mut out = Vec::new();
        v.scan(&scx, &mut out);
        out
    }

    fn scan(text: &str, cx: &OutputContext) -> Vec<Threat> {
        scan_with(&FormatValidator::new("format"), text, cx)
    }

    fn cats(text: &str, cx: &OutputContext) -> Vec<String> {
        scan(text, cx).into_iter().map(|t| t.category).collect()
    }

    fn json_cx() -> OutputContext {
        OutputContext::new().with_expected_format(ExpectedFormat::Json)
    }

    fn xml_cx() -> OutputContext {
        OutputContext::new().with_expected_format(ExpectedFormat::Xml)
    }

    #[test]
    fn nothing_without_an_expected_format() {
        assert!(cats("not json at all", &OutputContext::new()).is_empty());
    }

    #[test]
    fn json_cases() {
        // (text, valid?, note)
        let cases: &[(&str, bool, &str)] = &[
            ("{\"name\": \"Ada\", \"age\": 36}", true, "plain object"),
            ("  [1, 2, 3]\n", true, "array with surrounding whitespace"),
            ("```json\n{\"ok\": true}\n```", true, "single fenced json block"),
            ("```\n{\"ok\": true}\n```\n", true, "bare fence"),
            ("Sure! Here is the JSON:\n{\"ok\": true}", false, "chatty preamble (a classic LLM format failure)"),
            ("{\"ok\": true,}", false, "trailing comma"),
            ("{'ok': true}", false, "single quotes (python repr)"),
            ("{\"a\": 1}\n{\"b\": 2}", false, "two documents (JSON lines)"),
            ("```json\n{\"a\":1}\n```\n```json\n{\"b\":2}\n```", false, "two fenced blocks"),
            ("{\"truncated\": [1, 2", false, "cut off by max_tokens"),
            ("", false, "empty completion"),
        ];
        for (text, valid, note) in cases {
            let c = cats(text, &json_cx());
            if *valid {
                assert!(c.is_empty(), "{note}: {c:?}");
            } else {
                assert_eq!(c, ["invalid_json"], "{note}");
            }
        }
    }

    #[test]
    fn fenced_document_offsets() {
        let text = "```json\n{\"a\": }\n```";
        let t = scan(text, &json_cx());
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].span.slice(text), "{\"a\": }");
    }

    #[test]
    fn schema_violations_list_instance_paths() {
        let schema = json!({
            "type": "object",
            "required": ["name", "age"],
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "additionalProperties": false
        });
        let cx = OutputContext::new().with_json_schema(schema);
        assert!(cats("{\"name\": \"Ada\", \"age\": 36}", &cx).is_empty());
        let t = scan("{\"name\": 7, \"age\": -1, \"tags\": [\"a\", 2]}", &cx);
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].category, "schema_violation");
        for path in ["/name", "/age", "/tags/1"] {
            assert!(t[0].evidence.contains(path), "{}", t[0].evidence);
        }
        assert_eq!(cats("{\"name\": ", &cx), ["invalid_json"]);
    }

    #[test]
    fn invalid_schema_is_reported_not_a_panic() {
        let cx = OutputContext::new().with_json_schema(json!({"type": "no-such-type"}));
        let t = scan("{}", &cx);
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].category, "invalid_schema");
        assert_eq!(t[0].severity, Severity::Low);
        // A remote $ref cannot be fetched: also invalid, and no I/O happens.
        let cx = OutputContext::new().with_json_schema(json!({"$ref": "https://example.invalid/schema.json"}));
        let c = cats("{}", &cx);
        assert_eq!(c, ["invalid_schema"]);
        // Still checked for syntax.
        let c = cats("{", &cx);
        assert_eq!(c, ["invalid_schema", "invalid_json"]);
    }

    #[test]
    fn schema_cache_is_reused_and_bounded() {
        let v = FormatValidator::new("format");
        for i in 0..20 {
            let cx = OutputContext::new().with_json_schema(json!({"maximum": i}));
            let c: Vec<String> = scan_with(&v, "5", &cx).into_iter().map(|t| t.category).collect();
            if i >= 5 {
                assert!(c.is_empty(), "{i}: {c:?}");
            } else {
                assert_eq!(c, ["schema_violation"], "{i}");
            }
        }
        let n = v.cache.lock().map(|c| c.len()).unwrap_or(0);
        assert_eq!(n, SCHEMA_CACHE);
    }

    #[test]
    fn xml_cases() {
        let cases: &[(&str, bool, &str)] = &[
            ("<note><to>Ada</to><body>Hi &amp; bye</body></note>", true, "simple document"),
            ("<?xml version=\"1.0\"?>\n<root a=\"1\"/>", true, "declaration and empty root"),
            ("```xml\n<r><!-- c --><x/></r>\n```", true, "fenced xml"),
            ("<r>&#x41;&#66;</r>", true, "character references"),
            ("<!DOCTYPE r [<!ENTITY e \"x\">]><r>&e;</r>", true, "declared entity"),
            ("<a><b></a></b>", false, "crossed tags"),
            ("<a><b></b>", false, "unclosed root"),
            ("<a/><b/>", false, "two roots"),
            ("Here you go: <a/>", false, "text before the root"),
            ("<a x=\"1\" x=\"2\"/>", false, "duplicate attribute"),
            ("<a>&nbsp;</a>", false, "HTML entity without a DTD"),
            ("<a></a>trailing", false, "text after the root"),
            ("", false, "empty"),
            ("</a>", false, "end tag only"),
        ];
        for (text, valid, note) in cases {
            let c = cats(text, &xml_cx());
            if *valid {
                assert!(c.is_empty(), "{note}: {c:?}");
            } else {
                assert_eq!(c, ["invalid_xml"], "{note}: {:?}", scan(text, &xml_cx()));
            }
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = "[".repeat(100_000);
        assert_eq!(cats(&deep, &json_cx()), ["invalid_json"]);
        let deep_xml = "<a>".repeat(50_000);
        assert_eq!(cats(&deep_xml, &xml_cx()), ["invalid_xml"]);
    }
}
