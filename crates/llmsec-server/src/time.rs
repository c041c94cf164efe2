//! Times as the API writes them.

/// Unix milliseconds as RFC 3339 with millisecond precision, in UTC
/// (`2026-12-07T05:38:29.123Z`); `None` outside chrono's range.
pub fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    #[test]
    fn millis_are_written_in_utc_with_milliseconds() {
        assert_eq!(super::rfc3339(1_764_000_000_123).as_deref(), Some("2025-11-24T16:00:00.123Z"));
        assert_eq!(super::rfc3339(i64::MAX), None);
    }
}
