//! The HS256 secret that signs bearer tokens.
//!
//! Order: `--jwt-secret`/`MNEMO_JWT_SECRET`, else the secret file
//! (`--jwt-secret-file`/`MNEMO_JWT_SECRET_FILE`, default
//! `$XDG_CONFIG_HOME/mnemo/jwt-secret` or `~/.config/mnemo/jwt-secret`).
//! The server and `token issue` create the file (mode 0600, 32 random bytes)
//! when it is missing, so a local install works with no setup and no secret
//! is ever in git.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::cli::Global;

pub fn default_file(global: &Global) -> PathBuf {
    if let Some(p) = &global.jwt_secret_file {
        return p.clone();
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("mnemo").join("jwt-secret")
}

/// The secret, creating the file if `create` and nothing else provides one.
pub fn load(global: &Global, explicit: Option<&str>, create: bool) -> Result<Vec<u8>> {
    if let Some(s) = explicit.filter(|s| !s.is_empty()) {
        if s.len() < 16 {
            bail!("the JWT secret must be at least 16 bytes");
        }
        return Ok(s.as_bytes().to_vec());
    }
    let path = default_file(global);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().as_bytes().to_vec()),
        Ok(_) | Err(_) if create => create_file(&path),
        _ => bail!(
            "no token: pass --token (or MNEMO_TOKEN), or run on the server's machine where {} exists",
            path.display()
        ),
    }
}

fn create_file(path: &PathBuf) -> Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match &mut f {
        Ok(f) => {
            f.write_all(secret.as_bytes())?;
            tracing::info!(path = %path.display(), "created a new JWT secret");
            Ok(secret.into_bytes())
        }
        // Lost a race with another process creating it: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().as_bytes().to_vec())
        }
        Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
    }
}
