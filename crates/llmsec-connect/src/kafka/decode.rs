//! One Kafka message to one telemetry event, or the reason it cannot be one.

use llm_sentinel::event::TelemetryEvent;
use prost::Message as _;

use super::PayloadFormat;

/// A message larger than this is dead-lettered unread (the REST API's
/// default body limit is of the same order).
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Decodes a message value in `format` (a seed-002 event as JSON, or a
/// `sentinel.v1.TelemetryEvent`) and checks it ([`TelemetryEvent::validate`]).
/// The error is the dead-letter reason: it names the field where there is
/// one (`data.latency_ms: invalid type…`).
pub fn decode(payload: Option<&[u8]>, format: PayloadFormat) -> Result<TelemetryEvent, String> {
    let bytes = payload.ok_or_else(|| "empty message (no value)".to_owned())?;
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(format!("message is {} bytes; at most {MAX_EVENT_BYTES}", bytes.len()));
    }
    let event = match format {
        PayloadFormat::Json => from_json(bytes)?,
        PayloadFormat::Protobuf => from_protobuf(bytes)?,
    };
    event.validate().map_err(|e| e.to_string())?;
    Ok(event)
}

fn from_protobuf(bytes: &[u8]) -> Result<TelemetryEvent, String> {
    let m = llmsec_proto::v1::TelemetryEvent::decode(bytes)
        .map_err(|e| format!("not a sentinel.v1.TelemetryEvent: {e}"))?;
    llmsec_proto::to_event(m).map_err(|e| e.to_string())
}

fn from_json(bytes: &[u8]) -> Result<TelemetryEvent, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let de = &mut serde_json::Deserializer::from_str(text);
    let event: TelemetryEvent = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path == "?" {
            format!("not a telemetry event: {}", e.inner())
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(payload: Option<&[u8]>) -> Result<TelemetryEvent, String> {
        super::decode(payload, PayloadFormat::Json)
    }

    fn proto_event(id: &str) -> llmsec_proto::v1::TelemetryEvent {
        use llmsec_proto::v1;
        v1::TelemetryEvent {
            event_id: id.into(),
            timestamp: Some(llmsec_proto::prost_types::Timestamp { seconds: 1_767_225_600, nanos: 0 }),
            event_type: "llm.response".into(),
            application_id: "app".into(),
            payload: Some(v1::telemetry_event::Payload::Response(v1::ResponseData {
                latency_ms: 12.5,
                total_tokens: 30,
                ..Default::default()
            })),
            metadata: Some(v1::Metadata { user_id: "u1".into(), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn a_protobuf_event_decodes_like_its_json_twin() {
        let bytes = proto_event("e1").encode_to_vec();
        let e = super::decode(Some(&bytes), PayloadFormat::Protobuf).expect("valid");
        assert_eq!((e.event_id.as_str(), e.application_id.as_str()), ("e1", "app"));
        assert_eq!((e.data.latency_ms, e.data.total_tokens), (Some(12.5), Some(30)));
        assert_eq!(e.metadata.user_id.as_deref(), Some("u1"));
        // The same bytes are no JSON event, and a JSON event is no protobuf one.
        assert!(decode(Some(&bytes)).is_err());
        let json = super::decode(Some(GOOD.as_bytes()), PayloadFormat::Protobuf).expect_err("json on a protobuf topic");
        assert!(json.starts_with("not a sentinel.v1.TelemetryEvent"), "{json}");
    }

    #[test]
    fn protobuf_dead_letter_reasons_name_what_is_wrong() {
        let mut m = proto_event("e1");
        m.event_type = "llm.maybe".into();
        let why = super::decode(Some(&m.encode_to_vec()), PayloadFormat::Protobuf).expect_err("type");
        assert!(why.starts_with("event_type: \"llm.maybe\""), "{why}");
        // The event's own rules apply as for JSON: an empty id is refused.
        let why = super::decode(Some(&proto_event("").encode_to_vec()), PayloadFormat::Protobuf).expect_err("id");
        assert!(why.contains("event_id: must be 1-256 bytes"), "{why}");
        let why = super::decode(Some(&[0xff, 0xff, 0xff]), PayloadFormat::Protobuf).expect_err("garbage");
        assert!(why.starts_with("not a sentinel.v1.TelemetryEvent"), "{why}");
        assert_eq!(super::decode(None, PayloadFormat::Protobuf).expect_err("none"), "empty message (no value)");
    }

    const GOOD: &str = r#"{"event_id":"e1","timestamp":"2026-01-01T00:00:00Z","event_type":"llm.request",
        "application_id":"app","data":{"model":"gpt-4o","latency_ms":12.5},"metadata":{"user_id":"u1"}}"#;

    #[test]
    fn a_seed_event_decodes() {
        let e = decode(Some(GOOD.as_bytes())).expect("valid");
        assert_eq!((e.event_id.as_str(), e.application_id.as_str()), ("e1", "app"));
        assert_eq!(e.data.latency_ms, Some(12.5));
    }

    #[test]
    fn dead_letter_reasons_name_what_is_wrong() {
        let cases: &[(&[u8], &str)] = &[
            (b"not json", "not a telemetry event: expected ident"),
            (b"{\"event_id\":1}", "event_id: invalid type"),
            (&[0xff, 0xfe], "not UTF-8"),
            (
                GOOD.replace("12.5", "\"slow\"").as_bytes().to_vec().leak(),
                "data.latency_ms: invalid type: string \"slow\"",
            ),
            (GOOD.replace("12.5", "-1").as_bytes().to_vec().leak(), "data.latency_ms: must be a finite number"),
            (GOOD.replace("\"e1\"", "\"\"").as_bytes().to_vec().leak(), "event_id: must be 1-256 bytes"),
            (GOOD.replace("\"app\",", "\"app\",\"colour\":1,").as_bytes().to_vec().leak(), "colour"),
        ];
        for (bytes, want) in cases {
            let why = decode(Some(bytes)).expect_err("poison");
            assert!(why.contains(want), "{why:?} should contain {want:?}");
        }
        assert_eq!(decode(None).expect_err("no value"), "empty message (no value)");
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(decode(Some(&big)).expect_err("too big").starts_with("message is 1048577 bytes"));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_give_a_reason(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            match decode(Some(&bytes)) {
                Ok(e) => prop_assert!(e.validate().is_ok()),
                Err(why) => prop_assert!(!why.is_empty()),
            }
        }

        #[test]
        fn any_bytes_decode_as_protobuf_or_give_a_reason(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            match super::decode(Some(&bytes), PayloadFormat::Protobuf) {
                Ok(e) => prop_assert!(e.validate().is_ok()),
                Err(why) => prop_assert!(!why.is_empty()),
            }
        }

        #[test]
        fn protobuf_ids_round_trip(id in "[a-zA-Z0-9_.:-]{1,64}") {
            let bytes = proto_event(&id).encode_to_vec();
            prop_assert_eq!(super::decode(Some(&bytes), PayloadFormat::Protobuf).map(|e| e.event_id), Ok(id));
        }

        #[test]
        fn valid_ids_round_trip(id in "[a-zA-Z0-9_.:-]{1,64}") {
            let json = GOOD.replace("\"e1\"", &serde_json::to_string(&id).expect("string"));
            prop_assert_eq!(decode(Some(json.as_bytes())).map(|e| e.event_id), Ok(id));
        }
    }
}
