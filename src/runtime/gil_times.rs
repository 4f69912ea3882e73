//! The records behind GIL statistics (`gil_stats.rs` fills them from host
//! threads): per-thread durations, the totals of exited threads, the longest
//! hold, and the switch.
//!
//! Off until a host switches them on (`pyb_gil_stats_enable`, or
//! `PYBRIDGE_GIL_STATS=1` in the environment at engine start): switched off,
//! a GIL round trip pays one relaxed load of `CONTROL`; switched on, three
//! tick readings and a few stores (benches/c/gil_bench.c measures both).
//!
//! Each thread records into its own [`GilTimes`] (single writer: plain loads
//! and stores on atomics, no locked instructions); readers sum the live
//! threads and the totals of threads that exited. A reset bumps an epoch in
//! `CONTROL`; a thread whose record carries an older epoch counts as zero and
//! clears its record the next time it writes, so the writer stays the only one.
//!
//! What is timed: every time a host thread takes a GIL through pybridge and
//! gives it back (outermost scopes, the end and start of allow-threads
//! regions, scopes that take back a GIL given away under them, and switches
//! between interpreters, each of which has its own GIL). Python's own threads
//! are not host threads: their holds show up only as host threads' waits.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::runtime::gate::lock_unless_forked;
use crate::sys::clock;

/// Bit 0: timing on. Bits 1..: the reset epoch.
static CONTROL: AtomicU64 = AtomicU64::new(0);

/// Durations are counted in buckets with four linear steps per power of two,
/// so a percentile read from them is within 25% of the true value.
const STEPS_PER_OCTAVE: u32 = 4;
/// Enough octaves for 2^40 ticks (several minutes at a few GHz); longer
/// durations land in the last bucket.
pub(crate) const BUCKETS: usize = (40 * STEPS_PER_OCTAVE) as usize;

#[inline(always)]
pub(crate) fn enabled() -> bool {
    CONTROL.load(Ordering::Relaxed) & 1 != 0
}

fn epoch() -> u64 {
    CONTROL.load(Ordering::Relaxed) >> 1
}

/// Switches timing on or off; returns whether it was on.
pub(crate) fn set_enabled(on: bool) -> bool {
    if on {
        clock::start();
        CONTROL.fetch_or(1, Ordering::Relaxed) & 1 != 0
    } else {
        CONTROL.fetch_and(!1, Ordering::Relaxed) & 1 != 0
    }
}

/// Forgets everything recorded so far, in every thread.
pub(crate) fn reset() {
    CONTROL.fetch_add(2, Ordering::Relaxed);
    let mut retired = RETIRED.lock();
    *retired = Totals::default();
    retired.epoch = epoch();
}

/// The bucket a duration of `ticks` falls in.
#[inline(always)]
fn bucket_of(ticks: u64) -> usize {
    if ticks < u64::from(STEPS_PER_OCTAVE) {
        return ticks as usize;
    }
    let octave = 63 - ticks.leading_zeros(); // >= 2
    let step = (ticks >> (octave - 2)) & 3;
    (((octave - 1) * STEPS_PER_OCTAVE) as usize + step as usize).min(BUCKETS - 1)
}

/// The largest duration bucket `index` holds (its upper bound, inclusive).
fn bucket_upper(index: usize) -> u64 {
    if index < STEPS_PER_OCTAVE as usize {
        return index as u64;
    }
    let octave = index as u32 / STEPS_PER_OCTAVE + 1;
    let step = u64::from(index as u32 % STEPS_PER_OCTAVE);
    ((4 + step + 1) << (octave - 2)) - 1
}

/// One thread's durations of one kind, written only by that thread.
pub(crate) struct Durations {
    total: AtomicU64,
    max: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Durations {
    const fn new() -> Durations {
        Durations {
            total: AtomicU64::new(0),
            max: AtomicU64::new(0),
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }

    /// Single writer: a load and a store, no read-modify-write.
    #[inline(always)]
    pub(crate) fn record(&self, ticks: u64) {
        let bump = |counter: &AtomicU64, by: u64| {
            counter.store(counter.load(Ordering::Relaxed) + by, Ordering::Relaxed)
        };
        bump(&self.total, ticks);
        if ticks > self.max.load(Ordering::Relaxed) {
            self.max.store(ticks, Ordering::Relaxed);
        }
        bump(&self.buckets[bucket_of(ticks)], 1);
    }

    fn clear(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.max.store(0, Ordering::Relaxed);
        for bucket in &self.buckets {
            bucket.store(0, Ordering::Relaxed);
        }
    }

    fn add_to(&self, sum: &mut Distribution) {
        sum.total += self.total.load(Ordering::Relaxed);
        sum.max = sum.max.max(self.max.load(Ordering::Relaxed));
        for (into, bucket) in sum.buckets.iter_mut().zip(&self.buckets) {
            *into += bucket.load(Ordering::Relaxed);
        }
    }
}

/// The GIL times of one host thread (a field of its `ThreadSlot`).
pub(crate) struct GilTimes {
    /// The reset epoch the counts below belong to.
    epoch: AtomicU64,
    pub(crate) acquisitions: AtomicU64,
    pub(crate) wait: Durations,
    pub(crate) hold: Durations,
}

impl GilTimes {
    pub(crate) const fn new() -> GilTimes {
        GilTimes {
            epoch: AtomicU64::new(0),
            acquisitions: AtomicU64::new(0),
            wait: Durations::new(),
            hold: Durations::new(),
        }
    }

    /// Clears a record left from before a reset (by its writer only).
    #[inline(always)]
    pub(crate) fn current(&self) -> &GilTimes {
        let epoch = epoch();
        if self.epoch.load(Ordering::Relaxed) != epoch {
            self.acquisitions.store(0, Ordering::Relaxed);
            self.wait.clear();
            self.hold.clear();
            self.epoch.store(epoch, Ordering::Relaxed);
        }
        self
    }

    fn add_to(&self, totals: &mut Totals) {
        if self.epoch.load(Ordering::Relaxed) != epoch() {
            return;
        }
        totals.acquisitions += self.acquisitions.load(Ordering::Relaxed);
        self.wait.add_to(&mut totals.wait);
        self.hold.add_to(&mut totals.hold);
    }
}

/// The longest hold since the last reset, and by whom. `LONGEST_TICKS`
/// mirrors its length so the hot path compares without the lock.
pub(crate) static LONGEST_TICKS: AtomicU64 = AtomicU64::new(0);
static LONGEST: Mutex<Option<LongestHold>> = Mutex::new(None);

#[derive(Debug, Clone)]
pub(crate) struct LongestHold {
    pub ticks: u64,
    pub epoch: u64,
    pub thread_id: u64,
    pub os_tid: i32,
    pub name: String,
}

/// Records a hold of `held` ticks by thread `id` if it is the longest yet.
#[cold]
pub(crate) fn note_longest(id: u64, os_tid: i32, name: &str, held: u64) {
    let epoch = epoch();
    let Some(mut longest) = lock_unless_forked(&LONGEST) else {
        return;
    };
    if longest
        .as_ref()
        .is_some_and(|hold| hold.epoch == epoch && hold.ticks >= held)
    {
        return;
    }
    *longest = Some(LongestHold {
        ticks: held,
        epoch,
        thread_id: id,
        os_tid,
        name: name.to_string(),
    });
    LONGEST_TICKS.store(held, Ordering::Relaxed);
}

/// Thread `id` is exiting under the name `name`: if it held a GIL longest, the
/// record keeps that name (its id and kernel tid are in the record already),
/// so the total still names the thread once it is gone.
pub(crate) fn thread_exits(id: u64, name: String) {
    let Some(mut longest) = lock_unless_forked(&LONGEST) else {
        return;
    };
    if let Some(hold) = longest.as_mut().filter(|hold| hold.thread_id == id) {
        hold.name = name;
    }
}

/// Summed durations of one kind.
#[derive(Debug, Clone)]
pub(crate) struct Distribution {
    pub total: u64,
    pub max: u64,
    pub buckets: [u64; BUCKETS],
}

impl Default for Distribution {
    fn default() -> Self {
        Distribution {
            total: 0,
            max: 0,
            buckets: [0; BUCKETS],
        }
    }
}

impl Distribution {
    /// The smallest bucket bound that at least `fraction` of the durations
    /// stay within (0 when nothing was recorded), capped by the true maximum.
    pub(crate) fn percentile(&self, fraction: f64) -> u64 {
        let count: u64 = self.buckets.iter().sum();
        if count == 0 {
            return 0;
        }
        let wanted = ((count as f64 * fraction).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket;
            if seen >= wanted {
                return bucket_upper(index).min(self.max);
            }
        }
        self.max
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Totals {
    pub epoch: u64,
    pub acquisitions: u64,
    pub wait: Distribution,
    pub hold: Distribution,
}

/// What threads that exited had recorded since the last reset.
static RETIRED: Mutex<Totals> = Mutex::new(Totals {
    epoch: 0,
    acquisitions: 0,
    wait: Distribution {
        total: 0,
        max: 0,
        buckets: [0; BUCKETS],
    },
    hold: Distribution {
        total: 0,
        max: 0,
        buckets: [0; BUCKETS],
    },
});

/// True when neither lock a thread's exit takes here is held (see
/// `thread_slot::bookkeeping_unlocked`); never waits.
pub(crate) fn bookkeeping_unlocked() -> bool {
    RETIRED.try_lock().is_some() && LONGEST.try_lock().is_some()
}

/// Keeps an exiting thread's counts in the totals while `unregister` removes
/// it from the registry: under one lock, so `total` counts it exactly once.
pub(crate) fn retire(times: &GilTimes, unregister: impl FnOnce()) {
    // (None only in a fork() child, see `lock_unless_forked`: its counts go.)
    let mut retired = lock_unless_forked(&RETIRED);
    if let Some(retired) = retired.as_mut().filter(|retired| retired.epoch == epoch()) {
        times.add_to(retired);
    }
    unregister();
}

/// One thread's figures since the last reset, in ticks (None: it took no GIL).
pub(crate) fn totals_of(times: &GilTimes) -> Option<Totals> {
    let mut totals = Totals::default();
    times.add_to(&mut totals);
    (totals.acquisitions > 0).then_some(totals)
}

/// All threads together, exited ones included, and the longest hold.
/// `each_live` hands every registered thread's times to its argument; it runs
/// under the lock `retire` takes, so a thread is either live or retired.
pub(crate) fn total(
    each_live: impl FnOnce(&mut dyn FnMut(&GilTimes)),
) -> (Totals, Option<LongestHold>) {
    // In a fork() child these may be held by a thread that is gone: then the
    // child's figures lack the exited threads or the longest hold.
    let retired = lock_unless_forked(&RETIRED);
    let mut totals = match &retired {
        Some(retired) if retired.epoch == epoch() => (**retired).clone(),
        _ => Totals::default(),
    };
    each_live(&mut |times| times.add_to(&mut totals));
    drop(retired);
    let longest = lock_unless_forked(&LONGEST)
        .and_then(|longest| longest.clone())
        .filter(|hold| hold.epoch == epoch());
    (totals, longest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_their_bounds_hold_their_values() {
        let mut previous = 0;
        for ticks in (0..20_000_u64).chain([1 << 30, (1 << 30) + 12345, u64::MAX]) {
            let index = bucket_of(ticks);
            assert!(index >= previous, "{ticks} went back to bucket {index}");
            previous = index;
            if index < BUCKETS - 1 {
                assert!(
                    ticks <= bucket_upper(index),
                    "{ticks} above its bucket {index}"
                );
                assert!(index == 0 || ticks > bucket_upper(index - 1));
                // Within 25% of the bound that a percentile reports.
                assert!(bucket_upper(index) as f64 <= ticks as f64 * 1.25 + 1.0);
            }
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_come_from_the_buckets_and_stop_at_the_maximum() {
        let mut distribution = Distribution::default();
        for ticks in 1..=100_u64 {
            distribution.buckets[bucket_of(ticks * 1000)] += 1;
        }
        distribution.max = 100_000;
        let p50 = distribution.percentile(0.5);
        assert!((50_000..=62_500).contains(&p50), "p50 {p50}");
        assert_eq!(distribution.percentile(1.0), 100_000);
        assert_eq!(Distribution::default().percentile(0.99), 0);
    }
}
