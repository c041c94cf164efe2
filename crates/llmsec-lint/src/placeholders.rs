//! Placeholders in template text: Jinja / Handlebars / Mustache
//! (`{{ name }}`, `{{{ name }}}`, `{% for d in docs %}`), and Python
//! f-string / `str.format` or JavaScript template style (`{name}`,
//! `${name}`).
//!
//! A file uses one family: `{{` or `{%` anywhere means the Jinja family
//! (where single braces are literal text), otherwise single braces are
//! placeholders (where `{{` is an escaped brace).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// The placeholder family of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// `{{ … }}`, `{% … %}`, `{# … #}`.
    Jinja,
    /// `{name}` and `${name}`.
    Brace,
}

impl Syntax {
    /// The family a text is written in.
    pub fn detect(text: &str) -> Syntax {
        if text.contains("{{") || text.contains("{%") { Syntax::Jinja } else { Syntax::Brace }
    }
}

/// One interpolation in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// The variable interpolated. For a loop variable or a Handlebars
    /// `this`, the collection it iterates (`{% for d in docs %}{{ d.text }}`
    /// reads `docs`).
    pub name: String,
    /// Bytes of the whole placeholder (braces included) in the message.
    pub span: Range<usize>,
}

static JINJA: LazyLock<Regex> = LazyLock::new(|| {
    // Comments, statements, then expressions (triple braces first).
    Regex::new(r"(?s)\{#.*?#\}|\{%-?\s*(.*?)\s*-?%\}|\{\{\{\s*(.*?)\s*\}\}\}|\{\{-?\s*(.*?)\s*-?\}\}")
        .expect("static regex")
});
static BRACE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\{\{|\}\}|\$?\{([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*|\[[^\]{}]*\])*)(![rsa])?(:[^{}]*)?\}",
    )
    .expect("static regex")
});
static IDENT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*").expect("static regex"));
static FOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^for\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s*,\s*([A-Za-z_][A-Za-z0-9_]*))?\s+in\s+([A-Za-z_][A-Za-z0-9_]*)")
        .expect("static regex")
});

/// Words of Jinja expressions that are not variables.
const KEYWORDS: &[&str] =
    &["true", "false", "none", "True", "False", "None", "not", "loop", "range", "else", "this", "super", "self"];

static COMMENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)\{#.*?#\}|\{\{!--.*?--\}\}|\{\{![^}]*\}\}").expect("static regex"));

/// The text with template comments (`{# … #}`, `{{! … }}`, `{{!-- … --}}`)
/// turned into spaces: the model never sees them, and offsets stay put
/// (line breaks inside them are kept).
pub fn blank_comments(text: &str, syntax: Syntax) -> String {
    if syntax != Syntax::Jinja {
        return text.to_owned();
    }
    COMMENT
        .replace_all(text, |c: &regex::Captures<'_>| {
            let mut blank = String::with_capacity(c[0].len());
            for ch in c[0].chars() {
                if ch == '\n' {
                    blank.push('\n');
                } else {
                    blank.extend(std::iter::repeat_n(' ', ch.len_utf8()));
                }
            }
            blank
        })
        .into_owned()
}

/// The placeholders of a text written in `syntax`.
pub fn find(text: &str, syntax: Syntax) -> Vec<Placeholder> {
    match syntax {
        Syntax::Jinja => find_jinja(text),
        Syntax::Brace => find_brace(text),
    }
}

fn find_brace(text: &str) -> Vec<Placeholder> {
    BRACE
        .captures_iter(text)
        .filter_map(|c| {
            let name = c.get(1)?;
            let whole = c.get(0)?;
            Some(Placeholder { name: name.as_str().to_owned(), span: whole.range() })
        })
        .collect()
}

fn find_jinja(text: &str) -> Vec<Placeholder> {
    let mut out = Vec::new();
    // Loop variables in scope → the collection they come from.
    let mut aliases: HashMap<String, String> = HashMap::new();
    // Handlebars `{{#each xs}}` blocks: what `this` means inside.
    let mut each: Vec<String> = Vec::new();
    for c in JINJA.captures_iter(text) {
        let Some(whole) = c.get(0) else { continue };
        if let Some(stmt) = c.get(1) {
            if let Some(f) = FOR.captures(stmt.as_str()) {
                let collection = f.get(3).map_or("", |m| m.as_str());
                let collection = aliases.get(collection).cloned().unwrap_or_else(|| collection.to_owned());
                for var in [f.get(1), f.get(2)].into_iter().flatten() {
                    aliases.insert(var.as_str().to_owned(), collection.clone());
                }
            }
            continue;
        }
        let Some(expr) = c.get(2).or_else(|| c.get(3)) else { continue };
        let expr = expr.as_str().trim();
        if let Some(block) = expr.strip_prefix('#') {
            // `{{#each docs}}`, `{{#if x}}`: the argument is read, not shown.
            let mut words = block.split_whitespace();
            if words.next() == Some("each")
                && let Some(arg) = words.next()
            {
                let root = root_name(arg).unwrap_or_default();
                let resolved = resolve(&root, &aliases, &each);
                each.push(resolved);
            }
            continue;
        }
        if let Some(close) = expr.strip_prefix('/') {
            if close.trim() == "each" {
                each.pop();
            }
            continue;
        }
        if expr.starts_with(['!', '>', '^']) || expr == "else" || expr.starts_with("role ") {
            continue;
        }
        if let Some(name) = first_variable(expr) {
            let name = resolve(&name, &aliases, &each);
            if !name.is_empty() {
                out.push(Placeholder { name, span: whole.range() });
            }
        }
    }
    out
}

fn resolve(name: &str, aliases: &HashMap<String, String>, each: &[String]) -> String {
    if name == "this" || name == "." {
        return each.last().cloned().unwrap_or_default();
    }
    aliases.get(name).cloned().unwrap_or_else(|| name.to_owned())
}

fn root_name(expr: &str) -> Option<String> {
    IDENT.find(expr).map(|m| m.as_str().to_owned())
}

/// The first variable an expression reads: the root of its first path
/// that is neither a literal, a keyword nor a function being called
/// (`{{ fmt(user.name) | e }}` reads `user`).
fn first_variable(expr: &str) -> Option<String> {
    if expr == "this" || expr.starts_with("this.") || expr == "." {
        return Some("this".to_owned());
    }
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' || b == b'\'' {
            // Skip a string literal.
            let close = expr[i + 1..].find(b as char).map_or(bytes.len(), |j| i + 1 + j + 1);
            i = close;
            continue;
        }
        if b == b'|' {
            // Filters apply to what came before; their names are not variables.
            return None;
        }
        if b.is_ascii_alphabetic() || b == b'_' {
            let m = IDENT.find(&expr[i..])?;
            let word = m.as_str();
            let end = i + word.len();
            let called = expr[end..].trim_start().starts_with('(');
            let attribute = i > 0 && bytes[i - 1] == b'.';
            if !called && !attribute && !KEYWORDS.contains(&word) {
                return Some(word.to_owned());
            }
            i = end;
            continue;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(text: &str) -> Vec<String> {
        find(text, Syntax::detect(text)).into_iter().map(|p| p.name).collect()
    }

    #[test]
    fn jinja_expressions_filters_and_loops() {
        assert_eq!(names("Hi {{ user_name | e }} and {{ fmt(doc.title) }}"), ["user_name", "doc"]);
        assert_eq!(names("{% for d in documents %}<doc>{{ d.text }}</doc>{% endfor %}"), ["documents"]);
        assert_eq!(names("{# a comment {{ x }} #}{{ \"literal\" }}{{ y }}"), ["y"]);
        assert_eq!(names("{{{ raw_html }}}"), ["raw_html"]);
    }

    #[test]
    fn handlebars_blocks_and_this() {
        assert_eq!(names("{{#each results}}- {{this}}\n{{/each}}{{#if x}}{{/if}}{{> partial}}"), ["results"]);
        assert_eq!(names("{{#each results}}{{this.snippet}}{{/each}}"), ["results"]);
    }

    #[test]
    fn brace_placeholders_and_escapes() {
        assert_eq!(names("Q: {question}\nA: {{literal}}"), ["literal"]);
        assert_eq!(names("Q: {question!r:>10} {doc.text} {items[0]} ${page}"), ["question", "doc", "items", "page"]);
        // Escaped braces in an f-string are not placeholders.
        let text = "json like {\"a\": 1} and {name}";
        assert_eq!(find(text, Syntax::Brace).iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["name"]);
    }

    #[test]
    fn comments_are_blanked_byte_for_byte() {
        let text = "a {# é\n{{ x }} #} {{ y }} {{! note }}";
        let blank = blank_comments(text, Syntax::Jinja);
        assert_eq!(blank.len(), text.len());
        assert_eq!(blank.matches('\n').count(), 1);
        assert_eq!(find(&blank, Syntax::Jinja).iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["y"]);
    }

    #[test]
    fn spans_cover_the_braces() {
        let text = "a {{ x }} b";
        let p = &find(text, Syntax::Jinja)[0];
        assert_eq!(&text[p.span.clone()], "{{ x }}");
    }

    proptest! {
        #[test]
        fn spans_are_char_boundaries_inside_the_text(text in "\\PC{0,200}") {
            for syntax in [Syntax::Jinja, Syntax::Brace] {
                for p in find(&text, syntax) {
                    prop_assert!(p.span.end <= text.len());
                    prop_assert!(text.is_char_boundary(p.span.start) && text.is_char_boundary(p.span.end));
                }
            }
        }
    }
}
