//! onnxruntime that is missing or not a library gives typed errors, not a
//! panic, and a later good path still loads.
//!
//! Its own test binary with a single test: loading onnxruntime is
//! process-global and the first success sticks, so the failures must be
//! seen before any successful load, in a fixed order.

mod common;

use mnemo_embedder::{check_runtime, init_runtime, EmbedError, EmbedErrorKind};

#[test]
fn bad_runtime_paths_are_typed_errors_until_a_good_one_loads() {
    let prepared = common::prepared();

    // ORT_DYLIB_PATH naming a missing file, through the doctor entry point.
    // The only test in this binary, so nothing else reads the variable.
    let missing = "/nonexistent/mnemo/libonnxruntime.so.1.32.0";
    std::env::set_var("ORT_DYLIB_PATH", missing);
    let err = check_runtime().expect_err("a missing library must not load");
    assert_eq!(err.kind(), EmbedErrorKind::Runtime);
    assert!(matches!(err, EmbedError::RuntimeMissing { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot load onnxruntime from {missing}: file does not exist \
             (run deploy/model/prepare.sh and source .mnemo/model.env)"
        )
    );

    std::env::set_var("ORT_DYLIB_PATH", "");
    let err = check_runtime().expect_err("an empty path must not load");
    assert_eq!(
        err.to_string(),
        "ORT_DYLIB_PATH is not set: run deploy/model/prepare.sh and source .mnemo/model.env"
    );

    // A file that exists but is not a shared library.
    let not_a_library = prepared.model_dir.join("config.json");
    let err = init_runtime(&not_a_library).expect_err("JSON is not a library");
    assert_eq!(err.kind(), EmbedErrorKind::Runtime);
    assert!(
        err.to_string().starts_with("cannot load onnxruntime from "),
        "{err}"
    );

    // Failures leave nothing behind: the real library still loads.
    std::env::set_var("ORT_DYLIB_PATH", &prepared.dylib);
    let info = check_runtime().unwrap_or_else(|e| panic!("{}", e.report()));
    assert!(info.version.starts_with("1."), "{info:?}");
    assert_eq!(info.api_version, 24);

    // And once loaded it stays loaded, whatever is asked later.
    std::env::set_var("ORT_DYLIB_PATH", missing);
    assert_eq!(check_runtime().ok(), Some(info));
}
