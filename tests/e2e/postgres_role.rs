//! The services' PostgreSQL role has least privilege (issue 17, item 3):
//! `deploy/local/bootstrap.sh` creates role `mnemo` and database `mnemo`,
//! and `test.sh` runs the suite as that role. The role owns what it creates
//! (a namespace's schema: every other test runs the projector and the API
//! with it) and is refused what a compromised service could abuse.

use mnemo_tests::{database_url, TestEnv};

#[tokio::test]
async fn the_services_role_works_in_its_schema_and_is_refused_the_rest() {
    // The API and the projector start as this role: their schema exists.
    let env = TestEnv::start().await;
    let db = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .expect("the services' role connects");
    let row = db
        .query_one(
            "SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, \
                    n.nspowner = r.oid \
             FROM pg_roles r, pg_namespace n \
             WHERE r.rolname = current_user AND n.nspname = $1",
            &[&env.ns.sql_schema()],
        )
        .await
        .expect("the role's attributes");
    let (superuser, createrole, createdb, bypassrls, owns): (bool, bool, bool, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert!(
        !superuser && !createrole && !createdb && !bypassrls,
        "the services connect as a least-privilege role (MNEMO_TEST_DATABASE_URL: run deploy/local/test.sh)"
    );
    assert!(owns, "it owns its namespace's schema");

    // What a compromised service would try, each refused by PostgreSQL.
    for attempt in [
        "COPY (SELECT 1) TO PROGRAM 'id'",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT rolpassword FROM pg_authid",
        "ALTER SYSTEM SET log_statement = 'none'",
        "CREATE ROLE escaped SUPERUSER",
        "CREATE DATABASE escaped",
        "CREATE FUNCTION escaped() RETURNS int AS 'libc', 'getpid' LANGUAGE c",
        "SET session_replication_role = replica",
    ] {
        let err = db.batch_execute(attempt).await.expect_err(attempt);
        let state = err.code().map(|c| c.code().to_owned());
        assert_eq!(
            state.as_deref(),
            Some("42501"),
            "{attempt}: refused for lack of privilege, not by accident ({err})"
        );
    }
}

/// TLS to PostgreSQL (`mnemo_projector::db`): `sslmode=verify-full` is
/// encrypted and checks the server's certificate; it never falls back to
/// plaintext, and a certificate nobody vouched for is refused.
#[tokio::test]
async fn sslmode_asks_for_verified_tls_and_never_falls_back() {
    use mnemo_projector::db::connect_url;
    let url = database_url();
    let plain = connect_url(&url, "mnemo tls test")
        .await
        .expect("the plain URL connects");
    let ssl: String = plain.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    let cert: String = plain
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    let encrypted = |client: tokio_postgres::Client| async move {
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, bool>(0)
    };
    assert!(
        !encrypted(plain).await,
        "no sslmode: plaintext, as documented"
    );
    let sep = if url.contains('?') { '&' } else { '?' };
    let untrusted = connect_url(&format!("{url}{sep}sslmode=verify-full"), "mnemo tls test").await;
    if ssl != "on" {
        // A server without TLS: asked for it, the client refuses to go on.
        assert!(
            untrusted.is_err(),
            "sslmode=verify-full fell back to plaintext"
        );
        return;
    }
    // The server's certificate is its own (Debian's self-signed one): not
    // among the machine's roots, so refused...
    let Err(err) = untrusted else {
        panic!("an untrusted certificate was accepted")
    };
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "{err:?}"
    );
    // ...and trusted when given as the root, for the name it carries
    // (`localhost` for Debian's), the session then encrypted.
    let by_name = url.replace("@127.0.0.1:", "@localhost:");
    let trusted = connect_url(
        &format!("{by_name}{sep}sslmode=verify-full&sslrootcert={cert}"),
        "mnemo tls test",
    )
    .await
    .unwrap_or_else(|e| panic!("TLS with {cert} as the root: {e:?}"));
    assert!(encrypted(trusted).await, "the session is encrypted");
}
