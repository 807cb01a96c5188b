//! When a scheduled tag is checked: pure functions over wall-clock milliseconds since
//! the Unix epoch (persisted times survive restarts; `Instant`s do not).
//!
//! Every tag has a *phase*, a stable hash of its name within the interval, and its
//! *slots* are `phase + k * interval`. A tag is first checked at its next slot, so the
//! checks of many tags are spread evenly over the interval instead of firing together.
//! After a check at `t` the next one is due at the slot nearest to `t + interval`,
//! clamped to `t + interval ± 10%`: consecutive checks of a tag are always an interval
//! ±10% apart, and a tag that was pushed off its slot (a late check, a catch-up after
//! a restart) drifts back to it by at most 10% of the interval per check. Failures
//! retry sooner, with exponential backoff capped at the interval. Calls only sha2.

use sha2::Digest as _;

/// How far from one interval a tag's consecutive checks may be: ±10%.
pub const JITTER_PERCENT: i64 = 10;

/// A tag's phase within the interval: a stable hash of `key`, in `[0, interval)`.
pub fn phase(key: &str, interval_ms: i64) -> i64 {
    let interval = interval_ms.max(1);
    let hash = sha2::Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    (u64::from_be_bytes(first) % interval as u64) as i64
}

/// The first of the tag's slots at or after `now`.
pub fn first_slot(now: i64, phase: i64, interval_ms: i64) -> i64 {
    let interval = interval_ms.max(1);
    now + (phase - now).rem_euclid(interval)
}

/// When to check again after a check that started at `t`: the slot nearest to
/// `t + interval`, within `t + interval ± 10%`.
pub fn next_after(t: i64, phase: i64, interval_ms: i64) -> i64 {
    let interval = interval_ms.max(1);
    let target = t + interval;
    let slack = interval * JITTER_PERCENT / 100;
    nearest_slot(target, phase, interval).clamp(target - slack, target + slack)
}

/// The slot nearest to `target` (the earlier of two as near).
pub fn nearest_slot(target: i64, phase: i64, interval_ms: i64) -> i64 {
    let interval = interval_ms.max(1);
    let below = target - (target - phase).rem_euclid(interval);
    let above = below + interval;
    if target - below <= above - target {
        below
    } else {
        above
    }
}

/// How long after a start the checks of tags that had failed are spread over.
pub const HEAL_SPREAD_MS: i64 = 5_000;

/// When a tag that had failed is checked after a start at `now`: within
/// [`HEAL_SPREAD_MS`] (or the interval, if shorter), spread by its phase, so that many
/// failed tags do not all fire at once.
pub fn heal_at_start(now: i64, phase: i64, interval_ms: i64) -> i64 {
    let spread = HEAL_SPREAD_MS.min(interval_ms.max(1));
    now + phase.rem_euclid(spread)
}

/// The delay before checking again after `failures` (≥ 1) failed checks in a row:
/// `initial * 2^(failures-1)`, at most the interval, at least the registry's
/// `Retry-After`.
pub fn retry_delay(failures: u32, initial_ms: i64, interval_ms: i64, retry_after_ms: i64) -> i64 {
    let shift = failures.saturating_sub(1).min(30);
    let exp = initial_ms.max(1).saturating_mul(1i64 << shift);
    exp.min(interval_ms.max(1)).max(retry_after_ms)
}

/// Resuming after a restart. Let `outage` be how long the oldest overdue check (a
/// persisted next check in the past) has waited, but no longer than since the newest
/// check the stopped process made (a record whose last write was lost in a crash must
/// not make the outage look an interval longer), and `shift` the outage, at most half
/// an interval. Checks persisted as due before the outage began run first. The checks that fell due meanwhile are replayed from now, in their
/// order and spacing, within `shift`; the later ones move back by `shift`. After a
/// short outage that shifts the whole schedule by the outage: every check comes as
/// late as the outage and at its usual rate (no burst), and no tag waits more than
/// its interval plus the outage (no gap). After a long one the overdue checks are
/// compressed into half an interval (about twice the usual rate, for that long).
/// Later checks drift back onto their slots by 10% of the interval each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    oldest: i64,
    now: i64,
    shift: i64,
}

impl Resume {
    /// The resumption at `now` when the oldest overdue check was due at `oldest` and
    /// the newest check recorded started at `last_check`.
    pub fn new(oldest: i64, last_check: Option<i64>, now: i64, interval_ms: i64) -> Self {
        let oldest = last_check.map_or(oldest, |l| oldest.max(l)).min(now);
        Resume {
            oldest,
            now,
            shift: (now - oldest).min(interval_ms.max(1) / 2),
        }
    }

    /// When a check persisted as due at `next_check` runs.
    pub fn due(&self, next_check: i64) -> i64 {
        let outage = self.now - self.oldest;
        if outage <= 0 {
            return next_check;
        }
        if next_check >= self.now {
            return next_check + self.shift;
        }
        let offset = (next_check - self.oldest).clamp(0, outage);
        self.now + ((offset as i128 * self.shift as i128) / outage as i128) as i64
    }
}

/// When a tag whose record says its next check is `next_check` is due, at startup:
/// as [`Resume`] plans when checks were overdue, else on time; at its next slot when
/// the record has none or one further ahead than an interval allows (the interval
/// was shortened).
pub fn resume(
    next_check: Option<i64>,
    now: i64,
    phase: i64,
    interval_ms: i64,
    plan: Option<&Resume>,
) -> i64 {
    let latest = now + interval_ms + interval_ms * JITTER_PERCENT / 100;
    match (next_check, plan) {
        (Some(n), _) if n > latest => first_slot(now, phase, interval_ms),
        (Some(n), Some(p)) => p.due(n).max(now),
        (Some(n), None) => n.max(now),
        (None, _) => first_slot(now, phase, interval_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_tags_heal_within_seconds_spread_by_phase() {
        let hour = 3_600_000;
        assert_eq!(heal_at_start(1_000, 0, hour), 1_000);
        assert_eq!(heal_at_start(1_000, 12_345, hour), 1_000 + 2_345);
        assert!(heal_at_start(1_000, hour - 1, hour) < 1_000 + HEAL_SPREAD_MS);
        // An interval shorter than the spread bounds it.
        assert_eq!(heal_at_start(1_000, 1_500, 2_000), 2_500);
    }

    const I: i64 = 60_000;

    #[test]
    fn phases_are_stable_and_spread() {
        assert_eq!(phase("default/a/t", I), phase("default/a/t", I));
        let phases: Vec<i64> = (0..1000).map(|i| phase(&format!("ns/s{i}/t"), I)).collect();
        assert!(phases.iter().all(|p| (0..I).contains(p)));
        // Ten buckets of the interval each hold roughly a tenth.
        let mut buckets = [0; 10];
        for p in &phases {
            buckets[(*p * 10 / I) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|b| (60..=140).contains(b)),
            "{buckets:?}"
        );
    }

    #[test]
    fn first_slot_is_within_one_interval() {
        let p = 12_345;
        assert_eq!(first_slot(1_000_000_000, p, I) % I, p);
        for now in [0, 1, 12_345, 12_346, 999_999_999] {
            let s = first_slot(now, p, I);
            assert!(s >= now && s < now + I, "{now} -> {s}");
            assert_eq!(s.rem_euclid(I), p);
        }
    }

    #[test]
    fn next_check_is_an_interval_away_within_ten_percent() {
        let p = 30_000;
        // On its slot: exactly one interval.
        assert_eq!(next_after(30_000, p, I), 90_000);
        // Late by 2 s: back on the slot, 58 s later.
        assert_eq!(next_after(32_000, p, I), 90_000);
        // Far off the slot: clamped to +-10%, drifting back.
        assert_eq!(next_after(0, p, I), 54_000);
        assert_eq!(next_after(59_000, p, I), 113_000);
        for t in (0..200_000).step_by(777) {
            let n = next_after(t, p, I);
            assert!(n >= t + I - I / 10 && n <= t + I + I / 10, "{t} -> {n}");
        }
        // Repeated checks converge onto the slot.
        let mut t = 1_000;
        for _ in 0..10 {
            t = next_after(t, p, I);
        }
        assert_eq!(t.rem_euclid(I), p);
    }

    #[test]
    fn failures_back_off_up_to_the_interval() {
        assert_eq!(retry_delay(1, 1000, I, 0), 1000);
        assert_eq!(retry_delay(2, 1000, I, 0), 2000);
        assert_eq!(retry_delay(4, 1000, I, 0), 8000);
        assert_eq!(retry_delay(10, 1000, I, 0), I);
        assert_eq!(retry_delay(100, 1000, I, 0), I);
        assert_eq!(retry_delay(1, 1000, I, 5000), 5000, "Retry-After wins");
        assert_eq!(
            retry_delay(3, 1000, 2000, 0),
            2000,
            "short intervals cap early"
        );
    }

    #[test]
    fn a_short_outage_shifts_the_whole_schedule() {
        // Stopped at 100 s, restarted at 101.5 s with a 60 s interval; the oldest
        // overdue check was due at 100.2 s: every check runs 1.3 s late, in the same
        // order and spacing (the usual rate), overdue or not.
        let p = Resume::new(100_200, Some(99_900), 101_500, I);
        assert_eq!(p.due(100_200), 101_500);
        assert_eq!(p.due(101_000), 102_300);
        assert_eq!(p.due(150_000), 151_300);
        assert_eq!(resume(Some(101_000), 101_500, 0, I, Some(&p)), 102_300);
        assert_eq!(resume(Some(150_000), 101_500, 0, I, Some(&p)), 151_300);
        // Nothing overdue: on time.
        assert_eq!(resume(Some(150_000), 101_500, 0, I, None), 150_000);
    }

    #[test]
    fn a_lost_record_does_not_lengthen_the_outage() {
        // The newest check started at 100 s; one tag's record still says it was due at
        // 99 s (its last write was lost). The outage counts from 100 s: that tag runs
        // first, the others 1.5 s late.
        let p = Resume::new(99_000, Some(100_000), 101_500, I);
        assert_eq!(p.due(99_000), 101_500);
        assert_eq!(p.due(100_200), 101_700);
        assert_eq!(p.due(150_000), 151_500);
    }

    #[test]
    fn a_long_outage_compresses_overdue_checks_into_half_an_interval() {
        let now = 10 * I;
        let p = Resume::new(now - 5 * I, None, now, I);
        assert_eq!(p.due(now - 5 * I), now);
        assert_eq!(p.due(now - 1), now + I / 2 - 1);
        assert_eq!(
            p.due(now + 1000),
            now + 1000 + I / 2,
            "later: half an interval"
        );
        let mut last = now;
        for n in (now - 5 * I..now).step_by(1000) {
            let d = p.due(n);
            assert!(d >= last && d < now + I / 2);
            last = d;
        }
    }

    #[test]
    fn resume_without_a_usable_record_takes_the_next_slot() {
        let p = 5_000;
        assert_eq!(resume(None, 100_000, p, I, None), 125_000);
        // A record from a longer interval: too far ahead.
        assert_eq!(resume(Some(100_000 + 10 * I), 100_000, p, I, None), 125_000);
        // Overdue without a catch-up plan: now.
        assert_eq!(resume(Some(90_000), 100_000, p, I, None), 100_000);
    }
}
