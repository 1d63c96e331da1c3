//! The shared consumer loop: retries, bounded attempts, dead letters, stop.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use mnemo_bus::consumer::{self, dlq_headers};
use mnemo_bus::{ConsumerSpec, Delivery, Handler, Outcome};
use mnemo_tests::{eventually, EnvOptions, TestEnv};
use tokio::sync::{mpsc, oneshot, Mutex};

/// Acts on the payload: `ok`, `flaky` (fails twice), `poison` (always
/// fails), `bad` (rejected), `slow` (waits for the test to release it),
/// `outage` (a dependency is unavailable for [`OUTAGE`] tries).
struct Scripted {
    seen: mpsc::UnboundedSender<(String, i64, &'static str)>,
    release: Mutex<Option<oneshot::Receiver<()>>>,
    outage_tries: std::sync::atomic::AtomicU32,
}

/// Tries an `outage` message sees its dependency down: twice the attempts
/// the spec allows for bad input.
const OUTAGE: u32 = 6;

fn scripted(
    seen: mpsc::UnboundedSender<(String, i64, &'static str)>,
    release: Option<oneshot::Receiver<()>>,
) -> Arc<Scripted> {
    Arc::new(Scripted {
        seen,
        release: Mutex::new(release),
        outage_tries: Default::default(),
    })
}

impl Handler for Scripted {
    async fn handle(&self, d: &Delivery) -> Outcome {
        let kind = String::from_utf8_lossy(d.payload()).into_owned();
        let _ = self.seen.send((kind.clone(), d.delivered, "handled"));
        match kind.as_str() {
            "ok" => Outcome::Done,
            "flaky" if d.delivered < 3 => Outcome::Retry {
                reason: "not yet".into(),
            },
            "flaky" => Outcome::Done,
            "bad" => Outcome::Reject {
                reason: "bad input".into(),
            },
            "outage" => {
                let tries = self
                    .outage_tries
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if tries < OUTAGE {
                    Outcome::Unavailable {
                        reason: "the broker is electing a leader".into(),
                    }
                } else {
                    Outcome::Done
                }
            }
            // Never finishes: like a worker that hangs or dies mid-message.
            "stall" => std::future::pending().await,
            "slow" => {
                if let Some(rx) = self.release.lock().await.take() {
                    let _ = rx.await;
                }
                Outcome::Done
            }
            _ => Outcome::Retry {
                reason: "still broken".into(),
            },
        }
    }

    async fn give_up(&self, d: &Delivery, _reason: &str) {
        let kind = String::from_utf8_lossy(d.payload()).into_owned();
        let _ = self.seen.send((kind, d.delivered, "gave_up"));
    }
}

/// A bus-only world: no API, no projector.
async fn bus_only() -> TestEnv {
    TestEnv::start_with(EnvOptions {
        run_api: false,
        run_projector: false,
        ..Default::default()
    })
    .await
}

/// Runs `handler` on `spec`'s consumer until the returned sender fires.
fn start<H: Handler>(
    env: &TestEnv,
    spec: ConsumerSpec,
    handler: Arc<H>,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), mnemo_bus::BusError>>,
) {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let bus = env.bus.clone();
    let runner = tokio::spawn(async move {
        consumer::run(&bus, spec, handler, async {
            let _ = stop_rx.await;
        })
        .await
    });
    (stop_tx, runner)
}

fn spec(env: &TestEnv) -> ConsumerSpec {
    let mut spec = ConsumerSpec::new("test", format!("{}.>", env.ns.events_of("test")));
    spec.max_deliver = 3;
    spec.backoff = vec![Duration::from_millis(10)];
    spec.ack_wait = Duration::from_secs(10);
    spec.concurrency = 2;
    spec
}

/// Publishes one message per kind, each on a subject of its own with the
/// publish expectation the event store appends with (a dead letter must
/// not carry it over: every letter but the first would be refused).
async fn publish(env: &TestEnv, kinds: &[&str]) {
    for (i, k) in kinds.iter().enumerate() {
        let subject = env.ns.aggregate_subject("test", &format!("x.{i}"));
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
        env.bus
            .jetstream
            .publish_with_headers(subject, headers, k.as_bytes().to_vec().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

async fn settled(env: &TestEnv) -> bool {
    eventually(Duration::from_secs(20), || async {
        let name = env.ns.consumer("test");
        let Ok(mut c) = env.bus.events.get_consumer::<pull::Config>(&name).await else {
            return false;
        };
        c.info()
            .await
            .is_ok_and(|i| i.num_pending == 0 && i.num_ack_pending == 0)
    })
    .await
}

#[tokio::test]
async fn retries_then_gives_up_and_dead_letters_with_the_reason() {
    let env = bus_only().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = scripted(tx, None);
    publish(&env, &["ok", "flaky", "poison", "bad"]).await;
    let (stop_tx, runner) = start(&env, spec(&env), handler);

    // ok ×1, flaky ×3, poison ×3 + give up, bad ×1 + give up.
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let item = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("deliveries keep coming")
            .unwrap();
        seen.push(item);
    }
    let count = |k: &str, what: &str| {
        seen.iter()
            .filter(|(kind, _, w)| kind == k && *w == what)
            .count()
    };
    assert_eq!(count("ok", "handled"), 1);
    assert_eq!(count("flaky", "handled"), 3);
    assert_eq!(count("flaky", "gave_up"), 0);
    assert_eq!(count("poison", "handled"), 3);
    assert_eq!(count("poison", "gave_up"), 1);
    assert_eq!(count("bad", "handled"), 1);
    assert_eq!(count("bad", "gave_up"), 1);
    assert!(
        settled(&env).await,
        "every message must end acked or terminated"
    );
    assert!(
        rx.try_recv().is_err(),
        "nothing is redelivered after giving up"
    );

    // Two dead letters, each saying why and where it came from.
    let dlq = env
        .bus
        .jetstream
        .get_stream(env.ns.dlq_stream())
        .await
        .unwrap();
    let mut reasons = Vec::new();
    for seq in 1..=2 {
        let m = dlq.get_raw_message(seq).await.unwrap();
        let h = |n: &str| {
            m.headers
                .get(n)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(h(dlq_headers::SERVICE), "test");
        assert!(h(dlq_headers::SUBJECT).starts_with(&env.ns.events_of("test")));
        reasons.push((
            String::from_utf8_lossy(&m.payload).into_owned(),
            h(dlq_headers::REASON),
        ));
    }
    reasons.sort();
    assert_eq!(reasons[0], ("bad".into(), "bad input".into()));
    assert_eq!(reasons[1].0, "poison");
    assert!(
        reasons[1].1.contains("gave up after 3 attempts"),
        "{}",
        reasons[1].1
    );

    // What `mnemo dlq list` shows, and clearing one (`mnemo dlq retry`).
    let letters = mnemo_bus::dlq::list(&env.bus).await.unwrap();
    assert_eq!(letters.len(), 2);
    assert!(letters
        .iter()
        .all(|l| l.service == "test" && l.deliveries >= 1));
    let poison = letters
        .iter()
        .find(|l| l.reason.contains("gave up after 3 attempts"))
        .expect("the poison message's dead letter");
    assert_eq!(poison.deliveries, 3);
    assert!(poison.event_sequence >= 1);
    mnemo_bus::dlq::remove(&env.bus, poison.sequence)
        .await
        .unwrap();
    let left = mnemo_bus::dlq::list(&env.bus).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].reason, "bad input");
    assert!(mnemo_bus::dlq::remove(&env.bus, poison.sequence)
        .await
        .is_err());

    let _ = stop_tx.send(());
    runner.await.unwrap().unwrap();
}

#[tokio::test]
async fn stopping_finishes_the_message_in_hand() {
    let env = bus_only().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (release_tx, release_rx) = oneshot::channel();
    let handler = scripted(tx, Some(release_rx));
    publish(&env, &["slow"]).await;
    let (stop_tx, runner) = start(&env, spec(&env), handler);
    let started = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.0, "slow");
    // Ask to stop while the message is in hand, then let it finish.
    stop_tx.send(()).unwrap();
    release_tx.send(()).unwrap();
    runner.await.unwrap().unwrap();
    // run() returned only after the confirmed ack: nothing left to redeliver.
    let mut c = env
        .bus
        .events
        .get_consumer::<pull::Config>(&env.ns.consumer("test"))
        .await
        .unwrap();
    let info = c.info().await.unwrap();
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0));
    assert_eq!(info.ack_floor.stream_sequence, 1);
}

#[tokio::test]
async fn work_that_never_finishes_is_redelivered_then_given_up_and_dead_lettered() {
    let env = bus_only().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = scripted(tx, None);
    publish(&env, &["stall"]).await;
    let mut s = spec(&env);
    s.ack_wait = Duration::from_secs(1);
    s.max_deliver = 2;
    s.concurrency = 4; // each stalled attempt keeps its slot
    let (stop_tx, runner) = start(&env, s, handler);
    // Two attempts that hang, then the third delivery is given up on
    // without running the handler again.
    let mut seen = Vec::new();
    while !seen.iter().any(|(_, _, w)| *w == "gave_up") {
        let item = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("the stalled message comes back")
            .unwrap();
        seen.push(item);
    }
    let handled: Vec<i64> = seen
        .iter()
        .filter(|(_, _, w)| *w == "handled")
        .map(|(_, d, _)| *d)
        .collect();
    assert_eq!(handled, vec![1, 2], "{seen:?}");
    assert_eq!(seen.last().map(|(_, d, _)| *d), Some(3));
    let letters = mnemo_bus::dlq::list(&env.bus).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0].reason.contains("never finished"),
        "{}",
        letters[0].reason
    );
    // Stopping does not wait for the hung attempts beyond one ack wait.
    let _ = stop_tx.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(10), runner).await;
    assert!(
        stopped.is_ok_and(|r| r.is_ok_and(|r| r.is_ok())),
        "the loop stops despite hung work"
    );
}

/// An outage (NATS electing, PostgreSQL restarting) is not the input's
/// fault: the message is tried again in the same delivery, for as long as
/// it takes, and never spends the attempts meant for bad input
/// (`max_deliver` 3 here; the outage lasts 6 tries).
#[tokio::test]
async fn an_outage_is_waited_out_without_spending_the_attempts() {
    let env = bus_only().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = scripted(tx, None);
    publish(&env, &["outage"]).await;
    let (stop_tx, runner) = start(&env, spec(&env), handler);
    let mut seen = Vec::new();
    while seen.len() < OUTAGE as usize + 1 {
        let item = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("the message is tried again")
            .unwrap();
        seen.push(item);
    }
    assert!(
        seen.iter()
            .all(|(_, delivered, what)| *delivered == 1 && *what == "handled"),
        "one delivery, never given up on: {seen:?}"
    );
    assert!(settled(&env).await, "acknowledged once the outage passed");
    assert!(mnemo_bus::dlq::list(&env.bus).await.unwrap().is_empty());
    let _ = stop_tx.send(());
    runner.await.unwrap().unwrap();
}

/// A durable consumer outlives the process that made it: a service
/// restarted with other settings (a shorter ack wait, more attempts) gets
/// them on its consumer, which keeps its position.
#[tokio::test]
async fn a_restarted_service_brings_its_consumer_settings_up_to_date() {
    let env = bus_only().await;
    publish(&env, &["ok", "ok"]).await;
    let mut old = spec(&env);
    old.ack_wait = Duration::from_secs(120);
    let c = consumer::durable_consumer(&env.bus, &old).await.unwrap();
    let mut batch = c.fetch().max_messages(1).messages().await.unwrap();
    let first = futures::StreamExt::next(&mut batch).await.unwrap().unwrap();
    first.double_ack().await.unwrap();

    let mut new = spec(&env);
    new.ack_wait = Duration::from_secs(7);
    new.max_deliver = 9;
    let mut c = consumer::durable_consumer(&env.bus, &new).await.unwrap();
    let info = c.info().await.unwrap();
    assert_eq!(info.config.ack_wait, Duration::from_secs(7));
    assert_eq!(info.config.max_deliver, 10);
    assert_eq!(info.ack_floor.stream_sequence, 1, "the position is kept");
    assert_eq!(info.num_pending, 1);
}

/// Records the subject of every message it handles, in order; the first
/// waits for the gate (so that the test can let the window fill first).
struct Recorder {
    seen: mpsc::UnboundedSender<String>,
    gate: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Handler for Recorder {
    async fn handle(&self, d: &Delivery) -> Outcome {
        if let Some(gate) = self.gate.lock().await.take() {
            let _ = gate.await;
        }
        let _ = self.seen.send(d.subject.clone());
        Outcome::Done
    }

    async fn give_up(&self, _: &Delivery, _: &str) {}
}

/// Fair sharing (issue 18): with a read-ahead window, a service serves the
/// lanes (owners) of what it read in turn (and an owner with nothing in
/// hand gets a guest place), so another owner's messages behind a
/// 60-message batch are handled among the first few, and each owner's
/// messages still in stream order. Without it, in stream order.
#[tokio::test]
async fn owners_are_served_in_turn_when_reading_ahead() {
    for fair in [
        mnemo_bus::fair::FairShare::default(),
        mnemo_bus::fair::FairShare::OFF,
    ] {
        let env = bus_only().await;
        let subject =
            |lane: &str, i: usize| env.ns.aggregate_subject("test", &format!("{lane}.{i}"));
        let published: Vec<String> = (0..60)
            .map(|i| subject("bulk", i))
            .chain((0..2).map(|i| subject("other", i)))
            .collect();
        for s in &published {
            env.bus
                .jetstream
                .publish(s.clone(), "ok".into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (open, gate) = oneshot::channel();
        let recorder = Arc::new(Recorder {
            seen: tx,
            gate: Mutex::new(Some(gate)),
        });
        let mut spec = spec(&env).with_fair_share(fair.clone());
        spec.concurrency = 1;
        let (stop_tx, runner) = start(&env, spec, recorder);
        // With read-ahead, the first message waits until every message has
        // been delivered into the window (JetStream counts them pending).
        let window_full = fair.window == 0
            || eventually(Duration::from_secs(20), || async {
                let name = env.ns.consumer("test");
                let Ok(mut c) = env.bus.events.get_consumer::<pull::Config>(&name).await else {
                    return false;
                };
                c.info().await.is_ok_and(|i| i.num_ack_pending == 62)
            })
            .await;
        assert!(window_full, "the window takes in all 62 messages");
        let _ = open.send(());
        let mut order = Vec::new();
        while order.len() < 62 {
            let subject = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("messages keep coming")
                .unwrap();
            order.push(subject);
        }
        let others: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|(_, s)| s.contains(".other."))
            .map(|(i, _)| i)
            .collect();
        if fair.window > 0 {
            // bulk.0 was in hand before the rest arrived; the other owner,
            // with nothing in hand, starts on a guest place beside it, and
            // its second message in its next turn: both among the first 4,
            // not behind the 60.
            assert!(others[1] < 4, "in turn: {order:?}");
        } else {
            assert_eq!(others, vec![60, 61], "stream order");
        }
        let bulk: Vec<&String> = order.iter().filter(|s| s.contains(".bulk.")).collect();
        assert_eq!(
            bulk,
            published[..60].iter().collect::<Vec<_>>(),
            "one owner's messages keep their order"
        );
        assert!(settled(&env).await, "every message acked");
        let _ = stop_tx.send(());
        runner.await.unwrap().unwrap();
    }
}

/// Records the thread each message was handled on; `bulk.0` waits for
/// the gate.
struct WhereRun {
    seen: mpsc::UnboundedSender<(String, String)>,
    gate: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Handler for WhereRun {
    async fn handle(&self, d: &Delivery) -> Outcome {
        if d.subject.ends_with(".bulk.0") {
            // Taken out first: the lock is not held while the gate is shut.
            let gate = self.gate.lock().await.take();
            if let Some(gate) = gate {
                let _ = gate.await;
            }
        }
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        let _ = self.seen.send((d.subject.clone(), thread));
        Outcome::Done
    }

    async fn give_up(&self, _: &Delivery, _: &str) {}
}

/// The next message handled, with the thread it ran on.
async fn next_handled(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("messages keep coming")
        .unwrap()
}

/// Fair sharing's express (issue 18): an owner's message started while
/// another owner's batch is in hand runs on the express runtime (in
/// `mnemo serve`, the process's priority instead of the pipeline's nice);
/// the batch's own messages never do while it has more than
/// `EXPRESS_BACKLOG` waiting, even when it momentarily has nothing in hand.
#[tokio::test]
async fn an_owner_beside_anothers_batch_runs_on_the_express_runtime() {
    let env = bus_only().await;
    let express = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("mnemo-express-test")
        .enable_all()
        .build()
        .unwrap();
    let subject = |lane: &str, i: usize| env.ns.aggregate_subject("test", &format!("{lane}.{i}"));
    let bulk = mnemo_bus::fair::EXPRESS_BACKLOG + 6;
    for s in (0..bulk)
        .map(|i| subject("bulk", i))
        .chain([subject("other", 0)])
    {
        let ack = env.bus.jetstream.publish(s, "ok".into()).await.unwrap();
        ack.await.unwrap();
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (open, gate) = oneshot::channel();
    let handler = Arc::new(WhereRun {
        seen: tx,
        gate: Mutex::new(Some(gate)),
    });
    let mut spec = spec(&env).with_fair_share(
        mnemo_bus::fair::FairShare::default().with_express(express.handle().clone()),
    );
    spec.concurrency = 1;
    let (stop_tx, runner) = start(&env, spec, handler);
    // bulk.0 is in hand (at the gate) when the other owner's message
    // arrives: it is handled at once, express.
    let (first, thread) = next_handled(&mut rx).await;
    assert!(first.ends_with(".other.0"), "handled first: {first}");
    assert_eq!(thread, "mnemo-express-test", "beside the batch: express");
    let only_bulk_left = eventually(Duration::from_secs(20), || async {
        let name = env.ns.consumer("test");
        let Ok(mut c) = env.bus.events.get_consumer::<pull::Config>(&name).await else {
            return false;
        };
        c.info()
            .await
            .is_ok_and(|i| i.num_pending == 0 && i.num_ack_pending == bulk)
    })
    .await;
    assert!(only_bulk_left, "the other owner's message is acknowledged");
    let _ = open.send(());
    for i in 0..bulk {
        let (subject, thread) = next_handled(&mut rx).await;
        assert!(
            subject.ends_with(&format!(".bulk.{i}")),
            "in order: {subject}"
        );
        // While more than EXPRESS_BACKLOG of its messages wait, a batch is
        // never express. (Its last few may be, if another owner's work
        // is in hand then: that depends on timing, not asserted.)
        let waiting = bulk - 1 - i;
        if waiting > mnemo_bus::fair::EXPRESS_BACKLOG {
            assert_ne!(thread, "mnemo-express-test", "{subject} is the batch's");
        }
    }
    assert!(settled(&env).await, "every message acked");
    let _ = stop_tx.send(());
    runner.await.unwrap().unwrap();
    express.shutdown_background();
}
