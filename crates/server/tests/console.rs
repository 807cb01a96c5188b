//! The web console in process: each page's HTML, login and sessions, CSRF, actions
//! through the API as the user (and refused as the API refuses), static assets and
//! the live update stream. The browser tests (console_browser.rs) drive the same
//! pages in Chromium.

use crate::console_support;

use axum::http::{Method, StatusCode, header};
use console_support::{STREAM, builder, login, populate, push, request, set_cookie, stream};
use futures::StreamExt as _;
use moor_testkit::server::{MoorServer, TOKEN};
use tower::ServiceExt as _;

async fn server() -> (MoorServer, Vec<String>) {
    let server = builder().start().await;
    let digests = populate(&server).await;
    (server, digests)
}

const STREAM_PAGE: &str = "/console/ns/team-a/streams/app";

#[tokio::test]
async fn pages_need_a_session_and_a_bad_token_does_not_get_one() {
    let (server, _) = server().await;
    for path in ["/console/", "/console/ns/team-a/", STREAM_PAGE] {
        let r = server.raw(request(Method::GET, path, "", None)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers[header::LOCATION], "/console/login", "{path}");
    }
    let r = login(&server, "nobody-token").await.err().expect("refused");
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text.contains("does not accept this token"), "{}", r.text);
    assert!(set_cookie(&r, "moor-console").is_none());
    assert!(!r.text.contains("nobody-token"), "the token is not echoed");
    // A forged cookie is no session.
    let r = server
        .raw(request(
            Method::GET,
            "/console/",
            "moor-console=forged",
            None,
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_logout_ends_the_session() {
    let (server, _) = server().await;
    let form = server
        .raw(request(Method::GET, "/console/login", "", None))
        .await;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", "alice-token")
        .append_pair("csrf", &console_support::csrf_of(&form.text))
        .finish();
    // Without the login form's cookie, the POST is refused (login CSRF).
    let r = server
        .raw(request(Method::POST, "/console/login", "", Some(&body)))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let login_cookie = set_cookie(&form, "moor-console-login").expect("login cookie");
    let r = server
        .raw(request(
            Method::POST,
            "/console/login",
            &login_cookie,
            Some(&body),
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let raw = r
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("moor-console="))
        .expect("session cookie")
        .to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(raw.contains(part), "{raw} lacks {part}");
    }
    assert!(!raw.contains("alice-token"), "the cookie is not the token");
    assert!(!raw.contains("Secure"), "plain HTTP: no Secure flag");

    let session = login(&server, "alice-token").await.ok().expect("alice");
    let page = session.get(&server, "/console/").await;
    assert!(
        page.text.contains("Signed in as <strong>alice</strong>"),
        "{}",
        page.text
    );
    // Logout needs the CSRF token.
    let r = server
        .raw(request(
            Method::POST,
            "/console/logout",
            &session.cookie,
            Some("csrf=wrong"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = session.post(&server, "/console/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        session.get(&server, "/console/").await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn namespaces_page_lists_only_what_the_user_may_read_with_counts() {
    let (server, _) = server().await;
    let admin = login(&server, TOKEN).await.ok().expect("admin");
    let page = admin.get(&server, "/console/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text.contains(r#"href="/console/ns/team-a/""#),
        "{}",
        page.text
    );
    assert!(page.text.contains(r#"href="/console/ns/team-b/""#));

    // alice may not list namespaces: she sees team-a (where she may list streams),
    // never team-b.
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let page = alice.get(&server, "/console/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text.contains(r#"href="/console/ns/team-a/""#),
        "{}",
        page.text
    );
    assert!(!page.text.contains("team-b"), "{}", page.text);
    // One stream, no failing tag.
    assert!(
        page.text
            .contains(r#"team-a</a></th><td>1</td><td class="">0</td>"#),
        "{}",
        page.text
    );
    // And team-b's pages show the API's refusal, nothing of the namespace's content.
    let r = alice.get(&server, "/console/ns/team-b/streams/app").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.text
            .contains(r#"User &quot;alice&quot; cannot get resource &quot;imagestreams&quot;"#),
        "{}",
        r.text
    );
    assert!(!r.text.contains("sha256:"));
    let r = alice.get(&server, "/console/ns/team-b/").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn streams_page_searches_and_sorts() {
    let (server, _) = server().await;
    for name in ["zeta", "alpha"] {
        let r = server
            .post(
                "/apis/image.openshift.io/v1/namespaces/team-a/imagestreams",
                &serde_json::json!({"metadata": {"name": name}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let page = alice.get(&server, "/console/ns/team-a/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let pos = |name: &str| {
        page.text
            .find(&format!(">{name}</a>"))
            .unwrap_or_else(|| panic!("{name} listed: {}", page.text))
    };
    assert!(
        pos("alpha") < pos("app") && pos("app") < pos("zeta"),
        "by name"
    );
    // Sorted by last update, the stream with history comes first.
    let page = alice.get(&server, "/console/ns/team-a/?sort=updated").await;
    let app = page.text.find(">app</a>").expect("app");
    let alpha = page.text.find(">alpha</a>").expect("alpha");
    assert!(app < alpha, "{}", page.text);
    let page = alice.get(&server, "/console/ns/team-a/?q=ze").await;
    assert!(page.text.contains(">zeta</a>") && !page.text.contains(">alpha</a>"));
    // The search box keeps what was asked (escaped).
    let page = alice
        .get(&server, "/console/ns/team-a/?q=%3Cscript%3E")
        .await;
    assert!(
        page.text.contains(r#"value="&lt;script&gt;""#),
        "{}",
        page.text
    );
    assert!(!page.text.contains("<script>"));
}

#[tokio::test]
async fn stream_page_shows_tags_timeline_and_history() {
    let (server, digests) = server().await;
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let page = alice.get(&server, STREAM_PAGE).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let html = &page.text;
    // The tags table: the current digest, short, with the full one in its title.
    let current = &digests[2];
    assert!(html.contains(r#"<table id="tags-table">"#), "{html}");
    assert!(
        html.contains(&format!(
            r#"<code title="{current}">{}</code>"#,
            &current[..19]
        )),
        "{html}"
    );
    assert!(html.contains(r#"<th scope="col">Reference policy</th>"#));
    // The timeline: one lane, three points, the newest current.
    assert!(html.contains("<svg"), "{html}");
    assert_eq!(html.matches(r#"<g class="entry""#).count(), 3, "{html}");
    assert!(
        html.contains(r#"data-revision="3" data-kind="pushed" data-current"#),
        "{html}"
    );
    // Each history entry says what made it (these were put there by mappings).
    assert_eq!(html.matches(r#"data-kind="pushed""#).count(), 6, "{html}");
    // The history with full digests, and rollback offered to an editor for the
    // earlier revisions only.
    for d in &digests {
        assert!(html.contains(&format!("<code>{d}</code>")), "{d}");
    }
    assert_eq!(html.matches("Roll back to revision").count(), 2, "{html}");
    assert!(html.contains("Turn lookup on"));
    // A viewer is offered no action.
    let carol = login(&server, "carol-token").await.ok().expect("carol");
    let page = carol.get(&server, STREAM_PAGE).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !page.text.contains("Roll back to revision"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("Turn lookup"));
    assert!(!page.text.contains("Move…") && !page.text.contains("hx-post"));
    assert!(page.text.contains(&format!("<code>{}</code>", digests[0])));
}

#[tokio::test]
async fn rollback_asks_first_then_goes_through_the_api_with_csrf() {
    let (server, digests) = server().await;
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let first = &digests[0];
    let confirm = format!(
        "{STREAM_PAGE}/confirm?action=rollback&tag=v1&value={}",
        first.replace(':', "%3A")
    );
    let page = alice.get(&server, &confirm).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains(&format!("back to image {first}")),
        "{}",
        page.text
    );
    assert!(
        page.text.contains(
            r#"<button class="danger" id="confirm" type="submit" aria-describedby="what">"#
        )
    );
    // Asking changed nothing.
    let s = stream(&server, "team-a").await;
    assert!(
        s["spec"]["tags"].as_array().is_none_or(|t| t.is_empty()),
        "{s}"
    );

    let action = format!("{STREAM_PAGE}/actions");
    // A POST without the session's CSRF token is refused.
    let r = server
        .raw(request(
            Method::POST,
            &action,
            &alice.cookie,
            Some(&format!("action=rollback&tag=v1&value={first}")),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        stream(&server, "team-a").await["spec"]["tags"]
            .as_array()
            .is_none_or(|t| t.is_empty())
    );

    let r = alice
        .post(
            &server,
            &action,
            &[("action", "rollback"), ("tag", "v1"), ("value", first)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(
        r.headers[header::LOCATION],
        format!("{STREAM_PAGE}?done=rollback")
    );
    let s = stream(&server, "team-a").await;
    let tag = &s["spec"]["tags"][0];
    assert_eq!(tag["name"], "v1", "{s}");
    assert_eq!(tag["from"]["kind"], "ImageStreamImage");
    assert_eq!(tag["from"]["name"], format!("{STREAM}@{first}"));
    // A digest outside the tag's history is refused before any write.
    let r = alice
        .post(
            &server,
            &action,
            &[
                ("action", "rollback"),
                ("tag", "v1"),
                ("value", "sha256:0000"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_forbidden_action_shows_the_api_message_and_changes_nothing() {
    let (server, digests) = server().await;
    let carol = login(&server, "carol-token").await.ok().expect("carol");
    let before = stream(&server, "team-a").await;
    for form in [
        vec![
            ("action", "rollback"),
            ("tag", "v1"),
            ("value", digests[0].as_str()),
        ],
        vec![("action", "lookup"), ("value", "on")],
    ] {
        let r = carol
            .post(&server, &format!("{STREAM_PAGE}/actions"), &form)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(
            r.text.contains(
                r#"User &quot;carol&quot; cannot update resource &quot;imagestreams&quot;"#
            ),
            "{}",
            r.text
        );
    }
    assert_eq!(stream(&server, "team-a").await, before);
    // Bob edits team-b only: team-a's action is refused by the API's get.
    let bob = login(&server, "bob-token").await.ok().expect("bob");
    let r = bob
        .post(
            &server,
            &format!("{STREAM_PAGE}/actions"),
            &[("action", "lookup"), ("value", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(stream(&server, "team-a").await, before);
}

#[tokio::test]
async fn lookup_and_import_actions_change_the_stream() {
    let (server, _) = server().await;
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let action = format!("{STREAM_PAGE}/actions");
    let r = alice
        .post(&server, &action, &[("action", "lookup"), ("value", "on")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(
        stream(&server, "team-a").await["spec"]["lookupPolicy"]["local"],
        true
    );
    let page = alice.get(&server, STREAM_PAGE).await;
    assert!(page.text.contains("Turn lookup off"), "{}", page.text);
    // Import now needs a registry source; a pushed tag has none.
    let r = alice
        .post(&server, &action, &[("action", "import"), ("tag", "v1")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // With a source, it asks for a re-import (generation 0, which the API turns into
    // the stream's new generation).
    let r = server
        .patch(
            "/apis/image.openshift.io/v1/namespaces/team-a/imagestreams/app",
            "application/merge-patch+json",
            &serde_json::json!({"spec": {"tags": [{"name": "src", "from": {"kind": "DockerImage", "name": "quay.io/team/app:1"}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let generation = r.body["metadata"]["generation"]
        .as_i64()
        .expect("generation");
    let r = alice
        .post(&server, &action, &[("action", "import"), ("tag", "src")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let s = stream(&server, "team-a").await;
    assert!(
        s["spec"]["tags"][0]["generation"]
            .as_i64()
            .expect("tag generation")
            > generation,
        "{s}"
    );
}

#[tokio::test]
async fn static_assets_are_hashed_and_cached_and_pages_carry_a_csp() {
    let (server, _) = server().await;
    let page = server
        .raw(request(Method::GET, "/console/login", "", None))
        .await;
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii");
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let mut seen = 0;
    for (needle, kind) in [
        ("/console/static/console.", "text/css"),
        ("/console/static/htmx.", "text/javascript"),
        ("/console/static/htmx-sse.", "text/javascript"),
    ] {
        let at = page.text.find(needle).expect(needle);
        let rest = &page.text[at..];
        let url = &rest[..rest.find('"').expect("end")];
        let r = server.raw(request(Method::GET, url, "", None)).await;
        assert_eq!(r.status, StatusCode::OK, "{url}");
        assert!(
            r.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap_or("")
                .starts_with(kind)
        );
        assert_eq!(
            r.headers[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        seen += 1;
    }
    assert_eq!(seen, 3);
    let r = server
        .raw(request(
            Method::GET,
            "/console/static/htmx.0000.min.js",
            "",
            None,
        ))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_event_stream_sends_the_tags_table_when_a_tag_moves() {
    let (server, _) = server().await;
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let resp = server
        .router
        .clone()
        .oneshot(request(
            Method::GET,
            &format!("{STREAM_PAGE}/events"),
            &alice.cookie,
            None,
        ))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = resp.into_body().into_data_stream();
    let mut seen = String::new();
    let mut next_event = async |want: &str| {
        let deadline = std::time::Duration::from_secs(10);
        tokio::time::timeout(deadline, async {
            while !seen.contains(want) {
                let chunk = body.next().await.expect("open").expect("chunk");
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no event with {want}: {seen}"));
    };
    next_event("event: tags").await;
    let moved = console_support::digest("fourth");
    push(&server, "team-a", "v1", &moved).await;
    next_event(&moved[..19]).await;
}

#[tokio::test]
async fn image_page_shows_the_digest_and_pull_command_to_readers_only() {
    let (server, digests) = server().await;
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let first = &digests[0];
    let url = format!("{STREAM_PAGE}/images/{first}");
    let stream_page = alice.get(&server, STREAM_PAGE).await;
    assert!(
        stream_page.text.contains(&format!(r#"href="{url}""#)),
        "the history links to the image: {}",
        stream_page.text
    );
    let page = alice.get(&server, &url).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains(&format!("<code>{first}</code>")),
        "{}",
        page.text
    );
    assert!(
        page.text.contains(&format!(
            "podman pull registry.test:5000/team-a/app@{first}"
        )),
        "{}",
        page.text
    );
    assert!(page.text.contains(&format!("quay.io/team/app@{first}")));
    let bob = login(&server, "bob-token").await.ok().expect("bob");
    let r = bob.get(&server, &url).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.text.contains("podman pull"));
    let r = alice
        .get(&server, &format!("{STREAM_PAGE}/images/sha256%2F..%2Fx"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_cookies_are_secure() {
    // A real TLS listener: whether a request came over TLS is the connection's.
    let server = builder().with(|o| o.plain_http = false).listen().await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let r = http
        .get(format!("https://{}/console/login", server.host))
        .send()
        .await
        .expect("the login form over TLS");
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
}

/// Sets tag `src` of team-a's stream to a registry source (as the admin).
async fn add_registry_tag(server: &MoorServer, scheduled: bool) {
    let r = server
        .patch(
            "/apis/image.openshift.io/v1/namespaces/team-a/imagestreams/app",
            "application/merge-patch+json",
            &serde_json::json!({"spec": {"tags": [{"name": "src",
                "from": {"kind": "DockerImage", "name": "quay.io/team/app:1"},
                "importPolicy": {"scheduled": scheduled}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn actions_ask_with_a_page_without_js_and_a_dialog_with_htmx() {
    let (server, digests) = server().await;
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let page = alice.get(&server, STREAM_PAGE).await;
    // The rollback button is a link to the confirmation page, which htmx posts
    // after a confirm dialog saying the same, with the session's CSRF token.
    let confirm = format!(
        "{STREAM_PAGE}/confirm?action=rollback&amp;tag=v1&amp;value={}",
        digests[0].replace(':', "%3A")
    );
    assert!(
        page.text.contains(&format!(r#"href="{confirm}""#)),
        "{}",
        page.text
    );
    assert!(
        page.text
            .contains(&format!(r#"hx-post="{STREAM_PAGE}/actions""#))
    );
    assert!(page.text.contains(&format!(
        "hx-confirm=\"Roll tag app:v1 in team-a back to image {}.",
        digests[0]
    )));
    assert!(
        page.text
            .contains(&format!(r#"&quot;csrf&quot;:&quot;{}&quot;"#, alice.csrf))
    );
    // The htmx POST is sent on with HX-Redirect rather than a 303.
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &alice.csrf)
        .append_pair("action", "lookup")
        .append_pair("value", "on")
        .finish();
    let mut req = request(
        Method::POST,
        &format!("{STREAM_PAGE}/actions"),
        &alice.cookie,
        Some(&body),
    );
    req.headers_mut()
        .insert("hx-request", "true".parse().expect("header"));
    let r = server.raw(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.headers["hx-redirect"],
        format!("{STREAM_PAGE}?done=lookup")
    );
    assert_eq!(
        stream(&server, "team-a").await["spec"]["lookupPolicy"]["local"],
        true
    );
}

#[tokio::test]
async fn move_asks_for_a_source_then_confirms_then_points_the_tag_there() {
    let (server, digests) = server().await;
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let page = alice.get(&server, STREAM_PAGE).await;
    assert!(
        page.text
            .contains(&format!(r#"href="{STREAM_PAGE}/move?tag=v1""#)),
        "{}",
        page.text
    );
    let form = alice
        .get(&server, &format!("{STREAM_PAGE}/move?tag=v1"))
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert!(
        form.text
            .contains(r#"<label for="value">New source</label>"#)
    );
    assert!(
        form.text
            .contains(&format!(r#"action="{STREAM_PAGE}/confirm""#))
    );
    // The form leads to the confirmation, which says what the source is.
    let page = alice
        .get(
            &server,
            &format!("{STREAM_PAGE}/confirm?action=move&tag=v1&value=quay.io%2Fteam%2Fapp%3A2"),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text
            .contains("Move tag app:v1 in team-a to the registry image quay.io/team/app:2."),
        "{}",
        page.text
    );
    // A source that is none is refused on the confirmation page and on the POST.
    let page = alice
        .get(
            &server,
            &format!("{STREAM_PAGE}/confirm?action=move&tag=v1&value=nope"),
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let action = format!("{STREAM_PAGE}/actions");
    let before = stream(&server, "team-a").await;
    let r = alice
        .post(
            &server,
            &action,
            &[("action", "move"), ("tag", "v1"), ("value", "a:b:c")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(stream(&server, "team-a").await, before);
    // To a registry image.
    let r = alice
        .post(
            &server,
            &action,
            &[
                ("action", "move"),
                ("tag", "v1"),
                ("value", "quay.io/team/app:2"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(
        r.headers[header::LOCATION],
        format!("{STREAM_PAGE}?done=move")
    );
    let s = stream(&server, "team-a").await;
    assert_eq!(s["spec"]["tags"][0]["from"]["kind"], "DockerImage", "{s}");
    assert_eq!(s["spec"]["tags"][0]["from"]["name"], "quay.io/team/app:2");
    // To a digest of the stream: an ImageStreamImage.
    let r = alice
        .post(
            &server,
            &action,
            &[("action", "move"), ("tag", "v1"), ("value", &digests[1])],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let s = stream(&server, "team-a").await;
    assert_eq!(
        s["spec"]["tags"][0]["from"]["kind"], "ImageStreamImage",
        "{s}"
    );
    assert_eq!(
        s["spec"]["tags"][0]["from"]["name"],
        format!("{STREAM}@{}", digests[1])
    );
    // carol may not: not offered, and the API's refusal shown.
    let carol = login(&server, "carol-token").await.ok().expect("carol");
    let r = carol
        .post(
            &server,
            &action,
            &[
                ("action", "move"),
                ("tag", "v1"),
                ("value", "quay.io/x/y:1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(
        r.text
            .contains("cannot update resource &quot;imagestreams&quot;"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn scheduled_import_turns_on_and_off_and_the_table_shows_it() {
    let (server, _) = server().await;
    add_registry_tag(&server, false).await;
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let page = alice.get(&server, STREAM_PAGE).await;
    assert!(page.text.contains("Schedule import"), "{}", page.text);
    let page = alice
        .get(
            &server,
            &format!("{STREAM_PAGE}/confirm?action=schedule&tag=src&value=on"),
        )
        .await;
    assert!(
        page.text
            .contains("Turn scheduled import on for tag app:src"),
        "{}",
        page.text
    );
    let action = format!("{STREAM_PAGE}/actions");
    // A pushed tag has no registry source to schedule.
    let r = alice
        .post(
            &server,
            &action,
            &[("action", "schedule"), ("tag", "v1"), ("value", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = alice
        .post(
            &server,
            &action,
            &[("action", "schedule"), ("tag", "src"), ("value", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let s = stream(&server, "team-a").await;
    let src = s["spec"]["tags"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "src"))
        .expect("src")
        .clone();
    assert_eq!(src["importPolicy"]["scheduled"], true, "{s}");
    let page = alice.get(&server, STREAM_PAGE).await;
    assert!(page.text.contains("Stop scheduled import"), "{}", page.text);
    let r = alice
        .post(
            &server,
            &action,
            &[("action", "schedule"), ("tag", "src"), ("value", "off")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let s = stream(&server, "team-a").await;
    let src = s["spec"]["tags"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "src"))
        .expect("src")
        .clone();
    assert_ne!(src["importPolicy"]["scheduled"], true, "{s}");
}

#[tokio::test]
async fn a_failed_import_says_why_and_when_it_is_retried() {
    // Imports read a registry that has nothing: every import fails with NotFound.
    let server = builder()
        .imports(moor_server::importer::controller::Backoff::default())
        .scheduler(
            std::time::Duration::from_secs(3600),
            std::sync::Arc::new(moor_server::scheduler::AlwaysLeader::new()),
        )
        .start()
        .await;
    populate(&server).await;
    add_registry_tag(&server, false).await;
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let shown = |needle: &'static str| {
        let alice = &alice;
        let server = &server;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let page = alice.get(server, STREAM_PAGE).await;
                if page.text.contains(needle) {
                    return page.text;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{needle:?} never shown: {}",
                    page.text
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    // Not scheduled, a definite answer: waits for a pull secret or the source.
    let html = shown("Import failed").await;
    assert!(html.contains("<strong>NotFound</strong>"), "{html}");
    assert!(
        html.contains("Retried when the namespace's pull secrets or the tag's source change."),
        "{html}"
    );
    // Scheduled: the scheduler's record gives the next check (the last one once it
    // ran), and the retry is that check.
    add_registry_tag(&server, true).await;
    let html = shown("next check").await;
    assert!(html.contains("Retried at the next check, "), "{html}");
}

#[tokio::test]
async fn creating_a_stream_asks_first_and_is_offered_to_who_may() {
    let (server, _) = server().await;
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let page = alice.get(&server, "/console/ns/team-a/").await;
    assert!(
        page.text.contains(r#"href="/console/ns/team-a/new""#),
        "{}",
        page.text
    );
    let form = alice.get(&server, "/console/ns/team-a/new").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert!(form.text.contains(r#"<label for="name">Name</label>"#));
    let page = alice
        .get(&server, "/console/ns/team-a/new?name=web&lookup=on")
        .await;
    assert!(
        page.text
            .contains("Create image stream web in team-a, lookup on."),
        "{}",
        page.text
    );
    // Asking created nothing.
    let path = "/apis/image.openshift.io/v1/namespaces/team-a/imagestreams/web";
    assert_eq!(server.get(path).await.status, StatusCode::NOT_FOUND);
    // Without the CSRF token: refused.
    let r = server
        .raw(request(
            Method::POST,
            "/console/ns/team-a/new",
            &alice.cookie,
            Some("name=web"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = alice
        .post(
            &server,
            "/console/ns/team-a/new",
            &[("name", "web"), ("lookup", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(
        r.headers[header::LOCATION],
        "/console/ns/team-a/streams/web?done=create"
    );
    let s = server.get(path).await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.body["spec"]["lookupPolicy"]["local"], true);
    // The API's message for a stream that exists.
    let r = alice
        .post(&server, "/console/ns/team-a/new", &[("name", "web")])
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.text.contains("already exists"), "{}", r.text);
    // carol views: not offered, refused with the API's message.
    let carol = login(&server, "carol-token").await.ok().expect("carol");
    let page = carol.get(&server, "/console/ns/team-a/").await;
    assert!(!page.text.contains("Create image stream"), "{}", page.text);
    let r = carol
        .post(&server, "/console/ns/team-a/new", &[("name", "other")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(
        r.text
            .contains("cannot create resource &quot;imagestreams&quot;"),
        "{}",
        r.text
    );
}

/// A Deployment in team-a running `image`.
fn deployment(name: &str, image: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name,
            "annotations": {"image.openshift.io/triggers":
                r#"[{"from":{"kind":"ImageStreamTag","name":"app:v1"},"fieldPath":"spec.template.spec.containers[?(@.name==\"main\")].image"}]"#}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    })
}

#[tokio::test]
async fn who_runs_it_lists_the_workloads_pinned_to_each_digest() {
    let (server, digests) = server().await;
    for (name, d) in [("web", &digests[0]), ("api", &digests[2])] {
        let r = server
            .post(
                "/apis/apps/v1/namespaces/team-a/deployments",
                &deployment(name, &format!("quay.io/team/app@{d}")),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    // Another repository with the same digest is not this stream's.
    let r = server
        .post(
            "/apis/apps/v1/namespaces/team-a/deployments",
            &deployment("other", &format!("quay.io/else/thing@{}", digests[0])),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let page = alice.get(&server, STREAM_PAGE).await;
    let html = &page.text;
    assert!(html.contains(r#"<table id="runs-table">"#), "{html}");
    // web runs revision 1, an old digest; api runs the current one.
    let row = |w: &str| {
        let at = html
            .find(&format!(r#"data-workload="Deployment/{w}""#))
            .unwrap_or_else(|| panic!("{w} listed: {html}"));
        &html[at..at + html[at..].find("</tr>").expect("row end")]
    };
    assert!(row("web").contains("data-old"), "{}", row("web"));
    assert!(row("web").contains("v1 revision 1"), "{}", row("web"));
    assert!(row("web").contains("old digest"));
    assert!(row("web").contains("app:v1"), "the trigger: {}", row("web"));
    assert!(!row("api").contains("data-old"), "{}", row("api"));
    assert!(
        row("api").contains("v1 revision 3 (current)"),
        "{}",
        row("api")
    );
    assert!(!html.contains(r#"data-workload="Deployment/other""#));
    // carol may not list pods in team-a? She views: she sees the same rows.
    let carol = login(&server, "carol-token").await.ok().expect("carol");
    let page = carol.get(&server, STREAM_PAGE).await;
    assert!(
        page.text.contains(r#"data-workload="Deployment/web""#),
        "{}",
        page.text
    );
    // bob sees nothing of team-a at all.
    let bob = login(&server, "bob-token").await.ok().expect("bob");
    let page = bob.get(&server, STREAM_PAGE).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(!page.text.contains("Deployment/web"));
}

#[tokio::test]
async fn long_lists_come_a_page_at_a_time() {
    let (server, _) = server().await;
    for i in 0..120 {
        let r = server
            .post(
                "/apis/image.openshift.io/v1/namespaces/team-a/imagestreams",
                &serde_json::json!({"metadata": {"name": format!("s{i:03}")}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let rows = |html: &str| {
        html.matches(r#"<tr><th scope="row"><a href="/console/ns/team-a/streams/"#)
            .count()
    };
    let page = alice
        .get(&server, "/console/ns/team-a/?q=s&sort=name")
        .await;
    assert_eq!(rows(&page.text), 100, "{}", page.text);
    assert!(page.text.contains("120 image streams"), "{}", page.text);
    assert!(page.text.contains("Page 1 of 2"), "{}", page.text);
    // The next page keeps the search and the order.
    assert!(
        page.text
            .contains(r#"<a rel="next" href="/console/ns/team-a/?q=s&amp;sort=name&amp;page=2">"#),
        "{}",
        page.text
    );
    let page = alice
        .get(&server, "/console/ns/team-a/?q=s&sort=name&page=2")
        .await;
    assert_eq!(rows(&page.text), 20, "{}", page.text);
    assert!(page.text.contains(">s119</a>") && !page.text.contains(">s000</a>"));
    // A page past the end is the last one.
    let page = alice.get(&server, "/console/ns/team-a/?q=s&page=9").await;
    assert!(page.text.contains("Page 2 of 2"), "{}", page.text);
    // The admin lists streams across namespaces once: same counts.
    let admin = login(&server, moor_testkit::server::TOKEN)
        .await
        .ok()
        .expect("admin");
    let page = admin.get(&server, "/console/").await;
    assert!(
        page.text.contains(r#"team-a</a></th><td>121</td>"#),
        "{}",
        page.text
    );
}

/// Sends `body` to the registry as the admin.
async fn registry(
    server: &MoorServer,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> moor_testkit::server::Resp {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(axum::body::Body::from(body))
        .expect("request");
    server.raw(req).await
}

#[tokio::test]
async fn image_page_lists_signatures_and_sboms_that_refer_to_it() {
    let (server, digests) = server().await;
    let alice = login(&server, "alice-token").await.ok().expect("alice");
    let image = format!("{STREAM_PAGE}/images/{}", digests[0]);
    let page = alice.get(&server, &image).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(!page.text.contains("Referrers"), "none yet: {}", page.text);
    let empty = console_support::digest("{}");
    let r = registry(
        &server,
        Method::POST,
        &format!("/v2/team-a/app/blobs/uploads/?digest={empty}"),
        "application/octet-stream",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for (kind, created) in [
        (
            "application/vnd.dev.sigstore.bundle.v0.3+json",
            "2026-12-01T10:00:00Z",
        ),
        ("application/spdx+json", "2026-12-02T10:00:00Z"),
    ] {
        let referrer = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": digests[0], "size": 100},
            "annotations": {"org.opencontainers.image.created": created},
        }))
        .expect("json");
        let d = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&referrer))
        );
        let r = registry(
            &server,
            Method::PUT,
            &format!("/v2/team-a/app/manifests/{d}"),
            "application/vnd.oci.image.manifest.v1+json",
            referrer,
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let page = alice.get(&server, &image).await;
    let html = &page.text;
    assert!(html.contains(r#"<table id="referrers-table">"#), "{html}");
    assert!(html.contains(r#"<tr data-kind="Signature">"#), "{html}");
    assert!(html.contains(r#"<tr data-kind="SBOM">"#), "{html}");
    assert!(html.contains("application/spdx+json"));
    assert!(html.contains("2026-12-01T10:00:00Z"));
    // Another image of the stream has none.
    let page = alice
        .get(&server, &format!("{STREAM_PAGE}/images/{}", digests[1]))
        .await;
    assert!(!page.text.contains("referrers-table"), "{}", page.text);
}
