//! The web console in a real headless Chromium, driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`, which `scripts/install-peers` installs): login,
//! a stream's tags table and timeline, a rollback by click checked through the API, a
//! user without rights seeing nothing of a namespace, a forbidden action refused with
//! the API's message, and a live update when a tag moves. moor listens on loopback.

use crate::console_support;

use std::time::Duration;

use console_support::{STREAM, builder, populate, push, stream};
use fantoccini::{Client, ClientBuilder, Locator};
use moor_testkit::server::MoorServer;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// One browser at a time: the machine is small, and each test's browser is its own.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(20);

/// chromedriver on a free loopback port, and a browser session through it.
struct Browser {
    client: Client,
    _driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Browser {
    async fn start() -> Browser {
        let driver = which("chromedriver");
        let chromium = which("chromium");
        let port = free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        // Ready when /status answers.
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let ready = http
                .get(format!("{url}/status"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-extensions", "--disable-sync",
                    "--disable-default-apps", "--no-first-run", "--no-default-browser-check",
                    "--disable-component-update", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a Chromium session");
        Browser {
            client,
            _driver: child,
            _profile: profile,
        }
    }

    /// Logs in on the form with `token`; lands on the namespaces page.
    async fn login(&self, base: &str, token: &str) {
        let c = &self.client;
        c.goto(&format!("{base}/console/")).await.expect("goto");
        // Sent to the login form.
        let field = c
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("input#token"))
            .await
            .expect("the login form");
        field.send_keys(token).await.expect("type the token");
        c.find(Locator::Css("form button[type=submit]"))
            .await
            .expect("submit")
            .click()
            .await
            .expect("click");
        c.wait()
            .at_most(WAIT)
            .for_element(Locator::XPath("//h1[text()='Namespaces']"))
            .await
            .expect("the namespaces page after login");
    }

    async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    async fn click_link(&self, text: &str) {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::LinkText(text))
            .await
            .unwrap_or_else(|e| panic!("link {text:?}: {e}"))
            .click()
            .await
            .expect("click");
    }

    async fn stop(self) {
        let _ = self.client.close().await;
    }
}

/// The path of `program`, or a failure that says how to install it.
fn which(program: &str) -> String {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => p.display().to_string(),
        None => panic!(
            "{program} is not installed: the console's browser tests need Debian's chromium and \
             chromium-driver (run scripts/install-peers)"
        ),
    }
}

async fn moor() -> (MoorServer, Vec<String>, String) {
    let server = builder().listen().await;
    let digests = populate(&server).await;
    let base = format!("http://{}", server.host);
    (server, digests, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_a_stream_with_history_then_a_rollback_by_click() {
    let _one = ONE_BROWSER.lock().await;
    let (server, digests, base) = moor().await;
    let b = Browser::start().await;
    b.login(&base, "alice-token").await;
    assert!(b.source().await.contains("Signed in as"));
    b.click_link("team-a").await;
    b.click_link(STREAM).await;
    let c = &b.client;
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#tags-table"))
        .await
        .expect("the tags table");
    let row = c
        .find(Locator::Css("table#tags-table tr[data-tag=v1]"))
        .await
        .expect("tag v1")
        .text()
        .await
        .expect("text");
    assert!(row.contains(&digests[2][..19]), "{row}");
    assert!(row.contains("OK"), "{row}");
    let points = c
        .find_all(Locator::Css("figure.timeline svg g.entry"))
        .await
        .expect("timeline points");
    assert_eq!(points.len(), 3);
    let current = c
        .find(Locator::Css("svg g.entry[data-current] title"))
        .await
        .expect("the current entry");
    let title = current.html(true).await.expect("title");
    assert!(title.contains(&digests[2]), "{title}");

    // Roll back by click: the button, then the confirm dialog (htmx's; without
    // JavaScript it is the confirmation page, see console.rs).
    b.click_link("Roll back to revision 1").await;
    let deadline = std::time::Instant::now() + WAIT;
    let asked = loop {
        match c.get_alert_text().await {
            Ok(text) => break text,
            Err(_) => {
                assert!(std::time::Instant::now() < deadline, "no confirm dialog");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(asked.contains(&digests[0]), "{asked}");
    assert_eq!(
        stream(&server, "team-a").await["spec"]["tags"]
            .as_array()
            .map_or(0, Vec::len),
        0,
        "asking changes nothing"
    );
    c.accept_alert().await.expect("confirm");
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("p.notice"))
        .await
        .expect("back on the stream page with a notice");
    let s = stream(&server, "team-a").await;
    assert_eq!(
        s["spec"]["tags"][0]["from"]["kind"], "ImageStreamImage",
        "{s}"
    );
    assert_eq!(
        s["spec"]["tags"][0]["from"]["name"],
        format!("{STREAM}@{}", digests[0])
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_rights_sees_nothing_and_a_forbidden_action_is_refused() {
    let _one = ONE_BROWSER.lock().await;
    let (server, digests, base) = moor().await;
    let b = Browser::start().await;
    // bob edits team-b only: team-a is not listed, and its stream page is the API's
    // refusal with none of its content.
    b.login(&base, "bob-token").await;
    let html = b.source().await;
    assert!(
        html.contains("team-b") && !html.contains("team-a"),
        "{html}"
    );
    b.client
        .goto(&format!("{base}/console/ns/team-a/streams/{STREAM}"))
        .await
        .expect("goto");
    let alert = b
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("p.error"))
        .await
        .expect("an error")
        .text()
        .await
        .expect("text");
    assert!(
        alert.contains(r#"User "bob" cannot get resource "imagestreams""#),
        "{alert}"
    );
    assert!(!b.source().await.contains("sha256:"));
    b.stop().await;

    // carol views team-a: no rollback is offered; asking through the confirmation
    // URL anyway is refused by the API, whose message she sees.
    let b = Browser::start().await;
    b.login(&base, "carol-token").await;
    b.click_link("team-a").await;
    b.click_link(STREAM).await;
    b.client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#tags-table"))
        .await
        .expect("the tags table");
    assert!(!b.source().await.contains("Roll back to revision"));
    let before = stream(&server, "team-a").await;
    let confirm = format!(
        "{base}/console/ns/team-a/streams/{STREAM}/confirm?action=rollback&tag=v1&value={}",
        digests[0].replace(':', "%3A")
    );
    b.client.goto(&confirm).await.expect("goto");
    b.client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("button#confirm"))
        .await
        .expect("the confirmation page")
        .click()
        .await
        .expect("click");
    let alert = b
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("p.error"))
        .await
        .expect("the refusal")
        .text()
        .await
        .expect("text");
    assert!(
        alert.contains(r#"User "carol" cannot update resource "imagestreams""#),
        "{alert}"
    );
    assert_eq!(stream(&server, "team-a").await, before);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_update_arrives_when_a_tag_moves() {
    let _one = ONE_BROWSER.lock().await;
    let (server, _, base) = moor().await;
    let b = Browser::start().await;
    b.login(&base, "alice-token").await;
    b.client
        .goto(&format!("{base}/console/ns/team-a/streams/{STREAM}"))
        .await
        .expect("goto");
    b.client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#tags-table"))
        .await
        .expect("the tags table");
    // Wait until htmx's SSE extension has its event source open.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let open: Value = b
            .client
            .execute(
                "const e = document.querySelector('#tags-live');\
                 const d = e && e['htmx-internal-data'];\
                 return !!(d && d.sseEventSource && d.sseEventSource.readyState === 1);",
                vec![],
            )
            .await
            .expect("script");
        if open == json!(true) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the event stream did not open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let moved = console_support::digest("moved");
    push(&server, "team-a", "v1", &moved).await;
    let xpath = format!("//table[@id='tags-table']//tr[@data-tag='v1']//code[@title='{moved}']");
    b.client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(&xpath))
        .await
        .expect("the moved tag in the table without a reload");
    b.stop().await;
}

/// Not a test: writes the screenshots of docs/console.md into the folder named by
/// `MOOR_CONSOLE_SCREENSHOTS` (`cargo test --workspace --locked --test
/// console_browser -- --ignored screenshots`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the docs' screenshots when asked"]
async fn screenshots() {
    let Some(dir) = std::env::var_os("MOOR_CONSOLE_SCREENSHOTS") else {
        panic!("set MOOR_CONSOLE_SCREENSHOTS to the folder to write them to");
    };
    let dir = std::path::PathBuf::from(dir);
    let _one = ONE_BROWSER.lock().await;
    let (server, digests, base) = moor().await;
    for name in ["keycloak", "postgres", "redis"] {
        let r = server
            .post(
                "/apis/image.openshift.io/v1/namespaces/team-a/imagestreams",
                &json!({"metadata": {"name": name}, "spec": {"lookupPolicy": {"local": name == "keycloak"}}}),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.text);
    }
    push(&server, "team-a", "v2", &console_support::digest("v2-a")).await;
    let r = server
        .patch(
            "/apis/image.openshift.io/v1/namespaces/team-a/imagestreams/app",
            "application/merge-patch+json",
            &json!({"spec": {"tags": [{"name": "20.0", "from": {"kind": "DockerImage", "name": "quay.io/keycloak/keycloak:20.0.2"}, "importPolicy": {"scheduled": true}}]}}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    // A workload still on the first image, for "Who runs it".
    let r = server
        .post(
            "/apis/apps/v1/namespaces/team-a/deployments",
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "main",
                            "image": format!("quay.io/team/app@{}", digests[0])}]}}}}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let b = Browser::start().await;
    b.client
        .set_window_size(1000, 760)
        .await
        .expect("window size");
    let shot = |name: &'static str| {
        let dir = dir.clone();
        let c = b.client.clone();
        async move {
            let png = c.screenshot().await.expect("screenshot");
            std::fs::write(dir.join(name), png).expect("write the screenshot");
        }
    };
    b.client
        .goto(&format!("{base}/console/login"))
        .await
        .expect("goto");
    shot("console-login.png").await;
    b.login(&base, "alice-token").await;
    shot("console-namespaces.png").await;
    b.click_link("team-a").await;
    shot("console-streams.png").await;
    b.client
        .set_window_size(1000, 1250)
        .await
        .expect("window size");
    b.click_link(STREAM).await;
    shot("console-stream.png").await;
    b.client
        .set_window_size(1000, 760)
        .await
        .expect("window size");
    b.client
        .goto(&format!(
            "{base}/console/ns/team-a/streams/{STREAM}/confirm?action=rollback&tag=v1&value={}",
            digests[0].replace(':', "%3A")
        ))
        .await
        .expect("goto");
    shot("console-confirm.png").await;
    b.client
        .goto(&format!(
            "{base}/console/ns/team-a/streams/{STREAM}/move?tag=v1"
        ))
        .await
        .expect("goto");
    shot("console-move.png").await;
    b.client
        .goto(&format!("{base}/console/ns/team-a/new"))
        .await
        .expect("goto");
    shot("console-create.png").await;
    b.client
        .goto(&format!(
            "{base}/console/ns/team-a/streams/{STREAM}/images/{}",
            digests[0]
        ))
        .await
        .expect("goto");
    shot("console-image.png").await;
    b.stop().await;
}
