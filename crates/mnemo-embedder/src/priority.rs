//! CPU priority of model threads: bulk embedding runs *nice*, so the work a
//! person waits for (queries, the API, the express session)
//! gets the cores first when both want them, and bulk gets whatever is left
//! (issue 18: a search waited seconds behind a batch's model calls).
//!
//! Linux keeps a nice value per thread and a new thread starts with its
//! creator's, so a session built on a niced thread has niced intra-op
//! threads, and the thread that calls it is niced too
//! ([`crate::batcher`]'s worker). An unprivileged process may only lower
//! its threads' priority, never raise it back, which is why niced work gets
//! threads of its own and never borrows a shared pool's.

/// Lowers the calling thread's priority by `nice` (0..=19, added to its
/// current nice value, at most 19; 0 does nothing). Relative, so a process
/// started nice stays at least as nice, even where it could raise its
/// priority (root). Failure is logged and ignored: priority is a
/// preference, not a need.
pub fn nice_this_thread(nice: i32) {
    if nice <= 0 {
        return;
    }
    if let Some(current) = this_threads_nice() {
        nice_this_thread_to(current.saturating_add(nice));
    }
}

/// The calling thread's nice value (None where threads have none).
pub fn this_threads_nice() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpriority only reads its integer arguments; on Linux,
        // PRIO_PROCESS with who = 0 is the calling thread. (Its -1 is also
        // a valid nice value, read as such.)
        Some(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) })
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Sets the calling thread's nice value to `target` (at most 19) if that is
/// nicer than it is now; never raises its priority. For threads that must
/// sit at one level whatever the thread that started them (a runtime's
/// threads are started by each other: relative steps would add up).
pub fn nice_this_thread_to(target: i32) {
    #[cfg(target_os = "linux")]
    {
        let target = target.min(19);
        if this_threads_nice().is_some_and(|current| target <= current) {
            return;
        }
        // SAFETY: setpriority only reads its integer arguments; on Linux,
        // PRIO_PROCESS with who = 0 is the calling thread.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, target) };
        if rc != 0 {
            tracing::warn!(nice = target, error = %std::io::Error::last_os_error(), "cannot lower the thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = target;
}

/// Runs `f` on a new thread `nice` lower in priority, so the threads it starts
/// (onnxruntime's intra-op pool, when it builds a session) inherit it.
/// Fails only when no thread can be started.
pub fn on_niced_thread<T: Send>(nice: i32, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    if nice <= 0 {
        return Ok(f());
    }
    std::thread::scope(|s| {
        // Named, as the threads it starts will be (Linux copies the name).
        let niced = std::thread::Builder::new()
            .name("mnemo-embed".into())
            .spawn_scoped(s, || {
                nice_this_thread(nice);
                f()
            });
        match niced?.join() {
            Ok(t) => Ok(t),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        // Field 19 of /proc/thread-self/stat is the nice value.
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("procfs");
        let after_name = &stat[stat.rfind(')').expect("a name") + 2..];
        after_name
            .split(' ')
            .nth(16)
            .and_then(|n| n.parse().ok())
            .expect("a nice value")
    }

    #[test]
    fn a_niced_thread_and_the_threads_it_starts_run_nice() {
        let before = nice_of_this_thread();
        // 19 more: the lowest priority, which any thread may take.
        let (inside, child) = on_niced_thread(19, || {
            let child = std::thread::spawn(nice_of_this_thread)
                .join()
                .expect("joins");
            (nice_of_this_thread(), child)
        })
        .expect("a thread");
        assert_eq!((inside, child), (19, 19));
        // The caller keeps its own priority.
        assert_eq!(nice_of_this_thread(), before);
    }

    #[test]
    fn a_level_is_absolute_so_threads_started_from_each_other_do_not_add_up() {
        let before = nice_of_this_thread();
        let level = (before + 3).min(19);
        let (outer, inner) = std::thread::spawn(move || {
            nice_this_thread_to(level);
            // A thread started from a thread at the level, set to the level
            // again (as a runtime's on_thread_start does), stays there.
            let inner = std::thread::spawn(move || {
                nice_this_thread_to(level);
                nice_of_this_thread()
            })
            .join()
            .expect("joins");
            // Never back up: a lower target leaves the thread where it is.
            nice_this_thread_to(before);
            (nice_of_this_thread(), inner)
        })
        .join()
        .expect("joins");
        assert_eq!((outer, inner), (level, level));
        assert_eq!(this_threads_nice(), Some(before));
    }
}
