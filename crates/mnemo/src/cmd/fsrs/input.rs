//! Review histories as `mnemo fsrs simulate` reads them, with timestamps
//! read the way a Python user feeding py-fsrs would read them, so the two
//! compute at the same instants:
//! - ISO-8601 (`2026-01-05T09:00:00Z`, `…+02:00`, a space for the `T`): the
//!   instant in UTC; no offset means UTC; a date alone is midnight UTC;
//!   digits beyond microseconds are dropped (`datetime.fromisoformat`);
//! - a number (or a string holding one): epoch seconds; a fraction is
//!   rounded half to even to the microsecond
//!   (`datetime.fromtimestamp(x, timezone.utc)`).

use mnemo_domain::learn::Rating;
use serde_json::Value;
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// One card's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    /// As given (string or number), echoed in the output.
    pub id: Value,
    pub created: OffsetDateTime,
    pub reviews: Vec<(OffsetDateTime, Rating)>,
}

/// The histories in a JSON document: a list of sequences (or one).
/// Errors name the sequence by its id and position and the review by its
/// index, e.g. `sequence "a" (input[3]): reviews[2].rating: …`.
pub fn parse(text: &str) -> Result<Vec<Sequence>, String> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| format!("the input is not JSON: {e}"))?;
    let items = match doc {
        Value::Array(items) => items,
        one @ Value::Object(_) => vec![one],
        other => {
            return Err(format!(
                "expected a JSON list of {{\"id\", \"created\", \"reviews\"}}, got {}",
                kind(&other)
            ))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(n, item)| sequence(item).map_err(|e| format!("{}: {e}", name(item, n))))
        .collect()
}

fn name(item: &Value, n: usize) -> String {
    match item.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => format!("sequence {id} (input[{n}])"),
        _ => format!("input[{n}]"),
    }
}

fn sequence(item: &Value) -> Result<Sequence, String> {
    let Value::Object(fields) = item else {
        return Err(format!("expected an object, got {}", kind(item)));
    };
    let id = match fields.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        Some(other) => {
            return Err(format!(
                "id: expected a string or a number, got {}",
                kind(other)
            ))
        }
        None => return Err("missing \"id\"".into()),
    };
    let created = timestamp(fields.get("created").ok_or("missing \"created\"")?)
        .map_err(|e| format!("created: {e}"))?;
    let reviews = match fields.get("reviews") {
        Some(Value::Array(reviews)) => reviews,
        Some(other) => return Err(format!("reviews: expected a list, got {}", kind(other))),
        None => return Err("missing \"reviews\"".into()),
    };
    let reviews = reviews
        .iter()
        .enumerate()
        .map(|(i, r)| review(r).map_err(|e| format!("reviews[{i}]{e}")))
        .collect::<Result<_, _>>()?;
    Ok(Sequence {
        id,
        created,
        reviews,
    })
}

/// A review; errors start with the field (`.ts: …`) to follow `reviews[i]`.
fn review(r: &Value) -> Result<(OffsetDateTime, Rating), String> {
    if !r.is_object() {
        return Err(format!(
            ": expected {{\"ts\", \"rating\"}}, got {}",
            kind(r)
        ));
    }
    let ts = timestamp(r.get("ts").ok_or(": missing \"ts\"")?).map_err(|e| format!(".ts: {e}"))?;
    let rating = rating(r.get("rating").ok_or(": missing \"rating\"")?)
        .map_err(|e| format!(".rating: {e}"))?;
    Ok((ts, rating))
}

fn rating(v: &Value) -> Result<Rating, String> {
    let by_name = |s: &str| match s.trim().to_ascii_lowercase().as_str() {
        "again" => Some(Rating::Again),
        "hard" => Some(Rating::Hard),
        "good" => Some(Rating::Good),
        "easy" => Some(Rating::Easy),
        other => other.parse().ok().and_then(Rating::from_number),
    };
    let rating = match v {
        // 3.0 too: py-fsrs's `Rating(3.0)` is Good.
        Value::Number(n) => n
            .as_f64()
            .filter(|x| x.fract() == 0.0 && (1.0..=4.0).contains(x))
            .and_then(|x| Rating::from_number(x as u8)),
        Value::String(s) => by_name(s),
        _ => None,
    };
    rating.ok_or_else(|| format!("expected 1..=4 or again/hard/good/easy, got {v}"))
}

/// A timestamp: ISO-8601 text or epoch seconds.
pub fn timestamp(v: &Value) -> Result<OffsetDateTime, String> {
    match v {
        Value::Number(n) => epoch(n),
        Value::String(s) => {
            let s = s.trim();
            if let Some(t) = iso8601(s)? {
                return Ok(t);
            }
            match serde_json::from_str::<Value>(s) {
                Ok(Value::Number(n)) => epoch(&n),
                _ => Err(format!(
                    "{s:?} is neither ISO-8601 (e.g. 2026-01-05T09:00:00Z) nor epoch seconds"
                )),
            }
        }
        other => Err(format!(
            "expected an ISO-8601 string or epoch seconds, got {}",
            kind(other)
        )),
    }
}

fn epoch(n: &serde_json::Number) -> Result<OffsetDateTime, String> {
    let out_of_range = || format!("{n} epoch seconds is outside the years 1..=9999");
    if let Some(seconds) = n.as_i64() {
        return OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| out_of_range());
    }
    let x = n.as_f64().ok_or_else(out_of_range)?;
    // CPython's float → (seconds, microseconds): split with modf, round the
    // fraction half to even, carry a full second either way.
    let mut seconds = x.trunc();
    let mut micros = (x.fract() * 1e6).round_ties_even();
    if micros >= 1e6 {
        micros -= 1e6;
        seconds += 1.0;
    } else if micros < 0.0 {
        micros += 1e6;
        seconds -= 1.0;
    }
    if !seconds.is_finite() || seconds.abs() > 1e12 {
        return Err(out_of_range());
    }
    OffsetDateTime::from_unix_timestamp(seconds as i64)
        .ok()
        .and_then(|t| t.checked_add(Duration::microseconds(micros as i64)))
        .ok_or_else(out_of_range)
}

/// `Ok(None)` when `s` does not look like an ISO-8601 date at all (it may be
/// a number); an error when it does but is not a valid one.
fn iso8601(s: &str) -> Result<Option<OffsetDateTime>, String> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' || !b[..4].iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    let bad = |why: &str| format!("{s:?} is not a valid ISO-8601 timestamp ({why})");
    let mut p = Cursor { b, at: 0 };
    let year = p.digits(4).ok_or_else(|| bad("year"))?;
    p.eat(b'-'); // checked above
    let month = p.digits(2).ok_or_else(|| bad("month"))?;
    p.eat(b'-'); // checked above
    let day = p.digits(2).ok_or_else(|| bad("day"))?;
    let month = Month::try_from(month as u8).map_err(|_| bad("month"))?;
    let date =
        Date::from_calendar_date(year as i32, month, day as u8).map_err(|_| bad("no such date"))?;
    let (mut hour, mut minute, mut second, mut micros) = (0, 0, 0, 0);
    if matches!(p.peek(), Some(b'T' | b't' | b' ')) {
        p.at += 1;
        hour = p.digits(2).ok_or_else(|| bad("hour"))?;
        if p.eat(b':') {
            minute = p.digits(2).ok_or_else(|| bad("minute"))?;
            if p.eat(b':') {
                second = p.digits(2).ok_or_else(|| bad("second"))?;
                if p.eat(b'.') || p.eat(b',') {
                    let start = p.at;
                    while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                        p.at += 1;
                    }
                    let digits = &s[start..p.at];
                    if digits.is_empty() {
                        return Err(bad("fraction"));
                    }
                    // Microseconds, the rest dropped (not rounded), as Python.
                    let kept = format!("{:0<6}", &digits[..digits.len().min(6)]);
                    micros = kept.parse().map_err(|_| bad("fraction"))?;
                }
            }
        }
    }
    let time = Time::from_hms_micro(hour as u8, minute as u8, second as u8, micros)
        .map_err(|_| bad("time of day"))?;
    let offset = match p.peek() {
        None => UtcOffset::UTC,
        Some(b'Z' | b'z') => {
            p.at += 1;
            UtcOffset::UTC
        }
        Some(sign @ (b'+' | b'-')) => {
            p.at += 1;
            let h = p.digits(2).ok_or_else(|| bad("offset"))? as i8;
            p.eat(b':');
            let m = if p.peek().is_some() {
                p.digits(2).ok_or_else(|| bad("offset"))? as i8
            } else {
                0
            };
            let (h, m) = if sign == b'-' { (-h, -m) } else { (h, m) };
            UtcOffset::from_hms(h, m, 0).map_err(|_| bad("offset"))?
        }
        Some(_) => return Err(bad("unexpected characters")),
    };
    if p.at != b.len() {
        return Err(bad("unexpected characters"));
    }
    Ok(Some(
        PrimitiveDateTime::new(date, time)
            .assume_offset(offset)
            .to_offset(UtcOffset::UTC),
    ))
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.at += usize::from(hit);
        hit
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let end = self.at + n;
        let digits = self.b.get(self.at..end)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.at = end;
        std::str::from_utf8(digits).ok()?.parse().ok()
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn ts(v: Value) -> OffsetDateTime {
        timestamp(&v).unwrap()
    }

    #[test]
    fn iso_timestamps_are_read_as_python_reads_them() {
        let t = datetime!(2026-01-05 09:00 UTC);
        assert_eq!(ts(json!("2026-01-05T09:00:00Z")), t);
        assert_eq!(ts(json!("2026-01-05T09:00:00+00:00")), t);
        assert_eq!(ts(json!("2026-01-05 10:30:00+01:30")), t);
        assert_eq!(ts(json!("2026-01-05T01:00:00-0800")), t);
        assert_eq!(ts(json!("2026-01-05T09:00:00")), t, "no offset is UTC");
        assert_eq!(ts(json!("2026-01-05T09:00")), t);
        assert_eq!(ts(json!("2026-01-05")), datetime!(2026-01-05 00:00 UTC));
        assert_eq!(
            ts(json!("2026-01-05T09:00:00.1234569Z")),
            t + Duration::microseconds(123_456),
            "truncated, not rounded"
        );
        assert_eq!(
            ts(json!("2026-01-05T09:00:00.5Z")),
            t + Duration::milliseconds(500)
        );
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-01-05T25:00:00Z",
            "2026-01-05T09:00:00Q",
            "2026-01-05T09:00:00.",
        ] {
            let e = timestamp(&json!(bad)).unwrap_err();
            assert!(e.contains("not a valid ISO-8601"), "{bad}: {e}");
        }
    }

    #[test]
    fn epoch_seconds_round_like_datetime_fromtimestamp() {
        let t = datetime!(2023-11-14 22:13:20 UTC);
        assert_eq!(ts(json!(1_700_000_000)), t);
        assert_eq!(ts(json!("1700000000")), t);
        assert_eq!(ts(json!(1_700_000_000.25)), t + Duration::milliseconds(250));
        // Python: datetime.fromtimestamp(-1.5, timezone.utc) == 1969-12-31 23:59:58.5
        assert_eq!(ts(json!(-1.5)), datetime!(1969-12-31 23:59:58.5 UTC));
        // 1700000000.0000005 is just below the half microsecond: Python gives +0 µs.
        assert_eq!(ts(json!(1_700_000_000.000_000_5)), t);
        assert!(timestamp(&json!(1e300)).is_err());
        assert!(timestamp(&json!(true)).is_err());
    }

    #[test]
    fn errors_name_the_sequence_and_the_review() {
        let e = parse(r#"[{"id": "a", "created": 0, "reviews": []},
                          {"id": "b", "created": 0, "reviews": [{"ts": 1, "rating": 3}, {"ts": 2, "rating": 5}]}]"#)
        .unwrap_err();
        assert_eq!(
            e,
            r#"sequence "b" (input[1]): reviews[1].rating: expected 1..=4 or again/hard/good/easy, got 5"#
        );
        let e = parse(r#"[{"id": 7, "created": "yesterday", "reviews": []}]"#).unwrap_err();
        assert!(
            e.starts_with("sequence 7 (input[0]): created: \"yesterday\" is neither"),
            "{e}"
        );
        let e = parse(r#"[{"created": 0, "reviews": []}]"#).unwrap_err();
        assert_eq!(e, "input[0]: missing \"id\"");
        let e = parse(r#"{"id": "x", "created": 0, "reviews": [{"rating": 1}]}"#).unwrap_err();
        assert_eq!(e, r#"sequence "x" (input[0]): reviews[0]: missing "ts""#);
        assert!(parse("[1,")
            .unwrap_err()
            .starts_with("the input is not JSON"));
    }

    #[test]
    fn ratings_are_numbers_or_names() {
        let seqs = parse(r#"[{"id": "a", "created": 0, "reviews": [{"ts": 1, "rating": "Good"}, {"ts": 2, "rating": 1}]}]"#)
            .unwrap();
        let ratings: Vec<_> = seqs[0].reviews.iter().map(|r| r.1).collect();
        assert_eq!(ratings, [Rating::Good, Rating::Again]);
        assert_eq!(rating(&json!(3.0)), Ok(Rating::Good));
        assert!(rating(&json!(3.5)).is_err());
        assert!(rating(&json!(-1)).is_err());
        assert!(rating(&json!(0)).is_err());
    }
}
