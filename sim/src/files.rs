//! The simulated file system: the scenario's files (project source, virtualenvs, system
//! site-packages) as a sorted tree of absolute paths. Directories exist implicitly, as the
//! parents of files, or explicitly (an empty package directory, an empty virtualenv).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// One entry of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    File(String),
    Dir,
}

/// Absolute paths to entries; parent directories are implied by their children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileTree {
    entries: BTreeMap<PathBuf, Entry>,
}

impl FileTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file (and, implicitly, its directories).
    pub fn add_file(&mut self, path: impl AsRef<Path>, content: impl Into<String>) {
        self.entries
            .insert(normalize(path.as_ref()), Entry::File(content.into()));
    }

    /// Adds a directory, empty unless files are added below it.
    pub fn add_dir(&mut self, path: impl AsRef<Path>) {
        self.entries
            .entry(normalize(path.as_ref()))
            .or_insert(Entry::Dir);
    }

    pub fn is_file(&self, path: &Path) -> bool {
        matches!(self.entries.get(&normalize(path)), Some(Entry::File(_)))
    }

    pub fn is_dir(&self, path: &Path) -> bool {
        let path = normalize(path);
        if path == Path::new("/") {
            return true;
        }
        match self.entries.get(&path) {
            Some(Entry::Dir) => true,
            Some(Entry::File(_)) => false,
            None => self
                .entries
                .range(path.clone()..)
                .next()
                .is_some_and(|(p, _)| p.starts_with(&path) && *p != path),
        }
    }

    pub fn read(&self, path: &Path) -> Option<&str> {
        match self.entries.get(&normalize(path)) {
            Some(Entry::File(content)) => Some(content),
            _ => None,
        }
    }

    /// The names directly inside a directory, sorted.
    pub fn list(&self, dir: &Path) -> Vec<String> {
        let dir = normalize(dir);
        let mut names: Vec<String> = self
            .entries
            .range(dir.clone()..)
            .take_while(|(p, _)| p.starts_with(&dir))
            .filter_map(|(p, _)| p.strip_prefix(&dir).ok()?.components().next())
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        names.dedup();
        names
    }
}

/// `/a/./b/../c` → `/a/c`, without touching a real file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_implied_by_their_files() {
        let mut tree = FileTree::new();
        tree.add_file("/srv/mysite/mysite/wsgi.py", "application = None");
        tree.add_dir("/srv/empty");
        assert!(tree.is_dir(Path::new("/srv")));
        assert!(tree.is_dir(Path::new("/srv/mysite/mysite")));
        assert!(tree.is_dir(Path::new("/srv/empty")));
        assert!(!tree.is_dir(Path::new("/srv/mysite/mysite/wsgi.py")));
        assert!(tree.is_file(Path::new("/srv/mysite/./mysite/../mysite/wsgi.py")));
        assert_eq!(tree.list(Path::new("/srv")), ["empty", "mysite"]);
        assert_eq!(tree.list(Path::new("/srv/mysite/mysite")), ["wsgi.py"]);
        assert_eq!(
            tree.read(Path::new("/srv/mysite/mysite/wsgi.py")),
            Some("application = None")
        );
    }
}
