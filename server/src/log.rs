//! uWSGI's log lines: the start-up banner and the per-request line, formatted from facts read
//! through the process seam, never hard-coded. wsgilab's own additions start with `wsgilab:` or
//! `hint:` so a reader can tell them from what uWSGI would print.

pub mod lines;

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
        // uWSGI prints `uWSGI running as root, you can use --uid/--gid/--chroot options` and
        // `(use the --uid flag)`; wsgilab has none of those flags, so it says what works.
        lines.push("*** WARNING: you are running wsgilab as root !!! ***".into());
        lines.push("wsgilab: it cannot drop privileges itself (no --uid/--gid/--chroot): start it as the user it should run as, e.g. systemd's User= or runuser -u www-data -- wsgilab serve ...".into());
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
    pub remote_addr: &'a str,
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
    /// The line, built by hand rather than with `format!`: it is written for every request,
    /// and the formatting machinery cost several times what the pushes below do.
    pub fn line(&self) -> String {
        let mut out = String::with_capacity(
            200 + self.remote_addr.len() + self.ctime.len() + self.method.len() + self.uri.len(),
        );
        out.push_str("[pid: ");
        push_number(&mut out, u128::from(self.pid));
        match self.app_requests {
            Some(n) => {
                out.push_str("|app: 0|req: ");
                push_number(&mut out, u128::from(n));
            }
            None => out.push_str("|app: -1|req: -1"),
        }
        out.push('/');
        push_number(&mut out, u128::from(self.total_requests));
        out.push_str("] ");
        out.push_str(self.remote_addr);
        out.push_str(" () {");
        push_number(&mut out, self.vars as u128);
        out.push_str(" vars in ");
        push_number(&mut out, self.vars_bytes as u128);
        out.push_str(" bytes} [");
        out.push_str(&self.ctime);
        out.push_str("] ");
        out.push_str(self.method);
        out.push(' ');
        out.push_str(self.uri);
        out.push_str(" => generated ");
        push_number(&mut out, u128::from(self.body_bytes));
        out.push_str(" bytes in ");
        push_number(&mut out, self.msecs);
        out.push_str(" msecs (");
        out.push_str(self.protocol);
        out.push(' ');
        push_number(&mut out, u128::from(self.status));
        out.push_str(") ");
        push_number(&mut out, self.headers as u128);
        out.push_str(" headers in ");
        push_number(&mut out, self.header_bytes as u128);
        out.push_str(" bytes (");
        push_number(&mut out, u128::from(self.switches));
        out.push_str(" switches on core ");
        push_number(&mut out, self.core as u128);
        out.push(')');
        out
    }
}

/// Appends `n` in decimal, as `{}` would.
fn push_number(out: &mut String, n: u128) {
    if let Ok(mut n) = u64::try_from(n) {
        // Every number in practice: u64 division is far cheaper than u128's.
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.extend(digits[start..].iter().map(|&d| d as char));
    } else {
        out.push_str(&n.to_string());
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
            remote_addr: "127.0.0.1",
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

    #[test]
    fn numbers_are_written_as_format_writes_them() {
        for n in [
            0u128,
            7,
            10,
            99,
            100,
            12068,
            u64::MAX as u128,
            u64::MAX as u128 + 1,
            u128::MAX,
        ] {
            let mut out = String::new();
            push_number(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }
}
