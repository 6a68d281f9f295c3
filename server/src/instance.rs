//! One instance of the server, from its configuration to its exit: the composition root that
//! `wsgilab serve` (src/main.rs) and the simulated machine (sim/src/world.rs) both call with
//! their own seams. Start-up is [`crate::serve::prepare`]; then either the master supervises
//! forked workers, or, without a master, this process serves and stops on SIGINT, SIGQUIT or
//! SIGTERM as it hears them through the process seam.

use std::io;

use crate::config::Config;
use crate::log::lines::{Goodbye, UnmasteredStop};
use crate::master::Master;
use crate::net::Net;
use crate::procs::{ForkHooks, Procs, Supervisor};
use crate::python::Python;

/// How an instance ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The process exits with this status.
    Code(i32),
    /// The master's program was replaced by a simulated `exec()` (a real one never returns):
    /// the same process starts again from the top.
    ReplacedByExec,
}

impl Exit {
    /// The status the process exits with, as the shell's `$?` shows it.
    pub fn code(self) -> u8 {
        match self {
            Exit::Code(code) => code.clamp(0, 255) as u8,
            Exit::ReplacedByExec => 0,
        }
    }
}

/// Runs the server `config` describes over these seams until it exits. `supervisor` is made
/// only when there is a master (the real one installs signal handlers).
pub async fn run<N, P, S, Y>(
    config: &Config,
    net: &N,
    procs: &P,
    supervisor: impl FnOnce() -> io::Result<S>,
    python: &mut Y,
) -> Exit
where
    N: Net + Clone + Send + Sync + 'static,
    N::Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    P: Procs + Clone + Send + Sync + 'static,
    S: Supervisor,
    Y: Python + ForkHooks + Clone + Send + 'static,
    Y::App: Clone + Send + Sync + 'static,
{
    let prepared = match crate::serve::prepare(config, net, procs, python) {
        Ok(prepared) => prepared,
        Err(status) => return Exit::Code(status),
    };
    if prepared.master_mode {
        let supervisor = match supervisor() {
            Ok(supervisor) => supervisor,
            Err(e) => {
                procs.log(&format!(
                    "wsgilab: cannot install the master's signal handlers: {e}"
                ));
                return Exit::Code(1);
            }
        };
        return match Master::new(config, net, procs, &supervisor, python, &prepared) {
            Ok(mut master) => master.run().await,
            Err(e) => {
                procs.log(&format!("wsgilab: cannot start the stats server: {e}"));
                Exit::Code(1)
            }
        };
    }
    // No master: this process is the worker, and the app is imported.
    procs.tune_allocator();
    tokio::select! {
        biased;
        signal = procs.stop_signal() => {
            let stop = UnmasteredStop { signal };
            procs.log(&stop.to_string());
            procs.log(&Goodbye.to_string());
            Exit::Code(0)
        }
        status = crate::serve::serve(&prepared, net, procs, python) => Exit::Code(status),
    }
}
