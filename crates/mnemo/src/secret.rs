//! The HS256 secret that signs bearer tokens.
//!
//! Order: `--jwt-secret`/`MNEMO_JWT_SECRET`, else the secret file
//! (`--jwt-secret-file`/`MNEMO_JWT_SECRET_FILE`, default
//! `$XDG_CONFIG_HOME/mnemo/jwt-secret` or `~/.config/mnemo/jwt-secret`).
//! The server and `token issue` create the file (mode 0600, 64 random hex
//! characters) when it is missing, so a local install works with no setup
//! and no secret is ever in git. A secret shorter than [`MIN_SECRET_BYTES`],
//! or a file others may read, is refused: either would let a token be
//! forged.

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

/// The shortest HS256 secret accepted (HS256's own key size).
pub const MIN_SECRET_BYTES: usize = 32;

/// The secret, creating the file if `create` and nothing else provides one.
pub fn load(global: &Global, explicit: Option<&str>, create: bool) -> Result<Vec<u8>> {
    if let Some(s) = explicit.filter(|s| !s.is_empty()) {
        if s.len() < MIN_SECRET_BYTES {
            bail!("the JWT secret must be at least {MIN_SECRET_BYTES} bytes");
        }
        return Ok(s.as_bytes().to_vec());
    }
    let path = default_file(global);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => {
            check_file(&path, s.trim())?;
            Ok(s.trim().as_bytes().to_vec())
        }
        Ok(_) | Err(_) if create => create_file(&path),
        _ => bail!(
            "no token: pass --token (or MNEMO_TOKEN), or run on the server's machine where {} exists",
            path.display()
        ),
    }
}

/// Refuses a secret file others may read, or a secret too short.
fn check_file(path: &std::path::Path, secret: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{} may be read by others (mode {mode:o}): chmod 600 it (and make a new secret if others did read it)",
            path.display()
        );
    }
    if secret.len() < MIN_SECRET_BYTES {
        bail!(
            "the secret in {} is shorter than {MIN_SECRET_BYTES} bytes: delete it, and a new one is made",
            path.display()
        );
    }
    Ok(())
}

/// Creates a new secret file (mode 0600 from the start) at `path`, or
/// reads the one another process just created there.
pub fn create_file(path: &PathBuf) -> Result<Vec<u8>> {
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
            let theirs = std::fs::read_to_string(path)?;
            check_file(path, theirs.trim())?;
            Ok(theirs.trim().as_bytes().to_vec())
        }
        Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_readable_or_short_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt-secret");
        std::fs::write(&path, "x".repeat(64)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = check_file(&path, &"x".repeat(64)).unwrap_err().to_string();
        assert!(err.contains("may be read by others"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_file(&path, &"x".repeat(64)).is_ok());
        let err = check_file(&path, "eleven-byte").unwrap_err().to_string();
        assert!(err.contains("shorter than 32 bytes"), "{err}");
    }
}
