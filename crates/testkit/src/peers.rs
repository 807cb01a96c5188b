//! Peer binaries and loopback ports. A missing peer fails the test when the `CI`
//! environment variable is set, and otherwise skips it (`SKIP ...` on stderr).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// Whether peers are mandatory (`CI` is set).
pub fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The path of `tool` on `PATH`, if any.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// Whether every tool in `tools` is on `PATH`. When one is missing: panics if `CI` is
/// set, else prints `SKIP <test>: ...` (the test is named after the current thread,
/// as the test harness names it) and returns false.
pub fn require(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    assert!(
        !ci(),
        "{test}: required peer(s) {missing:?} not installed and CI is set (see TESTBED.md)"
    );
    eprintln!(
        "SKIP {test}: {missing:?} not installed (scripts/install-peers installs them; set CI to fail instead)"
    );
    false
}

/// The path of one peer binary, or `None` after [`require`] skipped (or panics under CI).
pub fn peer(tool: &str) -> Option<PathBuf> {
    if require(&[tool]) { which(tool) } else { None }
}

/// A port on 127.0.0.1 that nothing listens on (free at the time of the call).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// An address on 127.0.0.1 where connections are refused.
pub fn closed_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Runs `cmd`; panics with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd` and returns (success, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a blocking command off the async runtime.
pub async fn run_blocking(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run command"))
        .await
        .expect("blocking task")
}

/// Waits until 127.0.0.1:`port` accepts connections; false when `child` exits first
/// or `timeout` passes.
pub fn wait_listening(port: u16, child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Peak resident memory of a process in MiB, from `/proc/<pid>/status` (`VmHWM`).
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmHWM:")
}

/// Resident memory of a process now in MiB, from `/proc/<pid>/status` (`VmRSS`).
pub fn rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmRSS:")
}

fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
