//! `wsgilab serve --show-config`: the effective configuration, each value with where it came
//! from, printed before anything is bound.
//!
//! The first part is what uWSGI's own `--show-config` prints (every option and placeholder in
//! the order uWSGI holds them, values expanded, as an ini section), with the origin of each as a
//! trailing comment; it reads back as an ini file. The second part says what wsgilab will do
//! with it: the sockets, the app, the processes, and the warnings and errors.

use std::fmt::Write;

use super::{Config, Entry};

/// The text `--show-config` prints.
pub fn render(
    entries: &[Entry],
    config: Option<&Config>,
    warnings: &[String],
    errors: &[String],
) -> String {
    let mut out = String::new();
    out.push_str(";uWSGI instance configuration (wsgilab serve --show-config)\n[uwsgi]\n");
    let lines: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            let v = e.value.as_deref().unwrap_or("true");
            (format!("{} = {v}", e.key), e.origin.place())
        })
        .collect();
    let width = lines
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0)
        .min(60);
    for (line, origin) in lines {
        let pad = width.saturating_sub(line.chars().count());
        let _ = writeln!(out, "{line}{}   ; {origin}", " ".repeat(pad));
    }
    out.push_str(";end of configuration\n");
    match config {
        Some(c) => {
            out.push_str(";\n; what wsgilab will run:\n");
            if c.sockets.is_empty() {
                out.push_str(
                    ";   no socket (uWSGI would exit: The -s/--socket option is missing)\n",
                );
            }
            for s in &c.sockets {
                let _ = writeln!(
                    out,
                    ";   {} socket {} (bound to {}, from {})",
                    s.protocol, s.spec, s.addr, s.option
                );
            }
            let app = match (&c.module, &c.wsgi_file) {
                (Some(_), _) => {
                    let (m, callable) = c.module_and_callable().unwrap_or_default();
                    format!("module {m}, callable {callable}")
                }
                (None, Some(f)) => format!("file {}, callable {}", f.display(), c.callable),
                (None, None) => "none (no module or wsgi-file)".to_string(),
            };
            let _ = writeln!(out, ";   app: {app}");
            if let Some(d) = &c.chdir {
                let _ = writeln!(out, ";   chdir: {}", d.display());
            }
            if let Some(v) = &c.virtualenv {
                let _ = writeln!(out, ";   virtualenv: {}", v.display());
            }
            for p in &c.pythonpath {
                let _ = writeln!(out, ";   pythonpath: {}", p.display());
            }
            let _ = writeln!(
                out,
                ";   master: {}, processes: {}, threads: {}",
                if c.master { "yes" } else { "no" },
                c.processes,
                c.threads
            );
        }
        None => out.push_str(";\n; wsgilab cannot run this configuration (see the errors)\n"),
    }
    let warnings = config.map_or(warnings, |c| c.warnings.as_slice());
    for w in warnings {
        let _ = writeln!(out, "; warning: {w}");
    }
    for e in errors {
        let _ = writeln!(out, "; error: {e}");
    }
    out
}
