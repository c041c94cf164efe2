//! A starter policy from a code base (`llmsec policy init --from DIR`):
//! finds the LLM SDKs it imports, the model names it uses and the tools it
//! defines in Python, TypeScript/JavaScript and Rust sources, and writes a
//! Rego policy that allows exactly those models and tools.
//!
//! The search is lexical (regular expressions over the source text), not a
//! parse: it finds model names in string literals and the common tool
//! definition shapes (OpenAI function tools, Anthropic tools with
//! `input_schema`, LangChain `@tool` functions, `tool({ name: … })`), and
//! every finding carries the file and line so a person can review it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

/// Where something was found: file and 1-based line.
pub type Site = (String, usize);

/// What a code base uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// SDKs imported, by name (`openai`, `anthropic`, …).
    pub sdks: BTreeMap<String, Vec<Site>>,
    /// Model names in string literals.
    pub models: BTreeMap<String, Vec<Site>>,
    /// Tools defined.
    pub tools: BTreeMap<String, Vec<Site>>,
    /// Source files read.
    pub files: usize,
}

const EXTENSIONS: &[&str] = &["py", "ts", "tsx", "js", "jsx", "mjs", "cjs", "rs"];
const SKIP_DIRS: &[&str] =
    &["node_modules", "target", "venv", ".venv", "__pycache__", "dist", "build", "site-packages"];

fn re(p: &str) -> Regex {
    Regex::new(p).expect("static regex")
}

static SDKS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    vec![
        (
            "openai",
            re(
                r#"(?m)^\s*(?:from\s+openai\b|import\s+openai\b)|from\s+["']openai["']|require\(\s*["']openai["']\s*\)|\basync_openai::|\bopenai_api_rs::"#,
            ),
        ),
        (
            "anthropic",
            re(r#"(?m)^\s*(?:from\s+anthropic\b|import\s+anthropic\b)|["']@anthropic-ai/sdk["']|\banthropic_sdk::"#),
        ),
        ("langchain", re(r#"(?m)^\s*(?:from|import)\s+langchain\w*|["']@langchain/[\w-]+["']|["']langchain["']"#)),
        ("llamaindex", re(r#"(?m)^\s*(?:from|import)\s+llama_index\b|["']llamaindex["']"#)),
        (
            "google-genai",
            re(r#"(?m)^\s*(?:from\s+google\s+import\s+genai|import\s+google\.generativeai)|["']@google/genai["']"#),
        ),
        ("mistral", re(r#"(?m)^\s*(?:from|import)\s+mistralai\b|["']@mistralai/mistralai["']"#)),
    ]
});

static MODEL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"["'`]((?:gpt-[0-9][\w.:-]*|gpt-oss[\w.:-]*|o[134](?:-(?:mini|pro|preview)[\w.-]*)?|chatgpt-[\w.-]+|text-embedding-[\w.-]+|claude-[\w.:-]+|gemini-[\w.-]+|mistral-[\w.-]+|mixtral-[\w.-]+|llama-?[0-9][\w.:-]*|command-r[\w.-]*))["'`]"#,
    )
});

static TOOLS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    vec![
        // OpenAI: {"type": "function", "function": {"name": "x", …}}
        re(r#"["']?function["']?\s*:\s*\{\s*["']?name["']?\s*:\s*["']([A-Za-z_][\w-]*)["']"#),
        // Anthropic: {"name": "x", "description": …, "input_schema": …}
        re(
            r#"(?s)["']?name["']?\s*:\s*["']([A-Za-z_][\w-]*)["']\s*,\s*["']?description["']?\s*:\s*["'][^"']*["']\s*,\s*["']?input_schema["']?"#,
        ),
        // LangChain: @tool / @tool("…") above a def
        re(r#"(?m)^\s*@tool\b[^\n]*\n\s*(?:async\s+)?def\s+([A-Za-z_]\w*)"#),
        // tool({ name: "x", … }) and new DynamicTool({ name: "x" })
        re(r#"(?:\btool|DynamicTool|DynamicStructuredTool)\s*\(\s*\{\s*name\s*:\s*["']([A-Za-z_][\w-]*)["']"#),
    ]
});

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Inventory {
    /// Reads every source file under `dir`.
    pub fn scan(dir: &Path) -> std::io::Result<Inventory> {
        let mut files = Vec::new();
        walk(dir, &mut files)?;
        files.sort();
        let mut inv = Inventory::default();
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else { continue };
            let name = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
            inv.add(&name, &text);
        }
        Ok(inv)
    }

    /// Adds the findings of one file.
    pub fn add(&mut self, name: &str, text: &str) {
        self.files += 1;
        for (sdk, pattern) in SDKS.iter() {
            if let Some(m) = pattern.find(text) {
                self.sdks.entry((*sdk).to_owned()).or_default().push((name.to_owned(), line_of(text, m.start())));
            }
        }
        for c in MODEL.captures_iter(text) {
            if let Some(m) = c.get(1) {
                self.models.entry(m.as_str().to_owned()).or_default().push((name.to_owned(), line_of(text, m.start())));
            }
        }
        for pattern in TOOLS.iter() {
            for c in pattern.captures_iter(text) {
                if let Some(m) = c.get(1) {
                    let sites = self.tools.entry(m.as_str().to_owned()).or_default();
                    let site = (name.to_owned(), line_of(text, m.start()));
                    if !sites.contains(&site) {
                        sites.push(site);
                    }
                }
            }
        }
    }

    /// A Rego policy (package `llmsec`) allowing exactly the models and
    /// tools found, keeping the engine's verdict otherwise; every value
    /// commented with where it was found.
    pub fn to_rego(&self, source: &str) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "# A starter policy written by `llmsec policy init --from {source}`\n\
             # from {} source files. Review it: the models and tools below were\n\
             # found by pattern, with the file and line of each.\n",
            self.files
        ));
        if !self.sdks.is_empty() {
            let sdks: Vec<String> = self.sdks.iter().map(|(k, v)| format!("{k} ({})", sites(v))).collect();
            out.push_str(&format!("# SDKs: {}\n", sdks.join("; ")));
        }
        out.push_str("package llmsec\n\n");
        out.push_str(&set("allowed_models", &self.models));
        out.push_str(&set("allowed_tools", &self.tools));
        out.push_str(
            r#"default decision := {"action": "allow", "reasons": []}

decision := {"action": "block", "reasons": sort([r | some r in block_reasons])} if count(block_reasons) > 0

block_reasons contains "the engine blocked the text" if input.analysis.verdict == "block"

block_reasons contains msg if {
	model := input.request.model
	not model in allowed_models
	msg := sprintf("model %v is not used by this application", [model])
}

block_reasons contains msg if {
	some tool in input.request.tools
	not tool in allowed_tools
	msg := sprintf("tool %v is not defined by this application", [tool])
}
"#,
        );
        out
    }
}

fn sites(v: &[Site]) -> String {
    let mut shown: Vec<String> = v.iter().take(3).map(|(f, l)| format!("{f}:{l}")).collect();
    if v.len() > 3 {
        shown.push(format!("+{} more", v.len() - 3));
    }
    shown.join(", ")
}

fn set(name: &str, values: &BTreeMap<String, Vec<Site>>) -> String {
    if values.is_empty() {
        return format!("# none found\n{name} := set()\n\n");
    }
    let mut out = format!("{name} := {{\n");
    for (v, at) in values {
        out.push_str(&format!("\t{}, # {}\n", serde_json::Value::String(v.clone()), sites(at)));
    }
    out.push_str("}\n\n");
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if !name.starts_with('.') && !SKIP_DIRS.contains(&name.as_str()) {
                walk(&path, out)?;
            }
        } else if kind.is_file() && path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e)) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, RegoPolicy};
    use serde_json::json;

    const PY: &str = r#"from openai import OpenAI
from langchain_core.tools import tool

client = OpenAI()
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]

@tool
def lookup_order(order_id: int) -> str:
    return "shipped"

resp = client.chat.completions.create(model="gpt-4o-mini", messages=[], tools=TOOLS)
"#;
    const TS: &str = r#"import Anthropic from "@anthropic-ai/sdk";
const tools = [{ name: "send_email", description: "Send an e-mail", input_schema: { type: "object" } }];
await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 512, tools });
"#;

    #[test]
    fn sdks_models_and_tools_are_found_with_their_lines() {
        let mut inv = Inventory::default();
        inv.add("app.py", PY);
        inv.add("web/chat.ts", TS);
        assert_eq!(inv.sdks.keys().collect::<Vec<_>>(), ["anthropic", "langchain", "openai"]);
        assert_eq!(inv.models.keys().collect::<Vec<_>>(), ["claude-sonnet-4-5", "gpt-4o-mini"]);
        assert_eq!(inv.models["gpt-4o-mini"], [("app.py".to_owned(), 11)]);
        assert_eq!(inv.tools.keys().collect::<Vec<_>>(), ["get_weather", "lookup_order", "send_email"]);
        assert_eq!(inv.tools["send_email"], [("web/chat.ts".to_owned(), 2)]);
    }

    #[test]
    fn the_starter_policy_compiles_and_allows_exactly_what_was_found() {
        let mut inv = Inventory::default();
        inv.add("app.py", PY);
        inv.add("web/chat.ts", TS);
        let rego = inv.to_rego("src");
        let p = RegoPolicy::from_sources([("starter.rego".to_owned(), rego.clone())]).expect(&rego);
        let decide = |request: serde_json::Value| {
            p.decide(&json!({"analysis": {"verdict": "allow"}, "request": request})).expect("decides").action
        };
        assert_eq!(decide(json!({"model": "gpt-4o-mini", "tools": ["lookup_order", "send_email"]})), Action::Allow);
        assert_eq!(decide(json!({"model": "gpt-5"})), Action::Block);
        assert_eq!(decide(json!({"tools": ["delete_account"]})), Action::Block);
        assert_eq!(decide(json!({})), Action::Allow);
        let blocked = p.decide(&json!({"analysis": {"verdict": "block"}, "request": {}})).expect("decides");
        assert_eq!(blocked.reasons, ["the engine blocked the text"]);
    }

    #[test]
    fn an_empty_code_base_gives_a_policy_that_allows_no_model_or_tool() {
        let rego = Inventory::default().to_rego(".");
        let p = RegoPolicy::from_sources([("s.rego".to_owned(), rego)]).expect("compiles");
        let d = p.decide(&json!({"analysis": {"verdict": "allow"}, "request": {"model": "gpt-4o"}})).expect("decides");
        assert_eq!(d.action, Action::Block);
    }
}
