//! What `mnemo fsrs simulate` prints per review: a JSON object (`--json`)
//! or a table row.

use mnemo_domain::learn::fsrs::ReplayedReview;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

/// An instant as Python's `datetime.isoformat()` writes a UTC datetime
/// (microseconds only when there are some), so py-fsrs users can compare
/// strings; it is RFC 3339 too.
pub fn iso(t: OffsetDateTime) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if t.microsecond() != 0 {
        s.push_str(&format!(".{:06}", t.microsecond()));
    }
    s.push_str("+00:00");
    s
}

/// One review as JSON. `review` is the 0-based index in the input's
/// `reviews`; `retrievability` is R at `ts` before the review (0 on the
/// first); `interval` is from `ts` to `due` in days (`interval_seconds` in
/// seconds); `state_code` is py-fsrs's `State` value.
pub fn json(id: &Value, index: usize, r: &ReplayedReview) -> Value {
    let s = &r.schedule;
    let interval = s.due - r.at;
    json!({
        "id": id,
        "review": index,
        "ts": iso(r.at),
        "rating": r.rating.number(),
        "elapsed_days": r.elapsed_days,
        "retrievability": r.retrievability,
        "stability": s.stability,
        "difficulty": s.difficulty,
        "state": s.state.name(),
        "state_code": s.state.number(),
        "step": s.step,
        "due": iso(s.due),
        "interval": interval.as_seconds_f64() / 86_400.0,
        "interval_seconds": interval.as_seconds_f64(),
    })
}

pub fn table_header(id_width: usize) -> String {
    format!(
        "{:<id_width$}  {:>4}  {:<26}  {:<6}  {:>7}  {:>6}  {:>10}  {:>10}  {:<10}  {:>4}  {:<26}  {:>9}",
        "id",
        "#",
        "reviewed (UTC)",
        "rating",
        "elapsed",
        "R",
        "stability",
        "difficulty",
        "state",
        "step",
        "due (UTC)",
        "interval"
    )
}

pub fn table_row(id: &str, id_width: usize, index: usize, r: &ReplayedReview) -> String {
    let s = &r.schedule;
    let num = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.4}"));
    format!(
        "{:<id_width$}  {:>4}  {:<26}  {:<6}  {:>7}  {:>6}  {:>10}  {:>10}  {:<10}  {:>4}  {:<26}  {:>9}",
        id,
        index,
        plain(r.at),
        format!("{:?}", r.rating).to_lowercase(),
        r.elapsed_days.map_or("-".to_owned(), |d| format!("{d}d")),
        if r.elapsed_days.is_some() { format!("{:.4}", r.retrievability) } else { "-".into() },
        num(s.stability),
        num(s.difficulty),
        s.state.name(),
        s.step.map_or("-".to_owned(), |s| s.to_string()),
        plain(s.due),
        interval_text(s.due - r.at),
    )
}

/// The id as a table cell: strings without their quotes.
pub fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn plain(t: OffsetDateTime) -> String {
    iso(t).trim_end_matches("+00:00").replacen('T', " ", 1)
}

/// 10m, 5m30s, 2h, 3h15m, 4d, 1.50d.
fn interval_text(d: Duration) -> String {
    let secs = d.whole_seconds();
    let (day, hour, min) = (86_400, 3_600, 60);
    match secs {
        s if s >= day && s % day == 0 => format!("{}d", s / day),
        s if s >= day => format!("{:.2}d", d.as_seconds_f64() / 86_400.0),
        s if s >= hour && s % hour == 0 => format!("{}h", s / hour),
        s if s >= hour => format!("{}h{}m", s / hour, s % hour / min),
        s if s % min == 0 => format!("{}m", s / min),
        s if s >= min => format!("{}m{}s", s / min, s % min),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn instants_print_like_python_isoformat() {
        assert_eq!(
            iso(datetime!(2026-01-05 09:00 UTC)),
            "2026-01-05T09:00:00+00:00"
        );
        assert_eq!(
            iso(datetime!(2026-01-05 09:00:00.000_120 UTC)),
            "2026-01-05T09:00:00.000120+00:00"
        );
    }

    #[test]
    fn intervals_read_naturally() {
        assert_eq!(interval_text(Duration::minutes(10)), "10m");
        assert_eq!(interval_text(Duration::seconds(330)), "5m30s");
        assert_eq!(interval_text(Duration::days(3)), "3d");
        assert_eq!(interval_text(Duration::hours(36)), "1.50d");
        assert_eq!(interval_text(Duration::minutes(75)), "1h15m");
    }
}
