//! Turning a [`ModelSource`] into a fastembed `TextEmbedding`, its id and
//! its dimension.

use std::path::Path;

use fastembed::{
    EmbeddingModel, InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles,
    UserDefinedEmbeddingModel,
};
use sha2::{Digest, Sha256};

use crate::config::{EmbedderConfig, ModelSource};
use crate::error::EmbedError;

/// Hex digits of the model file's SHA-256 in the model id: 48 bits, plenty
/// to tell exports apart, short enough for cache keys and logs.
const ID_HASH_CHARS: usize = 12;
/// onnxruntime session option: may idle intra-op threads spin?
const SPIN_CONFIG_KEY: &str = "session.intra_op.allow_spinning";

/// The files of a prepared export, relative to its directory.
pub const MODEL_FILE: &str = "model.onnx";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const CONFIG_FILE: &str = "config.json";
pub const SPECIAL_TOKENS_FILE: &str = "special_tokens_map.json";
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";

/// A loaded model, before it is wrapped for sharing: one session, or for
/// a model that quantizes per call ([`scales_per_call`]) one session per
/// thread it may use (see [`crate::Embedder`]).
pub(crate) struct Loaded {
    pub sessions: Vec<TextEmbedding>,
    pub model_id: String,
    pub dims: usize,
    /// Every model call must hold one text.
    pub one_per_call: bool,
}

/// Most sessions of a per-call quantized model in one [`crate::Embedder`].
pub const MAX_SESSIONS: usize = 8;

/// How many sessions, each with how many intra-op threads: one session
/// with `config.threads`, or for a per-call quantizer up to
/// [`MAX_SESSIONS`] one-thread sessions (past that the threads are shared
/// out among them; memory: ~23 MB of int8 weights and an arena each).
fn sessions_for(config: &EmbedderConfig, one_per_call: bool) -> (usize, Option<usize>) {
    if !one_per_call {
        return (1, config.threads);
    }
    let threads = config
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
        .max(1);
    let count = threads.min(MAX_SESSIONS);
    (count, Some(threads / count))
}

pub(crate) fn load(config: &EmbedderConfig) -> Result<Loaded, EmbedError> {
    match &config.model {
        ModelSource::LocalDir(dir) => load_local(dir, config),
        ModelSource::Hub(name) => load_hub(name, config),
    }
}

fn load_local(dir: &Path, config: &EmbedderConfig) -> Result<Loaded, EmbedError> {
    if !dir.is_dir() {
        return Err(EmbedError::model(format!(
            "model directory {} does not exist: run deploy/model/prepare.sh and source .mnemo/model.env",
            dir.display()
        )));
    }
    // The runtime first: its errors are the likelier ones on a new machine,
    // and it must exist before fastembed creates a session.
    let environment = crate::runtime::environment()?;
    let onnx = read(&dir.join(MODEL_FILE))?;
    let config_json = read(&dir.join(CONFIG_FILE))?;
    let dims = hidden_size(&config_json, &dir.join(CONFIG_FILE))?;
    let tokenizer_files = TokenizerFiles {
        tokenizer_file: read(&dir.join(TOKENIZER_FILE))?,
        config_file: config_json,
        special_tokens_map_file: read(&dir.join(SPECIAL_TOKENS_FILE))?,
        tokenizer_config_file: read(&dir.join(TOKENIZER_CONFIG_FILE))?,
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let model_id = local_model_id(&name, &onnx);

    let one_per_call = scales_per_call(&onnx) && !config.shared_quantized_calls;
    let (count, threads) = sessions_for(config, one_per_call);

    // The export has no pooling in the graph; fastembed's default for
    // user-defined models is CLS, which is wrong for this model (trained
    // with mean pooling). fastembed L2-normalises after pooling.
    let model = UserDefinedEmbeddingModel::new(onnx, tokenizer_files).with_pooling(Pooling::Mean);
    let mut options = InitOptionsUserDefined::new()
        .with_environment(environment)
        .with_execution_providers(vec![cpu(config)])
        .with_max_length(config.max_length)
        .with_session_config(SPIN_CONFIG_KEY, if config.spin_wait { "1" } else { "0" });
    if let Some(threads) = threads {
        options = options.with_intra_threads(threads);
    }
    // The files are read once; each session gets its own copy of them.
    let sessions = (0..count)
        .map(|_| {
            TextEmbedding::try_new_from_user_defined(model.clone(), options.clone()).map_err(|e| {
                EmbedError::model_with(format!("cannot load the model in {}", dir.display()), e)
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Loaded {
        sessions,
        model_id,
        dims,
        one_per_call,
    })
}

/// Whether the hub model `name` quantizes per call. It is not read before
/// fastembed downloads it: its quantized variants (the names ending in
/// `Q`, e.g. `AllMiniLML6V2Q`) are dynamically quantized exports.
// Only the `hub` build loads hub models; the test below runs in both.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
pub(crate) fn hub_quantizes_per_call(name: &str) -> bool {
    hub_model(name).is_ok_and(|model| format!("{model:?}").ends_with('Q'))
}

/// ONNX operators that quantize a tensor with a scale and zero point
/// computed at run time from the tensor itself: in a batch, from every
/// text in it (and its padding). `quantize_dynamic` writes the first; ORT
/// fuses it into the others.
const PER_CALL_QUANTIZERS: [&str; 3] = [
    "DynamicQuantizeLinear",
    "DynamicQuantizeMatMul",
    "DynamicQuantizeLSTM",
];

/// Whether the graph in `onnx` (a serialized `ModelProto`) has a node of a
/// [`PER_CALL_QUANTIZERS`] type, so a text's vector depends on what else
/// is in its call. Looks for the node's `op_type` as protobuf encodes it
/// (field 4 of `NodeProto`, length-delimited: tag `0x22`, one length byte,
/// the name): a name, input or doc string with those words does not match.
pub(crate) fn scales_per_call(onnx: &[u8]) -> bool {
    PER_CALL_QUANTIZERS.iter().any(|op| {
        let mut field = vec![0x22, op.len() as u8];
        field.extend_from_slice(op.as_bytes());
        onnx.windows(field.len()).any(|w| w == field.as_slice())
    })
}

/// `<directory name>@<sha256 prefix of model.onnx>`: a cache keyed by it
/// misses when the export changes. The tokenizer files are copied unchanged
/// from the pinned package, so the weights are what varies.
fn local_model_id(name: &str, onnx: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(onnx));
    format!("{name}@{}", &digest[..ID_HASH_CHARS])
}

fn hidden_size(config_json: &[u8], path: &Path) -> Result<usize, EmbedError> {
    let value: serde_json::Value = serde_json::from_slice(config_json)
        .map_err(|e| EmbedError::model_with(format!("{} is not JSON", path.display()), e))?;
    value
        .get("hidden_size")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            EmbedError::model(format!(
                "{} has no positive integer hidden_size",
                path.display()
            ))
        })
}

fn read(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path).map_err(|e| {
        EmbedError::model_with(
            format!(
                "cannot read {} (run deploy/model/prepare.sh)",
                path.display()
            ),
            e,
        )
    })
}

/// The CPU execution provider, with or without its memory arena.
fn cpu(config: &EmbedderConfig) -> ort::ep::ExecutionProviderDispatch {
    ort::ep::CPU::default()
        .with_arena_allocator(config.arena)
        .build()
}

/// Resolves a hub model name; shared by both builds so a bad name is a
/// configuration error with or without the `hub` feature.
pub(crate) fn hub_model(name: &str) -> Result<EmbeddingModel, EmbedError> {
    name.trim().parse::<EmbeddingModel>().map_err(|e| {
        EmbedError::Config(format!(
            "{e} (use a fastembed EmbeddingModel name, e.g. AllMiniLML6V2)"
        ))
    })
}

#[cfg(feature = "hub")]
fn load_hub(name: &str, config: &EmbedderConfig) -> Result<Loaded, EmbedError> {
    use fastembed::TextInitOptions;

    let model = hub_model(name)?;
    let info = TextEmbedding::get_model_info(&model)
        .map_err(|e| EmbedError::model_with(format!("unknown hub model {name}"), e))?;
    // The hub path downloads the repository's current files; there is no
    // file hash before the download, so the id names fastembed's model code
    // and the fastembed release that chose it.
    let model_id = format!("{}@fastembed-7.5", info.model_code);
    let dims = info.dim;
    let one_per_call = hub_quantizes_per_call(name) && !config.shared_quantized_calls;
    let (count, threads) = sessions_for(config, one_per_call);
    // Pooling comes from fastembed's per-model defaults (mean for MiniLM).
    let mut options = TextInitOptions::new(model)
        .with_environment(crate::runtime::environment()?)
        .with_execution_providers(vec![cpu(config)])
        .with_max_length(config.max_length)
        .with_show_download_progress(false)
        .with_session_config(SPIN_CONFIG_KEY, if config.spin_wait { "1" } else { "0" });
    if let Some(threads) = threads {
        options = options.with_intra_threads(threads);
    }
    let sessions = (0..count)
        .map(|_| {
            TextEmbedding::try_new(options.clone())
                .map_err(|e| EmbedError::model_with(format!("cannot load hub model {name}"), e))
        })
        .collect::<Result<_, _>>()?;
    Ok(Loaded {
        sessions,
        model_id,
        dims,
        one_per_call,
    })
}

#[cfg(not(feature = "hub"))]
fn load_hub(name: &str, _config: &EmbedderConfig) -> Result<Loaded, EmbedError> {
    hub_model(name)?;
    Err(EmbedError::Config(format!(
        "ModelSource::Hub({name:?}) needs mnemo-embedder's `hub` feature (and internet); \
         this build loads only prepared exports (ModelSource::LocalDir, MNEMO_MODEL_DIR)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EmbedErrorKind;

    #[test]
    fn model_id_changes_with_the_weights() {
        let a = local_model_id("all-MiniLM-L6-v2", b"weights a");
        let b = local_model_id("all-MiniLM-L6-v2", b"weights b");
        assert_ne!(a, b);
        assert!(a.starts_with("all-MiniLM-L6-v2@"));
        assert_eq!(a.len(), "all-MiniLM-L6-v2@".len() + ID_HASH_CHARS);
        // sha256("") = e3b0c44298fc…
        assert_eq!(local_model_id("m", b""), "m@e3b0c44298fc");
    }

    #[test]
    fn per_call_quantizers_are_found_by_op_type_only() {
        // A NodeProto fragment: name (field 3) "q", op_type (field 4).
        let node = |op: &str| {
            let mut b = vec![0x1a, 1, b'q', 0x22, op.len() as u8];
            b.extend_from_slice(op.as_bytes());
            b
        };
        assert!(scales_per_call(&node("DynamicQuantizeLinear")));
        assert!(scales_per_call(&node("DynamicQuantizeMatMul")));
        assert!(!scales_per_call(&node("MatMul")));
        assert!(!scales_per_call(&node("QuantizeLinear")));
        // The words as a node's name (field 3), not its type.
        let mut named = vec![0x1a, 21];
        named.extend_from_slice(b"DynamicQuantizeLinear");
        assert!(!scales_per_call(&named));
    }

    #[test]
    fn quantized_hub_models_count_as_per_call() {
        let hub = hub_quantizes_per_call;
        assert!(hub("AllMiniLML6V2Q"));
        assert!(!hub("AllMiniLML6V2"));
        assert!(!hub("no-such-model"));
    }

    #[test]
    fn hidden_size_is_read_from_config_json() {
        let path = Path::new("config.json");
        assert_eq!(
            hidden_size(br#"{"hidden_size": 384}"#, path).ok(),
            Some(384)
        );
        for bad in [&b"{}"[..], br#"{"hidden_size": 0}"#, b"nope"] {
            let err = hidden_size(bad, path).err().map(|e| e.kind());
            assert_eq!(err, Some(EmbedErrorKind::Model));
        }
    }

    #[test]
    fn hub_names_are_checked() {
        assert_eq!(
            hub_model("allminilml6v2").ok(),
            Some(EmbeddingModel::AllMiniLML6V2)
        );
        let err = hub_model("no-such-model").err().map(|e| e.kind());
        assert_eq!(err, Some(EmbedErrorKind::Config));
    }

    #[cfg(not(feature = "hub"))]
    #[test]
    fn hub_without_the_feature_is_a_config_error() {
        let config = EmbedderConfig::new(ModelSource::Hub("AllMiniLML6V2".into()));
        let err = load(&config).err();
        assert!(
            matches!(&err, Some(e) if e.kind() == EmbedErrorKind::Config && e.to_string().contains("`hub` feature")),
            "{:?}",
            err.map(|e| e.to_string())
        );
    }

    #[test]
    fn missing_directory_is_a_model_error() {
        let config = EmbedderConfig::local("/nonexistent/mnemo-model");
        let err = load(&config).err();
        assert!(
            matches!(&err, Some(e) if e.kind() == EmbedErrorKind::Model && e.to_string().contains("prepare.sh")),
            "{:?}",
            err.map(|e| e.to_string())
        );
    }
}
