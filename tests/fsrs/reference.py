#!/usr/bin/env python3
"""py-fsrs 6.3.2 as the reference for mnemo's FSRS-6 scheduler.

Generates seeded random review histories (the input `mnemo fsrs simulate`
reads) and runs py-fsrs on them, fuzz off, printing one JSON document:

    {"generator": {...},
     "groups": [{"name", "config": {py-fsrs Scheduler.to_dict()},
                 "sequences": [{"id", "created", "reviews": [{"ts", "rating"}]}],
                 "expected": [[{"retrievability", "elapsed_days", "stability",
                                "difficulty", "state", "step", "due"}, ...], ...]}]}

`expected[i][j]` is the card after review j of sequence i; `retrievability`
is `scheduler.get_card_retrievability(card, review_datetime)` for the card as
it was *before* that review, and `elapsed_days` is py-fsrs's
`(review_datetime - card.last_review).days` (None on the first review).

Timestamps are written in every form the simulator accepts, and each review
is computed at the instant that form denotes in Python:
  - ISO-8601 strings: `Z` or an offset (converted to UTC), no offset = UTC,
    a date alone = midnight UTC, fractions beyond microseconds truncated
    (as `datetime.fromisoformat` does);
  - numbers: epoch seconds, `datetime.fromtimestamp(x, timezone.utc)`
    (a float is rounded half-to-even to the microsecond).

Histories mix every rating, reviews at the due, same-day repeats (seconds
to hours apart, and the same instant), reviews one microsecond either side
of a whole-day boundary, gaps of days, months and years, the occasional
review earlier than the previous one, and long histories (up to 400
reviews). Besides the default configuration, groups vary the desired
retention, the 21 parameters, the (re)learning steps and the maximum
interval.

Usage:
    reference.py [--seed N] [--count N]   # N default-config histories (+ ~25% more in other groups)
    reference.py --fixture                # the small curated sample the domain's unit tests read
Needs py-fsrs: `pip install fsrs==6.3.2` (deploy/local/fsrs-reference.sh puts it in .mnemo/venv).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from datetime import datetime, timedelta, timezone
from importlib import metadata

PY_FSRS = "6.3.2"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
US = 1_000_000
DAY_US = 86_400 * US
START_US = int((datetime(2000, 1, 1, tzinfo=timezone.utc) - EPOCH).total_seconds()) * US
END_US = int((datetime(2035, 1, 1, tzinfo=timezone.utc) - EPOCH).total_seconds()) * US
# Past this, histories only take short gaps: datetime stops at 9999 and a
# due can be 100 years out.
LATE_US = int((datetime(2600, 1, 1, tzinfo=timezone.utc) - EPOCH).total_seconds()) * US


def die(message: str, code: int = 3) -> None:
    print(f"reference.py: {message}", file=sys.stderr)
    sys.exit(code)


def load_fsrs():
    hint = (
        f"install it with `pip install fsrs=={PY_FSRS}` in this python's venv "
        "(deploy/local/fsrs-reference.sh does it for .mnemo/venv)"
    )
    try:
        version = metadata.version("fsrs")
    except metadata.PackageNotFoundError:
        die(f"py-fsrs is not installed for {sys.executable}: {hint}")
    if version != PY_FSRS:
        die(f"py-fsrs {version} is installed for {sys.executable}, the reference is {PY_FSRS}: {hint}")
    import fsrs

    return fsrs


def us_of(dt: datetime) -> int:
    delta = dt - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def at_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def frac(dt: datetime, rng: random.Random) -> str:
    """The fractional seconds as someone might write them."""
    if dt.microsecond == 0:
        return "" if rng.random() < 0.9 else ".000"
    if dt.microsecond % 1000 == 0 and rng.random() < 0.5:
        return f".{dt.microsecond // 1000:03d}"
    return f".{dt.microsecond:06d}"


ZONES = [timezone(timedelta(hours=h, minutes=m)) for h, m in [(5, 30), (-8, 0), (1, 0), (-3, -30), (14, 0), (-12, 0)]]


def emit(rng: random.Random, us: int, rfc3339_only: bool = False):
    """A timestamp for the instant `us` (µs since the epoch) in a random
    form, and the instant that form denotes (a whole-second epoch integer
    drops the microseconds; an epoch float rounds to the nearest one)."""
    dt = at_us(us)
    k = rng.random()
    if rfc3339_only:
        k *= 0.6
    if k < 0.3:
        return dt.strftime("%Y-%m-%dT%H:%M:%S") + frac(dt, rng) + "Z", dt
    if k < 0.45:
        return dt.isoformat(), dt
    if k < 0.6:
        return dt.astimezone(rng.choice(ZONES)).isoformat(), dt
    if k < 0.65:
        return dt.replace(tzinfo=None).isoformat(), dt
    if k < 0.7:
        return dt.strftime("%Y-%m-%d %H:%M:%S") + frac(dt, rng) + "Z", dt
    if k < 0.75:
        # Nanoseconds: Python (and mnemo) keep the first six digits.
        extra = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 3)))
        return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{dt.microsecond:06d}{extra}Z", dt
    if k < 0.87:
        seconds = us // US
        return seconds, datetime.fromtimestamp(seconds, timezone.utc)
    value = us / US
    return value, datetime.fromtimestamp(value, timezone.utc)


RATING_NAMES = {1: "again", 2: "hard", 3: "good", 4: "easy"}
PROFILES = {
    "uniform": [1, 1, 1, 1],
    "good": [1, 1, 6, 2],
    "struggle": [4, 3, 2, 1],
    "easy": [1, 1, 3, 5],
}


def pick_length(rng: random.Random) -> int:
    k = rng.random()
    if k < 0.6:
        return rng.randint(1, 12)
    if k < 0.85:
        return rng.randint(13, 50)
    if k < 0.97:
        return rng.randint(51, 150)
    return rng.randint(151, 400)


def pick_gap(rng: random.Random, card, now_us: int) -> int:
    """Microseconds from the previous review (or the creation) to the next."""
    if now_us > LATE_US:
        return rng.randint(0, 30 * DAY_US)
    kinds = ["due", "seconds", "minutes", "boundary", "days", "months", "years", "back"]
    weights = [34, 14, 10, 8, 18, 10, 4, 2]
    kind = rng.choices(kinds, weights)[0]
    if kind == "due":
        until_due = us_of(card.due) - now_us
        return max(0, int(until_due * rng.uniform(0.7, 1.6))) + rng.randint(-60, 3600) * US
    if kind == "seconds":
        return 0 if rng.random() < 0.1 else rng.randint(1, 300 * US)
    if kind == "minutes":
        return rng.randint(300 * US, DAY_US - US)
    if kind == "boundary":
        return rng.randint(1, 3) * DAY_US + rng.choice([-US, -1, 0, 1, US])
    if kind == "days":
        return rng.randint(DAY_US, 90 * DAY_US)
    if kind == "months":
        return rng.randint(90 * DAY_US, 730 * DAY_US)
    if kind == "years":
        return rng.randint(730 * DAY_US, 8 * 365 * DAY_US)
    return -rng.randint(US, 3 * DAY_US)


def review(fsrs, scheduler, card, at: datetime, rating: int):
    """py-fsrs reviews `card`: the card after, and the expected row."""
    r = scheduler.get_card_retrievability(card, at)
    elapsed = (at - card.last_review).days if card.last_review else None
    card, _ = scheduler.review_card(card, fsrs.Rating(rating), at)
    row = {
        "retrievability": float(r),
        "elapsed_days": elapsed,
        "stability": card.stability,
        "difficulty": card.difficulty,
        "state": int(card.state),
        "step": card.step,
        "due": card.due.isoformat(),
    }
    return card, row


def run_card(fsrs, scheduler, created: datetime, reviews):
    """py-fsrs on one history: the expected rows."""
    card, rows = fsrs.Card(card_id=1, due=created), []
    for at, rating in reviews:
        card, row = review(fsrs, scheduler, card, at, rating)
        rows.append(row)
    return rows


def random_sequence(fsrs, scheduler, rng: random.Random, sid, rfc3339_only=False):
    created_us = rng.randrange(START_US, END_US) // US * US
    if rng.random() < 0.3:
        created_us += rng.randrange(US)
    if rng.random() < 0.05 and not rfc3339_only:
        created_us -= created_us % DAY_US
        created_value, created = at_us(created_us).date().isoformat(), at_us(created_us)
    else:
        created_value, created = emit(rng, created_us, rfc3339_only)
    profile = rng.choice(list(PROFILES))
    constant = rng.randint(1, 4) if rng.random() < 0.05 else None
    # Card(card_id=…): without an id py-fsrs sleeps a millisecond per card.
    card = fsrs.Card(card_id=1, due=created)
    now = created
    inputs, rows = [], []
    for _ in range(pick_length(rng)):
        gap = rng.randint(0, 30 * DAY_US) if not rows else pick_gap(rng, card, us_of(now))
        value, now = emit(rng, us_of(now) + gap, rfc3339_only)
        rating = constant or rng.choices([1, 2, 3, 4], PROFILES[profile])[0]
        shown = rating if rfc3339_only or rng.random() < 0.95 else RATING_NAMES[rating]
        card, row = review(fsrs, scheduler, card, now, rating)
        inputs.append({"ts": value, "rating": shown})
        rows.append(row)
    return {"id": sid, "created": created_value, "reviews": inputs}, rows


def random_parameters(fsrs, rng: random.Random):
    from fsrs.scheduler import LOWER_BOUNDS_PARAMETERS, UPPER_BOUNDS_PARAMETERS

    out = []
    for w, lo, hi in zip(fsrs.scheduler.DEFAULT_PARAMETERS, LOWER_BOUNDS_PARAMETERS, UPPER_BOUNDS_PARAMETERS):
        w = w * math.exp(rng.gauss(0, 0.4)) if w > 0 else rng.uniform(lo, hi) * 0.1
        out.append(min(max(w, lo), hi))
    return out


def make_scheduler(fsrs, **options):
    return fsrs.Scheduler(enable_fuzzing=False, **options)


def group(fsrs, name, scheduler, sequences_and_rows):
    sequences, expected = zip(*sequences_and_rows) if sequences_and_rows else ((), ())
    return {
        "name": name,
        "config": scheduler.to_dict(),
        "sequences": list(sequences),
        "expected": list(expected),
    }


def generate(fsrs, seed: int, count: int):
    rng = random.Random(seed)
    groups = []
    default = make_scheduler(fsrs)
    groups.append(group(fsrs, "default", default, [random_sequence(fsrs, default, rng, f"d{i}") for i in range(count)]))
    for k in range(10):
        scheduler = make_scheduler(fsrs, desired_retention=round(rng.uniform(0.7, 0.97), 4))
        seqs = [random_sequence(fsrs, scheduler, rng, i) for i in range(max(1, count // 100))]
        groups.append(group(fsrs, f"retention-{k}", scheduler, seqs))
    for k in range(10):
        scheduler = make_scheduler(fsrs, parameters=random_parameters(fsrs, rng))
        seqs = [random_sequence(fsrs, scheduler, rng, f"p{k}-{i}") for i in range(max(1, count // 100))]
        groups.append(group(fsrs, f"parameters-{k}", scheduler, seqs))
    step_sets = [[], [60], [60, 600, 3600], [30, 120], [600], [86_400, 3 * 86_400]]
    for k in range(10):
        scheduler = make_scheduler(
            fsrs,
            learning_steps=[timedelta(seconds=s) for s in rng.choice(step_sets)],
            relearning_steps=[timedelta(seconds=s) for s in rng.choice(step_sets)],
            maximum_interval=rng.choice([36_500, 3650, 365, 30, 7, 1]),
        )
        seqs = [random_sequence(fsrs, scheduler, rng, f"s{k}-{i}") for i in range(max(1, count // 200))]
        groups.append(group(fsrs, f"steps-{k}", scheduler, seqs))
    return groups


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def curated(fsrs, scheduler):
    """Hand-made histories for the edge cases, then a few random ones."""
    d = timedelta(days=1)
    t0 = utc(2026, 1, 5, 9, 0)

    def on_time(ratings, start=t0):
        """Each review exactly at the due the previous one gave."""
        card, at, out = fsrs.Card(card_id=1, due=start), start, []
        for rating in ratings:
            out.append((at, rating))
            card, _ = scheduler.review_card(card, fsrs.Rating(rating), at)
            at = card.due
        return out

    def after(start, gaps_and_ratings):
        at, out = start, []
        for gap, rating in gaps_and_ratings:
            at = at + gap
            out.append((at, rating))
        return out

    easy_to_cap, card, at = [], fsrs.Card(card_id=1, due=utc(2001, 1, 1)), utc(2001, 1, 1)
    while not easy_to_cap or (card.due - at).days < 36_500:
        at = card.due if easy_to_cap else at
        card, _ = scheduler.review_card(card, fsrs.Rating.Easy, at)
        easy_to_cap.append((at, 4))
    histories = {
        "good-on-time": (t0, on_time([3] * 8)),
        "learning-steps": (t0, on_time([1, 1, 2, 3, 2, 3, 3, 3])),
        "easy-then-lapse": (t0, on_time([4, 3, 3, 1, 2, 3, 3, 1, 1, 3])),
        "hard-at-each-step": (t0, on_time([2, 2, 3, 2, 3, 2, 2])),
        "same-day-repeats": (
            t0,
            after(t0, [(timedelta(0), 3), (timedelta(0), 3), (timedelta(seconds=30), 1),
                       (timedelta(minutes=5), 2), (timedelta(hours=3), 4),
                       (d - timedelta(microseconds=1), 3), (timedelta(microseconds=1), 3)]),
        ),
        "day-boundary": (
            t0,
            after(t0, [(timedelta(0), 4), (d - timedelta(microseconds=1), 3), (d, 3),
                       (d + timedelta(microseconds=1), 3), (2 * d, 1), (2 * d - timedelta(seconds=1), 3)]),
        ),
        "years-apart": (t0, after(t0, [(timedelta(0), 3), (2 * 365 * d, 3), (5 * 365 * d, 1), (10 * 365 * d, 3)])),
        "early-reviews": (t0, after(t0, [(timedelta(0), 3), (timedelta(minutes=10), 3), (d, 3), (d, 3), (2 * d, 3), (d, 4)])),
        "earlier-than-previous": (t0, after(t0, [(timedelta(0), 3), (3 * d, 3), (-d, 3), (-timedelta(hours=30), 1), (5 * d, 3)])),
        "again-after-a-long-gap": (t0, after(t0, [(timedelta(0), 4), (30 * d, 4), (400 * d, 1), (timedelta(minutes=10), 3), (700 * d, 1)])),
        "easy-to-the-maximum-interval": (utc(2001, 1, 1), easy_to_cap),
        "all-again": (t0, after(t0, [(timedelta(minutes=m), 1) for m in [0, 1, 1, 10, 60, 600, 1440, 2880]])),
    }
    rows = []
    for name, (created, reviews) in histories.items():
        sequence = {
            "id": name,
            "created": created.isoformat(),
            "reviews": [{"ts": at.isoformat(), "rating": rating} for at, rating in reviews],
        }
        rows.append((sequence, run_card(fsrs, scheduler, created, reviews)))
    rng = random.Random(5)
    while len(rows) < 20:
        seq, expected = random_sequence(fsrs, scheduler, rng, f"random-{len(rows)}", rfc3339_only=True)
        if len(seq["reviews"]) <= 40:
            rows.append((seq, expected))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=20260105)
    parser.add_argument("--count", type=int, default=6000, help="histories with the default configuration")
    parser.add_argument("--fixture", action="store_true", help="the curated sample (default configuration only)")
    args = parser.parse_args()
    fsrs = load_fsrs()
    if args.fixture:
        scheduler = make_scheduler(fsrs)
        groups = [group(fsrs, "default", scheduler, curated(fsrs, scheduler))]
        generator = {"fixture": True}
    else:
        groups = generate(fsrs, args.seed, args.count)
        generator = {"seed": args.seed, "count": args.count}
    generator.update({"py_fsrs": PY_FSRS, "python": sys.version.split()[0]})
    # dumps, not dump: one C-encoded string instead of a million small writes.
    sys.stdout.write(json.dumps({"generator": generator, "groups": groups}, indent=1 if args.fixture else None))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
