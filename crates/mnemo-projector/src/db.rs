//! PostgreSQL connections, always pointed at the namespace's schema.

use std::str::FromStr;

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
    let mut config = Config::from_str(database_url)?;
    config.application_name(application_name(ns));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed");
        }
    });
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
