//! The PDF readers' sandbox, attacked from inside: a child started the way
//! the extractor starts `pdftotext` and the pdf-rs worker tries to read the
//! service's secret or the deployment's key file (from a file and from
//! its environment), to open a
//! socket to a server on this machine, and to write outside its own
//! temporary directory. Every attempt must fail; reading the one PDF it is
//! given and writing its own /tmp must work.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mnemo_extractor::isolation::{Isolation, SandboxMode};
use mnemo_extractor::sandbox::Sandboxed;
use mnemo_extractor::ExtractorConfig;

/// Runs `script` in the sandbox, given read access to `pdf`; returns its
/// `key=value` lines.
async fn attempt(script: &str, pdf: &Path) -> HashMap<String, String> {
    let config = ExtractorConfig::default();
    let argv = ["-c", script];
    let args: Vec<&std::ffi::OsStr> = argv.iter().map(|a| a.as_ref()).collect();
    let mut child =
        Sandboxed::spawn(&config, Path::new("/bin/sh"), &args, &[pdf]).expect("the sandbox starts");
    let out = child.read_to_end().await.expect("output");
    let (status, said) = child.wait().await.expect("exit");
    assert!(status.success(), "the script ran: {said}");
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn a_reader_can_take_no_secret_reach_no_server_and_write_nowhere_but_its_tmp() {
    let isolation = Isolation::resolve(SandboxMode::Auto).unwrap();
    assert!(
        matches!(isolation, Isolation::Bubblewrap { .. }),
        "bubblewrap must work here (deploy/local/bootstrap.sh installs it): {}",
        isolation.describe()
    );
    // What an attacker would want: the signing secret, in a file only the
    // service's user may read, and in the service's environment.
    let vault = PathBuf::from(format!(
        "/var/tmp/mnemo-sandbox-test-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&vault).unwrap();
    let secret = vault.join("jwt-secret");
    std::fs::write(&secret, "s3cr3t-signing-key").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // And the deployment's key file, which every learner's data key is
    // wrapped under (made as `mnemo keys init` makes it).
    let key_file = vault.join("master.key");
    mnemo_bus::keys::KeyFile::init(&key_file).unwrap();
    std::env::set_var("MNEMO_KEY_FILE", &key_file);
    // SAFETY of the test: this test binary runs no other test that reads it.
    std::env::set_var("MNEMO_JWT_SECRET", "s3cr3t-from-the-environment");
    // The one file the reader is given, in the extractor's own spool.
    let pdf = mnemo_extractor::pdf::PdfFile::write(b"%PDF-1.4 the document").unwrap();
    let spool = pdf.path().parent().unwrap().to_path_buf();
    let nats_port = 4222;

    let script = format!(
        r#"
echo "secret_file=$(cat {secret} 2>/dev/null || echo DENIED)"
echo "key_file=$(cat {key_file} 2>/dev/null || echo DENIED)"
echo "secret_env=$(env | grep -c MNEMO_)"
echo "other_environ=$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | grep -c MNEMO_)"
echo "socket=$(bash -c 'exec 3<>/dev/tcp/127.0.0.1/{nats_port}' 2>/dev/null && echo OPEN || echo DENIED)"
echo "write_spool=$( (echo x > {spool}/escape) 2>/dev/null && echo WROTE || echo DENIED)"
echo "write_var=$( (echo x > /var/tmp/escape) 2>/dev/null && echo WROTE || echo DENIED)"
echo "write_usr=$( (echo x > /usr/escape) 2>/dev/null && echo WROTE || echo DENIED)"
echo "write_tmp=$( (echo x > /tmp/own) 2>/dev/null && echo WROTE || echo DENIED)"
echo "read_pdf=$(head -c 8 {pdf})"
echo "uid=$(id -u)"
"#,
        secret = secret.display(),
        key_file = key_file.display(),
        spool = spool.display(),
        pdf = pdf.path().display(),
    );
    let got = attempt(&script, pdf.path()).await;
    let _ = std::fs::remove_dir_all(&vault);
    let is = |k: &str| got.get(k).map(String::as_str);
    assert_eq!(is("secret_file"), Some("DENIED"), "{got:?}");
    assert_eq!(is("key_file"), Some("DENIED"), "{got:?}");
    assert_eq!(is("secret_env"), Some("0"), "{got:?}");
    assert_eq!(is("other_environ"), Some("0"), "{got:?}");
    assert_eq!(is("socket"), Some("DENIED"), "{got:?}");
    assert_eq!(is("write_spool"), Some("DENIED"), "{got:?}");
    assert_eq!(is("write_var"), Some("DENIED"), "{got:?}");
    assert_eq!(is("write_usr"), Some("DENIED"), "{got:?}");
    assert_eq!(is("write_tmp"), Some("WROTE"), "{got:?}");
    assert_eq!(is("read_pdf"), Some("%PDF-1.4"), "{got:?}");
    assert!(!spool.join("escape").exists());
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if root {
        assert_eq!(
            is("uid"),
            Some("65534"),
            "started by root, the reader is nobody"
        );
    }
}

/// Limits-only mode (no bubblewrap) still gives the reader an empty
/// environment and, started by root, the `nobody` user.
#[tokio::test]
async fn without_bubblewrap_the_environment_is_still_empty() {
    let config = ExtractorConfig {
        sandbox: SandboxMode::Limits,
        ..Default::default()
    };
    let argv = ["-c", "env | grep -c MNEMO_; true"];
    let args: Vec<&std::ffi::OsStr> = argv.iter().map(|a| a.as_ref()).collect();
    let mut child = Sandboxed::spawn(&config, Path::new("/bin/sh"), &args, &[]).unwrap();
    let out = child.read_to_end().await.unwrap();
    let _ = child.wait().await;
    assert_eq!(String::from_utf8_lossy(&out).trim(), "0");
}
