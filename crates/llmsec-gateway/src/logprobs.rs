//! Log-probabilities of the sampled tokens, which upstreams send when the
//! client asks (`logprobs: true` on chat, `logprobs: N` on completions):
//! read into the telemetry event (`data.logprobs`, choice 0) so Sentinel's
//! `entropy` detector sees gateway traffic, and kept from spelling out text
//! the gateway has not released or has rewritten.
//!
//! Chat answers list tokens in `logprobs.content[]` (and `refusal[]`), each
//! `{token, logprob, bytes, top_logprobs[]}`; completions in
//! `logprobs.tokens`, `token_logprobs` and `top_logprobs` (objects keyed by
//! token).

use serde_json::Value;

/// Most values an event carries (Sentinel refuses more).
pub(crate) const MAX_VALUES: usize = 100_000;

/// Appends the logprobs of `choice`'s sampled tokens to `out`: finite
/// values of at most 0 (anything else is not a log-probability and is
/// skipped), up to [`MAX_VALUES`].
pub(crate) fn collect(choice: &Value, out: &mut Vec<f64>) {
    let Some(lp) = choice.get("logprobs").filter(|v| v.is_object()) else { return };
    let chat = lp.get("content").and_then(Value::as_array).into_iter().flatten().map(|t| t.get("logprob"));
    let legacy = lp.get("token_logprobs").and_then(Value::as_array).into_iter().flatten().map(Some);
    for v in chat.chain(legacy).flatten() {
        if out.len() >= MAX_VALUES {
            return;
        }
        if let Some(x) = v.as_f64().filter(|x| x.is_finite() && *x <= 0.0) {
            out.push(x);
        }
    }
}

/// Blanks the token texts in `choice`'s logprobs and keeps the numbers: a
/// streamed chunk's tokens spell its raw text, which the gateway may still
/// hold back, redact or refuse. `token` becomes `""` and `bytes` `null`;
/// completions' `tokens` become `""` and their `top_logprobs` (keyed by
/// token) `null`.
pub(crate) fn blank_tokens(choice: &mut Value) {
    let Some(lp) = choice.get_mut("logprobs").and_then(Value::as_object_mut) else { return };
    for key in ["content", "refusal"] {
        for entry in lp.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten() {
            blank_entry(entry);
            for top in entry.get_mut("top_logprobs").and_then(Value::as_array_mut).into_iter().flatten() {
                blank_entry(top);
            }
        }
    }
    if let Some(tokens) = lp.get_mut("tokens").and_then(Value::as_array_mut) {
        tokens.iter_mut().for_each(|t| *t = Value::String(String::new()));
    }
    if let Some(top) = lp.get_mut("top_logprobs") {
        *top = Value::Null;
    }
}

fn blank_entry(entry: &mut Value) {
    if let Some(o) = entry.as_object_mut() {
        if o.contains_key("token") {
            o.insert("token".into(), Value::String(String::new()));
        }
        if o.contains_key("bytes") {
            o.insert("bytes".into(), Value::Null);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_are_read_from_chat_and_completions_and_checked() {
        let mut out = Vec::new();
        let chat = json!({"logprobs": {"content": [
            {"token": "Par", "logprob": -0.5, "bytes": [80, 97, 114], "top_logprobs": []},
            {"token": "is", "logprob": 0.3},
            {"token": "!", "logprob": "x"},
            {"token": ".", "logprob": -2.0}
        ]}});
        collect(&chat, &mut out);
        assert_eq!(out, [-0.5, -2.0]);
        collect(&json!({"logprobs": {"tokens": ["a"], "token_logprobs": [-1.5, null]}}), &mut out);
        assert_eq!(out, [-0.5, -2.0, -1.5]);
        collect(&json!({"logprobs": null}), &mut out);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn blanking_keeps_numbers_and_drops_token_text() {
        let mut chat = json!({"index": 0, "logprobs": {"content": [
            {"token": "sk-", "logprob": -0.1, "bytes": [115, 107, 45],
             "top_logprobs": [{"token": "sk-", "logprob": -0.1, "bytes": [115, 107, 45]}]}
        ]}});
        blank_tokens(&mut chat);
        assert_eq!(
            chat["logprobs"]["content"][0],
            json!({"token": "", "logprob": -0.1, "bytes": null, "top_logprobs": [{"token": "", "logprob": -0.1, "bytes": null}]})
        );
        let mut legacy = json!({"logprobs": {"tokens": ["sk-", "abc"], "token_logprobs": [-0.1, -0.2],
            "top_logprobs": [{"sk-": -0.1}], "text_offset": [0, 3]}});
        blank_tokens(&mut legacy);
        assert_eq!(
            legacy["logprobs"],
            json!({"tokens": ["", ""], "token_logprobs": [-0.1, -0.2], "top_logprobs": null, "text_offset": [0, 3]})
        );
    }
}
