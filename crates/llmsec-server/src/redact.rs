//! What read answers leave out: secrets always, and the sensitive parts of
//! URLs for callers without the `admin` scope.
//!
//! Detector configs and actions are user-written JSON, so secrets are found
//! by key name ([`redact_secrets`]): signing secrets, passwords, tokens,
//! API and routing keys, and every value under a `headers` object (an
//! `Authorization` header is a credential whatever its name). URLs keep
//! their scheme, host and port for every reader; a caller without `admin`
//! sees their credentials, path, query and fragment as `***`
//! ([`mask_url`]): an incoming-webhook URL (Slack, Teams, Discord) carries
//! its token in the path.

use serde_json::Value;

/// What a secret's value is replaced by.
pub const REDACTED: &str = "[redacted]";

/// What a masked part of a URL reads as.
const MASK: &str = "***";

/// Whether a JSON key names a secret.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    matches!(
        k.as_str(),
        "secret"
            | "password"
            | "passwd"
            | "token"
            | "api_key"
            | "apikey"
            | "authorization"
            | "routing_key"
            | "integration_key"
            | "private_key"
            | "signing_key"
            | "access_key"
            | "secret_key"
            | "credentials"
            | "cookie"
    ) || k.ends_with("_secret")
        || k.ends_with("_password")
        || k.ends_with("_token")
}

/// Replaces the value of every secret-named key (at any depth) and every
/// value under a `headers` object with [`REDACTED`]. Null values stay null,
/// so a reader still sees that none is set.
pub fn redact_secrets(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if is_secret_key(k) {
                    if !x.is_null() {
                        *x = Value::String(REDACTED.into());
                    }
                } else if k.eq_ignore_ascii_case("headers")
                    && let Value::Object(h) = x
                {
                    for hv in h.values_mut() {
                        *hv = Value::String(REDACTED.into());
                    }
                } else {
                    redact_secrets(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

/// An http(s) URL as a caller without `admin` sees it: scheme, host and
/// port kept; credentials, path, query and fragment replaced by `***`
/// (`https://***@hooks.example:8443/***?***`). Anything that is not an
/// absolute http(s) URL is returned as is.
pub fn mask_url(s: &str) -> String {
    let Ok(u) = url::Url::parse(s.trim()) else { return s.to_owned() };
    if !matches!(u.scheme(), "http" | "https") {
        return s.to_owned();
    }
    let Some(host) = u.host_str() else { return s.to_owned() };
    let mut out = format!("{}://", u.scheme());
    if !u.username().is_empty() || u.password().is_some() {
        out.push_str(MASK);
        out.push('@');
    }
    out.push_str(host);
    if let Some(p) = u.port() {
        out.push_str(&format!(":{p}"));
    }
    out.push('/');
    if !matches!(u.path(), "" | "/") {
        out.push_str(MASK);
    }
    if u.query().is_some() {
        out.push('?');
        out.push_str(MASK);
    }
    if u.fragment().is_some() {
        out.push('#');
        out.push_str(MASK);
    }
    out
}

/// Masks every string value (at any depth) that is an http(s) URL.
pub fn mask_urls(v: &mut Value) {
    match v {
        Value::String(s) => {
            let masked = mask_url(s);
            if masked != *s {
                *s = masked;
            }
        }
        Value::Object(map) => map.values_mut().for_each(mask_urls),
        Value::Array(items) => items.iter_mut().for_each(mask_urls),
        _ => {}
    }
}

/// Masks (as [`mask_url`]) every http(s) URL inside free text, such as
/// an action's message ("queued for https://…"). A URL ends at white
/// space; closing punctuation after it is kept outside the mask.
pub fn mask_urls_in_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("http://").into_iter().chain(rest.find("https://")).min() {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        let token = &tail[..end];
        let url = token.trim_end_matches(['.', ',', ';', ':', ')', ']', '"', '\'']);
        out.push_str(&mask_url(url));
        out.push_str(&token[url.len()..]);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A detector's config or action list for a read answer: secrets
/// redacted, and URLs masked unless `admin`.
pub fn for_reader(mut v: Value, admin: bool) -> Value {
    redact_secrets(&mut v);
    if !admin {
        mask_urls(&mut v);
    }
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn urls_inside_text_are_masked_and_the_rest_kept() {
        assert_eq!(
            mask_urls_in_text("queued for https://u:p@hooks.example:8443/t/abc?token=x."),
            "queued for https://***@hooks.example:8443/***?***."
        );
        assert_eq!(
            mask_urls_in_text("a http://10.0.0.5/x and (https://b.example/y) end"),
            "a http://10.0.0.5/*** and (https://b.example/***) end"
        );
        assert_eq!(mask_urls_in_text("no url here"), "no url here");
        let once = mask_urls_in_text("sent to https://h.example/p?q=1");
        assert_eq!(mask_urls_in_text(&once), once, "masking is idempotent");
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn urls_are_masked_to_scheme_host_and_port() {
        for (url, want) in [
            ("https://hooks.example.com/x?token=abc#frag", "https://hooks.example.com/***?***#***"),
            ("http://user:pw@10.0.0.1:8080/hook", "http://***@10.0.0.1:8080/***"),
            ("https://alice@h.example/", "https://***@h.example/"),
            ("https://h.example", "https://h.example/"),
            ("https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/***"),
            ("http://[::1]:9/a", "http://[::1]:9/***"),
            ("shield.example.com:9090", "shield.example.com:9090"),
            ("not a url", "not a url"),
            ("mailto:a@b.example", "mailto:a@b.example"),
        ] {
            assert_eq!(mask_url(url), want, "{url}");
        }
    }

    #[test]
    fn secrets_are_redacted_by_key_at_any_depth() {
        let mut v = json!([
            {"type": "webhook", "config": {"url": "https://h.example/x?k=1", "secret": "s3cr3t-s3cr3t-s3cr3t", "template": null}},
            {"type": "webhook", "config": {"url": "https://h.example/y", "secret": null}},
            {"config": {"headers": {"Authorization": "Bearer abc", "X-Other": "v"}, "Api-Key": "k", "auth_token": "t",
                        "routing_key": "r", "nested": [{"password": "p"}], "max_tokens": 5, "metric": "total_tokens"}},
        ]);
        redact_secrets(&mut v);
        let text = v.to_string();
        for gone in ["s3cr3t", "Bearer abc", "\"v\"", "\"k\"", "\"t\"", "\"r\"", "\"p\""] {
            assert!(!text.contains(gone), "{gone} left in {text}");
        }
        assert_eq!(v[0]["config"]["secret"], REDACTED);
        assert_eq!(v[1]["config"]["secret"], Value::Null, "an unset secret stays visibly unset");
        assert_eq!(v[2]["config"]["max_tokens"], 5, "token counts are not secrets");
        assert_eq!(v[2]["config"]["metric"], "total_tokens");
        assert_eq!(v[0]["config"]["url"], "https://h.example/x?k=1", "redaction alone keeps URLs");
        let read = for_reader(v, false);
        assert_eq!(read[0]["config"]["url"], "https://h.example/***?***");
    }
}
