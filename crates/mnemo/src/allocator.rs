//! The binaries' global allocator: mimalloc, tuned at start (decision 017).
//! The service libraries choose no allocator; this package's library is
//! linked only by its binaries (`mnemo`, `mnemo-bench`), so declaring it
//! here chooses it for both, and for nothing else.

/// mimalloc instead of the system allocator: replay and rebuild decode
/// and free small allocations on several threads, where glibc's malloc was
/// the top symbol of a profile (decision 017).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`, which `libmimalloc-sys` names no
/// constant for: in the vendored v2 header it is the option right after
/// `mi_option_eager_commit_delay` (a test pins the vendored version).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t =
    libmimalloc_sys::mi_option_eager_commit_delay + 1;

/// Memory freed is handed back to the OS after a second, not mimalloc's
/// 10 ms: a rebuild frees and reallocates each batch's ~100 MB, and giving
/// it back at once made the kernel fault in and zero fresh pages for every
/// batch (a tenth of this process's CPU in a rebuild). `MIMALLOC_PURGE_DELAY`
/// in the environment still wins.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set stores an integer option (an atomic write
        // in mimalloc); the option id is checked by the test below.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1_000) };
    }
}

#[cfg(test)]
mod tests {
    /// The purge-delay option id was read off this mimalloc's header: a
    /// new vendored version must be checked again.
    #[test]
    fn the_allocator_option_ids_are_those_of_the_vendored_mimalloc() {
        // SAFETY: plain getters.
        let version = unsafe { libmimalloc_sys::mi_version() };
        assert_eq!(
            version, 20302,
            "mimalloc {version}: re-check MI_OPTION_PURGE_DELAY"
        );
        super::tune();
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert!(
            delay == 1_000 || std::env::var_os("MIMALLOC_PURGE_DELAY").is_some(),
            "{delay}"
        );
    }
}
