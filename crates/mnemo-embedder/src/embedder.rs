//! [`Embedder`]: texts in, L2-normalised vectors out, one bounded batch at a
//! time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, TryLockError};

use fastembed::TextEmbedding;
use tokenizers::Tokenizer;

use crate::config::EmbedderConfig;
use crate::error::EmbedError;
use crate::model;

/// A loaded embedding model, shareable across threads (`Send + Sync`).
///
/// fastembed's `TextEmbedding::embed` takes `&mut self`, so the model sits
/// behind a `Mutex` and calls run one batch at a time: onnxruntime already
/// spreads one batch over `threads` cores. A second `Embedder` is a second
/// session (~90 MB of weights and its own arena) whose calls run beside
/// this one's: `mnemo serve all` keeps one for documents (nice), one for
/// owners arriving beside another's batch ([`crate::express`]) and one for
/// queries, because a call in progress cannot be shared and a person
/// waiting should not wait for a batch (docs/decisions/019-model-sessions-and-priority.md).
///
/// A model that quantizes its activations per call (a dynamically
/// quantized int8 export) is given one text per model call, whatever
/// `batch_size` says: its scales are computed from the whole input
/// tensor, so in a shared call a text's vector would depend on the other
/// texts and the padding. Alone, a text always gets the same bytes, at
/// any thread count, so replays, backfills and the embedding cache stay
/// exact (docs/decisions/020-int8-model-one-text-per-call.md). Such an
/// `Embedder` keeps one single-threaded session per thread it may use
/// and runs the texts of one [`Embedder::embed`] side by side on them:
/// a one-text call is too small to share between threads well (measured:
/// two one-thread sessions embed 1.28× what one two-thread session does).
///
/// Texts longer than `max_length` word pieces are truncated by the tokenizer,
/// not refused: the chunker guarantees chunks fit (it measures them with
/// [`Embedder::count_tokens`], which uses this very tokenizer), so checking
/// again here would tokenise every text twice for nothing.
pub struct Embedder {
    /// One session, or for a per-call quantized model one single-threaded
    /// session per thread (see above).
    sessions: Vec<Mutex<TextEmbedding>>,
    /// Texts per model call: `batch_size`, or 1 for a per-call quantizer.
    per_call: usize,
    // The same tokenizer without truncation or padding, so counts are true
    // lengths (a truncating count would hide over-long chunks at 256).
    counter: Tokenizer,
    model_id: String,
    dims: usize,
    batch_size: usize,
    max_length: usize,
    nice: i32,
}

impl Embedder {
    /// Loads onnxruntime (if not yet loaded, from `ORT_DYLIB_PATH`) and the
    /// model, and checks the model answers with `dims` values.
    ///
    /// With `config.nice`, the session is built on a niced thread, so its
    /// intra-op threads run nice ([`crate::priority`]).
    ///
    /// Tokenizing is switched to the calling thread for the whole process
    /// (the `tokenizers` crate's shared rayon pool is not used): a model
    /// call then tokenizes at its own thread's priority, so a batch's
    /// tokenizing runs nice with its model call instead of beside the
    /// express session and queries at normal priority (a 16-text batch
    /// tokenizes in a few milliseconds; its model call takes ~0.75 s).
    pub fn new(config: EmbedderConfig) -> Result<Self, EmbedError> {
        config.validate()?;
        tokenizers::utils::parallelism::set_parallelism(false);
        let embedder = crate::priority::on_niced_thread(config.nice, || Self::build(&config))
            .map_err(|e| {
                EmbedError::model(format!("cannot start a thread to load the model on: {e}"))
            })??;
        // One tiny run: catches a graph whose output is not the hidden
        // state we pool (wrong dims), and warms onnxruntime up before the
        // first real batch.
        embedder.embed(&["mnemo".to_string()]).map_err(|e| {
            EmbedError::model(format!("the model failed its first run: {}", e.report()))
        })?;
        tracing::info!(
            model_id = %embedder.model_id,
            dims = embedder.dims,
            batch_size = embedder.batch_size,
            texts_per_call = embedder.per_call,
            sessions = embedder.sessions.len(),
            max_length = embedder.max_length,
            nice = embedder.nice,
            "embedder ready"
        );
        Ok(embedder)
    }

    fn build(config: &EmbedderConfig) -> Result<Self, EmbedError> {
        let loaded = model::load(config)?;
        let Some(first) = loaded.sessions.first() else {
            return Err(EmbedError::model("the model loaded no session"));
        };
        let mut counter = first.tokenizer.clone();
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(|e| EmbedError::model(format!("cannot configure the token counter: {e}")))?;
        let embedder = Self {
            sessions: loaded.sessions.into_iter().map(Mutex::new).collect(),
            per_call: if loaded.one_per_call {
                1
            } else {
                config.batch_size
            },
            counter,
            model_id: loaded.model_id,
            dims: loaded.dims,
            batch_size: config.batch_size,
            max_length: config.max_length,
            nice: config.nice,
        };
        Ok(embedder)
    }

    /// `<name>@<sha256 prefix of model.onnx>` (e.g.
    /// `all-MiniLM-L6-v2@48334d3b8c54`): changes whenever the model does, so
    /// caches and stored vectors can be keyed by it.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Length of every vector (384 for all-MiniLM-L6-v2).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Longest text the model sees, in word pieces with special tokens.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Most texts per [`Embedder::embed`] call worth handing over at once
    /// (the configured batch size).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Most texts per model call: the batch size, or 1 for a model that
    /// quantizes per call (see [`Embedder`]).
    pub fn texts_per_call(&self) -> usize {
        self.per_call
    }

    /// Model sessions run side by side (1 unless the model quantizes per
    /// call; see [`Embedder`]).
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// How much nicer than its builder its threads run; a thread calling
    /// [`Embedder::embed`] should run that much nicer too
    /// ([`crate::batcher`]'s do).
    pub fn nice(&self) -> i32 {
        self.nice
    }

    /// Word pieces in `text` as the model would see them, special tokens
    /// (`[CLS]`, `[SEP]`) included and without truncation: a text fits when
    /// this is at most [`Embedder::max_length`].
    pub fn count_tokens(&self, text: &str) -> Result<usize, EmbedError> {
        self.counter
            .encode(text, true)
            .map(|encoding| encoding.len())
            .map_err(|e| EmbedError::Input(format!("cannot tokenise the text: {e}")))
    }

    /// One L2-normalised vector of [`Embedder::dims`] values per text, in
    /// order. fastembed is handed at most [`Embedder::texts_per_call`]
    /// texts per call, because it keeps every batch's output until it
    /// returns (and a per-call quantizer must see one text at a time);
    /// with several sessions the calls run side by side, on this thread
    /// and on scoped threads that inherit its priority.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let calls: Vec<&[String]> = texts.chunks(self.per_call.max(1)).collect();
        let workers = self.sessions.len().min(calls.len());
        if workers <= 1 {
            let mut vectors = Vec::with_capacity(texts.len());
            for batch in calls {
                vectors.extend(self.call(0, batch)?);
            }
            return Ok(vectors);
        }
        // Each worker takes the next call until none is left or one has
        // failed; results are put back in order afterwards.
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let work = |session: usize| {
            let mut done = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(batch) = calls.get(i) else {
                    break;
                };
                let result = self.call(session, batch);
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                done.push((i, result));
            }
            done
        };
        let mut results: Vec<(usize, Embedded)> = std::thread::scope(|scope| {
            // A thread the OS will not give is one worker fewer.
            let others: Vec<_> = (1..workers)
                .filter_map(|session| {
                    std::thread::Builder::new()
                        .name("mnemo-embed".into())
                        .spawn_scoped(scope, move || work(session))
                        .ok()
                })
                .collect();
            let mut all = work(0);
            for handle in others {
                match handle.join() {
                    Ok(done) => all.extend(done),
                    // A panic in fastembed: re-raised here, so the
                    // caller sees it as it would on one thread.
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            all
        });
        results.sort_by_key(|(i, _)| *i);
        let mut vectors = Vec::with_capacity(texts.len());
        for (expected, (i, result)) in results.into_iter().enumerate() {
            if i != expected {
                // Workers stopped at a failure before this call ran.
                break;
            }
            vectors.extend(result?);
        }
        if vectors.len() != texts.len() {
            return Err(EmbedError::inference(format!(
                "embedded {} of {} texts",
                vectors.len(),
                texts.len()
            )));
        }
        Ok(vectors)
    }

    /// One model call, checked: on the first free session from `first`
    /// on (concurrent callers, e.g. a backfill's one-text calls or the
    /// API's queries, spread over the sessions), else waiting for `first`.
    fn call(&self, first: usize, batch: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let n = self.sessions.len();
        let free =
            (0..n)
                .map(|k| (first + k) % n)
                .find_map(|i| match self.sessions[i].try_lock() {
                    Ok(model) => Some(model),
                    Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                    Err(TryLockError::WouldBlock) => None,
                });
        let embedded = {
            // Poisoning means a panic inside fastembed during an earlier
            // run; the session holds no state between runs, so it is
            // still fit to use.
            let mut model = match free {
                Some(model) => model,
                None => self.sessions[first % n]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            };
            model.embed(batch, Some(batch.len()))
        }
        .map_err(|e| EmbedError::inference_with("embedding a batch failed", e))?;
        if embedded.len() != batch.len() {
            return Err(EmbedError::inference(format!(
                "the model returned {} vectors for {} texts",
                embedded.len(),
                batch.len()
            )));
        }
        if let Some(bad) = embedded.iter().find(|v| v.len() != self.dims) {
            return Err(EmbedError::inference(format!(
                "the model returned {} values per vector, expected {}",
                bad.len(),
                self.dims
            )));
        }
        Ok(embedded)
    }
}

/// What one model call gives back.
type Embedded = Result<Vec<Vec<f32>>, EmbedError>;

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model_id", &self.model_id)
            .field("dims", &self.dims)
            .field("batch_size", &self.batch_size)
            .field("texts_per_call", &self.per_call)
            .field("sessions", &self.sessions.len())
            .field("max_length", &self.max_length)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedder_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Embedder>();
    }
}
