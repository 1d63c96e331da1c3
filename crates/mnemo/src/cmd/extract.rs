//! `mnemo extract FILE [--json]`: the extractor's work on one local file,
//! for people debugging a file (and for checks). Nothing is uploaded.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use mnemo_domain::content::Sniffer;

#[derive(Args)]
pub struct ExtractArgs {
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: ExtractArgs) -> Result<ExitCode> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut sniffer = Sniffer::new(&name, None)?;
    sniffer.feed(&bytes);
    let content_type = sniffer.finish()?;
    let config = mnemo_extractor::ExtractorConfig::default();
    match mnemo_extractor::extract_bytes(&bytes, content_type, &config).await {
        Ok(text) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": args.file.display().to_string(),
                        "content_type": content_type.mime(),
                        "extractor": text.extractor,
                        "pages": text.pages,
                        "page_count": text.pages.len(),
                        "pages_failed": text.pages_failed,
                        "chars": text.chars(),
                    })
                );
            } else {
                for (i, page) in text.pages.iter().enumerate() {
                    println!("--- page {} ---", i + 1);
                    println!("{}", page.trim_end());
                }
                eprintln!(
                    "{} pages, {} characters ({}){}",
                    text.pages.len(),
                    text.chars(),
                    text.extractor,
                    if text.pages_failed > 0 {
                        format!("; partial: {} pages could not be read", text.pages_failed)
                    } else {
                        String::new()
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": args.file.display().to_string(),
                        "error": e.to_string(),
                        "code": e.code(),
                    })
                );
            } else {
                eprintln!("{}: {e}", args.file.display());
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
