//! Writing findings: for people (`path:line:col: level[ID name] message`),
//! as JSON, and as SARIF 2.1.0 for code-scanning tools.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::FileReport;
use crate::config::Level;
use crate::rules::{RULES, Rule};

/// Where the rules are documented (the workspace's repository URL).
pub const DOCS_URL: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main/docs/LINT.md");

/// The documentation link of a rule.
pub fn help_uri(rule: &Rule) -> String {
    format!("{DOCS_URL}#{}", rule.anchor())
}

/// Counts of findings by level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files read.
    pub files: usize,
    /// Findings at level error.
    pub errors: usize,
    /// Findings at level warning.
    pub warnings: usize,
    /// Findings at level note.
    pub notes: usize,
}

impl Summary {
    /// Counts the findings of these files.
    pub fn of(files: &[FileReport]) -> Summary {
        let mut s = Summary { files: files.len(), ..Summary::default() };
        for f in files.iter().flat_map(|f| &f.findings) {
            match f.level {
                Level::Error => s.errors += 1,
                Level::Warning => s.warnings += 1,
                Level::Note => s.notes += 1,
            }
        }
        s
    }
}

/// Findings for people, one per line with the fix beneath, then a summary.
pub fn human(files: &[FileReport]) -> String {
    let mut out = String::new();
    for file in files {
        for f in &file.findings {
            let _ = writeln!(
                out,
                "{}:{}:{}: {}[{} {}] {}",
                printable(&file.path),
                f.start.line,
                f.start.column,
                f.level.as_str(),
                f.rule.id,
                f.rule.name,
                printable(&f.message)
            );
            let _ = writeln!(out, "  = help: {}", f.rule.help);
        }
    }
    let s = Summary::of(files);
    let _ = writeln!(
        out,
        "{} file{} checked: {} error{}, {} warning{}, {} note{}",
        s.files,
        plural(s.files),
        s.errors,
        plural(s.errors),
        s.warnings,
        plural(s.warnings),
        s.notes,
        plural(s.notes)
    );
    out
}

/// Text from the file (paths, quoted evidence) with control and format
/// characters escaped, so a template cannot drive the reader's terminal.
fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Findings as one JSON document: `{"files", "summary", "findings": [...]}`.
pub fn json(files: &[FileReport]) -> Value {
    let s = Summary::of(files);
    let findings: Vec<Value> = files
        .iter()
        .flat_map(|file| {
            file.findings.iter().map(move |f| {
                json!({
                    "path": file.path,
                    "line": f.start.line,
                    "column": f.start.column,
                    "end_line": f.end.line,
                    "end_column": f.end.column,
                    "rule": f.rule.id,
                    "name": f.rule.name,
                    "level": f.level.as_str(),
                    "message": f.message,
                    "help": f.rule.help,
                    "help_uri": help_uri(f.rule),
                })
            })
        })
        .collect();
    json!({
        "files": s.files,
        "summary": {"errors": s.errors, "warnings": s.warnings, "notes": s.notes},
        "findings": findings,
    })
}

/// Findings as a SARIF 2.1.0 log with one run: every rule in the driver
/// (id, name, descriptions, help, level, security severity), each result
/// with its region in Unicode code points and a fingerprint that survives
/// lines moving.
pub fn sarif(files: &[FileReport], tool_version: &str) -> Value {
    let index: BTreeMap<&str, usize> = RULES.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": r.summary},
                "help": {"text": r.help, "markdown": format!("{}\n\n[Documentation]({})", r.help, help_uri(r))},
                "helpUri": help_uri(r),
                "defaultConfiguration": {"level": r.level.as_str()},
                "properties": {
                    "tags": ["security", "llm", "prompt"],
                    "precision": "medium",
                    "security-severity": security_severity(r.level),
                },
            })
        })
        .collect();
    let results: Vec<Value> = files
        .iter()
        .flat_map(|file| {
            let index = &index;
            file.findings.iter().map(move |f| {
                let end = if f.end > f.start { f.end } else { f.start };
                json!({
                    "ruleId": f.rule.id,
                    "ruleIndex": index.get(f.rule.id).copied().unwrap_or(0),
                    "level": f.level.as_str(),
                    "message": {"text": f.message},
                    "locations": [{
                        "physicalLocation": {
                            "artifactLocation": {"uri": artifact_uri(&file.path), "uriBaseId": "%SRCROOT%"},
                            "region": {
                                "startLine": f.start.line,
                                "startColumn": f.start.column,
                                "endLine": end.line,
                                "endColumn": end.column.max(if end.line == f.start.line { f.start.column + 1 } else { 1 }),
                            },
                        },
                    }],
                    "partialFingerprints": {"llmsecLint/v1": fingerprint(&file.path, f.rule.id, &f.message)},
                })
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "llmsec lint",
                "informationUri": DOCS_URL,
                "version": tool_version,
                "semanticVersion": tool_version,
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "The directory llmsec lint ran in."}}},
            "results": results,
        }],
    })
}

/// GitHub reads `security-severity` (0–10) to rank security alerts.
fn security_severity(level: Level) -> &'static str {
    match level {
        Level::Error => "8.0",
        Level::Warning => "5.0",
        Level::Note => "2.0",
    }
}

/// A relative path with `/` separators, percent-encoding what a URI
/// reference cannot hold.
fn artifact_uri(path: &str) -> String {
    let path = path.strip_prefix("./").unwrap_or(path).replace('\\', "/");
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Stable across runs and line moves: the file, the rule and the message
/// (which names the variable or text found), not the position.
fn fingerprint(path: &str, rule: &str, message: &str) -> String {
    let mut h = Sha256::new();
    for part in [path, rule, message] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_output_escapes_terminal_controls() {
        assert_eq!(printable("a\u{1b}[31mb\u{202e}c"), "a\\u{1b}[31mb\\u{202e}c");
    }

    #[test]
    fn artifact_uris_are_relative_and_encoded() {
        assert_eq!(artifact_uri("./prompts/a b.txt"), "prompts/a%20b.txt");
        assert_eq!(artifact_uri("dir\\x.yaml"), "dir/x.yaml");
    }
}
