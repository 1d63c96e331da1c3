//! Finding the prepared model and onnxruntime for the integration tests.
//!
//! Order: `MNEMO_MODEL_DIR` / `ORT_DYLIB_PATH` from the environment, then
//! `<repo>/.mnemo/model.env`, then the default locations prepare.sh uses.
//! The tests name the model they mean: the fp32 export (the numpy
//! reference's twin) and its int8 copy sit side by side in the folder
//! prepare.sh fills, whichever of them `MNEMO_MODEL_DIR` serves.
//! Nothing found is a failure, not a skip: a skipped embedding test would
//! pass CI while proving nothing.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};

pub struct Prepared {
    /// The fp32 export (`all-MiniLM-L6-v2`).
    pub model_dir: PathBuf,
    /// Its dynamically quantized int8 copy (`all-MiniLM-L6-v2-int8`).
    pub int8_dir: PathBuf,
    pub dylib: PathBuf,
}

pub const FP32: &str = "all-MiniLM-L6-v2";
pub const INT8: &str = "all-MiniLM-L6-v2-int8";

const HOW: &str = "run deploy/model/prepare.sh (then `source .mnemo/model.env`) before these tests";

pub fn repo_root() -> PathBuf {
    // crates/mnemo-embedder → the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn prepared() -> Prepared {
    let state = repo_root().join(".mnemo");
    let from_file = read_model_env(&state.join("model.env"));
    let pick = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                from_file
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| PathBuf::from(v))
            })
    };

    let models = pick("MNEMO_MODEL_DIR")
        .and_then(|dir| dir.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| state.join("models"));
    let (model_dir, int8_dir) = (models.join(FP32), models.join(INT8));
    for dir in [&model_dir, &int8_dir] {
        assert!(
            dir.join("model.onnx").is_file(),
            "no prepared model at {}: {HOW}",
            dir.display()
        );
    }

    let dylib = pick("ORT_DYLIB_PATH")
        .or_else(|| find_venv_dylib(&state.join("venv")))
        .unwrap_or_else(|| {
            panic!(
                "no onnxruntime library (ORT_DYLIB_PATH) under {}: {HOW}",
                state.display()
            )
        });
    assert!(
        dylib.is_file(),
        "ORT_DYLIB_PATH {} does not exist: {HOW}",
        dylib.display()
    );
    Prepared {
        model_dir,
        int8_dir,
        dylib,
    }
}

/// `export KEY=VALUE` lines, as prepare.sh writes them.
fn read_model_env(path: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
            Some((key.trim().to_string(), value.to_string()))
        })
        .collect()
}

/// `venv/lib/python*/site-packages/onnxruntime/capi/libonnxruntime.so.*`.
fn find_venv_dylib(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut found: Vec<PathBuf> = lib
        .flatten()
        .map(|python| python.path().join("site-packages/onnxruntime/capi"))
        .filter_map(|capi| std::fs::read_dir(capi).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so."))
        })
        .collect();
    // The fully versioned name sorts last (libonnxruntime.so.1.32.0).
    found.sort();
    found.pop()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}
