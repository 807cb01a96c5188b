//! `moor get -w` across a 410 Gone (issue 15 §4): moor runs in process on a loopback
//! listener, the CLI reaches it through a relay the test can cut and hold, and the
//! store is compacted while the CLI is away, so that its next watch asks for a
//! compacted version. It must re-list, print only what changed, and watch on, as
//! kubectl's reflector does.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use moor_testkit::server::{IS, MoorServer};
use serde_json::json;
use support::moor_bin;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// A TCP relay to `upstream` whose connections can be cut, and whose new connections
/// can be held (accepted, not forwarded) until the gate opens again.
struct Relay {
    addr: std::net::SocketAddr,
    open: watch::Sender<bool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, gate) = watch::channel(true);
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accepted: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (c, a) = (conns.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut gate = gate.clone();
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    let _ = gate.wait_for(|open| *open).await;
                    if let Ok(mut out) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Relay {
            addr,
            open,
            conns,
            accepted,
        }
    }

    /// Holds new connections and cuts every current one.
    fn cut_and_hold(&self) {
        self.open.send_replace(false);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn open(&self) {
        self.open.send_replace(true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_relists_after_410_gone_and_prints_only_what_changed() {
    let h = MoorServer::builder().listen().await;
    for name in ["one", "other"] {
        let r = h.post(IS, &json!({"metadata": {"name": name}})).await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    }
    let relay = Relay::start(h.host.clone()).await;
    // moor's kubeconfig, pointed at the relay.
    let kubeconfig = std::fs::read_to_string(h.data_dir().join("kubeconfig"))
        .unwrap()
        .replace(&h.host, &relay.addr.to_string());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig).unwrap();

    let mut child = Command::new(moor_bin())
        .arg("--kubeconfig")
        .arg(&path)
        .args(["get", "is", "one", "-w", "-o", "name"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines: Vec<String> = Vec::new();
    let mut wait_lines = |n: usize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while lines.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => panic!("no {what} from get -w; saw {lines:?}"),
            }
        }
        lines.clone()
    };
    let one = "imagestream.image.openshift.io/one";
    let label = |v: &str| json!({"metadata": {"labels": {"step": v}}});
    let patch = |name: &str, v: &str| {
        let body = label(v);
        let h = &h;
        let path = format!("{IS}/{name}");
        async move {
            let r = h.patch(&path, "application/merge-patch+json", &body).await;
            assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        }
    };

    assert_eq!(wait_lines(1, "listing"), [one]);
    // The watch is live: a change of `one` prints it again.
    patch("one", "1").await;
    assert_eq!(wait_lines(2, "watched change"), [one, one]);

    // The CLI loses its connection and its next watch waits at the relay while `one`
    // changes, `other` changes (not watched: no line), and history is compacted.
    let before = relay.accepted.load(std::sync::atomic::Ordering::SeqCst);
    relay.cut_and_hold();
    let deadline = Instant::now() + Duration::from_secs(20);
    while relay.accepted.load(std::sync::atomic::Ordering::SeqCst) == before {
        assert!(Instant::now() < deadline, "the CLI did not watch again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    patch("one", "2").await;
    patch("other", "2").await;
    let rev = h.store.current_revision().await.unwrap();
    h.store.compact(rev).await.unwrap();
    relay.open();

    // 410 Gone: re-listed, `one` printed once for its change, and watched on.
    assert_eq!(wait_lines(3, "re-listed change"), [one, one, one]);
    patch("one", "3").await;
    assert_eq!(
        wait_lines(4, "change after the re-list"),
        [one, one, one, one]
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "get -w ended after the 410"
    );
    let _ = child.kill();
    let _ = child.wait();
}
