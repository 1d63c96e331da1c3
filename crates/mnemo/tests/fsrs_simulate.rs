//! `mnemo fsrs simulate` against py-fsrs 6.3.2, the reference FSRS-6.
//!
//! `tests/fsrs/reference.py` generates seeded review histories and runs
//! py-fsrs (fuzz off) on them; this test feeds the same histories to the
//! `mnemo` binary and requires, for every review: stability, difficulty and
//! retrievability within 1e-6 relative, and identical state, step and due.
//!
//! Python: `MNEMO_PYTHON`, else `<repo>/.mnemo/venv/bin/python` (with
//! fsrs==6.3.2; `deploy/local/fsrs-reference.sh` installs it, and
//! `deploy/local/test.sh` runs that). Without it the test fails and says so.
//! `MNEMO_FSRS_REFERENCE_SEED` / `MNEMO_FSRS_REFERENCE_COUNT` pick other
//! histories (defaults: a fixed seed, 6000 default-configuration histories
//! plus ~1,500 with other configurations).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const REL: f64 = 1e-6;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    std::env::var_os("MNEMO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".mnemo/venv/bin/python"))
}

const INSTALL_HINT: &str = "py-fsrs 6.3.2 is the reference: run deploy/local/fsrs-reference.sh \
    (installs fsrs==6.3.2 into .mnemo/venv), or point MNEMO_PYTHON at a python that has it \
    (python3 -m venv /tmp/fsrs-venv && /tmp/fsrs-venv/bin/pip install fsrs==6.3.2)";

/// Runs `mnemo fsrs simulate ARGS` with `stdin`.
fn simulate(args: &[String], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mnemo"))
        .args(["fsrs", "simulate"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mnemo binary runs");
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_vec();
    // Written from a thread: the child's stdout fills while we write.
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let out = child
        .wait_with_output()
        .expect("mnemo fsrs simulate finishes");
    writer
        .join()
        .expect("writer thread")
        .expect("stdin written");
    out
}

/// The flags that give py-fsrs's `Scheduler.to_dict()` configuration.
fn flags(config: &Value) -> Vec<String> {
    assert_eq!(
        config["enable_fuzzing"], false,
        "the reference runs without fuzz"
    );
    let list = |v: &Value, f: &dyn Fn(&Value) -> String| {
        let items: Vec<String> = v.as_array().unwrap().iter().map(f).collect();
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(",")
        }
    };
    let seconds = |s: &Value| format!("{}s", s.as_u64().unwrap());
    let float = |w: &Value| format!("{}", w.as_f64().unwrap());
    vec![
        "--json".to_owned(),
        format!(
            "--retention={}",
            config["desired_retention"].as_f64().unwrap()
        ),
        format!("--params={}", list(&config["parameters"], &float)),
        format!(
            "--learning-steps={}",
            list(&config["learning_steps"], &seconds)
        ),
        format!(
            "--relearning-steps={}",
            list(&config["relearning_steps"], &seconds)
        ),
        format!("--max-interval={}", config["maximum_interval"]),
    ]
}

#[derive(Default)]
struct Tally {
    reviews: usize,
    bit_exact: [usize; 3],
    worst: [f64; 3],
    states: [usize; 4],
    same_day: usize,
    whole_days: usize,
    earlier: usize,
    mismatches: Vec<String>,
}

impl Tally {
    fn close(&mut self, what: usize, ours: f64, theirs: f64) -> bool {
        if ours.to_bits() == theirs.to_bits() {
            self.bit_exact[what] += 1;
            return true;
        }
        let rel = (ours - theirs).abs() / ours.abs().max(theirs.abs());
        self.worst[what] = self.worst[what].max(rel);
        rel <= REL
    }

    fn check(&mut self, at: &str, ours: &Value, theirs: &Value) {
        self.reviews += 1;
        let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let mut wrong = vec![];
        for (i, key) in ["stability", "difficulty", "retrievability"]
            .into_iter()
            .enumerate()
        {
            if !self.close(i, f(ours, key), f(theirs, key)) {
                wrong.push(key);
            }
        }
        for (key, theirs_key) in [
            ("state_code", "state"),
            ("step", "step"),
            ("due", "due"),
            ("elapsed_days", "elapsed_days"),
        ] {
            if ours[key] != theirs[theirs_key] {
                wrong.push(key);
            }
        }
        if !wrong.is_empty() && self.mismatches.len() < 10 {
            self.mismatches.push(format!(
                "{at}: {wrong:?}\n  ours:    {ours}\n  py-fsrs: {theirs}"
            ));
        } else if !wrong.is_empty() {
            self.mismatches.push(String::new());
        }
        let state = theirs["state"].as_u64().unwrap_or(0) as usize;
        self.states[state.min(3)] += 1;
        match theirs["elapsed_days"].as_i64() {
            Some(d) if d < 0 => self.earlier += 1,
            Some(0) => self.same_day += 1,
            Some(_) => self.whole_days += 1,
            None => {}
        }
    }
}

#[test]
fn simulate_matches_py_fsrs_on_generated_histories() {
    let python = python();
    assert!(
        python.exists(),
        "no python at {} (set MNEMO_PYTHON). {INSTALL_HINT}",
        python.display()
    );
    let seed = std::env::var("MNEMO_FSRS_REFERENCE_SEED").unwrap_or_else(|_| "20260105".into());
    let count = std::env::var("MNEMO_FSRS_REFERENCE_COUNT").unwrap_or_else(|_| "6000".into());
    let generated = Command::new(&python)
        .arg(repo().join("tests/fsrs/reference.py"))
        .args(["--seed", &seed, "--count", &count])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}. {INSTALL_HINT}", python.display()));
    assert!(
        generated.status.success(),
        "tests/fsrs/reference.py failed:\n{}\n{INSTALL_HINT}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let doc: Value = serde_json::from_slice(&generated.stdout).expect("reference.py prints JSON");

    let mut tally = Tally::default();
    let mut default_sequences = 0;
    for group in doc["groups"].as_array().unwrap() {
        let name = group["name"].as_str().unwrap();
        let sequences = group["sequences"].as_array().unwrap();
        if name == "default" {
            default_sequences = sequences.len();
        }
        let out = simulate(
            &flags(&group["config"]),
            &serde_json::to_vec(sequences).unwrap(),
        );
        assert!(
            out.status.success(),
            "group {name}: mnemo fsrs simulate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut ours = std::str::from_utf8(&out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("--json prints JSON lines"));
        for (seq, expected) in sequences.iter().zip(group["expected"].as_array().unwrap()) {
            for (i, theirs) in expected.as_array().unwrap().iter().enumerate() {
                let at = format!("group {name}, sequence {}, reviews[{i}]", seq["id"]);
                let row = ours.next().unwrap_or_else(|| panic!("{at}: no output"));
                assert_eq!(
                    (&row["id"], row["review"].as_u64()),
                    (&seq["id"], Some(i as u64)),
                    "{at}"
                );
                tally.check(&at, &row, theirs);
            }
        }
        assert!(
            ours.next().is_none(),
            "group {name}: more output than reviews"
        );
    }

    eprintln!(
        "{} reviews ({default_sequences} default-configuration histories + {} other groups): \
         bit-identical stability {}, difficulty {}, R {}; worst relative difference {:.1e} / {:.1e} / {:.1e}; \
         states learning/review/relearning {:?}; same-day {}, ≥1 day {}, earlier than the previous {}",
        tally.reviews,
        doc["groups"].as_array().unwrap().len() - 1,
        tally.bit_exact[0],
        tally.bit_exact[1],
        tally.bit_exact[2],
        tally.worst[0],
        tally.worst[1],
        tally.worst[2],
        &tally.states[1..],
        tally.same_day,
        tally.whole_days,
        tally.earlier,
    );
    assert!(
        tally.mismatches.is_empty(),
        "{} of {} reviews differ from py-fsrs; the first:\n{}",
        tally.mismatches.len(),
        tally.reviews,
        tally
            .mismatches
            .iter()
            .filter(|m| !m.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The histories must exercise what they claim to.
    let wanted: usize = count.parse().unwrap_or(6000);
    assert_eq!(default_sequences, wanted);
    if wanted >= 5000 {
        assert!(tally.reviews > 100_000, "{} reviews", tally.reviews);
        assert!(
            tally.states[1..].iter().all(|&n| n > 1000),
            "{:?}",
            tally.states
        );
        assert!(tally.same_day > 10_000 && tally.whole_days > 10_000 && tally.earlier > 100);
    }
}

#[test]
fn bad_input_names_the_sequence_and_review_and_exits_non_zero() {
    let input = br#"[{"id": "ok", "created": "2026-01-05T09:00:00Z", "reviews": [{"ts": 1767603600, "rating": 3}]},
                     {"id": "late", "created": "2026-01-05T09:00:00Z",
                      "reviews": [{"ts": "2026-01-05T09:00:00Z", "rating": 3}, {"ts": "2026-13-01T00:00:00Z", "rating": 3}]}]"#;
    let out = simulate(&[], input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(r#"sequence "late" (input[1]): reviews[1].ts: "2026-13-01T00:00:00Z" is not a valid ISO-8601 timestamp"#),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing is printed for bad input");

    let out = simulate(&["--params=1,2,3".into()], b"[]");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FSRS-6 takes 21 parameters, got 3"));
}

#[test]
fn the_table_and_the_fuzz_seed() {
    let reviews: Vec<Value> = (0..15)
        .map(|i| serde_json::json!({"ts": 1_767_603_600 + i * 30 * 86_400, "rating": 3}))
        .collect();
    let input = serde_json::to_vec(
        &serde_json::json!([{"id": "c1", "created": 1_767_603_600, "reviews": reviews}]),
    )
    .unwrap();
    let table = simulate(&[], &input);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success());
    assert_eq!(
        text.lines().count(),
        16,
        "a header and a row per review:\n{text}"
    );
    assert!(text.lines().nth(1).unwrap().contains("learning"), "{text}");

    let run = |extra: &[&str]| {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.push("--json".into());
        let out = simulate(&args, &input);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let plain = run(&[]);
    let seeded = run(&["--fuzz-seed=7"]);
    assert_eq!(
        seeded,
        run(&["--fuzz-seed=7"]),
        "the same seed gives the same dues"
    );
    assert_ne!(seeded, plain, "fuzz moves some dues");
    assert_ne!(seeded, run(&["--fuzz-seed=8"]));
}
