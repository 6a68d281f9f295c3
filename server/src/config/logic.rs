//! uWSGI's option logic: `if-env`, `if-exists`, `if-opt`, ... and `for`, `for-glob`,
//! `for-readline`, `for-times`, each applying to the options that follow it until `endif` /
//! `endfor` (or `end`).
//!
//! As in uWSGI (core/config.c, `uwsgi_logic_opt_*`): a block's condition is its raw value
//! (magic variables substituted, placeholders not yet), the options inside are added only when
//! it holds, `%(_)` in them is replaced by the tested value (the environment variable's value
//! for `if-env`, the path for `if-exists`, each item for `for`), and blocks do not nest.

use std::path::{Path, PathBuf};

/// A logic block's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logic {
    IfOpt(bool),
    IfEnv(bool),
    IfReload(bool),
    IfHostname(bool),
    IfExists(bool),
    IfFile(bool),
    IfDir(bool),
    IfPlugin(bool),
    For,
    ForGlob,
    ForTimes,
    ForReadline,
}

/// The keys that end a block (uWSGI's `add_exported_option_do`).
pub fn is_end(key: &str) -> bool {
    matches!(key, "end" | "endfor" | "endif" | "end-if" | "end-for")
}

impl Logic {
    /// The block a key opens (`if-not-env` is `IfEnv(true)`: negated), with uWSGI's aliases.
    pub fn starter(key: &str) -> Option<Logic> {
        Some(match key {
            "if-opt" => Logic::IfOpt(false),
            "if-not-opt" => Logic::IfOpt(true),
            "if-env" | "ifenv" => Logic::IfEnv(false),
            "if-not-env" => Logic::IfEnv(true),
            "if-reload" => Logic::IfReload(false),
            "if-not-reload" => Logic::IfReload(true),
            "if-hostname" => Logic::IfHostname(false),
            "if-not-hostname" => Logic::IfHostname(true),
            "if-exists" | "ifexists" => Logic::IfExists(false),
            "if-not-exists" => Logic::IfExists(true),
            "if-file" => Logic::IfFile(false),
            "if-not-file" => Logic::IfFile(true),
            "if-dir" | "ifdir" | "if-directory" => Logic::IfDir(false),
            "if-not-dir" => Logic::IfDir(true),
            "if-plugin" | "ifplugin" => Logic::IfPlugin(false),
            "if-not-plugin" => Logic::IfPlugin(true),
            "for" => Logic::For,
            "for-glob" => Logic::ForGlob,
            "for-times" => Logic::ForTimes,
            "for-readline" => Logic::ForReadline,
            _ => return None,
        })
    }
}

/// What a block's condition can look at.
pub trait LogicContext {
    fn env(&self, name: &str) -> Option<String>;
    /// The first option given with this key so far (uWSGI's `uwsgi_get_exported_opt`).
    fn option(&mut self, name: &str) -> Option<String>;
    fn hostname(&self) -> String;
    fn is_file(&self, path: &Path) -> bool;
    fn is_dir(&self, path: &Path) -> bool;
    fn read_file(&self, path: &Path) -> Option<String>;
    fn list_dir(&self, path: &Path) -> Vec<String>;
    fn cwd(&self) -> PathBuf;
}

/// The values an option inside a block stands for: none when the condition fails, one per item
/// in a `for`. `Err` when the block cannot be evaluated (a `for-readline` file missing).
pub fn apply(
    logic: Logic,
    arg: &str,
    value: &str,
    cx: &mut dyn LogicContext,
) -> Result<Vec<String>, String> {
    let sub = |v: &str, _: &str| value.replace("%(_)", v);
    let path = |p: &str, cx: &dyn LogicContext| cx.cwd().join(p);
    // `NAME=VALUE` compares the value; `NAME` asks whether it is set. The result is the text
    // `%(_)` becomes: the value found, or, when a negated test holds because nothing was found,
    // `%(_)` itself (uWSGI substitutes a NULL, which leaves the text as it is).
    let compare = |found: Option<String>, negated: bool| -> Option<String> {
        let (_, want) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg, None),
        };
        let holds = match (&found, want) {
            (Some(f), Some(w)) => f == w,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if holds != negated {
            Some(found.unwrap_or_else(|| "%(_)".to_string()))
        } else {
            None
        }
    };
    let name = arg.split_once('=').map(|(n, _)| n).unwrap_or(arg);
    let one = |ok: bool, with: &str| {
        if ok {
            vec![sub(with, with)]
        } else {
            vec![]
        }
    };
    Ok(match logic {
        Logic::IfEnv(neg) => match compare(cx.env(name), neg) {
            Some(v) => vec![sub(&v, &v)],
            None => vec![],
        },
        Logic::IfOpt(neg) => {
            let found = cx.option(name);
            match compare(found, neg) {
                Some(v) => vec![sub(&v, &v)],
                None => vec![],
            }
        }
        // The configuration is read once, at start-up: it is never a reload.
        Logic::IfReload(neg) => one(neg, arg),
        Logic::IfHostname(neg) => one((cx.hostname() == arg) != neg, arg),
        Logic::IfExists(neg) => {
            let p = path(arg, cx);
            one((cx.is_file(&p) || cx.is_dir(&p)) != neg, arg)
        }
        Logic::IfFile(neg) => one(cx.is_file(&path(arg, cx)) != neg, arg),
        Logic::IfDir(neg) => one(cx.is_dir(&path(arg, cx)) != neg, arg),
        // wsgilab has the python and http plugins built in, and only those.
        Logic::IfPlugin(neg) => {
            let p = arg
                .trim_end_matches("_plugin.so")
                .trim_end_matches("_plugin");
            let loaded = p == "http" || p == "corerouter" || p.starts_with("python");
            one(loaded != neg, arg)
        }
        Logic::For => arg
            .split(' ')
            .filter(|t| !t.is_empty())
            .map(|t| sub(t, t))
            .collect(),
        Logic::ForTimes => {
            let n = super::placeholders::strtoll(arg).clamp(0, 100_000);
            (1..=n)
                .map(|i| sub(&i.to_string(), &i.to_string()))
                .collect()
        }
        Logic::ForGlob => glob(arg, cx).into_iter().map(|p| sub(&p, &p)).collect(),
        Logic::ForReadline => {
            let text = cx.read_file(&path(arg, cx)).ok_or_else(|| {
                format!("for-readline: cannot open '{arg}' (the file to read lines from)")
            })?;
            text.lines()
                .map(|l| l.trim_end_matches('\r'))
                .map(|l| sub(l, l))
                .collect()
        }
    })
}

/// glob(3) with `GLOB_MARK | GLOB_NOCHECK`, as uWSGI's `for-glob` calls it: matches sorted,
/// directories marked with a trailing `/`, and the pattern itself when nothing matches.
pub fn glob(pattern: &str, cx: &dyn LogicContext) -> Vec<String> {
    let absolute = pattern.starts_with('/');
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let mut found: Vec<String> = vec![if absolute { "/".into() } else { String::new() }];
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for base in &found {
            let dir = if base.is_empty() {
                cx.cwd()
            } else if absolute {
                PathBuf::from(base)
            } else {
                cx.cwd().join(base)
            };
            let join = |name: &str| {
                if base.is_empty() {
                    name.to_string()
                } else if base.ends_with('/') {
                    format!("{base}{name}")
                } else {
                    format!("{base}/{name}")
                }
            };
            if !part.contains(['*', '?', '[']) {
                let candidate = join(part);
                let p = dir.join(part);
                if (last && (cx.is_file(&p) || cx.is_dir(&p))) || cx.is_dir(&p) {
                    next.push(candidate);
                }
                continue;
            }
            let mut names = cx.list_dir(&dir);
            names.sort();
            for name in names {
                if name.starts_with('.') && !part.starts_with('.') {
                    continue;
                }
                if wildcard(part.as_bytes(), name.as_bytes()) {
                    let p = dir.join(&name);
                    if last || cx.is_dir(&p) {
                        next.push(join(&name));
                    }
                }
            }
        }
        found = next;
    }
    if parts.is_empty() || found.is_empty() {
        return vec![pattern.to_string()];
    }
    found.sort();
    found
        .into_iter()
        .map(|f| {
            let p = if absolute {
                PathBuf::from(&f)
            } else {
                cx.cwd().join(&f)
            };
            if cx.is_dir(&p) && !f.ends_with('/') {
                format!("{f}/")
            } else {
                f
            }
        })
        .collect()
}

/// fnmatch(3) for one path component: `*`, `?` and `[...]` (with `!`/`^` and ranges).
pub fn wildcard(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| wildcard(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && wildcard(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(close) = p.iter().skip(2).position(|&c| c == b']').map(|i| i + 2) else {
                return s.first() == Some(&b'[') && wildcard(&p[1..], &s[1..]);
            };
            let Some(&c) = s.first() else { return false };
            let mut class = &p[1..close];
            let negate = matches!(class.first(), Some(b'!' | b'^'));
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && wildcard(&p[close + 1..], &s[1..])
        }
        Some(&c) => s.first() == Some(&c) && wildcard(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Cx {
        env: BTreeMap<&'static str, &'static str>,
        files: BTreeMap<&'static str, &'static str>,
        dirs: Vec<&'static str>,
        opts: Vec<(&'static str, &'static str)>,
    }

    impl LogicContext for Cx {
        fn env(&self, name: &str) -> Option<String> {
            self.env.get(name).map(|s| s.to_string())
        }
        fn option(&mut self, name: &str) -> Option<String> {
            self.opts
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
        fn hostname(&self) -> String {
            "web1".into()
        }
        fn is_file(&self, p: &Path) -> bool {
            self.files.contains_key(p.to_str().unwrap())
        }
        fn is_dir(&self, p: &Path) -> bool {
            self.dirs.contains(&p.to_str().unwrap())
        }
        fn read_file(&self, p: &Path) -> Option<String> {
            self.files.get(p.to_str().unwrap()).map(|s| s.to_string())
        }
        fn list_dir(&self, p: &Path) -> Vec<String> {
            let prefix = format!("{}/", p.display().to_string().trim_end_matches('/'));
            let mut out: Vec<String> = self
                .files
                .keys()
                .copied()
                .chain(self.dirs.iter().copied())
                .filter_map(|f| f.strip_prefix(prefix.as_str()))
                .filter(|rest| !rest.contains('/') && !rest.is_empty())
                .map(str::to_string)
                .collect();
            out.dedup();
            out
        }
        fn cwd(&self) -> PathBuf {
            PathBuf::from("/srv")
        }
    }

    fn cx() -> Cx {
        Cx {
            env: [("PORT", "8080"), ("MODE", "dev")].into_iter().collect(),
            files: [
                ("/srv/app.py", ""),
                ("/srv/lines.txt", "a\nb\r\n"),
                ("/srv/vassals/a.ini", ""),
                ("/srv/vassals/b.ini", ""),
                ("/srv/vassals/c.txt", ""),
            ]
            .into_iter()
            .collect(),
            dirs: vec!["/srv", "/srv/vassals", "/srv/static"],
            opts: vec![("socket", ":1")],
        }
    }

    #[test]
    fn conditions_follow_uwsgi() {
        let mut c = cx();
        let mut a = |l, arg: &str, v: &str| apply(l, arg, v, &mut c).unwrap();
        assert_eq!(a(Logic::IfEnv(false), "PORT", ":%(_)"), vec![":8080"]);
        assert_eq!(a(Logic::IfEnv(false), "NOPE", "x"), Vec::<String>::new());
        assert_eq!(a(Logic::IfEnv(true), "NOPE", "x"), vec!["x"]);
        assert_eq!(a(Logic::IfEnv(false), "MODE=dev", "x"), vec!["x"]);
        assert!(a(Logic::IfEnv(false), "MODE=prod", "x").is_empty());
        assert_eq!(a(Logic::IfEnv(true), "MODE=prod", "x"), vec!["x"]);
        assert!(a(Logic::IfEnv(true), "MODE", "x").is_empty());
        assert_eq!(a(Logic::IfOpt(false), "socket", "%(_)"), vec![":1"]);
        assert!(a(Logic::IfOpt(false), "http", "x").is_empty());
        assert_eq!(a(Logic::IfExists(false), "app.py", "%(_)"), vec!["app.py"]);
        assert_eq!(a(Logic::IfExists(false), "/srv/static", "y"), vec!["y"]);
        assert!(a(Logic::IfFile(false), "/srv/static", "y").is_empty());
        assert_eq!(a(Logic::IfDir(false), "static", "y"), vec!["y"]);
        assert_eq!(a(Logic::IfDir(true), "nope", "y"), vec!["y"]);
        assert_eq!(a(Logic::IfReload(true), "", "y"), vec!["y"]);
        assert_eq!(a(Logic::IfHostname(false), "web1", "y"), vec!["y"]);
        assert_eq!(a(Logic::IfPlugin(false), "python3", "y"), vec!["y"]);
        assert!(a(Logic::IfPlugin(false), "php", "y").is_empty());
    }

    #[test]
    fn loops_follow_uwsgi() {
        let mut c = cx();
        let mut a = |l, arg: &str, v: &str| apply(l, arg, v, &mut c).unwrap();
        assert_eq!(
            a(Logic::For, "a  b c", "/x/%(_)"),
            vec!["/x/a", "/x/b", "/x/c"]
        );
        assert_eq!(a(Logic::ForTimes, "3", "%(_)"), vec!["1", "2", "3"]);
        assert_eq!(a(Logic::ForReadline, "lines.txt", "%(_)"), vec!["a", "b"]);
        assert_eq!(
            a(Logic::ForGlob, "vassals/*.ini", "%(_)"),
            vec!["vassals/a.ini", "vassals/b.ini"]
        );
        assert_eq!(a(Logic::ForGlob, "/srv/v*", "%(_)"), vec!["/srv/vassals/"]);
        assert_eq!(a(Logic::ForGlob, "none/*.ini", "%(_)"), vec!["none/*.ini"]);
        assert!(apply(Logic::ForReadline, "missing", "x", &mut c).is_err());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard(b"*.ini", b"a.ini"));
        assert!(!wildcard(b"*.ini", b"a.txt"));
        assert!(wildcard(b"[ab]?.x", b"b1.x"));
        assert!(!wildcard(b"[!ab]?.x", b"b1.x"));
        assert!(wildcard(b"[a-c]", b"b"));
    }
}
