//! Durations and sizes for people: kubectl's short ages for table cells (`5s`,
//! `3m20s`, `4d`), Docker's long form that oc's describe prints (`2 minutes`,
//! `About an hour`), and sizes in binary units (`57.23 MiB`). Pure functions, shared by
//! the server's Table cells and the CLI's printers.

use jiff::Timestamp;

/// Whole seconds from `then` to `now` (negative when `then` is in the future).
pub fn seconds_since(then: Timestamp, now: Timestamp) -> i64 {
    now.as_second() - then.as_second()
}

/// kubectl's age of a table cell (apimachinery's `duration.HumanDuration`):
/// `45s`, `3m20s`, `15m`, `2h5m`, `10h`, `3d4h`, `20d`, `2y30d`, `9y`.
pub fn short_age(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        let years = hours / 24 / 365;
        return if days == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{days}d")
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Docker's `units.HumanDuration`, which oc's describe prints before "ago":
/// `Less than a second`, `5 seconds`, `About a minute`, `2 minutes`, `About an hour`,
/// `3 hours`, `4 days`, `2 weeks`, `3 months`, `2 years`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (seconds as f64 / 3600.0).round() as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", seconds / 3600 / 24 / 365)
}

/// A size in binary units with two decimals, as oc and `moor`'s progress bars
/// (indicatif's `HumanBytes`) write it: `0 B`, `512 B`, `1.21 KiB`, `57.23 MiB`,
/// `1.86 GiB`. One style for every size moor prints.
pub fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let bytes = bytes.max(0);
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut size = bytes as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.2} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_the_progress_bars() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.00 KiB");
        assert_eq!(human_size(1234), "1.21 KiB");
        assert_eq!(human_size(60_010_000), "57.23 MiB");
        assert_eq!(human_size(2_000_000_000), "1.86 GiB");
        assert_eq!(human_size(-3), "0 B");
    }

    use super::*;

    #[test]
    fn short_ages_read_like_kubectl() {
        assert_eq!(short_age(-5), "<invalid>");
        assert_eq!(short_age(-1), "0s");
        assert_eq!(short_age(5), "5s");
        assert_eq!(short_age(119), "119s");
        assert_eq!(short_age(180), "3m");
        assert_eq!(short_age(200), "3m20s");
        assert_eq!(short_age(15 * 60 + 7), "15m");
        assert_eq!(short_age(179 * 60), "179m");
        assert_eq!(short_age(2 * 3600 + 5 * 60), "125m");
        assert_eq!(short_age(3 * 3600 + 5 * 60), "3h5m");
        assert_eq!(short_age(3 * 3600), "3h");
        assert_eq!(short_age(10 * 3600), "10h");
        assert_eq!(short_age(4 * 86400), "4d");
        assert_eq!(short_age(3 * 86400 + 4 * 3600), "3d4h");
        assert_eq!(short_age(20 * 86400), "20d");
        assert_eq!(short_age(2 * 365 * 86400 + 30 * 86400), "2y30d");
        assert_eq!(short_age(9 * 365 * 86400), "9y");
    }

    #[test]
    fn long_durations_read_like_oc_describe() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(42), "42 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(150), "2 minutes");
        assert_eq!(human_duration(59 * 60), "59 minutes");
        assert_eq!(human_duration(60 * 60), "About an hour");
        assert_eq!(human_duration(5 * 3600 + 40 * 60), "6 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(20 * 86400), "2 weeks");
        assert_eq!(human_duration(90 * 86400), "3 months");
        assert_eq!(human_duration(3 * 365 * 86400), "3 years");
    }

    #[test]
    fn seconds_between_timestamps() {
        let then: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let now: Timestamp = "2026-01-01T00:02:30Z".parse().unwrap();
        assert_eq!(seconds_since(then, now), 150);
    }
}
