//! Prompt schemas (`llmsec lint --schema FILE`): the roles, sections and
//! variables a team's templates must have, and where each variable may go.
//!
//! ```yaml
//! roles:
//!   required: [system, user]
//!   allowed: [system, user, assistant]
//! sections:
//!   - name: Instructions      # a heading, an <instructions> tag or an "Instructions:" label
//!     role: system
//!   - name: Examples
//!     required: false
//! variables:
//!   question: { required: true, positions: [user], trust: untrusted }
//!   company: { positions: [system], trust: trusted }
//! additional_variables: false
//! output: json
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::LintError;
use crate::source::{OutputFormat, Role};

/// Whether a variable's text is the application's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// The application's own text (configuration, dates, product names).
    Trusted,
    /// Text from users, documents, web pages, tools.
    Untrusted,
}

/// Which roles a template must and may have.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesSchema {
    /// Roles every template must have.
    #[serde(default)]
    pub required: Vec<Role>,
    /// Roles a template may have (absent: any).
    #[serde(default)]
    pub allowed: Option<Vec<Role>>,
}

/// A section the instructions must contain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionSchema {
    /// The section's name: a Markdown heading, an XML-style tag or a
    /// `Name:` label line with this name (case-insensitive).
    pub name: String,
    /// The role whose text must hold it (absent: any message).
    #[serde(default)]
    pub role: Option<Role>,
    /// Whether it must be there (default true; false documents it only).
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// What a variable may be.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableSchema {
    /// Every template must interpolate it.
    #[serde(default)]
    pub required: bool,
    /// The roles it may be interpolated into (absent: any).
    #[serde(default)]
    pub positions: Option<Vec<Role>>,
    /// Whether its text is the application's own.
    #[serde(default)]
    pub trust: Option<Trust>,
}

/// A prompt schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSchema {
    /// Required and allowed roles.
    #[serde(default)]
    pub roles: RolesSchema,
    /// Sections.
    #[serde(default)]
    pub sections: Vec<SectionSchema>,
    /// Declared variables.
    #[serde(default)]
    pub variables: BTreeMap<String, VariableSchema>,
    /// Whether variables not declared above may appear (default true).
    #[serde(default = "yes")]
    pub additional_variables: bool,
    /// The format a parser expects from the answer.
    #[serde(default)]
    pub output: Option<OutputFormat>,
}

impl PromptSchema {
    /// Reads a schema file: YAML (`.yaml`/`.yml`), JSON (`.json`) or TOML
    /// (`.toml`). Unknown keys are errors naming them.
    pub fn from_path(path: &Path) -> Result<PromptSchema, LintError> {
        let text = std::fs::read_to_string(path).map_err(|e| LintError::Schema(format!("{}: {e}", path.display())))?;
        let name = path.to_string_lossy().to_ascii_lowercase();
        let parsed = if name.ends_with(".toml") {
            toml::from_str(&text).map_err(|e| e.to_string())
        } else if name.ends_with(".json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            serde_norway::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|e| LintError::Schema(format!("{}: {e}", path.display())))
    }

    /// The declared trust of a variable.
    pub fn trust(&self, name: &str) -> Option<Trust> {
        self.variables.get(name).and_then(|v| v.trust)
    }
}

/// Whether a message text holds a section named `name`: a Markdown
/// heading (`## Name`), a tag (`<name>` / `<name attr>`; spaces in the name
/// read as `_` or `-`), a label line (`Name:` or `**Name**`), or `[Name]`.
pub fn has_section(text: &str, name: &str) -> bool {
    let want = name.trim().to_lowercase();
    let tag_forms = [want.replace(' ', "_"), want.replace(' ', "-"), want.replace(' ', "")];
    let lower = text.to_lowercase();
    for tag in &tag_forms {
        if lower.contains(&format!("<{tag}>")) || lower.contains(&format!("<{tag} ")) {
            return true;
        }
    }
    lower.lines().any(|line| {
        let t = line.trim();
        let heading = t.trim_start_matches('#');
        if heading.len() < t.len() && heading.trim().trim_end_matches('#').trim().trim_end_matches(':') == want {
            return true;
        }
        let bare = t.trim_matches('*').trim_matches('_').trim();
        let label = bare.strip_suffix(':').unwrap_or(bare).trim_matches('*').trim();
        (label == want && (t.ends_with(':') || t.starts_with("**") || t.starts_with("__")))
            || t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) == Some(want.as_str())
            || t.split_once(':').is_some_and(|(head, _)| head.trim().trim_matches('*') == want)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_found_as_headings_tags_and_labels() {
        assert!(has_section("# Instructions\nDo x", "Instructions"));
        assert!(has_section("## Output Format ##\n", "output format"));
        assert!(has_section("<output_format>json</output_format>", "Output format"));
        assert!(has_section("Rules: be kind", "rules"));
        assert!(has_section("**Rules**\n- be kind", "Rules"));
        assert!(has_section("[Context]\n...", "context"));
        assert!(!has_section("Follow the rules below", "rules"));
    }

    #[test]
    fn unknown_schema_keys_are_named() {
        let e = serde_norway::from_str::<PromptSchema>("variables:\n  q: { trsut: untrusted }\n").expect_err("typo");
        assert!(e.to_string().contains("trsut"), "{e}");
        let e = serde_norway::from_str::<PromptSchema>("roles: { required: [wizard] }\n").expect_err("role");
        assert!(e.to_string().contains("wizard"), "{e}");
    }

    #[test]
    fn round_trips_through_yaml_json_and_toml() {
        let s: PromptSchema = serde_norway::from_str(
            "roles: { required: [system, user], allowed: [system, user] }\nsections: [{ name: Rules, role: system }]\nvariables:\n  q: { required: true, positions: [user], trust: untrusted }\nadditional_variables: false\noutput: json\n",
        )
        .expect("valid");
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(serde_json::from_str::<PromptSchema>(&json).expect("json back"), s);
        let t = toml::to_string(&s).expect("toml");
        assert_eq!(toml::from_str::<PromptSchema>(&t).expect("toml back"), s);
        let y = serde_norway::to_string(&s).expect("yaml");
        assert_eq!(serde_norway::from_str::<PromptSchema>(&y).expect("yaml back"), s);
    }
}
