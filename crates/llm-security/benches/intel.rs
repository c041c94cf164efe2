//! Criterion bench of threat intelligence: what a feed of 1 000 known
//! attacks adds to `analyze_input`, on a 1 KiB benign prompt, a 200-byte
//! benign prompt and an edited known attack, each measured with and without
//! the feed (the difference is the near-duplicate search; normalization is
//! shared with the other scanners).
//!
//! Run: `cargo bench -p llm-security --bench intel`
//! (quick: `-- --warm-up-time 1 --measurement-time 3`).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use llm_security::SecurityEngine;
use llm_security::intel::ThreatIntel;

#[path = "support/corpus.rs"]
mod corpus;
use corpus::prose;

/// Words the synthetic attacks are drawn from.
const WORDS: &[&str] = &[
    "ignore",
    "previous",
    "rules",
    "persona",
    "unrestricted",
    "never",
    "refuse",
    "answer",
    "anything",
    "developer",
    "mode",
    "enabled",
    "pretend",
    "character",
    "story",
    "grandmother",
    "secret",
    "reveal",
    "system",
    "prompt",
    "policy",
    "filter",
    "bypass",
    "jailbreak",
    "freedom",
    "opinion",
    "hypothetical",
    "fiction",
    "villain",
    "expert",
    "chemistry",
    "weapon",
    "hack",
    "password",
    "token",
    "stay",
    "always",
    "obey",
    "command",
    "respond",
];

/// 1 000 synthetic attack entries of 25-40 words, drawn from `WORDS` by a
/// fixed generator: as varied as a real feed, reproducible.
fn feed(n: usize) -> (String, String) {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut lines = String::new();
    let mut first = String::new();
    for i in 0..n {
        let len = 25 + (next() % 16) as usize;
        let text: Vec<&str> = (0..len).map(|_| WORDS[(next() % WORDS.len() as u64) as usize]).collect();
        let text = text.join(" ");
        if i == 0 {
            first = text.clone();
        }
        lines.push_str(&format!("{{\"type\":\"attack\",\"source\":\"bench\",\"text\":\"{text}\"}}\n"));
    }
    (lines, first)
}

fn matching(c: &mut Criterion) {
    let (lines, first) = feed(1000);
    let intel = ThreatIntel::from_jsonl(&lines).unwrap_or_default();
    let plain = SecurityEngine::new();
    let with = SecurityEngine::new().with_threat_intel(intel);
    // The first attack with two words replaced and one appended.
    let mut words: Vec<&str> = first.split(' ').collect();
    words[3] = "totally";
    words[10] = "different";
    words.push("please");
    let edited = words.join(" ");
    let caught =
        with.analyze_input_sync(&edited).is_ok_and(|a| a.threats().iter().any(|t| t.scanner == "threat_intel"));
    if !caught {
        eprintln!("note: the edited attack is not found; the bench measures a miss");
    }
    let cases = [("benign_1KiB", prose(1024)), ("benign_200B", prose(200)), ("edited_attack", edited)];
    let mut g = c.benchmark_group("threat_intel");
    for (name, text) in &cases {
        g.bench_function(format!("{name}/without_feed"), |b| b.iter(|| plain.analyze_input_sync(black_box(text))));
        g.bench_function(format!("{name}/with_feed"), |b| b.iter(|| with.analyze_input_sync(black_box(text))));
    }
    g.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
