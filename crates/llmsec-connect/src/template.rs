//! Routing-key and subject templates: `llmsec.{event}.{tenant}`.
//!
//! A template is literal text with two placeholders, `{event}` (the outbox
//! record's event name, e.g. `anomaly.detected`) and `{tenant}`. It is parsed
//! once, when a sink is built, so a typo (`{tennant}`, a lone `{`) is a
//! configuration error rather than a surprise at the first publish.

use std::borrow::Cow;
use std::fmt;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Event,
    Tenant,
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template is empty.
    #[error("must not be empty")]
    Empty,
    /// A placeholder other than `{event}` and `{tenant}`.
    #[error("unknown placeholder {{{0}}}: only {{event}} and {{tenant}} are replaced")]
    UnknownPlaceholder(String),
    /// A `{` with no `}` after it.
    #[error("a '{{' at byte {0} is not closed by '}}'")]
    Unclosed(usize),
    /// A `}` with no `{` before it.
    #[error("a '}}' at byte {0} closes nothing")]
    Unopened(usize),
}

impl Template {
    /// Parses `{event}` and `{tenant}` out of `s`; any other brace is an error.
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        if s.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = s;
        let mut at = 0;
        while let Some(i) = rest.find(['{', '}']) {
            if rest.as_bytes()[i] == b'}' {
                return Err(TemplateError::Unopened(at + i));
            }
            literal.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let close = after.find('}').ok_or(TemplateError::Unclosed(at + i))?;
            let name = &after[..close];
            if name.contains('{') {
                return Err(TemplateError::Unclosed(at + i));
            }
            let part = match name {
                "event" => Part::Event,
                "tenant" => Part::Tenant,
                other => return Err(TemplateError::UnknownPlaceholder(other.to_owned())),
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            at += i + 1 + close + 1;
            rest = &after[close + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// The template filled in, each placeholder's value passed through `value`
    /// first (a sink's escaping; `Cow::Borrowed` to keep it as is).
    pub fn render<'a>(&self, event: &'a str, tenant: &'a str, value: impl Fn(&'a str) -> Cow<'a, str>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Event => out.push_str(&value(event)),
                Part::Tenant => out.push_str(&value(tenant)),
            }
        }
        out
    }

    /// The literal text before the first placeholder (all of it when there is none).
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Literal(s)) => s,
            _ => "",
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(s) => f.write_str(s)?,
                Part::Event => f.write_str("{event}")?,
                Part::Tenant => f.write_str("{tenant}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keep(s: &str) -> Cow<'_, str> {
        Cow::Borrowed(s)
    }

    #[test]
    fn placeholders_are_filled_in() {
        let t = Template::parse("llmsec.{event}.{tenant}").expect("parses");
        assert_eq!(t.render("anomaly.detected", "acme", keep), "llmsec.anomaly.detected.acme");
        assert_eq!(t.literal_prefix(), "llmsec.");
        let t = Template::parse("{tenant}-{event}-{tenant}").expect("parses");
        assert_eq!(t.render("e", "t", keep), "t-e-t");
        assert_eq!(t.literal_prefix(), "");
        let t = Template::parse("fixed").expect("parses");
        assert_eq!(t.render("e", "t", keep), "fixed");
        assert_eq!(t.literal_prefix(), "fixed");
    }

    #[test]
    fn values_go_through_the_escaper() {
        let t = Template::parse("a.{event}.{tenant}").expect("parses");
        let upper = |s: &str| Cow::Owned(s.to_uppercase());
        assert_eq!(t.render("x", "y", upper), "a.X.Y");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        assert_eq!(Template::parse(""), Err(TemplateError::Empty));
        assert_eq!(Template::parse("a.{tennant}"), Err(TemplateError::UnknownPlaceholder("tennant".into())));
        assert_eq!(Template::parse("a.{}"), Err(TemplateError::UnknownPlaceholder(String::new())));
        assert_eq!(Template::parse("a.{event"), Err(TemplateError::Unclosed(2)));
        assert_eq!(Template::parse("a.{ev{event}"), Err(TemplateError::Unclosed(2)));
        assert_eq!(Template::parse("{event}.b}"), Err(TemplateError::Unopened(9)));
        let msg = TemplateError::UnknownPlaceholder("topic".into()).to_string();
        assert_eq!(msg, "unknown placeholder {topic}: only {event} and {tenant} are replaced");
    }

    proptest! {
        // Any string parses or gives an error (no panic), and a template
        // that parses prints back to the text it came from.
        #[test]
        fn parse_never_panics_and_round_trips(s in "[a-z.{}]{0,24}|.{0,16}") {
            if let Ok(t) = Template::parse(&s) {
                prop_assert_eq!(t.to_string(), s);
            }
        }

        // Literal text without braces comes out unchanged around the values.
        #[test]
        fn literals_are_kept(a in "[^{}]{0,12}", b in "[^{}]{0,12}", ev in ".{0,8}", tn in ".{0,8}") {
            let t = Template::parse(&format!("{a}{{event}}{b}{{tenant}}")).expect("parses");
            prop_assert_eq!(t.render(&ev, &tn, keep), format!("{a}{ev}{b}{tn}"));
        }
    }
}
