//! S3-compatible object storage: the settings of a bucket and, with the
//! `s3` feature, a small client that puts, gets and lists objects.
//!
//! Requests are signed with AWS Signature Version 4 as presigned URLs
//! (`rusty-s3` builds and signs them; it has no HTTP stack of its own) and
//! sent with the workspace's reqwest over rustls. The headers a PUT carries
//! (`Content-Type`, `Content-Encoding`, the server-side encryption ones)
//! are part of the signature, so a store that checks signatures refuses a
//! request whose headers were changed on the way.
//!
//! Credentials are read from environment variables whose names the
//! settings give; they are never logged, and [`S3Client`]'s `Debug` shows
//! only the key id's variable name.

use std::time::Duration;

/// Server-side encryption asked of the store for each object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Sse {
    /// `x-amz-server-side-encryption: AES256` (keys managed by the store).
    #[serde(rename = "AES256")]
    Aes256,
    /// `x-amz-server-side-encryption: aws:kms`, with a key id when given.
    #[serde(rename = "aws:kms")]
    Kms,
}

impl Sse {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Sse::Aes256 => "AES256",
            Sse::Kms => "aws:kms",
        }
    }
}

/// Where objects go and how to sign for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The endpoint, `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The region signed for (`us-east-1` for most S3-compatible stores).
    pub region: String,
    /// Path-style URLs (`endpoint/bucket/key`) instead of virtual-host
    /// style (`bucket.endpoint/key`); needed for an IP endpoint.
    pub path_style: bool,
    /// The environment variable holding the access key id.
    pub access_key_id_env: String,
    /// The environment variable holding the secret access key.
    pub secret_access_key_env: String,
    /// The environment variable holding a session token (temporary credentials).
    pub session_token_env: Option<String>,
    /// Server-side encryption of each object.
    pub sse: Option<Sse>,
    /// The KMS key id, with `sse = aws:kms`.
    pub sse_kms_key_id: Option<String>,
    /// Whole-request limit.
    pub timeout: Duration,
}

/// What is wrong with [`S3Settings`], or what went wrong talking to the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    /// A setting is refused; `field` names it as in the config section.
    #[error("{field}: {message}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// This build has no S3 client.
    #[error("this build has no S3 support (cargo feature `s3`)")]
    NotBuilt,
    /// The request did not complete (connection, timeout).
    #[error("{op} {key}: {message}")]
    Transport {
        /// `PUT`, `GET` or `LIST`.
        op: &'static str,
        /// The object key (or prefix).
        key: String,
        /// Why.
        message: String,
    },
    /// The store answered with an error status.
    #[error("{op} {key}: HTTP {status}: {body}")]
    Status {
        /// `PUT`, `GET` or `LIST`.
        op: &'static str,
        /// The object key (or prefix).
        key: String,
        /// The status.
        status: u16,
        /// The start of the store's error body.
        body: String,
    },
    /// The store's answer could not be read.
    #[error("{op} {key}: {message}")]
    Response {
        /// `LIST`.
        op: &'static str,
        /// The prefix.
        key: String,
        /// Why.
        message: String,
    },
}

impl S3Settings {
    /// Checks what can be checked without the environment or the network.
    pub fn validate(&self) -> Result<(), S3Error> {
        let bad = |field, message: &str| Err(S3Error::Invalid { field, message: message.into() });
        let url = match url::Url::parse(&self.endpoint) {
            Ok(u) => u,
            Err(e) => return bad("endpoint", &format!("not a URL: {e}")),
        };
        if !matches!(url.scheme(), "http" | "https") {
            return bad("endpoint", "must be an http:// or https:// URL");
        }
        let Some(host) = url.host() else { return bad("endpoint", "has no host") };
        if !url.username().is_empty() || url.password().is_some() {
            return bad("endpoint", "must not hold credentials (use access_key_id_env and secret_access_key_env)");
        }
        if url.query().is_some() {
            return bad("endpoint", "must not have a query string");
        }
        if !valid_bucket(&self.bucket) {
            return bad(
                "bucket",
                "must be 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit",
            );
        }
        if !path_style_ok(self.path_style, &host, &self.bucket) {
            return bad("path_style", "must be true for an IP endpoint or a bucket name with dots");
        }
        if self.region.is_empty() || !self.region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return bad("region", "must be a region name such as us-east-1");
        }
        for (field, var) in [
            ("access_key_id_env", Some(&self.access_key_id_env)),
            ("secret_access_key_env", Some(&self.secret_access_key_env)),
            ("session_token_env", self.session_token_env.as_ref()),
        ] {
            if let Some(v) = var
                && (v.is_empty() || v.contains('='))
            {
                return bad(field, "must be the name of an environment variable");
            }
        }
        match (self.sse, &self.sse_kms_key_id) {
            (Some(Sse::Kms), _) | (_, None) => {}
            (_, Some(_)) => return bad("sse_kms_key_id", "needs sse = \"aws:kms\""),
        }
        if self.timeout.is_zero() {
            return bad("timeout_ms", "must be positive");
        }
        Ok(())
    }
}

/// S3's bucket naming rules (the part that matters for URLs).
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Virtual-host style puts the bucket in the host name, which an IP
/// address cannot take, and TLS certificates do not cover dotted names.
fn path_style_ok(path_style: bool, host: &url::Host<&str>, bucket: &str) -> bool {
    path_style || (matches!(host, url::Host::Domain(_)) && !bucket.contains('.'))
}

/// The keys of a ListObjectsV2 answer and its continuation token. Element
/// names are matched without their namespace: stores differ in it.
#[cfg(feature = "s3")]
pub fn parse_list(xml: &str) -> Result<(Vec<String>, Option<String>), String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let (mut keys, mut token) = (Vec::new(), None);
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_vec());
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::CData(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => match r.resolve_char_ref().map_err(|e| e.to_string())? {
                Some(c) => text.push(c),
                None => {
                    let name = r.decode().map_err(|e| e.to_string())?;
                    let value = quick_xml::escape::resolve_xml_entity(&name)
                        .ok_or_else(|| format!("unknown entity &{name};"))?;
                    text.push_str(value);
                }
            },
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let parent = path.last().map(Vec::as_slice);
                match (parent, name.as_slice()) {
                    (Some(b"Contents"), b"Key") => keys.push(std::mem::take(&mut text)),
                    (Some(b"ListBucketResult"), b"NextContinuationToken") => token = Some(std::mem::take(&mut text)),
                    _ => text.clear(),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if path.is_empty() { Ok((keys, token.filter(|t| !t.is_empty()))) } else { Err("truncated XML".into()) }
}

#[cfg(feature = "s3")]
pub use client::{S3Client, SignedRequest};

#[cfg(feature = "s3")]
mod client {
    use std::time::Duration;

    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

    use super::{S3Error, S3Settings};

    /// How long a presigned URL is valid: the request is sent at once.
    const SIGNED_FOR: Duration = Duration::from_secs(300);
    /// At most this much of an error body goes into an error.
    const ERROR_BODY: usize = 300;

    /// A request ready to send: its signed URL and the headers that were signed.
    #[derive(Debug, Clone)]
    pub struct SignedRequest {
        /// The presigned URL.
        pub url: url::Url,
        /// The headers, as signed (the host header is the URL's).
        pub headers: Vec<(&'static str, String)>,
    }

    /// Puts, gets and lists objects of one bucket.
    #[derive(Clone)]
    pub struct S3Client {
        bucket: Bucket,
        credentials: Credentials,
        sse: Option<super::Sse>,
        sse_kms_key_id: Option<String>,
        http: reqwest::Client,
        key_var: String,
    }

    impl std::fmt::Debug for S3Client {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("S3Client")
                .field("bucket", &self.bucket.name())
                .field("base_url", &self.bucket.base_url().as_str())
                .field("credentials_from", &self.key_var)
                .finish_non_exhaustive()
        }
    }

    impl S3Client {
        /// Builds the client, reading the credentials through `env`; a
        /// variable that is unset or empty is an error naming its setting.
        pub fn new(s: &S3Settings, env: &dyn Fn(&str) -> Option<String>) -> Result<S3Client, S3Error> {
            s.validate()?;
            let var = |field: &'static str, name: &str| {
                env(name).filter(|v| !v.is_empty()).ok_or_else(|| S3Error::Invalid {
                    field,
                    message: format!("the environment variable {name} is unset or empty"),
                })
            };
            let key = var("access_key_id_env", &s.access_key_id_env)?;
            let secret = var("secret_access_key_env", &s.secret_access_key_env)?;
            let credentials = match &s.session_token_env {
                Some(t) => Credentials::new_with_token(key, secret, var("session_token_env", t)?),
                None => Credentials::new(key, secret),
            };
            let endpoint = url::Url::parse(&s.endpoint)
                .map_err(|e| S3Error::Invalid { field: "endpoint", message: e.to_string() })?;
            let style = if s.path_style { UrlStyle::Path } else { UrlStyle::VirtualHost };
            let bucket = Bucket::new(endpoint, style, s.bucket.clone(), s.region.clone())
                .map_err(|e| S3Error::Invalid { field: "bucket", message: format!("{e:?}") })?;
            let _ = rustls::crypto::ring::default_provider().install_default();
            let http = reqwest::Client::builder()
                .timeout(s.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("llmsec/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| S3Error::Invalid { field: "endpoint", message: format!("HTTP client: {e}") })?;
            Ok(S3Client {
                bucket,
                credentials,
                sse: s.sse,
                sse_kms_key_id: s.sse_kms_key_id.clone(),
                http,
                key_var: s.access_key_id_env.clone(),
            })
        }

        /// The URL of an object (unsigned), for messages.
        pub fn object_url(&self, key: &str) -> url::Url {
            self.bucket.object_url(key)
        }

        /// The signed PUT of `key` with these headers and the configured
        /// server-side encryption, valid from `at`.
        pub fn put_request(
            &self,
            key: &str,
            content_type: &str,
            content_encoding: Option<&str>,
            at: &jiff::Timestamp,
        ) -> SignedRequest {
            let mut headers: Vec<(&'static str, String)> = vec![("content-type", content_type.to_owned())];
            if let Some(e) = content_encoding {
                headers.push(("content-encoding", e.to_owned()));
            }
            if let Some(sse) = self.sse {
                headers.push(("x-amz-server-side-encryption", sse.as_str().to_owned()));
                if let Some(k) = &self.sse_kms_key_id {
                    headers.push(("x-amz-server-side-encryption-aws-kms-key-id", k.clone()));
                }
            }
            let mut action = self.bucket.put_object(Some(&self.credentials), key);
            for (name, value) in &headers {
                action.headers_mut().insert(*name, value.clone());
            }
            SignedRequest { url: action.sign_with_time(SIGNED_FOR, at), headers }
        }

        /// Puts `body` at `key`, replacing what was there.
        pub async fn put(
            &self,
            key: &str,
            body: Vec<u8>,
            content_type: &str,
            content_encoding: Option<&str>,
        ) -> Result<(), S3Error> {
            let req = self.put_request(key, content_type, content_encoding, &jiff::Timestamp::now());
            let mut headers = HeaderMap::new();
            for (name, value) in &req.headers {
                let v = HeaderValue::from_str(value).map_err(|_| S3Error::Invalid {
                    field: "sse_kms_key_id",
                    message: format!("{name} is not a valid header value"),
                })?;
                headers.insert(HeaderName::from_static(name), v);
            }
            let len = body.len();
            let resp = self
                .http
                .put(req.url)
                .headers(headers)
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(body)
                .send()
                .await
                .map_err(|e| transport("PUT", key, &e))?;
            check("PUT", key, resp).await.map(|_| ())
        }

        /// The object at `key`, or `None` when there is none.
        pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, S3Error> {
            let url = self.bucket.get_object(Some(&self.credentials), key).sign(SIGNED_FOR);
            let resp = self.http.get(url).send().await.map_err(|e| transport("GET", key, &e))?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let resp = check("GET", key, resp).await?;
            Ok(Some(resp.bytes().await.map_err(|e| transport("GET", key, &e))?.to_vec()))
        }

        /// Every key under `prefix`, in the store's (lexical) order
        /// (ListObjectsV2, page by page).
        pub async fn list(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
            let mut keys = Vec::new();
            let mut token: Option<String> = None;
            loop {
                // Sorted by name, as `sign` wants them.
                let mut query: Vec<(&str, &str)> = Vec::with_capacity(3);
                if let Some(t) = &token {
                    query.push(("continuation-token", t));
                }
                query.extend([("list-type", "2"), ("prefix", prefix)]);
                let url = rusty_s3::signing::sign(
                    &jiff::Timestamp::now(),
                    rusty_s3::Method::Get,
                    self.bucket.base_url().clone(),
                    self.credentials.key(),
                    self.credentials.secret(),
                    self.credentials.token(),
                    self.bucket.region(),
                    SIGNED_FOR.as_secs(),
                    query.into_iter(),
                    std::iter::empty(),
                );
                let resp = self.http.get(url).send().await.map_err(|e| transport("LIST", prefix, &e))?;
                let text =
                    check("LIST", prefix, resp).await?.text().await.map_err(|e| transport("LIST", prefix, &e))?;
                let (page, next) = super::parse_list(&text).map_err(|message| S3Error::Response {
                    op: "LIST",
                    key: prefix.to_owned(),
                    message,
                })?;
                keys.extend(page);
                match next {
                    Some(t) => token = Some(t),
                    None => return Ok(keys),
                }
            }
        }
    }

    fn transport(op: &'static str, key: &str, e: &reqwest::Error) -> S3Error {
        // The URL holds the signature, not the secret; it is left out anyway.
        let message = e.without_url_ref().to_string();
        S3Error::Transport { op, key: key.to_owned(), message }
    }

    trait WithoutUrl {
        fn without_url_ref(&self) -> String;
    }

    impl WithoutUrl for reqwest::Error {
        fn without_url_ref(&self) -> String {
            let mut s = self.to_string();
            if let Some(u) = self.url() {
                s = s.replace(u.as_str(), "<url>");
            }
            let mut source = std::error::Error::source(self);
            while let Some(e) = source {
                s.push_str(": ");
                s.push_str(&e.to_string());
                source = e.source();
            }
            s
        }
    }

    async fn check(op: &'static str, key: &str, resp: reqwest::Response) -> Result<reqwest::Response, S3Error> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let body: String = body.chars().take(ERROR_BODY).collect();
        Err(S3Error::Status { op, key: key.to_owned(), status: status.as_u16(), body })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    pub(super) fn settings() -> S3Settings {
        S3Settings {
            endpoint: "https://s3.eu-west-1.amazonaws.com".into(),
            bucket: "exports".into(),
            region: "eu-west-1".into(),
            path_style: false,
            access_key_id_env: "T_KEY".into(),
            secret_access_key_env: "T_SECRET".into(),
            session_token_env: None,
            sse: None,
            sse_kms_key_id: None,
            timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn settings_errors_name_the_field() {
        assert!(settings().validate().is_ok());
        type Change = Box<dyn Fn(&mut S3Settings)>;
        let cases: Vec<(&str, Change)> = vec![
            ("endpoint", Box::new(|s| s.endpoint = "ftp://x".into())),
            ("endpoint", Box::new(|s| s.endpoint = "not a url".into())),
            ("endpoint", Box::new(|s| s.endpoint = "https://ak:sk@s3.example".into())),
            ("bucket", Box::new(|s| s.bucket = "Bad_Bucket".into())),
            ("bucket", Box::new(|s| s.bucket = "ab".into())),
            ("path_style", Box::new(|s| s.endpoint = "http://127.0.0.1:9000".into())),
            ("path_style", Box::new(|s| s.bucket = "a.b.c".into())),
            ("region", Box::new(|s| s.region = String::new())),
            ("access_key_id_env", Box::new(|s| s.access_key_id_env = String::new())),
            ("session_token_env", Box::new(|s| s.session_token_env = Some("A=B".into()))),
            ("sse_kms_key_id", Box::new(|s| s.sse_kms_key_id = Some("k".into()))),
            ("timeout_ms", Box::new(|s| s.timeout = Duration::ZERO)),
        ];
        for (field, change) in cases {
            let mut s = settings();
            change(&mut s);
            match s.validate() {
                Err(S3Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let mut ip = settings();
        ip.endpoint = "http://127.0.0.1:9000".into();
        ip.path_style = true;
        assert!(ip.validate().is_ok());
        let mut kms = settings();
        kms.sse = Some(Sse::Kms);
        kms.sse_kms_key_id = Some("arn:aws:kms:eu-west-1:1:key/abc".into());
        assert!(kms.validate().is_ok());
    }

    #[cfg(feature = "s3")]
    #[test]
    fn list_answers_are_read_whatever_their_namespace() {
        let aws = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>true</IsTruncated>
<Contents><Key>p/a&amp;b.json</Key><Size>3</Size></Contents><Contents><Key>p/c&#x3D;d</Key></Contents>
<NextContinuationToken>tok+1</NextContinuationToken></ListBucketResult>"#;
        assert_eq!(parse_list(aws).unwrap(), (vec!["p/a&b.json".to_owned(), "p/c=d".to_owned()], Some("tok+1".into())));
        let other = r#"<ListBucketResult xmlns="http://doc.s3.amazonaws.com/2006-03-01/"><IsTruncated>false</IsTruncated>
<Contents><Key>k</Key><Owner><ID>x</ID></Owner></Contents></ListBucketResult>"#;
        assert_eq!(parse_list(other).unwrap(), (vec!["k".to_owned()], None));
        assert!(parse_list("<ListBucketResult><Contents><Key>k").is_err());
    }

    #[test]
    fn sse_values_are_the_header_values() {
        #[derive(serde::Deserialize)]
        struct W {
            sse: Sse,
        }
        let w: W = toml::from_str("sse = \"aws:kms\"").unwrap();
        assert_eq!(w.sse.as_str(), "aws:kms");
        let w: W = toml::from_str("sse = \"AES256\"").unwrap();
        assert_eq!(w.sse, Sse::Aes256);
        assert!(toml::from_str::<W>("sse = \"aes256\"").is_err());
    }

    #[cfg(feature = "s3")]
    mod signing {
        use hmac::{Hmac, Mac};
        use sha2::{Digest, Sha256};

        use super::super::*;
        use super::settings;

        fn env(name: &str) -> Option<String> {
            match name {
                "T_KEY" => Some("AKIDEXAMPLE".into()),
                "T_SECRET" => Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
                "T_TOKEN" => Some("session-token".into()),
                _ => None,
            }
        }

        fn hmac(key: &[u8], data: &str) -> Vec<u8> {
            let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
            m.update(data.as_bytes());
            m.finalize().into_bytes().to_vec()
        }

        /// Recomputes a presigned URL's SigV4 signature from the request as
        /// it will be sent (method, path, query, the headers it names), the
        /// way a store checks it.
        fn expected_signature(url: &url::Url, headers: &[(&str, String)], secret: &str) -> String {
            let mut query: Vec<(String, String)> =
                url.query_pairs().filter(|(k, _)| k != "X-Amz-Signature").map(|(k, v)| (k.into(), v.into())).collect();
            query.sort();
            let enc = |s: &str| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
                    .replace("%2D", "-")
                    .replace("%2E", ".")
                    .replace("%5F", "_")
                    .replace("%7E", "~")
            };
            let canonical_query: Vec<String> = query.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
            let host = match url.port() {
                Some(p) => format!("{}:{p}", url.host_str().unwrap()),
                None => url.host_str().unwrap().to_owned(),
            };
            let mut all: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            all.push(("host".into(), host));
            all.sort();
            let signed = url.query_pairs().find(|(k, _)| k == "X-Amz-SignedHeaders").unwrap().1.to_string();
            assert_eq!(signed, all.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";"));
            let canonical_headers: String = all.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
            let canonical = format!(
                "PUT\n{}\n{}\n{}\n{}\nUNSIGNED-PAYLOAD",
                url.path(),
                canonical_query.join("&"),
                canonical_headers,
                signed
            );
            let date = url.query_pairs().find(|(k, _)| k == "X-Amz-Date").unwrap().1.to_string();
            let cred = url.query_pairs().find(|(k, _)| k == "X-Amz-Credential").unwrap().1.to_string();
            let scope = cred.split_once('/').unwrap().1.to_owned();
            let to_sign = format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical)));
            let parts: Vec<&str> = scope.split('/').collect();
            let k = hmac(format!("AWS4{secret}").as_bytes(), parts[0]);
            let k = hmac(&k, parts[1]);
            let k = hmac(&k, parts[2]);
            let k = hmac(&k, "aws4_request");
            hex::encode(hmac(&k, &to_sign))
        }

        #[test]
        fn a_put_signs_its_headers_and_encryption_with_sigv4() {
            let mut s = settings();
            s.sse = Some(Sse::Kms);
            s.sse_kms_key_id = Some("key-1".into());
            s.session_token_env = Some("T_TOKEN".into());
            let c = S3Client::new(&s, &env).unwrap();
            let at: jiff::Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
            let key = "llmsec/events/tenant=acme/dt=2026-12-07/1-2.jsonl.gz";
            let r = c.put_request(key, "application/x-ndjson", Some("gzip"), &at);
            assert_eq!(r.url.host_str(), Some("exports.s3.eu-west-1.amazonaws.com"), "virtual-host style");
            assert_eq!(r.url.path(), "/llmsec/events/tenant%3Dacme/dt%3D2026-12-07/1-2.jsonl.gz");
            let q = |name: &str| r.url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.to_string());
            assert_eq!(q("X-Amz-Algorithm").as_deref(), Some("AWS4-HMAC-SHA256"));
            assert_eq!(q("X-Amz-Credential").as_deref(), Some("AKIDEXAMPLE/20261207/eu-west-1/s3/aws4_request"));
            assert_eq!(q("X-Amz-Date").as_deref(), Some("20261207T100000Z"));
            assert_eq!(q("X-Amz-Security-Token").as_deref(), Some("session-token"));
            assert_eq!(
                q("X-Amz-SignedHeaders").as_deref(),
                Some(
                    "content-encoding;content-type;host;x-amz-server-side-encryption;x-amz-server-side-encryption-aws-kms-key-id"
                )
            );
            let want = expected_signature(&r.url, &r.headers, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
            assert_eq!(q("X-Amz-Signature"), Some(want));
            assert!(!r.url.as_str().contains("wJalr"), "the secret never goes in the URL");
            assert!(!format!("{c:?}").contains("AKIDEXAMPLE") && !format!("{c:?}").contains("wJalr"));
        }

        #[test]
        fn path_style_puts_the_bucket_in_the_path() {
            let mut s = settings();
            s.endpoint = "http://127.0.0.1:54569".into();
            s.path_style = true;
            s.region = "us-east-1".into();
            let c = S3Client::new(&s, &env).unwrap();
            let at: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
            let r = c.put_request("p/a.json", "application/json", None, &at);
            assert_eq!((r.url.host_str(), r.url.port()), (Some("127.0.0.1"), Some(54569)));
            assert_eq!(r.url.path(), "/exports/p/a.json");
            assert_eq!(r.headers, vec![("content-type", "application/json".to_owned())]);
            let want = expected_signature(&r.url, &r.headers, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
            assert_eq!(
                r.url.query_pairs().find(|(k, _)| k == "X-Amz-Signature").map(|(_, v)| v.to_string()),
                Some(want)
            );
        }

        #[test]
        fn missing_credentials_name_their_setting() {
            let mut s = settings();
            s.secret_access_key_env = "T_NOTSET".into();
            let e = S3Client::new(&s, &env).unwrap_err();
            assert!(matches!(e, S3Error::Invalid { field: "secret_access_key_env", .. }), "{e}");
            assert!(e.to_string().contains("T_NOTSET"));
        }
    }
}
