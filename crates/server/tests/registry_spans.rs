//! Every `/v2/` request runs in a span that names its repository (namespace, stream)
//! and what it asks for, so pull-through and upload logs say which stream they serve.

use std::io::Write;
use std::sync::{Arc, Mutex};

use moor_testkit::MoorServer;
use tracing_subscriber::fmt::format::FmtSpan;

/// Log lines, collected.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn registry_requests_run_in_a_span_naming_the_stream() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let moor = MoorServer::start().await;
    let r = moor.get("/v2/team-a/app/manifests/1.0").await;
    assert_eq!(r.status, 404, "{}", r.text);
    let text =
        String::from_utf8_lossy(&lines.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
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
