// The time cursor of the replay page (html.rs includes it inline): it reads each run's JSON
// (states.rs's change lists, the events, the requests' bars) and only displays it — a slider,
// clicks on the chart, arrow keys, Page Up/Down, play/pause, the state panel, a request's details.
(function () {
  "use strict";
  var runs = [];
  document.querySelectorAll("script.states").forEach(function (el) {
    var data = JSON.parse(el.textContent);
    var section = document.getElementById("run-" + data.run);
    if (data && section) runs.push({ data: data, section: section });
  });
  if (!runs.length) return;

  var css = document.createElement("style");
  css.textContent =
    "body { max-width: none; }" +
    ".cursorbar { position: sticky; top: 0; z-index: 5; background: #f8f9fa; border: 1px solid #dee2e6;" +
    " padding: 4px 8px; margin: 8px 0; font-size: 13px; display: flex; gap: 10px; align-items: center; }" +
    ".cursorbar input[type=range] { flex: 1; }" +
    ".cursorbar .now { font-variant-numeric: tabular-nums; min-width: 110px; font-weight: bold; }" +
    ".withstate { display: flex; gap: 12px; align-items: flex-start; }" +
    ".state { font-size: 12px; width: 440px; flex: none; border: 1px solid #dee2e6; padding: 4px 8px;" +
    " max-height: 900px; overflow: auto; background: #fff; }" +
    ".state h4 { font-size: 13px; margin: 6px 0 2px; }" +
    ".state table { border-collapse: collapse; } .state td { padding: 0 5px 0 0; vertical-align: top; }" +
    ".state .q span { display: inline-block; background: #fcc419; margin: 1px; padding: 0 3px; }" +
    ".state .h span { display: inline-block; background: #ffa8a8; margin: 1px; padding: 0 3px; }" +
    ".state pre { font-size: 11px; margin: 0; white-space: pre-wrap; max-height: 220px; overflow: auto; }" +
    ".detail { font-size: 12px; border: 1px solid #845ef7; padding: 4px 8px; margin: 4px 0; }" +
    ".detail pre { font-size: 11px; margin: 0; white-space: pre-wrap; max-height: 300px; overflow: auto; }" +
    "svg.chart g.req.sel rect { stroke: #000; stroke-width: 1.5; }" +
    "svg.chart g.lane.sel rect { stroke: #000; stroke-width: 2; }" +
    "svg.chart { cursor: crosshair; }";
  document.head.appendChild(css);

  function ms(us) { return (us / 1000).toFixed(3) + " ms"; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // The value of a change list [[step, value], ...] after `step` (undefined before it).
  function at(series, step) {
    var lo = 0, hi = series.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (series[mid][0] <= step) lo = mid + 1; else hi = mid; }
    return lo ? series[lo - 1][1] : undefined;
  }
  // The last index of sorted `arr` whose value is <= t (-1 if none).
  function upto(arr, t, key) {
    var lo = 0, hi = arr.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if ((key ? key(arr[mid]) : arr[mid]) <= t) lo = mid + 1; else hi = mid; }
    return lo - 1;
  }
  // A list kept as changes and checkpoints (states.rs's ListLog) after `step`.
  function listAt(log, step) {
    var n = upto(log.ops, step, function (o) { return o[0]; }) + 1;
    var c = upto(log.checkpoints, n, function (k) { return k[0]; });
    if (c < 0) return [];
    var list = log.checkpoints[c][1].slice();
    for (var i = log.checkpoints[c][0]; i < n; i++) {
      var op = log.ops[i];
      if (op[2]) list.push(op[1]); else list.splice(list.indexOf(op[1]), 1);
    }
    return list;
  }
  function merged(name) {
    var all = [];
    runs.forEach(function (r) { all = all.concat(r.data[name]); });
    all.sort(function (a, b) { return a - b; });
    return all.filter(function (t, i) { return i === 0 || t !== all[i - 1]; });
  }
  var times = merged("times"), bounds = merged("boundaries");
  var end = Math.max.apply(null, runs.map(function (r) { return r.data.end_us; }));

  // The bar above the first run: slider, time, play/pause, speed.
  var bar = el("div", "cursorbar");
  bar.id = "cursorbar";
  var play = el("button", "", "▶ play");
  var speed = el("select");
  [["0.1", "0.1×"], ["0.5", "0.5×"], ["1", "1× (virtual time)"], ["2", "2×"], ["10", "10×"]].forEach(function (o) {
    var opt = el("option", "", o[1]); opt.value = o[0]; if (o[0] === "1") opt.selected = true; speed.appendChild(opt);
  });
  var slider = el("input");
  slider.type = "range"; slider.min = 0; slider.max = end; slider.step = 1000; slider.value = 0;
  var now = el("span", "now", "0.000 ms");
  bar.appendChild(el("b", "", "cursor"));
  bar.appendChild(now); bar.appendChild(slider); bar.appendChild(play); bar.appendChild(speed);
  bar.appendChild(el("span", "", "← → event · PgUp PgDn request · click the chart"));
  var first = runs[0].section;
  first.parentNode.insertBefore(bar, first);

  // Beside each chart: its state panel; over it: the cursor line.
  runs.forEach(function (r) {
    var svg = r.section.querySelector("svg.chart");
    var wrap = el("div", "withstate");
    svg.parentNode.insertBefore(wrap, svg);
    wrap.appendChild(svg);
    r.panel = el("div", "state");
    r.panel.setAttribute("data-run", r.data.run);
    wrap.appendChild(r.panel);
    r.detail = el("div", "detail");
    r.detail.hidden = true;
    wrap.parentNode.insertBefore(r.detail, wrap.nextSibling);
    var line = document.createElementNS(svg.namespaceURI, "line");
    line.setAttribute("class", "cursor");
    line.setAttribute("y1", 0); line.setAttribute("y2", svg.getAttribute("height"));
    line.setAttribute("stroke", "#d6336c"); line.setAttribute("stroke-width", "2");
    line.setAttribute("pointer-events", "none");
    svg.appendChild(line);
    r.line = line; r.svg = svg;
    svg.addEventListener("click", function (ev) {
      var box = svg.getBoundingClientRect();
      var x = (ev.clientX - box.left) * (svg.viewBox.baseVal.width / box.width);
      var t = (x - r.data.x0) / (r.data.x1 - r.data.x0) * r.data.end_us;
      var g = ev.target.closest ? ev.target.closest("g.req") : null;
      if (g) select(r, parseInt(g.getAttribute("data-request"), 10) - 1);
      if (t >= 0) setCursor(Math.round(Math.min(t, end)));
    });
  });

  function select(r, i) {
    r.svg.querySelectorAll(".sel").forEach(function (g) { g.classList.remove("sel"); });
    var req = r.data.requests[i];
    if (!req) return;
    var g = r.svg.querySelector('g.req[data-request="' + (i + 1) + '"]');
    if (g) g.classList.add("sel");
    if (req.lane) {
      var lane = r.svg.querySelector('g.lane[data-host="' + req.lane[0] + '"][data-worker="' + req.lane[1] + '"]');
      if (lane) lane.classList.add("sel");
    }
    var d = r.detail;
    d.textContent = "";
    d.hidden = false;
    d.setAttribute("data-request", i + 1);
    d.appendChild(el("b", "", "request " + (i + 1) + ": " + req.label + " — " + req.outcome));
    var t = el("table");
    req.spans.forEach(function (s) {
      var tr = el("tr");
      tr.appendChild(el("td", "", s[0])); tr.appendChild(el("td", "", ms(s[2] - s[1])));
      tr.appendChild(el("td", "", ms(s[1]) + " → " + ms(s[2])));
      t.appendChild(tr);
    });
    d.appendChild(t);
    var evs = r.data.request_events[i] || [];
    d.appendChild(el("div", "", evs.length + " trace events:"));
    d.appendChild(el("pre", "", evs.map(function (k) {
      var e = r.data.events[k]; return ms(e[0]) + "  " + e[1] + "  " + e[3];
    }).join("\n")));
  }

  var cursor = 0;
  function show(r) {
    var d = r.data, step = upto(d.times, cursor), p = r.panel;
    p.textContent = "";
    var head = el("div", "", (d.variant ? d.variant + " · " : "") + "at " + ms(cursor));
    head.style.fontWeight = "bold";
    p.appendChild(head);
    p.appendChild(el("h4", "", "listening sockets"));
    if (!d.listeners.length) p.appendChild(el("div", "", "(none)"));
    d.listeners.forEach(function (l, li) {
      var q = listAt(l.queue, step), h = listAt(l.half_open, step), drop = at(l.syns_dropped, step) || 0;
      var box = el("div", "listener");
      box.setAttribute("data-listener", li);
      box.setAttribute("data-queue-len", q.length);
      box.setAttribute("data-half-open", h.length);
      box.setAttribute("data-syns-dropped", drop);
      box.appendChild(el("div", "", l.host + " " + l.addr + ": accept queue " + q.length + "/" + l.limit +
        ", half-open " + h.length + ", SYNs dropped so far " + drop));
      var qd = el("div", "q", q.length ? "queue: " : "queue: empty");
      q.forEach(function (c) { qd.appendChild(el("span", "", d.conns[c].client || d.conns[c].addr)); });
      box.appendChild(qd);
      if (h.length) {
        var hd = el("div", "h", "half-open: ");
        h.forEach(function (c) { hd.appendChild(el("span", "", d.conns[c].client || d.conns[c].addr)); });
        box.appendChild(hd);
      }
      p.appendChild(box);
    });
    p.appendChild(el("h4", "", "the master's worker list"));
    d.boards.forEach(function (b) {
      var list = at(b.list, step);
      var div = el("div", "board", b.host + ": [" + (list || []).join(", ") + "]");
      div.setAttribute("data-board", "[" + (list || []).join(", ") + "]");
      p.appendChild(div);
    });
    if (!d.boards.length) p.appendChild(el("div", "", "(no master)"));
    var wt = el("table", "workers");
    d.workers.forEach(function (w) {
      var pid = at(w.pid, step);
      if (pid === undefined) return;
      var req = at(w.request, step), cores = at(w.cores, step);
      var tr = el("tr");
      tr.setAttribute("data-worker", w.slot);
      tr.appendChild(el("td", "", w.host + " worker " + w.slot));
      tr.appendChild(el("td", "", "pid " + pid));
      tr.appendChild(el("td", "", (cores === undefined ? "" : "cores " + cores)));
      tr.appendChild(el("td", "", req === undefined || req === null ? "no request" : "request " + (req + 1) + " " + d.requests[req].label));
      wt.appendChild(tr);
    });
    p.appendChild(wt);
    // Connections: those that exist at the cursor (and the ones that just closed).
    var rows = [], closed = 0;
    for (var c = 0; c < d.conns.length; c++) {
      var conn = d.conns[c];
      if (!conn.state.length || conn.state[0][0] > step) continue;
      var s = at(conn.state, step);
      if (s === "closed") { closed++; continue; }
      rows.push(c);
    }
    p.appendChild(el("h4", "", "connections: " + rows.length + " open, " + closed + " closed"));
    var ct = el("table", "conns");
    rows.slice(0, 80).forEach(function (c) {
      var conn = d.conns[c], s = at(conn.state, step), v = at(conn.view, step) || "";
      var tr = el("tr");
      tr.setAttribute("data-conn", conn.addr);
      tr.setAttribute("data-client", conn.client);
      tr.setAttribute("data-state", s);
      tr.setAttribute("data-view", v);
      tr.appendChild(el("td", "", conn.client || conn.addr));
      tr.appendChild(el("td", "", s.replace(/_/g, " ")));
      tr.appendChild(el("td", "", "client: " + v));
      ct.appendChild(tr);
    });
    p.appendChild(ct);
    if (rows.length > 80) p.appendChild(el("div", "", "… and " + (rows.length - 80) + " more"));
    var n = upto(d.log, step, function (k) { return d.event_step[k]; }) + 1;
    p.appendChild(el("h4", "", "log: " + n + " lines so far"));
    var lines = [];
    for (var i = Math.max(0, n - 30); i < n; i++) { var e = d.events[d.log[i]]; lines.push(ms(e[0]) + "  " + e[3]); }
    var pre = el("pre", "log", lines.join("\n"));
    p.appendChild(pre);
    pre.scrollTop = pre.scrollHeight;
    var x = d.x0 + (d.x1 - d.x0) * Math.min(cursor, d.end_us) / Math.max(1, d.end_us);
    r.line.setAttribute("x1", x); r.line.setAttribute("x2", x);
  }

  function setCursor(t) {
    cursor = Math.max(0, Math.min(end, t));
    now.textContent = ms(cursor);
    slider.value = cursor;
    runs.forEach(show);
    document.body.setAttribute("data-cursor", cursor);
    return cursor;
  }
  function stepTo(list, dir) {
    var i = upto(list, cursor);
    if (dir > 0) { i = i + 1; while (i < list.length && list[i] <= cursor) i++; }
    else { while (i >= 0 && list[i] >= cursor) i--; }
    if (i >= 0 && i < list.length) setCursor(list[i]);
  }
  slider.addEventListener("input", function () { setCursor(parseInt(slider.value, 10)); });
  document.addEventListener("keydown", function (ev) {
    if (ev.target && (ev.target.tagName === "SELECT")) return;
    var k = ev.key;
    if (k === "ArrowRight") stepTo(times, 1);
    else if (k === "ArrowLeft") stepTo(times, -1);
    else if (k === "PageDown") stepTo(bounds, 1);
    else if (k === "PageUp") stepTo(bounds, -1);
    else return;
    ev.preventDefault();
  });
  var playing = null;
  play.addEventListener("click", function () {
    if (playing) { cancelAnimationFrame(playing); playing = null; play.textContent = "▶ play"; return; }
    if (cursor >= end) setCursor(0);
    play.textContent = "❚❚ pause";
    var last = null;
    function frame(ts) {
      if (last !== null) setCursor(cursor + (ts - last) * 1000 * parseFloat(speed.value));
      last = ts;
      if (cursor >= end) { playing = null; play.textContent = "▶ play"; return; }
      playing = requestAnimationFrame(frame);
    }
    playing = requestAnimationFrame(frame);
  });
  // For a reader (and a test): `#t=1120000` (µs) opens the page at that moment.
  window.wsgilabCursor = { set: setCursor, get: function () { return cursor; }, select: function (run, i) { select(runs[run], i); } };
  var m = /t=(\d+)/.exec(location.hash);
  setCursor(m ? parseInt(m[1], 10) : 0);
})();
