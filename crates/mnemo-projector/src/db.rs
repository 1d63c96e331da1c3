//! PostgreSQL connections, always pointed at the namespace's schema.

use mnemo_bus::Namespace;
use tokio_postgres::{Client, NoTls};

use crate::ProjectorError;

/// Connects and sets `search_path` to the namespace's schema, so every SQL
/// statement in mnemo is written without a schema name.
pub async fn connect(database_url: &str, ns: &Namespace) -> Result<Client, ProjectorError> {
    let (client, connection) = tokio_postgres::connect(database_url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed");
        }
    });
    // The namespace is validated to [a-z][a-z0-9_]*: safe as an identifier.
    // The schema itself is created by the migrations (under a lock).
    client
        .batch_execute(&format!(
            "SET client_min_messages TO warning; SET search_path TO {}",
            ns.sql_schema()
        ))
        .await?;
    Ok(client)
}

/// Drops a namespace's schema and everything in it (tests and operators only).
pub async fn drop_schema(database_url: &str, ns: &Namespace) -> Result<(), ProjectorError> {
    let (client, connection) = tokio_postgres::connect(database_url, NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            ns.sql_schema()
        ))
        .await?;
    Ok(())
}
