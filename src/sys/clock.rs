//! A cheap monotonic tick counter for timing GIL waits and holds, and its
//! conversion to nanoseconds.
//!
//! Why not `Instant::now()`: on this project's machines `clock_gettime` costs
//! about 24 ns and the time-stamp counter about 10 ns (measured, see
//! docs/CPYTHON-NOTES.md "GIL statistics"), and a GIL round trip takes three
//! readings against a floor of about 60 ns. On x86_64 the ticks are the TSC
//! (invariant on every CPU with `constant_tsc`, which Linux then uses as its
//! own clock source); elsewhere they are nanoseconds from `Instant`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The current tick count; never 0 (0 means "not timed" to callers).
#[inline(always)]
pub(crate) fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions; it is available on every x86_64 CPU.
        unsafe { core::arch::x86_64::_rdtsc() | 1 }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        epoch().instant.elapsed().as_nanos() as u64 | 1
    }
}

/// A tick count and the instant it was read, taken once: the reference the
/// tick rate is measured against.
struct Epoch {
    instant: Instant,
    ticks: u64,
}

fn epoch() -> &'static Epoch {
    static EPOCH: OnceLock<Epoch> = OnceLock::new();
    EPOCH.get_or_init(|| Epoch {
        instant: Instant::now(),
        ticks: ticks_raw(),
    })
}

#[inline(always)]
fn ticks_raw() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: as in `ticks`.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// Starts the reference interval (call it when timing is switched on, so the
/// interval has grown by the time anyone converts).
pub(crate) fn start() {
    epoch();
}

/// How long the reference interval must be for a rate good to 0.1%: the two
/// readings at each end are a few tens of nanoseconds apart at worst.
const MIN_REFERENCE: Duration = Duration::from_millis(20);

/// Nanoseconds per tick, measured once over the interval since `start`
/// (waiting until it is `MIN_REFERENCE` long, which only a read right after
/// `start` does), so that every conversion uses the same rate.
pub(crate) fn nanos_per_tick() -> f64 {
    if cfg!(not(target_arch = "x86_64")) {
        return 1.0;
    }
    static RATE: OnceLock<f64> = OnceLock::new();
    *RATE.get_or_init(|| {
        let epoch = epoch();
        let elapsed = epoch.instant.elapsed();
        if elapsed < MIN_REFERENCE {
            std::thread::sleep(MIN_REFERENCE - elapsed);
        }
        let ticks = ticks_raw();
        let elapsed = epoch.instant.elapsed();
        elapsed.as_nanos() as f64 / ticks.wrapping_sub(epoch.ticks).max(1) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_the_wall_clock_within_a_percent() {
        start();
        let rate = nanos_per_tick();
        let began = (Instant::now(), ticks());
        std::thread::sleep(Duration::from_millis(50));
        let (wall, counted) = (began.0.elapsed(), ticks().wrapping_sub(began.1));
        let converted = counted as f64 * rate;
        let wall = wall.as_nanos() as f64;
        assert!(
            (converted - wall).abs() < wall / 100.0,
            "{converted} ns from ticks against {wall} ns of wall clock"
        );
    }
}
