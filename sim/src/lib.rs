//! The simulated world: deterministic implementations of the server's three seams (network over
//! turmoil with our accept-queue model, a process table and scheduler, a model of Python's import
//! system), the scenario format and runner, and trace rendering.
//!
//! Not built yet: the real server comes first (see the issue "The simulated world").
