//! Cross-document batching: one queue in front of the model for every
//! document the service is working on.
//!
//! Why: a document's last chunks rarely fill a batch, and between two
//! deliveries (load the aggregate, append events) the model would sit idle.
//! With one queue, the model runs back to back as long as any document has
//! texts waiting, and short texts from different documents share batches.
//!
//! How it works:
//! - A handler [`Batcher::submit`]s its texts (with their token counts) and
//!   gets a stream of results, one per text, in the order they are computed.
//! - *Each text is embedded once.* Texts are keyed by (model id, SHA-256 of
//!   the text). A key already computed is answered from the cache; a key
//!   already queued or in the model gets the new submitter added to its
//!   waiters, so identical texts from concurrent deliveries share one
//!   computation. Nothing enters the cache before it is computed.
//! - One task drains the queue. It takes a *window* of texts, *lanes in
//!   turn* (a lane is whoever submitted them: the owner, for the service;
//!   first come, first served within a lane), so one owner's thousands of
//!   texts cannot starve another's few. It sorts the window by length and
//!   cuts it into batches of similar length that fit a budget of *padded*
//!   tokens (fastembed pads a batch to its longest text, so `texts ×
//!   longest ≤ budget` bounds both the wasted work and onnxruntime's
//!   memory). The other lanes' texts are batched apart from the largest
//!   lane's and run first, and a lane that arrives mid-window gets the
//!   next batch: the rest of the window goes back to the queue.
//! - *A failed batch is bisected*: its halves are embedded again, down to
//!   the single texts that fail, so one bad text fails only its own
//!   submitters and nothing of a failed text is ever returned as done.
//! - Texts whose every submitter stopped listening (its delivery failed or
//!   the service is stopping) are dropped instead of embedded for nobody.
//!
//! Vectors do not depend on the batch a text lands in (tested in
//! `tests/reference.rs`), so batching and sharing change only speed.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::{EmbedError, Embedder};

/// What the queue needs of a model (the real one is [`Embedder`]; tests
/// use fakes).
pub trait Model: Send + Sync + 'static {
    /// Identifies the model's vectors (keys the cache).
    fn model_id(&self) -> &str;
    /// Most texts per call.
    fn batch_size(&self) -> usize;
    /// One vector per text, in order.
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// The nice value the calling thread should run at (see
    /// [`crate::priority`]).
    fn nice(&self) -> i32 {
        0
    }
}

impl Model for Embedder {
    fn model_id(&self) -> &str {
        Embedder::model_id(self)
    }
    fn batch_size(&self) -> usize {
        Embedder::batch_size(self)
    }
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Embedder::embed(self, texts)
    }
    fn nice(&self) -> i32 {
        Embedder::nice(self)
    }
}

/// How batches are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPlan {
    /// Most padded tokens per batch (`texts × longest text`).
    pub token_budget: usize,
    /// Most texts per batch (the embedder's own `batch_size` caps it too).
    pub max_texts: usize,
    /// Texts sorted together before batching: bigger windows pad less,
    /// smaller ones answer the oldest submitters sooner.
    pub window: usize,
    /// Vectors kept for texts seen again (1.5 KB each); 0 turns the cache
    /// off (identical texts in flight are still computed once).
    pub cache_entries: usize,
}

impl Default for BatchPlan {
    fn default() -> Self {
        Self {
            // 16 texts of 256 tokens. Measured on the corpus (2 cores): the
            // same speed as 8,192, with the embedder's peak RSS 505 MB
            // instead of 887 MB (onnxruntime's arena keeps its peak).
            token_budget: 4_096,
            max_texts: 64,
            window: 256,
            cache_entries: 20_000,
        }
    }
}

/// One text to embed; `index` comes back with its vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextToEmbed {
    pub index: usize,
    pub text: String,
    /// Word pieces, special tokens included (the chunker's count).
    pub tokens: usize,
}

/// A computed vector for the text submitted with `index`.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    pub index: usize,
    pub vector: Vec<f32>,
}

/// What a submitter receives: vectors as their batches finish, or the error
/// of a text that could not be embedded.
pub type Results = mpsc::UnboundedReceiver<Result<Embedded, EmbedError>>;
type Sink = mpsc::UnboundedSender<Result<Embedded, EmbedError>>;

/// Counters of what the queue did, for logs and benchmarks.
#[derive(Debug, Default)]
pub struct BatcherStats {
    /// Texts answered from the cache.
    pub cache_hits: AtomicU64,
    /// Texts that joined an identical text already queued or computing.
    pub shared: AtomicU64,
    /// Texts the model computed.
    pub embedded: AtomicU64,
    /// Model calls (batches, bisected halves included).
    pub batches: AtomicU64,
    /// Texts that failed on their own (after bisection).
    pub failed: AtomicU64,
}

impl BatcherStats {
    /// A plain copy: (cache hits, shared, embedded, batches, failed).
    pub fn snapshot(&self) -> (u64, u64, u64, u64, u64) {
        (
            self.cache_hits.load(Ordering::Relaxed),
            self.shared.load(Ordering::Relaxed),
            self.embedded.load(Ordering::Relaxed),
            self.batches.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

type Key = [u8; 32];

struct Submitted {
    text: TextToEmbed,
    sink: Arc<Sink>,
    lane: Arc<str>,
}

/// A text waiting for the model, and everyone waiting for its vector.
struct Queued {
    key: Key,
    text: String,
    tokens: usize,
    /// Whose turn it is taken in (the owner, for the embedder service).
    lane: Arc<str>,
}

/// Queued texts, one FIFO per lane; windows take lanes in turn.
#[derive(Default)]
struct Lanes {
    queues: HashMap<Arc<str>, VecDeque<Queued>>,
    turn: VecDeque<Arc<str>>,
}

impl Lanes {
    fn is_empty(&self) -> bool {
        self.turn.is_empty()
    }

    fn push_back(&mut self, t: Queued) {
        let lane = t.lane.clone();
        let q = self.queues.entry(lane.clone()).or_default();
        if q.is_empty() {
            self.turn.push_back(lane);
        }
        q.push_back(t);
    }

    /// Puts a text back first in its lane (and its lane first in turn).
    fn push_front(&mut self, t: Queued) {
        let lane = t.lane.clone();
        let q = self.queues.entry(lane.clone()).or_default();
        if q.is_empty() {
            self.turn.push_front(lane);
        }
        q.push_front(t);
    }

    /// The next lane's next text.
    fn pop(&mut self) -> Option<Queued> {
        let lane = self.turn.pop_front()?;
        let q = self.queues.get_mut(&lane)?;
        let next = q.pop_front();
        if q.is_empty() {
            self.queues.remove(&lane);
        } else {
            self.turn.push_back(lane);
        }
        next
    }

    /// Whether some lane with texts waiting is not among `served`.
    fn has_other_than(&self, served: &std::collections::HashSet<Arc<str>>) -> bool {
        self.turn.iter().any(|l| !served.contains(l))
    }
}

/// Handle to the batching task; cheap to clone. The task ends when every
/// handle is dropped and the queue is empty.
#[derive(Clone)]
pub struct Batcher {
    requests: mpsc::UnboundedSender<Vec<Submitted>>,
    stats: Arc<BatcherStats>,
}

impl Batcher {
    /// Starts the batching task on the current tokio runtime.
    pub fn start<M: Model>(model: Arc<M>, plan: BatchPlan) -> (Self, tokio::task::JoinHandle<()>) {
        Self::start_with(model, plan, None)
    }

    /// [`Batcher::start`], its model calls taking turns with another
    /// queue's through `turns` (see [`Turns`]).
    pub fn start_with<M: Model>(
        model: Arc<M>,
        plan: BatchPlan,
        turns: Option<(Arc<Turns>, Turn)>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(BatcherStats::default());
        let task = tokio::spawn(drain(model, plan, rx, stats.clone(), turns));
        (
            Self {
                requests: tx,
                stats,
            },
            task,
        )
    }

    /// Queues `texts`; their vectors arrive on the returned receiver (in no
    /// particular order: match them by `index`). Dropping the receiver
    /// withdraws the texts not yet embedded.
    pub fn submit(&self, texts: Vec<TextToEmbed>) -> Result<Results, EmbedError> {
        self.submit_in("", texts)
    }

    /// [`Batcher::submit`] in `lane` (e.g. the owner): lanes take turns
    /// filling batches, so a lane with thousands of texts queued delays
    /// another's few by about one batch, not by the whole queue.
    pub fn submit_in(&self, lane: &str, texts: Vec<TextToEmbed>) -> Result<Results, EmbedError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = Arc::new(tx);
        let lane: Arc<str> = Arc::from(lane);
        let submitted = texts
            .into_iter()
            .map(|text| Submitted {
                text,
                sink: sink.clone(),
                lane: lane.clone(),
            })
            .collect();
        self.requests
            .send(submitted)
            .map_err(|_| EmbedError::inference("the embedding queue has stopped"))?;
        Ok(rx)
    }

    pub fn stats(&self) -> &BatcherStats {
        &self.stats
    }
}

/// The queue's state, owned by the draining task.
struct Queue<M> {
    model: Arc<M>,
    plan: BatchPlan,
    stats: Arc<BatcherStats>,
    order: Lanes,
    /// Per queued or computing key: who waits, with their indexes.
    waiters: HashMap<Key, Vec<(Arc<Sink>, usize)>>,
    cache: HashMap<Key, Vec<f32>>,
}

impl<M: Model> Queue<M> {
    fn key(&self, text: &str) -> Key {
        let mut h = Sha256::new();
        h.update(self.model.model_id().as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.finalize().into()
    }

    /// Takes in submitted texts: from the cache, joined to an identical
    /// text in flight, or queued.
    fn accept(&mut self, submitted: Vec<Submitted>) {
        for s in submitted {
            let key = self.key(&s.text.text);
            if let Some(vector) = self.cache.get(&key) {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                let _ = s.sink.send(Ok(Embedded {
                    index: s.text.index,
                    vector: vector.clone(),
                }));
            } else if let Some(waiting) = self.waiters.get_mut(&key) {
                self.stats.shared.fetch_add(1, Ordering::Relaxed);
                waiting.push((s.sink, s.text.index));
            } else {
                self.waiters.insert(key, vec![(s.sink, s.text.index)]);
                self.order.push_back(Queued {
                    key,
                    text: s.text.text,
                    tokens: s.text.tokens,
                    lane: s.lane,
                });
            }
        }
    }

    /// Whether anyone still listens for `key`.
    fn wanted(&self, key: &Key) -> bool {
        self.waiters
            .get(key)
            .is_some_and(|w| w.iter().any(|(sink, _)| !sink.is_closed()))
    }

    fn deliver(&mut self, key: Key, result: Result<Vec<f32>, EmbedError>) {
        let waiting = self.waiters.remove(&key).unwrap_or_default();
        match result {
            Ok(vector) => {
                self.stats.embedded.fetch_add(1, Ordering::Relaxed);
                for (sink, index) in waiting {
                    let _ = sink.send(Ok(Embedded {
                        index,
                        vector: vector.clone(),
                    }));
                }
                if self.plan.cache_entries > 0 {
                    if self.cache.len() >= self.plan.cache_entries {
                        self.cache.clear(); // coarse; correctness never depends on it
                    }
                    self.cache.insert(key, vector);
                }
            }
            Err(e) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let reason = e.report();
                for (sink, _) in waiting {
                    let _ = sink.send(Err(EmbedError::inference(reason.clone())));
                }
            }
        }
    }
}

/// How two queues' model calls take turns: the express queue's go first
/// (`crate::express`). A call in progress cannot be paused, and the OS
/// shares the cores only roughly by priority: beside the main session's
/// calls (two threads, nice 10) an express call on both cores still took
/// about three times as long as alone, its threads waiting for each other
/// at every operator (`mnemo-bench fairness`, decision 019). So the main
/// queue's calls are made in pieces of [`PIECE_TEXTS`] texts, and before
/// each piece it waits while an express call runs, at most [`MOST_YIELD`]
/// (so a steady stream of express calls slows the main queue, never stops it).
#[derive(Debug, Default)]
pub struct Turns {
    running: std::sync::Mutex<usize>,
    done: std::sync::Condvar,
}

/// A queue's part in [`Turns`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Its calls go first (the express queue).
    First,
    /// Its calls go in pieces, after the other's (the main queue).
    After,
}

/// Texts a yielding queue embeds per model call (~1,000 tokens: a tenth
/// of a second on two cores).
pub const PIECE_TEXTS: usize = 4;
/// Longest a yielding queue waits before a piece.
pub const MOST_YIELD: std::time::Duration = std::time::Duration::from_secs(1);

impl Turns {
    fn running(&self) -> std::sync::MutexGuard<'_, usize> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `call` as a first call.
    fn first<T>(&self, call: impl FnOnce() -> T) -> T {
        *self.running() += 1;
        struct Done<'a>(&'a Turns);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                let mut running = self.0.running();
                *running = running.saturating_sub(1);
                self.0.done.notify_all();
            }
        }
        let _done = Done(self);
        call()
    }

    /// Waits until no first call runs, at most `most`.
    fn wait(&self, most: std::time::Duration) {
        let running = self.running();
        let _ = self
            .done
            .wait_timeout_while(running, most, |n| *n > 0)
            .map_err(|_| ());
    }
}

/// One model call for the worker, and where its answer goes.
struct Call {
    texts: Arc<Vec<String>>,
    range: Range<usize>,
    answer: tokio::sync::oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>,
}

/// The thread a queue's model calls run on: its own, at the model's nice
/// value (a niced thread cannot be given back to a shared pool: see
/// [`crate::priority`]). The queue makes one call at a time, so one
/// thread is all it needs. It ends when the queue does.
struct Worker(std::sync::mpsc::Sender<Call>);

/// One model call, a panic in the model turned into an error. Metrics:
/// `mnemo_embed_texts_total` and `mnemo_embed_call_seconds` (texts per
/// second and calls' time: documents' and queries' alike), and
/// `mnemo_embed_call_texts` (the batch sizes).
fn call_model<M: Model>(model: &M, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
    let started = std::time::Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.embed(texts)))
        .unwrap_or_else(|_| Err(EmbedError::inference("the model panicked")));
    metrics::counter!("mnemo_embed_texts_total").increment(texts.len() as u64);
    metrics::histogram!("mnemo_embed_call_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("mnemo_embed_call_texts").record(texts.len() as f64);
    result
}

impl Worker {
    fn start<M: Model>(
        model: Arc<M>,
        turns: Option<(Arc<Turns>, Turn)>,
    ) -> Result<Self, EmbedError> {
        let (tx, rx) = std::sync::mpsc::channel::<Call>();
        std::thread::Builder::new()
            .name("mnemo-embed".into())
            .spawn(move || {
                crate::priority::nice_this_thread(model.nice());
                for call in rx {
                    let texts = &call.texts[call.range.clone()];
                    let result = match &turns {
                        None => call_model(&*model, texts),
                        Some((turns, Turn::First)) => turns.first(|| call_model(&*model, texts)),
                        Some((turns, Turn::After)) => {
                            let mut vectors = Vec::with_capacity(texts.len());
                            let mut result = Ok(());
                            for piece in texts.chunks(PIECE_TEXTS) {
                                turns.wait(MOST_YIELD);
                                match call_model(&*model, piece) {
                                    Ok(v) => vectors.extend(v),
                                    Err(e) => {
                                        result = Err(e);
                                        break;
                                    }
                                }
                            }
                            result.map(|()| vectors)
                        }
                    };
                    let _ = call.answer.send(result);
                }
            })
            .map_err(|e| EmbedError::inference(format!("cannot start the model thread: {e}")))?;
        Ok(Self(tx))
    }

    async fn embed(
        &self,
        texts: Arc<Vec<String>>,
        range: Range<usize>,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.0
            .send(Call {
                texts,
                range,
                answer,
            })
            .map_err(|_| EmbedError::inference("the model thread has stopped"))?;
        answered
            .await
            .unwrap_or_else(|_| Err(EmbedError::inference("the model thread has stopped")))
    }
}

/// The batching task: windows of the queue, sorted, cut, embedded.
async fn drain<M: Model>(
    model: Arc<M>,
    plan: BatchPlan,
    mut requests: mpsc::UnboundedReceiver<Vec<Submitted>>,
    stats: Arc<BatcherStats>,
    turns: Option<(Arc<Turns>, Turn)>,
) {
    let max_texts = plan.max_texts.min(model.batch_size()).max(1);
    let worker = Worker::start(model.clone(), turns);
    if let Err(e) = &worker {
        tracing::error!(error = %e.report(), "the embedding queue has no model thread: every text will fail");
    }
    let mut q = Queue {
        model,
        plan,
        stats,
        order: Lanes::default(),
        waiters: HashMap::new(),
        cache: HashMap::new(),
    };
    loop {
        if q.order.is_empty() {
            match requests.recv().await {
                Some(texts) => q.accept(texts),
                None => return,
            }
        }
        while let Ok(texts) = requests.try_recv() {
            q.accept(texts);
        }
        // Lanes in turn: each gives one text until the window is full.
        let mut window: Vec<Queued> = Vec::new();
        while window.len() < plan.window.max(1) {
            let Some(next) = q.order.pop() else {
                break;
            };
            if q.wanted(&next.key) {
                window.push(next);
            } else {
                q.waiters.remove(&next.key);
            }
        }
        let served: std::collections::HashSet<Arc<str>> =
            window.iter().map(|t| t.lane.clone()).collect();
        let (window, batches) = cut(window, plan.token_budget, max_texts);
        let mut window: Vec<Option<Queued>> = window.into_iter().map(Some).collect();
        for (i, range) in batches.iter().enumerate() {
            // A lane that arrived since the window was cut gets its turn
            // now: the rest of the window goes back to the front.
            if q.order.has_other_than(&served) {
                for r in batches[i..].iter().rev() {
                    for t in window[r.clone()].iter_mut().rev().filter_map(Option::take) {
                        q.order.push_front(t);
                    }
                }
                break;
            }
            let batch: Vec<&Queued> = window[range.clone()]
                .iter()
                .flatten()
                .filter(|t| q.wanted(&t.key))
                .collect();
            if batch.is_empty() {
                continue;
            }
            let texts: Vec<String> = batch.iter().map(|t| t.text.clone()).collect();
            let keys: Vec<Key> = batch.iter().map(|t| t.key).collect();
            let results = embed_bisecting(&worker, texts, q.stats.clone()).await;
            for (key, result) in keys.into_iter().zip(results) {
                q.deliver(key, result);
            }
            // Pick up what arrived meanwhile, so the queue keeps its order
            // (and new duplicates join what is about to be computed).
            while let Ok(texts) = requests.try_recv() {
                q.accept(texts);
            }
        }
    }
}

/// Orders a window and cuts it into batches. With one lane: sorted by
/// length, cut within the padded-token budget. With several: the other
/// lanes' texts first, in batches of their own, then the largest lane's —
/// so a small upload beside a big one gets a small batch (fast) that runs
/// next, not a full batch padded out with the big one's texts. A lane is
/// the largest only with more texts in the window than any other: when
/// the most are tied, the window is cut by length alone.
fn cut(
    mut window: Vec<Queued>,
    budget: usize,
    max_texts: usize,
) -> (Vec<Queued>, Vec<Range<usize>>) {
    let mut in_window: HashMap<Arc<str>, usize> = HashMap::new();
    for t in &window {
        *in_window.entry(t.lane.clone()).or_default() += 1;
    }
    // The largest lane only when it has more texts here than any other: a
    // tie names none, or lanes of one query each would see the same one put
    // last, window after window (a searcher waited seconds: `mnemo-bench
    // load`).
    let mut counts: Vec<(usize, &Arc<str>)> = in_window.iter().map(|(l, n)| (*n, l)).collect();
    counts.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
    let largest = match counts.as_slice() {
        [(first, lane), (second, _), ..] if first > second => Some((*lane).clone()),
        _ => None,
    };
    let is_largest = |t: &Queued| Some(&t.lane) == largest.as_ref();
    window.sort_by_key(|t| (is_largest(t), t.tokens));
    let others = window.iter().filter(|t| !is_largest(t)).count();
    let lengths: Vec<usize> = window.iter().map(|t| t.tokens).collect();
    let mut batches = plan_batches(&lengths[..others], budget, max_texts);
    batches.extend(
        plan_batches(&lengths[others..], budget, max_texts)
            .into_iter()
            .map(|r| r.start + others..r.end + others),
    );
    (window, batches)
}

/// Embeds `texts` in one model call; if the call fails, the two halves
/// are embedded again (recursively), so only the texts that fail alone
/// get an error.
async fn embed_bisecting(
    worker: &Result<Worker, EmbedError>,
    texts: Vec<String>,
    stats: Arc<BatcherStats>,
) -> Vec<Result<Vec<f32>, EmbedError>> {
    let mut out: Vec<Option<Result<Vec<f32>, EmbedError>>> =
        (0..texts.len()).map(|_| None).collect();
    let mut pending: Vec<Range<usize>> = Vec::new();
    pending.push(0..texts.len());
    let texts = Arc::new(texts);
    while let Some(range) = pending.pop() {
        if range.is_empty() {
            continue;
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        let result = match worker {
            Ok(worker) => worker.embed(texts.clone(), range.clone()).await,
            Err(e) => Err(EmbedError::inference(e.report())),
        };
        match result {
            Ok(vectors) if vectors.len() == range.len() => {
                for (i, v) in range.zip(vectors) {
                    out[i] = Some(Ok(v));
                }
            }
            Ok(vectors) => {
                let reason = format!(
                    "the model returned {} vectors for {} texts",
                    vectors.len(),
                    range.len()
                );
                for slot in &mut out[range] {
                    *slot = Some(Err(EmbedError::inference(reason.clone())));
                }
            }
            Err(e) if range.len() == 1 => out[range.start] = Some(Err(e)),
            Err(e) => {
                tracing::warn!(texts = range.len(), error = %e.report(), "a batch failed; bisecting it");
                let mid = range.start + range.len() / 2;
                pending.push(range.start..mid);
                pending.push(mid..range.end);
            }
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(EmbedError::inference("text was not embedded"))))
        .collect()
}

/// Cuts texts sorted by length into consecutive batches of at most
/// `max_texts`, each within `budget` padded tokens (`count × longest`). A
/// text longer than the budget gets a batch of its own.
pub fn plan_batches(
    sorted_lengths: &[usize],
    budget: usize,
    max_texts: usize,
) -> Vec<Range<usize>> {
    let mut batches = Vec::new();
    let mut start = 0;
    while start < sorted_lengths.len() {
        let mut end = start + 1;
        while end < sorted_lengths.len()
            && end - start < max_texts
            && (end - start + 1) * sorted_lengths[end].max(1) <= budget
        {
            end += 1;
        }
        batches.push(start..end);
        start = end;
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn batches_fit_the_budget_and_cover_every_text_once() {
        let lengths: Vec<usize> = (0..300).map(|i| 5 + (i * 7) % 250).collect();
        let mut sorted = lengths.clone();
        sorted.sort();
        let batches = plan_batches(&sorted, 4_096, 64);
        let mut covered = 0;
        for b in &batches {
            assert_eq!(b.start, covered, "batches are consecutive");
            covered = b.end;
            let longest = sorted[b.end - 1];
            assert!(b.len() <= 64);
            assert!(b.len() * longest <= 4_096 || b.len() == 1, "{b:?}");
        }
        assert_eq!(covered, sorted.len());
    }

    #[test]
    fn short_texts_share_big_batches_and_long_ones_small_batches() {
        let sorted = [10; 100]
            .iter()
            .chain([256; 40].iter())
            .copied()
            .collect::<Vec<_>>();
        let batches = plan_batches(&sorted, 8_192, 64);
        assert_eq!(batches[0], 0..64, "64 short texts fill the count limit");
        // 36 short + 256-long texts would pad to 256: the budget cuts there.
        assert!(batches.iter().all(|b| b.len() * sorted[b.end - 1] <= 8_192));
        assert_eq!(batches.last().map(|b| b.end), Some(140));
    }

    #[test]
    fn an_oversized_text_gets_a_batch_alone() {
        assert_eq!(plan_batches(&[600], 512, 8), vec![0..1]);
        assert_eq!(plan_batches(&[], 512, 8), Vec::<Range<usize>>::new());
    }

    /// A model whose vector is the text's length; any batch holding a text
    /// with "poison" fails. Records every call's size.
    #[derive(Default)]
    struct Fake {
        calls: Mutex<Vec<usize>>,
    }

    impl Model for Fake {
        fn model_id(&self) -> &str {
            "fake"
        }
        fn batch_size(&self) -> usize {
            64
        }
        fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            if let Ok(mut c) = self.calls.lock() {
                c.push(texts.len());
            }
            // A model takes time: 1 ms a call (the work, not a wait).
            std::thread::sleep(std::time::Duration::from_millis(1));
            if texts.iter().any(|t| t.contains("poison")) {
                return Err(EmbedError::inference("cannot embed poison"));
            }
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        }
    }

    /// A queued text of `lane` with `tokens`.
    fn queued(lane: &str, i: usize, tokens: usize) -> Queued {
        Queued {
            key: [i as u8; 32],
            text: format!("{lane} {i}"),
            tokens,
            lane: Arc::from(lane),
        }
    }

    #[test]
    fn a_small_lane_gets_batches_of_its_own_first() {
        let mut window: Vec<Queued> = (0..20).map(|i| queued("big", i, 256)).collect();
        window.extend((20..23).map(|i| queued("small", i, 100 + i)));
        let (window, batches) = cut(window, 4_096, 64);
        assert_eq!(batches[0], 0..3, "the small lane's 3 texts alone");
        assert!(window[..3].iter().all(|t| &*t.lane == "small"));
        assert_eq!(batches.last().map(|b| b.end), Some(23));
        // One lane: one sorted run, as before.
        let one: Vec<Queued> = (0..5).map(|i| queued("a", i, 300 - i)).collect();
        let (one, batches) = cut(one, 4_096, 64);
        assert_eq!(batches, vec![0..5]);
        assert!(one.windows(2).all(|w| w[0].tokens <= w[1].tokens));
    }

    /// Lanes of one text each (searchers): none is put last, so the one
    /// that would win a tie is not deferred window after window.
    #[test]
    fn equal_lanes_are_cut_by_length_alone() {
        let window = vec![
            queued("zz-last-by-name", 0, 4),
            queued("a", 1, 9),
            queued("b", 2, 7),
        ];
        let (window, batches) = cut(window, 4_096, 64);
        assert_eq!(batches, vec![0..3]);
        assert_eq!(&*window[0].lane, "zz-last-by-name", "shortest first");
    }

    /// One owner's 2,000 texts are queued; another owner's 3 arrive after
    /// the first batch started. They are in the very next batch, not
    /// behind the first owner's window (256 texts, 4 batches of 64).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_lane_is_served_in_the_next_batch() {
        let model = Arc::new(Fake::default());
        let (batcher, _task) = Batcher::start(model.clone(), BatchPlan::default());
        let big: Vec<TextToEmbed> = (0..2_000).map(|i| text(i, &format!("big {i}"))).collect();
        let big_rx = batcher.submit_in("big", big).unwrap();
        // Wait for the first batch to be under way (or done).
        let mut big_rx = big_rx;
        assert!(matches!(big_rx.recv().await, Some(Ok(_))));
        let calls_before = model.calls.lock().map(|c| c.len()).unwrap_or(0);
        let small: Vec<TextToEmbed> = (0..3).map(|i| text(i, &format!("small {i}"))).collect();
        let got = all(batcher.submit_in("small", small).unwrap(), 3).await;
        assert_eq!(got.len(), 3);
        let calls_after = model.calls.lock().map(|c| c.len()).unwrap_or(0);
        assert!(
            calls_after <= calls_before + 2,
            "the small lane waited {} batches",
            calls_after - calls_before
        );
        drop(big_rx);
    }

    fn text(index: usize, text: &str) -> TextToEmbed {
        TextToEmbed {
            index,
            text: text.into(),
            tokens: 4,
        }
    }

    async fn all(mut rx: Results, n: usize) -> Vec<(usize, Result<f32, String>)> {
        let mut out = Vec::new();
        while out.len() < n {
            match rx.recv().await {
                Some(Ok(e)) => out.push((e.index, Ok(e.vector[0]))),
                Some(Err(e)) => out.push((usize::MAX, Err(e.report()))),
                None => break,
            }
        }
        out
    }

    #[tokio::test]
    async fn a_poison_text_fails_alone_and_the_rest_of_its_batch_is_embedded() {
        let model = Arc::new(Fake::default());
        let (batcher, _task) = Batcher::start(model.clone(), BatchPlan::default());
        let texts: Vec<TextToEmbed> = (0..8)
            .map(|i| text(i, if i == 5 { "poison pill" } else { "fine text" }))
            .collect();
        let got = all(batcher.submit(texts).unwrap(), 8).await;
        assert_eq!(got.iter().filter(|(_, r)| r.is_ok()).count(), 7);
        let failed: Vec<_> = got.iter().filter_map(|(_, r)| r.clone().err()).collect();
        assert_eq!(failed.len(), 1);
        assert!(failed[0].contains("poison"), "{failed:?}");
        let (_, _, embedded, _, failed_n) = batcher.stats().snapshot();
        assert_eq!(
            (embedded, failed_n),
            (1, 1),
            "7 identical texts are one computation"
        );
    }

    #[test]
    fn a_yielding_queue_waits_for_the_first_call_in_progress_and_no_longer_than_its_bound() {
        let turns = Arc::new(Turns::default());
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let first = {
            let (turns, released) = (turns.clone(), released.clone());
            std::thread::spawn(move || {
                turns.first(|| {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                    released.store(true, Ordering::SeqCst);
                })
            })
        };
        started.recv().unwrap();
        // Bounded: gives up while the first call still runs.
        turns.wait(std::time::Duration::from_millis(20));
        assert!(!released.load(Ordering::SeqCst));
        let after = {
            let (turns, released) = (turns.clone(), released.clone());
            std::thread::spawn(move || {
                turns.wait(std::time::Duration::from_secs(60));
                released.load(Ordering::SeqCst)
            })
        };
        release.send(()).unwrap();
        assert!(
            after.join().unwrap(),
            "went on only once the first call ended"
        );
        first.join().unwrap();
        assert_eq!(*turns.running(), 0);
    }

    #[tokio::test]
    async fn a_yielding_queue_embeds_in_pieces_with_every_vector_in_place() {
        let model = Arc::new(Fake::default());
        let turns = Some((Arc::new(Turns::default()), Turn::After));
        let (batcher, _task) = Batcher::start_with(model.clone(), BatchPlan::default(), turns);
        let texts: Vec<TextToEmbed> = (0..10).map(|i| text(i, &"x".repeat(i + 1))).collect();
        let mut got = all(batcher.submit(texts).unwrap(), 10).await;
        got.sort_by_key(|(i, _)| *i);
        for (i, r) in got {
            assert_eq!(r, Ok((i + 1) as f32), "text {i} got its own vector");
        }
        let calls = model.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().sum::<usize>(), 10);
        assert!(calls.iter().all(|&n| n <= PIECE_TEXTS), "{calls:?}");
    }

    #[tokio::test]
    async fn identical_texts_are_computed_once_and_cached() {
        let model = Arc::new(Fake::default());
        let (batcher, _task) = Batcher::start(model.clone(), BatchPlan::default());
        let a = batcher
            .submit(vec![text(0, "same"), text(1, "other")])
            .unwrap();
        let b = batcher.submit(vec![text(7, "same")]).unwrap();
        let (ga, gb) = tokio::join!(all(a, 2), all(b, 1));
        assert_eq!(ga.len(), 2);
        assert_eq!(gb, vec![(7, Ok(4.0))]);
        let c = all(batcher.submit(vec![text(3, "same")]).unwrap(), 1).await;
        assert_eq!(c, vec![(3, Ok(4.0))]);
        let (hits, shared, embedded, _, _) = batcher.stats().snapshot();
        assert_eq!(embedded, 2, "two distinct texts");
        assert_eq!(hits + shared, 2, "the repeats cost nothing");
        assert!(hits >= 1, "the last one came from the cache");
    }

    #[tokio::test]
    async fn without_a_cache_a_later_repeat_is_computed_again() {
        let model = Arc::new(Fake::default());
        let plan = BatchPlan {
            cache_entries: 0,
            ..Default::default()
        };
        let (batcher, _task) = Batcher::start(model.clone(), plan);
        all(batcher.submit(vec![text(0, "x")]).unwrap(), 1).await;
        all(batcher.submit(vec![text(0, "x")]).unwrap(), 1).await;
        assert_eq!(batcher.stats().snapshot().2, 2);
    }
}
