//! Pieces every subcommand shares: building the engine from `--config`,
//! the `--format` switch, exit codes, broken-pipe handling and making
//! untrusted text safe to print on a terminal.

use std::io;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use llm_security::{SecurityConfig, SecurityEngine};

/// Exit status when the verdict is allow.
pub const EXIT_CLEAN: u8 = 0;
/// Exit status when threats changed the verdict (sanitize or block).
pub const EXIT_FLAGGED: u8 = 1;
/// Exit status on any error.
pub const EXIT_ERROR: u8 = 2;

/// How results are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    #[default]
    Human,
    /// JSON for programs.
    Json,
}

/// `--config`: where the engine's configuration comes from.
#[derive(Debug, Clone, Default, Args)]
pub struct EngineArgs {
    /// Engine configuration file (.toml, .yaml/.yml or .json); the built-in
    /// defaults when omitted.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl EngineArgs {
    /// Loads and validates the configuration, then builds the engine.
    pub fn build(&self) -> anyhow::Result<SecurityEngine> {
        let config = match &self.config {
            Some(path) => SecurityConfig::from_path(path)?,
            None => SecurityConfig::default(),
        };
        SecurityEngine::try_with_config(config).context("cannot build the engine")
    }
}

/// True when `e` (or anything in its chain) is a write to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// Turns a broken pipe into success: the reader went away, which is how
/// `llmsec scan … | head` ends, not an error.
pub fn ignore_broken_pipe(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Text from an untrusted source made safe for a terminal: control
/// characters (newlines, tabs, ANSI escapes, bidi controls) are written as
/// escapes so a scanned attack cannot drive the user's terminal.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || is_format_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Bidi and other invisible format controls, which `char::is_control`
/// does not cover.
fn is_format_control(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}'
        | '\u{FEFF}'
        | '\u{E0000}'..='\u{E007F}')
}

/// The first `max` characters of `s`, with `…` when something was cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Parses `--text-features`: a comma-separated list of `ngrams` and
/// `concepts` (at least one).
pub fn parse_text_features(s: &str) -> Result<llm_security::classifier::TextFeatures, String> {
    let mut f = llm_security::classifier::TextFeatures { ngrams: false, concepts: false };
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "ngrams" => f.ngrams = true,
            "concepts" => f.concepts = true,
            other => return Err(format!("unknown text feature {other:?} (expected ngrams, concepts)")),
        }
    }
    if !(f.ngrams || f.concepts) {
        return Err("name at least one text feature: ngrams, concepts".into());
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_terminal_controls() {
        assert_eq!(printable("a\nb\t\u{1b}[31mred"), "a\\nb\\t\\u{1b}[31mred");
        assert_eq!(printable("abc\u{202E}def"), "abc\\u{202e}def");
        assert_eq!(printable("héllo 世界"), "héllo 世界");
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("héllo", 5), "héllo");
        assert_eq!(truncate_chars("", 3), "");
    }

    #[test]
    fn broken_pipe_is_found_in_the_chain() {
        let e = anyhow::Error::new(io::Error::new(io::ErrorKind::BrokenPipe, "gone")).context("writing results");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
        assert!(ignore_broken_pipe(Err(io::ErrorKind::BrokenPipe.into())).is_ok());
        assert!(ignore_broken_pipe(Err(io::ErrorKind::PermissionDenied.into())).is_err());
    }

    #[test]
    fn missing_config_file_is_an_error_naming_it() {
        let args = EngineArgs { config: Some(PathBuf::from("/nonexistent/llmsec.toml")) };
        let e = args.build().err().map(|e| format!("{e:#}"));
        assert!(e.as_deref().unwrap_or("").contains("/nonexistent/llmsec.toml"), "{e:?}");
    }

    #[test]
    fn text_features_parse_lists_and_name_bad_items() {
        let f = parse_text_features("ngrams, concepts").map_err(|e| e.to_string());
        assert_eq!(f, Ok(llm_security::classifier::TextFeatures { ngrams: true, concepts: true }));
        let only = parse_text_features("concepts").map_err(|e| e.to_string());
        assert_eq!(only, Ok(llm_security::classifier::TextFeatures { ngrams: false, concepts: true }));
        assert!(parse_text_features("words").is_err_and(|e| e.contains("words")));
        assert!(parse_text_features("").is_err_and(|e| e.contains("at least one")));
    }
}
