//! The configuration of a NATS JetStream sink.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::publish::SinkConfigError;
use crate::template::Template;

/// A NATS sink: the servers, the credentials, the subject template and the
/// JetStream stream that stores the records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkConfig {
    /// The servers, comma separated: `nats://host:4222` (`tls://` for TLS).
    /// No credentials here: they go in `user` + `password_env`, `token_env`
    /// or `creds_file`.
    pub url: String,
    /// A `.creds` file (user JWT and NKey seed), for NATS's decentralized auth.
    #[serde(default)]
    pub creds_file: Option<PathBuf>,
    /// The environment variable holding a token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// The user name, with the password in `password_env`.
    #[serde(default)]
    pub user: Option<String>,
    /// The environment variable holding `user`'s password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The subject, with `{event}` and `{tenant}` filled in per record
    /// (characters a subject cannot hold replaced, see [`subject_value`]).
    #[serde(default = "default_subject")]
    pub subject: String,
    /// The JetStream stream that must store the records: each publish asks
    /// the server to refuse it unless this stream takes the subject. Leave
    /// it out to accept whichever stream does.
    #[serde(default)]
    pub stream: Option<String>,
    /// Create `stream` (file storage) on connect when it does not exist.
    #[serde(default)]
    pub create_stream: bool,
    /// The subjects a created stream takes; by default the subject's
    /// leading literal tokens followed by `>` (`llmsec.>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// The created stream's duplicate window in seconds: a record published
    /// again within it (same idempotency key) is stored once. JetStream's
    /// default is 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_window_secs: Option<u64>,
}

fn default_subject() -> String {
    "llmsec.{event}.{tenant}".into()
}

/// How the sink authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Auth<'a> {
    None,
    CredsFile(&'a PathBuf),
    Token(&'a str),
    UserPassword(&'a str, &'a str),
}

/// A placeholder's value made fit for a subject: whitespace, control
/// characters, `*` and `>` become `_`, and so does an empty token (a value
/// that is empty, or starts, ends or doubles a `.`). Dots are kept, so
/// `anomaly.detected` stays two tokens.
pub fn subject_value(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == '*' || c == '>';
    let empty_token = s.is_empty() || s.starts_with('.') || s.ends_with('.') || s.contains("..");
    if !empty_token && !s.contains(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    let cleaned: String = s.chars().map(|c| if bad(c) { '_' } else { c }).collect();
    let tokens: Vec<&str> = cleaned.split('.').map(|t| if t.is_empty() { "_" } else { t }).collect();
    std::borrow::Cow::Owned(tokens.join("."))
}

/// Why `s` cannot be a subject to publish to, if it cannot.
fn subject_problem(s: &str) -> Option<&'static str> {
    if s.split('.').any(str::is_empty) {
        Some("has an empty token (a leading, trailing or doubled '.')")
    } else if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain whitespace")
    } else if s.contains(['*', '>']) {
        Some("must not contain the wildcards '*' or '>'")
    } else {
        None
    }
}

impl NatsSinkConfig {
    /// Checks what serde cannot; the error names the setting.
    pub fn validate(&self) -> Result<(), SinkConfigError> {
        self.checked().map(|_| ())
    }

    /// The parsed subject, the authentication and the stream's subjects,
    /// after the checks of [`validate`](Self::validate).
    pub(crate) fn checked(&self) -> Result<(Template, Auth<'_>, Vec<String>), SinkConfigError> {
        let bad = |field: &str, message: &str| Err(SinkConfigError::new(field, message));
        let servers: Vec<&str> = self.url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if servers.is_empty() {
            return bad("url", "must name at least one server, e.g. nats://127.0.0.1:4222");
        }
        for s in &servers {
            let authority = s.split_once("://").map_or(*s, |(_, rest)| rest);
            if authority.contains('@') {
                return bad("url", "must not carry credentials: use user + password_env, token_env or creds_file");
            }
            if let Some((scheme, _)) = s.split_once("://")
                && !["nats", "tls", "ws", "wss"].contains(&scheme)
            {
                return bad("url", "the scheme must be nats://, tls://, ws:// or wss://");
            }
        }
        let empty = |v: &Option<String>| v.as_deref().is_some_and(|v| v.trim().is_empty());
        for (field, v) in [("token_env", &self.token_env), ("user", &self.user), ("password_env", &self.password_env)] {
            if empty(v) {
                return bad(field, "must not be empty (leave it out instead)");
            }
        }
        let auth = match (&self.creds_file, &self.token_env, &self.user, &self.password_env) {
            (None, None, None, None) => Auth::None,
            (Some(f), None, None, None) => Auth::CredsFile(f),
            (None, Some(t), None, None) => Auth::Token(t),
            (None, None, Some(u), Some(p)) => Auth::UserPassword(u, p),
            (None, None, Some(_), None) => return bad("password_env", "is needed with user"),
            (None, None, None, Some(_)) => return bad("user", "is needed with password_env"),
            (Some(_), ..) => return bad("creds_file", "cannot be combined with token_env, user or password_env"),
            (None, Some(_), ..) => return bad("token_env", "cannot be combined with user or password_env"),
        };
        if self.creds_file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
            return bad("creds_file", "must not be empty (leave it out instead)");
        }
        let subject = Template::parse(&self.subject).map_err(|e| SinkConfigError::new("subject", e.to_string()))?;
        if let Some(problem) = subject_problem(&subject.render("event", "tenant", std::borrow::Cow::Borrowed)) {
            return bad("subject", problem);
        }
        if let Some(stream) = &self.stream
            && (stream.is_empty() || stream.contains(|c: char| c.is_whitespace() || "./\\*>".contains(c)))
        {
            return bad("stream", "must be a name without whitespace, '.', '/', '\\', '*' or '>'");
        }
        if !self.create_stream {
            if !self.subjects.is_empty() {
                return bad("subjects", "only applies with create_stream = true");
            }
            if self.duplicate_window_secs.is_some() {
                return bad("duplicate_window_secs", "only applies with create_stream = true");
            }
            return Ok((subject, auth, Vec::new()));
        }
        if self.stream.is_none() {
            return bad("stream", "must name the stream that create_stream creates");
        }
        if self.duplicate_window_secs == Some(0) {
            return bad("duplicate_window_secs", "must be positive");
        }
        let subjects = if self.subjects.is_empty() {
            // The template's leading tokens that hold no placeholder.
            let prefix = subject.literal_prefix();
            if prefix == self.subject {
                // No placeholder: the stream takes exactly that subject.
                vec![prefix.to_owned()]
            } else {
                let whole_tokens = prefix.rfind('.').map_or("", |i| &prefix[..i]);
                if whole_tokens.is_empty() {
                    return bad(
                        "subjects",
                        "cannot be derived from a subject that starts with a placeholder: list them",
                    );
                }
                vec![format!("{whole_tokens}.>")]
            }
        } else {
            for s in &self.subjects {
                if s.is_empty() || s.split('.').any(str::is_empty) || s.contains(char::is_whitespace) {
                    return bad(
                        "subjects",
                        "each must be a subject or wildcard pattern without empty tokens or spaces",
                    );
                }
            }
            self.subjects.clone()
        };
        Ok((subject, auth, subjects))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = r#"
url = "nats://127.0.0.1:4222"
user = "llmsec"
password_env = "LLMSEC_NATS_PASSWORD"
stream = "LLMSEC"
create_stream = true
"#;

    fn example() -> NatsSinkConfig {
        toml::from_str(EXAMPLE).expect("example parses")
    }

    #[test]
    fn the_example_derives_its_stream_subjects_from_the_subject() {
        let c = example();
        let (subject, auth, subjects) = c.checked().expect("valid");
        assert_eq!(subject.to_string(), "llmsec.{event}.{tenant}");
        assert_eq!(auth, Auth::UserPassword("llmsec", "LLMSEC_NATS_PASSWORD"));
        assert_eq!(subjects, ["llmsec.>"]);
        let mut c = example();
        c.subject = "org.acme.{tenant}.{event}".into();
        assert_eq!(c.checked().expect("valid").2, ["org.acme.>"]);
        c.subject = "org.acme-{tenant}.{event}".into();
        assert_eq!(c.checked().expect("valid").2, ["org.>"]);
        c.subject = "org.fixed".into();
        assert_eq!(c.checked().expect("valid").2, ["org.fixed"]);
        c.subject = "{tenant}.{event}".into();
        assert_eq!(c.validate().map_err(|e| e.field), Err("subjects".to_owned()));
        c.subjects = vec!["*.anomaly.>".into()];
        assert_eq!(c.checked().expect("valid").2, ["*.anomaly.>"]);
    }

    #[test]
    fn example_round_trips_through_toml_yaml_and_json() {
        let mut c = example();
        c.duplicate_window_secs = Some(3600);
        c.subjects = vec!["llmsec.>".into()];
        let back: NatsSinkConfig = toml::from_str(&toml::to_string(&c).expect("toml")).expect("toml back");
        assert_eq!(back, c);
        let back: NatsSinkConfig =
            serde_norway::from_str(&serde_norway::to_string(&c).expect("yaml")).expect("yaml back");
        assert_eq!(back, c);
        let back: NatsSinkConfig = serde_json::from_str(&serde_json::to_string(&c).expect("json")).expect("json");
        assert_eq!(back, c);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = toml::from_str::<NatsSinkConfig>(&format!("{EXAMPLE}token = \"x\"\n")).expect_err("typo");
        assert!(err.to_string().contains("token"), "{err}");
    }

    #[test]
    fn authentication_is_one_way_at_most() {
        let mut c = example();
        c.user = None;
        c.password_env = None;
        assert_eq!(c.checked().expect("valid").1, Auth::None);
        c.token_env = Some("T".into());
        assert_eq!(c.checked().expect("valid").1, Auth::Token("T"));
        c.token_env = None;
        c.creds_file = Some("/etc/llmsec/nats.creds".into());
        assert!(matches!(c.checked().expect("valid").1, Auth::CredsFile(_)));
    }

    #[test]
    fn validation_names_the_field() {
        let check = |f: &dyn Fn(&mut NatsSinkConfig), field: &str, says: &str| {
            let mut c = example();
            f(&mut c);
            let err = c.validate().expect_err(field);
            assert_eq!(err.field, field, "{err}");
            assert!(err.message.contains(says), "{err}");
        };
        check(&|c| c.url = " , ".into(), "url", "at least one server");
        check(&|c| c.url = "nats://u:p@h:4222".into(), "url", "credentials");
        check(&|c| c.url = "http://h:4222".into(), "url", "scheme");
        check(&|c| c.password_env = None, "password_env", "needed with user");
        check(&|c| c.user = None, "user", "needed with password_env");
        check(&|c| c.token_env = Some("T".into()), "token_env", "cannot be combined");
        check(&|c| c.creds_file = Some("a.creds".into()), "creds_file", "cannot be combined");
        check(&|c| c.user = Some(" ".into()), "user", "must not be empty");
        check(&|c| c.subject = "llmsec.{topic}".into(), "subject", "unknown placeholder {topic}");
        check(&|c| c.subject = "llmsec..{event}".into(), "subject", "empty token");
        check(&|c| c.subject = "llmsec.{event}.".into(), "subject", "empty token");
        check(&|c| c.subject = "llm sec.{event}".into(), "subject", "whitespace");
        check(&|c| c.subject = "llmsec.*.{event}".into(), "subject", "wildcards");
        check(&|c| c.stream = Some("a.b".into()), "stream", "without whitespace");
        check(&|c| c.stream = None, "stream", "create_stream creates");
        check(&|c| c.subjects = vec!["a..b".into()], "subjects", "empty tokens");
        check(&|c| c.duplicate_window_secs = Some(0), "duplicate_window_secs", "positive");
        check(
            &|c| {
                c.create_stream = false;
                c.subjects = vec!["a.>".into()];
            },
            "subjects",
            "create_stream = true",
        );
        check(
            &|c| {
                c.create_stream = false;
                c.duplicate_window_secs = Some(60);
            },
            "duplicate_window_secs",
            "create_stream = true",
        );
    }

    #[test]
    fn values_are_made_fit_for_a_subject() {
        for (value, subject) in [
            ("anomaly.detected", "anomaly.detected"),
            ("acme", "acme"),
            ("two words", "two_words"),
            ("a*b>c", "a_b_c"),
            ("tab\there", "tab_here"),
            ("", "_"),
            (".lead", "_.lead"),
            ("trail.", "trail._"),
            ("dou..ble", "dou._.ble"),
            ("*", "_"),
        ] {
            assert_eq!(subject_value(value), subject, "{value:?}");
        }
    }

    proptest! {
        // Whatever the tenant and event, the rendered subject is one a
        // publish accepts, and a value that needs nothing is kept as is.
        #[test]
        fn any_value_gives_a_valid_subject(event in ".{0,12}", tenant in ".{0,12}") {
            let t = Template::parse("llmsec.{event}.{tenant}").expect("parses");
            let s = t.render(&event, &tenant, subject_value);
            prop_assert_eq!(subject_problem(&s), None, "{:?}", s);
        }

        #[test]
        fn fit_values_are_kept(v in "[A-Za-z0-9_-]{1,8}(\\.[A-Za-z0-9_-]{1,8}){0,2}") {
            prop_assert_eq!(subject_value(&v), v.as_str());
        }
    }
}
