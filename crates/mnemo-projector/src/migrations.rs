//! Versioned SQL from `projections/`, applied in order at start.
//!
//! Each file is `projections/<read model>/V<n>__<what>.sql`, compiled into the
//! binary. Applied versions are recorded in `schema_migrations`; a transaction
//! with an advisory lock makes concurrent starts safe.

use tokio_postgres::Client;

use crate::ProjectorError;

/// One migration: read model, version, file name, SQL.
pub struct Migration {
    pub projection: &'static str,
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($projection:literal, $version:literal, $file:literal) => {
        Migration {
            projection: $projection,
            version: $version,
            name: $file,
            sql: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../projections/",
                $projection,
                "/",
                $file
            )),
        }
    };
}

/// Every migration, in the order they apply.
pub fn all() -> Vec<Migration> {
    vec![
        migration!("checkpoints", 1, "V1__checkpoints.sql"),
        migration!("documents", 1, "V1__documents.sql"),
        migration!("chunks", 1, "V1__chunks.sql"),
        migration!("stage_timings", 1, "V1__stage_timings.sql"),
        migration!("documents", 2, "V2__external_id.sql"),
        migration!("chunks", 2, "V2__embeddings_by_model.sql"),
        migration!("checkpoints", 2, "V2__projection_versions.sql"),
        migration!("learning", 1, "V1__learning.sql"),
        migration!("chunks", 3, "V3__lexemes_written_by_the_projector.sql"),
        migration!("chunks", 4, "V4__ids_compare_bytewise.sql"),
        migration!("documents", 3, "V3__pages_failed.sql"),
        migration!("documents", 4, "V4__failure.sql"),
    ]
}

/// Creates `schema` (a namespace's, or a rebuild's scratch schema) and
/// applies what is missing there.
pub async fn apply(client: &mut Client, schema: &str) -> Result<(), ProjectorError> {
    let tx = client.transaction().await?;
    // Serialise concurrent starts on this schema.
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&schema])
        .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         SET LOCAL search_path TO {schema};
         CREATE TABLE IF NOT EXISTS schema_migrations (
             projection text NOT NULL,
             version    integer NOT NULL,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (projection, version)
         );",
        schema = schema
    ))
    .await?;
    for m in all() {
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE projection = $1 AND version = $2",
                &[&m.projection, &m.version],
            )
            .await?
            .is_some();
        if done {
            continue;
        }
        tracing::info!(
            projection = m.projection,
            file = m.name,
            "applying migration"
        );
        tx.batch_execute(m.sql)
            .await
            .map_err(|source| ProjectorError::Migration {
                name: format!("{}/{}", m.projection, m.name),
                source,
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (projection, version, name) VALUES ($1, $2, $3)",
            &[&m.projection, &m.version, &m.name],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
