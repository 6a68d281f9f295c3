//! The simulated machine's TCP parameters, and the two clocks of the Linux kernel that decide
//! *when* a retransmission happens: the retransmission schedules (`tcp_syn_retries`,
//! `tcp_syn_linear_timeouts`, `tcp_synack_retries`, the data RTO) and the timer wheel that
//! rounds every one of those timeouts up to a bucket boundary.
//!
//! The timer wheel matters more than it looks. A kernel timer set for 1 s at `HZ=250` lands in
//! level 1 of the wheel, whose buckets are 8 jiffies (32 ms) wide, and fires at the end of its
//! bucket: so SYN retransmit timers armed a few milliseconds apart all fire *in the same
//! softirq*, their SYNs are processed one after another before any of the ACKs they provoke,
//! and all of them find the accept queue as it was. That is why, in ARCHITECTURE.md's uWSGI
//! measurement, nine clients saw `connect()` return at ≈1.02 s although only two queue slots
//! had freed, and why the backlog-4 listener lets its seven waiting clients in at 5.12 s (five
//! linear retries of 1.024 s each), not 5.0 s.

use std::time::Duration;

/// A host's TCP sysctls (`/proc/sys/net/...`) and the two kernel constants the model needs.
/// The defaults are those of the machine ARCHITECTURE.md's measurements were taken on (Linux 6.18).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sysctls {
    /// `net.core.somaxconn`: `listen()`'s backlog is capped at this.
    pub somaxconn: u32,
    /// `net.ipv4.tcp_syn_retries`: SYN retransmissions before `connect()` fails with ETIMEDOUT
    /// (plus `tcp_syn_linear_timeouts`, as the kernel counts them).
    pub tcp_syn_retries: u32,
    /// `net.ipv4.tcp_syn_linear_timeouts`: this many SYN retransmissions keep the initial 1 s
    /// timeout before exponential backoff starts (0 on kernels before 6.18: 1, 2, 4, 8 s...).
    pub tcp_syn_linear_timeouts: u32,
    /// `net.ipv4.tcp_synack_retries`: SYN-ACK retransmissions of a half-open connection before
    /// the server forgets it.
    pub tcp_synack_retries: u32,
    /// `net.ipv4.tcp_abort_on_overflow`: answer an ACK that finds the accept queue full with a
    /// RST instead of dropping it.
    pub tcp_abort_on_overflow: bool,
    /// `net.ipv4.tcp_syncookies`: 1 = answer with a SYN cookie (keeping no state) when the
    /// listener's request queue is as long as its backlog; 0 = drop the SYN instead; 2 = always.
    pub tcp_syncookies: u8,
    /// `net.ipv4.tcp_retries2`: retransmissions of unacknowledged data before giving up.
    pub tcp_retries2: u32,
    /// `net.ipv4.ip_unprivileged_port_start`: binding a lower port needs privilege (EACCES).
    pub ip_unprivileged_port_start: u16,
    /// `net.ipv4.ip_local_port_range`: where `connect()` takes its source ports.
    pub ip_local_port_range: (u16, u16),
    /// `CONFIG_HZ`: the length of a jiffy, hence the timer wheel's buckets. 0 turns the wheel
    /// off (timers fire exactly on time).
    pub hz: u32,
    /// One-way latency of this host's link to the *other* hosts. Loopback has none: on Linux a
    /// packet sent to the same machine is processed in the sender's softirq, before the system
    /// call returns (measured here: SYN, SYN-ACK and ACK of one `connect()` within the same
    /// millisecond). turmoil and tokio keep time in whole milliseconds, so any non-zero
    /// latency below 1 ms takes effect as "the next millisecond".
    pub link_latency: Duration,
    /// Bytes a writer may get ahead of a reader that is not reading, per direction, before
    /// its writes block (socket buffers; measured on loopback here: 3,910,656).
    pub stream_buffer: usize,
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls {
            somaxconn: 4096,
            tcp_syn_retries: 6,
            tcp_syn_linear_timeouts: 4,
            tcp_synack_retries: 5,
            tcp_abort_on_overflow: false,
            tcp_syncookies: 1,
            tcp_retries2: 15,
            ip_unprivileged_port_start: 1024,
            ip_local_port_range: (32768, 60999),
            hz: 250,
            link_latency: Duration::from_micros(50),
            stream_buffer: 3_910_656,
        }
    }
}

/// `net.ipv4.tcp_wmem`'s default (16384): a new socket's send buffer. To a peer that never
/// acknowledges (its socket is closed) no more than this goes out before `write()` blocks.
pub const INITIAL_SEND_BUFFER: usize = 16384;

/// `TCP_TIMEOUT_INIT`: the first SYN and SYN-ACK timeout.
pub const TIMEOUT_INIT: Duration = Duration::from_secs(1);
/// `TCP_RTO_MAX`: no retransmission timeout grows beyond this.
pub const RTO_MAX: Duration = Duration::from_secs(120);
/// `TCP_RTO_MIN` (`tcp_rto_min_us`): the retransmission timeout of data on a short path, and
/// the tail-loss probe that precedes it.
pub const RTO_MIN: Duration = Duration::from_millis(200);
/// Syncookies encode the minute they were issued in; one is accepted during that minute and
/// the next (`MAX_SYNCOOKIE_AGE` = 2 periods of `TCP_SYNCOOKIE_PERIOD` = 60 s).
pub const SYNCOOKIE_PERIOD: Duration = Duration::from_secs(60);

impl Sysctls {
    /// The backlog `listen()` really uses.
    pub fn effective_backlog(&self, backlog: u32) -> u32 {
        backlog.min(self.somaxconn)
    }

    /// The timeout armed after the SYN retransmission numbered `retransmits` (1-based; 0 for
    /// the first SYN), given the one before it: it stays at 1 s while the count is within
    /// `tcp_syn_linear_timeouts`, then doubles (Linux's `tcp_retransmit_timer`, `total_rto`).
    pub fn next_syn_timeout(&self, retransmits: u32, previous: Duration) -> Duration {
        if retransmits == 0 {
            TIMEOUT_INIT
        } else if retransmits > self.tcp_syn_linear_timeouts {
            (previous * 2).min(RTO_MAX)
        } else {
            previous
        }
    }

    /// How many SYN retransmissions `connect()` makes before ETIMEDOUT: the kernel adds the
    /// linear ones to `tcp_syn_retries`.
    pub fn max_syn_retransmits(&self) -> u32 {
        self.tcp_syn_retries + self.tcp_syn_linear_timeouts
    }

    /// When the timer a kernel arms at `now` for `timeout` really fires.
    pub fn timer_expiry(&self, now: Duration, timeout: Duration) -> Duration {
        timer_expiry(now, timeout, self.hz)
    }
}

/// The SYN-ACK timeout after `num_timeout` expiries of a half-open connection's timer: 1 s,
/// 2 s, 4 s, ... (`reqsk_timeout`).
pub fn synack_timeout(num_timeout: u32) -> Duration {
    TIMEOUT_INIT
        .checked_mul(1u32.checked_shl(num_timeout).unwrap_or(u32::MAX))
        .unwrap_or(RTO_MAX)
        .min(RTO_MAX)
}

/// The delay before the data retransmission numbered `count + 1`: a tail-loss probe after
/// 200 ms, then the RTO, 200 ms, doubling each time (400 ms, 800 ms, ...). Measured here on
/// loopback for a request whose ACK was dropped: +207, +208, +416, +832, +1664 ms...
pub fn data_retransmit_timeout(count: u32) -> Duration {
    if count == 0 {
        return RTO_MIN;
    }
    RTO_MIN
        .checked_mul(1u32.checked_shl(count - 1).unwrap_or(u32::MAX))
        .unwrap_or(RTO_MAX)
        .min(RTO_MAX)
}

/// The Linux timer wheel (kernel/time/timer.c, since 4.8): a timer armed at jiffy `now` for
/// `delta` jiffies is put in the level whose range holds `delta` and fires at the *end* of its
/// bucket, `((expires >> shift) + 1) << shift` — never early, up to one bucket late. Levels
/// have 64 buckets; level *n*'s are 8^*n* jiffies wide. The simulated machine's jiffies start
/// at 0 with the simulation, so bucket boundaries are aligned with t = 0 (on a real machine
/// they fall anywhere, which is why measured SYN intervals vary between 1.00 and 1.03 s).
pub fn timer_expiry(now: Duration, timeout: Duration, hz: u32) -> Duration {
    if hz == 0 {
        return now + timeout;
    }
    let hz = u128::from(hz);
    const NS: u128 = 1_000_000_000;
    let now_jiffies = now.as_nanos() * hz / NS;
    // msecs_to_jiffies() rounds up.
    let delta = (timeout.as_nanos() * hz).div_ceil(NS);
    let expires = now_jiffies + delta;
    const LVL_CLK_SHIFT: u32 = 3;
    const LVL_DEPTH: u32 = 9;
    let level_start = |n: u32| 63u128 << ((n - 1) * LVL_CLK_SHIFT);
    let level = (1..LVL_DEPTH)
        .find(|&n| delta < level_start(n))
        .map_or(LVL_DEPTH - 1, |n| n - 1);
    let shift = level * LVL_CLK_SHIFT;
    let bucket = ((expires >> shift) + 1) << shift;
    let nanos = bucket * NS / hz;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn one_second_timers_fire_at_the_end_of_a_32_ms_bucket() {
        // HZ=250: 1 s = 250 jiffies, level 1 (8-jiffy buckets).
        assert_eq!(timer_expiry(ms(0), ms(1000), 250), ms(1024));
        assert_eq!(timer_expiry(ms(15), ms(1000), 250), ms(1024));
        assert_eq!(timer_expiry(ms(1024), ms(1000), 250), ms(2048));
        // 200 ms = 50 jiffies, level 0: one jiffy late.
        assert_eq!(timer_expiry(ms(1024), ms(200), 250), ms(1228));
        // Off: exact.
        assert_eq!(timer_expiry(ms(3), ms(1000), 0), ms(1003));
    }

    #[test]
    fn syn_schedule_of_this_kernel() {
        // Retransmits at 1, 2, 3, 4, 5, 7, 11, 19, 35, 67 s and ETIMEDOUT at 131 s without the
        // wheel; measured here: 1.02 2.05 3.07 4.09 5.12 7.13 11.23 19.42 35.54 67.80, timeout
        // at 133.3 s.
        let sys = Sysctls {
            hz: 0,
            ..Sysctls::default()
        };
        let mut at = Duration::ZERO;
        let mut timeout = sys.next_syn_timeout(0, Duration::ZERO);
        let mut times = Vec::new();
        for retransmit in 1..=sys.max_syn_retransmits() {
            at += timeout;
            times.push(at.as_secs());
            timeout = sys.next_syn_timeout(retransmit, timeout);
        }
        assert_eq!(times, [1, 2, 3, 4, 5, 7, 11, 19, 35, 67]);
        assert_eq!((at + timeout).as_secs(), 131);
        // The same with the wheel: 5.12 s is the fifth retry, and the give-up is at 135.2 s.
        let sys = Sysctls::default();
        let mut at = Duration::ZERO;
        let mut timeout = sys.next_syn_timeout(0, Duration::ZERO);
        let mut times = Vec::new();
        for retransmit in 1..=sys.max_syn_retransmits() {
            at = sys.timer_expiry(at, timeout);
            times.push(at.as_millis());
            timeout = sys.next_syn_timeout(retransmit, timeout);
        }
        assert_eq!(
            times,
            [1024, 2048, 3072, 4096, 5120, 7136, 11264, 19456, 35584, 69632]
        );
        assert_eq!(sys.timer_expiry(at, timeout).as_millis(), 135168);
    }

    #[test]
    fn old_kernels_back_off_from_the_start() {
        let sys = Sysctls {
            tcp_syn_linear_timeouts: 0,
            hz: 0,
            ..Sysctls::default()
        };
        let mut at = Duration::ZERO;
        let mut timeout = sys.next_syn_timeout(0, Duration::ZERO);
        let mut times = Vec::new();
        for retransmit in 1..=sys.max_syn_retransmits() {
            at += timeout;
            times.push(at.as_secs());
            timeout = sys.next_syn_timeout(retransmit, timeout);
        }
        assert_eq!(times, [1, 3, 7, 15, 31, 63]);
        assert_eq!((at + timeout).as_secs(), 127);
    }

    #[test]
    fn synack_and_data_schedules() {
        let synack: Vec<u64> = (0..6).map(|n| synack_timeout(n).as_secs()).collect();
        assert_eq!(synack, [1, 2, 4, 8, 16, 32]);
        assert_eq!(synack_timeout(40), RTO_MAX);
        let data: Vec<u128> = (0..6)
            .map(|n| data_retransmit_timeout(n).as_millis())
            .collect();
        assert_eq!(data, [200, 200, 400, 800, 1600, 3200]);
        assert_eq!(data_retransmit_timeout(30), RTO_MAX);
    }
}
