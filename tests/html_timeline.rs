//! `wsgilab replay --html`: the page of a replay has one lane per worker and one bar per
//! request, escapes what the server logged, and — drawn by a real headless Chromium — is a
//! picture, not a blank page. Chromium comes from `tests/setup/install-chromium.sh`; without it
//! the picture test says SKIP, except under CI, where a missing browser is a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sim::scenario::html::render_html;
use sim::scenario::parse;
use sim::scenario::run::run_scenario;
use sim::scenario::states::ConnState;

fn scenario_text(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replays a scenario text and renders its page.
fn page_of(name: &str, text: &str) -> String {
    let scenario = parse(text, name).unwrap_or_else(|e| panic!("{e}"));
    let runs = run_scenario(&scenario, scenario.seed);
    render_html(name, &scenario, &runs)
}

/// Each run's section of the page.
fn sections(page: &str) -> Vec<&str> {
    page.split("<section class=\"run\"").skip(1).collect()
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn all_workers_busy_has_a_lane_per_worker_and_a_bar_per_request() {
    let page = page_of(
        "07-all-workers-busy",
        &scenario_text("07-all-workers-busy.toml"),
    );
    let runs = sections(&page);
    assert_eq!(runs.len(), 1);
    let run = runs[0];
    assert_eq!(
        count(run, "<g class=\"lane\""),
        2,
        "--processes 2: two lanes"
    );
    assert!(run.contains("data-worker=\"1\"") && run.contains("data-worker=\"2\""));
    assert_eq!(count(run, "<g class=\"req\""), 6, "six clients, six bars");
    assert_eq!(count(run, "data-outcome=\"200\""), 6);
    // Four of the six waited in the accept queue: their bars carry a queue segment.
    assert!(run.contains("queue wait: 1000.000 ms"), "{run}");
    // The request log line's `=>` is escaped, never raw.
    assert!(run.contains("GET / =&gt; generated"));
    assert!(!page.contains("=> generated"));
    // Self-contained: nothing to fetch. The cursor's script is inline, its data inert JSON.
    assert!(!page.contains("<script src") && !page.contains("<link"));
    assert_eq!(count(&page, "<script>"), 1, "one inline script");
    assert_eq!(
        count(&page, "<script type=\"application/json\" class=\"states\""),
        1
    );
    let links = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!links.contains("http://") && !links.contains("https://"));
}

#[test]
fn a_segfault_is_marked_and_hostile_text_is_escaped() {
    // Scenario 12, plus a client whose path is HTML: it reaches the table, the bar's title and
    // the server's log, and must stay text everywhere.
    let text = format!(
        "{}\n[[clients]]\nname = \"evil\"\nat_ms = 500\npath = \"/<b>x</b>?a=1&b='2'\"\n",
        scenario_text("12-worker-segfault.toml")
    );
    let page = page_of("12-worker-segfault", &text);
    let runs = sections(&page);
    assert_eq!(runs.len(), 1);
    let run = runs[0];
    assert_eq!(
        count(run, "<g class=\"lane\""),
        2,
        "the respawn reuses worker 1's lane"
    );
    assert!(
        run.contains("pid 1002 → 1004"),
        "worker 1's lane names both pids"
    );
    assert_eq!(count(run, "<g class=\"req\""), 5);
    assert_eq!(count(run, "data-outcome=\"no_response\""), 1);
    assert!(run.contains("class=\"fail\">no_response</text>"));
    assert!(run.contains("<g class=\"marker\" data-kind=\"killed\"><title>103.000 ms: pid 1002 killed by SIGSEGV</title>"));
    assert!(run.contains("data-kind=\"fork\""));
    assert!(!page.contains("<b>x</b>"), "raw HTML from a request path");
    assert!(page.contains("/&lt;b&gt;x&lt;/b&gt;?a=1&amp;b=&#39;2&#39;"));
    assert!(
        run.contains("DAMN ! worker 1 (pid: 1002) died, killed by signal 11 :( trying respawn ...")
    );
    // The same replay gives the same page, byte for byte.
    assert_eq!(page, page_of("12-worker-segfault", &text));
}

#[test]
fn without_a_master_the_lanes_are_the_processes() {
    let page = page_of(
        "03-runserver-versus-workers",
        &scenario_text("03-runserver-versus-workers.toml"),
    );
    let lanes: Vec<usize> = sections(&page)
        .iter()
        .map(|s| count(s, "<g class=\"lane\""))
        .collect();
    // One threaded process (no master's list), then 1 and 4 workers.
    assert_eq!(lanes, [1, 1, 4]);
    for section in sections(&page) {
        assert_eq!(count(section, "<g class=\"req\""), 16);
    }
    assert!(page.contains("up to 16 requests at once"));
}

// ---- the picture -------------------------------------------------------------------------

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

#[test]
fn chromium_draws_the_page() {
    let Some(chromium) = find_chromium() else {
        let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        assert!(
            !in_ci,
            "chromium is not installed: CI must run tests/setup/install-chromium.sh first"
        );
        // Straight to stderr: the test harness captures `println!` of a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "SKIP html_timeline::chromium_draws_the_page: chromium is not installed (bash tests/setup/install-chromium.sh)"
        );
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html_timeline");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let html = dir.join("07.html");
    let png_path = dir.join("07.png");
    let page = page_of(
        "07-all-workers-busy",
        &scenario_text("07-all-workers-busy.toml"),
    );
    std::fs::write(&html, page).expect("writing the page");

    let log = std::fs::File::create(dir.join("chromium.log")).expect("a log file");
    let mut child = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", png_path.display()))
        .arg("--window-size=1400,1000")
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
    // A browser that hangs must not hang the test suite.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took more than 120 s to take a screenshot");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let chromium_log = std::fs::read_to_string(dir.join("chromium.log")).unwrap_or_default();
    assert!(
        status.success() && png_path.exists(),
        "chromium failed ({status}):\n{chromium_log}"
    );

    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).expect("the screenshot"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a PNG's size")];
    let info = reader.next_frame(&mut buf).expect("the PNG's pixels");
    let (width, height) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    assert!(
        channels >= 3,
        "an RGB screenshot, not {:?}",
        info.color_type
    );
    assert_eq!((width, height), (1400, 1000));
    let pixels: Vec<[u8; 3]> = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let non_white = pixels.iter().filter(|p| **p != [255, 255, 255]).count();
    let mut distinct: Vec<[u8; 3]> = pixels.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let near = |rgb: [u8; 3]| {
        pixels
            .iter()
            .filter(|p| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 3))
            .count()
    };
    let busy = near([0xe8, 0x59, 0x0c]);
    let queue = near([0xfc, 0xc4, 0x19]);
    let app = near([0x84, 0x5e, 0xf7]);
    println!(
        "screenshot {}: {non_white} non-white pixels of {}, {} colours; busy {busy}, queue {queue}, app {app} pixels",
        png_path.display(),
        pixels.len(),
        distinct.len()
    );
    assert!(
        non_white > pixels.len() / 10,
        "the page looks blank: {non_white} non-white pixels"
    );
    assert!(
        distinct.len() > 50,
        "too few colours for a chart: {}",
        distinct.len()
    );
    // The chart itself was drawn: the workers' busy lanes, the queue waits and the app time.
    for (what, n) in [("busy lanes", busy), ("queue wait", queue), ("app", app)] {
        assert!(
            n > 2000,
            "hardly any {what} colour in the picture: {n} pixels"
        );
    }
}

// ---- the cursor, driven over the DevTools protocol ---------------------------------------

/// A headless Chromium spoken to over `--remote-debugging-pipe`: the protocol's JSON messages,
/// each ended by a NUL byte, written to its fd 3 and read from its fd 4 (bash maps those to
/// the child's stdin and stdout). No driver crate, no port, no network.
struct Browser {
    child: std::process::Child,
    to: std::process::ChildStdin,
    from: std::sync::mpsc::Receiver<serde_json::Value>,
    next_id: u64,
    session: Option<String>,
}

impl Browser {
    fn launch(chromium: &Path, profile: &Path, log: &Path) -> Browser {
        let log = std::fs::File::create(log).expect("a log file");
        let mut child = Command::new("bash")
            .arg("-c")
            .arg("exec 3<&0 4>&1; exec \"$0\" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --remote-debugging-pipe --user-data-dir=\"$1\" about:blank 0</dev/null 1>&2")
            .arg(chromium)
            .arg(profile)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
        let to = child.stdin.take().expect("the pipe to chromium");
        let mut out = child.stdout.take().expect("the pipe from chromium");
        let (tx, from) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let (mut buf, mut chunk) = (Vec::new(), [0u8; 65536]);
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|b| *b == 0) {
                    let message: Vec<u8> = buf.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice(&message[..end]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Browser {
            child,
            to,
            from,
            next_id: 0,
            session: None,
        }
    }

    /// Sends a command (to the attached page, once there is one) and waits for its result.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = serde_json::json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            message["sessionId"] = session.clone().into();
        }
        let mut bytes = serde_json::to_vec(&message).expect("json");
        bytes.push(0);
        self.to.write_all(&bytes).expect("writing to chromium");
        self.to.flush().expect("writing to chromium");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer from chromium to {method}"));
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", serde_json::json!({ "url": url }));
        let attached = self.call(
            "Target.attachToTarget",
            serde_json::json!({ "targetId": target["targetId"], "flatten": true }),
        );
        self.session = attached["sessionId"].as_str().map(str::to_string);
        self.call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({ "width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false }),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.eval("typeof window.wsgilabCursor") != "object" {
            assert!(
                Instant::now() < deadline,
                "the page's cursor never appeared"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let result = self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expression, "returnByValue": true }),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    fn key(&mut self, key: &str, code: u32) {
        for kind in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                serde_json::json!({ "type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code }),
            );
        }
    }

    fn click(&mut self, x: f64, y: f64) {
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                serde_json::json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }

    fn screenshot(&mut self, path: &Path) {
        let shot = self.call(
            "Page.captureScreenshot",
            serde_json::json!({ "format": "png" }),
        );
        let png = base64_decode(shot["data"].as_str().expect("base64 data"));
        std::fs::write(path, png).expect("writing the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let digits: Vec<u8> = text.bytes().filter(|c| *c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= u32::from(*d) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// Not blank: enough non-white pixels and colours for a chart with its panel.
fn assert_picture(path: &Path) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("the screenshot"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a PNG's size")];
    let info = reader.next_frame(&mut buf).expect("the PNG's pixels");
    let channels = info.color_type.samples();
    let pixels: Vec<[u8; 3]> = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let non_white = pixels.iter().filter(|p| **p != [255, 255, 255]).count();
    let mut distinct = pixels.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        non_white > pixels.len() / 10 && distinct.len() > 50,
        "{} looks blank: {non_white} non-white pixels, {} colours",
        path.display(),
        distinct.len()
    );
}

fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let found = find_chromium();
    if found.is_none() {
        let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        assert!(
            !in_ci,
            "chromium is not installed: CI must run tests/setup/install-chromium.sh first"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIP html_timeline::{test}: chromium is not installed (bash tests/setup/install-chromium.sh)"
        );
    }
    found
}

/// What the page shows at its cursor, read from the panel of run 1.
const SHOWN: &str = r#"(() => {
  const p = document.querySelector('.state[data-run="1"]');
  const l = p.querySelector('.listener');
  const row = p.querySelector('tr[data-client="client#16"]');
  return {
    cursor: Number(document.body.getAttribute('data-cursor')),
    queue: Number(l.getAttribute('data-queue-len')),
    half_open: Number(l.getAttribute('data-half-open')),
    dropped: Number(l.getAttribute('data-syns-dropped')),
    board: p.querySelector('.board').getAttribute('data-board'),
    client16: row ? [row.getAttribute('data-state'), row.getAttribute('data-view')] : null,
  };
})()"#;

#[test]
fn the_cursor_shows_the_state_rust_derived() {
    let Some(chromium) = chromium_or_skip("the_cursor_shows_the_state_rust_derived") else {
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html_cursor");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let name = "08-accept-queue-full";
    let scenario = parse(&scenario_text("08-accept-queue-full.toml"), name).expect("parses");
    let runs = run_scenario(&scenario, scenario.seed);
    let html = dir.join("08.html");
    std::fs::write(&html, render_html(name, &scenario, &runs)).expect("writing the page");
    let states = sim::scenario::states::derive_states(&runs[0]);
    let client16 = runs[0]
        .requests
        .iter()
        .find(|r| r.client == "client#16")
        .and_then(|r| r.conn.clone())
        .expect("client#16's connection");
    // What Rust says the page must show at `t`.
    let expected = |t: u64| {
        let s = states.at(t);
        let (queue, half, dropped) = &s.queues[0];
        serde_json::json!({
            "cursor": t,
            "queue": queue.len(),
            "half_open": half.len(),
            "dropped": dropped,
            "board": format!("[{}]", s.boards[0].join(", ")),
            // The panel lists the connections still open (closed ones are counted).
            "client16": s.conns.get(&client16).filter(|(state, _)| *state != ConnState::Closed)
                .map(|(state, view)| serde_json::json!([state, view])),
        })
    };

    let mut browser = Browser::launch(&chromium, &dir.join("profile"), &dir.join("chromium.log"));
    browser.open(&format!("file://{}#t=1120000", html.display()));
    // Opened at 1.12 s by its URL: five queued, seven half-open, nine SYNs dropped, both
    // workers busy, client 16 half-open and waiting for its response.
    let shown = browser.eval(SHOWN);
    assert_eq!(shown, expected(1_120_000));
    assert_eq!(shown["queue"], 5);
    assert_eq!(shown["half_open"], 7);
    assert_eq!(shown["board"], "[busy, busy]");
    assert_eq!(
        shown["client16"],
        serde_json::json!(["half_open", "waiting for the response"])
    );
    let shot1 = dir.join("cursor-1120ms.png");
    browser.screenshot(&shot1);
    assert_picture(&shot1);
    // Other moments, set by the page's own cursor function.
    for t in [
        0, 107_000, 1_100_000, 2_784_000, 4_416_000, 7_680_000, 8_680_000,
    ] {
        browser.eval(&format!("wsgilabCursor.set({t})"));
        assert_eq!(browser.eval(SHOWN), expected(t), "at {t} µs");
    }
    // Keys: → and ← step through events, Page Down / Up through request boundaries.
    browser.eval("wsgilabCursor.set(1120000)");
    let next_event = *states
        .times
        .iter()
        .find(|t| **t > 1_120_000)
        .expect("a later event");
    browser.key("ArrowRight", 39);
    assert_eq!(browser.eval(SHOWN), expected(next_event), "→");
    browser.key("ArrowLeft", 37);
    assert_eq!(browser.eval(SHOWN), expected(1_120_000), "←");
    let next_boundary = *states
        .boundaries
        .iter()
        .find(|t| **t > 1_120_000)
        .expect("a later boundary");
    browser.key("PageDown", 34);
    assert_eq!(browser.eval(SHOWN), expected(next_boundary), "Page Down");
    browser.key("PageUp", 33);
    let previous = *states
        .boundaries
        .iter()
        .rev()
        .find(|t| **t < next_boundary)
        .expect("an earlier boundary");
    assert_eq!(browser.eval(SHOWN), expected(previous), "Page Up");
    // A click on client 16's bar selects it (bar, lane, phases, events) and moves the cursor.
    let i = runs[0]
        .requests
        .iter()
        .position(|r| r.client == "client#16")
        .expect("client#16");
    let rect = browser.eval(&format!(
        "(() => {{ const g = document.querySelector('#run-1 g.req[data-request=\"{}\"] rect'); g.scrollIntoView({{block: 'center'}}); const r = g.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()",
        i + 1
    ));
    browser.click(rect[0].as_f64().expect("x"), rect[1].as_f64().expect("y"));
    let selected = browser.eval(
        "(() => { const d = document.querySelector('#run-1 .detail'); return [d.hidden, d.getAttribute('data-request'), document.querySelectorAll('#run-1 g.req.sel').length, document.querySelectorAll('#run-1 g.lane.sel').length, d.textContent]; })()",
    );
    assert_eq!(selected[0], false, "the request's details are shown");
    assert_eq!(selected[1], (i + 1).to_string());
    assert_eq!(selected[2], 1, "its bar is highlighted");
    assert_eq!(selected[3], 1, "its worker's lane is highlighted");
    let detail = selected[4].as_str().unwrap_or_default();
    assert!(
        detail.contains("half-open (ACK dropped)") && detail.contains("ack_dropped"),
        "{detail}"
    );
    let cursor = browser.eval(SHOWN)["cursor"].as_u64().expect("a cursor");
    assert_eq!(browser.eval(SHOWN), expected(cursor), "after the click");
    let shot2 = dir.join("cursor-selected.png");
    browser.screenshot(&shot2);
    assert_picture(&shot2);
    println!("screenshots: {} {}", shot1.display(), shot2.display());
}

/// Measures (asserts nothing about speed) how long the page takes to show the state at a
/// cursor: `CURSOR_TIMING_PAGE=page.html cargo test --test html_timeline -- --ignored
/// cursor_timing --nocapture`, for example on a 10,000-request replay.
#[test]
#[ignore = "a measurement: needs CURSOR_TIMING_PAGE"]
fn cursor_timing() {
    let Some(page) = std::env::var_os("CURSOR_TIMING_PAGE") else {
        panic!("CURSOR_TIMING_PAGE=page.html is needed");
    };
    let Some(chromium) = chromium_or_skip("cursor_timing") else {
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html_cursor_timing");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let page = std::fs::canonicalize(page).expect("the page");
    let mut browser = Browser::launch(&chromium, &dir.join("profile"), &dir.join("chromium.log"));
    let started = Instant::now();
    browser.open(&format!("file://{}", page.display()));
    println!("page loaded and cursor ready in {:?}", started.elapsed());
    // Each set() rebuilds the panels; the layout it causes is forced too, inside the timing.
    let times = browser.eval(
        "(() => { const end = Number(document.querySelector('#cursorbar input').max); const out = []; \
         for (let i = 1; i <= 40; i++) { const t0 = performance.now(); wsgilabCursor.set(Math.round(end * i / 41)); \
         document.body.offsetHeight; out.push(performance.now() - t0); } return out; })()",
    );
    let mut ms: Vec<f64> = times
        .as_array()
        .expect("timings")
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "state at the cursor, 40 positions: median {:.2} ms, max {:.2} ms",
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
    browser.eval(
        "wsgilabCursor.set(Math.round(Number(document.querySelector('#cursorbar input').max) / 2))",
    );
    let t0 = Instant::now();
    browser.key("ArrowRight", 39);
    println!(
        "→ (a key press over the protocol, round trip): {:?}",
        t0.elapsed()
    );
}
