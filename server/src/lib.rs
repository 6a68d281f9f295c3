//! wsgilab's server: everything between a listening socket and a WSGI application.
//!
//! The request path (accept → read and parse → environ → app → response) and, later, the master
//! and its workers are written once against three seams — [`net`], [`procs`] and [`python`] —
//! so the same code runs on real sockets, processes and CPython, or in the simulated lab.
//! Each seam module holds its trait and, beside it, the real implementation.

pub mod app_loader;
pub mod config;
pub mod hints;
pub mod http;
pub mod instance;
pub mod log;
pub mod master;
pub mod net;
pub mod procs;
pub mod python;
pub mod scoreboard;
pub mod serve;
pub mod stats;
pub mod uwsgi_protocol;
pub mod worker;
pub mod wsgi;
