//! Token counts estimated from text, for calls whose upstream sends no
//! `usage` (an OpenAI stream without `stream_options.include_usage`, a
//! stream cut off, a local model server). No tokenizer is bundled: each
//! provider's differs (OpenAI's `o200k_base`, Anthropic's, a local
//! model's), and OpenAI's alone would add megabytes of vocabulary to the
//! binary. The estimate follows how byte-pair encodings split text:
//!
//! - a run of ASCII letters is one token up to 8 letters and one more for
//!   each 8 after (common words are one token, long ones several);
//! - a run of digits is one token per 3 digits, as tokenizers group them;
//! - each other visible ASCII character (punctuation) is one token;
//! - spaces are absorbed into the word after them; each line break is one;
//! - each non-ASCII character is one token (CJK ideographs are one or two,
//!   accented letters usually part of one).
//!
//! On plain English this is close to OpenAI's counts; on code, base64 or
//! other scripts it can be far off. Events whose counts include an
//! estimate say so (`metadata.usage_estimated`).

/// Tokens a chat message costs beyond its text (role and separators), as
/// OpenAI's chat format adds them.
pub(crate) const PER_MESSAGE: u64 = 4;

/// The estimated token count of `text`.
pub(crate) fn estimate(text: &str) -> u64 {
    let mut tokens = 0u64;
    let (mut letters, mut digits) = (0u64, 0u64);
    let word = |n: u64| if n == 0 { 0 } else { 1 + (n - 1) / 8 };
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            tokens += digits.div_ceil(3);
            digits = 0;
            letters += 1;
            continue;
        }
        tokens += word(letters);
        letters = 0;
        if c.is_ascii_digit() {
            digits += 1;
            continue;
        }
        tokens += digits.div_ceil(3);
        digits = 0;
        if c == '\n' || (!c.is_ascii_whitespace() && !c.is_ascii_control()) {
            tokens += 1;
        }
    }
    tokens + word(letters) + digits.div_ceil(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_follow_words_punctuation_and_scripts() {
        assert_eq!(estimate(""), 0);
        assert_eq!(estimate("Paris"), 1);
        // As o200k_base splits it: Paris| is| the| capital| of| France|.
        assert_eq!(estimate("Paris is the capital of France."), 7);
        assert_eq!(estimate("internationalization"), 3);
        assert_eq!(estimate("in 2024, 1234567 people"), 8);
        assert_eq!(estimate("a\nb"), 3);
        assert_eq!(estimate("東京"), 2);
        assert_eq!(estimate("   "), 0);
        // A kilobyte of prose comes to a few hundred tokens, as tokenizers count it.
        let prose = "The quick brown fox jumps over the lazy dog. ".repeat(23);
        let n = estimate(&prose);
        assert!((200..=320).contains(&n), "{n}");
    }
}
