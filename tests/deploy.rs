//! The deployment files under `deploy/`: the Prometheus configuration and alert rules
//! pass `promtool check` and the rules' unit tests, the dashboard and every manifest
//! parse, they use only metrics the proxy declares, and the configurations they ship
//! are valid respite configurations.
//!
//! `promtool` comes from Debian's `prometheus` package (`scripts/deps` installs it).

use std::{
    collections::{BTreeSet, HashSet},
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
        .expect("promtool (Debian package `prometheus`; run scripts/deps)");
    assert!(
        out.status.success(),
        "promtool {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_config_passes_promtool() {
    promtool(&["check", "config", "prometheus.yml"]);
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts.test.yml"]);
}

/// The documents of a (multi-document) YAML file.
fn yaml_docs(path: &str) -> Vec<Yaml> {
    use serde::Deserialize;
    let text = read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            Yaml::deserialize(doc).unwrap_or_else(|e| panic!("deploy/{path} is not YAML: {e}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn yaml(path: &str) -> Yaml {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "deploy/{path}: one document");
    docs.remove(0)
}

/// Every `respite_*` metric a PromQL expression uses, histogram suffixes removed.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let histograms: HashSet<&str> = respite::metrics::ALL
        .iter()
        .filter(|d| d.kind == respite::metrics::Type::Histogram)
        .map(|d| d.name)
        .collect();
    let mut found = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("respite_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| histograms.contains(b))
            .unwrap_or(name);
        found.insert(base.to_owned());
        rest = &tail[end..];
    }
    found
}

fn assert_declared(used: &BTreeSet<String>, file: &str) {
    let declared: HashSet<&str> = respite::metrics::ALL.iter().map(|d| d.name).collect();
    for name in used {
        assert!(
            declared.contains(name.as_str()),
            "deploy/{file} uses {name}, which respite does not export"
        );
    }
}

fn alert_rules(doc: &Yaml) -> Vec<(String, String)> {
    let groups = doc["groups"].as_sequence().expect("groups");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").iter())
        .map(|r| {
            let name = r["alert"].as_str().expect("alerting rules only");
            let expr = r["expr"].as_str().expect("expr");
            (name.to_owned(), expr.to_owned())
        })
        .collect()
}

#[test]
fn alert_rules_cover_the_issue_and_use_exported_metrics() {
    let rules = alert_rules(&yaml("prometheus/alerts.yml"));
    let mut used = BTreeSet::new();
    for (_, expr) in &rules {
        used.extend(metrics_in(expr));
    }
    assert_declared(&used, "prometheus/alerts.yml");
    let expr_of = |name: &str| {
        rules
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| panic!("no alert {name}"))
    };
    assert!(expr_of("RespiteL1HitRatioLow").contains("< 0.8"));
    let hit = expr_of("RespiteCacheHitRatioLow");
    assert!(hit.contains("respite_cache_requests_total") && hit.contains("< 0.8"));
    let redis = expr_of("RespiteRedisMemoryHigh");
    assert!(redis.contains("respite_upstream_maxmemory_bytes") && redis.contains("> 0.9"));
    let p95 = expr_of("RespiteLatencyHigh");
    assert!(p95.contains("histogram_quantile(0.95") && p95.contains("> 0.1"));
    assert!(expr_of("RespiteL1MemoryHigh").contains("respite_l1_max_bytes"));
    assert!(expr_of("RespiteUpstreamDown").contains("respite_upstream_up"));
    assert!(expr_of("RespiteConfigReloadFailed").contains("respite_config"));
    assert!(expr_of("RespiteClientsNearMax").contains("respite_clients_max"));
}

#[test]
fn prometheus_rule_carries_the_same_alerts() {
    let rule = yaml("kubernetes/prometheusrule.yaml");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(
        rule["spec"],
        yaml("prometheus/alerts.yml"),
        "kubernetes/prometheusrule.yaml differs from prometheus/alerts.yml"
    );
}

fn dashboard_exprs(dashboard: &Json) -> Vec<(String, String)> {
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_owned();
            p["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| {
                    let expr = t["expr"].as_str().expect("a PromQL target").to_owned();
                    (title.clone(), expr)
                })
        })
        .collect()
}

#[test]
fn dashboard_parses_and_shows_what_the_issue_asks() {
    let text = read("grafana/dashboards/respite.json");
    let dashboard: Json = serde_json::from_str(&text).expect("dashboard JSON");
    assert_eq!(dashboard["uid"], "respite");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = HashSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate id"
        );
        for key in ["h", "w", "x", "y"] {
            assert!(p["gridPos"][key].is_u64(), "{}: gridPos.{key}", p["title"]);
        }
    }
    let exprs = dashboard_exprs(&dashboard);
    let mut used = BTreeSet::new();
    for (title, expr) in &exprs {
        let names = metrics_in(expr);
        assert!(!names.is_empty(), "{title}: {expr} uses no respite metric");
        assert!(
            expr.matches('(').count() == expr.matches(')').count(),
            "{title}: unbalanced {expr}"
        );
        used.extend(names);
    }
    assert_declared(&used, "grafana/dashboards/respite.json");
    let shows = |title_part: &str, needles: &[&str]| {
        assert!(
            exprs
                .iter()
                .any(|(t, e)| t.to_lowercase().contains(title_part)
                    && needles.iter().all(|n| e.contains(n))),
            "no panel `{title_part}` querying {needles:?}"
        );
    };
    shows(
        "hit ratio",
        &["respite_l1_hits_total", "respite_l1_misses_total"],
    );
    shows("by outcome", &["respite_requests_total", "by (outcome)"]);
    shows(
        "cache hit ratio by namespace",
        &["respite_cache_requests_total", "l1_hit|l2_hit"],
    );
    for q in ["0.95", "0.99"] {
        let quantile = format!("histogram_quantile({q}");
        shows(
            "latency p9",
            &[&quantile, "respite_request_duration_seconds_bucket"],
        );
    }
    shows(
        "latency",
        &[
            "histogram_quantile(0.99",
            "respite_upstream_request_duration_seconds_bucket",
        ],
    );
    shows("memory vs limit", &["respite_l1_memory_bytes"]);
    shows("redis memory vs", &["respite_upstream_used_memory_bytes"]);
    shows("redis memory vs", &["respite_upstream_maxmemory_bytes"]);
    shows("evictions", &["respite_upstream_evicted_keys_total"]);
    shows("namespace keys", &["respite_namespace_redis_keys"]);
    shows("memory vs limit", &["respite_l1_max_bytes"]);
    shows("upstream health", &["respite_upstream_up"]);
    shows("invalidations", &["respite_invalidations_total"]);
    shows(
        "compression ratio",
        &[
            "respite_compression_bytes_in_total",
            "respite_compression_bytes_out_total",
        ],
    );
}

#[test]
fn grafana_provisioning_points_at_the_dashboard() {
    let providers = yaml("grafana/provisioning/dashboards/respite.yml");
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    let compose = yaml("docker-compose.yml");
    let mounts = compose["services"]["grafana"]["volumes"]
        .as_sequence()
        .expect("grafana volumes");
    let mounted = mounts
        .iter()
        .filter_map(Yaml::as_str)
        .any(|m| m.starts_with("./grafana/dashboards:") && m.split(':').nth(1) == Some(path));
    assert!(mounted, "grafana's dashboards are not mounted at {path}");
    let datasources = yaml("grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(datasources["datasources"][0]["type"], "prometheus");
}

#[test]
fn compose_runs_the_four_services_from_files_that_exist() {
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_mapping().expect("services");
    for name in ["redis", "respite", "prometheus", "grafana"] {
        assert!(services.contains_key(Yaml::from(name)), "no service {name}");
    }
    let build = &compose["services"]["respite"]["build"];
    let context = deploy(build["context"].as_str().expect("build context"));
    assert!(
        context
            .join(build["dockerfile"].as_str().expect("dockerfile"))
            .is_file()
    );
    for (name, service) in services {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = volume.as_str().expect("short volume syntax");
            if let Some(rel) = source.split(':').next().filter(|s| s.starts_with('.')) {
                assert!(
                    deploy(rel).exists(),
                    "{name:?} mounts {rel}, which deploy/ lacks"
                );
            }
        }
    }
    // The Prometheus mount holds the config and rules promtool checked: the file
    // `--config.file` names is, through a `./prometheus` volume, deploy/prometheus's.
    assert!(deploy("prometheus/prometheus.yml").is_file());
    let prometheus = &compose["services"]["prometheus"];
    let config_file = prometheus["command"]
        .as_sequence()
        .expect("prometheus command")
        .iter()
        .filter_map(Yaml::as_str)
        .find_map(|arg| arg.strip_prefix("--config.file="))
        .expect("prometheus --config.file");
    let mounted = prometheus["volumes"]
        .as_sequence()
        .expect("prometheus volumes")
        .iter()
        .filter_map(Yaml::as_str)
        .filter(|v| v.starts_with("./prometheus"))
        .find_map(|v| {
            let mut parts = v.split(':');
            let (source, target) = (parts.next()?, parts.next()?);
            let inside = config_file.strip_prefix(target)?.trim_start_matches('/');
            Some(deploy(source).join(inside))
        })
        .unwrap_or_else(|| panic!("no ./prometheus volume holds {config_file}"));
    assert_eq!(
        mounted
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", mounted.display())),
        deploy("prometheus/prometheus.yml").canonicalize().unwrap(),
        "prometheus reads {config_file} from {}",
        mounted.display()
    );
}

/// Checks a `proxy.toml` the way `respite --config` would.
fn assert_valid_config(text: &str, what: &str) -> respite::Config {
    let config = respite::Config::parse(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    config
        .validate(text)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    respite::policy::Policy::from_config(&config).unwrap_or_else(|e| panic!("{what}: {e}"));
    config
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_a_healthcheck() {
    let text = read("Dockerfile");
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let from = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(from >= 2, "multi-stage: {from} FROM");
    let user = instructions
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(
        !matches!(user.split(':').next(), Some("0" | "root")),
        "runs as {user}"
    );
    assert!(instructions.iter().any(|l| l.starts_with("HEALTHCHECK ")));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for line in instructions.iter().filter(|l| l.starts_with("COPY ")) {
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        if args.iter().any(|a| a.starts_with("--from")) {
            continue;
        }
        for src in &args[..args.len() - 1] {
            assert!(root.join(src).exists(), "COPY {src}: not in the repository");
        }
    }
    // The image's configuration is valid and serves metrics on the exposed port.
    let config = assert_valid_config(&read("docker/proxy.toml"), "deploy/docker/proxy.toml");
    let metrics = config.metrics.listen.expect("metrics.listen in the image");
    let port = metrics.rsplit(':').next().unwrap();
    assert!(
        instructions
            .iter()
            .any(|l| l.starts_with("EXPOSE ") && l.split_whitespace().any(|p| p == port)),
        "metrics port {port} not exposed"
    );
    assert!(text.contains(&format!("/dev/tcp/127.0.0.1/{port}")));
}

fn manifests() -> Vec<(String, Yaml)> {
    let dir = deploy("kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    files
        .iter()
        .flat_map(|f| {
            let rel = format!("kubernetes/{}", f.file_name().unwrap().to_string_lossy());
            yaml_docs(&rel).into_iter().map(move |d| (rel.clone(), d))
        })
        .collect()
}

#[test]
fn every_yaml_file_parses() {
    let mut seen = 0;
    let mut stack = vec![deploy("")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                let rel = path.strip_prefix(deploy("")).unwrap().to_string_lossy();
                assert!(!yaml_docs(&rel).is_empty(), "{rel} is empty");
                seen += 1;
            }
        }
    }
    assert!(seen >= 12, "{seen} YAML files");
}

#[test]
fn kubernetes_manifests_are_complete() {
    let docs = manifests();
    let kinds: Vec<(String, String)> = docs
        .iter()
        .map(|(file, d)| {
            let kind = d["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: no kind"));
            assert!(d["apiVersion"].is_string(), "{file}: no apiVersion");
            if kind != "Kustomization" {
                assert!(
                    d["metadata"]["name"].is_string(),
                    "{file}: {kind} without a name"
                );
            }
            (file.clone(), kind.to_owned())
        })
        .collect();
    for kind in [
        "Deployment",
        "Service",
        "ConfigMap",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
    ] {
        assert!(kinds.iter().any(|(_, k)| k == kind), "no {kind}");
    }
    // The Kustomization lists files that exist.
    let kustomization = yaml("kubernetes/kustomization.yaml");
    for r in kustomization["resources"].as_sequence().expect("resources") {
        let file = r.as_str().unwrap();
        assert!(deploy("kubernetes").join(file).is_file(), "{file}");
    }

    let config = docs
        .iter()
        .find(|(_, d)| d["kind"] == "ConfigMap")
        .map(|(_, d)| d.clone())
        .unwrap();
    let name = config["metadata"]["name"].as_str().unwrap();
    let toml = config["data"]["proxy.toml"]
        .as_str()
        .expect("data.proxy.toml");
    let parsed = assert_valid_config(toml, "the ConfigMap's proxy.toml");
    let metrics_port = parsed.metrics.listen.expect("metrics.listen");
    let metrics_port = metrics_port.rsplit(':').next().unwrap();

    let deployments: Vec<&Yaml> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "Deployment")
        .map(|(_, d)| d)
        .collect();
    assert!(deployments.len() >= 2, "the proxy and the sidecar example");
    let mut sidecar_example = false;
    for d in deployments {
        let spec = &d["spec"]["template"]["spec"];
        let all: Vec<&Yaml> = ["containers", "initContainers"]
            .iter()
            .flat_map(|k| spec[*k].as_sequence().into_iter().flatten())
            .collect();
        let respite = all
            .iter()
            .find(|c| c["name"] == "respite")
            .expect("a respite container");
        sidecar_example |= all.len() > 2 && all.iter().any(|c| c["name"] == "app");
        // Probes on the metrics endpoint.
        let port = respite["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "metrics")
            .expect("a metrics port");
        assert_eq!(
            port["containerPort"].as_u64().unwrap().to_string(),
            metrics_port
        );
        assert_eq!(respite["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(respite["readinessProbe"]["httpGet"]["path"], "/readyz");
        // The ConfigMap is mounted as a directory: updates reach the running pod.
        let mount = respite["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == "/etc/respite")
            .expect("config mounted at /etc/respite");
        assert!(mount["subPath"].is_null(), "subPath mounts never update");
        let volume = spec["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("the mounted volume");
        assert_eq!(volume["configMap"]["name"], name);
        let args: Vec<&str> = respite["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Yaml::as_str)
            .collect();
        assert_eq!(args, ["--config", "/etc/respite/proxy.toml"]);
        assert_eq!(
            spec["shareProcessNamespace"], true,
            "the reloader signals respite"
        );
    }
    assert!(sidecar_example, "no app container beside a respite sidecar");

    let service = docs
        .iter()
        .find(|(_, d)| d["kind"] == "Service")
        .map(|(_, d)| d)
        .unwrap();
    let monitor = docs
        .iter()
        .find(|(_, d)| d["kind"] == "ServiceMonitor")
        .map(|(_, d)| d)
        .unwrap();
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    assert!(
        service["spec"]["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p["name"] == endpoint["port"])
    );
}

#[test]
fn systemd_unit_reloads_with_sighup() {
    let unit = read("systemd/respite.service");
    assert!(
        unit.lines()
            .any(|l| l.trim() == "ExecReload=/bin/kill -HUP $MAINPID"),
        "{unit}"
    );
}
