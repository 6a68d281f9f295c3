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
