//! Reading a prompt template into messages with roles, placeholders and
//! positions in the file.
//!
//! Three shapes are read:
//! - **text** (plain text, Markdown, Jinja, Handlebars, Mustache, f-string
//!   or `str.format` templates): one message with no role, or several when
//!   the file marks roles with lines such as `system:` / `user:` (Prompty)
//!   or `{{role "system"}}` (dotprompt); an optional YAML front matter
//!   between `---` lines is read for the expected output format;
//! - **YAML** and **JSON** prompt configs: a list of `{role, content}`
//!   messages, an object with `messages` (also LangChain's `[role, text]`
//!   pairs and OpenAI's content parts), or an object with `system`,
//!   `developer`, `instructions`, `prompt`/`template` and `user` strings.
//!   A YAML file may hold several documents, each its own template.

use std::ops::Range;

use serde_norway::Value;

use crate::placeholders::{self, Placeholder, Syntax};

/// How a file is read, from its extension (anything unknown is text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A template file: text, Markdown, Jinja, Handlebars, f-string…
    Text,
    /// A YAML prompt config.
    Yaml,
    /// A JSON prompt config.
    Json,
}

impl Format {
    /// The format of a file, by its extension.
    pub fn of_path(path: &str) -> Format {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Format::Yaml
        } else if lower.ends_with(".json") {
            Format::Json
        } else {
            Format::Text
        }
    }
}

/// Who a message speaks as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The application's system prompt.
    System,
    /// The application's developer message (OpenAI's newer name for system).
    Developer,
    /// The end user's turn.
    User,
    /// A prior model turn (few-shot examples, history).
    Assistant,
    /// A tool result.
    Tool,
    /// Text with no role: a completion-style template that holds the
    /// instructions and the data in one string.
    Instruction,
}

impl Role {
    /// Reads a role name as chat formats spell it.
    pub fn parse(name: &str) -> Option<Role> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "system" => Role::System,
            "developer" => Role::Developer,
            "user" | "human" => Role::User,
            "assistant" | "ai" | "model" => Role::Assistant,
            "tool" | "function" => Role::Tool,
            "instruction" | "instructions" | "prompt" | "template" => Role::Instruction,
            _ => return None,
        })
    }

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Instruction => "instruction",
        }
    }

    /// Whether the application's instructions live in this role: the model
    /// gives its text authority over the conversation.
    pub fn is_instruction(self) -> bool {
        matches!(self, Role::System | Role::Developer | Role::Instruction)
    }
}

/// A 1-based line and column (in characters) in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column in Unicode scalar values, from 1.
    pub column: usize,
}

/// One message of a template.
#[derive(Debug, Clone)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// The message text as the model would see it before interpolation.
    pub text: String,
    /// The placeholders in `text`.
    pub placeholders: Vec<Placeholder>,
    /// Where each line of `text` starts in the file.
    lines: Vec<(usize, Position)>,
}

impl Message {
    /// The file position of a byte offset in [`Message::text`].
    pub fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let idx = self.lines.partition_point(|(start, _)| *start <= offset).saturating_sub(1);
        match self.lines.get(idx) {
            Some((start, pos)) => {
                let within = self.text.get(*start..offset).map_or(0, |s| s.chars().count());
                Position { line: pos.line, column: pos.column + within }
            }
            None => Position { line: 1, column: 1 },
        }
    }

    /// The file positions of a byte range of [`Message::text`].
    pub fn range(&self, range: &Range<usize>) -> (Position, Position) {
        (self.position(range.start), self.position(range.end))
    }

    /// The file position of the message's first visible character.
    pub fn start(&self) -> Position {
        let lead = self.text.len() - self.text.trim_start().len();
        self.position(lead)
    }
}

/// The output format a template's configuration says a parser expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// JSON (OpenAI's `response_format: json_object` / `json_schema`).
    Json,
    /// YAML.
    Yaml,
    /// XML.
    Xml,
    /// Comma-separated values.
    Csv,
}

impl OutputFormat {
    fn parse(name: &str) -> Option<OutputFormat> {
        let n = name.to_ascii_lowercase();
        if n.contains("json") {
            Some(OutputFormat::Json)
        } else if n.contains("yaml") || n == "yml" {
            Some(OutputFormat::Yaml)
        } else if n.contains("xml") {
            Some(OutputFormat::Xml)
        } else if n.contains("csv") {
            Some(OutputFormat::Csv)
        } else {
            None
        }
    }

    /// The format's name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Json => "json",
            OutputFormat::Yaml => "yaml",
            OutputFormat::Xml => "xml",
            OutputFormat::Csv => "csv",
        }
    }
}

/// One prompt template: its messages and what its configuration says.
#[derive(Debug, Clone, Default)]
pub struct Template {
    /// The messages, in order.
    pub messages: Vec<Message>,
    /// The output format the configuration asks for, if any.
    pub output: Option<OutputFormat>,
    /// Whether the messages came with roles (a chat template).
    pub chat: bool,
}

/// A file that could not be read as a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was wrong.
    pub message: String,
    /// Where, when the parser knows.
    pub position: Position,
}

/// Reads a file's text as templates (a YAML file may hold several).
pub fn parse(text: &str, format: Format) -> Result<Vec<Template>, ParseError> {
    parse_any(text, format).map_err(|mut e| {
        // Parsers report an error at the end of input one line past the
        // last (YAML's `{` at end of file): keep positions in the file.
        let lines = text.split('\n').count().max(1);
        if e.position.line > lines {
            e.position =
                Position { line: lines, column: text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1 };
        }
        e
    })
}

fn parse_any(text: &str, format: Format) -> Result<Vec<Template>, ParseError> {
    match format {
        Format::Text => Ok(vec![parse_text(text)]),
        Format::Json => {
            let value: serde_json::Value = serde_json::from_str(text).map_err(|e| ParseError {
                message: format!("invalid JSON: {e}"),
                position: Position { line: e.line().max(1), column: e.column().max(1) },
            })?;
            // JSON is YAML; one reader for both shapes.
            let value = serde_norway::to_value(&value).map_err(|e| ParseError {
                message: format!("invalid JSON: {e}"),
                position: Position { line: 1, column: 1 },
            })?;
            let mut locator = Locator::new(text);
            Ok(vec![config_template(&value, &mut locator)?])
        }
        Format::Yaml => {
            let mut locator = Locator::new(text);
            let mut out = Vec::new();
            for doc in serde_norway::Deserializer::from_str(text) {
                let value: Value = serde::Deserialize::deserialize(doc).map_err(|e| yaml_error(&e))?;
                if value.is_null() {
                    continue;
                }
                out.push(config_template(&value, &mut locator)?);
            }
            Ok(out)
        }
    }
}

fn yaml_error(e: &serde_norway::Error) -> ParseError {
    let position =
        e.location().map_or(Position { line: 1, column: 1 }, |l| Position { line: l.line(), column: l.column() });
    ParseError { message: format!("invalid YAML: {e}"), position }
}

/// A text template: front matter, then the body split at role markers.
fn parse_text(text: &str) -> Template {
    let index = LineIndex::new(text);
    let mut template = Template::default();
    let mut body_start = 0;
    if let Some((meta, end)) = front_matter(text) {
        template.output = output_of(&meta);
        body_start = end;
    }
    let body = &text[body_start..];
    let syntax = Syntax::detect(body);
    let markers = role_markers(body, syntax);
    template.chat = !markers.is_empty();
    let mut push = |role: Role, range: Range<usize>| {
        let slice = &body[range.clone()];
        // Leading and trailing blank lines are not part of the message.
        let trimmed_start = slice.len() - slice.trim_start_matches(['\n', '\r']).len();
        let inner = slice.trim_start_matches(['\n', '\r']).trim_end();
        if inner.is_empty() {
            return;
        }
        let start = body_start + range.start + trimmed_start;
        template.messages.push(message_at(role, inner, start, &index, syntax));
    };
    let mut role = Role::Instruction;
    let mut from = 0;
    for marker in &markers {
        push(role, from..marker.range.start);
        role = marker.role;
        from = marker.range.end;
    }
    push(role, from..body.len());
    template
}

/// A message whose text is a slice of the file starting at byte `start`.
fn message_at(role: Role, text: &str, start: usize, index: &LineIndex, syntax: Syntax) -> Message {
    let mut lines = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        lines.push((offset, index.position(start + offset)));
        offset += line.len();
    }
    if lines.is_empty() {
        lines.push((0, index.position(start)));
    }
    let text = placeholders::blank_comments(text, syntax);
    Message { role, placeholders: placeholders::find(&text, syntax), text, lines }
}

struct RoleMarker {
    role: Role,
    range: Range<usize>,
}

/// Lines that switch the role: `system:` alone on a line (Prompty), or a
/// `{{role "user"}}` helper (dotprompt).
fn role_markers(body: &str, syntax: Syntax) -> Vec<RoleMarker> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim();
        let role = trimmed
            .strip_suffix(':')
            .filter(|name| !name.contains(' '))
            .and_then(Role::parse)
            .filter(|r| *r != Role::Instruction)
            .or_else(|| (syntax == Syntax::Jinja).then(|| dotprompt_role(trimmed)).flatten());
        if let Some(role) = role {
            out.push(RoleMarker { role, range: offset..offset + line.len() });
        }
        offset += line.len();
    }
    out
}

fn dotprompt_role(line: &str) -> Option<Role> {
    let inner = line.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let name = inner.strip_prefix("role")?.trim();
    let name = name.trim_matches(|c| c == '"' || c == '\'');
    Role::parse(name)
}

/// YAML front matter: `---` on the first line, closed by `---` or `...`.
fn front_matter(text: &str) -> Option<(Value, usize)> {
    let rest = text.strip_prefix("---\n").or_else(|| text.strip_prefix("---\r\n"))?;
    let mut offset = text.len() - rest.len();
    for line in rest.split_inclusive('\n') {
        let t = line.trim_end();
        if t == "---" || t == "..." {
            let yaml = &text[text.len() - rest.len()..offset];
            let value = serde_norway::from_str(yaml).ok()?;
            return Some((value, offset + line.len()));
        }
        offset += line.len();
    }
    None
}

/// The output format a config names: `response_format` (OpenAI, also under
/// `model.parameters`), `output_format`, `format`, or `output.format`.
fn output_of(value: &Value) -> Option<OutputFormat> {
    let map = value.as_mapping()?;
    for (key, v) in map {
        let Some(key) = key.as_str() else { continue };
        let found = match key {
            "response_format" | "output_format" | "format" => match v {
                Value::String(s) => OutputFormat::parse(s),
                Value::Mapping(m) => m.get("type").and_then(Value::as_str).and_then(OutputFormat::parse),
                _ => None,
            },
            "output" => match v {
                Value::String(s) => OutputFormat::parse(s),
                other => output_of(other),
            },
            "model" | "parameters" | "config" => output_of(v),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// A YAML/JSON prompt config.
fn config_template(value: &Value, locator: &mut Locator<'_>) -> Result<Template, ParseError> {
    let mut template = Template { output: output_of(value), chat: true, ..Template::default() };
    let messages: Vec<(Role, String)> = match value {
        Value::Sequence(items) => messages_of(items)?,
        Value::Mapping(map) => {
            if let Some(Value::Sequence(items)) = map.get("messages") {
                messages_of(items)?
            } else {
                let mut out = Vec::new();
                for key in ["system", "developer", "instructions", "instruction", "prompt", "template", "user"] {
                    if let Some(text) = map.get(key).and_then(Value::as_str) {
                        let role = Role::parse(key).unwrap_or(Role::Instruction);
                        out.push((role, text.to_owned()));
                    }
                }
                template.chat = out.iter().any(|(r, _)| *r != Role::Instruction);
                out
            }
        }
        _ => Vec::new(),
    };
    if messages.is_empty() {
        return Err(ParseError {
            message: "not a prompt config: expected a list of messages ({role, content}), a `messages` list, \
                      or `system` / `prompt` / `template` / `user` strings"
                .to_owned(),
            position: Position { line: 1, column: 1 },
        });
    }
    for (role, text) in messages {
        let syntax = Syntax::detect(&text);
        let lines = locator.locate(&text);
        let text = placeholders::blank_comments(&text, syntax);
        template.messages.push(Message { role, placeholders: placeholders::find(&text, syntax), text, lines });
    }
    Ok(template)
}

fn messages_of(items: &[Value]) -> Result<Vec<(Role, String)>, ParseError> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (role, content) = match item {
            Value::Mapping(m) => (m.get("role").and_then(Value::as_str), m.get("content")),
            // LangChain's ("system", "text") pairs.
            Value::Sequence(pair) if pair.len() == 2 => (pair[0].as_str(), pair.get(1)),
            _ => (None, None),
        };
        let role_name = role.ok_or_else(|| ParseError {
            message: format!("messages[{i}]: a message needs a `role` and a `content`"),
            position: Position { line: 1, column: 1 },
        })?;
        let role = Role::parse(role_name).ok_or_else(|| ParseError {
            message: format!(
                "messages[{i}].role: unknown role `{role_name}` (expected system, developer, user, assistant or tool)"
            ),
            position: Position { line: 1, column: 1 },
        })?;
        let text = match content {
            Some(Value::String(s)) => s.clone(),
            // OpenAI content parts: the text parts, one per line.
            Some(Value::Sequence(parts)) => parts
                .iter()
                .filter_map(|p| p.as_mapping()?.get("text")?.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
                .join("\n"),
            Some(Value::Null) | None => String::new(),
            Some(_) => {
                return Err(ParseError {
                    message: format!("messages[{i}].content: expected text or a list of content parts"),
                    position: Position { line: 1, column: 1 },
                });
            }
        };
        out.push((role, text));
    }
    Ok(out)
}

/// Byte offsets of line starts, for offset → (line, column).
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    fn position(&self, offset: usize) -> Position {
        let line = self.starts.partition_point(|s| *s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = self.text.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
        Position { line, column }
    }
}

/// Finds where the lines of a config's message text sit in the file. The
/// parsed text differs from the file (quotes, escapes, block-scalar
/// indentation), so each line is searched for after the previous one; a
/// line that cannot be found (escaped characters) takes the position of
/// the last one found.
struct Locator<'a> {
    index: LineIndex<'a>,
    cursor: usize,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        Locator { index: LineIndex::new(text), cursor: 0 }
    }

    fn locate(&mut self, message: &str) -> Vec<(usize, Position)> {
        let mut out = Vec::new();
        let mut offset = 0;
        let mut last = self.index.position(self.cursor);
        for line in message.split_inclusive('\n') {
            let content = line.trim_end_matches(['\n', '\r']);
            let lead = content.len() - content.trim_start().len();
            let needle = content.trim();
            let found = if needle.is_empty() {
                None
            } else {
                self.index.text.get(self.cursor..).and_then(|rest| rest.find(needle)).map(|i| self.cursor + i)
            };
            let pos = match found {
                Some(at) => {
                    self.cursor = at + needle.len();
                    let p = self.index.position(at);
                    // Positions are of the line's first byte: step back over
                    // its leading whitespace, which the search skipped.
                    Position { line: p.line, column: p.column.saturating_sub(lead).max(1) }
                }
                None => last,
            };
            last = pos;
            out.push((offset, pos));
            offset += line.len();
        }
        if out.is_empty() {
            out.push((0, last));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_one_instruction_message_with_file_positions() {
        let text = "You are a helpful bot.\n\nQuestion: {question}\n";
        let t = &parse(text, Format::Text).expect("parses")[0];
        assert_eq!(t.messages.len(), 1);
        let m = &t.messages[0];
        assert_eq!(m.role, Role::Instruction);
        let at = m.text.find("{question}").expect("placeholder");
        assert_eq!(m.position(at), Position { line: 3, column: 11 });
        assert!(!t.chat);
    }

    #[test]
    fn prompty_role_lines_and_front_matter_split_the_body() {
        let text = "---\nname: qa\nmodel:\n  parameters:\n    response_format: { type: json_object }\n---\nsystem:\nYou answer questions.\n\nuser:\n{{question}}\n";
        let t = &parse(text, Format::Text).expect("parses")[0];
        assert_eq!(t.output, Some(OutputFormat::Json));
        let roles: Vec<Role> = t.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::System, Role::User]);
        assert_eq!(t.messages[1].start(), Position { line: 11, column: 1 });
        assert_eq!(t.messages[1].placeholders[0].name, "question");
    }

    #[test]
    fn dotprompt_role_helpers_mark_roles() {
        let text = "{{role \"system\"}}\nBe brief.\n{{role \"user\"}}\n{{query}}\n";
        let t = &parse(text, Format::Text).expect("parses")[0];
        let roles: Vec<Role> = t.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::System, Role::User]);
    }

    #[test]
    fn yaml_messages_are_located_line_by_line() {
        let text = "messages:\n  - role: system\n    content: |\n      You are a support bot.\n      Context: {{ docs }}\n  - role: user\n    content: \"{{ question }}\"\n";
        let t = &parse(text, Format::Yaml).expect("parses")[0];
        assert_eq!(t.messages.len(), 2);
        let sys = &t.messages[0];
        let at = sys.text.find("{{ docs }}").expect("placeholder");
        assert_eq!(sys.position(at), Position { line: 5, column: 16 });
        assert_eq!(t.messages[1].start().line, 7);
    }

    #[test]
    fn json_content_parts_and_langchain_pairs_are_read() {
        let text = r#"{"messages": [{"role": "system", "content": [{"type": "text", "text": "Be kind."}]}, ["human", "{q}"]]}"#;
        let t = &parse(text, Format::Json).expect("parses")[0];
        assert_eq!(t.messages[0].text, "Be kind.");
        assert_eq!(t.messages[1].role, Role::User);
        assert_eq!(t.messages[1].placeholders[0].name, "q");
    }

    #[test]
    fn malformed_configs_name_the_line_or_the_field() {
        let e = parse("messages:\n  - role: system\n   content: x\n", Format::Yaml).expect_err("bad yaml");
        assert!(e.position.line >= 2, "{e:?}");
        let e = parse("{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}", Format::Json).expect_err("role");
        assert!(e.message.contains("messages[0].role"), "{}", e.message);
        let e = parse("{\"a\": 1}", Format::Json).expect_err("shape");
        assert!(e.message.contains("not a prompt config"), "{}", e.message);
    }

    #[test]
    fn an_error_at_the_end_of_input_is_on_the_last_line() {
        // Found by the fuzz target: YAML reported `{` at end of file on line 2.
        let e = parse("{", Format::Yaml).expect_err("unclosed");
        assert_eq!(e.position.line, 1, "{e:?}");
    }

    #[test]
    fn several_yaml_documents_are_several_templates() {
        let text = "system: one\n---\nsystem: two\n";
        let ts = parse(text, Format::Yaml).expect("parses");
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[1].messages[0].start().line, 3);
    }
}
