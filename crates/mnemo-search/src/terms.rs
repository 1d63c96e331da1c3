//! The lexical side for natural-language queries: Okapi BM25 over the
//! PostgreSQL lexemes of every indexed chunk, in memory, per owner.
//!
//! Why not `ts_rank_cd` alone (decision 013): `websearch_to_tsquery` ANDs
//! every word, so a question of ten words matches almost nothing (SciFact
//! train nDCG@10 0.05), and `ts_rank` has no inverse document frequency.
//! BM25 ranks any chunk that has *some* of the words, rarer words counting
//! more. The lexemes are PostgreSQL's own (`to_tsvector('english', …)`,
//! the generated `chunks.tsv` column), so stemming and stop words are
//! exactly those of the full-text path and of the snippets.
//!
//! Loaded from the `chunks` read model (each document's indexed run) at
//! start and kept fresh like the vectors: [`crate::follow`] reloads a
//! document when its `DocumentIndexed` arrives. Statistics (chunk count,
//! average length, document frequencies) are per owner — an owner's ranking
//! never depends on anyone else's material.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use futures::{pin_mut, TryStreamExt};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::{Scope, SearchError};

/// BM25's two knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25 {
    /// Term-frequency saturation.
    pub k1: f64,
    /// Length normalisation (0: none, 1: full).
    pub b: f64,
}

/// Tuned on the SciFact train split (docs/benchmarks.md): the Anserini
/// values for short scientific passages.
impl Default for Bm25 {
    fn default() -> Self {
        Self { k1: 0.9, b: 0.4 }
    }
}

/// One document's chunks as term postings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentTerms {
    pub topic: Option<String>,
    pub chunk_ids: Vec<String>,
    /// Each chunk's length in lexeme occurrences.
    pub lengths: Vec<u32>,
    /// Lexeme → (chunk position in `chunk_ids`, occurrences).
    pub postings: HashMap<String, Vec<(u32, u32)>>,
}

impl DocumentTerms {
    /// Adds one chunk from its lexemes and their occurrence counts.
    pub fn push_chunk(&mut self, chunk_id: String, lexemes: &[String], counts: &[i32]) {
        let at = self.chunk_ids.len() as u32;
        let mut length = 0u32;
        for (lexeme, &count) in lexemes.iter().zip(counts) {
            let count = count.max(1) as u32;
            length += count;
            self.postings
                .entry(lexeme.clone())
                .or_default()
                .push((at, count));
        }
        self.chunk_ids.push(chunk_id);
        self.lengths.push(length);
    }
}

/// What the allocator adds to a heap block, roughly (size classes).
const ALLOCATION: usize = 16;

/// One document's postings as an owner holds them: its lexemes as the
/// owner's lexeme ids, sorted, each with its run of (chunk, occurrences)
/// pairs in one array. About 20 bytes per lexeme of a document, against
/// about 110 as a map of strings to vectors (the strings are the owner's,
/// once).
#[derive(Debug)]
struct HeldDocument {
    topic: Option<String>,
    chunk_ids: Vec<String>,
    /// Each chunk's length in lexeme occurrences.
    lengths: Vec<u32>,
    /// Lexeme ids, ascending.
    lexemes: Vec<u32>,
    /// `postings[starts[i]..starts[i + 1]]` are `lexemes[i]`'s (the last
    /// runs to the end).
    starts: Vec<u32>,
    postings: Vec<(u32, u32)>,
    /// Bytes all of this takes, roughly.
    bytes: usize,
}

impl HeldDocument {
    /// The (chunk, occurrences) pairs of lexeme `id` in this document.
    fn postings_of(&self, id: u32) -> &[(u32, u32)] {
        let Ok(i) = self.lexemes.binary_search(&id) else {
            return &[];
        };
        let start = self.starts[i] as usize;
        let end = self
            .starts
            .get(i + 1)
            .map_or(self.postings.len(), |&e| e as usize);
        &self.postings[start..end]
    }
}

/// An owner keeps lexemes no document has any more until they are more
/// than this and than the others.
const MIN_DEAD_LEXEMES: usize = 1024;

/// Bytes a lexicon entry takes: the map's slot (7/8 full at most), the
/// text, its frequency.
fn lexicon_entry(lexeme: &str) -> usize {
    (std::mem::size_of::<(Box<str>, u32)>() + 1) * 8 / 7 + lexeme.len() + ALLOCATION + 4
}

/// One owner's documents and the statistics BM25 needs.
#[derive(Debug, Default)]
struct OwnerTerms {
    documents: HashMap<Uuid, HeldDocument>,
    /// Every lexeme the owner's documents have had since the last
    /// compaction → its id.
    lexicon: HashMap<Box<str>, u32>,
    /// Per lexeme id: chunks containing it now (0: none any more).
    frequency: Vec<u32>,
    /// Ids whose frequency is above 0.
    live: usize,
    chunks: u64,
    total_length: u64,
    /// Bytes of the documents' postings and the lexicon, roughly.
    bytes: usize,
}

impl OwnerTerms {
    fn id_of(&mut self, lexeme: String) -> u32 {
        if let Some(&id) = self.lexicon.get(lexeme.as_str()) {
            return id;
        }
        let id = self.frequency.len() as u32;
        self.bytes += lexicon_entry(&lexeme);
        self.lexicon.insert(lexeme.into_boxed_str(), id);
        self.frequency.push(0);
        id
    }

    /// Forgets the lexemes no document has any more, once they outnumber
    /// the others (an owner edited for months would otherwise keep every
    /// word it ever had). Ids are renumbered in their order, so every
    /// document's ids stay sorted.
    fn compact_if_due(&mut self) {
        let dead = self.frequency.len() - self.live;
        if dead <= self.live.max(MIN_DEAD_LEXEMES) {
            return;
        }
        let mut renumbered = vec![u32::MAX; self.frequency.len()];
        let mut frequency = Vec::with_capacity(self.live);
        for (old, &f) in self.frequency.iter().enumerate() {
            if f > 0 {
                renumbered[old] = frequency.len() as u32;
                frequency.push(f);
            }
        }
        let mut freed = 0;
        self.lexicon
            .retain(|lexeme, id| match renumbered[*id as usize] {
                u32::MAX => {
                    freed += lexicon_entry(lexeme);
                    false
                }
                new => {
                    *id = new;
                    true
                }
            });
        for d in self.documents.values_mut() {
            for id in &mut d.lexemes {
                *id = renumbered[*id as usize];
            }
        }
        self.lexicon.shrink_to_fit();
        self.frequency = frequency;
        self.bytes = self.bytes.saturating_sub(freed);
    }

    fn add(&mut self, document: Uuid, terms: DocumentTerms) {
        self.remove(document);
        let DocumentTerms {
            topic,
            chunk_ids,
            lengths,
            postings,
        } = terms;
        let mut by_id: Vec<(u32, Vec<(u32, u32)>)> = postings
            .into_iter()
            .map(|(lexeme, p)| (self.id_of(lexeme), p))
            .collect();
        by_id.sort_unstable_by_key(|(id, _)| *id);
        let mut held = HeldDocument {
            topic,
            lexemes: Vec::with_capacity(by_id.len()),
            starts: Vec::with_capacity(by_id.len()),
            postings: Vec::with_capacity(by_id.iter().map(|(_, p)| p.len()).sum()),
            chunk_ids,
            lengths,
            bytes: 0,
        };
        for (id, p) in by_id.into_iter().filter(|(_, p)| !p.is_empty()) {
            let f = &mut self.frequency[id as usize];
            if *f == 0 {
                self.live += 1;
            }
            *f += p.len() as u32;
            held.lexemes.push(id);
            held.starts.push(held.postings.len() as u32);
            held.postings.extend(p);
        }
        held.chunk_ids.shrink_to_fit();
        held.lengths.shrink_to_fit();
        held.bytes = held
            .chunk_ids
            .iter()
            .map(|c| c.len() + ALLOCATION + std::mem::size_of::<String>() + 4)
            .sum::<usize>()
            + held.lexemes.len() * 8
            + held.postings.len() * 8
            + 5 * ALLOCATION
            + std::mem::size_of::<(Uuid, HeldDocument)>();
        self.chunks += held.chunk_ids.len() as u64;
        self.total_length += held.lengths.iter().map(|&l| u64::from(l)).sum::<u64>();
        self.bytes += held.bytes;
        self.documents.insert(document, held);
    }

    fn remove(&mut self, document: Uuid) {
        let Some(old) = self.documents.remove(&document) else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(old.bytes);
        for (i, &id) in old.lexemes.iter().enumerate() {
            let end = old
                .starts
                .get(i + 1)
                .map_or(old.postings.len(), |&e| e as usize);
            let n = (end - old.starts[i] as usize) as u32;
            if let Some(f) = self.frequency.get_mut(id as usize) {
                if *f > 0 && *f <= n {
                    self.live -= 1;
                }
                *f = f.saturating_sub(n);
            }
        }
        self.compact_if_due();
        self.chunks = self.chunks.saturating_sub(old.chunk_ids.len() as u64);
        self.total_length = self
            .total_length
            .saturating_sub(old.lengths.iter().map(|&l| u64::from(l)).sum::<u64>());
    }

    /// The best `n` chunks of the documents `scope` admits for `lexemes`.
    fn top(&self, scope: &Scope, lexemes: &[String], n: usize, p: Bm25) -> Vec<(String, f64)> {
        if self.chunks == 0 || n == 0 {
            return Vec::new();
        }
        let total = self.chunks as f64;
        let average = (self.total_length as f64 / total).max(1.0);
        // Each distinct query lexeme once, with its idf (absent: skipped).
        let mut weighted: Vec<(u32, f64)> = Vec::new();
        for l in lexemes {
            let Some(&id) = self.lexicon.get(l.as_str()) else {
                continue;
            };
            let df = self.frequency[id as usize];
            if df == 0 || weighted.iter().any(|(w, _)| *w == id) {
                continue;
            }
            let df = f64::from(df);
            weighted.push((id, (1.0 + (total - df + 0.5) / (df + 0.5)).ln()));
        }
        if weighted.is_empty() {
            return Vec::new();
        }
        let mut scored: Vec<(f64, &str)> = Vec::new();
        let mut scores: Vec<f64> = Vec::new();
        for doc in self.admitted(scope) {
            scores.clear();
            scores.resize(doc.chunk_ids.len(), 0.0);
            for &(id, idf) in &weighted {
                for &(chunk, tf) in doc.postings_of(id) {
                    let tf = f64::from(tf);
                    let len = f64::from(doc.lengths[chunk as usize]);
                    let norm = p.k1 * (1.0 - p.b + p.b * len / average);
                    scores[chunk as usize] += idf * tf * (p.k1 + 1.0) / (tf + norm);
                }
            }
            for (i, &s) in scores.iter().enumerate() {
                if s > 0.0 {
                    scored.push((s, doc.chunk_ids[i].as_str()));
                }
            }
        }
        // Best first; equal scores by chunk id, so results are deterministic.
        let by_score = |a: &(f64, &str), b: &(f64, &str)| b.0.total_cmp(&a.0).then(a.1.cmp(b.1));
        if scored.len() > n {
            scored.select_nth_unstable_by(n - 1, by_score);
            scored.truncate(n);
        }
        scored.sort_by(by_score);
        scored.into_iter().map(|(s, c)| (c.to_owned(), s)).collect()
    }

    fn admitted<'a>(&'a self, scope: &'a Scope) -> Box<dyn Iterator<Item = &'a HeldDocument> + 'a> {
        let topic_ok = move |d: &HeldDocument| {
            scope
                .topic
                .as_deref()
                .is_none_or(|t| d.topic.as_deref() == Some(t))
        };
        match &scope.documents {
            // Each document once, however often the filter names it.
            Some(ids) => Box::new(
                ids.iter()
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .filter_map(|id| self.documents.get(id))
                    .filter(move |d| topic_ok(d)),
            ),
            None => Box::new(self.documents.values().filter(move |d| topic_ok(d))),
        }
    }
}

/// One owner's postings, built by [`TermIndex::prepare`], put in place by
/// [`TermIndex::install`].
#[derive(Debug)]
pub struct PreparedTerms(OwnerTerms);

/// Every owner's chunk lexemes, for BM25.
#[derive(Debug, Default)]
pub struct TermIndex {
    params: Bm25,
    owners: RwLock<HashMap<String, OwnerTerms>>,
}

/// The lexemes of each document's indexed run, as `tsvector` text
/// ([`parse_tsvector`]): PostgreSQL prints a chunk's `tsv` in a sixth of the
/// time it takes to unnest it into arrays (most of a cold owner's load).
const LOAD: &str = "SELECT c.chunk_id, c.document_id, c.owner_token, d.topic, c.tsv::text
                      FROM chunks c
                      JOIN documents d ON d.document_id = c.document_id AND c.run = d.indexed_run";

impl TermIndex {
    pub fn new(params: Bm25) -> Self {
        Self {
            params,
            owners: RwLock::new(HashMap::new()),
        }
    }

    pub fn params(&self) -> Bm25 {
        self.params
    }

    /// Chunks held, over every owner.
    pub fn len(&self) -> u64 {
        self.owners
            .read()
            .map(|o| o.values().map(|t| t.chunks).sum())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces everything with what the read models hold; returns chunks.
    pub async fn load_all(&self, client: &impl GenericClient) -> Result<u64, SearchError> {
        let rows = client
            .query_raw(
                LOAD,
                std::iter::empty::<&(dyn tokio_postgres::types::ToSql + Sync)>(),
            )
            .await?;
        pin_mut!(rows);
        let mut by_owner: HashMap<String, BTreeMap<Uuid, DocumentTerms>> = HashMap::new();
        while let Some(r) = rows.try_next().await? {
            push(by_owner.entry(r.get(2)).or_default(), &r);
        }
        let mut owners = HashMap::new();
        for (owner, docs) in by_owner {
            let mut terms = OwnerTerms::default();
            for (id, doc) in docs {
                terms.add(id, doc);
            }
            owners.insert(owner, terms);
        }
        let n = owners.values().map(|t| t.chunks).sum();
        if let Ok(mut held) = self.owners.write() {
            *held = owners;
        }
        Ok(n)
    }

    /// Bytes held for `owner`, roughly.
    pub fn memory_of(&self, owner: &str) -> usize {
        self.owners
            .read()
            .ok()
            .and_then(|o| o.get(owner).map(|t| t.bytes))
            .unwrap_or(0)
    }

    /// Reads `owner`'s lexemes (each document's indexed run) without
    /// changing what is held; [`Self::load_owner`] puts them in place.
    pub async fn fetch_owner(
        &self,
        client: &impl GenericClient,
        owner: &str,
    ) -> Result<BTreeMap<Uuid, DocumentTerms>, SearchError> {
        let rows = client
            .query_raw(&format!("{LOAD} WHERE c.owner_token = $1"), [owner])
            .await?;
        pin_mut!(rows);
        let mut docs = BTreeMap::new();
        while let Some(r) = rows.try_next().await? {
            push(&mut docs, &r);
        }
        Ok(docs)
    }

    /// Sets all of `owner`'s documents at once (none: `owner` is not held).
    pub fn load_owner(&self, owner: &str, docs: BTreeMap<Uuid, DocumentTerms>) {
        self.install(owner, Self::prepare(docs));
    }

    /// Builds an owner's postings and statistics from their documents
    /// (run it off the async threads for a big owner).
    pub fn prepare(docs: BTreeMap<Uuid, DocumentTerms>) -> PreparedTerms {
        let mut terms = OwnerTerms::default();
        for (id, doc) in docs {
            terms.add(id, doc);
        }
        PreparedTerms(terms)
    }

    /// Sets `owner`'s postings (none: `owner` is not held).
    pub fn install(&self, owner: &str, prepared: PreparedTerms) {
        let terms = prepared.0;
        if let Ok(mut owners) = self.owners.write() {
            if terms.documents.is_empty() {
                owners.remove(owner);
            } else {
                owners.insert(owner.to_owned(), terms);
            }
        }
    }

    /// Reloads one document (its indexed run; gone if it has none).
    pub async fn refresh_document(
        &self,
        client: &impl GenericClient,
        document: Uuid,
    ) -> Result<(), SearchError> {
        let rows = client
            .query(&format!("{LOAD} WHERE c.document_id = $1"), &[&document])
            .await?;
        let mut docs = BTreeMap::new();
        let mut owner = None;
        for r in &rows {
            owner = Some(r.get::<_, String>(2));
            push(&mut docs, r);
        }
        match (owner, docs.remove(&document)) {
            (Some(owner), Some(terms)) => self.replace_document(&owner, document, terms),
            _ => self.remove_document(document),
        }
        Ok(())
    }

    pub fn replace_document(&self, owner: &str, document: Uuid, terms: DocumentTerms) {
        if let Ok(mut owners) = self.owners.write() {
            // A document belongs to one owner; drop it anywhere else first.
            for (name, o) in owners.iter_mut() {
                if name != owner {
                    o.remove(document);
                }
            }
            owners
                .entry(owner.to_owned())
                .or_default()
                .add(document, terms);
        }
    }

    /// Drops everything of `owner` (an erased learner).
    pub fn remove_owner(&self, owner: &str) {
        if let Ok(mut owners) = self.owners.write() {
            owners.remove(owner);
        }
    }

    pub fn remove_document(&self, document: Uuid) {
        if let Ok(mut owners) = self.owners.write() {
            for o in owners.values_mut() {
                o.remove(document);
            }
            owners.retain(|_, o| !o.documents.is_empty());
        }
    }

    /// The best `n` chunk ids of the caller's for the query's `lexemes`
    /// (as `to_tsvector('english', query)` gives them), best first.
    pub fn top(&self, scope: &Scope, lexemes: &[String], n: usize) -> Vec<(String, f64)> {
        let Ok(owners) = self.owners.read() else {
            return Vec::new();
        };
        owners
            .get(&scope.owner_token)
            .map(|o| o.top(scope, lexemes, n, self.params))
            .unwrap_or_default()
    }
}

fn push(docs: &mut BTreeMap<Uuid, DocumentTerms>, r: &tokio_postgres::Row) {
    let doc = docs.entry(r.get(1)).or_insert_with(|| DocumentTerms {
        topic: r.get(3),
        ..Default::default()
    });
    let tsv: Option<&str> = r.get(4);
    let (lexemes, counts) = match tsv.map(parse_tsvector) {
        Some(Some(parsed)) => parsed,
        Some(None) => {
            let chunk: &str = r.get(0);
            tracing::warn!(
                chunk,
                "a chunk's lexemes do not parse; it is found by meaning only"
            );
            Default::default()
        }
        None => Default::default(),
    };
    doc.push_chunk(r.get(0), &lexemes, &counts);
}

/// A `tsvector`'s lexemes and their occurrence counts, from its text form
/// (`'cell':1,4B 'mitochondria':2 'atp'`): each lexeme in single quotes (a
/// quote in it doubled, a backslash doubled), then `:` and its positions
/// (each with an optional weight letter), or no positions (one occurrence).
/// None for text PostgreSQL would not print.
pub fn parse_tsvector(text: &str) -> Option<(Vec<String>, Vec<i32>)> {
    let (mut lexemes, mut counts) = (Vec::new(), Vec::new());
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if_eq(&' ').is_some() {}
        match chars.next() {
            None => break,
            Some('\'') => {}
            Some(_) => return None,
        }
        let mut lexeme = String::new();
        loop {
            match chars.next()? {
                '\'' if chars.next_if_eq(&'\'').is_some() => lexeme.push('\''),
                '\'' => break,
                '\\' => lexeme.push(chars.next()?),
                c => lexeme.push(c),
            }
        }
        let mut count = 1;
        if chars.next_if_eq(&':').is_some() {
            let mut digits = 0;
            while let Some(c) = chars.next_if(|&c| c != ' ') {
                match c {
                    ',' => count += 1,
                    '0'..='9' => digits += 1,
                    'A'..='D' => {}
                    _ => return None,
                }
            }
            if digits == 0 {
                return None;
            }
        }
        lexemes.push(lexeme);
        counts.push(count);
    }
    Some((lexemes, counts))
}
