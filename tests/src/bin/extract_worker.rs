//! `mnemo-extract-worker FILE`: the pdf-rs worker for the e2e tests' in-process
//! extractor (the same code as `mnemo extract-worker`).

fn main() -> std::process::ExitCode {
    match std::env::args_os().nth(1) {
        Some(path) => mnemo_pdf::worker::main(std::path::Path::new(&path)),
        None => {
            eprintln!("usage: mnemo-extract-worker FILE");
            std::process::ExitCode::from(2)
        }
    }
}
