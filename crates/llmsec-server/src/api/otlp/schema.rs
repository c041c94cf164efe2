//! The OTLP trace messages this endpoint reads and answers with, as
//! protobuf and OTLP/JSON, and decoding a request body into them.

use prost::Message as _;

use self::proto::ExportTraceServiceRequest;
use super::Encoding;
use crate::error::{ApiError, parse_json};

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

pub(super) fn decode(encoding: Encoding, body: &[u8]) -> Result<ExportTraceServiceRequest, ApiError> {
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| ApiError::BadRequest { field: None, message: format!("malformed protobuf: {e}") }),
        Encoding::Json => parse_json(body),
    }
}

#[cfg(test)]
mod tests {
    use super::proto::*;
    use super::*;

    fn s(v: &str) -> Option<AnyValue> {
        Some(AnyValue { value: Some(Value::StringValue(v.into())) })
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
}
