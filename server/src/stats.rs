//! uWSGI's stats document (`--stats ADDR`): one JSON object per connection, from the master's
//! scoreboard, in the shape `uwsgitop` and the monitoring agents read.

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::scoreboard::{Scoreboard, WorkerStatus};

/// What the document says about the instance besides its workers.
pub struct Instance<'a> {
    pub master_pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cwd: &'a str,
    pub socket_name: &'a str,
    /// Connections waiting in the accept queue, and its limit.
    pub queue: (u32, u32),
    pub listen_queue_errors: u64,
}

pub fn document(instance: &Instance<'_>, board: &Scoreboard, now: Instant) -> Value {
    let workers: Vec<Value> = board
        .slots
        .iter()
        .map(|slot| {
            let accepting = matches!(slot.status, WorkerStatus::Idle | WorkerStatus::Busy);
            let status = match slot.status {
                WorkerStatus::Idle | WorkerStatus::Busy => slot.status.name(),
                // uWSGI's word for a worker that is not running.
                _ => "cheap",
            };
            let cores: Vec<Value> = slot
                .cores
                .iter()
                .enumerate()
                .map(|(id, core)| {
                    let req_info = match &core.request {
                        Some(r) => json!({
                            "request_start": r.since_unix,
                            "method": r.method,
                            "uri": r.uri,
                            "remote_addr": r.remote,
                            "running_for_ms": now.saturating_duration_since(r.since).as_millis() as u64,
                        }),
                        None => json!({}),
                    };
                    json!({
                        "id": id,
                        "requests": core.requests,
                        "static_requests": 0,
                        "routed_requests": 0,
                        "offloaded_requests": 0,
                        "write_errors": 0,
                        "read_errors": 0,
                        "in_request": u8::from(core.request.is_some()),
                        "vars": [],
                        "req_info": req_info,
                    })
                })
                .collect();
            json!({
                "id": slot.id,
                "pid": slot.pid,
                "accepting": u8::from(accepting),
                "requests": slot.requests,
                "delta_requests": 0,
                "exceptions": slot.exceptions,
                "harakiri_count": slot.harakiri_count,
                "signals": 0,
                "signal_queue": 0,
                "status": status,
                "rss": slot.rss,
                "vsz": 0,
                "running_time": slot.total_micros,
                "last_spawn": slot.last_spawn_unix,
                "respawn_count": slot.respawn_count,
                "tx": slot.tx,
                "avg_rt": slot.avg_rt(),
                "apps": if slot.app_loaded {
                    json!([{
                        "id": 0,
                        "modifier1": 0,
                        "mountpoint": "",
                        "startup_time": 0,
                        "requests": slot.requests,
                        "exceptions": slot.exceptions,
                        "chdir": "",
                    }])
                } else {
                    json!([])
                },
                "cores": cores,
            })
        })
        .collect();
    json!({
        "version": format!("wsgilab-{}", crate::log::VERSION),
        "listen_queue": instance.queue.0,
        "listen_queue_errors": instance.listen_queue_errors,
        "signal_queue": 0,
        "load": board.busy_cores(),
        "pid": instance.master_pid,
        "uid": instance.uid,
        "gid": instance.gid,
        "cwd": instance.cwd,
        "locks": [],
        "sockets": [{
            "name": instance.socket_name,
            "proto": "http",
            "queue": instance.queue.0,
            "max_queue": instance.queue.1,
            "shared": 0,
            "can_offload": 0,
        }],
        "workers": workers,
    })
}
