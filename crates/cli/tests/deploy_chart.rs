//! The Helm chart (`deploy/helm/moor`) and the plain manifests rendered from it
//! (`deploy/kubernetes/moor.yaml`), for users without Helm:
//! - the chart lints, and its values schema refuses bad values;
//! - the plain manifests are exactly what `helm template` renders (kept in sync);
//! - every rendered object is a valid Kubernetes object of its kind (k8s-openapi's
//!   types round-trip it without loss: no unknown or mistyped field);
//! - moor's own RBAC is least privilege, and the bootstrap ClusterRoles the chart ships
//!   are moor's own bootstrap policy;
//! - kubectl accepts the kinds a moor server serves (`apply --dry-run=server`).
//!
//! `MOOR_BLESS=1 cargo test --workspace --locked --test deploy_chart` rewrites the
//! generated files after a change of the chart or of the bootstrap policy.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use support::{Kubectl, peer, run, start};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart() -> PathBuf {
    repo().join("deploy/helm/moor")
}

fn bless() -> bool {
    std::env::var_os("MOOR_BLESS").is_some()
}

/// Compares a generated file with what it must hold (or rewrites it, blessing).
fn generated(path: &Path, want: &str) {
    if bless() {
        std::fs::write(path, want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date: run MOOR_BLESS=1 cargo test --workspace --locked --test deploy_chart",
        path.display()
    );
}

const PLAIN_HEADER: &str = "\
# moor for Kubernetes, without Helm: the chart deploy/helm/moor rendered with its default
# values into the namespace `moor` (helm template moor deploy/helm/moor --namespace moor).
# Needs cert-manager for the serving certificate; see docs/cluster.md.
#
#   kubectl create namespace moor
#   kubectl apply -f deploy/kubernetes/moor.yaml
#
# Generated: edit the chart, then run
#   MOOR_BLESS=1 cargo test --workspace --locked --test deploy_chart
";

fn helm(args: &[&str]) -> (bool, String, String) {
    let helm = peer("helm").expect("checked by the caller");
    run(Command::new(helm).args(args))
}

fn render(extra: &[&str]) -> (bool, String, String) {
    let chart = chart();
    let mut args = vec![
        "template",
        "moor",
        chart.to_str().unwrap(),
        "--namespace",
        "moor",
    ];
    args.extend_from_slice(extra);
    helm(&args)
}

/// The documents of a multi-document YAML text, as JSON.
fn documents(yaml: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn plain() -> Vec<Value> {
    documents(&std::fs::read_to_string(repo().join("deploy/kubernetes/moor.yaml")).unwrap())
}

#[test]
fn plain_manifests_are_the_rendered_chart() {
    if peer("helm").is_none() {
        return;
    }
    let (ok, out, err) = render(&[]);
    assert!(ok, "helm template: {err}");
    generated(
        &repo().join("deploy/kubernetes/moor.yaml"),
        &format!("{PLAIN_HEADER}{out}"),
    );
}

#[test]
fn the_chart_lints_and_its_schema_refuses_bad_values() {
    if peer("helm").is_none() {
        return;
    }
    let (ok, out, err) = helm(&["lint", "--strict", chart().to_str().unwrap()]);
    assert!(ok, "helm lint: {out}{err}");
    for bad in [
        "service.port=https",
        "webhook.failurePolicy=Sometimes",
        "registry.mirrors[0]=no-equals-sign",
        "scheduledImportInterval=often",
        "webhook.callerCA=not-a-certificate",
        "pullSecrets.enabled=yes",
        "nosuchvalue=1",
    ] {
        let (ok, _, err) = render(&["--set", bad]);
        assert!(!ok, "--set {bad} was accepted");
        assert!(
            err.contains("values don't meet the specifications of the schema"),
            "{bad}: {err}"
        );
    }
    // The other ways to run: no cert-manager, a registry hostname, no webhook.
    let (ok, out, err) = render(&[
        "--set",
        "tls.certManager.enabled=false,tls.existingSecret=moor-tls,tls.caBundle=Q0E=",
        "--set",
        "registry.hostname=registry.example:5000,webhook.enabled=false,persistence.enabled=false",
    ]);
    assert!(ok, "{err}");
    let docs = documents(&out);
    assert!(docs.iter().all(|d| d["apiVersion"] != "cert-manager.io/v1"));
    assert!(
        docs.iter()
            .all(|d| d["kind"] != "MutatingWebhookConfiguration")
    );
    let api = docs.iter().find(|d| d["kind"] == "APIService").unwrap();
    assert_eq!(api["spec"]["caBundle"], "Q0E=");
    let sts = docs.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    assert!(sts["spec"]["volumeClaimTemplates"].is_null());
    let args = &sts["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        args.as_array()
            .unwrap()
            .contains(&Value::from("--registry-hostname=registry.example:5000"))
    );
    for d in &docs {
        valid(d);
    }
    // kube-apiserver's webhook client CA: a ConfigMap, mounted, given as --client-ca-file.
    let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let (ok, out, err) = render(&["--set-string", &format!("webhook.callerCA={ca}")]);
    assert!(ok, "{err}");
    let docs = documents(&out);
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("the caller CA");
    assert_eq!(cm["data"]["ca.crt"], ca);
    let sts = docs.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    assert!(
        sts["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .contains(&Value::from(
                "--client-ca-file=/etc/moor/webhook-caller/ca.crt"
            ))
    );
    for d in &docs {
        valid(d);
    }
}

/// The console's OIDC login: the AuthenticationConfiguration in a ConfigMap, mounted
/// and given as --authentication-config with the client id, the client secret's Secret
/// mounted, and --console-url; a URL with a path is refused by the schema.
#[test]
fn console_oidc_values_mount_the_config_and_give_the_flags() {
    if peer("helm").is_none() {
        return;
    }
    let config = "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer: {url: https://dex.example.com, audiences: [kubernetes]}\n";
    let values = tempfile::NamedTempFile::new().unwrap();
    let text = serde_json::json!({"console": {
        "url": "https://moor.example.com",
        "oidc": {"authenticationConfig": config, "clientId": "kubernetes",
                 "clientSecretName": "dex-client"},
    }});
    std::fs::write(values.path(), text.to_string()).unwrap();
    let (ok, out, err) = render(&["--values", values.path().to_str().unwrap()]);
    assert!(ok, "{err}");
    let docs = documents(&out);
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "moor-console-oidc")
        .expect("the authentication config");
    assert_eq!(cm["data"]["authn.yaml"], config);
    let sts = docs.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    let pod = &sts["spec"]["template"]["spec"];
    let args = pod["containers"][0]["args"].as_array().unwrap();
    for flag in [
        "--console-url=https://moor.example.com",
        "--authentication-config=/etc/moor/console-oidc/authn.yaml",
        "--console-oidc-client-id=kubernetes",
        "--console-oidc-client-secret-file=/etc/moor/console-oidc-secret/client-secret",
    ] {
        assert!(args.contains(&Value::from(flag)), "{flag}: {args:?}");
    }
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["configMap"]["name"] == "moor-console-oidc")
    );
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == "dex-client")
    );
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    for path in ["/etc/moor/console-oidc", "/etc/moor/console-oidc-secret"] {
        assert!(mounts.iter().any(|m| m["mountPath"] == path), "{path}");
    }
    for d in &docs {
        valid(d);
    }
    // Without the config: no login flags, no ConfigMap.
    let (ok, out, err) = render(&["--set", "console.oidc.clientId=kubernetes"]);
    assert!(ok, "{err}");
    assert!(!out.contains("console-oidc"), "{out}");
    for bad in [
        "console.url=moor.example.com",
        "console.url=https://moor.example.com/console",
    ] {
        let (ok, _, err) = render(&["--set", bad]);
        assert!(!ok, "--set {bad} was accepted");
        assert!(
            err.contains("values don't meet the specifications of the schema"),
            "{bad}: {err}"
        );
    }
}

/// Deserializes `doc` as `K` and back: anything the type does not know, or knows with
/// another type, is lost, and the two differ.
fn round_trip<K: DeserializeOwned + Serialize>(doc: &Value) {
    let typed: K = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{} {}: {e}", doc["kind"], doc["metadata"]["name"]));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, doc,
        "{} {} lost fields",
        doc["kind"], doc["metadata"]["name"]
    );
}

fn valid(doc: &Value) {
    match (
        doc["apiVersion"].as_str().unwrap(),
        doc["kind"].as_str().unwrap(),
    ) {
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(doc),
        ("v1", "Service") => round_trip::<Service>(doc),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(doc),
        ("apps/v1", "StatefulSet") => round_trip::<StatefulSet>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(doc)
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(doc),
        ("apiregistration.k8s.io/v1", "APIService") => round_trip::<APIService>(doc),
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
            round_trip::<MutatingWebhookConfiguration>(doc)
        }
        // cert-manager's kinds: no Rust types; their fields are checked by name.
        ("cert-manager.io/v1", "Issuer") => {
            let spec = doc["spec"].as_object().unwrap();
            assert!(
                spec.contains_key("selfSigned") || spec.contains_key("ca"),
                "{doc}"
            );
        }
        ("cert-manager.io/v1", "Certificate") => {
            let spec = doc["spec"].as_object().unwrap();
            for k in spec.keys() {
                assert!(
                    [
                        "isCA",
                        "commonName",
                        "secretName",
                        "duration",
                        "renewBefore",
                        "privateKey",
                        "dnsNames",
                        "issuerRef"
                    ]
                    .contains(&k.as_str()),
                    "unknown Certificate field {k}"
                );
            }
        }
        (v, k) => panic!("unexpected object {v} {k}"),
    }
}

#[test]
fn rendered_objects_are_valid_kubernetes_objects() {
    let docs = plain();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    for want in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "RoleBinding",
        "Service",
        "StatefulSet",
        "APIService",
        "MutatingWebhookConfiguration",
        "Certificate",
    ] {
        assert!(kinds.contains(&want), "no {want} in {kinds:?}");
    }
    for d in &docs {
        valid(d);
    }
    // Both groups are registered with the aggregator, through the service.
    let groups: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "APIService")
        .map(|d| d["spec"]["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["image.openshift.io", "moor.io"]);
    // The container runs moor in cluster mode with the served certificate.
    let sts = docs.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    let args: Vec<&str> = sts["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for want in [
        "serve",
        "--in-cluster",
        "--tls-cert-file=/etc/moor/tls/tls.crt",
        "--tls-private-key-file=/etc/moor/tls/tls.key",
        "--registry-hostname=moor.moor.svc:443",
    ] {
        assert!(args.contains(&want), "{want} not in {args:?}");
    }
}

/// The rules of a ClusterRole of the manifests, as (groups, resources, verbs) triples.
fn rules_of(docs: &[Value], name: &str) -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
    let role: ClusterRole = serde_json::from_value(
        docs.iter()
            .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no ClusterRole {name}"))
            .clone(),
    )
    .unwrap();
    role.rules
        .unwrap_or_default()
        .into_iter()
        .map(|r: PolicyRule| {
            (
                r.api_groups.unwrap_or_default(),
                r.resources.unwrap_or_default(),
                r.verbs,
            )
        })
        .collect()
}

fn triple(g: &[&str], r: &[&str], v: &[&str]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let s = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
    (s(g), s(r), s(v))
}

#[test]
fn moors_own_rbac_is_least_privilege() {
    let docs = plain();
    // moor's own rights: namespaces to follow, the workload kinds triggers patch, Events
    // on them, and pull secrets. No wildcard, no write beyond patch and event create.
    assert_eq!(
        rules_of(&docs, "moor"),
        vec![
            triple(&[""], &["namespaces"], &["get", "list", "watch"]),
            triple(
                &["apps"],
                &["deployments", "statefulsets", "daemonsets"],
                &["get", "list", "watch", "patch"]
            ),
            triple(
                &["batch"],
                &["cronjobs"],
                &["get", "list", "watch", "patch"]
            ),
            triple(&[""], &["events"], &["create"]),
            triple(&[""], &["secrets"], &["get", "list", "watch"]),
        ]
    );
    // Delegation: the two roles every aggregated API server is bound to, and only those.
    let bindings: Vec<(String, String, String)> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRoleBinding" || d["kind"] == "RoleBinding")
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["metadata"]["namespace"].as_str().unwrap_or("").to_owned(),
                d["roleRef"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        bindings,
        vec![
            ("ClusterRoleBinding".into(), "".into(), "moor".into()),
            (
                "ClusterRoleBinding".into(),
                "".into(),
                "system:auth-delegator".into()
            ),
            (
                "RoleBinding".into(),
                "kube-system".into(),
                "extension-apiserver-authentication-reader".into()
            ),
        ]
    );
    for d in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRoleBinding" || d["kind"] == "RoleBinding")
    {
        assert_eq!(
            d["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": "moor", "namespace": "moor"}])
        );
    }
    // No role of the chart has a wildcard.
    for d in docs.iter().filter(|d| d["kind"] == "ClusterRole") {
        let text = d["rules"].to_string();
        assert!(!text.contains("\"*\""), "{}: {text}", d["metadata"]["name"]);
    }
    // Without triggers and pull secrets, only namespaces remain.
    if peer("helm").is_some() {
        let (ok, out, err) = render(&["--set", "triggers.enabled=false,pullSecrets.enabled=false"]);
        assert!(ok, "{err}");
        assert_eq!(
            rules_of(&documents(&out), "moor"),
            vec![triple(&[""], &["namespaces"], &["get", "list", "watch"])]
        );
    }
}

/// The ClusterRoles the chart ships for users: moor's, as it applies them at start.
fn bootstrap_roles() -> Vec<ClusterRole> {
    moor_api::authz::bootstrap::cluster_mode_roles()
}

#[test]
fn the_bootstrap_roles_are_moors_own() {
    let roles = bootstrap_roles();
    let mut text = String::from(
        "{{- if .Values.bootstrapRoles.enabled }}\n\
         # Generated from moor's bootstrap policy (moor_api::authz::bootstrap) by\n\
         # MOOR_BLESS=1 cargo test --workspace --locked --test deploy_chart: do not edit.\n",
    );
    for r in &roles {
        text.push_str("---\n");
        text.push_str(&serde_yaml_ng::to_string(r).unwrap());
    }
    text.push_str("{{- end }}\n");
    generated(&chart().join("templates/bootstrap-roles.yaml"), &text);
    // They are in the manifests, and add image rules to the cluster's admin/edit/view.
    let docs = plain();
    for r in &roles {
        let name = r.metadata.name.as_deref().unwrap();
        assert!(!rules_of(&docs, name).is_empty(), "{name} has no rules");
    }
    let view = rules_of(&docs, "moor:aggregate-to-view");
    assert!(
        view.iter().any(
            |(g, r, _)| g == &["image.openshift.io"] && r.contains(&"imagestreams".to_string())
        ),
        "{view:?}"
    );
}

#[test]
fn kubectl_accepts_the_kinds_moor_serves() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &[]);
    let Some(kubectl) = Kubectl::new(&server.kubeconfig()) else {
        return;
    };
    for ns in ["moor", "kube-system"] {
        let (ok, _, err) = run(kubectl.cmd().args(["create", "namespace", ns]));
        assert!(ok || err.contains("AlreadyExists"), "{err}");
    }
    let served = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "RoleBinding",
        "StatefulSet",
    ];
    let docs: Vec<String> = plain()
        .into_iter()
        .filter(|d| served.contains(&d["kind"].as_str().unwrap()))
        .map(|d| serde_yaml_ng::to_string(&d).unwrap())
        .collect();
    assert!(docs.len() >= 5);
    let (ok, out, err) = kubectl.stdin(
        &["apply", "--dry-run=server", "--validate=strict", "-f", "-"],
        &docs.join("---\n"),
    );
    assert!(ok, "kubectl refused the chart's objects:\n{out}\n{err}");
    assert_eq!(out.matches("(server dry run)").count(), docs.len(), "{out}");
}
