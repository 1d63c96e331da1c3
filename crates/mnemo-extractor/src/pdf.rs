//! The fallback: PDF text through poppler's `pdfinfo` and `pdftotext`, each
//! run in the [`crate::sandbox`] (address space, CPU seconds, capped output)
//! under a wall-clock timeout, so a file that crashes, loops or eats memory
//! costs one child, not the service.

use std::path::Path;

use crate::sandbox::{self, ReadError, Sandboxed};
use crate::{ExtractError, ExtractorConfig};

/// A PDF written to a private temporary file for the tools to read (they
/// need a path, not a pipe: they seek). Deleted on drop.
pub struct PdfFile {
    file: tempfile::NamedTempFile,
}

/// Runs `tool args…` sandboxed; returns stdout, or the reason it failed.
async fn run_tool(
    config: &ExtractorConfig,
    tool: &Path,
    args: &[&str],
) -> Result<Vec<u8>, ExtractError> {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    let mut child = Sandboxed::spawn(config, tool, &args).map_err(|e| {
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
        return Ok(stdout);
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

impl PdfFile {
    /// Writes the PDF to a private file.
    pub fn write(bytes: &[u8]) -> Result<Self, ExtractError> {
        let mut file = tempfile::Builder::new()
            .prefix("mnemo-extract-")
            .suffix(".pdf")
            .tempfile()
            .map_err(|e| ExtractError::Io(e.to_string()))?;
        std::io::Write::write_all(&mut file, bytes).map_err(|e| ExtractError::Io(e.to_string()))?;
        Ok(Self { file })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The page count, as `pdfinfo` reads it.
    pub async fn page_count(&self, config: &ExtractorConfig) -> Result<u32, ExtractError> {
        let path = self.file.path().to_string_lossy().into_owned();
        let info = run_tool(config, &config.pdfinfo, &[path.as_str()]).await?;
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
    ) -> Result<Vec<String>, ExtractError> {
        let path = self.file.path().to_string_lossy().into_owned();
        let (f, l) = (first.to_string(), last.to_string());
        let out = run_tool(
            config,
            &config.pdftotext,
            &[
                "-f", &f, "-l", &l, "-enc", "UTF-8", "-eol", "unix", &path, "-",
            ],
        )
        .await?;
        let text = String::from_utf8_lossy(&out);
        // pdftotext ends every page with a form feed.
        let mut pages: Vec<String> = text.split('\u{c}').map(str::to_owned).collect();
        pages.truncate((last + 1 - first) as usize);
        while pages.len() < (last + 1 - first) as usize {
            pages.push(String::new());
        }
        Ok(pages)
    }
}
