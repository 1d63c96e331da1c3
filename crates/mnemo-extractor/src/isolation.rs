//! How the PDF readers (the pdf-rs worker, `pdfinfo`, `pdftotext`) are
//! isolated from the service that runs them. A parser exploit must get
//! nothing worth having: no secret, no network, nothing to write to.
//!
//! Always, whatever is installed:
//! - an empty environment (only `PATH`): the service's own
//!   (`MNEMO_JWT_SECRET`, database URLs, credentials) never reaches a child;
//! - `prlimit`: address space, CPU seconds, file size (`RLIMIT_FSIZE`),
//!   processes;
//! - started as root, the child runs as `nobody` (`setpriv`, no new
//!   privileges, no capabilities).
//!
//! With bubblewrap (`bwrap`, Debian's `bubblewrap`, installed by
//! `deploy/local/bootstrap.sh`), also:
//! - new network, PID, IPC, UTS and mount namespaces: no socket reaches
//!   anything, no other process is visible (nor its `/proc/PID/environ`);
//! - a minimal read-only view of the filesystem: the system's programs and
//!   libraries, the one PDF being read, a private empty `/tmp` as the only
//!   writable place — no home directory, no secret file, no spool of other
//!   documents;
//! - every capability dropped; the child dies with the service.
//!
//! `--extract-sandbox auto` (the default) uses bubblewrap when it works on
//! this machine and says so at start and in `mnemo doctor`; `bubblewrap`
//! refuses to start without it; `limits` never uses it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tokio::process::Command;

use crate::ExtractorConfig;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SandboxMode {
    /// Bubblewrap when it works here, else limits only (with a warning).
    #[default]
    Auto,
    /// Bubblewrap, or the extractor does not start.
    Bubblewrap,
    /// Environment, limits and an unprivileged user only.
    Limits,
}

/// The isolation in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces and a minimal read-only filesystem, through this `bwrap`.
    Bubblewrap { bwrap: PathBuf },
    /// An empty environment, resource limits and (as root) `nobody`; why
    /// bubblewrap is not used.
    LimitsOnly { why: String },
}

/// The unprivileged user a child started by root runs as (`nobody`).
pub const SANDBOX_UID: u32 = 65534;
const SANDBOX_GID: u32 = 65534;
/// Processes a child may have (its own threads included).
const MAX_PROCESSES: u32 = 256;
/// System directories the child sees (read-only), where they exist.
const SYSTEM_DIRS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/etc/alternatives",
];
/// System files the child sees (read-only): the dynamic linker's cache,
/// poppler's font configuration.
const SYSTEM_FILES: &[&str] = &["/etc/ld.so.cache", "/etc/fonts"];

impl Isolation {
    /// The isolation `mode` gives on this machine (probed once: whether
    /// bubblewrap can make its namespaces here).
    pub fn resolve(mode: SandboxMode) -> Result<Self, String> {
        match mode {
            SandboxMode::Limits => Ok(Self::LimitsOnly {
                why: "--extract-sandbox limits".into(),
            }),
            SandboxMode::Auto => Ok(probe()),
            SandboxMode::Bubblewrap => match probe() {
                found @ Self::Bubblewrap { .. } => Ok(found),
                Self::LimitsOnly { why } => Err(format!(
                    "--extract-sandbox bubblewrap, but {why} (install Debian's bubblewrap: deploy/local/bootstrap.sh)"
                )),
            },
        }
    }

    /// One line for logs and `mnemo doctor`.
    pub fn describe(&self) -> String {
        let user = if is_root() {
            "as nobody"
        } else {
            "as the service's user"
        };
        match self {
            Self::Bubblewrap { .. } => format!(
                "bubblewrap: no network, own PID namespace, read-only system view with a private /tmp, no capabilities, empty environment, resource limits, {user}"
            ),
            Self::LimitsOnly { why } => format!(
                "limits only ({why}): empty environment, resource limits, {user}; the child shares the network and sees the filesystem"
            ),
        }
    }
}

/// Whether this process runs as root: read once (every reader's spawn asks).
fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        // The effective uid, as /proc/self/status says it (no libc call needed).
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
            })
            .unwrap_or(false)
    })
}

/// Whether bubblewrap runs here (installed, and allowed to make its
/// namespaces): it must run `true` in the very sandbox the readers get.
fn probe() -> Isolation {
    static PROBED: OnceLock<Isolation> = OnceLock::new();
    PROBED
        .get_or_init(|| {
            let Some(bwrap) = find_in_path("bwrap") else {
                return Isolation::LimitsOnly {
                    why: "bubblewrap (bwrap) is not installed".into(),
                };
            };
            let mut probe = std::process::Command::new(&bwrap);
            probe.args(bwrap_args(&[], is_root()));
            probe.arg("--").arg("true");
            probe.env_clear();
            probe.stdin(std::process::Stdio::null());
            probe.stdout(std::process::Stdio::null());
            probe.stderr(std::process::Stdio::piped());
            match probe.output() {
                Ok(out) if out.status.success() => Isolation::Bubblewrap { bwrap },
                Ok(out) => Isolation::LimitsOnly {
                    why: format!(
                        "bubblewrap cannot make its namespaces here: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                },
                Err(e) => Isolation::LimitsOnly {
                    why: format!("bubblewrap does not run: {e}"),
                },
            }
        })
        .clone()
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// bubblewrap's arguments up to the program: namespaces, the minimal view
/// (system directories, then `reads` — the files the child may read), a
/// private `/tmp`. Started by root, no user namespace (the child must
/// become the real `nobody`, which `setpriv` does after bubblewrap, with
/// the capabilities it needs for that); otherwise a user namespace, which
/// is what lets an unprivileged user make the others, and no capabilities.
fn bwrap_args(reads: &[&Path], root: bool) -> Vec<std::ffi::OsString> {
    let namespaces: &[&str] = if root {
        &[
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]
    } else {
        &["--unshare-all", "--cap-drop", "ALL"]
    };
    let mut a: Vec<std::ffi::OsString> = namespaces
        .iter()
        .chain(&[
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
        ])
        .map(Into::into)
        .collect();
    for dir in SYSTEM_DIRS.iter().chain(SYSTEM_FILES) {
        a.extend(["--ro-bind-try".into(), (*dir).into(), (*dir).into()]);
    }
    a.extend(
        [
            "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp", "--chdir",
            "/tmp",
        ]
        .iter()
        .map(Into::into),
    );
    // After the private /tmp: a file under the host's /tmp (the spool)
    // appears at its own path on top of it. Its directories are made first,
    // traversable (bubblewrap would make them 0700 root, closed to
    // `nobody`); those already in the view are left as they are.
    let mut made = std::collections::BTreeSet::new();
    for path in reads {
        if in_system_view(path) {
            continue;
        }
        let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
        ancestors.reverse();
        for dir in ancestors {
            if dir == Path::new("/") || dir == Path::new("/tmp") || in_system_view(dir) {
                continue;
            }
            if made.insert(dir.to_path_buf()) {
                a.extend([
                    "--perms".into(),
                    "0755".into(),
                    "--dir".into(),
                    dir.as_os_str().to_owned(),
                ]);
            }
        }
        a.extend([
            "--ro-bind".into(),
            path.as_os_str().to_owned(),
            path.as_os_str().to_owned(),
        ]);
    }
    a
}

/// Whether `path` is inside a system directory the view already holds.
fn in_system_view(path: &Path) -> bool {
    SYSTEM_DIRS.iter().any(|d| path.starts_with(d))
}

/// The command that runs `program args` isolated as `isolation` says,
/// with `config`'s limits; `reads` are the files it may read (the PDF; the
/// program itself when it is not a system program).
pub fn command(
    isolation: &Isolation,
    config: &ExtractorConfig,
    program: &Path,
    args: &[&std::ffi::OsStr],
    reads: &[&Path],
) -> Command {
    let mut cmd = match isolation {
        Isolation::Bubblewrap { bwrap } => {
            let mut c = Command::new(bwrap);
            let mut visible: Vec<&Path> = reads.to_vec();
            if program.is_absolute() {
                visible.push(program);
            }
            c.args(bwrap_args(&visible, is_root()));
            c.arg("--");
            c
        }
        Isolation::LimitsOnly { .. } => Command::new("/usr/bin/env"),
    };
    // Outside bubblewrap (which clears it itself), `env -i` clears the
    // environment: nothing of the service's reaches the reader.
    if matches!(isolation, Isolation::LimitsOnly { .. }) {
        cmd.args(["-i", "PATH=/usr/bin:/bin"]);
    }
    if is_root() {
        cmd.args([
            "setpriv",
            &format!("--reuid={SANDBOX_UID}"),
            &format!("--regid={SANDBOX_GID}"),
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]);
    }
    cmd.arg("prlimit")
        .arg(format!("--as={}", config.memory_limit_bytes))
        .arg(format!("--cpu={}", config.cpu_limit.as_secs().max(1)))
        // Nothing a reader writes (its own temp files) may grow past what
        // the extractor would read back from it.
        .arg(format!("--fsize={}", config.max_output_bytes))
        .arg(format!("--nproc={MAX_PROCESSES}"))
        .arg("--")
        .arg(program)
        .args(args);
    // The parent's environment never reaches the wrapper either.
    cmd.env_clear();
    cmd.env("PATH", "/usr/bin:/bin");
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_mode_never_uses_bubblewrap() {
        let iso = Isolation::resolve(SandboxMode::Limits);
        assert!(matches!(iso, Ok(Isolation::LimitsOnly { .. })), "{iso:?}");
    }

    #[test]
    fn the_view_binds_what_the_child_reads_after_its_private_tmp() {
        let args: Vec<String> = bwrap_args(&[Path::new("/tmp/spool/doc.pdf")], false)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let tmpfs = args.iter().position(|a| a == "--tmpfs");
        let pdf = args.iter().position(|a| a == "/tmp/spool/doc.pdf");
        assert!(tmpfs < pdf, "{args:?}");
        for must in [
            "--unshare-all",
            "--cap-drop",
            "--clearenv",
            "--die-with-parent",
        ] {
            assert!(args.iter().any(|a| a == must), "{must}: {args:?}");
        }
        assert!(!args
            .iter()
            .any(|a| a == "/home" || a == "/root" || a == "/var"));
    }
}
