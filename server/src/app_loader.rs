//! Importing the app, and saying so as uWSGI does: in the master before it forks (uWSGI's
//! default), in each worker after the fork (`--lazy-apps`), or in the one process without a
//! master. A failed import is explained with wsgilab's `hint:` lines.

use std::path::PathBuf;

use crate::hints;
use crate::log::lines::{AppReady, NoAppLoaded};
use crate::procs::Procs;
use crate::python::{AppSource, Python};

/// uWSGI's exit status when `--need-app` finds no app.
const EXIT_NO_APP: i32 = 22;

/// Imports the app and reports it as uWSGI does: in the master (preforking) or in each worker
/// (--lazy-apps, or a single process).
#[derive(Clone, Debug)]
pub struct AppLoader {
    pub source: Option<AppSource>,
    pub need_app: bool,
    pub cwd: PathBuf,
    pub virtualenv: Option<PathBuf>,
    pub interpreter: usize,
}

impl AppLoader {
    /// The app, `Ok(None)` when it could not be loaded and the server serves 500s, or
    /// `Err(EXIT_NO_APP)` under --need-app.
    pub fn load<P: Procs, Y: Python>(
        &self,
        procs: &P,
        python: &mut Y,
    ) -> Result<Option<Y::App>, i32> {
        let Some(source) = &self.source else {
            procs.log(&NoAppLoaded::DynamicMode.to_string());
            procs.log("hint: no app was named: pass --module package.module (e.g. --module mysite.wsgi) or --wsgi-file app.py");
            if self.need_app {
                procs.log(&NoAppLoaded::GameOver.to_string());
                return Err(EXIT_NO_APP);
            }
            return Ok(None);
        };
        let started = procs.unix_time();
        match python.load_app(source) {
            Ok(app) => {
                let ready = AppReady {
                    seconds: procs.unix_time().saturating_sub(started),
                    interpreter: self.interpreter,
                    pid: procs.pid(),
                };
                procs.log(&ready.to_string());
                Ok(Some(app))
            }
            Err(failure) => {
                for line in &failure.traceback {
                    procs.log(line);
                }
                procs.log(
                    "unable to load app 0 (mountpoint='') (callable not found or import error)",
                );
                procs.log(
                    &if self.need_app {
                        NoAppLoaded::GameOver
                    } else {
                        NoAppLoaded::DynamicMode
                    }
                    .to_string(),
                );
                for line in hints::for_load_failure(
                    procs,
                    &failure,
                    source,
                    &self.cwd,
                    self.virtualenv.as_deref(),
                ) {
                    procs.log(&line);
                }
                if self.need_app {
                    return Err(EXIT_NO_APP);
                }
                procs.log("wsgilab: serving anyway: every request will get 500 Internal Server Error until the app loads (uWSGI does the same; --need-app makes it exit)");
                Ok(None)
            }
        }
    }
}
