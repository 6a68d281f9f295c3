//! The real process: reads this machine's limits and clock, and logs to stderr.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
use nix::unistd::{sysconf, SysconfVar};

use super::{LocalTime, Procs, Signal, SystemInfo};

/// The process this code runs in.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealProcs;

impl Procs for RealProcs {
    /// Sets glibc's allocator for a worker: in the child of a fork, or in a server without a
    /// master once its app is imported. By default glibc hands free memory back to the kernel
    /// as soon as 128 KiB are free at the top of a heap: a worker reading 64 KiB uploads freed
    /// that much and faulted the same pages back in, one `madvise` every few requests. Kept up
    /// to 1 MiB, memory churned by requests is reused; blocks of 2 MiB and more still come from
    /// and go back to the kernel directly.
    ///
    /// The master keeps glibc's defaults, under which what the app's import allocates in
    /// blocks of 128 KiB and more is mapped by itself: CPython's table of interned strings
    /// (961 KB once Django is imported) is one. A worker that outgrows such a table (a Django
    /// worker does after a few thousand requests) unmaps the old one and its RSS grows by the
    /// difference; with these settings in the master the old table stayed in the heap, where
    /// its free pages still counted (+1.9 MB instead of +0.9 MB).
    fn tune_allocator(&self) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets the allocator's thresholds (under the allocator's own
        // lock); called before the worker's threads start.
        unsafe {
            nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 2 << 20);
            nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, 1 << 20);
        }
    }

    async fn stop_signal(&self) -> Signal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut quit), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            biased;
            _ = int.recv() => Signal::Int,
            _ = quit.recv() => Signal::Quit,
            _ = term.recv() => Signal::Term,
        }
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn system(&self) -> SystemInfo {
        let uname = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uname
                .as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let limit = |r| getrlimit(r).ok().map(|(soft, _)| soft);
        SystemInfo {
            nodename: field(|u| u.nodename()),
            os: format!(
                "{}-{} {}",
                field(|u| u.sysname()),
                field(|u| u.release()),
                field(|u| u.version())
            ),
            machine: field(|u| u.machine()),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            process_limit: limit(Resource::RLIMIT_NPROC).filter(|&n| n != RLIM_INFINITY),
            page_size: sysconf(SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .unwrap_or(4096) as u64,
            max_fds: limit(Resource::RLIMIT_NOFILE).unwrap_or(1024),
            somaxconn: std::fs::read_to_string("/proc/sys/net/core/somaxconn")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(4096),
            binary_path: std::env::current_exe().unwrap_or_default(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            is_root: nix::unistd::geteuid().is_root(),
        }
    }

    fn unix_time(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn local_time(&self, unix_time: u64) -> LocalTime {
        let t = unix_time as nix::libc::time_t;
        // SAFETY: localtime_r writes only into the tm we hand it.
        let tm = unsafe {
            let mut tm: nix::libc::tm = std::mem::zeroed();
            nix::libc::localtime_r(&t, &mut tm);
            tm
        };
        LocalTime {
            year: tm.tm_year + 1900,
            month: tm.tm_mon as u32 + 1,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            minute: tm.tm_min as u32,
            second: tm.tm_sec as u32,
            weekday: tm.tm_wday as u32,
        }
    }

    fn log(&self, line: &str) {
        let mut err = io::stderr().lock();
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        // A log that cannot be written (closed stderr) must not take the server down.
        let _ = err.write_all(&buf);
    }

    fn rss_bytes(&self) -> u64 {
        // statm's second field: resident pages.
        let pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .unwrap_or(0);
        pages
            * sysconf(SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .unwrap_or(4096) as u64
    }

    async fn run_cores<F, Fut>(&self, cores: usize, core: F)
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let core = std::sync::Arc::new(core);
        let mut finished = Vec::new();
        for index in 1..cores {
            let core = core.clone();
            let (done, finished_rx) = tokio::sync::oneshot::channel::<()>();
            finished.push(finished_rx);
            // Each core blocks its thread while the app runs, so each needs a thread (and an
            // event loop) of its own; Python lets one run at a time.
            let spawned = std::thread::Builder::new()
                .name(format!("core {index}"))
                .spawn(move || {
                    if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        runtime.block_on(core(index));
                    }
                    let _ = done.send(());
                });
            if let Err(e) = spawned {
                self.log(&format!("wsgilab: cannot start core {index}: {e}"));
            }
        }
        core(0).await;
        for rx in finished {
            let _ = rx.await;
        }
    }

    fn current_dir(&self) -> io::Result<PathBuf> {
        std::env::current_dir()
    }

    fn set_current_dir(&self, dir: &Path) -> io::Result<()> {
        std::env::set_current_dir(dir)
    }

    fn env_var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = std::fs::read_dir(path)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>();
        names.sort();
        Ok(names)
    }

    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
}
