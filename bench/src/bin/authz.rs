//! `bench/run authz`: what authorization costs (issue 16).
//!
//! - Manifest GET by tag, the registry's hottest request, as the admin (in
//!   `system:masters`, allowed before RBAC is asked) and as a user whose right comes
//!   from a RoleBinding to `edit` in the stream's namespace (RBAC decides, with its
//!   decision cache). The two run alternately in rounds, so noise hits both alike;
//!   the ratio user/admin is the figure (goal ≥ 0.9).
//! - SelfSubjectAccessReview, what `kubectl auth can-i` sends: p50/p99 (goal p99 < 5 ms).

use std::time::Duration;

use anyhow::{Result, ensure};
use clap::Parser;
use moor_bench::{Moor, load, moor_bin, quantile, report};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(Parser)]
struct Args {
    /// Manifest GETs per round and identity.
    #[arg(long, default_value_t = 5_000)]
    requests: usize,
    /// Rounds (admin, user, admin, user, ...).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Extra namespaces, each with its own RoleBindings (a policy of some size).
    #[arg(long, default_value_t = 200)]
    namespaces: usize,
}

const USER_TOKEN: &str = "bench-user-token";

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

async fn ok(r: reqwest::RequestBuilder, what: &str) -> Result<Value> {
    let r = r.send().await?;
    let status = r.status();
    let text = r.text().await?;
    ensure!(status.is_success(), "{what}: {status} {text}");
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, format!("{USER_TOKEN},bench-user,1000,\"bench\"\n"))?;
    let moor = Moor::start_fresh(
        &moor_bin(),
        &["--token-auth-file", tokens.to_str().unwrap()],
    );
    let c = moor.client_pool(4);
    let api = |path: &str| format!("{}{path}", moor.url);
    // Namespaces with bindings of their own, then the measured one.
    for n in 0..=args.namespaces {
        let ns = if n == args.namespaces {
            "team".to_owned()
        } else {
            format!("ns-{n:04}")
        };
        ok(
            c.post(api("/api/v1/namespaces"))
                .bearer_auth(&moor.token)
                .json(&json!({"metadata": {"name": ns}})),
            "namespace",
        )
        .await?;
        let subject = if ns == "team" {
            "bench-user".to_owned()
        } else {
            format!("user-{n}")
        };
        ok(
            c.post(api(&format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings")))
                .bearer_auth(&moor.token)
                .json(&json!({"metadata": {"name": "edit"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": subject}]})),
            "rolebinding",
        )
        .await?;
    }
    // One image in team/app:latest, pushed as the user.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = vec![7u8; 1024];
    for blob in [&config[..], &layer[..]] {
        let r = c
            .post(api(&format!(
                "/v2/team/app/blobs/uploads/?digest={}",
                digest(blob)
            )))
            .basic_auth("u", Some(USER_TOKEN))
            .body(blob.to_vec())
            .send()
            .await?;
        ensure!(r.status().as_u16() == 201, "blob upload: {}", r.status());
    }
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&layer), "size": layer.len()}],
    })
    .to_string();
    let r = c
        .put(api("/v2/team/app/manifests/latest"))
        .basic_auth("u", Some(USER_TOKEN))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await?;
    ensure!(r.status().as_u16() == 201, "manifest put: {}", r.status());

    let url = api("/v2/team/app/manifests/latest");
    let get = |token: String| {
        let url = url.clone();
        move |c: &reqwest::Client, _| {
            c.get(url.as_str())
                .bearer_auth(&token)
                .header("accept", "application/vnd.oci.image.manifest.v1+json")
        }
    };
    // Warm-up: connections, TLS sessions, caches.
    for token in [moor.token.clone(), USER_TOKEN.to_owned()] {
        load(
            &moor,
            args.connections,
            args.connections * 50,
            get(token),
            |_| Ok(()),
        )
        .await?;
    }
    let (mut admin_all, mut user_all) = (Vec::new(), Vec::new());
    let (mut admin_secs, mut user_secs) = (0.0, 0.0);
    println!(
        "bench authz: manifest GET by tag, {} connections, {} rounds of {} per identity; {} namespaces with a RoleBinding each",
        args.connections,
        args.rounds,
        args.requests,
        args.namespaces + 1
    );
    for round in 0..args.rounds {
        let (mut a, aw) = load(
            &moor,
            args.connections,
            args.requests,
            get(moor.token.clone()),
            |_| Ok(()),
        )
        .await?;
        let (mut u, uw) = load(
            &moor,
            args.connections,
            args.requests,
            get(USER_TOKEN.to_owned()),
            |_| Ok(()),
        )
        .await?;
        let (ar, ur) = (
            a.len() as f64 / aw.as_secs_f64(),
            u.len() as f64 / uw.as_secs_f64(),
        );
        println!(
            "  round {round}: admin {ar:.0} req/s (p99 {:.2} ms), user via RoleBinding {ur:.0} req/s (p99 {:.2} ms): {:.2}x",
            quantile(&mut a, 0.99).as_secs_f64() * 1e3,
            quantile(&mut u, 0.99).as_secs_f64() * 1e3,
            ur / ar
        );
        admin_secs += aw.as_secs_f64();
        user_secs += uw.as_secs_f64();
        admin_all.extend(a);
        user_all.extend(u);
    }
    report("admin", &mut admin_all, Duration::from_secs_f64(admin_secs));
    report(
        "user (RoleBinding)",
        &mut user_all,
        Duration::from_secs_f64(user_secs),
    );
    let ratio = (user_all.len() as f64 / user_secs) / (admin_all.len() as f64 / admin_secs);
    println!("  user/admin rate: {ratio:.2}x (goal >= 0.9)");

    // `kubectl auth can-i create imagestreams -n team`, as the user.
    let ssar = api("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews");
    let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": "team", "verb": "create",
                 "group": "image.openshift.io", "resource": "imagestreams"}}})
    .to_string();
    let can_i = move |c: &reqwest::Client, _| {
        c.post(ssar.as_str())
            .bearer_auth(USER_TOKEN)
            .header("content-type", "application/json")
            .body(body.clone())
    };
    fn allowed(b: &[u8]) -> Result<()> {
        let v: Value = serde_json::from_slice(b)?;
        ensure!(v["status"]["allowed"] == true, "not allowed: {v}");
        Ok(())
    }
    load(&moor, 4, 400, can_i.clone(), allowed).await?;
    let (mut s, wall) = load(&moor, 4, args.requests, can_i, allowed).await?;
    report("SelfSubjectAccessReview", &mut s, wall);
    println!(
        "  can-i p99 {:.2} ms (goal < 5 ms)",
        quantile(&mut s, 0.99).as_secs_f64() * 1e3
    );
    Ok(())
}
