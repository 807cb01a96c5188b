//! The clock, as the composition root gives it: [`SystemClock`] in `moor serve`; a
//! test passes a clock it moves by hand, so that expiry is tested without sleeping.

use std::time::Instant;

/// Where the time comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, monotonic.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}
