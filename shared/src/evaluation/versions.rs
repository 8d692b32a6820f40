//! Semver filters read exactly as posthog-python 7.91.1 reads them (`parse_semver`,
//! `_tilde_bounds`, `_caret_bounds`, `_wildcard_bounds` in its `feature_flags.py`).
//!
//! PostHog's own server is more lenient (it strips leading zeros and orders pre-releases), but
//! then a flag the Python SDK evaluates locally could get another answer from `/flags`. So both
//! sides follow the SDK: where it answers, we give the same answer; where it cannot read a
//! version (it then defers to `/flags`), the filter does not match, as the server does for any
//! version it cannot parse.

use std::cmp::Ordering;

use serde_json::Value;

use crate::python;

/// Python refuses `int()` of longer digit strings (`sys.get_int_max_str_digits()`), so such a
/// part is as unreadable to the SDK as a non-digit one.
const PY_INT_MAX_STR_DIGITS: usize = 4300;

/// A numeric identifier in canonical decimal (no leading zero). Compared by value at any
/// length: Python's integers are unbounded, so `u64` would diverge on long parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Numeric(String);

impl Ord for Numeric {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Numeric {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Numeric {
    fn zero() -> Numeric {
        Numeric("0".into())
    }

    /// `_semver_numeric_identifier`: ASCII digits, and no leading zero (semver 2.0.0 §2).
    /// Python's `isdigit()` also admits other scripts' digits; those are not read here.
    fn parse(part: &str) -> Option<Numeric> {
        let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        let leading_zero = part.len() > 1 && part.starts_with('0');
        (digits && !leading_zero && part.len() <= PY_INT_MAX_STR_DIGITS)
            .then(|| Numeric(part.to_owned()))
    }

    fn succ(&self) -> Numeric {
        let mut digits = self.0.clone().into_bytes();
        for digit in digits.iter_mut().rev() {
            if *digit == b'9' {
                *digit = b'0';
            } else {
                *digit += 1;
                return Numeric(String::from_utf8(digits).unwrap_or_default());
            }
        }
        digits.insert(0, b'1');
        Numeric(String::from_utf8(digits).unwrap_or_default())
    }

    fn is_zero(&self) -> bool {
        self.0 == "0"
    }
}

/// `(major, minor, patch)`; pre-release and build suffixes are dropped, so they never count.
pub(crate) type Version = [Numeric; 3];

/// `str(value).strip().lstrip("vV")`: every leading `v`/`V` goes, not just one.
fn unprefixed(text: &str) -> &str {
    python::strip(text).trim_start_matches(['v', 'V'])
}

/// `parse_semver(value)`; `None` where the SDK raises (and so defers to the server).
pub(crate) fn parse(value: &Value) -> Option<Version> {
    parse_text(&python::str(value))
}

fn parse_text(text: &str) -> Option<Version> {
    let text = unprefixed(text);
    let core = text.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core.split('.');
    let major = Numeric::parse(parts.next().filter(|p| !p.is_empty())?)?;
    // A missing or empty minor/patch reads as 0; anything past the patch is ignored.
    let mut optional = || match parts.next() {
        None | Some("") => Some(Numeric::zero()),
        Some(part) => Numeric::parse(part),
    };
    let minor = optional()?;
    let patch = optional()?;
    Some([major, minor, patch])
}

/// `[lower, upper)` of a tilde, caret or wildcard filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Range {
    lower: Version,
    upper: Version,
}

impl Range {
    pub(crate) fn contains(&self, version: &Version) -> bool {
        self.lower <= *version && *version < self.upper
    }
}

/// `~1.2.3` is `>=1.2.3 <1.3.0`.
pub(crate) fn tilde(value: &Value) -> Option<Range> {
    let [major, minor, patch] = parse(value)?;
    let upper = [major.clone(), minor.succ(), Numeric::zero()];
    Some(Range {
        lower: [major, minor, patch],
        upper,
    })
}

/// `^1.2.3` is `<2.0.0`, `^0.2.3` is `<0.3.0`, `^0.0.3` is `<0.0.4`.
pub(crate) fn caret(value: &Value) -> Option<Range> {
    let [major, minor, patch] = parse(value)?;
    let upper = if !major.is_zero() {
        [major.succ(), Numeric::zero(), Numeric::zero()]
    } else if !minor.is_zero() {
        [Numeric::zero(), minor.succ(), Numeric::zero()]
    } else {
        [Numeric::zero(), Numeric::zero(), patch.succ()]
    };
    Some(Range {
        lower: [major, minor, patch],
        upper,
    })
}

/// `1.*` is `>=1.0.0 <2.0.0`, `1.2.*` is `>=1.2.0 <1.3.0`, `1.2.3` is exactly 1.2.3. Every `*`
/// is dropped wherever it stands, then trailing dots and empty parts; no pre-release cut.
pub(crate) fn wildcard(value: &Value) -> Option<Range> {
    let text = unprefixed(&python::str(value)).replace('*', "");
    let mut parts = text
        .trim_end_matches('.')
        .split('.')
        .filter(|p| !p.is_empty());
    let major = Numeric::parse(parts.next()?)?;
    let Some(minor) = parts.next() else {
        return Some(Range {
            upper: [major.succ(), Numeric::zero(), Numeric::zero()],
            lower: [major, Numeric::zero(), Numeric::zero()],
        });
    };
    let minor = Numeric::parse(minor)?;
    let Some(patch) = parts.next() else {
        return Some(Range {
            upper: [major.clone(), minor.succ(), Numeric::zero()],
            lower: [major, minor, Numeric::zero()],
        });
    };
    let patch = Numeric::parse(patch)?;
    Some(Range {
        upper: [major.clone(), minor.clone(), patch.succ()],
        lower: [major, minor, patch],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(text: &str) -> Option<[String; 3]> {
        parse(&json!(text)).map(|parts| parts.map(|n| n.0))
    }

    fn triple(a: &str, b: &str, c: &str) -> Option<[String; 3]> {
        Some([a.into(), b.into(), c.into()])
    }

    #[test]
    fn leading_zeros_are_refused_in_every_part() {
        for text in [
            "01.2.3", "1.02.3", "1.2.03", "00.1.0", "1.00", "v01.0.0", "3.08",
        ] {
            assert_eq!(v(text), None, "{text}");
        }
        assert_eq!(v("0.0.0"), triple("0", "0", "0"));
        assert_eq!(v("10.20.30"), triple("10", "20", "30"));
    }

    #[test]
    fn lenient_shapes_the_sdk_reads() {
        assert_eq!(v("1.2"), triple("1", "2", "0"));
        assert_eq!(v("7"), triple("7", "0", "0"));
        assert_eq!(v("1."), triple("1", "0", "0"));
        assert_eq!(v("1..3"), triple("1", "0", "3"));
        assert_eq!(v(" v1.2.3 "), triple("1", "2", "3"));
        assert_eq!(v("Vv1.2.3"), triple("1", "2", "3"));
        assert_eq!(v("1.2.3-beta.01"), triple("1", "2", "3"));
        assert_eq!(v("1.2.3+build-7"), triple("1", "2", "3"));
        assert_eq!(v("1.2.3.4.x"), triple("1", "2", "3"));
        // The core ends at the first `-`, even right after a dot.
        assert_eq!(v("1.-2"), triple("1", "0", "0"));
        assert_eq!(v("\u{1f}1.2.3\u{3000}"), triple("1", "2", "3"));
        assert_eq!(
            parse(&json!(1.5)).map(|p| p.map(|n| n.0)),
            triple("1", "5", "0")
        );
        assert_eq!(
            parse(&json!(2)).map(|p| p.map(|n| n.0)),
            triple("2", "0", "0")
        );
    }

    #[test]
    fn unreadable_versions() {
        for text in [
            "", " ", "v", "-1.2.3", ".1.2", "1.x", "v 1.2.3", "1.2.3a", "abc", "1.2.²",
        ] {
            assert_eq!(v(text), None, "{text:?}");
        }
        for value in [
            json!(true),
            json!(null),
            json!([1]),
            json!({"a": 1}),
            json!(1e16),
        ] {
            assert_eq!(parse(&value), None, "{value}");
        }
        assert!(parse_text(&"9".repeat(PY_INT_MAX_STR_DIGITS)).is_some());
        assert!(parse_text(&"9".repeat(PY_INT_MAX_STR_DIGITS + 1)).is_none());
    }

    #[test]
    fn numbers_compare_by_value_at_any_length() {
        let big = "99999999999999999999999999";
        assert!(parse_text(&format!("{big}.0.0")) > parse_text("10.0.0"));
        assert!(parse_text("1.10.0") > parse_text("1.9.0"));
        assert_eq!(
            Numeric(big.into()).succ().0,
            format!("1{}", "0".repeat(big.len()))
        );
        assert_eq!(Numeric("129".into()).succ().0, "130");
        assert_eq!(Numeric::zero().succ().0, "1");
    }

    fn range(f: fn(&Value) -> Option<Range>, text: &str) -> Option<(String, String)> {
        f(&json!(text)).map(|r| {
            let show = |v: &Version| format!("{}.{}.{}", v[0].0, v[1].0, v[2].0);
            (show(&r.lower), show(&r.upper))
        })
    }

    fn bounds(lower: &str, upper: &str) -> Option<(String, String)> {
        Some((lower.into(), upper.into()))
    }

    #[test]
    fn tilde_and_caret_bounds() {
        assert_eq!(range(tilde, "1.2.3"), bounds("1.2.3", "1.3.0"));
        assert_eq!(range(tilde, "1"), bounds("1.0.0", "1.1.0"));
        assert_eq!(range(caret, "1.2.3"), bounds("1.2.3", "2.0.0"));
        assert_eq!(range(caret, "0.2.3"), bounds("0.2.3", "0.3.0"));
        assert_eq!(range(caret, "0.0.3"), bounds("0.0.3", "0.0.4"));
        assert_eq!(range(caret, "v0.0.0-rc.1"), bounds("0.0.0", "0.0.1"));
        assert_eq!(range(tilde, "01.2.3"), None);
        assert_eq!(range(caret, "1.2.03"), None);
    }

    #[test]
    fn wildcard_bounds() {
        assert_eq!(range(wildcard, "1.*"), bounds("1.0.0", "2.0.0"));
        assert_eq!(range(wildcard, "1.2.*"), bounds("1.2.0", "1.3.0"));
        assert_eq!(range(wildcard, "1.2.3"), bounds("1.2.3", "1.2.4"));
        assert_eq!(range(wildcard, "1.2.3.*"), bounds("1.2.3", "1.2.4"));
        assert_eq!(range(wildcard, "1.*.3"), bounds("1.3.0", "1.4.0"));
        assert_eq!(range(wildcard, "1*2"), bounds("12.0.0", "13.0.0"));
        assert_eq!(range(wildcard, " V2.* "), bounds("2.0.0", "3.0.0"));
        assert_eq!(range(wildcard, ".1.*"), bounds("1.0.0", "2.0.0"));
        for bad in ["*", "", "...", "01.*", "1.02.*", "1.2-beta.*", "x.*"] {
            assert_eq!(range(wildcard, bad), None, "{bad:?}");
        }
    }
}
