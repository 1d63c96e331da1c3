//! The fallback: PDF text through poppler's `pdfinfo` and `pdftotext`, each run in a child
//! process under `prlimit --as` (address space) and a wall-clock timeout, so
//! a file that crashes, loops or eats memory costs one child, not the service.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

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
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={}", config.memory_limit_bytes))
        .arg("--")
        .arg(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ExtractError::ToolMissing {
                tool: "prlimit".into(),
            }
        } else {
            ExtractError::Io(e.to_string())
        }
    })?;
    let output = match tokio::time::timeout(config.step_timeout, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(ExtractError::Io(e.to_string())),
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => return Err(ExtractError::TimedOut(config.step_timeout.as_secs())),
    };
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    // prlimit reports a tool it cannot start this way (exit 127 / 126).
    if matches!(output.status.code(), Some(126 | 127)) {
        return Err(ExtractError::ToolMissing {
            tool: tool.display().to_string(),
        });
    }
    if stderr.contains("Incorrect password") {
        return Err(ExtractError::NeedsPassword);
    }
    // An error line says more than the warnings before it.
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let first = lines
        .iter()
        .find(|l| l.contains("Error"))
        .or(lines.first())
        .map(|l| {
            l.trim_start_matches("Syntax Error: ")
                .trim_start_matches("Command Line Error: ")
        })
        .unwrap_or("the reader stopped")
        .to_owned();
    let signal = {
        use std::os::unix::process::ExitStatusExt;
        output.status.signal()
    };
    Err(match signal {
        Some(sig) => ExtractError::Damaged(format!("the reader crashed (signal {sig}): {first}")),
        None => ExtractError::Damaged(first),
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
