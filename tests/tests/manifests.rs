//! The ATP manifests that every bundle ships (`manifests/`): the kustomize
//! base and the air-gapped overlay render with the real `kubectl kustomize`,
//! validate against the Kubernetes schemas with `kubernetes-validate
//! --strict`, and have the properties docs/guide.md promises.
//!
//! No Kubernetes API server runs in the test environment and none is needed:
//! rendering and schema validation are local. This file never talks to a
//! cluster and never writes outside a pipe.
//!
//! The one object the schemas cannot cover is the ServiceMonitor: it is a
//! custom resource (monitoring.coreos.com/v1) and kubernetes-validate only
//! bundles the built-in Kubernetes schemas, with no way to add a CRD schema.
//! It is left out of the schema run (see [`NOT_SCHEMA_VALIDATED`]) and its
//! fields are checked by parsing instead
//! (`service_monitor_scrapes_the_named_metrics_port`). The PrometheusRule,
//! another such resource, is checked by promtool in `alert_rules.rs`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

/// The Kubernetes version the manifests are validated against: the minor of
/// the kubectl (v1.32) that renders them. kubernetes-validate 1.37 bundles
/// schemas for 1.25 to 1.37; the test fails if 1.32 is ever dropped.
const KUBERNETES_VERSION: &str = "1.32.0";

/// Kinds that are not schema-validated, and why.
const NOT_SCHEMA_VALIDATED: &[(&str, &str)] = &[
    (
        "ServiceMonitor",
        "a Prometheus Operator custom resource; kubernetes-validate bundles only the \
         built-in Kubernetes schemas and cannot load a CRD schema, so its fields are \
         asserted by parsing instead",
    ),
    (
        "PrometheusRule",
        "a Prometheus Operator custom resource, like the ServiceMonitor; its rules are \
         checked by promtool check rules and promtool test rules (tests/alert_rules.rs)",
    ),
];

/// The fixture images, spelled exactly as the base spells them. The spellings
/// differ on purpose so that the installer's rewriting is exercised.
const ROUTER: &str = "docker.io/atp/router:1.4.0";
const MODEL_LOADER: &str = "atp/model-loader:1.4.0";
const METRICS_EXPORTER: &str = "docker.io/atp/metrics-exporter:0.9.2";
const FIXTURE_IMAGES: [&str; 3] = [ROUTER, MODEL_LOADER, METRICS_EXPORTER];

const BASE: &str = "manifests/base";
const OVERLAY: &str = "manifests/overlays/air-gapped";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `kubectl kustomize DIR`, once per directory for the whole test binary.
fn rendered(dir: &'static str) -> &'static str {
    static BASE_YAML: OnceLock<String> = OnceLock::new();
    static OVERLAY_YAML: OnceLock<String> = OnceLock::new();
    let cell = match dir {
        BASE => &BASE_YAML,
        OVERLAY => &OVERLAY_YAML,
        other => panic!("no cache for {other}"),
    };
    cell.get_or_init(|| kustomize(dir))
}

fn kustomize(dir: &str) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(workspace().join(dir))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubectl: {e}\nhint: kubectl (v1.32 with kustomize v5) ships on the machine image")
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kustomize prints UTF-8")
}

/// Every YAML document of a rendering, as JSON values.
fn objects(dir: &'static str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(rendered(dir))
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{dir}: bad YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn find<'a>(objs: &'a [Value], k: &str, n: &str) -> &'a Value {
    objs.iter()
        .find(|o| kind(o) == k && name(o) == n)
        .unwrap_or_else(|| panic!("no {k}/{n} in the rendering"))
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn container<'a>(pod: &'a Value, field: &str, n: &str) -> &'a Value {
    list(&pod[field])
        .iter()
        .find(|c| c["name"] == n)
        .unwrap_or_else(|| panic!("no {field} entry named {n}"))
}

fn pod_spec(objs: &[Value]) -> &Value {
    &find(objs, "Deployment", "atp-router")["spec"]["template"]["spec"]
}

/// Runs kubernetes-validate on every object but the [`NOT_SCHEMA_VALIDATED`]
/// kinds, and requires each one to be reported as passed against
/// [`KUBERNETES_VERSION`]: a warning (such as an unknown schema) fails too.
fn validate(dir: &'static str) {
    let tool = workspace().join(".venv/bin/kubernetes-validate");
    assert!(
        tool.exists(),
        "{} is missing\nhint: run scripts/install-deps.sh (make test does it first)",
        tool.display()
    );
    let all = objects(dir);
    let (skipped, checked): (Vec<&Value>, Vec<&Value>) = all
        .iter()
        .partition(|o| NOT_SCHEMA_VALIDATED.iter().any(|(k, _)| *k == kind(o)));
    for o in &skipped {
        let why = NOT_SCHEMA_VALIDATED
            .iter()
            .find(|(k, _)| *k == kind(o))
            .map(|(_, why)| *why)
            .unwrap_or_default();
        eprintln!("{dir}: {}/{} not schema-validated: {why}", kind(o), name(o));
    }
    // JSON is YAML: one object per document.
    let input: String = checked.iter().map(|o| format!("---\n{o}\n")).collect();
    let mut child = Command::new(&tool)
        .args(["--strict", "-k", KUBERNETES_VERSION, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("write to kubernetes-validate");
    let out = child.wait_with_output().expect("kubernetes-validate runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{dir} does not validate against Kubernetes {KUBERNETES_VERSION} ({}):\n{report}",
        out.status
    );
    let minor = KUBERNETES_VERSION
        .rsplit_once('.')
        .map(|(mm, _)| mm)
        .unwrap();
    let passed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("INFO ") && l.ends_with(&format!("against version {minor}")))
        .collect();
    let other: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty() && !passed.contains(l))
        .collect();
    assert!(
        other.is_empty(),
        "{dir}: unexpected validator output:\n{report}"
    );
    assert_eq!(
        passed.len(),
        checked.len(),
        "{dir}: every object must be reported as passed:\n{report}"
    );
}

#[test]
fn base_renders_and_validates_against_kubernetes_schemas() {
    validate(BASE);
}

#[test]
fn air_gapped_overlay_renders_and_validates_against_kubernetes_schemas() {
    validate(OVERLAY);
}

#[test]
fn renderings_hold_the_expected_objects_in_atp_system() {
    for dir in [BASE, OVERLAY] {
        let objs = objects(dir);
        let mut have: Vec<String> = objs
            .iter()
            .map(|o| format!("{}/{}", kind(o), name(o)))
            .collect();
        have.sort();
        let mut want = vec![
            "Namespace/atp-system",
            "Deployment/atp-router",
            "Service/atp-router",
            "ServiceMonitor/atp-router",
            "PrometheusRule/atp-alerts",
            "NetworkPolicy/atp-router-ingress",
            "HorizontalPodAutoscaler/atp-router",
            "PodDisruptionBudget/atp-router",
            "PersistentVolumeClaim/atp-model-cache",
        ];
        if dir == OVERLAY {
            want.push("NetworkPolicy/atp-egress-air-gapped");
        }
        want.sort();
        assert_eq!(have, want, "{dir}");
        for o in objs.iter().filter(|o| kind(o) != "Namespace") {
            assert_eq!(
                o["metadata"]["namespace"],
                "atp-system",
                "{dir}: {}/{}",
                kind(o),
                name(o)
            );
        }
        // The overlay references the installer's secrets but must not define
        // them: their content only exists at install time.
        assert!(
            !objs.iter().any(|o| kind(o) == "Secret"),
            "{dir} defines a Secret"
        );
    }
}

#[test]
fn router_deployment_is_hardened_sized_and_probed() {
    for dir in [BASE, OVERLAY] {
        let objs = objects(dir);
        let pod = pod_spec(&objs);
        let labels =
            &find(&objs, "Deployment", "atp-router")["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "atp-router");

        let anti = &pod["affinity"]["podAntiAffinity"];
        assert!(
            !list(&anti["preferredDuringSchedulingIgnoredDuringExecution"]).is_empty(),
            "{dir}: pod anti-affinity"
        );
        let spread = list(&pod["topologySpreadConstraints"]);
        assert!(!spread.is_empty(), "{dir}: topology spread constraint");
        assert_eq!(
            spread[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/name"],
            "atp-router"
        );

        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{dir}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        for field in ["initContainers", "containers"] {
            for c in list(&pod[field]) {
                let sc = &c["securityContext"];
                let who = format!("{dir}: {field} {}", c["name"]);
                assert_eq!(sc["runAsNonRoot"], true, "{who}");
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{who}");
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{who}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{who}"
                );
                assert!(sc["capabilities"]["add"].is_null(), "{who}");
                assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{who}");
                assert!(
                    c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object(),
                    "{who}: requests and limits"
                );
            }
        }

        let router = container(pod, "containers", "router");
        assert_eq!(
            router["resources"],
            serde_json::json!({
                "requests": {"memory": "512Mi", "cpu": "500m"},
                "limits": {"memory": "1Gi", "cpu": "1000m"},
            }),
            "{dir}"
        );
        for probe in ["livenessProbe", "readinessProbe"] {
            assert_eq!(
                router[probe]["httpGet"]["path"], "/healthz",
                "{dir}: {probe}"
            );
        }
        for (var, key) in [("DATABASE_URL", "database-url"), ("REDIS_URL", "redis-url")] {
            let env = list(&router["env"])
                .iter()
                .find(|e| e["name"] == var)
                .unwrap_or_else(|| panic!("{dir}: no {var}"));
            assert_eq!(
                env["valueFrom"]["secretKeyRef"],
                serde_json::json!({"name": "atp-secrets", "key": key}),
                "{dir}: {var}"
            );
        }
        assert_eq!(metrics_port(pod), Some(9090), "{dir}: named metrics port");
    }
}

/// The container port named `metrics`, from any container of the pod.
fn metrics_port(pod: &Value) -> Option<u64> {
    list(&pod["containers"])
        .iter()
        .flat_map(|c| list(&c["ports"]))
        .find(|p| p["name"] == "metrics")
        .and_then(|p| p["containerPort"].as_u64())
}

#[test]
fn service_autoscaler_budget_and_cache_claim_are_as_documented() {
    let objs = objects(OVERLAY);
    let svc = find(&objs, "Service", "atp-router");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(
        svc["spec"]["selector"]["app.kubernetes.io/name"],
        "atp-router"
    );

    let hpa = &find(&objs, "HorizontalPodAutoscaler", "atp-router")["spec"];
    assert_eq!(hpa["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(hpa["scaleTargetRef"]["name"], "atp-router");
    assert_eq!(
        (hpa["minReplicas"].as_u64(), hpa["maxReplicas"].as_u64()),
        (Some(3), Some(10))
    );
    let cpu = &hpa["metrics"][0]["resource"];
    assert_eq!(cpu["name"], "cpu");
    assert_eq!(cpu["target"]["averageUtilization"], 70);
    // The autoscaler owns the replica count; a fixed one would fight it.
    assert!(find(&objs, "Deployment", "atp-router")["spec"]["replicas"].is_null());

    let pdb = &find(&objs, "PodDisruptionBudget", "atp-router")["spec"];
    assert_eq!(
        pdb["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "atp-router"
    );

    let pvc = &find(&objs, "PersistentVolumeClaim", "atp-model-cache")["spec"];
    assert_eq!(pvc["accessModes"], serde_json::json!(["ReadWriteOnce"]));
    assert_eq!(pvc["storageClassName"], "local-storage");
    assert_eq!(pvc["resources"]["requests"]["storage"], "50Gi");

    let ns = find(&objs, "Namespace", "atp-system");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

/// Not schema-validated (see the module docs), so checked field by field,
/// including that it only uses fields the ServiceMonitor CRD defines.
#[test]
fn service_monitor_scrapes_the_named_metrics_port() {
    for dir in [BASE, OVERLAY] {
        let objs = objects(dir);
        let sm = find(&objs, "ServiceMonitor", "atp-router");
        assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1", "{dir}");
        let spec = &sm["spec"];
        // A subset of the CRD's ServiceMonitorSpec and Endpoint properties.
        let spec_fields = [
            "endpoints",
            "jobLabel",
            "namespaceSelector",
            "podTargetLabels",
            "sampleLimit",
            "selector",
            "targetLabels",
        ];
        let endpoint_fields = [
            "honorLabels",
            "interval",
            "path",
            "port",
            "scheme",
            "scrapeTimeout",
            "targetPort",
            "tlsConfig",
        ];
        for key in spec.as_object().expect("spec is a map").keys() {
            assert!(spec_fields.contains(&key.as_str()), "{dir}: spec.{key}");
        }
        let endpoints = list(&spec["endpoints"]);
        assert!(!endpoints.is_empty(), "{dir}: no endpoints");
        let svc = find(&objs, "Service", "atp-router");
        for ep in endpoints {
            for key in ep.as_object().expect("endpoint is a map").keys() {
                assert!(
                    endpoint_fields.contains(&key.as_str()),
                    "{dir}: endpoint {key}"
                );
            }
            let port = ep["port"].as_str().expect("endpoint port is a name");
            assert!(
                list(&svc["spec"]["ports"])
                    .iter()
                    .any(|p| p["name"] == port),
                "{dir}: the Service has no port named {port}"
            );
            for d in ["interval", "scrapeTimeout"] {
                let v = ep[d].as_str().unwrap_or("30s");
                assert!(is_prometheus_duration(v), "{dir}: {d} {v:?}");
            }
        }
        let selector = spec["selector"]["matchLabels"]
            .as_object()
            .expect("selector.matchLabels");
        assert!(!selector.is_empty(), "{dir}: empty selector");
        for (k, v) in selector {
            assert_eq!(
                &svc["metadata"]["labels"][k], v,
                "{dir}: selector {k} does not match the Service"
            );
        }
        assert_eq!(
            spec["namespaceSelector"]["matchNames"],
            serde_json::json!(["atp-system"])
        );
    }
}

/// The CRD's duration pattern, e.g. `30s`, `1m30s`, `500ms`.
fn is_prometheus_duration(s: &str) -> bool {
    let mut rest = s;
    if rest == "0" {
        return true;
    }
    let units = ["y", "w", "d", "h", "m", "s", "ms"];
    let mut last = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = if rest.starts_with("ms") {
            "ms"
        } else {
            &rest[..rest.len().min(1)]
        };
        let Some(i) = units.iter().position(|u| *u == unit) else {
            return false;
        };
        if last.is_some_and(|l| i <= l) {
            return false;
        }
        last = Some(i);
        rest = &rest[unit.len()..];
    }
    last.is_some()
}

#[test]
fn air_gapped_overlay_sets_offline_env_model_cache_and_registry_wiring() {
    let objs = objects(OVERLAY);
    let pod = pod_spec(&objs);
    let router = container(pod, "containers", "router");
    let env = |c: &Value, var: &str| -> Value {
        list(&c["env"])
            .iter()
            .find(|e| e["name"] == var)
            .map(|e| e["value"].clone())
            .unwrap_or(Value::Null)
    };
    for var in [
        "ATP_AIR_GAPPED",
        "ATP_DISABLE_TELEMETRY",
        "ATP_OFFLINE_MODE",
        "ATP_DISABLE_EXTERNAL_APIS",
    ] {
        assert_eq!(env(router, var), "true", "router {var}");
    }
    assert_eq!(env(router, "ATP_LOCAL_MODEL_CACHE"), "/app/models");

    // /app/models is the atp-model-cache claim, in the router and the loader.
    let volume = |n: &str| -> &Value {
        list(&pod["volumes"])
            .iter()
            .find(|v| v["name"] == n)
            .unwrap_or_else(|| panic!("no volume {n}"))
    };
    for (field, n) in [("containers", "router"), ("initContainers", "model-loader")] {
        let c = container(pod, field, n);
        let mount = |path: &str| -> &Value {
            list(&c["volumeMounts"])
                .iter()
                .find(|m| m["mountPath"] == path)
                .unwrap_or_else(|| panic!("{n}: nothing mounted at {path}"))
        };
        let cache = volume(mount("/app/models")["name"].as_str().unwrap());
        assert_eq!(
            cache["persistentVolumeClaim"]["claimName"], "atp-model-cache",
            "{n}: /app/models"
        );
        assert!(
            cache["emptyDir"].is_null(),
            "{n}: the cache is still an emptyDir"
        );
        let certs = mount("/etc/atp/registry-certs");
        assert_eq!(certs["readOnly"], true, "{n}: registry certs read-only");
        assert_eq!(
            volume(certs["name"].as_str().unwrap())["secret"]["secretName"],
            "registry-certs"
        );
    }
    assert_eq!(
        pod["imagePullSecrets"],
        serde_json::json!([{"name": "atp-registry-pull"}])
    );
}

#[test]
fn air_gapped_egress_reaches_only_dns_postgres_and_redis() {
    let objs = objects(OVERLAY);
    let egress: Vec<&Value> = objs
        .iter()
        .filter(|o| kind(o) == "NetworkPolicy")
        .filter(|o| {
            list(&o["spec"]["policyTypes"])
                .iter()
                .any(|t| t == "Egress")
        })
        .collect();
    // One policy that selects every pod of the namespace, so nothing in
    // atp-system is left with the default (allow all) egress.
    assert!(
        egress.iter().any(|p| p["spec"]["podSelector"]
            .as_object()
            .is_some_and(|s| s.is_empty())),
        "no egress policy selects every pod in atp-system"
    );
    let mut ports = BTreeSet::new();
    for p in &egress {
        for rule in list(&p["spec"]["egress"]) {
            // An empty or missing `to` means every destination, internet included.
            let to = list(&rule["to"]);
            assert!(
                !to.is_empty(),
                "{}: egress rule without `to`: {rule}",
                name(p)
            );
            for peer in to {
                assert!(
                    peer["ipBlock"].is_null(),
                    "{}: egress to an ipBlock ({}) reaches outside the cluster",
                    name(p),
                    peer["ipBlock"]
                );
            }
            let rule_ports = list(&rule["ports"]);
            assert!(
                !rule_ports.is_empty(),
                "{}: egress rule on every port",
                name(p)
            );
            for port in rule_ports {
                let proto = port["protocol"].as_str().unwrap_or("TCP").to_string();
                let number = port["port"].as_u64().expect("numeric egress port");
                assert!(port["endPort"].is_null(), "port range in {}", name(p));
                if number == 53 {
                    assert_eq!(
                        to,
                        [
                            serde_json::json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}})
                        ],
                        "DNS goes to kube-system only"
                    );
                }
                ports.insert((number, proto));
            }
        }
    }
    let want: BTreeSet<(u64, String)> = [(53, "UDP"), (53, "TCP"), (5432, "TCP"), (6379, "TCP")]
        .into_iter()
        .map(|(n, p)| (n, p.to_string()))
        .collect();
    assert_eq!(ports, want);

    // Ingress: Prometheus from the monitoring namespace, on the metrics port.
    let ingress = find(&objs, "NetworkPolicy", "atp-router-ingress");
    let pod = pod_spec(&objs);
    let scrape = list(&ingress["spec"]["ingress"])
        .iter()
        .find(|r| {
            list(&r["from"]).iter().any(|f| {
                f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "monitoring"
            })
        })
        .expect("an ingress rule from the monitoring namespace");
    let port = &scrape["ports"][0]["port"];
    let resolved = match port {
        Value::String(n) if n == "metrics" => metrics_port(pod),
        other => other.as_u64(),
    };
    assert_eq!(resolved, Some(9090));
    // Every ingress peer is chosen by namespace label: none is an ipBlock.
    for rule in list(&ingress["spec"]["ingress"]) {
        let from = list(&rule["from"]);
        assert!(!from.is_empty(), "ingress rule open to everyone: {rule}");
        for peer in from {
            assert!(
                peer["namespaceSelector"]["matchLabels"].is_object(),
                "{peer}"
            );
            assert!(peer["ipBlock"].is_null(), "{peer}");
        }
    }
}

/// Every `image:` of a pod template in a rendering.
fn images(dir: &'static str) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects(dir) {
        let pod = &o["spec"]["template"]["spec"];
        for field in ["initContainers", "containers", "ephemeralContainers"] {
            for c in list(&pod[field]) {
                out.push(c["image"].as_str().expect("image is a string").to_string());
            }
        }
    }
    out
}

#[test]
fn every_image_is_one_of_the_fixture_images_as_spelled() {
    for dir in [BASE, OVERLAY] {
        let found = images(dir);
        for image in &found {
            assert!(
                FIXTURE_IMAGES.contains(&image.as_str()),
                "{dir}: image {image:?} is not one of the fixture images {FIXTURE_IMAGES:?}"
            );
        }
        let distinct: BTreeSet<&str> = found.iter().map(String::as_str).collect();
        assert_eq!(distinct, FIXTURE_IMAGES.into_iter().collect(), "{dir}");
    }
    let pod = pod_spec(&objects(OVERLAY)).clone();
    assert_eq!(container(&pod, "containers", "router")["image"], ROUTER);
    assert_eq!(
        container(&pod, "initContainers", "model-loader")["image"],
        MODEL_LOADER
    );
    assert_eq!(
        container(&pod, "containers", "metrics-exporter")["image"],
        METRICS_EXPORTER
    );
}

/// Docker's normalization, enough for the fixture spellings: a missing
/// registry is docker.io, a one-component Docker Hub path gains `library/`.
fn normalize(image: &str) -> String {
    let (first, rest) = image.split_once('/').unwrap_or(("", image));
    let registry_given =
        !first.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost");
    match (registry_given, first.is_empty()) {
        (true, _) => image.to_string(),
        (false, true) => format!("docker.io/library/{rest}"),
        (false, false) => format!("docker.io/{image}"),
    }
}

#[test]
fn demo_bundle_spec_carries_exactly_the_images_the_overlay_uses() {
    let path = workspace().join("manifests/bundle.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let spec: Value = serde_yaml_ng::from_str(&text).expect("bundle.yaml is YAML");
    assert_eq!(spec["apiVersion"], "atp-offline/v1");
    assert_eq!(spec["kind"], "Bundle");
    assert_eq!(
        spec["metadata"],
        serde_json::json!({"name": "atp", "version": "1.4.0"})
    );
    let body = &spec["spec"];
    assert_eq!(body["channel"], "stable");
    assert_eq!(body["sequence"], 1);
    assert!(body["platforms"].is_null() && body["files"].is_null());
    assert_eq!(
        body["manifests"],
        serde_json::json!({"root": ".", "overlay": "overlays/air-gapped"})
    );
    let overlay = workspace().join("manifests").join("overlays/air-gapped");
    assert!(overlay.join("kustomization.yaml").is_file());

    let mut names = BTreeSet::new();
    for img in list(&body["images"]) {
        let name = img["name"].as_str().expect("map form with name:");
        let source = img["source"].as_str().expect("map form with source:");
        let layout = source
            .strip_prefix("oci:../fixtures/images/")
            .unwrap_or_else(|| panic!("{source}: not a fixture OCI layout"));
        // oci:../fixtures/images/router:1.4.0 is docker.io/atp/router:1.4.0
        assert_eq!(format!("docker.io/atp/{layout}"), name, "{source}");
        names.insert(name.to_string());
    }
    let used: BTreeSet<String> = images(OVERLAY).iter().map(|i| normalize(i)).collect();
    assert_eq!(names, used, "bundle.yaml images vs images the overlay uses");
}

#[test]
fn normalize_follows_docker_rules() {
    assert_eq!(normalize(MODEL_LOADER), "docker.io/atp/model-loader:1.4.0");
    assert_eq!(normalize(ROUTER), ROUTER);
    assert_eq!(normalize("nginx:1"), "docker.io/library/nginx:1");
    assert_eq!(normalize("localhost:5000/a:1"), "localhost:5000/a:1");
    assert!(is_prometheus_duration("1m30s") && is_prometheus_duration("500ms"));
    assert!(
        !is_prometheus_duration("30")
            && !is_prometheus_duration("s")
            && !is_prometheus_duration("30s1m")
    );
}
