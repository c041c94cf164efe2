//! Tuning aid: which rules fire on which labels of a labelled JSONL set.
//!
//! ```text
//! cargo run --release -p llm-security --example rule_stats -- ../shared/datasets/prompts-dev-*.jsonl
//! ```
//! Prints, per rule, how many rows of each label it fired on, then a few
//! benign rows each rule fired on (false positives to look at).

use std::collections::BTreeMap;
use std::io::BufRead;

use llm_security::SecurityEngine;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = SecurityEngine::new();
    let mut hits: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut totals: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut fps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let show = std::env::var("SHOW").ok().and_then(|s| s.parse().ok()).unwrap_or(3usize);
    for path in std::env::args().skip(1) {
        for line in std::io::BufReader::new(std::fs::File::open(&path)?).lines() {
            let v: serde_json::Value = serde_json::from_str(&line?)?;
            let (Some(text), Some(label)) = (v["text"].as_str(), v["label"].as_str()) else { continue };
            let a = engine.analyze_input_sync(text)?;
            let t = totals.entry(label.to_owned()).or_default();
            t.0 += 1;
            if a.is_secure() && label != "benign" && std::env::var_os("MISSED").is_some() {
                let ctx: String = text.chars().take(220).collect();
                println!("MISSED {label} | {}", ctx.replace('\n', " "));
            }
            if !a.is_secure() {
                t.1 += 1;
                if label == "benign" && std::env::var_os("FLAGGED").is_some() {
                    let why: Vec<String> = a
                        .threats()
                        .iter()
                        .map(|t| {
                            format!("{}:{}({:.2})", t.kind, t.rule.as_deref().unwrap_or(&t.category), t.confidence)
                        })
                        .collect();
                    let ctx: String = text.chars().take(160).collect();
                    println!("FLAGGED {} | {}", why.join(","), ctx.replace('\n', " "));
                }
            }
            for th in a.threats() {
                let key = format!("{}/{}", th.kind, th.rule.as_deref().unwrap_or(&th.category));
                *hits.entry(key.clone()).or_default().entry(label.to_owned()).or_default() += 1;
                if label == "benign" {
                    let v = fps.entry(key).or_default();
                    if v.len() < show {
                        let snippet: String = th.span.slice(text).chars().take(80).collect();
                        let ctx: String = text.chars().take(140).collect();
                        v.push(format!("[{snippet}] {}", ctx.replace('\n', " ")));
                    }
                }
            }
        }
    }
    for (label, (n, flagged)) in &totals {
        println!("{label:10} rows {n:5} flagged {flagged:5} ({:.2}%)", 100.0 * *flagged as f64 / *n as f64);
    }
    println!("\n{:60} {:>9} {:>9} {:>9}", "rule", "injection", "jailbreak", "benign");
    for (rule, by) in &hits {
        let g = |l: &str| by.get(l).copied().unwrap_or(0);
        println!("{rule:60} {:9} {:9} {:9}", g("injection"), g("jailbreak"), g("benign"));
    }
    println!();
    for (rule, v) in &fps {
        for s in v {
            println!("FP {rule}: {s}");
        }
    }
    Ok(())
}
