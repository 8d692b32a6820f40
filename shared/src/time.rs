//! Timestamps the way PostHog prints them: ISO-8601 UTC, microseconds, `Z`.

use chrono::{DateTime, SecondsFormat, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn format(ts: &Timestamp) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses what DRF's DateTimeField accepts in practice: RFC 3339 with or without offset
/// (naive values are taken as UTC) and bare dates.
pub fn parse(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(ts) = DateTime::parse_from_rfc3339(text) {
        return Some(ts.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(text, fmt) {
            return Some(naive.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|naive| naive.and_utc())
}

/// Serde adapter storing timestamps as PostHog-formatted strings.
pub mod serde_ts {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| serde::de::Error::custom(format!("bad timestamp {text}")))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match ts {
                Some(ts) => s.serialize_some(&format(ts)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => parse(&text)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom(format!("bad timestamp {text}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_micros_and_z() {
        let ts = parse("2021-08-25T22:09:14.252Z").unwrap();
        assert_eq!(format(&ts), "2021-08-25T22:09:14.252000Z");
    }

    #[test]
    fn accepts_offsets_naive_and_dates() {
        assert_eq!(
            format(&parse("2021-08-25T23:09:14+01:00").unwrap()),
            "2021-08-25T22:09:14.000000Z"
        );
        assert!(parse("2021-08-25T22:09:14").is_some());
        assert!(parse("2021-08-25").is_some());
        assert!(parse("yesterday").is_none());
    }
}
