//! Users and permissions with the real binary: `moor policy`, `moor auth can-i`,
//! `moor whoami`, `moor login`, `moor registry login` (then skopeo with the written
//! auth file and CA, TLS verified) and `moor create token`, checked against the real
//! kubectl (`auth can-i`, `--list`, `auth whoami`, `--as`, `apply` of a RoleBinding).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// Static tokens, kube-apiserver's CSV: alice and bob have no rights until granted.
const TOKENS: &str = "\
alice-token,alice,1001,\"team-a-devs\"
bob-token,bob,1002
carol-token,carol,1003
";

struct Env {
    server: MoorProcess,
    dir: tempfile::TempDir,
}

impl Env {
    /// moor with the users above and the namespaces team-a and team-b.
    fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens.csv");
        std::fs::write(&tokens, TOKENS).unwrap();
        let server = start(
            &dir.path().join("data"),
            &["--token-auth-file", tokens.to_str().unwrap()],
        );
        for ns in ["team-a", "team-b"] {
            server.ok(&["create", "namespace", ns]);
        }
        Env { server, dir }
    }

    /// A kubeconfig like the admin's, with `token` instead.
    fn kubeconfig_for(&self, user: &str, token: &str) -> PathBuf {
        let admin = std::fs::read_to_string(self.server.kubeconfig()).unwrap();
        let path = self.dir.path().join(format!("{user}.kubeconfig"));
        std::fs::write(&path, admin.replace(&self.server.token, token)).unwrap();
        path
    }

    fn cli_as(&self, user: &str, token: &str) -> Cli {
        cli(&self.kubeconfig_for(user, token))
    }

    /// `moor ARGS` as the admin: (exit code, stdout, stderr).
    fn moor_code(&self, kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
        let out = cli(kubeconfig).command().args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }
}

/// `kubectl auth can-i ARGS --token TOKEN`: (exit code, stdout).
fn kubectl_can_i(k: &Kubectl, token: &str, args: &[&str]) -> (i32, String) {
    let out = k
        .cmd()
        .args(["auth", "can-i", "--token", token])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

fn rolebinding_names(k: &Kubectl, ns: &str) -> Vec<String> {
    let out = k.ok(&["get", "rolebindings", "-n", ns, "-o", "name"]);
    out.lines()
        .map(|l| l.rsplit('/').next().unwrap_or(l).to_string())
        .filter(|n| !n.starts_with("system:"))
        .collect()
}

/// `kubectl --token TOKEN get is -n NS` (JSON, no protobuf needed): whether kubectl
/// is let through.
fn kubectl_lists_streams(k: &Kubectl, token: &str, ns: &str) -> bool {
    let (ok, _, err) = run(k.cmd().args(["--token", token, "get", "is", "-n", ns]));
    assert!(ok || err.contains("forbidden"), "{err}");
    ok
}

#[test]
fn policy_grants_and_takes_back() {
    if peer("kubectl").is_none() {
        return;
    }
    let env = Env::start();
    let server = &env.server;
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");
    let alice = env.kubeconfig_for("alice", "alice-token");
    let bob = env.kubeconfig_for("bob", "bob-token");
    let can_create = |who: &Path| {
        let (code, out, _) = env.moor_code(who, &["auth", "can-i", "create", "is", "-n", "team-a"]);
        (code, out.trim().to_string())
    };
    assert_eq!(can_create(&alice).0, 1);
    assert!(!kubectl_lists_streams(&k, "alice-token", "team-a"));

    let out = server.ok(&[
        "policy",
        "add-role-to-user",
        "edit",
        "alice",
        "-n",
        "team-a",
    ]);
    assert_eq!(
        out,
        "clusterrole.rbac.authorization.k8s.io/edit added: \"alice\"\n"
    );
    assert_eq!(can_create(&alice), (0, "yes".to_string()));
    assert!(kubectl_lists_streams(&k, "alice-token", "team-a"));
    assert_eq!(rolebinding_names(&k, "team-a"), vec!["edit"]);
    // moor's own get reads RBAC objects and ServiceAccounts too.
    let table = server.ok(&["get", "rolebindings", "-n", "team-a"]);
    assert!(
        table.contains("ROLE") && table.contains("ClusterRole/edit"),
        "{table}"
    );
    let table = server.ok(&["get", "sa", "-n", "team-a"]);
    assert!(table.contains("default"), "{table}");
    let names = server.ok(&["get", "clusterrole", "system:image-puller", "-o", "name"]);
    assert_eq!(
        names.trim(),
        "clusterrole.rbac.authorization.k8s.io/system:image-puller"
    );
    // Already bound: nothing new.
    server.ok(&[
        "policy",
        "add-role-to-user",
        "edit",
        "alice",
        "-n",
        "team-a",
    ]);
    assert_eq!(rolebinding_names(&k, "team-a"), vec!["edit"]);
    // Another user: a new binding named as oc names it.
    let out = server.ok(&[
        "policy",
        "add-role-to-user",
        "edit",
        "bob",
        "-z",
        "builder",
        "-n",
        "team-a",
    ]);
    assert_eq!(
        out,
        "clusterrole.rbac.authorization.k8s.io/edit added: [\"bob\" \"builder\"]\n"
    );
    assert_eq!(rolebinding_names(&k, "team-a"), vec!["edit", "edit-0"]);
    let json: serde_json::Value = serde_json::from_str(&k.ok(&[
        "get",
        "rolebinding",
        "edit-0",
        "-n",
        "team-a",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        json["subjects"],
        serde_json::json!([
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"},
            {"kind": "ServiceAccount", "name": "builder", "namespace": "team-a"},
        ])
    );
    assert_eq!(can_create(&bob), (0, "yes".to_string()));

    // Groups, and a named binding.
    server.ok(&[
        "policy",
        "add-role-to-group",
        "view",
        "team-a-devs",
        "-n",
        "team-b",
        "--rolebinding-name",
        "devs",
    ]);
    assert!(kubectl_lists_streams(&k, "alice-token", "team-b"));
    let err = server.fails(&[
        "policy",
        "add-role-to-user",
        "edit",
        "carol",
        "-n",
        "team-b",
        "--rolebinding-name",
        "devs",
    ]);
    assert_eq!(
        err.trim(),
        "error: rolebinding devs found for role view, not edit"
    );
    let err = server.fails(&[
        "policy",
        "add-role-to-user",
        "edit",
        "carol",
        "-n",
        "team-b",
        "--role-namespace",
        "team-a",
    ]);
    assert_eq!(
        err.trim(),
        "error: role binding in namespace \"team-b\" can't reference role in different namespace \"team-a\""
    );

    // Removing alice deletes her binding (she was its only subject).
    let out = server.ok(&[
        "policy",
        "remove-role-from-user",
        "edit",
        "alice",
        "-n",
        "team-a",
    ]);
    assert_eq!(
        out,
        "clusterrole.rbac.authorization.k8s.io/edit removed: \"alice\"\n"
    );
    assert_eq!(can_create(&alice).0, 1);
    assert!(!kubectl_lists_streams(&k, "alice-token", "team-a"));
    assert_eq!(rolebinding_names(&k, "team-a"), vec!["edit-0"]);
    let err = server.fails(&[
        "policy",
        "remove-role-from-user",
        "edit",
        "alice",
        "-n",
        "team-a",
    ]);
    assert_eq!(err.trim(), "error: unable to find target [alice]");
    let err = server.fails(&[
        "policy",
        "remove-role-from-group",
        "admin",
        "team-a-devs",
        "-n",
        "team-a",
    ]);
    assert_eq!(
        err.trim(),
        "error: unable to locate any RoleBinding for ClusterRole \"admin\""
    );
    server.ok(&[
        "policy",
        "remove-role-from-group",
        "view",
        "team-a-devs",
        "-n",
        "team-b",
    ]);
    assert!(!kubectl_lists_streams(&k, "alice-token", "team-b"));
    // bob keeps his binding; the ServiceAccount leaves it by its -z name.
    server.ok(&[
        "policy",
        "remove-role-from-user",
        "edit",
        "-z",
        "builder",
        "-n",
        "team-a",
    ]);
    assert_eq!(can_create(&bob), (0, "yes".to_string()));
}

#[test]
fn can_i_answers_and_exits_as_kubectl_does() {
    let env = Env::start();
    let server = &env.server;
    server.ok(&[
        "policy",
        "add-role-to-user",
        "edit",
        "alice",
        "-n",
        "team-a",
    ]);
    let alice = env.kubeconfig_for("alice", "alice-token");

    let (code, out, _) = env.moor_code(&alice, &["auth", "can-i", "create", "is", "-n", "team-a"]);
    assert_eq!((code, out.as_str()), (0, "yes\n"));
    let (code, out, _) = env.moor_code(
        &alice,
        &[
            "auth",
            "can-i",
            "update",
            "imagestreams/app",
            "--subresource",
            "layers",
            "-n",
            "team-a",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "yes\n"));
    let (code, out, _) = env.moor_code(&alice, &["auth", "can-i", "get", "is", "-n", "team-b"]);
    assert_eq!((code, out.as_str()), (1, "no\n"));
    let (code, out, _) = env.moor_code(
        &alice,
        &["auth", "can-i", "-q", "get", "is", "-n", "team-b"],
    );
    assert_eq!((code, out.as_str()), (1, ""));
    let (code, _, _) = env.moor_code(&alice, &["auth", "can-i", "list", "is", "-A"]);
    assert_eq!(code, 1);
    let (code, _, _) = env.moor_code(&alice, &["auth", "can-i", "get", "/metrics"]);
    assert_eq!(code, 1);
    let (code, out, _) = env.moor_code(&server.kubeconfig(), &["auth", "can-i", "get", "/metrics"]);
    assert_eq!((code, out.as_str()), (0, "yes\n"));
    let (code, out, err) =
        env.moor_code(&server.kubeconfig(), &["auth", "can-i", "delete", "images"]);
    assert_eq!((code, out.as_str()), (0, "yes\n"));
    assert_eq!(
        err,
        "Warning: resource 'images' is not namespace scoped in group 'image.openshift.io'\n"
    );
    // kubectl's warning for a type the server does not have; the question is asked.
    let (code, _, err) = env.moor_code(&alice, &["auth", "can-i", "get", "widgets"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Warning: the server doesn't have a resource type 'widgets'"),
        "{err}"
    );
    // A usage error exits 1 with kubectl's words.
    let (code, _, err) = env.moor_code(&alice, &["auth", "can-i", "get"]);
    assert_eq!(code, 1);
    assert!(err.contains("you must specify two arguments"), "{err}");

    // --list: kubectl's table, with the rules of edit in team-a.
    let (code, out, err) = env.moor_code(&alice, &["auth", "can-i", "--list", "-n", "team-a"]);
    assert_eq!(code, 0, "{err}");
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        ["Resources", "Non-Resource URLs", "Resource Names", "Verbs"]
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("imagestreams.image.openshift.io/layers ")
                && l.ends_with("[get update]")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("selfsubjectaccessreviews.authorization.k8s.io ")),
        "{out}"
    );
    let (_, out_b, _) = env.moor_code(&alice, &["auth", "can-i", "--list", "-n", "team-b"]);
    assert!(
        !out_b.contains("imagestreams.image.openshift.io"),
        "{out_b}"
    );
    let (_, bare, _) = env.moor_code(
        &alice,
        &["auth", "can-i", "--list", "--no-headers", "-n", "team-a"],
    );
    assert!(!bare.starts_with("Resources"), "{bare}");
}

/// kubectl's `auth can-i` (a SelfSubjectAccessReview) and `auth can-i --list` give the
/// same answers and tables as moor's.
#[test]
fn kubectl_can_i_agrees_with_moor() {
    let env = Env::start();
    let server = &env.server;
    server.ok(&[
        "policy",
        "add-role-to-user",
        "edit",
        "alice",
        "-n",
        "team-a",
    ]);
    let alice = env.kubeconfig_for("alice", "alice-token");
    let k = Kubectl::new(&alice).expect("kubectl");
    for args in [
        &["create", "imagestreams", "-n", "team-a"][..],
        &["get", "imagestreams.image.openshift.io", "-n", "team-b"],
        &[
            "update",
            "imagestreams",
            "--subresource",
            "layers",
            "-n",
            "team-a",
        ],
        &["delete", "images"],
        &["create", "rolebindings", "-n", "team-a"],
        &["get", "/metrics"],
    ] {
        let (kcode, kout) = kubectl_can_i(&k, "alice-token", args);
        let mut moor_args = vec!["auth", "can-i"];
        moor_args.extend(args);
        let (code, out, _) = env.moor_code(&alice, &moor_args);
        assert_eq!((code, out.trim()), (kcode, kout.as_str()), "{args:?}");
    }
    for ns in ["team-a", "team-b"] {
        let kout = k.ok(&["auth", "can-i", "--list", "-n", ns]);
        let (code, out, err) = env.moor_code(&alice, &["auth", "can-i", "--list", "-n", ns]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, kout, "--list in {ns}");
    }
    let kout = k.ok(&["auth", "can-i", "--list", "--no-headers", "-n", "team-a"]);
    let (_, out, _) = env.moor_code(
        &alice,
        &["auth", "can-i", "--list", "--no-headers", "-n", "team-a"],
    );
    assert_eq!(out, kout);
    // Granted and taken back with moor policy, as kubectl sees it.
    let admin = Kubectl::new(&server.kubeconfig()).expect("kubectl");
    let ask = || kubectl_can_i(&admin, "bob-token", &["create", "is", "-n", "team-a"]);
    assert_eq!(ask(), (1, "no".to_string()));
    server.ok(&["policy", "add-role-to-user", "edit", "bob", "-n", "team-a"]);
    assert_eq!(ask(), (0, "yes".to_string()));
    server.ok(&[
        "policy",
        "remove-role-from-user",
        "edit",
        "bob",
        "-n",
        "team-a",
    ]);
    assert_eq!(ask(), (1, "no".to_string()));
}

/// kubectl's `auth whoami` (a SelfSubjectReview) prints what `moor auth whoami` prints.
#[test]
fn kubectl_whoami_agrees_with_moor() {
    let env = Env::start();
    for kubeconfig in [
        env.server.kubeconfig(),
        env.kubeconfig_for("alice", "alice-token"),
    ] {
        let k = Kubectl::new(&kubeconfig).expect("kubectl");
        let kout = k.ok(&["auth", "whoami"]);
        assert_eq!(cli(&kubeconfig).ok(&["auth", "whoami"]), kout);
    }
}

#[test]
fn whoami_names_the_admin_and_token_users() {
    let env = Env::start();
    let server = &env.server;
    assert_eq!(server.ok(&["whoami"]), "admin\n");
    let alice = env.cli_as("alice", "alice-token");
    assert_eq!(alice.ok(&["whoami"]), "alice\n");
    assert_eq!(
        alice.ok(&["whoami", "--show-server"]),
        format!("{}\n", server.url)
    );

    // kubectl's table.
    assert_eq!(
        alice.ok(&["auth", "whoami"]),
        "ATTRIBUTE   VALUE\nUsername    alice\nUID         1001\nGroups      [team-a-devs system:authenticated]\n"
    );
    let table = server.ok(&["auth", "whoami"]);
    assert!(
        table.starts_with("ATTRIBUTE   VALUE\nUsername    admin\n"),
        "{table}"
    );
    assert!(table.contains("system:masters"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&alice.ok(&["auth", "whoami", "-o", "json"])).unwrap();
    assert_eq!(json["status"]["userInfo"]["username"], "alice");

    // A token nobody knows.
    let nobody = env.cli_as("nobody", "wrong-token");
    let err = nobody.fails(&["whoami"]);
    assert!(
        err.starts_with("error: You must be logged in to the server"),
        "{err}"
    );
}

#[test]
fn login_writes_a_context_that_works() {
    let env = Env::start();
    let server = &env.server;
    let ca = server.data_dir.join("tls/ca.crt");
    let target = env.dir.path().join("kube/config");
    // Another context in the file stays.
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(server.kubeconfig(), &target).unwrap();
    let login = |extra: &[&str]| {
        let mut c = Command::new(moor_bin());
        c.env("KUBECONFIG", &target)
            .env_remove("RUST_LOG")
            .args(["login", "--token", "alice-token", "--server", &server.url])
            .args(extra);
        run(&mut c)
    };
    let (ok, out, err) = login(&[
        "--certificate-authority",
        ca.to_str().unwrap(),
        "-n",
        "team-a",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        format!(
            "Logged into \"{}\" as \"alice\" using the token provided.\n",
            server.url
        )
    );
    let alice = cli(&target);
    assert_eq!(alice.ok(&["whoami"]), "alice\n");
    let port = server.host().rsplit(':').next().unwrap().to_string();
    assert_eq!(
        alice.ok(&["whoami", "--show-context"]),
        format!("team-a/127-0-0-1:{port}/alice\n")
    );
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(
        text.contains("name: moor"),
        "the admin's context stays: {text}"
    );
    assert!(text.contains("certificate-authority-data:"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // kubectl reads what moor wrote; the namespace is the context's.
    if let Some(k) = Kubectl::new(&target) {
        let out = k.ok(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.contexts[0].context.namespace}",
        ]);
        assert_eq!(out, "team-a");
        // kubectl acts as alice, who may not list team-a's streams.
        let (ok, _, err) = run(k.cmd().args(["get", "is"]));
        assert!(!ok && err.contains("User \"alice\""), "{err}");
    }

    // Refusals, in oc's words, and nothing written.
    let before = std::fs::read_to_string(&target).unwrap();
    let (ok, _, err) = login(&[]);
    assert!(!ok);
    assert!(
        err.contains("certificate signed by unknown authority"),
        "{err}"
    );
    let mut c = Command::new(moor_bin());
    c.env("KUBECONFIG", &target).args([
        "login",
        "--token",
        "wrong",
        "--server",
        &server.url,
        "--insecure-skip-tls-verify",
    ]);
    let (ok, _, err) = run(&mut c);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "error: The token provided is invalid or expired."
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), before);
}

/// skopeo inspect with an auth file and a certs folder, TLS verified.
fn skopeo_inspect(auth: &Path, cert_dir: &Path, reference: &str) -> (bool, String, String) {
    run(Command::new("skopeo")
        .args(["inspect", "--authfile"])
        .arg(auth)
        .arg("--cert-dir")
        .arg(cert_dir)
        .arg(format!("docker://{reference}")))
}

/// `podman pull` with its own storage under `scratch`, the auth file and the certs
/// folder (podman run as root reads only /etc/containers/certs.d otherwise).
fn podman_pull(
    scratch: &Path,
    auth: &Path,
    cert_dir: &Path,
    reference: &str,
) -> (bool, String, String) {
    run(Command::new("podman")
        .arg("--root")
        .arg(scratch.join("podman-root"))
        .arg("--runroot")
        .arg(scratch.join("podman-runroot"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
        ])
        .args(["pull", "--authfile"])
        .arg(auth)
        .arg("--cert-dir")
        .arg(cert_dir)
        .arg(reference))
}

#[test]
fn registry_login_lets_skopeo_and_podman_pull_with_tls_verified() {
    if !require(&["skopeo", "umoci"]) {
        return;
    }
    let env = Env::start();
    let server = &env.server;
    let host = server.host();
    let layout = OciLayout::new();
    layout.add_image("v1", &ImageSpec::app("registry login"));
    let (ok, _, err) = run(Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .args(["--dest-creds", &format!("u:{}", server.token)])
        .arg(format!("oci:{}:v1", layout.path().display()))
        .arg(format!("docker://{host}/team-a/app:v1")));
    assert!(ok, "{err}");
    server.ok(&[
        "policy",
        "add-role-to-user",
        "system:image-puller",
        "alice",
        "-n",
        "team-a",
    ]);

    let home = env.dir.path().join("home");
    let auth = env.dir.path().join("auth.json");
    std::fs::write(&auth, r#"{"auths":{"quay.io":{"auth":"eDp5"}}}"#).unwrap();
    let registry_login = |user: &str, token: &str| {
        let kubeconfig = env.kubeconfig_for(user, token);
        let mut c = cli(&kubeconfig).command();
        c.env("HOME", &home)
            .env("REGISTRY_AUTH_FILE", &auth)
            .args(["registry", "login"]);
        run(&mut c)
    };
    let (ok, out, err) = registry_login("alice", "alice-token");
    assert!(ok, "{err}");
    let certs = home.join(".config/containers/certs.d").join(&host);
    assert_eq!(
        out,
        format!(
            "Saved credentials for {host} into {}\nSaved the CA of {host} into {}\n",
            auth.display(),
            certs.join("ca.crt").display()
        )
    );
    assert_eq!(
        std::fs::read(certs.join("ca.crt")).unwrap(),
        server.ca_pem(),
        "the CA of the kubeconfig"
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    assert_eq!(
        doc["auths"]["quay.io"]["auth"], "eDp5",
        "other entries stay"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&auth).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (ok, out, err) = skopeo_inspect(&auth, &certs, &format!("{host}/team-a/app:v1"));
    assert!(ok, "alice pulls with TLS verified: {err}");
    assert!(out.contains("\"Digest\""), "{out}");
    // Without the CA, TLS verification fails: the CA is what makes it work.
    let empty = env.dir.path().join("no-certs");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, _, err) = skopeo_inspect(&auth, &empty, &format!("{host}/team-a/app:v1"));
    assert!(!ok, "no CA, no pull");
    assert!(err.contains("certificate"), "{err}");

    // podman too, with nothing but the two written files.
    if peer("podman").is_some() {
        let (ok, _, err) = podman_pull(
            env.dir.path(),
            &auth,
            &certs,
            &format!("{host}/team-a/app:v1"),
        );
        assert!(ok, "podman pull as alice: {err}");
    }

    // carol may log in (the registry knows her) but not pull.
    let (ok, _, err) = registry_login("carol", "carol-token");
    assert!(ok, "{err}");
    let (ok, _, err) = skopeo_inspect(&auth, &certs, &format!("{host}/team-a/app:v1"));
    assert!(!ok, "carol has no pull rights");
    assert!(
        err.contains("denied") || err.contains("unauthorized") || err.contains("403"),
        "{err}"
    );
    if peer("podman").is_some() {
        let (ok, _, err) = podman_pull(
            env.dir.path(),
            &auth,
            &certs,
            &format!("{host}/team-a/app:v1"),
        );
        assert!(!ok, "podman pull as carol: {err}");
    }
    // A token the server does not know is refused before anything is written.
    let before = std::fs::read(&auth).unwrap();
    let (ok, _, err) = registry_login("nobody", "wrong-token");
    assert!(!ok);
    assert!(err.contains("error:"), "{err}");
    assert_eq!(std::fs::read(&auth).unwrap(), before);
}

/// In cluster mode the kubeconfig trusts kube-apiserver's CA, not moor's: the check
/// says so and names `--ca-file`, and `--ca-file` with moor's CA logs in and writes
/// that CA into certs.d.
#[test]
fn registry_login_with_another_ca_names_ca_file() {
    let env = Env::start();
    let server = &env.server;
    let host = server.host();
    let other = moor_testkit::kube_double::TestCa::new("kube-apiserver-ca");
    let admin = std::fs::read_to_string(server.kubeconfig()).unwrap();
    let ours = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, server.ca_pem());
    let theirs = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, other.pem());
    assert!(admin.contains(&ours), "{admin}");
    let kubeconfig = env.dir.path().join("cluster.kubeconfig");
    std::fs::write(&kubeconfig, admin.replace(&ours, &theirs)).unwrap();
    let home = env.dir.path().join("home");
    let auth = env.dir.path().join("auth.json");
    let login = |extra: &[&str]| {
        let mut c = cli(&kubeconfig).command();
        c.env("HOME", &home)
            .env("REGISTRY_AUTH_FILE", &auth)
            .args(["registry", "login", "--registry", &host])
            .args(["--auth-basic", &format!("admin:{}", server.token)])
            .args(extra);
        run(&mut c)
    };
    let (ok, _, err) = login(&[]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "the registry {host} presents a certificate that the current context's CA does not sign"
        )) && err.contains("--ca-file"),
        "{err}"
    );
    assert!(!auth.exists(), "nothing written");

    let ca = server.data_dir.join("tls/ca.crt");
    let (ok, out, err) = login(&["--ca-file", ca.to_str().unwrap()]);
    assert!(ok, "{err}");
    let certs = home.join(".config/containers/certs.d").join(&host);
    assert!(out.contains("Saved the CA of"), "{out}");
    assert_eq!(
        std::fs::read(certs.join("ca.crt")).unwrap(),
        std::fs::read(&ca).unwrap()
    );

    let empty = env.dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let (ok, _, err) = login(&["--ca-file", empty.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("--ca-file") && err.contains("no PEM certificate"),
        "{err}"
    );
}

#[test]
fn create_token_gives_a_service_account_token() {
    let env = Env::start();
    let server = &env.server;
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");
    k.apply(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: builder\n  namespace: team-a\n",
    );
    let token = server.ok(&[
        "create",
        "token",
        "builder",
        "-n",
        "team-a",
        "--duration",
        "10m",
    ]);
    let token = token.trim();
    assert!(!token.is_empty());
    let sa = env.cli_as("builder", token);
    assert_eq!(sa.ok(&["whoami"]), "system:serviceaccount:team-a:builder\n");
    let kout = k.ok(&["create", "token", "builder", "-n", "team-a"]);
    assert!(!kout.trim().is_empty());
}

#[test]
fn kubectl_apply_of_a_rolebinding_and_as_work_against_moor() {
    if peer("kubectl").is_none() {
        return;
    }
    let env = Env::start();
    let server = &env.server;
    let admin = Kubectl::new(&server.kubeconfig()).expect("kubectl");
    server.ok(&["create", "is", "app", "-n", "team-a"]);

    // apply of a RoleBinding YAML: alice may then read team-a's streams.
    let (out, _) = admin.apply(ALICE_VIEW);
    assert_eq!(
        out.trim(),
        "rolebinding.rbac.authorization.k8s.io/alice-view created"
    );
    let alice = Kubectl::new(&env.kubeconfig_for("alice", "alice-token")).expect("kubectl");
    let out = alice.ok(&["get", "is", "-n", "team-a", "-o", "name"]);
    assert_eq!(out.trim(), "imagestream.image.openshift.io/app");
    let (ok, _, err) = run(alice.cmd().args(["delete", "is", "app", "-n", "team-a"]));
    assert!(!ok && err.contains("forbidden"), "{err}");

    // --as: the admin acts as alice (and is then refused what alice is refused).
    let out = admin.ok(&["--as", "alice", "get", "is", "-n", "team-a", "-o", "name"]);
    assert_eq!(out.trim(), "imagestream.image.openshift.io/app");
    let err = admin.fails(&["--as", "alice", "get", "is", "-n", "team-b"]);
    assert!(
        err.contains("forbidden") && err.contains("\"alice\""),
        "{err}"
    );
    // alice may not impersonate.
    let err = alice.fails(&["--as", "admin", "get", "is", "-n", "team-a"]);
    assert!(err.contains("forbidden"), "{err}");
}

const ALICE_VIEW: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: alice-view
  namespace: team-a
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: view
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: alice
";

/// kubectl's `auth can-i`, `auth can-i --list` and `auth whoami` send protobuf bodies.
#[test]
fn kubectl_auth_verbs_work_against_moor() {
    let env = Env::start();
    let server = &env.server;
    let admin = Kubectl::new(&server.kubeconfig()).expect("kubectl");
    admin.apply(ALICE_VIEW);
    let alice = Kubectl::new(&env.kubeconfig_for("alice", "alice-token")).expect("kubectl");
    assert_eq!(
        alice
            .ok(&["auth", "can-i", "list", "is", "-n", "team-a"])
            .trim(),
        "yes"
    );
    alice.fails(&["auth", "can-i", "create", "is", "-n", "team-a"]);
    let list = alice.ok(&["auth", "can-i", "--list", "-n", "team-a"]);
    assert!(list.starts_with("Resources"), "{list}");
    assert!(list.contains("imagestreams.image.openshift.io"), "{list}");
    let who = alice.ok(&["auth", "whoami"]);
    assert!(who.contains("alice"), "{who}");
}

#[test]
fn kubectl_create_rolebinding_grants() {
    let env = Env::start();
    let server = &env.server;
    let admin = Kubectl::new(&server.kubeconfig()).expect("kubectl");
    let out = admin.ok(&[
        "create",
        "rolebinding",
        "alice-edit",
        "-n",
        "team-a",
        "--clusterrole=edit",
        "--user=alice",
    ]);
    assert_eq!(
        out.trim(),
        "rolebinding.rbac.authorization.k8s.io/alice-edit created"
    );
    let (code, out) = kubectl_can_i(&admin, "alice-token", &["create", "is", "-n", "team-a"]);
    assert_eq!((code, out.as_str()), (0, "yes"));
}

/// ServiceAccounts' credentials with a real registry client, TLS verified: the
/// `builder` ServiceAccount pushes (system:image-builders), any ServiceAccount of
/// the namespace pulls (system:image-pullers), one of another namespace does not.
#[test]
fn service_account_tokens_push_and_pull_with_skopeo() {
    if !require(&["skopeo", "umoci"]) {
        return;
    }
    let env = Env::start();
    let server = &env.server;
    let host = server.host();
    let certs = env.dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), server.ca_pem()).unwrap();
    // kubectl's imperative create sends protobuf; moor takes it.
    let k = Kubectl::new(&server.kubeconfig()).expect("kubectl");
    for (ns, sa) in [("team-a", "builder"), ("team-b", "builder")] {
        k.ok(&["create", "serviceaccount", sa, "-n", ns]);
    }
    let token = |ns: &str, sa: &str| {
        server
            .ok(&["create", "token", sa, "-n", ns])
            .trim()
            .to_owned()
    };
    let builder_a = token("team-a", "builder");
    let default_a = token("team-a", "default");
    let default_b = token("team-b", "default");
    let layout = OciLayout::new();
    layout.add_image("v1", &ImageSpec::app("service accounts"));
    let push = |token: &str, repo: &str| {
        run(Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--dest-cert-dir"])
            .arg(&certs)
            .args(["--dest-creds", &format!("serviceaccount:{token}")])
            .arg(format!("oci:{}:v1", layout.path().display()))
            .arg(format!("docker://{host}/{repo}")))
    };
    let inspect = |token: &str, repo: &str| {
        run(Command::new("skopeo")
            .args(["inspect", "--cert-dir"])
            .arg(&certs)
            .args(["--creds", &format!("serviceaccount:{token}")])
            .arg(format!("docker://{host}/{repo}")))
    };
    let (ok, _, err) = push(&builder_a, "team-a/app:v1");
    assert!(
        ok,
        "the builder ServiceAccount pushes, creating the stream: {err}"
    );
    let (ok, _, err) = push(&default_a, "team-a/other:v1");
    assert!(!ok, "the default ServiceAccount does not push");
    assert!(
        err.contains("denied") || err.contains("unauthorized") || err.contains("403"),
        "{err}"
    );
    let (ok, out, err) = inspect(&default_a, "team-a/app:v1");
    assert!(ok, "team-a's ServiceAccounts pull: {err}");
    assert!(out.contains("\"Digest\""), "{out}");
    let (ok, _, _) = inspect(&default_b, "team-a/app:v1");
    assert!(!ok, "team-b's ServiceAccounts do not pull from team-a");
    // A deleted ServiceAccount's token stops working at once.
    k.ok(&["delete", "serviceaccount", "builder", "-n", "team-a"]);
    let (ok, _, _) = push(&builder_a, "team-a/app:v2");
    assert!(!ok, "a deleted ServiceAccount's token is refused");
}

/// In cluster mode the API server is kube-apiserver and the registry is moor's own
/// host: `registry login` logs in to the registry the namespace's streams name
/// (`status.dockerImageRepository`), not to the API server.
#[test]
fn registry_login_goes_to_the_registry_the_streams_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        &dir.path().join("data"),
        &["--registry-hostname", "registry.example:5000"],
    );
    server.ok(&["create", "is", "app"]);
    let auth = dir.path().join("auth.json");
    let mut c = server.cli().command();
    c.env("HOME", dir.path())
        .args(["registry", "login", "--skip-check", "--insecure", "--to"])
        .arg(&auth);
    let (ok, out, err) = run(&mut c);
    assert!(ok, "{err}");
    assert!(out.contains("registry.example:5000"), "{out}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    assert!(
        doc["auths"]["registry.example:5000"]["auth"].is_string(),
        "{doc}"
    );
    assert!(doc["auths"].get(server.host()).is_none(), "{doc}");
}
