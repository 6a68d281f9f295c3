//! The `wsgilab` command: `serve` runs the real server with uWSGI's flags; `replay` runs the
//! lab's scenarios in the simulated world and explains them.

mod explore;
mod real;
mod replay;

use std::ffi::OsString;
use std::process::ExitCode;

use server::config::{parse_serve_args, ConfigOutcome};
use server::net::real::RealNet;
use server::procs::real::RealProcs;
use server::procs::supervisor::RealSupervisor;
use server::python::real::RealPython;

const USAGE: &str = "\
wsgilab: a uWSGI-style WSGI server, and a lab that explains how it serves

usage:
  wsgilab serve [uWSGI options]   serve a WSGI app, e.g.
                                  wsgilab serve --http-socket :8000 --module mysite.wsgi
                                  (wsgilab serve --help lists the options)
  wsgilab replay [SCENARIO...]    replay scenarios in the simulated world and explain them
                                  (no SCENARIO: every bundled one; wsgilab replay --help)
  wsgilab explore [--seeds N | --time DURATION] [--seed START]
                                  run generated scenarios and check the lab's invariants
  wsgilab help                    this text
";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        eprint!("{USAGE}");
        return ExitCode::from(1);
    }
    let command = args.remove(0);
    match command.to_str() {
        Some("serve") => serve(&args),
        Some("replay") => replay::replay(&args),
        Some("explore") => explore::explore(&args),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("--version" | "-V" | "version") => {
            println!("wsgilab {}", server::log::VERSION);
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "wsgilab: unknown command '{}': try 'wsgilab serve --http-socket :8000 --module mysite.wsgi' or 'wsgilab help'",
                command.to_string_lossy()
            );
            ExitCode::from(1)
        }
    }
}

/// Parses a lab command's arguments (`wsgilab NAME ...`); on a mistake or `--help`, what to
/// exit with once clap has printed its message.
fn parse_lab_args<T: clap::Parser>(name: &str, args: &[OsString]) -> Result<T, ExitCode> {
    let argv =
        std::iter::once(OsString::from(format!("wsgilab {name}"))).chain(args.iter().cloned());
    T::try_parse_from(argv).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        }
    })
}

fn serve(args: &[OsString]) -> ExitCode {
    let config = match parse_serve_args(args) {
        Ok(ConfigOutcome::Run(config)) => config,
        Ok(ConfigOutcome::Help(text)) | Ok(ConfigOutcome::ShowConfig(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // Every problem at once, one line each; status 2 as for any usage error.
            if let Some(shown) = e.show_config() {
                print!("{shown}");
            }
            for line in e.lines() {
                eprintln!("wsgilab serve: {line}");
            }
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wsgilab serve: cannot start the event loop: {e}");
            return ExitCode::from(1);
        }
    };
    let mut python = RealPython::default();
    let exit = runtime.block_on(server::instance::run(
        &config,
        &RealNet,
        &RealProcs,
        RealSupervisor::new,
        &mut python,
    ));
    ExitCode::from(exit.code())
}
