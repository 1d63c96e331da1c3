//! Who a connection is on NATS: its role, its credential, and its TLS.
//!
//! mnemo's `nats.conf` gives every service role a user of its own (an
//! nkey) allowed only the subjects and JetStream calls that role needs, and
//! nobody in without one. This module names the roles, finds a role's
//! credential (`--nats-creds`: one seed file, or a directory holding
//! `<role>.nk` for each), makes new ones (`mnemo nats credentials`), and
//! builds the [`async_nats::ConnectOptions`] every connection uses.
//!
//! Must not: log or return a seed (errors name the file, never its text).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{BusError, BusErrorKind};

/// A service role: one NATS user each (see `nats.conf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Api,
    Extractor,
    Chunker,
    Embedder,
    Projector,
    /// Setup, dead-letter retry, rebuilds, backfills, benchmarks and
    /// namespace cleanup: everything in the account.
    Operator,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Api,
        Role::Extractor,
        Role::Chunker,
        Role::Embedder,
        Role::Projector,
        Role::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Extractor => "extractor",
            Role::Chunker => "chunker",
            Role::Embedder => "embedder",
            Role::Projector => "projector",
            Role::Operator => "operator",
        }
    }

    /// The reply subjects of this role's connections: `nats.conf` lets each
    /// user subscribe to its own prefix only, so no role reads another's
    /// replies (JetStream answers, direct gets, ordered consumers' deliveries).
    pub fn inbox_prefix(self) -> String {
        format!("_INBOX_{}", self.as_str())
    }

    /// The environment variable that hands the role's public key to
    /// `nats-server -c nats.conf`.
    pub fn public_key_env(self) -> String {
        format!("MNEMO_NKEY_{}", self.as_str().to_ascii_uppercase())
    }

    /// The seed file of this role in a credentials directory.
    pub fn seed_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.nk", self.as_str()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Client certificates and the CA a `tls://` NATS server is checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// CA bundle (PEM) for the server's certificate; None: the system roots.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for servers that verify clients.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Refuse a plaintext connection even when the URL says `nats://`.
    pub required: bool,
}

/// How often a connection pings its server (see `connect_options`).
pub const PING_INTERVAL: Duration = Duration::from_secs(5);

/// Where NATS is and how to sign in: what `--nats-url`, `--nats-creds` and
/// the `--nats-tls-*` flags say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsOptions {
    /// One URL, or a cluster's seeds comma-separated.
    pub url: String,
    /// A seed file, or a directory of `<role>.nk` files; None: no credential
    /// (an open server, e.g. a developer's own).
    pub creds: Option<PathBuf>,
    pub tls: NatsTls,
    /// The deployment's key file (`--key-file`, `MNEMO_KEY_FILE`): the root
    /// of every owner's data key ([`crate::keys::file`]). Required: a bus
    /// without it cannot read or write anyone's events.
    pub key_file: Option<PathBuf>,
}

impl NatsOptions {
    /// An open server at `url` (no credential, no client TLS).
    pub fn open(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            creds: None,
            tls: NatsTls::default(),
            key_file: None,
        }
    }

    pub fn with_key_file(mut self, key_file: Option<PathBuf>) -> Self {
        self.key_file = key_file;
        self
    }

    pub fn with_creds(mut self, creds: Option<PathBuf>) -> Self {
        self.creds = creds;
        self
    }

    /// The seed file `role` signs in with: the file given, or `<role>.nk`
    /// in the directory given.
    pub fn seed_file(&self, role: Role) -> Option<PathBuf> {
        let creds = self.creds.as_ref()?;
        Some(if creds.is_dir() {
            role.seed_file(creds)
        } else {
            creds.clone()
        })
    }

    /// The options a connection of `role` is made with: its seed (read and
    /// checked here), its own inbox prefix, TLS when asked, reconnecting
    /// forever once connected ([`crate::setup::connect`] also waits for the
    /// first connection; a one-off check need not).
    pub fn connect_options(
        &self,
        role: Role,
        name: &str,
    ) -> Result<async_nats::ConnectOptions, BusError> {
        let mut options = match self.seed_file(role) {
            Some(file) => async_nats::ConnectOptions::with_nkey(read_seed(&file)?),
            None => async_nats::ConnectOptions::new(),
        };
        options = options
            .name(name)
            .custom_inbox_prefix(role.inbox_prefix())
            .connection_timeout(Duration::from_secs(5))
            // A server that stops answering (cut off by a partition, its
            // host frozen) is left after two unanswered pings for another
            // in the cluster: 10–15 s, not the client's default minutes.
            .ping_interval(PING_INTERVAL)
            .max_reconnects(None);
        if let Some(ca) = &self.tls.ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls.client_cert {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.tls.required || self.tls.ca.is_some() || self.tls.client_cert.is_some() {
            options = options.require_tls(true);
        }
        Ok(options)
    }
}

/// Reads an nkey user seed from `file`, which must be readable by its owner
/// only (a seed is a password).
pub fn read_seed(file: &Path) -> Result<String, BusError> {
    let shown = file.display();
    check_private(file)?;
    let text = std::fs::read_to_string(file).map_err(|e| {
        BusError::with_source(
            BusErrorKind::Config,
            format!("cannot read the NATS credential {shown}"),
            e,
        )
    })?;
    let seed = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("SU"))
        .ok_or_else(|| {
            BusError::config(format!(
                "{shown} holds no nkey user seed (a line starting with SU); make one with `mnemo nats credentials`"
            ))
        })?;
    nkeys::KeyPair::from_seed(seed)
        .map_err(|_| BusError::config(format!("{shown} holds an invalid nkey seed")))?;
    Ok(seed.to_owned())
}

#[cfg(unix)]
fn check_private(file: &Path) -> Result<(), BusError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).map_err(|e| {
        BusError::with_source(
            BusErrorKind::Config,
            format!("cannot read the NATS credential {}", file.display()),
            e,
        )
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(BusError::config(format!(
            "the NATS credential {} is readable by others (mode {mode:o}); chmod 600 it",
            file.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_file: &Path) -> Result<(), BusError> {
    Ok(())
}

/// Makes a seed for every role that has none in `dir` (created 0700; each
/// seed 0600, beside a `<role>.pub` with its public key). Existing seeds
/// are kept: rotate one by deleting it, running this again and restarting
/// nats-server and that role's services. Returns each role's public key.
pub fn ensure_credentials(dir: &Path) -> Result<Vec<(Role, String)>, BusError> {
    let io = |what: &str, e: std::io::Error| {
        BusError::with_source(
            BusErrorKind::Config,
            format!("{what} in {}", dir.display()),
            e,
        )
    };
    create_private_dir(dir).map_err(|e| io("cannot create the credentials directory", e))?;
    let mut keys = Vec::new();
    for role in Role::ALL {
        let file = role.seed_file(dir);
        let pair = if file.exists() {
            nkeys::KeyPair::from_seed(&read_seed(&file)?).map_err(|_| {
                BusError::config(format!("{} holds an invalid seed", file.display()))
            })?
        } else {
            let pair = nkeys::KeyPair::new_user();
            let seed = pair
                .seed()
                .map_err(|_| BusError::config("cannot encode a new nkey seed"))?;
            write_private(&file, format!("{seed}\n").as_bytes())
                .map_err(|e| io("cannot write a seed", e))?;
            pair
        };
        let public = pair.public_key();
        std::fs::write(dir.join(format!("{role}.pub")), format!("{public}\n"))
            .map_err(|e| io("cannot write a public key", e))?;
        keys.push((role, public));
    }
    Ok(keys)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes a new file that only its owner can read (created with that
/// mode: never readable by others, not even for a moment).
#[cfg(unix)]
fn write_private(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(file, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_made_once_private_and_found_by_role() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds");
        let first = ensure_credentials(&creds).unwrap();
        let again = ensure_credentials(&creds).unwrap();
        assert_eq!(first, again, "existing seeds are kept");
        assert_eq!(first.len(), Role::ALL.len());
        for (role, public) in &first {
            assert!(public.starts_with('U'), "{role}: a user key");
            let seed = read_seed(&role.seed_file(&creds)).unwrap();
            assert_eq!(
                &nkeys::KeyPair::from_seed(&seed).unwrap().public_key(),
                public
            );
        }
        let options = NatsOptions::open("nats://x").with_creds(Some(creds.clone()));
        assert_eq!(
            options.seed_file(Role::Chunker),
            Some(creds.join("chunker.nk"))
        );
        let one = creds.join("api.nk");
        let options = options.with_creds(Some(one.clone()));
        assert_eq!(options.seed_file(Role::Chunker), Some(one));
    }

    #[cfg(unix)]
    #[test]
    fn a_seed_others_can_read_or_no_seed_at_all_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        ensure_credentials(dir.path()).unwrap();
        let file = Role::Api.seed_file(dir.path());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_seed(&file).unwrap_err();
        assert_eq!(err.kind(), BusErrorKind::Config);
        assert!(err.to_string().contains("readable by others"), "{err}");

        let junk = dir.path().join("junk.nk");
        write_private(&junk, b"not a seed\n").unwrap();
        let err = read_seed(&junk).unwrap_err();
        assert!(err.to_string().contains("no nkey user seed"), "{err}");
        assert!(
            !err.to_string().contains("not a seed"),
            "the file's text is never shown"
        );
    }
}
