//! FSRS-6 against py-fsrs 6.3.2 on the curated sample in `testdata/`
//! (written by `tests/fsrs/reference.py --fixture`), plus the properties
//! that are ours (configuration checks, fuzz, the card aggregate).

use std::sync::Arc;

use cqrs_es::Aggregate;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::OffsetDateTime;

use super::*;
use crate::learn::card::{Card, CardCommand, CardContent, CardEvent};
use crate::learn::schedule::CardState;

const FIXTURE: &str = include_str!("testdata/py-fsrs-6.3.2.json");

fn instant(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(
        v.as_str().expect("fixture timestamps are strings"),
        &Rfc3339,
    )
    .expect("fixture timestamps are RFC 3339")
}

fn close(ours: f64, theirs: f64) -> bool {
    ours == theirs || (ours - theirs).abs() <= 1e-6 * ours.abs().max(theirs.abs())
}

#[test]
fn the_curated_sample_matches_py_fsrs() {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let group = &fixture["groups"][0];
    assert_eq!(group["config"]["enable_fuzzing"], false);
    let fsrs = Fsrs::default();
    let mut reviews = 0;
    for (sequence, expected) in group["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .zip(group["expected"].as_array().unwrap())
    {
        let id = &sequence["id"];
        let history = sequence["reviews"].as_array().unwrap().iter().map(|r| {
            let rating = r["rating"].as_u64().unwrap() as u8;
            (instant(&r["ts"]), Rating::from_number(rating).unwrap())
        });
        let ours = fsrs.replay(instant(&sequence["created"]), history).unwrap();
        let theirs = expected.as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{id}");
        for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
            let s = &o.schedule;
            let at = format!("{id} review {i}");
            assert!(
                close(s.stability.unwrap(), t["stability"].as_f64().unwrap()),
                "{at}: stability {s:?} vs {t}"
            );
            assert!(
                close(s.difficulty.unwrap(), t["difficulty"].as_f64().unwrap()),
                "{at}: difficulty {s:?} vs {t}"
            );
            assert!(
                close(o.retrievability, t["retrievability"].as_f64().unwrap()),
                "{at}: R {} vs {t}",
                o.retrievability
            );
            assert_eq!(
                u64::from(s.state.number()),
                t["state"].as_u64().unwrap(),
                "{at}: state"
            );
            assert_eq!(s.step.map(u64::from), t["step"].as_u64(), "{at}: step");
            assert_eq!(s.due, instant(&t["due"]), "{at}: due");
            assert_eq!(
                o.elapsed_days,
                t["elapsed_days"].as_i64(),
                "{at}: elapsed days"
            );
            reviews += 1;
        }
    }
    assert!(reviews >= 200, "the sample has {reviews} reviews");
}

#[test]
fn a_new_card_is_a_fresh_py_fsrs_card() {
    let at = datetime!(2026-01-05 09:00 UTC);
    let card = Schedule::new_card(at);
    assert_eq!(
        (card.state, card.step, card.due),
        (CardState::Learning, Some(0), at)
    );
    assert!(card.is_new());
    assert_eq!(Fsrs::default().retrievability(&card, at), 0.0);
    let first = Fsrs::default().review(&card, Rating::Good, at);
    assert_eq!(first.stability, Some(DEFAULT_PARAMETERS[2]));
    assert_eq!((first.state, first.step), (CardState::Learning, Some(1)));
    assert_eq!(first.interval(), Some(time::Duration::minutes(10)));
}

#[test]
fn a_schedule_recorded_as_new_reads_as_learning_step_zero() {
    let old = r#"{"state":"new","step":null,"stability":null,"difficulty":null,
                  "due":"2026-01-05T09:00:00Z","last_review":null}"#;
    let s: Schedule = serde_json::from_str(old).unwrap();
    assert_eq!(s.state, CardState::Learning);
    let at = datetime!(2026-01-05 09:00 UTC);
    assert_eq!(
        Fsrs::default().review(&s, Rating::Good, at),
        Fsrs::default().review(&Schedule::new_card(at), Rating::Good, at)
    );
}

#[test]
fn elapsed_days_floor_like_python_timedelta() {
    let t = datetime!(2026-01-05 09:00 UTC);
    let us = time::Duration::microseconds;
    assert_eq!(Fsrs::elapsed_days(t, t + time::Duration::DAY - us(1)), 0);
    assert_eq!(Fsrs::elapsed_days(t, t + time::Duration::DAY), 1);
    assert_eq!(Fsrs::elapsed_days(t, t - us(1)), -1);
}

#[test]
fn retrievability_uses_whole_days_and_never_exceeds_one() {
    let fsrs = Fsrs::default();
    let at = datetime!(2026-01-05 09:00 UTC);
    let reviewed = fsrs.review(&Schedule::new_card(at), Rating::Easy, at);
    let later = |d: time::Duration| fsrs.retrievability(&reviewed, at + d);
    assert_eq!(later(time::Duration::hours(23)), 1.0);
    assert_eq!(later(-time::Duration::DAY), 1.0);
    assert!(later(time::Duration::DAY) < 1.0);
    assert_eq!(later(time::Duration::DAY), later(time::Duration::hours(47)));
}

#[test]
fn configurations_are_checked() {
    let bad = |c: FsrsConfig| Fsrs::new(c).unwrap_err();
    let d = FsrsConfig::default;
    assert_eq!(
        bad(d().with_parameters(&[0.2; 19])),
        FsrsConfigError::ParameterCount(19)
    );
    let mut w = DEFAULT_PARAMETERS;
    w[20] = 0.9;
    assert!(matches!(
        bad(d().with_parameters(&w)),
        FsrsConfigError::ParameterOutOfBounds { index: 20, .. }
    ));
    w[20] = f64::NAN;
    assert!(matches!(
        bad(d().with_parameters(&w)),
        FsrsConfigError::ParameterOutOfBounds { index: 20, .. }
    ));
    assert_eq!(
        bad(d().with_desired_retention(1.0)),
        FsrsConfigError::DesiredRetention(1.0)
    );
    assert_eq!(
        bad(d().with_maximum_interval(0)),
        FsrsConfigError::MaximumInterval
    );
    assert_eq!(
        bad(d().with_learning_steps(&[60, 0])),
        FsrsConfigError::ZeroStep
    );
    assert!(Fsrs::new(d().with_learning_steps(&[]).with_desired_retention(0.8)).is_ok());
    let json = serde_json::to_string(&d().with_fuzz_seed(Some(7))).unwrap();
    assert_eq!(
        serde_json::from_str::<FsrsConfig>(&json).unwrap().fuzz_seed,
        Some(7)
    );
}

/// Good reviews on time, many times over, with a scheduler.
fn good_streak(fsrs: &Fsrs, start: OffsetDateTime) -> Vec<Schedule> {
    let mut s = Schedule::new_card(start);
    let mut at = start;
    (0..12)
        .map(|_| {
            s = fsrs.review(&s, Rating::Good, at);
            at = s.due;
            s.clone()
        })
        .collect()
}

#[test]
fn fuzz_is_off_by_default_and_reproducible_from_its_seed() {
    let start = datetime!(2026-01-05 09:00 UTC);
    let plain = Fsrs::default();
    let seeded = |seed| Fsrs::new(FsrsConfig::default().with_fuzz_seed(Some(seed))).unwrap();
    let unfuzzed = good_streak(&plain, start);
    let fuzzed = good_streak(&seeded(1), start);
    assert_eq!(
        fuzzed,
        good_streak(&seeded(1), start),
        "same seed, same dues"
    );
    assert_ne!(
        fuzzed,
        good_streak(&seeded(2), start),
        "another seed, other dues"
    );
    assert_ne!(fuzzed, unfuzzed);
    for s in &fuzzed {
        let days = s.interval().unwrap().whole_days();
        let exact = i64::from(seeded(1).interval_days(s.stability.unwrap()));
        if s.state == CardState::Review && exact >= 3 {
            let (low, high) = fuzz::range(exact, 36_500);
            assert!(
                (low..=high + 1).contains(&days),
                "{days} outside {low}..={high} for {exact}"
            );
        } else {
            assert!(days == exact || s.state != CardState::Review);
        }
    }
}

#[test]
fn the_card_aggregate_records_what_fsrs_computes() {
    let fsrs = Arc::new(Fsrs::default());
    let created = datetime!(2026-01-05 09:00 UTC);
    let mut card = Card::default();
    let create = CardCommand::Create {
        card_id: uuid::Uuid::from_u128(1),
        owner: crate::OwnerId::new("alice").unwrap(),
        content: CardContent {
            deck: "d".into(),
            front: "f".into(),
            back: "b".into(),
            source: None,
        },
        at: created,
    };
    let history = [
        (created, Rating::Again),
        (created + time::Duration::minutes(1), Rating::Good),
    ];
    let mut recorded = vec![];
    for e in card.decide(create, fsrs.as_ref()).unwrap() {
        card.apply(e);
    }
    for (i, &(at, rating)) in history.iter().enumerate() {
        let review = CardCommand::Review {
            review_id: uuid::Uuid::from_u128(10 + i as u128),
            rating: rating.number(),
            at,
        };
        for e in card.decide(review, fsrs.as_ref()).unwrap() {
            if let CardEvent::CardReviewed { schedule, .. } = &e {
                recorded.push(schedule.clone());
            }
            card.apply(e);
        }
    }
    let replayed: Vec<_> = fsrs
        .replay(created, history)
        .unwrap()
        .into_iter()
        .map(|r| r.schedule)
        .collect();
    assert_eq!(recorded, replayed);
    assert_eq!(
        card.schedule.as_ref().map(|s| s.state),
        Some(CardState::Learning)
    );
}

#[test]
fn a_due_past_the_year_9999_is_refused_by_next_and_capped_by_review() {
    let fsrs = Fsrs::default();
    let at = datetime!(9990-01-01 00:00 UTC);
    let s = fsrs.review(&Schedule::new_card(at), Rating::Easy, at);
    let s = fsrs.review(&s, Rating::Easy, s.due);
    let years_later = s.due + time::Duration::days(3000);
    assert_eq!(
        fsrs.next(&s, Rating::Easy, years_later).unwrap_err(),
        DueOutOfRange { at: years_later }
    );
    assert_eq!(fsrs.review(&s, Rating::Easy, years_later).due.year(), 9999);
}
