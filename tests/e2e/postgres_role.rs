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
