//! Real projects' uWSGI config files are the judge: `wsgilab serve --show-config` is run on each
//! file of `tests/fixtures/real-configs/` (copied unchanged from public repositories; see its
//! SOURCES.md), as written, and the report says how many it accepts and, for each of the rest,
//! every reason it gives. The report is a snapshot (`tests/snapshots/`), so a change in what is
//! accepted shows in review; run with `--nocapture` to read it.
//!
//! Each file runs from a fresh directory holding only it, with a plain shell's environment
//! (`PATH`, `HOME`, `USER`, `LANG`): no `PORT` or other variable a platform would set, so a
//! config that needs one says so.

mod common;

use std::path::Path;
use std::process::Command;

/// The reason part of an error line: after `file:line: 'the line': `.
fn reason(line: &str, file: &str) -> String {
    let line = line.trim_start_matches("wsgilab serve: ");
    let Some(rest) = line.strip_prefix(file) else {
        return line.to_string();
    };
    let Some((num, rest)) = rest.trim_start_matches(':').split_once(": ") else {
        return line.to_string();
    };
    // `'the line': what`, or from inside a block `'the line' (inside 'if-env = X' at f:3): what`.
    let what = match rest.strip_prefix('\'') {
        Some(r) if r.contains("' (inside '") => r
            .split_once("' (inside '")
            .and_then(|(_, after)| after.split_once("): "))
            .map_or(rest, |(_, what)| what),
        Some(r) => r.split_once("': ").map_or(rest, |(_, what)| what),
        None => rest,
    };
    format!("line {num}: {what}")
}

#[test]
fn real_projects_configs_report() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real-configs");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "SOURCES.md")
        .collect();
    names.sort();
    let sources = std::fs::read_to_string(dir.join("SOURCES.md")).unwrap();
    assert!(names.len() >= 50, "only {} real configs", names.len());
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for name in &names {
        assert!(
            sources.contains(&format!("| {name} |")),
            "{name} has no line in SOURCES.md"
        );
        let work = common::temp_dir(&format!("real-config-{name}"));
        std::fs::copy(dir.join(name), work.join(name)).unwrap();
        let out = Command::new(common::wsgilab())
            .args(["serve", "--show-config", name])
            .current_dir(&work)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", "/home/user")
            .env("USER", "user")
            .env("LANG", "C.UTF-8")
            .output()
            .unwrap();
        // The file's own directory (in %d, %p) is a fresh temporary one: shown as $DIR.
        let stderr = String::from_utf8_lossy(&out.stderr)
            .replace(&work.display().to_string(), "$DIR")
            .replace(&work.parent().unwrap().display().to_string(), "$DIR/..");
        match out.status.code() {
            Some(0) => accepted.push(name.clone()),
            Some(2) => {
                let reasons: Vec<String> = stderr
                    .lines()
                    .filter(|l| l.starts_with("wsgilab serve: "))
                    .map(|l| reason(l, name))
                    .collect();
                assert!(
                    !reasons.is_empty(),
                    "{name}: exit 2 with no reason:\n{stderr}"
                );
                refused.push((name.clone(), reasons));
            }
            other => panic!("{name}: exit status {other:?} (a config error is 2):\n{stderr}"),
        }
    }
    let mut report = format!(
        "{} of {} real projects' config files start as written.\n\nAccepted:\n",
        accepted.len(),
        names.len()
    );
    for a in &accepted {
        report.push_str(&format!("  {a}\n"));
    }
    // Why, counted by file: each kind of reason once per file.
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for (_, reasons) in &refused {
        let mut seen: Vec<String> = Vec::new();
        for r in reasons {
            let what = r.split_once(": ").map_or(r.as_str(), |(_, w)| w);
            let kind = if let Some(rest) = what.strip_prefix('\'') {
                match rest.split_once("' is a uWSGI option that wsgilab refuses") {
                    Some((opt, _)) => format!("refused option '{opt}'"),
                    None if what.contains("the environment variable") => {
                        "an environment variable it needs is not set ($(VAR))".to_string()
                    }
                    None => what.to_string(),
                }
            } else if what.contains("UNIX sockets are not supported") {
                "a UNIX socket".to_string()
            } else if what.contains("is not available") {
                "a plugin other than python/http".to_string()
            } else if what.contains("not found") {
                "an included file that is not there".to_string()
            } else if what.starts_with("invalid JSON") {
                "invalid JSON (a trailing comma; jansson refuses it too)".to_string()
            } else {
                what.to_string()
            };
            if !seen.contains(&kind) {
                seen.push(kind.clone());
                match kinds.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, n)) => *n += 1,
                    None => kinds.push((kind, 1)),
                }
            }
        }
    }
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    report.push_str("\nWhy the others do not (files per reason; a file may have several):\n");
    for (kind, n) in &kinds {
        report.push_str(&format!("  {n:>3}  {kind}\n"));
    }
    report.push_str("\nRefused, with every reason given:\n");
    for (name, reasons) in &refused {
        report.push_str(&format!("  {name}\n"));
        for r in reasons {
            report.push_str(&format!("    {r}\n"));
        }
    }
    println!("{report}");
    insta::assert_snapshot!("report", report);
}
