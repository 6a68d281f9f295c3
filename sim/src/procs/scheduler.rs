//! The simulated CPUs: processor sharing. With *c* cores and *k* processes that want the CPU,
//! each progresses at min(1, c/k) of full speed (ARCHITECTURE.md's fidelity rule); inside a process,
//! Python threads share that one share, because they share one GIL. Sleeping or waiting on I/O
//! takes nothing.
//!
//! Work is counted in nanoseconds of one full core. Every change to the set of running jobs
//! first settles everyone's progress at the old rates, then wakes every job to recompute when
//! it will finish at the new ones.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug)]
struct Job {
    pid: u32,
    /// Nanoseconds of full-core work still to do.
    remaining: u128,
}

#[derive(Debug)]
struct State {
    cores: u128,
    jobs: BTreeMap<u64, Job>,
    next_job: u64,
    settled_at: Option<Instant>,
}

impl State {
    /// (numerator, denominator) of the speed of a job of `pid`, as a fraction of a full core.
    fn speed(&self, pid: u32) -> (u128, u128) {
        let mut processes: Vec<u32> = self.jobs.values().map(|j| j.pid).collect();
        processes.sort_unstable();
        processes.dedup();
        let k = processes.len() as u128;
        let threads = self.jobs.values().filter(|j| j.pid == pid).count() as u128;
        (self.cores.min(k), k * threads)
    }

    /// Credits every job with the work done since the last change.
    fn settle(&mut self, now: Instant) {
        let elapsed = match self.settled_at {
            Some(at) => now.saturating_duration_since(at).as_nanos(),
            None => 0,
        };
        self.settled_at = Some(now);
        if elapsed == 0 {
            return;
        }
        let speeds: Vec<(u64, (u128, u128))> = self
            .jobs
            .iter()
            .map(|(id, j)| (*id, self.speed(j.pid)))
            .collect();
        for (id, (num, den)) in speeds {
            if let Some(job) = self.jobs.get_mut(&id) {
                job.remaining = job.remaining.saturating_sub(elapsed * num / den);
            }
        }
    }
}

/// The CPUs of one simulated machine.
#[derive(Clone)]
pub struct Cpus {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

impl Cpus {
    pub fn new(cores: usize) -> Cpus {
        Cpus {
            state: Arc::new(Mutex::new(State {
                cores: cores.max(1) as u128,
                jobs: BTreeMap::new(),
                next_job: 0,
                settled_at: None,
            })),
            changed: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Processes that want the CPU right now.
    pub fn runnable(&self) -> usize {
        let state = self.lock();
        let mut pids: Vec<u32> = state.jobs.values().map(|j| j.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        pids.len()
    }

    /// Runs `work` of CPU time for a thread of process `pid`; returns when it is done, however
    /// long the competition makes that. Cancelling the future (the process was killed) takes
    /// the job off the CPUs.
    pub async fn run(&self, pid: u32, work: Duration) {
        let id = {
            let mut state = self.lock();
            state.settle(Instant::now());
            let id = state.next_job;
            state.next_job += 1;
            state.jobs.insert(
                id,
                Job {
                    pid,
                    remaining: work.as_nanos(),
                },
            );
            id
        };
        let _leave = LeaveOnDrop { cpus: self, id };
        self.changed.notify_waiters();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let eta = {
                let mut state = self.lock();
                state.settle(Instant::now());
                let remaining = state.jobs.get(&id).map_or(0, |j| j.remaining);
                if remaining == 0 {
                    return;
                }
                let (num, den) = state.speed(pid);
                // Round up: a job is never done before its work is.
                Duration::from_nanos(((remaining * den).div_ceil(num)).min(u64::MAX as u128) as u64)
            };
            tokio::select! {
                biased;
                _ = &mut changed => {}
                _ = tokio::time::sleep(eta) => {}
            }
        }
    }
}

/// Takes a job off the CPUs when it finishes or is cancelled.
struct LeaveOnDrop<'a> {
    cpus: &'a Cpus,
    id: u64,
}

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        {
            let mut state = self.cpus.lock();
            state.settle(Instant::now());
            state.jobs.remove(&self.id);
        }
        self.cpus.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_jobs(cores: usize, jobs: &[(u32, u64)]) -> Vec<u128> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let cpus = Cpus::new(cores);
            let start = Instant::now();
            let handles: Vec<_> = jobs
                .iter()
                .map(|&(pid, ms)| {
                    let cpus = cpus.clone();
                    tokio::task::spawn_local(async move {
                        cpus.run(pid, Duration::from_millis(ms)).await;
                        start.elapsed().as_millis()
                    })
                })
                .collect();
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        })
    }

    #[test]
    fn k_processes_on_c_cores_run_at_c_over_k() {
        // Two cores, one process: full speed.
        assert_eq!(run_jobs(2, &[(1, 100)]), [100]);
        // Two cores, two processes: each a core.
        assert_eq!(run_jobs(2, &[(1, 100), (2, 100)]), [100, 100]);
        // Two cores, four processes: half speed each.
        assert_eq!(
            run_jobs(2, &[(1, 100), (2, 100), (3, 100), (4, 100)]),
            [200, 200, 200, 200]
        );
    }

    #[test]
    fn threads_of_one_process_share_its_gil() {
        // Two threads of one process on two cores: one GIL, so one core between them.
        assert_eq!(run_jobs(2, &[(1, 100), (1, 100)]), [200, 200]);
    }

    #[test]
    fn a_job_that_ends_speeds_up_the_others() {
        // One core: 50 ms and 100 ms jobs share it until 100 ms, then the second runs alone.
        assert_eq!(run_jobs(1, &[(1, 50), (2, 100)]), [100, 150]);
    }
}
