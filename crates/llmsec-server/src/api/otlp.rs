//! OTLP/HTTP trace ingestion: `POST /v1/traces`, scope `ingest`.
//!
//! Takes an `ExportTraceServiceRequest` as binary protobuf
//! (`Content-Type: application/x-protobuf`) or in the OTLP/JSON mapping
//! (`application/json`), uncompressed (`Content-Encoding` other than
//! `identity` is 415). Spans that carry OpenTelemetry GenAI attributes
//! (any `gen_ai.*` attribute, or a `gen_ai.*` span event) become
//! [`TelemetryEvent`]s; other spans are skipped, so an application may
//! export all of its traces here. Each event is checked as the REST
//! ingestion checks it, stored (idempotent on its id,
//! `hex(trace_id)-hex(span_id)`) and handed to Sentinel before the answer.
//!
//! The answer is OTLP's `ExportTraceServiceResponse`, in the request's
//! encoding: `{}` when every GenAI span was taken, else
//! `{"partialSuccess": {"rejectedSpans": N, "errorMessage": "…"}}` naming
//! what was wrong with the rejected ones.
//!
//! | event field | from |
//! |---|---|
//! | `event_id` | `hex(traceId)-hex(spanId)` |
//! | `timestamp` | `endTimeUnixNano` (else `startTimeUnixNano`) |
//! | `event_type` | `llm.error` when `status.code` is ERROR or `error.type` is set, else `llm.response` |
//! | `application_id` | resource `service.name` (required) |
//! | `source.service` / `.host` / `.version` | resource `service.name` / `host.name` / `service.version` |
//! | `data.model` | `gen_ai.response.model`, else `gen_ai.request.model` |
//! | `data.prompt` | `gen_ai.input.messages`, `gen_ai.prompt`, span event `gen_ai.content.prompt`, `gen_ai.prompt.N.content` |
//! | `data.completion` | `gen_ai.output.messages`, `gen_ai.completion`, span event `gen_ai.content.completion`, `gen_ai.completion.N.content` |
//! | `data.prompt_tokens` / `completion_tokens` | `gen_ai.usage.input_tokens` / `output_tokens` (or the older `prompt_tokens` / `completion_tokens`) |
//! | `data.total_tokens` | `gen_ai.usage.total_tokens`, else their sum |
//! | `data.latency_ms` | end − start |
//! | `data.cost` | `gen_ai.usage.cost` |
//! | `data.status` / `data.error` | `error` or `success` / `status.message`, else `error.type` |
//! | `data.finish_reason` | the first of `gen_ai.response.finish_reasons` |
//! | `metadata.user_id` | `user.id`, else `enduser.id` |
//! | `metadata.session_id` | `gen_ai.conversation.id`, else `session.id` |
//! | `metadata.ip` | `client.address` |
//! | `metadata.provider` / `operation` / `server_address` / `error_type` | `gen_ai.provider.name` (else `gen_ai.system`) / `gen_ai.operation.name` / `server.address` / `error.type` |
//! | `metadata.trace_id` / `span_id` / `span_name` | the span's ids (hex) and name |
//!
//! Attributes are looked up on the span first, then on its resource.

use std::collections::{BTreeMap, HashSet};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::DateTime;
use llm_sentinel::event::{EventData, EventMetadata, EventType, Source, TelemetryEvent};
use llmsec_store::Scope;
use prost::Message as _;
use serde_json::{Value as Json, json};

use self::proto::{AnyValue, ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse};
use self::proto::{KeyValue, Span, Value};
use crate::AppState;
use crate::api::telemetry::{MAX_BATCH, accept, admit};
use crate::auth::Caller;
use crate::error::{ApiError, parse_json};

/// `Status.code` of a failed span.
const STATUS_CODE_ERROR: i32 = 2;
/// Most distinct reasons quoted in `errorMessage`.
const MAX_REASONS: usize = 5;

/// The subset of opentelemetry-proto's trace messages this endpoint reads,
/// with the official field numbers (`collector/trace/v1/trace_service.proto`,
/// `trace/v1/trace.proto`, `common/v1/common.proto`,
/// `resource/v1/resource.proto`).
///
/// Written by hand rather than taken from `opentelemetry-proto` (and its
/// tonic/prost-build stack): these few dozen lines are all the endpoint
/// needs, and prost skips the fields left out here (scope, links, flags,
/// dropped counts, …) when decoding. The same structs read the OTLP/JSON
/// mapping through serde: lowerCamelCase names (the proto names are
/// accepted too), ids as hex, 64-bit integers as numbers or decimal
/// strings, enums as integers (or their names), `bytesValue` as base64;
/// unknown fields are ignored, as OTLP/JSON requires.
pub mod proto {
    use serde::{Deserialize, Serialize};

    /// `ExportTraceServiceRequest`: the body of `POST /v1/traces`.
    #[derive(Clone, PartialEq, prost::Message, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ExportTraceServiceRequest {
        /// Spans grouped by resource.
        #[prost(message, repeated, tag = "1")]
        #[serde(alias = "resource_spans")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    /// `ResourceSpans`: one resource and its spans.
    #[derive(Clone, PartialEq, prost::Message, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ResourceSpans {
        /// The resource (`service.name`, `host.name`, …).
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        /// Spans grouped by instrumentation scope.
        #[prost(message, repeated, tag = "2")]
        #[serde(alias = "scope_spans")]
        pub scope_spans: Vec<ScopeSpans>,
    }

    /// `Resource`.
    #[derive(Clone, PartialEq, prost::Message, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Resource {
        /// Its attributes.
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }

    /// `ScopeSpans` (the scope itself, field 1, is not read).
    #[derive(Clone, PartialEq, prost::Message, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ScopeSpans {
        /// The spans.
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }

    /// `Span`.
    #[derive(Clone, PartialEq, prost::Message, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Span {
        /// 16 bytes.
        #[prost(bytes = "vec", tag = "1")]
        #[serde(alias = "trace_id", deserialize_with = "de::hex_id")]
        pub trace_id: Vec<u8>,
        /// 8 bytes.
        #[prost(bytes = "vec", tag = "2")]
        #[serde(alias = "span_id", deserialize_with = "de::hex_id")]
        pub span_id: Vec<u8>,
        /// The operation's name.
        #[prost(string, tag = "5")]
        pub name: String,
        /// `SpanKind` (0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer).
        #[prost(int32, tag = "6")]
        #[serde(deserialize_with = "de::span_kind")]
        pub kind: i32,
        /// Unix nanoseconds.
        #[prost(fixed64, tag = "7")]
        #[serde(alias = "start_time_unix_nano", deserialize_with = "de::u64_any")]
        pub start_time_unix_nano: u64,
        /// Unix nanoseconds.
        #[prost(fixed64, tag = "8")]
        #[serde(alias = "end_time_unix_nano", deserialize_with = "de::u64_any")]
        pub end_time_unix_nano: u64,
        /// Its attributes.
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
        /// Its events.
        #[prost(message, repeated, tag = "11")]
        pub events: Vec<Event>,
        /// How it ended.
        #[prost(message, optional, tag = "15")]
        pub status: Option<Status>,
    }

    /// `Span.Event`.
    #[derive(Clone, PartialEq, prost::Message, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Event {
        /// Unix nanoseconds.
        #[prost(fixed64, tag = "1")]
        #[serde(alias = "time_unix_nano", deserialize_with = "de::u64_any")]
        pub time_unix_nano: u64,
        /// Its name.
        #[prost(string, tag = "2")]
        pub name: String,
        /// Its attributes.
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
    }

    /// `Status` (field 1 is reserved).
    #[derive(Clone, PartialEq, prost::Message, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct Status {
        /// A developer-facing message.
        #[prost(string, tag = "2")]
        pub message: String,
        /// `StatusCode`: 0 unset, 1 ok, 2 error.
        #[prost(int32, tag = "3")]
        #[serde(deserialize_with = "de::status_code")]
        pub code: i32,
    }

    /// `KeyValue`: one attribute.
    #[derive(Clone, PartialEq, prost::Message, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct KeyValue {
        /// The key.
        #[prost(string, tag = "1")]
        pub key: String,
        /// The value.
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    /// `AnyValue`: an attribute's value.
    #[derive(Clone, PartialEq, prost::Message, Deserialize)]
    #[serde(try_from = "de::AnyValueJson")]
    pub struct AnyValue {
        /// The value; `None` is the empty value.
        #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<Value>,
    }

    /// `AnyValue.value`, the oneof.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// `string_value`.
        #[prost(string, tag = "1")]
        StringValue(String),
        /// `bool_value`.
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        /// `int_value`.
        #[prost(int64, tag = "3")]
        IntValue(i64),
        /// `double_value`.
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        /// `array_value`.
        #[prost(message, tag = "5")]
        ArrayValue(ArrayValue),
        /// `kvlist_value`.
        #[prost(message, tag = "6")]
        KvlistValue(KeyValueList),
        /// `bytes_value`.
        #[prost(bytes = "vec", tag = "7")]
        BytesValue(Vec<u8>),
    }

    /// `ArrayValue`.
    #[derive(Clone, PartialEq, prost::Message, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ArrayValue {
        /// The elements.
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }

    /// `KeyValueList`.
    #[derive(Clone, PartialEq, prost::Message, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct KeyValueList {
        /// The entries.
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }

    /// `ExportTraceServiceResponse`.
    #[derive(Clone, PartialEq, prost::Message, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ExportTraceServiceResponse {
        /// Set when spans were rejected.
        #[prost(message, optional, tag = "1")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub partial_success: Option<ExportTracePartialSuccess>,
    }

    /// `ExportTracePartialSuccess`.
    #[derive(Clone, PartialEq, prost::Message, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ExportTracePartialSuccess {
        /// Spans not accepted.
        #[prost(int64, tag = "1")]
        pub rejected_spans: i64,
        /// Why.
        #[prost(string, tag = "2")]
        pub error_message: String,
    }

    /// The OTLP/JSON readers.
    mod de {
        use base64::Engine as _;
        use serde::Deserialize;
        use serde::de::{Deserializer, Error, Visitor};

        use super::{AnyValue, ArrayValue, KeyValueList, Value};

        /// A JSON scalar read loosely: OTLP/JSON writes 64-bit integers as
        /// strings or numbers.
        pub(super) enum Loose {
            Int(i128),
            Float(f64),
            Str(String),
            Null,
        }

        struct LooseVisitor;

        impl<'de> Visitor<'de> for LooseVisitor {
            type Value = Loose;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<Loose, E> {
                Ok(Loose::Int(v.into()))
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Loose, E> {
                Ok(Loose::Int(v.into()))
            }
            fn visit_f64<E: Error>(self, v: f64) -> Result<Loose, E> {
                Ok(Loose::Float(v))
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Loose, E> {
                Ok(Loose::Str(v.to_owned()))
            }
            fn visit_unit<E: Error>(self) -> Result<Loose, E> {
                Ok(Loose::Null)
            }
            fn visit_none<E: Error>(self) -> Result<Loose, E> {
                Ok(Loose::Null)
            }
        }

        fn loose<'de, D: Deserializer<'de>>(d: D) -> Result<Loose, D::Error> {
            d.deserialize_any(LooseVisitor)
        }

        fn whole(f: f64) -> Option<i128> {
            // Bounded well inside i128, so the cast is exact.
            (f.is_finite() && f.fract() == 0.0 && f.abs() < 1.9e19).then_some(f as i128)
        }

        fn int<'de, D: Deserializer<'de>>(d: D, what: &str) -> Result<Option<i128>, D::Error> {
            let bad = || D::Error::custom(format!("must be {what} (a number or a decimal string)"));
            match loose(d)? {
                Loose::Int(i) => Ok(Some(i)),
                Loose::Float(f) => whole(f).map(Some).ok_or_else(bad),
                Loose::Str(s) => s.trim().parse::<i128>().map(Some).map_err(|_| bad()),
                Loose::Null => Ok(None),
            }
        }

        pub(super) fn u64_any<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
            const WHAT: &str = "an unsigned 64-bit integer";
            let v = int(d, WHAT)?.unwrap_or(0);
            u64::try_from(v).map_err(|_| D::Error::custom(format!("must be {WHAT}")))
        }

        pub(super) fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
            const WHAT: &str = "a signed 64-bit integer";
            int(d, WHAT)?.map(|v| i64::try_from(v).map_err(|_| D::Error::custom(format!("must be {WHAT}")))).transpose()
        }

        pub(super) fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            match loose(d)? {
                Loose::Int(i) => Ok(Some(i as f64)),
                Loose::Float(f) => Ok(Some(f)),
                Loose::Str(s) => match s.as_str() {
                    "NaN" => Ok(Some(f64::NAN)),
                    "Infinity" => Ok(Some(f64::INFINITY)),
                    "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
                    s => s.trim().parse().map(Some).map_err(|_| D::Error::custom("must be a number")),
                },
                Loose::Null => Ok(None),
            }
        }

        fn enumeration<'de, D: Deserializer<'de>>(d: D, names: &[&str]) -> Result<i32, D::Error> {
            let bad = || D::Error::custom(format!("must be an integer or one of {}", names.join(", ")));
            match loose(d)? {
                Loose::Int(i) => i32::try_from(i).map_err(|_| bad()),
                Loose::Str(s) => names.iter().position(|n| *n == s).and_then(|i| i32::try_from(i).ok()).ok_or_else(bad),
                Loose::Float(_) => Err(bad()),
                Loose::Null => Ok(0),
            }
        }

        pub(super) fn span_kind<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
            const NAMES: &[&str] = &[
                "SPAN_KIND_UNSPECIFIED",
                "SPAN_KIND_INTERNAL",
                "SPAN_KIND_SERVER",
                "SPAN_KIND_CLIENT",
                "SPAN_KIND_PRODUCER",
                "SPAN_KIND_CONSUMER",
            ];
            enumeration(d, NAMES)
        }

        pub(super) fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
            enumeration(d, &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"])
        }

        /// Trace and span ids: hex in OTLP/JSON (not base64, as protobuf's
        /// JSON mapping would have it).
        pub(super) fn hex_id<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            let s = Option::<String>::deserialize(d)?.unwrap_or_default();
            hex::decode(s.trim()).map_err(|_| D::Error::custom("must be a hex string"))
        }

        fn opt_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| {
                    base64::engine::general_purpose::STANDARD
                        .decode(s.trim())
                        .map_err(|_| D::Error::custom("must be base64"))
                })
                .transpose()
        }

        /// `AnyValue` in OTLP/JSON: an object with at most one of these keys.
        #[derive(Deserialize, Default)]
        #[serde(default, rename_all = "camelCase")]
        pub(super) struct AnyValueJson {
            #[serde(alias = "string_value")]
            string_value: Option<String>,
            #[serde(alias = "bool_value")]
            bool_value: Option<bool>,
            #[serde(alias = "int_value", deserialize_with = "opt_i64")]
            int_value: Option<i64>,
            #[serde(alias = "double_value", deserialize_with = "opt_f64")]
            double_value: Option<f64>,
            #[serde(alias = "array_value")]
            array_value: Option<ArrayValue>,
            #[serde(alias = "kvlist_value")]
            kvlist_value: Option<KeyValueList>,
            #[serde(alias = "bytes_value", deserialize_with = "opt_base64")]
            bytes_value: Option<Vec<u8>>,
        }

        impl TryFrom<AnyValueJson> for AnyValue {
            type Error = String;

            fn try_from(j: AnyValueJson) -> Result<AnyValue, String> {
                let set = [
                    j.string_value.map(Value::StringValue),
                    j.bool_value.map(Value::BoolValue),
                    j.int_value.map(Value::IntValue),
                    j.double_value.map(Value::DoubleValue),
                    j.array_value.map(Value::ArrayValue),
                    j.kvlist_value.map(Value::KvlistValue),
                    j.bytes_value.map(Value::BytesValue),
                ];
                let mut set = set.into_iter().flatten();
                let value = set.next();
                if set.next().is_some() {
                    return Err("an AnyValue holds at most one of stringValue, boolValue, intValue, doubleValue, \
                                arrayValue, kvlistValue, bytesValue"
                        .into());
                }
                Ok(AnyValue { value })
            }
        }
    }
}

/// The request's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// A 415 naming the header at fault (`ApiError` has no such kind: only
/// this endpoint negotiates encodings).
fn unsupported(header: &'static str, message: String) -> Response {
    let body = json!({"error": {"code": "unsupported_media_type", "message": message, "header": header}});
    (StatusCode::UNSUPPORTED_MEDIA_TYPE, axum::Json(body)).into_response()
}

/// The request's encoding from its headers, or the 415 to answer.
fn negotiate(headers: &HeaderMap) -> Result<Encoding, Box<Response>> {
    for v in headers.get_all(header::CONTENT_ENCODING) {
        let v = v.to_str().unwrap_or("?").trim().to_ascii_lowercase();
        if !v.is_empty() && v != "identity" {
            return Err(Box::new(unsupported(
                "Content-Encoding",
                format!("Content-Encoding `{v}` is not supported; send the body uncompressed (identity)"),
            )));
        }
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(Box::new(unsupported(
            "Content-Type",
            format!("Content-Type `{ct}` is not supported; send application/x-protobuf or application/json"),
        ))),
    }
}

/// The body, with the body limit's 413 as an [`ApiError`].
async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    let limit = req.extensions().get::<crate::BodyLimit>().map_or(usize::MAX, |l| l.0);
    Bytes::from_request(req, &()).await.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::BadRequest { field: None, message: rej.body_text() }
        }
    })
}

fn decode(encoding: Encoding, body: &[u8]) -> Result<ExportTraceServiceRequest, ApiError> {
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| ApiError::BadRequest { field: None, message: format!("malformed protobuf: {e}") }),
        Encoding::Json => parse_json(body),
    }
}

/// What became of a request's spans.
#[derive(Debug, Default)]
struct Mapped {
    /// Admitted events, one per GenAI span (duplicates within the request removed).
    events: Vec<TelemetryEvent>,
    /// GenAI spans taken (including in-request duplicates).
    taken: usize,
    /// Spans without GenAI attributes.
    skipped: usize,
    /// Why each rejected span was rejected.
    rejected: Vec<String>,
}

/// Maps every span of `req` for `caller`.
fn map_request(caller: &Caller, req: &ExportTraceServiceRequest) -> Mapped {
    let mut out = Mapped::default();
    let mut seen = HashSet::new();
    for (i, rs) in req.resource_spans.iter().enumerate() {
        let resource = Attrs(rs.resource.as_ref().map_or(&[][..], |r| &r.attributes));
        for (j, ss) in rs.scope_spans.iter().enumerate() {
            for (k, span) in ss.spans.iter().enumerate() {
                if !is_genai(span) {
                    out.skipped += 1;
                    continue;
                }
                let path = format!("resourceSpans[{i}].scopeSpans[{j}].spans[{k}]");
                let event = map_span(span, resource).and_then(|e| {
                    admit(caller, e, "").map_err(|err| match err {
                        ApiError::BadRequest { field: Some(f), message } => match source_of(&f) {
                            Some(attr) => format!("{f} (from {attr}): {message}"),
                            None => format!("{f}: {message}"),
                        },
                        other => other.to_string(),
                    })
                });
                match event {
                    Ok(e) => {
                        out.taken += 1;
                        if seen.insert(e.event_id.clone()) {
                            out.events.push(e);
                        }
                    }
                    Err(why) => out.rejected.push(format!("{path}: {why}")),
                }
            }
        }
    }
    out
}

/// The attribute an event field is mapped from, for error messages.
fn source_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "application_id" => "resource.attributes.service.name",
        "data.model" => "gen_ai.response.model / gen_ai.request.model",
        "data.cost" => "gen_ai.usage.cost",
        "data.latency_ms" => "endTimeUnixNano - startTimeUnixNano",
        "metadata.user_id" => "user.id / enduser.id",
        "metadata.session_id" => "gen_ai.conversation.id / session.id",
        "metadata.ip" => "client.address",
        _ => return None,
    })
}

/// Whether the span reports a GenAI call.
fn is_genai(span: &Span) -> bool {
    span.attributes.iter().any(|kv| kv.key.starts_with("gen_ai."))
        || span.events.iter().any(|e| e.name.starts_with("gen_ai."))
}

/// A list of attributes.
#[derive(Clone, Copy)]
struct Attrs<'a>(&'a [KeyValue]);

impl<'a> Attrs<'a> {
    fn get(self, key: &str) -> Option<&'a AnyValue> {
        self.0.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref())
    }
}

/// A span's attributes, falling back to its resource's.
#[derive(Clone, Copy)]
struct Lookup<'a> {
    span: Attrs<'a>,
    resource: Attrs<'a>,
}

impl<'a> Lookup<'a> {
    fn get(self, key: &str) -> Option<&'a AnyValue> {
        self.span.get(key).or_else(|| self.resource.get(key))
    }

    /// The first of `keys` with a non-empty scalar value, as text.
    fn text(self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.get(k).and_then(scalar_text))
    }

    /// The first of `keys` present, as a count.
    fn count(self, keys: &[&str]) -> Result<Option<u64>, String> {
        match keys.iter().find_map(|k| self.get(k).map(|v| (k, v))) {
            None => Ok(None),
            Some((k, v)) => count(v).map(Some).map_err(|m| format!("{k}: {m}")),
        }
    }
}

/// A scalar attribute as text (`None` when empty or not a scalar).
fn scalar_text(v: &AnyValue) -> Option<String> {
    let s = match v.value.as_ref()? {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BoolValue(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// A token count: a non-negative integer (an int, a whole double or a decimal string).
fn count(v: &AnyValue) -> Result<u64, String> {
    let n = match v.value.as_ref() {
        Some(Value::IntValue(i)) => u64::try_from(*i).ok(),
        Some(Value::DoubleValue(d)) if d.is_finite() && *d >= 0.0 && d.fract() == 0.0 && *d < 1.8e19 => Some(*d as u64),
        Some(Value::StringValue(s)) => s.trim().parse().ok(),
        _ => None,
    };
    n.ok_or_else(|| "must be a non-negative integer".to_owned())
}

/// A number (cost): an int, a double or a decimal string.
fn number(v: &AnyValue) -> Result<f64, String> {
    match v.value.as_ref() {
        Some(Value::IntValue(i)) => Ok(*i as f64),
        Some(Value::DoubleValue(d)) => Ok(*d),
        Some(Value::StringValue(s)) => s.trim().parse().map_err(|_| "must be a number".to_owned()),
        _ => Err("must be a number".to_owned()),
    }
}

/// An attribute value as JSON (for structured messages).
fn to_json(v: &AnyValue) -> Json {
    match &v.value {
        None => Json::Null,
        Some(Value::StringValue(s)) => Json::String(s.clone()),
        Some(Value::BoolValue(b)) => Json::Bool(*b),
        Some(Value::IntValue(i)) => json!(i),
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
        Some(Value::ArrayValue(a)) => Json::Array(a.values.iter().map(to_json).collect()),
        Some(Value::KvlistValue(l)) => Json::Object(
            l.values.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Json::Null, to_json))).collect(),
        ),
        Some(Value::BytesValue(b)) => {
            use base64::Engine as _;
            Json::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
    }
}

/// The text of a prompt or completion attribute: plain text, or messages
/// (`gen_ai.input.messages` style `[{role, parts: [{type: text, content}]}]`,
/// or OpenAI style `[{role, content}]`) as a JSON string or structured
/// value. System messages are left out: they are the application's own.
fn message_text(v: &AnyValue) -> Option<String> {
    let value = match &v.value {
        Some(Value::StringValue(s)) => {
            let t = s.trim_start();
            match serde_json::from_str::<Json>(s) {
                Ok(j @ (Json::Array(_) | Json::Object(_))) if t.starts_with(['[', '{']) => j,
                _ => Json::String(s.clone()),
            }
        }
        Some(_) => to_json(v),
        None => return None,
    };
    let mut out = Vec::new();
    collect_text(&value, &mut out);
    let text = out.join("\n");
    (!text.is_empty()).then_some(text)
}

fn collect_text(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::String(s) if !s.is_empty() => out.push(s.clone()),
        Json::Array(items) => items.iter().for_each(|i| collect_text(i, out)),
        Json::Object(m) => {
            if m.get("role").and_then(Json::as_str) == Some("system") {
                return;
            }
            if let Some(Json::Array(parts)) = m.get("parts") {
                for p in parts {
                    let kind = p.get("type").and_then(Json::as_str).unwrap_or("text");
                    if kind == "text"
                        && let Some(c) = p.get("content").or_else(|| p.get("text")).and_then(Json::as_str)
                        && !c.is_empty()
                    {
                        out.push(c.to_owned());
                    }
                }
            } else if let Some(c) = m.get("content") {
                match c {
                    Json::String(s) if !s.is_empty() => out.push(s.clone()),
                    Json::Array(items) => {
                        for i in items {
                            match i {
                                Json::String(s) if !s.is_empty() => out.push(s.clone()),
                                Json::Object(o) => {
                                    if let Some(t) = o.get("text").and_then(Json::as_str).filter(|t| !t.is_empty()) {
                                        out.push(t.to_owned());
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            } else if let Some(t) = m.get("text").and_then(Json::as_str).filter(|t| !t.is_empty()) {
                out.push(t.to_owned());
            }
        }
        _ => {}
    }
}

/// Indexed attributes (`gen_ai.prompt.0.content`, `gen_ai.prompt.0.role`,
/// …, as OpenLLMetry writes them), in index order, system roles left out.
fn indexed_text(span: Attrs<'_>, prefix: &str) -> Option<String> {
    let mut parts: Vec<(u32, String)> = span
        .0
        .iter()
        .filter_map(|kv| {
            let n = kv.key.strip_prefix(prefix)?.strip_prefix('.')?.strip_suffix(".content")?.parse::<u32>().ok()?;
            let role = span.get(&format!("{prefix}.{n}.role")).and_then(scalar_text);
            if role.as_deref() == Some("system") {
                return None;
            }
            Some((n, kv.value.as_ref().and_then(scalar_text)?))
        })
        .collect();
    parts.sort_by_key(|(n, _)| *n);
    let text = parts.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join("\n");
    (!text.is_empty()).then_some(text)
}

/// The prompt (`side` = `prompt`, messages `input`) or completion (`completion`, `output`).
fn content(span: &Span, attrs: Attrs<'_>, side: &str, messages: &str) -> Option<String> {
    let key = format!("gen_ai.{side}");
    attrs
        .get(&format!("gen_ai.{messages}.messages"))
        .and_then(message_text)
        .or_else(|| attrs.get(&key).and_then(message_text))
        .or_else(|| {
            let event = format!("gen_ai.content.{side}");
            span.events
                .iter()
                .filter(|e| e.name == event)
                .find_map(|e| Attrs(&e.attributes).get(&key).and_then(message_text))
        })
        .or_else(|| indexed_text(attrs, &key))
}

fn nanos_to_time(field: &str, nanos: u64) -> Result<DateTime<chrono::Utc>, String> {
    let n = i64::try_from(nanos).map_err(|_| format!("{field}: {nanos} is past the year 2262"))?;
    Ok(DateTime::from_timestamp_nanos(n))
}

/// Maps one GenAI span to an event (not yet admitted).
fn map_span(span: &Span, resource: Attrs<'_>) -> Result<TelemetryEvent, String> {
    let Some(service) = resource.get("service.name").and_then(scalar_text) else {
        return Err("resource.attributes.service.name is required (it is the event's application_id)".into());
    };
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
        return Err("traceId: must be 16 bytes (32 hex digits), not all zero".into());
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
        return Err("spanId: must be 8 bytes (16 hex digits), not all zero".into());
    }
    let (trace_id, span_id) = (hex::encode(&span.trace_id), hex::encode(&span.span_id));
    let timestamp = match (span.end_time_unix_nano, span.start_time_unix_nano) {
        (0, 0) => return Err("endTimeUnixNano: required (or startTimeUnixNano)".into()),
        (0, start) => nanos_to_time("startTimeUnixNano", start)?,
        (end, _) => nanos_to_time("endTimeUnixNano", end)?,
    };
    let latency_ms = (span.start_time_unix_nano > 0 && span.end_time_unix_nano >= span.start_time_unix_nano)
        .then(|| (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6);

    let attrs = Attrs(&span.attributes);
    let at = Lookup { span: attrs, resource };
    let error_type = at.text(&["error.type"]);
    let status = span.status.as_ref();
    let failed = status.is_some_and(|s| s.code == STATUS_CODE_ERROR) || error_type.is_some();
    let prompt_tokens = at.count(&["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"])?;
    let completion_tokens = at.count(&["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"])?;
    let total_tokens = at.count(&["gen_ai.usage.total_tokens"])?.or(match (prompt_tokens, completion_tokens) {
        (None, None) => None,
        (p, c) => Some(p.unwrap_or(0).saturating_add(c.unwrap_or(0))),
    });
    let cost = at.get("gen_ai.usage.cost").map(number).transpose().map_err(|m| format!("gen_ai.usage.cost: {m}"))?;
    let finish_reason = at.get("gen_ai.response.finish_reasons").and_then(|v| match &v.value {
        Some(Value::ArrayValue(a)) => a.values.iter().find_map(scalar_text),
        Some(Value::StringValue(s)) if s.trim_start().starts_with('[') => {
            serde_json::from_str::<Vec<String>>(s).ok()?.into_iter().find(|s| !s.is_empty())
        }
        _ => scalar_text(v),
    });
    let error = status.map(|s| s.message.clone()).filter(|m| !m.is_empty()).or_else(|| error_type.clone());

    let mut extra = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            extra.insert(k.to_owned(), Json::String(v));
        }
    };
    put("provider", at.text(&["gen_ai.provider.name", "gen_ai.system"]));
    put("operation", at.text(&["gen_ai.operation.name"]));
    put("server_address", at.text(&["server.address"]));
    put("error_type", error_type);
    put("trace_id", Some(trace_id.clone()));
    put("span_id", Some(span_id.clone()));
    put("span_name", Some(span.name.clone()).filter(|n| !n.is_empty()));

    Ok(TelemetryEvent {
        event_id: format!("{trace_id}-{span_id}"),
        timestamp,
        event_type: if failed { EventType::Error } else { EventType::Response },
        application_id: service.clone(),
        tenant_id: None,
        source: Some(Source {
            service: Some(service),
            host: resource.get("host.name").and_then(scalar_text),
            version: resource.get("service.version").and_then(scalar_text),
        }),
        data: EventData {
            model: at.text(&["gen_ai.response.model", "gen_ai.request.model"]),
            prompt: content(span, attrs, "prompt", "input"),
            completion: content(span, attrs, "completion", "output"),
            prompt_tokens,
            completion_tokens,
            total_tokens,
            latency_ms,
            cost,
            status: Some(if failed { "error" } else { "success" }.to_owned()),
            finish_reason,
            logprobs: None,
            error: if failed { error } else { None },
        },
        metadata: EventMetadata {
            user_id: at.text(&["user.id", "enduser.id"]),
            session_id: at.text(&["gen_ai.conversation.id", "session.id"]),
            ip: at.text(&["client.address"]),
            role: None,
            tool_calls: None,
            extra,
        },
    })
}

/// The answer, in the request's encoding.
fn respond(encoding: Encoding, rejected: &[String]) -> Response {
    let partial_success = (!rejected.is_empty()).then(|| {
        let mut reasons: Vec<&str> = Vec::new();
        for r in rejected {
            if reasons.len() < MAX_REASONS && !reasons.contains(&r.as_str()) {
                reasons.push(r);
            }
        }
        let mut error_message = reasons.join("; ");
        if rejected.len() > reasons.len() {
            error_message.push_str(&format!("; and {} more", rejected.len() - reasons.len()));
        }
        ExportTracePartialSuccess { rejected_spans: i64::try_from(rejected.len()).unwrap_or(i64::MAX), error_message }
    });
    let answer = ExportTraceServiceResponse { partial_success };
    match encoding {
        Encoding::Protobuf => {
            ([(header::CONTENT_TYPE, "application/x-protobuf")], answer.encode_to_vec()).into_response()
        }
        Encoding::Json => axum::Json(answer).into_response(),
    }
}

async fn traces(State(state): State<AppState>, caller: Caller, req: Request) -> Result<Response, ApiError> {
    caller.require(Scope::Ingest)?;
    let encoding = match negotiate(req.headers()) {
        Ok(e) => e,
        Err(resp) => return Ok(*resp),
    };
    let body = read_body(req).await?;
    let export = decode(encoding, &body)?;
    drop(body);
    let Mapped { mut events, taken, skipped, rejected } = map_request(&caller, &export);
    drop(export);
    // Durable before the answer: `accept` returns once the store has committed.
    while !events.is_empty() {
        let rest = events.split_off(events.len().min(MAX_BATCH));
        accept(&state, &caller, events).await?;
        events = rest;
    }
    let spans = |outcome: &'static str, n: usize| {
        metrics::counter!("llm_security_otlp_spans_total", "outcome" => outcome).increment(n as u64);
    };
    spans("accepted", taken);
    spans("skipped", skipped);
    spans("rejected", rejected.len());
    Ok(respond(encoding, &rejected))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/traces", post(traces))
}

#[cfg(test)]
mod tests {
    use super::proto::*;
    use super::*;

    fn s(v: &str) -> Option<AnyValue> {
        Some(AnyValue { value: Some(Value::StringValue(v.into())) })
    }

    #[test]
    fn json_reads_the_otlp_mapping() {
        let body = br#"{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bot"}}]},
            "scopeSpans": [{"scope": {"name": "x"}, "spans": [{"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
            "name": "chat", "kind": 3, "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000,
            "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                           {"key": "gen_ai.usage.cost", "value": {"doubleValue": 0.5}},
                           {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}}],
            "status": {"code": "STATUS_CODE_OK"}, "unknownField": 1}]}]}]}"#;
        let req: ExportTraceServiceRequest = parse_json(body).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(hex::encode(&span.trace_id), "5b8efff798038103d269b633813fc60c");
        assert_eq!(
            (span.kind, span.start_time_unix_nano, span.status.as_ref().unwrap().code),
            (3, 1544712660000000000, 1)
        );
        assert_eq!(span.attributes[0].value.as_ref().unwrap().value, Some(Value::IntValue(12)));
        let e = map_span(span, Attrs(&req.resource_spans[0].resource.as_ref().unwrap().attributes)).unwrap();
        assert_eq!(e.event_id, "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174");
        assert_eq!((e.data.prompt_tokens, e.data.total_tokens, e.data.cost), (Some(12), Some(12), Some(0.5)));
        assert_eq!((e.data.latency_ms, e.data.finish_reason.as_deref()), (Some(1000.0), Some("stop")));

        let two = br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "k", "value": {"stringValue": "a", "intValue": 1}}]}]}]}]}"#;
        let err = parse_json::<ExportTraceServiceRequest>(two).unwrap_err().to_string();
        assert!(err.contains("at most one"), "{err}");
        let bad_id = br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not hex"}]}]}]}"#;
        match parse_json::<ExportTraceServiceRequest>(bad_id).unwrap_err() {
            ApiError::BadRequest { field, .. } => {
                assert_eq!(field.as_deref(), Some("resourceSpans[0].scopeSpans[0].spans[0].traceId"))
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn protobuf_round_trips_with_the_official_field_numbers() {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "chat".into(),
            kind: 3,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: vec![KeyValue { key: "gen_ai.system".into(), value: s("openai") }],
            events: vec![],
            status: Some(Status { message: "boom".into(), code: 2 }),
        };
        let bytes = span.encode_to_vec();
        // trace_id: field 1, wire type 2, 16 bytes.
        assert_eq!(&bytes[..2], &[0x0a, 16]);
        // start_time_unix_nano: field 7, fixed64 (wire type 1).
        assert!(bytes.windows(9).any(|w| w == [0x39, 1, 0, 0, 0, 0, 0, 0, 0]));
        // status: field 15, length-delimited; inside, message is 2 and code is 3.
        assert!(bytes.windows(2).any(|w| w == [0x7a, 8]));
        assert!(bytes.ends_with(&[0x12, 4, b'b', b'o', b'o', b'm', 0x18, 2]));
        assert_eq!(Span::decode(&bytes[..]).unwrap(), span);
        let r = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess { rejected_spans: 1, error_message: "x".into() }),
        };
        assert_eq!(r.encode_to_vec(), [0x0a, 5, 0x08, 1, 0x12, 1, b'x']);
    }

    #[test]
    fn message_text_reads_the_common_shapes() {
        let new = s(r#"[{"role": "system", "parts": [{"type": "text", "content": "be nice"}]},
            {"role": "user", "parts": [{"type": "text", "content": "hi"}, {"type": "blob", "content": "x"}]}]"#);
        assert_eq!(message_text(new.as_ref().unwrap()).as_deref(), Some("hi"));
        let openai = s(r#"[{"role": "user", "content": [{"type": "text", "text": "a"}, "b"]}]"#);
        assert_eq!(message_text(openai.as_ref().unwrap()).as_deref(), Some("a\nb"));
        let plain = s("[not json");
        assert_eq!(message_text(plain.as_ref().unwrap()).as_deref(), Some("[not json"));
        let attrs = vec![
            KeyValue { key: "gen_ai.prompt.1.content".into(), value: s("second") },
            KeyValue { key: "gen_ai.prompt.0.content".into(), value: s("first") },
            KeyValue { key: "gen_ai.prompt.2.role".into(), value: s("system") },
            KeyValue { key: "gen_ai.prompt.2.content".into(), value: s("sys") },
        ];
        assert_eq!(indexed_text(Attrs(&attrs), "gen_ai.prompt").as_deref(), Some("first\nsecond"));
    }

    #[test]
    fn content_headers_are_negotiated() {
        let mut h = HeaderMap::new();
        assert!(negotiate(&h).is_err(), "a content type is required");
        h.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        assert_eq!(negotiate(&h).ok(), Some(Encoding::Json));
        h.insert(header::CONTENT_TYPE, "application/x-protobuf".parse().unwrap());
        assert_eq!(negotiate(&h).ok(), Some(Encoding::Protobuf));
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert_eq!(negotiate(&h).unwrap_err().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
