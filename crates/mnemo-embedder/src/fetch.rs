//! Fetching a model from the Hugging Face hub into a prepared directory —
//! the path for users with internet.
//!
//! `mnemo model fetch NAME --into DIR` downloads one of fastembed's text
//! models (by `EmbeddingModel` variant name) through fastembed's own hub
//! client and lays its files out as `deploy/model/prepare.sh` does, so every
//! service loads it the same way afterwards (`MNEMO_MODEL_DIR=DIR/<name>`):
//! one model format, one loader, one model id scheme (the file's hash).
//!
//! Only mean-pooled models are accepted: the prepared-directory loader
//! ([`crate::model`]) applies mean pooling, and a CLS-pooled model loaded
//! that way would embed silently wrong.
//!
//! Must not: run without the `hub` feature (the default build has no TLS
//! stack and no hub client); then [`fetch`] says how to get one.

use std::path::{Path, PathBuf};

use crate::error::EmbedError;
use crate::model::{
    CONFIG_FILE, MODEL_FILE, SPECIAL_TOKENS_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE,
};

/// The tokenizer and config files a prepared directory holds besides the
/// graph, copied from the hub snapshot unchanged.
const SIDE_FILES: [&str; 4] = [
    TOKENIZER_FILE,
    CONFIG_FILE,
    SPECIAL_TOKENS_FILE,
    TOKENIZER_CONFIG_FILE,
];

/// Downloads hub model `name` and writes a prepared directory under `into`;
/// returns that directory (`into/<hub repository name>`). Hub files are
/// cached in `into/.hub-cache` so a second fetch downloads nothing.
#[cfg(feature = "hub")]
pub fn fetch(name: &str, into: &Path) -> Result<PathBuf, EmbedError> {
    use fastembed::{Pooling, TextEmbedding, TextInitOptions};

    let model = crate::model::hub_model(name)?;
    if TextEmbedding::get_default_pooling_method(&model) != Some(Pooling::Mean) {
        return Err(EmbedError::Config(format!(
            "{name} is not mean-pooled; mnemo's model loader applies mean pooling \
             (e.g. AllMiniLML6V2, AllMiniLML12V2, AllMpnetBaseV2)"
        )));
    }
    let info = TextEmbedding::get_model_info(&model)
        .map_err(|e| EmbedError::model_with(format!("unknown hub model {name}"), e))?;
    let cache = into.join(".hub-cache");
    // Loading through fastembed downloads the graph and the tokenizer files
    // into the cache (hf-hub layout) and proves the graph loads.
    let options = TextInitOptions::new(model.clone())
        .with_cache_dir(cache.clone())
        .with_environment(crate::runtime::environment()?)
        .with_show_download_progress(true);
    TextEmbedding::try_new(options)
        .map_err(|e| EmbedError::model_with(format!("cannot download hub model {name}"), e))?;
    let snapshot = find_snapshot(&cache, &info.model_code, &info.model_file)?;
    let dir_name = info
        .model_code
        .rsplit('/')
        .next()
        .unwrap_or(info.model_code.as_str());
    let dir = into.join(dir_name);
    lay_out(&snapshot, &info.model_file, &dir)?;
    Ok(dir)
}

#[cfg(not(feature = "hub"))]
pub fn fetch(name: &str, _into: &Path) -> Result<PathBuf, EmbedError> {
    crate::model::hub_model(name)?;
    Err(EmbedError::Config(
        "this build has no hub client: build with `cargo build --release -p mnemo --features hub` \
         (needs internet at run time), or prepare the model offline with deploy/model/prepare.sh"
            .into(),
    ))
}

/// The hf-hub snapshot directory of `repo` in `cache` that holds `model_file`.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
fn find_snapshot(cache: &Path, repo: &str, model_file: &str) -> Result<PathBuf, EmbedError> {
    let snapshots = cache
        .join(format!("models--{}", repo.replace('/', "--")))
        .join("snapshots");
    let entries = std::fs::read_dir(&snapshots).map_err(|e| {
        EmbedError::model_with(format!("no hub snapshot in {}", snapshots.display()), e)
    })?;
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.join(model_file).is_file() && path.join(TOKENIZER_FILE).is_file())
        .ok_or_else(|| {
            EmbedError::model(format!(
                "no snapshot in {} holds {model_file} and {TOKENIZER_FILE}",
                snapshots.display()
            ))
        })
}

/// Copies a snapshot into the prepared layout: the graph as `model.onnx`,
/// the side files as they are (hub snapshots are symlinks into blobs; the
/// copies are plain files).
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
fn lay_out(snapshot: &Path, model_file: &str, dir: &Path) -> Result<(), EmbedError> {
    let io = |what: &str, path: &Path, e: std::io::Error| {
        EmbedError::model_with(format!("cannot {what} {}", path.display()), e)
    };
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let target = dir.join(MODEL_FILE);
    std::fs::copy(snapshot.join(model_file), &target).map_err(|e| io("write", &target, e))?;
    for file in SIDE_FILES {
        let source = snapshot.join(file);
        if !source.is_file() {
            return Err(EmbedError::model(format!(
                "the hub snapshot has no {file} ({})",
                snapshot.display()
            )));
        }
        let target = dir.join(file);
        std::fs::copy(&source, &target).map_err(|e| io("write", &target, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mnemo-fetch-{tag}-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        std::fs::create_dir_all(&dir).ok();
        dir
    }

    fn uuid_like() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    }

    #[test]
    fn a_hub_snapshot_is_laid_out_as_a_prepared_directory() {
        let cache = temp_dir("cache");
        let snapshot = cache
            .join("models--Qdrant--all-MiniLM-L6-v2-onnx")
            .join("snapshots")
            .join("abc123");
        std::fs::create_dir_all(snapshot.join("onnx")).ok();
        std::fs::write(snapshot.join("onnx/model.onnx"), b"graph").ok();
        for file in SIDE_FILES {
            std::fs::write(snapshot.join(file), file.as_bytes()).ok();
        }
        let found = find_snapshot(&cache, "Qdrant/all-MiniLM-L6-v2-onnx", "onnx/model.onnx");
        assert_eq!(found.as_ref().ok(), Some(&snapshot));

        let out = cache.join("out");
        assert!(lay_out(&snapshot, "onnx/model.onnx", &out).is_ok());
        assert_eq!(
            std::fs::read(out.join(MODEL_FILE)).ok(),
            Some(b"graph".to_vec())
        );
        for file in SIDE_FILES {
            assert_eq!(
                std::fs::read(out.join(file)).ok(),
                Some(file.as_bytes().to_vec())
            );
        }
        std::fs::remove_dir_all(&cache).ok();
    }

    #[test]
    fn a_snapshot_without_a_tokenizer_is_refused() {
        let cache = temp_dir("partial");
        let snapshot = cache.join("models--a--b").join("snapshots").join("r");
        std::fs::create_dir_all(&snapshot).ok();
        std::fs::write(snapshot.join("model.onnx"), b"graph").ok();
        let err = find_snapshot(&cache, "a/b", "model.onnx").err();
        assert!(matches!(&err, Some(e) if e.to_string().contains(TOKENIZER_FILE)));
        std::fs::remove_dir_all(&cache).ok();
    }

    #[cfg(not(feature = "hub"))]
    #[test]
    fn without_the_hub_feature_fetch_says_how_to_get_it() {
        let err = fetch("AllMiniLML6V2", Path::new("/nonexistent")).err();
        assert!(matches!(&err, Some(e) if e.to_string().contains("--features hub")));
        let err = fetch("no-such-model", Path::new("/nonexistent")).err();
        assert!(matches!(&err, Some(e) if e.kind() == crate::EmbedErrorKind::Config));
    }
}
