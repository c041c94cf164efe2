//! Times as reports write them.

use chrono::{SecondsFormat, TimeZone, Utc};
use llmsec_store::Millis;

/// Unix milliseconds as RFC 3339 UTC (`2026-01-31T12:00:00.000Z`).
pub fn rfc3339(ms: Millis) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The UTC date of a time (`2026-01-31`).
pub fn date(ms: Millis) -> String {
    Utc.timestamp_millis_opt(ms).single().map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d").to_string())
}

/// A duration for people: `45s`, `12m 5s`, `3h 20m`, `2d 4h`.
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_well() {
        assert_eq!(rfc3339(1_709_214_300_000), "2024-02-29T13:45:00.000Z");
        assert_eq!(date(1_709_214_300_000), "2024-02-29");
        assert_eq!(duration(45_000), "45s");
        assert_eq!(duration(725_000), "12m 5s");
        assert_eq!(duration(12_000_000), "3h 20m");
        assert_eq!(duration(187_200_000), "2d 4h");
        assert_eq!(duration(-5), "0s");
    }
}
