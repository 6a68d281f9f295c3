//! A worker process from fork to exit: import the app if it is lazy, take the inherited
//! socket (one per core with `--threads`), tell the master it is ready, run its cores, and
//! say why it ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::leaving::Leaving;
use super::{Worker, WorkerSettings};
use crate::app_loader::AppLoader;
use crate::net::Net;
use crate::procs::{Procs, SharedCounter, WorkerLink, WorkerMessage};
use crate::python::{App, Python};

/// Everything a forked worker process needs, handed over by the master.
pub struct WorkerSpec<N: Net, P: Procs, Y: Python> {
    pub id: usize,
    pub net: N,
    /// The listening socket, inherited.
    pub shared: N::Shared,
    pub procs: P,
    pub python: Y,
    /// The master's app (preforking), if it imported one.
    pub app: Option<Y::App>,
    /// The instance's request count, shared with the master and the other workers.
    pub total_requests: SharedCounter,
    /// Set with --lazy-apps: the worker imports the app itself.
    pub lazy: Option<AppLoader>,
    pub settings: WorkerSettings,
}

/// The channel of a worker without a master (single-process mode): nobody to tell, nobody to
/// ask it to stop.
pub struct NoMaster;

impl WorkerLink for NoMaster {
    fn has_master(&self) -> bool {
        false
    }

    fn send(&self, _message: WorkerMessage) {}

    async fn stop_requested(&self) {
        std::future::pending::<()>().await
    }
}

/// One worker process as its cores see it: the seams and the app they serve with, the
/// sockets each core takes as it starts, and what they count and decide together.
pub(super) struct Process<N: Net, P, A, L> {
    /// The worker's number (uWSGI's `worker 1`).
    id: usize,
    net: N,
    pub(super) procs: P,
    pub(super) app: Option<A>,
    pub(super) link: L,
    pub(super) settings: WorkerSettings,
    /// The inherited socket of each core, until the core takes it.
    sockets: Vec<Mutex<Option<N::Shared>>>,
    /// Cores whose listener failed: the process then exits 1.
    failed: AtomicU64,
    /// Requests that reached the app (uWSGI's `req: N/M`, the N).
    pub(super) requests: AtomicU64,
    /// Requests answered by every worker of the instance (uWSGI's `req: N/M`, the M).
    pub(super) total: SharedCounter,
    /// When resident memory was last sampled for the master.
    pub(super) rss_sampled_at: Mutex<Option<Instant>>,
    pub(super) leaving: Leaving,
}

/// A worker process from fork to exit: import the app if it is lazy, take the inherited
/// socket, tell the master it is ready, serve on every core; its exit status.
pub async fn worker_process<N, P, Y, L>(spec: WorkerSpec<N, P, Y>, link: L) -> i32
where
    N: Net + Send + Sync + 'static,
    P: Procs + Clone + Send + Sync + 'static,
    Y: Python,
    Y::App: Send + Sync + 'static,
    L: WorkerLink + 'static,
{
    let WorkerSpec {
        id,
        net,
        shared,
        procs,
        mut python,
        app,
        lazy,
        settings,
        total_requests,
    } = spec;
    let app = match (app, lazy) {
        (Some(app), _) => Some(app),
        (None, Some(loader)) => match loader.load(&procs, &mut python) {
            Ok(app) => app,
            Err(status) => return status,
        },
        (None, None) => None,
    };
    let sockets = match core_sockets(id, &net, &procs, shared, settings.threads) {
        Ok(sockets) => sockets,
        Err(status) => return status,
    };
    let cores = sockets.len();
    let process = Arc::new(Process {
        id,
        net,
        procs: procs.clone(),
        app,
        link,
        settings,
        sockets,
        failed: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        total: total_requests,
        rss_sampled_at: Mutex::new(None),
        leaving: Leaving::default(),
    });
    process.link.send(WorkerMessage::Ready {
        app_loaded: process.app.is_some(),
    });
    let for_cores = process.clone();
    procs
        .run_cores(cores, move |core| serve_core(for_cores.clone(), core))
        .await;
    if process.failed.load(Ordering::SeqCst) > 0 {
        return 1;
    }
    if let Some(reason) = process.leaving.retired() {
        procs.log(&format!("wsgilab: worker {id} retires: {reason}"));
        procs.log(&crate::log::lines::WorkDone { pid: procs.pid() }.to_string());
    }
    0
}

/// One inherited socket per core: each core's event loop registers its own. `Err`: the exit
/// status, the problem logged.
#[allow(clippy::type_complexity)]
fn core_sockets<N: Net, P: Procs>(
    id: usize,
    net: &N,
    procs: &P,
    shared: N::Shared,
    threads: usize,
) -> Result<Vec<Mutex<Option<N::Shared>>>, i32> {
    let mut sockets = vec![shared];
    if threads > 1 {
        let listener = match net.adopt(sockets.pop().expect("one socket")) {
            Ok(listener) => listener,
            Err(e) => {
                procs.log(&format!(
                    "wsgilab: worker {id} cannot use the inherited socket: {e}"
                ));
                return Err(1);
            }
        };
        for _ in 0..threads {
            match net.share(&listener) {
                Ok(socket) => sockets.push(socket),
                Err(e) => {
                    procs.log(&format!(
                        "wsgilab: worker {id} cannot share its socket with its threads: {e}"
                    ));
                    return Err(1);
                }
            }
        }
    }
    Ok(sockets.into_iter().map(|s| Mutex::new(Some(s))).collect())
}

/// One core: adopt its socket, then accept and serve until the worker leaves.
async fn serve_core<N, P, A, L>(process: Arc<Process<N, P, A, L>>, core: usize)
where
    N: Net,
    P: Procs,
    A: App,
    L: WorkerLink,
{
    let socket = process
        .sockets
        .get(core)
        .and_then(|s| s.lock().ok()?.take());
    let listener = match socket.map(|s| process.net.adopt(s)) {
        Some(Ok(listener)) => listener,
        Some(Err(e)) => {
            process.procs.log(&format!(
                "wsgilab: worker {} core {core} cannot use the inherited socket: {e}",
                process.id
            ));
            process.failed.fetch_add(1, Ordering::SeqCst);
            return;
        }
        None => return,
    };
    let worker = Worker::new(&process, core);
    if let Err(e) = worker.run(&listener).await {
        process.procs.log(&format!(
            "accept(): {e} [worker {} core {core}]",
            process.id
        ));
        process.failed.fetch_add(1, Ordering::SeqCst);
    }
}
