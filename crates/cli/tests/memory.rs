//! `moor serve` runs without transparent huge pages (its allocator asks for them, and
//! a 2 MiB page stays resident for one small object in it), unless
//! `MIMALLOC_ALLOW_THP` is set in its environment; and with its allocator giving freed
//! memory back within a millisecond, unless `MIMALLOC_PURGE_DELAY` is set.

use crate::support;

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

/// The value of `name` in the environment `pid` was started (or last exec'd) with.
fn environ(pid: u32, name: &str) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    raw.split(|b| *b == 0).find_map(|entry| {
        let entry = String::from_utf8_lossy(entry);
        entry.strip_prefix(&format!("{name}=")).map(str::to_string)
    })
}

#[test]
fn moor_serve_restarts_itself_with_a_short_allocator_purge_delay() {
    let dir = tempfile::tempdir().unwrap();
    // The same process (exec keeps the pid) now runs with the option set.
    let server = start(&dir.path().join("default"), &[]);
    assert_eq!(
        environ(server.pid(), "MIMALLOC_PURGE_DELAY").as_deref(),
        Some("1")
    );
    assert_eq!(thp_enabled(server.pid()), Some(false));
    // A value the user set is kept.
    let kept = start_with_env(
        &dir.path().join("kept"),
        &[],
        &[("MIMALLOC_PURGE_DELAY", "250")],
    );
    assert_eq!(
        environ(kept.pid(), "MIMALLOC_PURGE_DELAY").as_deref(),
        Some("250")
    );
}
