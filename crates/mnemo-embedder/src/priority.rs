//! CPU priority of model threads: bulk embedding runs *nice*, so the work a
//! person waits for (queries, the API, the express session, the projector)
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
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpriority and setpriority only read their integer
        // arguments; on Linux, PRIO_PROCESS with who = 0 is the calling
        // thread. (getpriority's -1 is also a valid value; read as such, the
        // result is still never below the current value's -1 + nice.)
        let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let target = current.saturating_add(nice).min(19);
        if target <= current {
            return;
        }
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, target) };
        if rc != 0 {
            tracing::warn!(nice = target, error = %std::io::Error::last_os_error(), "cannot lower the model thread's priority");
        }
    }
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
}
