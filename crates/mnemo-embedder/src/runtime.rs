//! Loading onnxruntime, once per process, with errors instead of panics.
//!
//! ort (with `load-dynamic`) would otherwise load the library lazily, on the
//! first session, from `ORT_DYLIB_PATH`, and panic if it is missing or too
//! old. So before any session exists we check the path, read the library's
//! version ourselves, and build ort's one-per-process `Environment` from that
//! exact file inside `catch_unwind`. Sessions are then always created with
//! that environment, so fastembed never falls back to its own lazy init.
//!
//! Process-global on purpose, because ort is: the loaded library and the
//! environment can be set once. The first success wins and later calls
//! return it (whatever path they pass); a failure leaves nothing behind, so a
//! later call may try again.

use std::ffi::{CStr, OsString};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use ort::environment::Environment;

use crate::error::EmbedError;

/// The environment variable that names the onnxruntime shared library
/// (ort's own name for it; `.mnemo/model.env` exports it).
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// onnxruntime 1.x minor version ort needs: fastembed 7.5 builds ort with
/// `api-24`, and ort refuses anything older.
pub const MIN_ORT_MINOR: u32 = ort::MINOR_VERSION;

/// What was loaded, for `mnemo doctor` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The library file, canonicalised.
    pub dylib: PathBuf,
    /// onnxruntime's own version string, e.g. `1.32.0`.
    pub version: String,
    /// The C API version ort asks the library for (24).
    pub api_version: u32,
}

struct Runtime {
    info: RuntimeInfo,
    environment: Environment,
    // Our own handle on the library, kept so it is never unloaded between
    // the version check and ort's load (both refer to the same mapping).
    _library: libloading::Library,
}

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// Loads onnxruntime from `ORT_DYLIB_PATH` (once per process) and says what
/// was loaded. This is what `mnemo doctor` calls; it creates no session.
pub fn check_runtime() -> Result<RuntimeInfo, EmbedError> {
    if let Some(info) = loaded() {
        return Ok(info);
    }
    init_runtime(&dylib_path_from(std::env::var_os(DYLIB_ENV))?)
}

/// Loads onnxruntime from `dylib` (once per process). If a runtime is already
/// loaded, returns it, even if it came from another path.
pub fn init_runtime(dylib: &Path) -> Result<RuntimeInfo, EmbedError> {
    // Poisoning only means a panic elsewhere while holding the lock; the
    // slot is either fully written or still empty, so it stays usable.
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(runtime) = slot.as_ref() {
        if runtime.info.dylib != dylib {
            tracing::debug!(
                loaded = %runtime.info.dylib.display(),
                requested = %dylib.display(),
                "onnxruntime is already loaded; keeping it"
            );
        }
        return Ok(runtime.info.clone());
    }
    let runtime = load(dylib)?;
    tracing::info!(
        dylib = %runtime.info.dylib.display(),
        version = %runtime.info.version,
        "loaded onnxruntime"
    );
    let info = runtime.info.clone();
    *slot = Some(runtime);
    Ok(info)
}

/// The loaded runtime's info, if any, without trying to load one.
pub fn loaded() -> Option<RuntimeInfo> {
    let slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    slot.as_ref().map(|runtime| runtime.info.clone())
}

/// The environment every session must be built with: the loaded one, or a
/// fresh load from `ORT_DYLIB_PATH`.
pub(crate) fn environment() -> Result<Environment, EmbedError> {
    check_runtime()?;
    let slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    slot.as_ref()
        .map(|runtime| runtime.environment.clone())
        .ok_or(EmbedError::RuntimeNotConfigured)
}

fn dylib_path_from(value: Option<OsString>) -> Result<PathBuf, EmbedError> {
    match value {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => Err(EmbedError::RuntimeNotConfigured),
    }
}

fn load(dylib: &Path) -> Result<Runtime, EmbedError> {
    // Canonical and absolute: ort resolves relative paths against the
    // executable's directory (and panics if it cannot find that), which is
    // not what a path from the environment means.
    let path = std::fs::canonicalize(dylib).map_err(|_| EmbedError::RuntimeMissing {
        path: dylib.to_path_buf(),
    })?;
    if !path.is_file() {
        return Err(EmbedError::RuntimeMissing { path });
    }
    let load_error = |reason: String| EmbedError::RuntimeLoad {
        path: path.clone(),
        reason,
    };

    let (library, version) = catch_panic(|| read_version(&path))
        .map_err(|panic| load_error(format!("reading the version panicked: {panic}")))??;
    check_version(&path, &version)?;

    let environment = catch_panic(|| {
        ort::init_from(&path)
            .map_err(|e| match e {
                ort::LoadDynamicError::BadVersion { version_str, path } => {
                    too_old(&path, &version_str)
                }
                other => load_error(other.to_string()),
            })?
            .with_name("mnemo")
            .with_telemetry(false)
            .build()
            .map_err(|e| load_error(format!("creating the ort environment failed: {e}")))
    })
    .map_err(|panic| load_error(format!("ort panicked: {panic}")))??;

    Ok(Runtime {
        info: RuntimeInfo {
            dylib: path,
            version,
            api_version: ort::MINOR_VERSION,
        },
        environment,
        _library: library,
    })
}

type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;

/// Opens the library and asks it for its version (`OrtGetApiBase()->
/// GetVersionString()`), which every onnxruntime since 1.0 exports.
fn read_version(path: &Path) -> Result<(libloading::Library, String), EmbedError> {
    let load_error = |reason: String| EmbedError::RuntimeLoad {
        path: path.to_path_buf(),
        reason,
    };
    // SAFETY: opening a shared library runs its initialisers; this is the
    // file ort is about to load anyway, and the user named it as onnxruntime.
    let library =
        unsafe { libloading::Library::new(path) }.map_err(|e| load_error(e.to_string()))?;
    // SAFETY: `OrtGetApiBase` has this signature in every onnxruntime
    // release (onnxruntime_c_api.h); a library without it is refused.
    let get_api_base = unsafe { library.get::<GetApiBase>(b"OrtGetApiBase") }
        .map_err(|_| load_error("it does not export OrtGetApiBase (is it onnxruntime?)".into()))?;
    // SAFETY: the call takes no arguments and returns a pointer to a static
    // struct (or null, checked).
    let base = unsafe { get_api_base() };
    if base.is_null() {
        return Err(load_error("OrtGetApiBase returned null".into()));
    }
    // SAFETY: `base` is non-null and points to the library's static
    // OrtApiBase; GetVersionString returns a static NUL-terminated string.
    let version = unsafe {
        let raw = ((*base).GetVersionString)();
        if raw.is_null() {
            return Err(load_error("GetVersionString returned null".into()));
        }
        CStr::from_ptr(raw).to_string_lossy().into_owned()
    };
    Ok((library, version))
}

fn check_version(path: &Path, version: &str) -> Result<(), EmbedError> {
    match parse_version(version) {
        Some((major, minor)) if major > 1 || (major == 1 && minor >= MIN_ORT_MINOR) => Ok(()),
        Some(_) => Err(too_old(path, version)),
        None => Err(EmbedError::RuntimeLoad {
            path: path.to_path_buf(),
            reason: format!("unrecognised version string {version:?}"),
        }),
    }
}

fn too_old(path: &Path, version: &str) -> EmbedError {
    EmbedError::RuntimeTooOld {
        path: path.to_path_buf(),
        version: version.to_string(),
        required: format!("1.{MIN_ORT_MINOR}"),
    }
}

/// `"1.32.0"` → `(1, 32)`.
fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Runs `f`, turning a panic into its message. ort asserts and `expect`s
/// while loading (null API pointers, unsupported API versions).
fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    // AssertUnwindSafe: on a panic nothing `f` touched is used again; the
    // global slot is only written after success.
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EmbedErrorKind;

    #[test]
    fn unset_or_empty_path_is_not_configured() {
        for value in [None, Some(OsString::new())] {
            let err = dylib_path_from(value).err();
            assert!(matches!(err, Some(EmbedError::RuntimeNotConfigured)));
        }
        assert_eq!(
            dylib_path_from(Some("/x/libonnxruntime.so".into())).ok(),
            Some(PathBuf::from("/x/libonnxruntime.so"))
        );
    }

    #[test]
    fn versions() {
        assert_eq!(MIN_ORT_MINOR, 24);
        assert_eq!(parse_version("1.32.0"), Some((1, 32)));
        assert_eq!(parse_version("1.24"), Some((1, 24)));
        assert_eq!(parse_version("x.1"), None);
        assert_eq!(parse_version(""), None);

        let path = Path::new("/lib/libonnxruntime.so");
        assert!(check_version(path, "1.24.0").is_ok());
        assert!(check_version(path, "1.32.0").is_ok());
        assert!(check_version(path, "2.0.0").is_ok());
        let old = check_version(path, "1.16.3").err();
        assert_eq!(
            old.as_ref().map(|e| e
                .to_string()
                .starts_with("onnxruntime 1.16.3 is too old, need >= 1.24")),
            Some(true),
            "{old:?}"
        );
        let odd = check_version(path, "garbage").err().map(|e| e.kind());
        assert_eq!(odd, Some(EmbedErrorKind::Runtime));
    }

    #[test]
    fn panics_become_messages() {
        assert_eq!(catch_panic(|| 7), Ok(7));
        // resume_unwind unwinds like a panic but skips the panic hook, so
        // the test output stays quiet.
        let caught =
            catch_panic(|| -> u8 { panic::resume_unwind(Box::new(format!("boom {}", 1))) });
        assert_eq!(caught, Err("boom 1".to_string()));
    }
}
