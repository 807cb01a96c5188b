//! `moor serve` runs without transparent huge pages (its allocator asks for them, and
//! a 2 MiB page stays resident for one small object in it), unless
//! `MIMALLOC_ALLOW_THP` is set in its environment.

mod support;

use support::*;

/// The `THP_enabled` line of `/proc/PID/status` (Linux 5.0 and later): whether the
/// process may get transparent huge pages.
fn thp_enabled(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))?;
    Some(value.trim() == "1")
}

#[test]
fn moor_serve_turns_transparent_huge_pages_off_for_itself() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("off"), &[]);
    assert_eq!(thp_enabled(server.pid()), Some(false));
    // The allocator's own switch decides when it is set.
    let kept = start_with_env(
        &dir.path().join("kept"),
        &[],
        &[("MIMALLOC_ALLOW_THP", "1")],
    );
    assert_eq!(thp_enabled(kept.pid()), Some(true));
}
