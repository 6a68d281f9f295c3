//! wsgilab behind a real nginx, as in production: `uwsgi_pass` to `--socket` and `proxy_pass`
//! to `--http-socket`, both serving a real Django project, and what nginx passes (REMOTE_ADDR,
//! HTTPS, X-Forwarded-*) landing in the environ.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{apps_dir, Server};
use serde_json::Value;

/// A running nginx with a generated configuration; stopped when dropped.
struct Nginx {
    child: Child,
    prefix: std::path::PathBuf,
}

impl Nginx {
    fn start(servers: &str) -> Nginx {
        let nginx = common::nginx();
        let prefix = common::temp_dir("nginx");
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        let conf = format!(
            "worker_processes 1;\nerror_log {p}/logs/error.log warn;\npid {p}/nginx.pid;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log {p}/logs/access.log;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  uwsgi_temp_path {p}/uwsgi;\n  fastcgi_temp_path {p}/fastcgi;\n  scgi_temp_path {p}/scgi;\n{servers}\n}}\n",
            p = prefix.display()
        );
        std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx)
            .args(["-p"])
            .arg(&prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        Nginx { child, prefix }
    }

    fn wait_port(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {port}: {}",
                std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(port: u16, path: &str, host: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn server_block(port: u16, location: &str) -> String {
    format!("  server {{\n    listen 127.0.0.1:{port};\n    server_name shop.example;\n    location / {{\n{location}\n    }}\n  }}\n")
}

fn uwsgi_pass(upstream: u16) -> String {
    format!("      include /etc/nginx/uwsgi_params;\n      uwsgi_param HTTPS on;\n      uwsgi_pass 127.0.0.1:{upstream};")
}

fn proxy_pass(upstream: u16) -> String {
    format!(
        "      proxy_pass http://127.0.0.1:{upstream};\n      proxy_set_header Host $host;\n      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      proxy_set_header X-Forwarded-Proto https;"
    )
}

fn django(socket_flag: &str, project: &Path, venv: &Path) -> Server {
    Server::start_with(
        project,
        socket_flag,
        &[
            "--module",
            "mysite.wsgi",
            "--virtualenv",
            venv.to_str().unwrap(),
        ],
    )
}

#[test]
fn django_through_uwsgi_pass_and_proxy_pass() {
    let venv = common::django_venv();
    let project = common::django_project(&common::temp_dir("nginx-django"));
    let via_uwsgi = django("--socket", &project, &venv);
    let via_http = django("--http-socket", &project, &venv);
    let (front_uwsgi, front_http) = (common::free_port(), common::free_port());
    let nginx = Nginx::start(&format!(
        "{}{}",
        server_block(front_uwsgi, &uwsgi_pass(via_uwsgi.port)),
        server_block(front_http, &proxy_pass(via_http.port))
    ));
    nginx.wait_port(front_uwsgi);
    nginx.wait_port(front_http);
    for (port, server) in [(front_uwsgi, &via_uwsgi), (front_http, &via_http)] {
        let (status, body) = get(port, "/", "127.0.0.1");
        assert_eq!(status, 200, "{body}\n{}", server.log());
        assert!(body.contains("The install worked successfully"), "{body}");
    }
    // Both wsgilab logs show the request, with nginx's client address.
    via_uwsgi.wait_for_log("GET / => generated");
    via_http.wait_for_log("GET / => generated");
}

#[test]
fn what_nginx_passes_lands_in_the_environ() {
    let via_uwsgi = Server::start_with(&apps_dir(), "--socket", &["--wsgi-file", "testapp.py"]);
    let via_http = Server::start_with(&apps_dir(), "--http-socket", &["--wsgi-file", "testapp.py"]);
    let (front_uwsgi, front_http) = (common::free_port(), common::free_port());
    let nginx = Nginx::start(&format!(
        "{}{}",
        server_block(front_uwsgi, &uwsgi_pass(via_uwsgi.port)),
        server_block(front_http, &proxy_pass(via_http.port))
    ));
    nginx.wait_port(front_uwsgi);
    nginx.wait_port(front_http);

    let (status, body) = get(front_uwsgi, "/echo/a%20b?x=1", "shop.example");
    assert_eq!(status, 200, "{body}\n{}", via_uwsgi.log());
    let env: Value = serde_json::from_str(&body).unwrap();
    let env = &env["environ"];
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["HTTPS"], "on");
    assert_eq!(env["wsgi.url_scheme"], "https");
    assert_eq!(env["PATH_INFO"], "/echo/a b");
    assert_eq!(env["QUERY_STRING"], "x=1");
    assert_eq!(env["SERVER_NAME"], "shop.example");
    assert_eq!(env["SERVER_PORT"], front_uwsgi.to_string());
    assert_eq!(env["HTTP_HOST"], "shop.example");

    let (status, body) = get(front_http, "/echo/p?y=2", "shop.example");
    assert_eq!(status, 200, "{body}\n{}", via_http.log());
    let env: Value = serde_json::from_str(&body).unwrap();
    let env = &env["environ"];
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1");
    assert_eq!(env["HTTP_X_FORWARDED_PROTO"], "https");
    assert_eq!(env["HTTP_HOST"], "shop.example");
    assert_eq!(env["PATH_INFO"], "/echo/p");
    // Over proxy_pass the app sees nginx as its peer; the client is in X-Forwarded-For.
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["wsgi.url_scheme"], "http");
}
