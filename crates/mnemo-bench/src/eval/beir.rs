//! Reading a BEIR dataset: `corpus.jsonl` (`_id`, `title`, `text`),
//! `queries.jsonl` (`_id`, `text`) and a qrels TSV (`query-id corpus-id score`,
//! with a header line).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::metrics::Judged;

/// One corpus document.
pub struct Doc {
    pub id: String,
    pub title: String,
    pub text: String,
}

/// One query.
pub struct Query {
    pub id: String,
    pub text: String,
}

fn jsonl(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a JSON object", path.display(), i + 1))
        })
        .collect()
}

fn field(v: &serde_json::Value, k: &str) -> String {
    match v.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

pub fn corpus(path: &Path) -> Result<Vec<Doc>> {
    let docs: Vec<Doc> = jsonl(path)?
        .iter()
        .map(|v| Doc {
            id: field(v, "_id"),
            title: field(v, "title"),
            text: field(v, "text"),
        })
        .collect();
    if let Some(d) = docs.iter().find(|d| d.id.is_empty()) {
        bail!(
            "{}: a document has no _id (title {:?})",
            path.display(),
            d.title
        );
    }
    Ok(docs)
}

pub fn queries(path: &Path) -> Result<Vec<Query>> {
    Ok(jsonl(path)?
        .iter()
        .map(|v| Query {
            id: field(v, "_id"),
            text: field(v, "text"),
        })
        .collect())
}

/// Query id → judged documents.
pub fn qrels(path: &Path) -> Result<HashMap<String, Judged>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out: HashMap<String, Judged> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 3 || (i == 0 && cols[0] == "query-id") {
            continue;
        }
        let grade: u32 = cols[2].trim().parse().with_context(|| {
            format!(
                "{}:{}: score {:?} is not a whole number",
                path.display(),
                i + 1,
                cols[2]
            )
        })?;
        out.entry(cols[0].to_owned())
            .or_default()
            .insert(cols[1].to_owned(), grade);
    }
    if out.is_empty() {
        bail!("{} has no judgments", path.display());
    }
    Ok(out)
}
