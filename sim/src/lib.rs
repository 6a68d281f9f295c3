//! The simulated world: deterministic implementations of the server's three seams — the
//! network over turmoil with our model of Linux's accept queue ([`net`]), a process table and
//! scheduler ([`procs`]), a model of Python's import system ([`python`]) — and the trace they
//! all write ([`trace`]), over the scenario's files ([`files`]).
//!
//! The master and worker code that runs here is the real server's, unchanged.

pub mod explore;
pub mod files;
pub mod net;
pub mod procs;
pub mod python;
pub mod scenario;
pub mod trace;
pub mod world;
