//! Whether a worker takes another request, and if not, why.
//!
//! A worker leaves in two ways. It retires by itself, once for all its cores, when a core
//! finds a limit reached after a request (`--max-requests`, `--reload-on-rss`): the master is
//! told at once, so that it forks a replacement. Or the master asks it to stop (a reload, a
//! shutdown), which every core hears through [`WorkerLink::stop_requested`]. Either way each
//! core's loop ends, wakes its parked connections, and what it still serves closes its
//! connection (`Worker::stopped`, [`Leaving::winding_down`]).
//!
//! [`WorkerLink::stop_requested`]: crate::procs::WorkerLink::stop_requested

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Why a worker leaves, as its log lines say it (`wsgilab: worker 1 retires: --max-requests
/// 100 reached`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reason {
    /// `--max-requests`: this many requests were answered.
    MaxRequests { limit: u64 },
    /// `--reload-on-rss`: resident memory over the limit, both in bytes.
    ReloadOnRss { rss: u64, limit: u64 },
    /// The master asked the worker to stop. (A core whose listener failed leaves too, and
    /// says the same.)
    AskedToStop,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::MaxRequests { limit } => write!(f, "--max-requests {limit} reached"),
            Reason::ReloadOnRss { rss, limit } => write!(
                f,
                "resident memory {} MB is over --reload-on-rss {} MB",
                rss >> 20,
                limit >> 20
            ),
            Reason::AskedToStop => f.write_str("asked to stop"),
        }
    }
}

/// What the cores of one worker process count and decide together about leaving.
#[derive(Debug, Default)]
pub(super) struct Leaving {
    /// Set once, by the first core to find a limit reached.
    retiring: OnceLock<Reason>,
    /// Every request whose head was read, by every core (for the last one's
    /// `Connection: close`).
    begun: AtomicU64,
    /// Every request answered, app or not (for --max-requests).
    served: AtomicU64,
}

impl Leaving {
    /// Whether the worker has decided to retire (asked on every request).
    pub(super) fn is_retiring(&self) -> bool {
        self.retiring.get().is_some()
    }

    /// Why the worker retired, if it did by itself.
    pub(super) fn retired(&self) -> Option<Reason> {
        self.retiring.get().copied()
    }

    /// Why the worker is leaving, once it is.
    pub(super) fn reason(&self) -> Reason {
        self.retired().unwrap_or(Reason::AskedToStop)
    }

    /// Counts a request as it begins, so that the last request before --max-requests closes
    /// its connection — with --threads every core's that reaches the limit too: nothing the
    /// client sends next lands on a worker about to leave.
    pub(super) fn begin(&self) {
        self.begun.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a request answered.
    pub(super) fn answered(&self) {
        self.served.fetch_add(1, Ordering::SeqCst);
    }

    /// No request after those in hand will be served: the core has stopped (`stopped`), the
    /// worker retires, or its last request under --max-requests has begun. A response
    /// written then closes its connection, saying so.
    pub(super) fn winding_down(&self, stopped: bool, max_requests: u64) -> bool {
        stopped
            || self.is_retiring()
            || (max_requests > 0 && self.begun.load(Ordering::SeqCst) >= max_requests)
    }

    /// Whether a limit is reached after a request: `rss` is the resident memory just sampled
    /// (0 when not sampled).
    pub(super) fn limit_reached(
        &self,
        max_requests: u64,
        reload_on_rss: u64,
        rss: u64,
    ) -> Option<Reason> {
        if max_requests > 0 && self.served.load(Ordering::SeqCst) >= max_requests {
            Some(Reason::MaxRequests {
                limit: max_requests,
            })
        } else if reload_on_rss > 0 && rss > reload_on_rss {
            Some(Reason::ReloadOnRss {
                rss,
                limit: reload_on_rss,
            })
        } else {
            None
        }
    }

    /// Decides that the worker retires, unless a core already did: `tell` (the message to
    /// the master) runs once, before any core sees the decision.
    pub(super) fn retire(&self, reason: Reason, tell: impl FnOnce(&Reason)) {
        self.retiring.get_or_init(|| {
            tell(&reason);
            reason
        });
    }
}
