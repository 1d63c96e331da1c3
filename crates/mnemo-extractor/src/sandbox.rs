//! Child processes that read untrusted PDFs, isolated
//! ([`crate::isolation`]: bubblewrap's namespaces and minimal view where it
//! works, an empty environment and `nobody` always) and under limits:
//! `prlimit --as` (address space), `--cpu` (CPU seconds, which also stops a
//! child the parent could no longer kill), `--fsize`, `--nproc`; a cap on
//! the bytes read from its stdout (streamed, never held unbounded), and its
//! stderr kept in part — the head and the tail — so a panic message or a
//! tool's error line can be told to a person.

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout};
use tokio::task::JoinHandle;

use crate::isolation::Isolation;
use crate::ExtractorConfig;

/// Bytes of stderr kept from the start and from the end.
const STDERR_KEEP: usize = 4 * 1024;
/// Characters of stderr quoted in a failure reason.
const EXCERPT_CHARS: usize = 300;

/// A running sandboxed child.
pub struct Sandboxed {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: JoinHandle<Vec<u8>>,
    /// Bytes of stdout still allowed.
    budget: u64,
    limit: u64,
    /// Started through bubblewrap, which waits for the child instead of
    /// becoming it: a child killed by signal N shows as bubblewrap's exit
    /// status 128 + N.
    wrapped: bool,
}

/// Why reading a child's output stopped.
#[derive(Debug)]
pub enum ReadError {
    /// More than the configured number of bytes.
    TooLarge {
        limit_bytes: u64,
    },
    Io(std::io::Error),
}

impl Sandboxed {
    /// Starts `program args…` isolated as `config.sandbox` says, with the
    /// config's limits; `reads` are the only files it may read (the PDF).
    pub fn spawn(
        config: &ExtractorConfig,
        program: &Path,
        args: &[&std::ffi::OsStr],
        reads: &[&Path],
    ) -> std::io::Result<Self> {
        let isolation = Isolation::resolve(config.sandbox).map_err(std::io::Error::other)?;
        let wrapped = matches!(isolation, Isolation::Bubblewrap { .. });
        let mut child = crate::isolation::command(&isolation, config, program, args, reads)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(std::io::Error::other("the child has no pipes"));
        };
        Ok(Self {
            child,
            stdout: BufReader::new(stdout),
            stderr: tokio::spawn(keep_head_and_tail(stderr)),
            budget: config.max_output_bytes,
            limit: config.max_output_bytes,
            wrapped,
        })
    }

    /// The next line of stdout (without its newline), `None` at the end.
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        let mut line = Vec::new();
        // One byte over the budget tells "too large" from "exactly full".
        let n = (&mut self.stdout)
            .take(self.budget + 1)
            .read_until(b'\n', &mut line)
            .await
            .map_err(ReadError::Io)?;
        self.spend(n)?;
        if n == 0 {
            return Ok(None);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        Ok(Some(line))
    }

    /// All of stdout.
    pub async fn read_to_end(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        let n = (&mut self.stdout)
            .take(self.budget + 1)
            .read_to_end(&mut out)
            .await
            .map_err(ReadError::Io)?;
        self.spend(n)?;
        Ok(out)
    }

    fn spend(&mut self, n: usize) -> Result<(), ReadError> {
        let n = n as u64;
        if n > self.budget {
            return Err(ReadError::TooLarge {
                limit_bytes: self.limit,
            });
        }
        self.budget -= n;
        Ok(())
    }

    /// Waits for the child to exit; returns its status and an excerpt of
    /// its stderr.
    pub async fn wait(mut self) -> std::io::Result<(ExitStatus, String)> {
        let status = self.child.wait().await?;
        let status = if self.wrapped {
            unwrap_signal(status)
        } else {
            status
        };
        Ok((status, excerpt(&self.stderr.await.unwrap_or_default())))
    }

    /// Kills the child and returns the excerpt of what it said before.
    pub async fn kill(mut self) -> String {
        let _ = self.child.kill().await;
        // A grandchild could hold the pipe open: do not wait for it long.
        match tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.stderr).await {
            Ok(Ok(bytes)) => excerpt(&bytes),
            _ => {
                self.stderr.abort();
                String::new()
            }
        }
    }
}

/// Reads `r` to its end, keeping the first and the last [`STDERR_KEEP`]
/// bytes (a panic message comes last after pages of warnings).
async fn keep_head_and_tail(r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut r = BufReader::new(r);
    let mut head = Vec::with_capacity(STDERR_KEEP);
    let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
    let mut skipped = false;
    loop {
        let chunk = match r.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(c) => c.to_vec(),
        };
        r.consume(chunk.len());
        let room = STDERR_KEEP - head.len();
        let (into_head, rest) = chunk.split_at(room.min(chunk.len()));
        head.extend_from_slice(into_head);
        tail.extend(rest);
        if tail.len() > STDERR_KEEP {
            tail.drain(..tail.len() - STDERR_KEEP);
            skipped = true;
        }
    }
    if skipped {
        head.extend_from_slice(b"\n[...]\n");
    }
    head.extend(tail);
    head
}

/// The lines of `stderr` that say what went wrong, shortened for a reason:
/// a Rust panic (its "panicked at" line and message), a fatal runtime
/// error, an allocation failure, a tool's "Error" line; else the first line.
pub fn excerpt(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let pick = if let Some(i) = lines.iter().position(|l| l.contains("panicked at")) {
        lines[i..]
            .iter()
            .take(2)
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    } else if let Some(l) = lines.iter().find(|l| {
        l.contains("overflowed its stack")
            || l.contains("memory allocation of")
            || l.contains("fatal runtime error")
            || l.contains("Error")
    }) {
        (*l).to_owned()
    } else {
        lines.first().map(|l| (*l).to_owned()).unwrap_or_default()
    };
    let mut out: String = pick.chars().take(EXCERPT_CHARS).collect();
    if pick.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

/// The status of the child inside bubblewrap: its exit status 128 + N is
/// the child's death by signal N (a crash must read as a crash).
fn unwrap_signal(status: ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match status.code() {
        // A raw wait status of N (N < 128) is "terminated by signal N".
        Some(code @ 129..=192) => ExitStatus::from_raw(code - 128),
        _ => status,
    }
}

/// How a child ended, for a reason: `signal 6 (abort)`, `exit status 101`.
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.signal(), status.code()) {
        (Some(sig), _) => {
            let name = match sig {
                6 => " (abort)",
                9 => " (killed)",
                11 => " (segmentation fault)",
                24 => " (CPU time limit)",
                _ => "",
            };
            format!("signal {sig}{name}")
        }
        (None, Some(code)) => format!("exit status {code}"),
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_quoted_with_its_message() {
        let stderr = b"Syntax Warning: junk\n\nthread 'pdf' panicked at src/x.rs:3:5:\nindex out of bounds\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            excerpt(stderr),
            "thread 'pdf' panicked at src/x.rs:3:5: index out of bounds"
        );
        assert_eq!(
            excerpt(b"Syntax Warning: a\nSyntax Error: Couldn't find trailer\n"),
            "Syntax Error: Couldn't find trailer"
        );
        assert_eq!(excerpt(&[b'x'; 1000]).chars().count(), EXCERPT_CHARS + 1);
    }

    #[test]
    fn a_signal_through_bubblewrap_reads_as_the_signal() {
        use std::os::unix::process::ExitStatusExt;
        let bwrap_said = ExitStatus::from_raw(134 << 8); // exit status 134
        assert_eq!(describe(unwrap_signal(bwrap_said)), "signal 6 (abort)");
        let plain = ExitStatus::from_raw(1 << 8);
        assert_eq!(describe(unwrap_signal(plain)), "exit status 1");
    }

    #[tokio::test]
    async fn stderr_keeps_its_head_and_tail() {
        let mut noise = vec![b'a'; 3 * STDERR_KEEP];
        noise.extend_from_slice(b"\nthe end\n");
        let kept = keep_head_and_tail(noise.as_slice()).await;
        assert!(kept.len() <= 2 * STDERR_KEEP + 16);
        assert!(kept.starts_with(b"aaaa"));
        assert!(kept.ends_with(b"the end\n"));
    }
}
