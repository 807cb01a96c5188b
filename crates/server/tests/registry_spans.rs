//! Every `/v2/` request runs in a span that names its repository (namespace, stream)
//! and what it asks for, so pull-through and upload logs say which stream they serve.

use moor_testkit::MoorServer;

#[tokio::test(flavor = "current_thread")]
async fn registry_requests_run_in_a_span_naming_the_stream() {
    let (lines, _guard) = moor_testkit::logs::capture(tracing::Level::INFO, true);

    let moor = MoorServer::start().await;
    let r = moor.get("/v2/team-a/app/manifests/1.0").await;
    assert_eq!(r.status, 404, "{}", r.text);
    let text = lines.text();
    let span = text
        .lines()
        .find(|l| l.contains("registry{"))
        .unwrap_or_else(|| panic!("no registry span closed: {text}"));
    for field in [
        "namespace=team-a",
        "stream=app",
        "kind=manifests",
        "reference=1.0",
    ] {
        assert!(span.contains(field), "{field} missing from {span}");
    }
}
