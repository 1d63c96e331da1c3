//! PostgreSQL connections, always pointed at the namespace's schema, over
//! TLS when the URL asks for it.
//!
//! TLS follows libpq's URL parameters: `sslmode=require`, `verify-ca` or
//! `verify-full` connect over TLS (rustls) and always check the server's
//! certificate and name — against `sslrootcert=FILE` (PEM) when given, else
//! the machine's roots — and never fall back to plaintext; no `sslmode`,
//! `disable` or `prefer` connect in plaintext (keep those to loopback or a
//! private network).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use mnemo_bus::Namespace;
use tokio_postgres::{Client, Config, NoTls};

use crate::ProjectorError;

/// `application_name` of every session of a namespace, so they can be found
/// (in `pg_stat_activity`, and by [`drop_schema`]).
pub fn application_name(ns: &Namespace) -> String {
    format!("mnemo:{ns}")
}

/// Connects and sets `search_path` to the namespace's schema, so every SQL
/// statement in mnemo is written without a schema name.
pub async fn connect(database_url: &str, ns: &Namespace) -> Result<Client, ProjectorError> {
    connect_schema(database_url, ns, ns.sql_schema()).await
}

/// Connects a session of `ns` working in another schema of the namespace
/// (a rebuild's scratch schema).
pub async fn connect_schema(
    database_url: &str,
    ns: &Namespace,
    schema: &str,
) -> Result<Client, ProjectorError> {
    let client = connect_url(database_url, &application_name(ns)).await?;
    // The namespace is validated to [a-z][a-z0-9_]*, and schemas are derived
    // from it: safe as an identifier. The schema itself is created by the
    // migrations (under a lock).
    client
        .batch_execute(&format!(
            "SET client_min_messages TO warning; SET search_path TO {schema}"
        ))
        .await?;
    Ok(client)
}

/// Connects to `database_url` (TLS as its `sslmode` says, see the module
/// doc) with `application_name`; the connection runs on its own task.
pub async fn connect_url(
    database_url: &str,
    application_name: &str,
) -> Result<Client, ProjectorError> {
    let settings = DatabaseUrl::parse(database_url)?;
    let mut config = Config::from_str(&settings.url)?;
    config.application_name(application_name);
    let closed =
        |e: tokio_postgres::Error| tracing::warn!(error = %e, "PostgreSQL connection closed");
    let client = match settings.tls {
        None => {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(async move { connection.await.map_err(closed) });
            client
        }
        Some(tls) => {
            let (client, connection) = config.connect(tls.connector()?).await?;
            tokio::spawn(async move { connection.await.map_err(closed) });
            client
        }
    };
    Ok(client)
}

/// A database URL split into what tokio-postgres reads and the TLS mnemo
/// adds to it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DatabaseUrl {
    /// The URL for tokio-postgres: `sslrootcert` taken out, `verify-*`
    /// spelled `require` (rustls verifies in every case).
    url: String,
    tls: Option<PgTls>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PgTls {
    /// The CA bundle (PEM); None: the machine's roots.
    root: Option<PathBuf>,
}

impl DatabaseUrl {
    fn parse(url: &str) -> Result<Self, ProjectorError> {
        let Some((base, query)) = url.split_once('?') else {
            return Ok(Self {
                url: url.to_owned(),
                tls: None,
            });
        };
        let mut kept = Vec::new();
        let (mut mode, mut root) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = Some(value.to_owned()),
                Some(("sslrootcert", value)) => root = Some(PathBuf::from(value)),
                _ => kept.push(pair.to_owned()),
            }
        }
        let tls = match mode.as_deref() {
            None | Some("disable") | Some("prefer") => None,
            Some("require") | Some("verify-ca") | Some("verify-full") => Some(PgTls { root }),
            Some(other) => {
                return Err(ProjectorError::Config(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                )))
            }
        };
        if tls.is_some() {
            kept.push("sslmode=require".into());
        } else if let Some(mode) = mode {
            kept.push(format!("sslmode={mode}"));
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok(Self { url, tls })
    }
}

impl PgTls {
    fn connector(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, ProjectorError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let mut roots = rustls::RootCertStore::empty();
        match &self.root {
            Some(file) => {
                let certs = CertificateDer::pem_file_iter(file)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        ProjectorError::Config(format!("sslrootcert {}: {e}", file.display()))
                    })?;
                for cert in certs {
                    roots.add(cert).map_err(|e| {
                        ProjectorError::Config(format!("sslrootcert {}: {e}", file.display()))
                    })?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        if roots.is_empty() {
            return Err(ProjectorError::Config(
                "sslmode asks for TLS but no root certificate is at hand (give sslrootcert=FILE)"
                    .into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ProjectorError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

/// Drops a namespace's schema and everything in it (tests and operators
/// only). Sessions of the namespace still open are ended first: a service
/// stopped abruptly may have left one inside a transaction whose locks would
/// block the drop forever.
pub async fn drop_schema(database_url: &str, ns: &Namespace) -> Result<(), ProjectorError> {
    let (client, connection) = tokio_postgres::connect(database_url, NoTls).await?;
    tokio::spawn(connection);
    client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&application_name(ns)],
        )
        .await?;
    client
        .batch_execute(&format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE",
            ns.sql_schema(),
            crate::Feed::Documents.scratch_schema(ns),
            crate::Feed::Learning.scratch_schema(ns)
        ))
        .await?;
    Ok(())
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn sslmode_decides_tls_and_sslrootcert_stays_with_mnemo() {
        let plain = DatabaseUrl::parse("postgres://m@h/db").unwrap();
        assert_eq!((plain.url.as_str(), plain.tls), ("postgres://m@h/db", None));
        let prefer = DatabaseUrl::parse("postgres://m@h/db?sslmode=prefer").unwrap();
        assert_eq!(prefer.tls, None);
        let full = DatabaseUrl::parse(
            "postgres://m@h/db?connect_timeout=5&sslmode=verify-full&sslrootcert=/ca.pem",
        )
        .unwrap();
        assert_eq!(
            full.url,
            "postgres://m@h/db?connect_timeout=5&sslmode=require"
        );
        assert_eq!(
            full.tls,
            Some(PgTls {
                root: Some(PathBuf::from("/ca.pem"))
            })
        );
        assert!(DatabaseUrl::parse("postgres://m@h/db?sslmode=allow").is_err());
    }
}
