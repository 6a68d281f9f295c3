//! What a core tells about its requests: busy and idle to the master (its scoreboard,
//! harakiri and stats are built from them), the decision to retire, and uWSGI's request log
//! line.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::respond::Outcome;
use super::Worker;
use crate::http::RequestHead;
use crate::log::RequestLog;
use crate::net::Net;
use crate::procs::{Procs, WorkerLink, WorkerMessage};
use crate::python::App;
use crate::wsgi::ConnectionInfo;

impl<N: Net, P: Procs, A: App, L: WorkerLink> Worker<'_, N, P, A, L> {
    /// Tells the master a request is being served (for the scoreboard and harakiri).
    pub(super) fn started(&self, head: &RequestHead, conn: &ConnectionInfo) {
        let link = &self.process.link;
        if link.has_master() {
            link.request_started(self.core, &head.method, &head.target, conn.peer_ip.as_str());
        }
    }

    /// Tells the master the request is done, and decides whether this worker should retire.
    pub(super) fn finished(&self, outcome: &Outcome, started: Instant) {
        let process = self.process;
        let settings = &process.settings;
        let rss = if self.rss_sample_due() {
            process.procs.rss_bytes()
        } else {
            0
        };
        if process.link.has_master() {
            process.link.send(WorkerMessage::Idle {
                core: self.core,
                requests: 1,
                status: outcome.status,
                micros: started.elapsed().as_micros() as u64,
                exceptions: u64::from(outcome.exception),
                tx: outcome.body_bytes,
                rss,
            });
        }
        let reached =
            process
                .leaving
                .limit_reached(settings.max_requests, settings.reload_on_rss, rss);
        if let Some(reason) = reached {
            process.leaving.retire(reason, |reason| {
                process.link.send(WorkerMessage::Retiring {
                    reason: reason.to_string(),
                })
            });
        }
    }

    /// Whether to sample resident memory now: at most once a second for the master's stats,
    /// after every request when --reload-on-rss needs it.
    fn rss_sample_due(&self) -> bool {
        let process = self.process;
        let reload_on_rss = process.settings.reload_on_rss > 0;
        (process.link.has_master() || reload_on_rss) && {
            let mut sampled_at = process
                .rss_sampled_at
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let due =
                reload_on_rss || sampled_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
            if due {
                *sampled_at = Some(Instant::now());
            }
            due
        }
    }

    /// uWSGI's request line.
    pub(super) fn log_request(
        &self,
        head: &RequestHead,
        conn: &ConnectionInfo,
        vars: (usize, usize),
        outcome: &Outcome,
        started: Instant,
    ) {
        let process = self.process;
        if process.settings.disable_logging {
            return;
        }
        let (vars, vars_bytes) = vars;
        let entry = RequestLog {
            pid: self.pid,
            app_requests: process
                .app
                .as_ref()
                .map(|_| process.requests.load(Ordering::SeqCst)),
            // Read as the line is written, as uWSGI reads its shared total: other workers'
            // requests count too.
            total_requests: process.total.get(),
            remote_addr: conn.peer_ip.as_str(),
            vars,
            vars_bytes,
            ctime: self.log_ctime(),
            method: &head.method,
            uri: &head.target,
            body_bytes: outcome.body_bytes,
            msecs: started.elapsed().as_millis(),
            protocol: if head.minor_version == 0 {
                "HTTP/1.0"
            } else {
                "HTTP/1.1"
            },
            status: outcome.status,
            headers: outcome.headers,
            header_bytes: outcome.header_bytes,
            switches: outcome.switches,
            core: self.core,
        };
        process.procs.log(&entry.line());
    }

    /// `Procs::now_ctime`, formatted again only when the second changes.
    fn log_ctime(&self) -> String {
        let procs = &self.process.procs;
        let now = procs.unix_time();
        let mut cached = self.log_ctime.borrow_mut();
        if cached.0 != now {
            *cached = (now, procs.local_time(now).ctime());
        }
        cached.1.clone()
    }
}
