//! In-process router tests of the API machinery: verbs, preconditions, patches,
//! server-side apply, field validation, watch, discovery, tables and bad input.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures::StreamExt;
use moor_testkit::server::*;
use serde_json::{Value, json};

fn stream(name: &str) -> Value {
    json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
           "metadata": {"name": name, "labels": {"app": name}},
           "spec": {"lookupPolicy": {"local": true}}})
}

#[tokio::test]
async fn requests_without_a_token_get_401_but_health_stays_open() {
    let h = MoorServer::start().await;
    let r = h.raw(Request::get(IS).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["kind"], "Status");
    assert_eq!(r.body["reason"], "Unauthorized");
    assert!(r.headers.contains_key("www-authenticate"));
    let wrong = Request::get(IS)
        .header("authorization", "Bearer nope")
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.raw(wrong).await.status, StatusCode::UNAUTHORIZED);
    for open in ["/healthz", "/livez", "/readyz", "/version"] {
        let r = h.raw(Request::get(open).body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK, "{open}");
    }
    // Basic auth with the token as password works too (registries' way).
    let basic = base64_basic("anyone", TOKEN);
    let r = h
        .raw(
            Request::get(IS)
                .header("authorization", basic)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

fn base64_basic(user: &str, pw: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

#[tokio::test]
async fn create_get_list_and_duplicate() {
    let h = MoorServer::start().await;
    let r = h.post(IS, &stream("keycloak")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let obj = &r.body;
    assert_eq!(obj["metadata"]["generation"], 1);
    assert!(obj["metadata"]["uid"].as_str().unwrap().len() > 10);
    assert!(obj["metadata"]["creationTimestamp"].is_string());
    assert_eq!(
        obj["status"]["dockerImageRepository"],
        "registry.test:5000/default/keycloak"
    );
    let rv: i64 = obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv > 0);

    let r = h.get(&format!("{IS}/keycloak")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["spec"]["lookupPolicy"]["local"], true);

    let r = h.post(IS, &stream("keycloak")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["reason"], "AlreadyExists");
    assert_eq!(
        r.body["message"],
        "imagestreams.image.openshift.io \"keycloak\" already exists"
    );

    let r = h.get(&format!("{IS}/missing")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body["message"],
        "imagestreams.image.openshift.io \"missing\" not found"
    );

    h.post(IS, &stream("other")).await;
    let r = h.get(&format!("{IS}?labelSelector=app%3Dother")).await;
    assert_eq!(r.body["kind"], "ImageStreamList");
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = h
        .get(&format!("{IS}?fieldSelector=metadata.name%3Dkeycloak"))
        .await;
    assert_eq!(r.body["items"][0]["metadata"]["name"], "keycloak");
    // Plain lists are served from stored bytes: the same object as a GET.
    let listed = h.get(IS).await.body;
    let got = h.get(&format!("{IS}/keycloak")).await.body;
    let item = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "keycloak")
        .unwrap();
    assert_eq!(item, &got, "list item equals GET");
    assert_eq!(listed["kind"], "ImageStreamList");
    assert!(
        listed["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            >= rv
    );
    let r = h.get("/apis/image.openshift.io/v1/imagestreams").await;
    assert_eq!(
        r.body["items"].as_array().unwrap().len(),
        2,
        "all namespaces"
    );
}

#[tokio::test]
async fn paging_with_limit_and_continue() {
    let h = MoorServer::start().await;
    for i in 0..7 {
        assert_eq!(
            h.post(IS, &stream(&format!("s{i}"))).await.status,
            StatusCode::CREATED
        );
    }
    let mut names = Vec::new();
    let mut cont = String::new();
    loop {
        let r = h.get(&format!("{IS}?limit=3&continue={cont}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        for i in r.body["items"].as_array().unwrap() {
            names.push(i["metadata"]["name"].as_str().unwrap().to_string());
        }
        match r.body["metadata"]["continue"].as_str() {
            Some(c) => cont = c.to_string(),
            None => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("s{i}")).collect::<Vec<_>>());
    assert_eq!(
        h.get(&format!("{IS}?limit=3&continue=garbage"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn invalid_objects_are_refused_with_causes_and_nothing_stored() {
    let h = MoorServer::start().await;
    let r = h.post(IS, &stream("Bad_Name")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["reason"], "Invalid");
    assert!(
        r.body["details"]["causes"][0]["field"]
            .as_str()
            .unwrap()
            .contains("metadata.name")
    );
    let mut bad_tag = stream("ok");
    bad_tag["spec"]["tags"] = json!([{"name": "t", "from": {"kind": "Pod", "name": "x"}}]);
    let r = h.post(IS, &bad_tag).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let mut sched = stream("ok");
    sched["spec"]["tags"] = json!([{"name": "t", "from": {"kind": "ImageStreamTag", "name": "a:b"}, "importPolicy": {"scheduled": true}}]);
    assert_eq!(
        h.post(IS, &sched).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        h.get(&format!("{IS}/ok")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn stale_resource_version_is_a_409_conflict() {
    let h = MoorServer::start().await;
    let created = h.post(IS, &stream("a")).await.body;
    let mut v1 = created.clone();
    v1["metadata"]["labels"]["x"] = json!("1");
    let r = h.put(&format!("{IS}/a"), &v1).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut stale = created.clone();
    stale["metadata"]["labels"]["x"] = json!("2");
    let r = h.put(&format!("{IS}/a"), &stale).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["reason"], "Conflict");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );
    assert_eq!(
        h.get(&format!("{IS}/a")).await.body["metadata"]["labels"]["x"],
        "1"
    );
}

#[tokio::test]
async fn generations_follow_spec_changes_and_tags_take_the_stream_generation() {
    let h = MoorServer::start().await;
    let mut s = stream("g");
    s["spec"]["tags"] =
        json!([{"name": "1.0", "from": {"kind": "DockerImage", "name": "quay.io/a/b:1.0"}}]);
    let created = h.post(IS, &s).await.body;
    assert_eq!(created["spec"]["tags"][0]["generation"], 1);
    assert_eq!(
        created["spec"]["tags"][0]["referencePolicy"]["type"], "Source",
        "defaulted"
    );
    assert_eq!(
        created["spec"]["tags"][0]["importPolicy"]["importMode"], "Legacy",
        "defaulted"
    );
    // A metadata-only change keeps the generation.
    let r = h
        .patch(
            &format!("{IS}/g"),
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"y": "1"}}}),
        )
        .await;
    assert_eq!(r.body["metadata"]["generation"], 1);
    // A new tag bumps the stream and takes its generation; the old tag keeps its own.
    let r = h
        .patch(
            &format!("{IS}/g"),
            "application/strategic-merge-patch+json",
            &json!({"spec": {"tags": [{"name": "2.0", "from": {"kind": "DockerImage", "name": "quay.io/a/b:2.0"}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["metadata"]["generation"], 2);
    let tags = r.body["spec"]["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 2, "strategic merge by name keeps 1.0");
    assert_eq!(tags[0]["generation"], 1);
    assert_eq!(tags[1]["generation"], 2);
    // Generation 0 asks for a re-import: the tag takes the new stream generation.
    let r = h
        .patch(
            &format!("{IS}/g"),
            "application/json-patch+json",
            &json!([{"op": "replace", "path": "/spec/tags/0/generation", "value": 0}]),
        )
        .await;
    assert_eq!(r.body["metadata"]["generation"], 3);
    assert_eq!(r.body["spec"]["tags"][0]["generation"], 3);
    // Other values are ignored.
    let r = h
        .patch(
            &format!("{IS}/g"),
            "application/json-patch+json",
            &json!([{"op": "replace", "path": "/spec/tags/0/generation", "value": 42}]),
        )
        .await;
    assert_eq!(r.body["spec"]["tags"][0]["generation"], 3);
    assert_eq!(r.body["metadata"]["generation"], 3);
}

#[tokio::test]
async fn status_subresource_changes_only_status() {
    let h = MoorServer::start().await;
    let created = h.post(IS, &stream("st")).await.body;
    let mut body = created.clone();
    body["spec"]["lookupPolicy"]["local"] = json!(false);
    body["status"]["tags"] = json!([{"tag": "t", "items": [{"created": "2026-01-01T00:00:00Z", "dockerImageReference": "quay.io/x/y@sha256:3333333333333333333333333333333333333333333333333333333333333333", "image": "sha256:3333333333333333333333333333333333333333333333333333333333333333", "generation": 1}]}]);
    let r = h.put(&format!("{IS}/st/status"), &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["spec"]["lookupPolicy"]["local"], true,
        "spec unchanged"
    );
    assert_eq!(
        r.body["metadata"]["generation"], 1,
        "status writes keep the generation"
    );
    assert_eq!(r.body["status"]["tags"][0]["tag"], "t");
    // And the main resource cannot write status.
    let mut main = r.body.clone();
    main["status"]["tags"] = json!([]);
    let r = h.put(&format!("{IS}/st"), &main).await;
    assert_eq!(r.body["status"]["tags"][0]["tag"], "t");
}

#[tokio::test]
async fn field_validation_strict_warn_ignore() {
    let h = MoorServer::start().await;
    let mut s = stream("fv");
    s["spec"]["bogus"] = json!(1);
    let r = h.post(&format!("{IS}?fieldValidation=Strict"), &s).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.bogus\""),
        "{}",
        r.text
    );
    assert_eq!(
        h.get(&format!("{IS}/fv")).await.status,
        StatusCode::NOT_FOUND
    );
    let r = h.post(IS, &s).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let warning = r.headers.get("warning").unwrap().to_str().unwrap();
    assert!(warning.contains("unknown field"), "{warning}");
    assert!(r.body["spec"].get("bogus").is_none());
    s["metadata"]["name"] = json!("fv2");
    let r = h.post(&format!("{IS}?fieldValidation=Ignore"), &s).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.headers.get("warning").is_none());
    assert_eq!(
        h.post(&format!("{IS}?fieldValidation=Sometimes"), &s)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let h = MoorServer::start().await;
    let r = h.post(&format!("{IS}?dryRun=All"), &stream("dry")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["metadata"]["name"], "dry");
    assert_eq!(
        h.get(&format!("{IS}/dry")).await.status,
        StatusCode::NOT_FOUND
    );
    h.post(IS, &stream("dry")).await;
    let r = h
        .patch(
            &format!("{IS}/dry?dryRun=All"),
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"z": "1"}}}),
        )
        .await;
    assert_eq!(r.body["metadata"]["labels"]["z"], "1");
    assert!(
        h.get(&format!("{IS}/dry")).await.body["metadata"]["labels"]
            .get("z")
            .is_none()
    );
    let r = h
        .call(
            Method::DELETE,
            &format!("{IS}/dry?dryRun=All"),
            "application/json",
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(h.get(&format!("{IS}/dry")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn server_side_apply_creates_reapplies_and_removes_fields() {
    let h = MoorServer::start().await;
    let apply = |body: Value| {
        let h = &h;
        async move {
            h.call(
                Method::PATCH,
                &format!("{IS}/ssa?fieldManager=kubectl&fieldValidation=Strict"),
                "application/apply-patch+yaml",
                serde_yaml_ng::to_string(&body).unwrap(),
            )
            .await
        }
    };
    let first = json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "ssa", "labels": {"a": "1", "b": "2"}},
        "spec": {"lookupPolicy": {"local": true},
                 "tags": [{"name": "t1", "from": {"kind": "DockerImage", "name": "quay.io/x/y:1"}},
                          {"name": "t2", "from": {"kind": "DockerImage", "name": "quay.io/x/y:2"}}]}});
    let r = apply(first.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(r.body["metadata"]["managedFields"][0]["operation"], "Apply");
    let rv1 = r.body["metadata"]["resourceVersion"].clone();
    // Unchanged re-apply: no write.
    let r = apply(first.clone()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["metadata"]["resourceVersion"], rv1);
    // Dropping a label and a tag removes them.
    let mut second = first.clone();
    second["metadata"]["labels"] = json!({"a": "1"});
    second["spec"]["tags"] =
        json!([{"name": "t1", "from": {"kind": "DockerImage", "name": "quay.io/x/y:1"}}]);
    let r = apply(second).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(r.body["spec"]["tags"].as_array().unwrap().len(), 1);
    // Another manager changing an owned field conflicts unless forced.
    let other = json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream", "metadata": {"name": "ssa"},
                       "spec": {"lookupPolicy": {"local": false}}});
    let r = h
        .call(
            Method::PATCH,
            &format!("{IS}/ssa?fieldManager=other"),
            "application/apply-patch+yaml",
            other.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = h
        .call(
            Method::PATCH,
            &format!("{IS}/ssa?fieldManager=other&force=true"),
            "application/apply-patch+yaml",
            other.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["spec"]["lookupPolicy"]["local"], false);
    // Apply without a field manager is a bad request.
    let r = h
        .call(
            Method::PATCH,
            &format!("{IS}/ssa"),
            "application/apply-patch+yaml",
            other.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn watch_sends_added_modified_deleted_and_bookmarks() {
    let h = MoorServer::start().await;
    let list = h.get(IS).await;
    let rv = list.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let req = Request::get(format!(
        "{IS}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=5"
    ))
    .header("authorization", format!("Bearer {TOKEN}"))
    .body(Body::empty())
    .unwrap();
    use tower::ServiceExt;
    let resp = h.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body().into_data_stream();
    h.post(IS, &stream("w")).await;
    h.patch(
        &format!("{IS}/w"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"v": "2"}}}),
    )
    .await;
    h.delete(&format!("{IS}/w")).await;
    let mut types = Vec::new();
    let mut buf = String::new();
    while types.iter().filter(|t: &&String| *t != "BOOKMARK").count() < 3
        || !types.contains(&"BOOKMARK".to_string())
    {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find('\n') {
            let line: String = buf.drain(..=i).collect();
            let ev: Value = serde_json::from_str(line.trim()).unwrap();
            types.push(ev["type"].as_str().unwrap().to_string());
        }
    }
    let non_bookmark: Vec<&String> = types.iter().filter(|t| *t != "BOOKMARK").collect();
    assert_eq!(non_bookmark, vec!["ADDED", "MODIFIED", "DELETED"]);
}

/// On etcd, a watch's bookmarks follow etcd's progress notifications: they advance
/// past writes outside the watched resource (which the watch itself never sees).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_bookmarks_follow_etcd_progress() {
    use moor_store::{EtcdOptions, EtcdStore, Store};
    use tower::ServiceExt;
    let Some(etcd) = tokio::task::block_in_place(moor_testkit::etcd::Etcd::start) else {
        return;
    };
    let url = format!("etcd://127.0.0.1:{}/moor", etcd.client_port);
    let options = EtcdOptions::from_url(&url, Default::default()).unwrap();
    let store: std::sync::Arc<dyn Store> =
        std::sync::Arc::new(EtcdStore::connect(options).await.unwrap());
    let h = MoorServer::builder().store(store.clone()).start().await;
    let list = h.get(IS).await;
    let rv = list.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let req = Request::get(format!(
        "{IS}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=30"
    ))
    .header("authorization", format!("Bearer {TOKEN}"))
    .body(Body::empty())
    .unwrap();
    let resp = h.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body().into_data_stream();
    // A write no image stream watch sees.
    let elsewhere = store.create("/elsewhere/x", "x".into()).await.unwrap();
    let mut buf = String::new();
    let reached = async {
        loop {
            let chunk = body.next().await.unwrap().unwrap();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(i) = buf.find('\n') {
                let line: String = buf.drain(..=i).collect();
                let ev: Value = serde_json::from_str(line.trim()).unwrap();
                assert_eq!(ev["type"], "BOOKMARK", "{ev}");
                let at: i64 = ev["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                if at >= elsewhere {
                    return at;
                }
            }
        }
    };
    let at = tokio::time::timeout(std::time::Duration::from_secs(15), reached)
        .await
        .expect("a bookmark at or past the write elsewhere");
    assert!(at >= elsewhere);
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_410_gone() {
    let h = MoorServer::start().await;
    h.post(IS, &stream("c1")).await;
    h.post(IS, &stream("c2")).await;
    let rev = h.store.current_revision().await.unwrap();
    h.store.compact(rev).await.unwrap();
    let r = h.get(&format!("{IS}?watch=true&resourceVersion=1")).await;
    assert_eq!(r.status, StatusCode::GONE, "{}", r.text);
    assert_eq!(r.body["code"], 410);
}

#[tokio::test]
async fn tables_carry_oc_columns() {
    let h = MoorServer::start().await;
    h.post(IS, &stream("tbl")).await;
    let req = Request::get(IS)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Body::empty())
        .unwrap();
    let r = h.raw(req).await;
    assert_eq!(r.body["kind"], "Table");
    let cols: Vec<&str> = r.body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, vec!["Name", "Image Repository", "Tags", "Updated"]);
    assert_eq!(
        r.body["rows"][0]["cells"][1],
        "registry.test:5000/default/tbl"
    );
}

#[tokio::test]
async fn bad_input_gets_a_status_and_stores_nothing() {
    let h = MoorServer::start().await;
    let before = h.store.current_revision().await.unwrap();
    let r = h
        .call(Method::POST, IS, "application/json", "{not json")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["kind"], "Status");
    let r = h.call(Method::POST, IS, "application/yaml", "a: [").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = h
        .call(Method::POST, IS, "application/vnd.kubernetes.protobuf", "x")
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = h
        .call(
            Method::PATCH,
            &format!("{IS}/x"),
            "application/weird-patch",
            "{}",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!(
        "{{\"metadata\":{{\"name\":\"big\",\"annotations\":{{\"a\":\"{}\"}}}}}}",
        "x".repeat(3 * 1024 * 1024 + 10)
    );
    let r = h.call(Method::POST, IS, "application/json", big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["reason"], "RequestEntityTooLarge");
    let r = h
        .post(
            IS,
            &json!({"apiVersion": "v1", "kind": "ImageStream", "metadata": {"name": "x"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = h
        .post(
            "/apis/image.openshift.io/v1/namespaces/nope/imagestreams",
            &stream("x"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "namespace must exist");
    let r = h.post(IS, &json!({"metadata": {"name": "../etc"}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(h.store.current_revision().await.unwrap(), before);
}

#[tokio::test]
async fn discovery_and_openapi_for_kubectl() {
    let h = MoorServer::start().await;
    let req = Request::get("/apis")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .body(Body::empty())
        .unwrap();
    let r = h.raw(req).await;
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .contains("as=APIGroupDiscoveryList")
    );
    let image_group = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "image.openshift.io")
        .expect("image.openshift.io is discovered")
        .clone();
    let resources = &image_group["versions"][0]["resources"];
    assert!(
        resources
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["resource"] == "imagestreams" && x["shortNames"][0] == "is")
    );
    let r = h.get("/apis").await;
    let names: Vec<&str> = r.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"image.openshift.io"), "{names:?}");
    let r = h.get("/apis/image.openshift.io/v1").await;
    assert!(
        r.body["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "imagestreams/status")
    );
    let r = h.get("/api/v1").await;
    assert!(
        r.body["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "secrets")
    );
    let r = h.get("/openapi/v3").await;
    let url = r.body["paths"]["apis/image.openshift.io/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = h.get(&url).await.body;
    let patch = &doc["paths"]["/apis/image.openshift.io/v1/namespaces/{namespace}/imagestreams/{name}"]
        ["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "ImageStream"
    );
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation")
    );
}

#[tokio::test]
async fn namespaces_cascade_and_default_is_protected() {
    let h = MoorServer::start().await;
    let r = h
        .post("/api/v1/namespaces", &json!({"metadata": {"name": "team"}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"]["phase"], "Active");
    let team_is = "/apis/image.openshift.io/v1/namespaces/team/imagestreams";
    assert_eq!(
        h.post(team_is, &stream("a")).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        h.delete("/api/v1/namespaces/team").await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.get(&format!("{team_is}/a")).await.status,
        StatusCode::NOT_FOUND
    );
    let r = h.delete("/api/v1/namespaces/default").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn secrets_and_events() {
    let h = MoorServer::start().await;
    let cfg = json!({"auths": {"127.0.0.1:5000": {"auth": "dTpw"}}}).to_string();
    let r = h
        .post(
            "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": "pull"}, "type": "kubernetes.io/dockerconfigjson",
                    "stringData": {".dockerconfigjson": cfg}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.body["data"][".dockerconfigjson"].is_string());
    let r = h
        .post(
            "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": "bad"}, "type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "nope"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    for (n, kind) in [("e1", "ImageStream"), ("e2", "Pod")] {
        let r = h
            .post(
                "/api/v1/namespaces/default/events",
                &json!({"metadata": {"name": n}, "involvedObject": {"kind": kind, "name": "keycloak", "namespace": "default"},
                        "reason": "ImportSucceeded", "message": "ok", "type": "Normal"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = h
        .get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dkeycloak%2CinvolvedObject.kind%3DImageStream")
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = h
        .get("/api/v1/namespaces/default/events?fieldSelector=spec.nope%3Dx")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn imagestreamtags_are_a_view_over_the_stream() {
    let h = MoorServer::start().await;
    let r = h
        .post(
            ISTAG,
            &json!({"metadata": {"name": "keycloak:20.0"},
                    "tag": {"from": {"kind": "DockerImage", "name": "quay.io/keycloak/keycloak:20.0.2"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["tag"]["name"], "20.0");
    let stream = h.get(&format!("{IS}/keycloak")).await.body;
    assert_eq!(
        stream["spec"]["tags"][0]["name"], "20.0",
        "the stream was created"
    );
    // No image yet: GET is NotFound, as in OpenShift.
    assert_eq!(
        h.get(&format!("{ISTAG}/keycloak:20.0")).await.status,
        StatusCode::NOT_FOUND
    );
    let dup = h.post(ISTAG, &json!({"metadata": {"name": "keycloak:20.0"}, "tag": {"from": {"kind": "DockerImage", "name": "x:1"}}})).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    // Give the tag a history through the status subresource, as the importer will.
    let mut st = stream.clone();
    st["status"]["tags"] = json!([{"tag": "20.0", "items": [{"created": "2026-01-01T00:00:00Z",
        "dockerImageReference": "quay.io/keycloak/keycloak@sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "image": "sha256:1111111111111111111111111111111111111111111111111111111111111111", "generation": 1}]}]);
    assert_eq!(
        h.put(&format!("{IS}/keycloak/status"), &st).await.status,
        StatusCode::OK
    );
    let r = h.get(&format!("{ISTAG}/keycloak:20.0")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["image"]["metadata"]["name"],
        "sha256:1111111111111111111111111111111111111111111111111111111111111111"
    );
    assert!(
        r.body["image"]["dockerImageReference"]
            .as_str()
            .unwrap()
            .starts_with("quay.io/keycloak/keycloak@sha256:")
    );
    let list = h.get(ISTAG).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        h.get(&format!("{ISTAG}/no-colon")).await.status,
        StatusCode::BAD_REQUEST
    );
    let r = h.delete(&format!("{ISTAG}/keycloak:20.0")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let stream = h.get(&format!("{IS}/keycloak")).await.body;
    assert!(
        stream["spec"]
            .get("tags")
            .is_none_or(|t| t.as_array().unwrap().is_empty())
    );
    assert!(
        stream["status"]
            .get("tags")
            .is_none_or(|t| t.as_array().unwrap().is_empty())
    );
    assert_eq!(
        h.delete(&format!("{ISTAG}/keycloak:20.0")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn images_are_cluster_scoped_and_named_by_digest() {
    let h = MoorServer::start().await;
    let name = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    let r = h
        .post("/apis/image.openshift.io/v1/images", &json!({"metadata": {"name": name}, "dockerImageReference": format!("quay.io/a/b@{name}")}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.body["metadata"].get("namespace").is_none());
    assert_eq!(
        h.get(&format!("/apis/image.openshift.io/v1/images/{name}"))
            .await
            .status,
        StatusCode::OK
    );
    let r = h
        .post(
            "/apis/image.openshift.io/v1/images",
            &json!({"metadata": {"name": "not-a-digest"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn metrics_are_served_to_authenticated_clients() {
    let h = MoorServer::start().await;
    h.get(IS).await;
    let r = h.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("moor_http_requests_total"), "{}", r.text);
}

#[tokio::test]
async fn malformed_references_and_tag_names_are_refused_with_nothing_written() {
    let h = MoorServer::start().await;
    let before = h.store.current_revision().await.unwrap();
    for (tag, from) in [
        ("ok", "quay.io/Keycloak/keycloak:20.0"),
        ("ok", "quay.io/keycloak/keycloak:20.0:extra"),
        ("ok", "quay.io/keycloak/keycloak@sha256:abc"),
        ("bad tag!", "quay.io/keycloak/keycloak:20.0"),
    ] {
        let mut s = stream("refs");
        s["spec"]["tags"] = json!([{"name": tag, "from": {"kind": "DockerImage", "name": from}}]);
        let r = h.post(IS, &s).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{tag} {from}: {}",
            r.text
        );
        assert!(
            r.body["details"]["causes"][0]["field"]
                .as_str()
                .unwrap()
                .starts_with("spec.tags"),
            "{}",
            r.text
        );
    }
    let mut s = stream("refs");
    s["spec"]["tags"] = json!([{"name": "t", "from": {"kind": "ImageStreamTag", "name": "other:1"}, "importPolicy": {"scheduled": true}}]);
    assert_eq!(
        h.post(IS, &s).await.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "--scheduled needs a registry source"
    );
    assert_eq!(
        h.store.current_revision().await.unwrap(),
        before,
        "nothing was written"
    );
}
