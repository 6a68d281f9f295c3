//! The master's list of workers — uWSGI's scoreboard, `['busy', 'idle', 'idle', 'idle']` —
//! built only from what the workers tell the master over their channels, and from how they die.

use tokio::time::Instant;

use crate::procs::WorkerMessage;

/// What a worker is doing, as uWSGI's stats name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerStatus {
    /// Forked, not yet accepting (importing the app with --lazy-apps).
    Starting,
    Idle,
    Busy,
    /// Asked to stop, or retiring by itself: finishing what it has, accepting nothing new.
    Stopping,
    /// Dead, waiting to be respawned.
    Dead,
}

impl WorkerStatus {
    /// The word the stats server and the lab's worker list use.
    pub fn name(self) -> &'static str {
        match self {
            WorkerStatus::Starting => "starting",
            WorkerStatus::Idle => "idle",
            WorkerStatus::Busy => "busy",
            WorkerStatus::Stopping => "stopping",
            WorkerStatus::Dead => "dead",
        }
    }
}

/// A request a worker's core is serving.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentRequest {
    pub method: String,
    pub uri: String,
    pub remote: String,
    pub since: Instant,
    /// Wall-clock seconds, for the harakiri log line.
    pub since_unix: u64,
}

/// One core (thread) of a worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Core {
    pub request: Option<CurrentRequest>,
    pub requests: u64,
}

/// One worker slot: uWSGI numbers them from 1 and keeps the number across respawns.
#[derive(Clone, Debug)]
pub struct WorkerSlot {
    pub id: usize,
    pub pid: u32,
    pub status: WorkerStatus,
    pub app_loaded: bool,
    pub cores: Vec<Core>,
    pub requests: u64,
    pub exceptions: u64,
    pub harakiri_count: u64,
    pub respawn_count: u64,
    pub total_micros: u64,
    pub rss: u64,
    pub tx: u64,
    pub spawned_at: Instant,
    pub last_spawn_unix: u64,
    /// The worker said it is leaving by itself (max-requests, reload-on-rss).
    pub retiring: bool,
    /// When the master asked it to stop (for the mercy deadline).
    pub stop_asked_at: Option<Instant>,
    /// Wall-clock second the master last told it to go (asked it to stop, or killed it):
    /// uWSGI's `cursed_at`, from which `worker N buried after S seconds` counts.
    pub cursed_at_unix: Option<u64>,
    /// Deaths in a row that came too soon after spawning (start-up failures).
    pub quick_deaths: u32,
    pub respawn_at: Option<Instant>,
}

impl WorkerSlot {
    pub fn new(id: usize, cores: usize, now: Instant, now_unix: u64) -> WorkerSlot {
        WorkerSlot {
            id,
            pid: 0,
            status: WorkerStatus::Dead,
            app_loaded: false,
            cores: vec![Core::default(); cores.max(1)],
            requests: 0,
            exceptions: 0,
            harakiri_count: 0,
            respawn_count: 0,
            total_micros: 0,
            rss: 0,
            tx: 0,
            spawned_at: now,
            last_spawn_unix: now_unix,
            retiring: false,
            stop_asked_at: None,
            cursed_at_unix: None,
            quick_deaths: 0,
            respawn_at: None,
        }
    }

    /// Average response time in microseconds.
    pub fn avg_rt(&self) -> u64 {
        self.total_micros.checked_div(self.requests).unwrap_or(0)
    }

    /// The oldest request in progress on any core.
    pub fn oldest_request(&self) -> Option<(usize, &CurrentRequest)> {
        self.cores
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.request.as_ref().map(|r| (i, r)))
            .min_by_key(|(_, r)| r.since)
    }

    fn refresh_status(&mut self) {
        if matches!(self.status, WorkerStatus::Idle | WorkerStatus::Busy) {
            self.status = if self.cores.iter().any(|c| c.request.is_some()) {
                WorkerStatus::Busy
            } else {
                WorkerStatus::Idle
            };
        }
    }
}

/// Every worker slot of the instance.
#[derive(Clone, Debug, Default)]
pub struct Scoreboard {
    pub slots: Vec<WorkerSlot>,
}

impl Scoreboard {
    pub fn new(workers: usize, cores: usize, now: Instant, now_unix: u64) -> Scoreboard {
        Scoreboard {
            slots: (1..=workers)
                .map(|id| WorkerSlot::new(id, cores, now, now_unix))
                .collect(),
        }
    }

    pub fn by_pid(&mut self, pid: u32) -> Option<&mut WorkerSlot> {
        self.slots
            .iter_mut()
            .find(|s| s.pid == pid && s.status != WorkerStatus::Dead)
    }

    /// Records a worker's message.
    pub fn apply(&mut self, pid: u32, message: WorkerMessage, now: Instant, now_unix: u64) {
        let Some(slot) = self.by_pid(pid) else { return };
        match message {
            WorkerMessage::Ready { app_loaded } => {
                slot.app_loaded = app_loaded;
                if slot.status == WorkerStatus::Starting {
                    slot.status = WorkerStatus::Idle;
                }
            }
            WorkerMessage::Busy {
                core,
                method,
                uri,
                remote,
                elapsed_us,
            } => {
                let elapsed = std::time::Duration::from_micros(elapsed_us);
                let (now, now_unix) = (
                    now.checked_sub(elapsed).unwrap_or(now),
                    now_unix.saturating_sub(elapsed.as_secs()),
                );
                if let Some(c) = slot.cores.get_mut(core) {
                    c.request = Some(CurrentRequest {
                        method,
                        uri,
                        remote,
                        since: now,
                        since_unix: now_unix,
                    });
                }
                slot.refresh_status();
            }
            WorkerMessage::Idle {
                core,
                requests,
                micros,
                exceptions,
                tx,
                rss,
                ..
            } => {
                if let Some(c) = slot.cores.get_mut(core) {
                    c.request = None;
                    c.requests += requests;
                }
                slot.requests += requests;
                slot.total_micros += micros;
                slot.exceptions += exceptions;
                slot.tx += tx;
                if rss > 0 {
                    slot.rss = rss;
                }
                slot.refresh_status();
            }
            WorkerMessage::Retiring { .. } => {
                slot.retiring = true;
                slot.status = WorkerStatus::Stopping;
            }
        }
    }

    /// The lab's worker list: `[busy, idle, idle, idle]`.
    pub fn statuses(&self) -> Vec<WorkerStatus> {
        self.slots.iter().map(|s| s.status).collect()
    }

    pub fn busy_cores(&self) -> usize {
        self.slots
            .iter()
            .flat_map(|s| &s.cores)
            .filter(|c| c.request.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerStatus::{Busy, Idle};
    use super::*;

    #[test]
    fn messages_drive_the_statuses() {
        let now = Instant::now();
        let mut board = Scoreboard::new(2, 1, now, 0);
        for (i, slot) in board.slots.iter_mut().enumerate() {
            slot.pid = 100 + i as u32;
            slot.status = WorkerStatus::Starting;
        }
        board.apply(100, WorkerMessage::Ready { app_loaded: true }, now, 0);
        board.apply(101, WorkerMessage::Ready { app_loaded: true }, now, 0);
        assert_eq!(board.statuses(), [Idle, Idle]);
        let busy = WorkerMessage::Busy {
            core: 0,
            method: "GET".into(),
            uri: "/".into(),
            remote: "1.2.3.4".into(),
            elapsed_us: 0,
        };
        board.apply(101, busy, now, 0);
        assert_eq!(board.statuses(), [Idle, Busy]);
        assert_eq!(board.busy_cores(), 1);
        let idle = WorkerMessage::Idle {
            core: 0,
            requests: 1,
            status: 200,
            micros: 3000,
            exceptions: 0,
            tx: 13,
            rss: 1 << 20,
        };
        board.apply(101, idle, now, 0);
        assert_eq!(board.statuses(), [Idle, Idle]);
        assert_eq!(board.slots[1].requests, 1);
        assert_eq!(board.slots[1].avg_rt(), 3000);
        // A message from a pid the board does not know changes nothing.
        board.apply(999, WorkerMessage::Retiring { reason: "x".into() }, now, 0);
        assert_eq!(board.statuses(), [Idle, Idle]);
    }
}
