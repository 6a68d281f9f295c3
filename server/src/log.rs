//! uWSGI's log lines: the start-up banner and the per-request line, formatted from facts read
//! through the process seam, never hard-coded. wsgilab's own additions start with `wsgilab:` or
//! `hint:` so a reader can tell them from what uWSGI would print.

use crate::procs::{Procs, SystemInfo};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The banner's opening lines, up to the sockets.
pub fn banner_head(procs: &impl Procs, system: &SystemInfo, cwd: &str) -> Vec<String> {
    let mut lines = vec![
        format!(
            "*** Starting wsgilab {VERSION} (64bit) on [{}] ***",
            procs.now_ctime()
        ),
        format!("compiled with version: {}", env!("WSGILAB_RUSTC_VERSION")),
        format!("os: {}", system.os),
        format!("nodename: {}", system.nodename),
        format!("machine: {}", system.machine),
        "clock source: unix".to_string(),
        format!("detected number of CPU cores: {}", system.cores),
        format!("current working directory: {cwd}"),
        format!("detected binary path: {}", system.binary_path.display()),
    ];
    if system.is_root {
        lines.push("uWSGI running as root, you can use --uid/--gid/--chroot options".into());
        lines
            .push("*** WARNING: you are running uWSGI as root !!! (use the --uid flag) ***".into());
    }
    match system.process_limit {
        Some(n) => lines.push(format!("your processes number limit is {n}")),
        None => lines.push("your processes number limit is unlimited".into()),
    }
    lines.push(format!(
        "your memory page size is {} bytes",
        system.page_size
    ));
    lines.push(format!(
        "detected max file descriptor number: {}",
        system.max_fds
    ));
    lines
}

/// One finished request, as uWSGI logs it.
#[derive(Clone, Debug, Default)]
pub struct RequestLog<'a> {
    pub pid: u32,
    /// `None` when no app is loaded (uWSGI prints `app: -1|req: -1/N`).
    pub app_requests: Option<u64>,
    pub total_requests: u64,
    pub remote_addr: String,
    pub vars: usize,
    pub vars_bytes: usize,
    pub ctime: String,
    pub method: &'a str,
    pub uri: &'a str,
    pub body_bytes: u64,
    pub msecs: u128,
    pub protocol: &'a str,
    pub status: u16,
    pub headers: usize,
    pub header_bytes: usize,
    pub switches: u64,
    pub core: usize,
}

impl RequestLog<'_> {
    pub fn line(&self) -> String {
        let (app, req) = match self.app_requests {
            Some(n) => ("0", n.to_string()),
            None => ("-1", "-1".to_string()),
        };
        format!(
            "[pid: {}|app: {app}|req: {req}/{}] {} () {{{} vars in {} bytes}} [{}] {} {} => generated {} bytes in {} msecs ({} {}) {} headers in {} bytes ({} switches on core {})",
            self.pid,
            self.total_requests,
            self.remote_addr,
            self.vars,
            self.vars_bytes,
            self.ctime,
            self.method,
            self.uri,
            self.body_bytes,
            self.msecs,
            self.protocol,
            self.status,
            self.headers,
            self.header_bytes,
            self.switches,
            self.core,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_line_matches_uwsgi_format() {
        let log = RequestLog {
            pid: 20360,
            app_requests: Some(1),
            total_requests: 1,
            remote_addr: "127.0.0.1".into(),
            vars: 24,
            vars_bytes: 244,
            ctime: "Tue Nov 24 00:36:20 2026".into(),
            method: "GET",
            uri: "/",
            body_bytes: 12068,
            msecs: 11,
            protocol: "HTTP/1.1",
            status: 200,
            headers: 6,
            header_bytes: 209,
            switches: 1,
            core: 0,
        };
        assert_eq!(
            log.line(),
            "[pid: 20360|app: 0|req: 1/1] 127.0.0.1 () {24 vars in 244 bytes} [Tue Nov 24 00:36:20 2026] GET / => generated 12068 bytes in 11 msecs (HTTP/1.1 200) 6 headers in 209 bytes (1 switches on core 0)"
        );
        let no_app = RequestLog {
            app_requests: None,
            ..log
        };
        assert!(no_app.line().starts_with("[pid: 20360|app: -1|req: -1/1] "));
    }
}
