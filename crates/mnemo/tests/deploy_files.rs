//! The operator's files in deploy/, checked offline:
//! - deploy/grafana (the dashboard, the alert rules, the Prometheus config)
//!   against what mnemo records: they parse, every metric they name is one
//!   a service registers (a literal in the crates' sources) and is in
//!   docs/operations.md's catalogue, and every alert says how bad it is,
//!   what it means and where its runbook is;
//! - deploy/docker/compose.yaml by `docker-compose config` (Debian's; no
//!   daemon), and what it must hold: a 3-node NATS cluster on the repo's
//!   nats.conf, two replicas of every service, secrets mounted, not inlined;
//! - deploy/k8s by kubernetes-validate (strict) against the Kubernetes
//!   schemas, and probes on the operator's port.
//!
//! The tools come from deploy/check/setup.sh (deploy/local/test.sh).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `mnemo_…` metric named in `expr`, without the histogram suffixes.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("mnemo_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        let mut name = &expr[start..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            name = name.strip_suffix(suffix).unwrap_or(name);
        }
        out.insert(name.to_owned());
        i = end;
    }
    out
}

/// The metric names the crates register: `"mnemo_…"` literals in sources.
fn registered() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![repo().join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split('"').skip(1).step_by(2) {
                    if piece.starts_with("mnemo_") && !piece.contains(' ') {
                        out.insert(piece.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// The catalogue: the first column of docs/operations.md's metrics table.
fn catalogue() -> BTreeSet<String> {
    read("docs/operations.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `mnemo_"))
        .filter_map(|l| l.split('`').next())
        .map(|n| format!("mnemo_{n}"))
        .collect()
}

fn check_metrics(what: &str, names: &BTreeSet<String>) {
    let (registered, catalogue) = (registered(), catalogue());
    assert!(!names.is_empty(), "{what} names no mnemo metric");
    for name in names {
        assert!(
            registered.contains(name),
            "{what}: {name} is recorded by no service"
        );
        assert!(
            catalogue.contains(name),
            "{what}: {name} is not in docs/operations.md's catalogue"
        );
    }
}

#[test]
fn the_dashboard_shows_only_metrics_mnemo_records() {
    let dash: serde_json::Value = serde_json::from_str(&read("deploy/grafana/dashboard.json"))
        .expect("the dashboard is JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "a panel per concern");
    let mut names = BTreeSet::new();
    for p in panels {
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}: no query", p["title"]);
        for t in targets {
            names.extend(metrics_in(t["expr"].as_str().expect("expr")));
        }
    }
    check_metrics("dashboard.json", &names);
    // Every metric of the catalogue is on the dashboard.
    for name in catalogue() {
        assert!(names.contains(&name), "{name} is on no panel");
    }
}

#[test]
fn every_alert_has_a_severity_a_summary_and_a_runbook() {
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/grafana/alerts.yml")).expect("alerts.yml is YAML");
    let operations = read("docs/operations.md");
    let anchors: BTreeSet<String> = operations
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| {
            h.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .collect::<String>()
                .replace(' ', "-")
        })
        .collect();
    let mut names = BTreeSet::new();
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            alerts += 1;
            let alert = rule["alert"].as_str().expect("an alert name");
            let expr = rule["expr"].as_str().expect("an expression");
            names.extend(metrics_in(expr));
            let severity = rule["labels"]["severity"].as_str();
            assert!(
                matches!(severity, Some("page" | "warn")),
                "{alert}: severity"
            );
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{alert}: summary"
            );
            let runbook = rule["annotations"]["runbook"]
                .as_str()
                .unwrap_or_else(|| panic!("{alert}: runbook"));
            let anchor = runbook
                .strip_prefix("docs/operations.md#")
                .unwrap_or_else(|| panic!("{alert}: runbook in docs/operations.md"));
            assert!(anchors.contains(anchor), "{alert}: no section #{anchor}");
        }
    }
    assert!(
        alerts >= 6,
        "lag, dead letters, stage time, a service down, API errors"
    );
    check_metrics("alerts.yml", &names);
}

#[test]
fn prometheus_loads_the_rules_and_scrapes_every_service() {
    let config: serde_yaml::Value = serde_yaml::from_str(&read("deploy/grafana/prometheus.yml"))
        .expect("prometheus.yml is YAML");
    let rule_files = config["rule_files"].as_sequence().expect("rule_files");
    assert!(rule_files.iter().any(|f| f.as_str() == Some("alerts.yml")));
    let targets = serde_yaml::to_string(&config["scrape_configs"]).unwrap();
    for service in ["api", "extractor", "chunker", "embedder", "projector"] {
        assert!(
            targets.contains(&format!("{service}:9464")),
            "{service} scraped"
        );
    }
}

/// The roles whose public keys nats.conf reads (`MNEMO_NKEY_<ROLE>`).
const ROLES: [&str; 6] = [
    "API",
    "EXTRACTOR",
    "CHUNKER",
    "EMBEDDER",
    "PROJECTOR",
    "OPERATOR",
];

/// A tool deploy/check/setup.sh installs, from its environment line.
fn tool(var: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{var} is unset: run deploy/check/setup.sh (deploy/local/test.sh does)")
    });
    assert!(
        path.exists(),
        "{}: missing (deploy/check/setup.sh)",
        path.display()
    );
    path
}

#[test]
fn the_compose_file_is_a_cluster_with_secrets_mounted() {
    let compose = repo().join("deploy/docker/compose.yaml");
    let mut run = std::process::Command::new(tool("MNEMO_DOCKER_COMPOSE"));
    run.args(["-f"]).arg(&compose).args(["config"]);
    // The roles' public keys, as `mnemo nats credentials` prints them.
    for role in ROLES {
        run.env(format!("MNEMO_NKEY_{role}"), format!("U{role}PUBLICKEY"));
    }
    let out = run.output().expect("docker-compose runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_yaml::Value =
        serde_yaml::from_slice(&out.stdout).expect("the resolved config");
    let services = &config["services"];
    for node in ["nats-1", "nats-2", "nats-3"] {
        let command = serde_yaml::to_string(&services[node]["command"]).unwrap();
        assert!(
            command.contains("--cluster_name") && command.contains("--routes"),
            "{node}"
        );
    }
    for service in ["api", "extractor", "chunker", "embedder", "projector"] {
        let s = &services[service];
        assert_eq!(
            s["deploy"]["replicas"].as_u64(),
            Some(2),
            "{service} replicas"
        );
        let env = serde_yaml::to_string(&s["environment"]).unwrap();
        assert!(
            env.contains("MNEMO_KEY_FILE: /run/secrets/master.key"),
            "{service}: {env}"
        );
        assert!(env.contains("/run/secrets/nats-creds"), "{service}: {env}");
        assert!(
            !env.to_lowercase().contains("seed"),
            "{service}: no secret inline"
        );
    }
    // Without the roles' keys it says what to run, rather than start open.
    let mut bare = std::process::Command::new(tool("MNEMO_DOCKER_COMPOSE"));
    bare.args(["-f"]).arg(&compose).args(["config", "-q"]);
    for role in ROLES {
        bare.env_remove(format!("MNEMO_NKEY_{role}"));
    }
    let out = bare.output().expect("docker-compose runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mnemo nats credentials"));
}

#[test]
fn the_kubernetes_manifests_validate_and_probe_the_operators_port() {
    let manifests = repo().join("deploy/k8s/mnemo.yaml");
    let out = std::process::Command::new(tool("MNEMO_KUBERNETES_VALIDATE"))
        .args(["--strict", "-k", "1.30.0"])
        .arg(&manifests)
        .output()
        .expect("kubernetes-validate runs");
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(!report.contains("failed"), "{report}");
    let docs: Vec<serde_yaml::Value> = read("deploy/k8s/mnemo.yaml")
        .split("\n---\n")
        .map(|d| serde_yaml::from_str(d).expect("a YAML document"))
        .filter(|d: &serde_yaml::Value| !d.is_null())
        .collect();
    let kinds = |kind: &str| {
        docs.iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .count()
    };
    assert_eq!(kinds("Deployment"), 5);
    assert_eq!(kinds("PodDisruptionBudget"), 5);
    assert!(kinds("HorizontalPodAutoscaler") >= 3);
    for d in docs
        .iter()
        .filter(|d| d["kind"].as_str() == Some("Deployment"))
    {
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["readinessProbe"]["httpGet"]["path"].as_str(),
            Some("/readyz"),
            "{name}"
        );
        assert_eq!(
            c["livenessProbe"]["httpGet"]["path"].as_str(),
            Some("/healthz"),
            "{name}"
        );
        // The key file is a mounted Secret: the environment holds its path.
        let key_file = c["env"]
            .as_sequence()
            .and_then(|env| {
                env.iter()
                    .find(|e| e["name"].as_str() == Some("MNEMO_KEY_FILE"))
            })
            .and_then(|e| e["value"].as_str())
            .unwrap_or_default();
        assert!(
            key_file.starts_with("/var/run/mnemo/keys/"),
            "{name}: {key_file}"
        );
    }
    // The CRD-based and Helm files parse (their schemas are not core ones).
    for file in [
        "deploy/k8s/postgres-cnpg.yaml",
        "deploy/k8s/nats-values.yaml",
    ] {
        serde_yaml::from_str::<serde_yaml::Value>(&read(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}
