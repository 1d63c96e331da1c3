//! The fallback: PDF text through poppler's `pdfinfo` and `pdftotext`, each
//! run in the [`crate::sandbox`] (address space, CPU seconds, capped output)
//! under a wall-clock timeout, so a file that crashes, loops or eats memory
//! costs one child, not the service.

use std::path::Path;

use crate::sandbox::{self, ReadError, Sandboxed};
use crate::{ExtractError, ExtractorConfig};

/// Pages read by `pdftotext`, and whether it complained of damage while
/// reading them (it reads what it can and exits 0).
pub struct PagesRead {
    pub pages: Vec<String>,
    pub complained: bool,
}

/// A PDF written to a private temporary file for the tools to read (they
/// need a path, not a pipe: they seek). Deleted on drop.
pub struct PdfFile {
    file: tempfile::NamedTempFile,
}

/// Runs `tool args…` sandboxed; returns stdout and what it said on stderr
/// (head and tail), or the reason it failed.
async fn run_tool(
    config: &ExtractorConfig,
    tool: &Path,
    args: &[&str],
    reads: &Path,
) -> Result<(Vec<u8>, String), ExtractError> {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    let mut child = Sandboxed::spawn(config, tool, &args, &[reads]).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ExtractError::ToolMissing {
                tool: "prlimit".into(),
            }
        } else {
            ExtractError::Io(e.to_string())
        }
    })?;
    let stdout = match tokio::time::timeout(config.step_timeout, child.read_to_end()).await {
        Ok(Ok(out)) => out,
        Ok(Err(ReadError::TooLarge { limit_bytes })) => {
            child.kill().await;
            return Err(ExtractError::TooLarge {
                limit_mib: limit_bytes / (1024 * 1024),
            });
        }
        Ok(Err(ReadError::Io(e))) => {
            child.kill().await;
            return Err(ExtractError::Io(e.to_string()));
        }
        Err(_) => {
            child.kill().await;
            return Err(ExtractError::TimedOut(config.step_timeout.as_secs()));
        }
    };
    let (status, said) = match tokio::time::timeout(config.step_timeout, child.wait()).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return Err(ExtractError::Io(e.to_string())),
        Err(_) => return Err(ExtractError::TimedOut(config.step_timeout.as_secs())),
    };
    if status.success() {
        return Ok((stdout, said));
    }
    // prlimit reports a tool it cannot start this way (exit 127 / 126).
    if matches!(status.code(), Some(126 | 127)) {
        return Err(ExtractError::ToolMissing {
            tool: tool.display().to_string(),
        });
    }
    if said.contains("Incorrect password") {
        return Err(ExtractError::NeedsPassword);
    }
    let first = said
        .trim_start_matches("Syntax Error: ")
        .trim_start_matches("Command Line Error: ");
    let first = if first.is_empty() {
        "the reader stopped"
    } else {
        first
    };
    Err(match status.code() {
        None => ExtractError::Damaged(format!(
            "the reader crashed ({}): {first}",
            sandbox::describe(status)
        )),
        Some(_) => ExtractError::Damaged(first.to_owned()),
    })
}

/// This process's spool: `<temp dir>/mnemo-extractor-<pid>/`. A process
/// killed with -9 cannot delete its files; the next extractor to start on
/// the machine does ([`sweep_spools`]), and knows whose they are by the pid.
pub fn spool_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{SPOOL_PREFIX}{}", std::process::id()))
}

const SPOOL_PREFIX: &str = "mnemo-extractor-";

/// Deletes the spools of extractor processes that are gone (killed before
/// they could delete their own files); spools of live processes stay.
/// Returns how many were deleted.
pub fn sweep_spools() -> usize {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    let mut swept = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SPOOL_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive && std::fs::remove_dir_all(entry.path()).is_ok() {
            tracing::info!(spool = %entry.path().display(), "removed the spool of an extractor that is gone");
            swept += 1;
        }
    }
    swept
}

impl PdfFile {
    /// Writes the PDF to a private file in this process's spool.
    pub fn write(bytes: &[u8]) -> Result<Self, ExtractError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |e: std::io::Error| ExtractError::Io(e.to_string());
        let dir = spool_dir();
        std::fs::create_dir_all(&dir).map_err(io)?;
        // Others may pass through (the reader, as `nobody`, opens its file
        // by name) but not list what is here.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).map_err(io)?;
        let mut file = tempfile::Builder::new()
            .prefix("mnemo-extract-")
            .suffix(".pdf")
            .tempfile_in(&dir)
            .map_err(io)?;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io)?;
        std::io::Write::write_all(&mut file, bytes).map_err(|e| ExtractError::Io(e.to_string()))?;
        Ok(Self { file })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The page count, as `pdfinfo` reads it.
    pub async fn page_count(&self, config: &ExtractorConfig) -> Result<u32, ExtractError> {
        let path = self.file.path().to_string_lossy().into_owned();
        let (info, _) = run_tool(config, &config.pdfinfo, &[path.as_str()], self.path()).await?;
        let info = String::from_utf8_lossy(&info);
        let pages = info
            .lines()
            .find_map(|l| l.strip_prefix("Pages:"))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .ok_or_else(|| ExtractError::Damaged("no page count".into()))?;
        Ok(pages)
    }

    /// Text of pages `first..=last` (1-based), one string per page.
    pub async fn pages(
        &self,
        first: u32,
        last: u32,
        config: &ExtractorConfig,
    ) -> Result<PagesRead, ExtractError> {
        let path = self.file.path().to_string_lossy().into_owned();
        let (f, l) = (first.to_string(), last.to_string());
        let (out, said) = run_tool(
            config,
            &config.pdftotext,
            &[
                "-f", &f, "-l", &l, "-enc", "UTF-8", "-eol", "unix", &path, "-",
            ],
            self.path(),
        )
        .await?;
        let text = String::from_utf8_lossy(&out);
        // pdftotext ends every page with a form feed.
        let mut pages: Vec<String> = text.split('\u{c}').map(str::to_owned).collect();
        pages.truncate((last + 1 - first) as usize);
        while pages.len() < (last + 1 - first) as usize {
            pages.push(String::new());
        }
        Ok(PagesRead {
            pages,
            // poppler reports what it could not parse, and goes on.
            complained: said.contains("Syntax Error"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_processs_spool_is_swept_and_a_live_ones_kept() {
        // A pid that is gone: a child that has exited and been waited for.
        let Ok(mut child) = std::process::Command::new("true").spawn() else {
            panic!("true runs")
        };
        let dead = child.id();
        let _ = child.wait();
        let gone = std::env::temp_dir().join(format!("{SPOOL_PREFIX}{dead}"));
        std::fs::create_dir_all(&gone).unwrap();
        std::fs::write(gone.join("mnemo-extract-x.pdf"), b"%PDF").unwrap();
        let mine = PdfFile::write(b"%PDF-1.4").unwrap();
        assert!(mine.path().starts_with(spool_dir()));

        sweep_spools();
        assert!(!gone.exists(), "the dead process's spool is swept");
        assert!(mine.path().exists(), "a live process's file stays");
    }
}
