// The console's script: polls the stats once a second, draws them, and sends
// requests from the form. Everything it shows goes in as text (textContent),
// never as markup: resource names and replies are chosen by clients.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const HISTORY_SECONDS = 300;
  const POLL_MS = 1000;
  const state = { server: null, since: null, points: [], token: "" };

  // --- formatting ------------------------------------------------------------

  function set(id, value) {
    $(id).textContent = value;
  }

  function count(n) {
    return n === null || n === undefined ? "–" : String(n);
  }

  function rate(n) {
    if (n === null || n === undefined) return "–";
    return n < 10 ? n.toFixed(1) : String(Math.round(n));
  }

  function seconds(s) {
    if (s === null || s === undefined) return "–";
    if (s < 0.001) return (s * 1e6).toFixed(0) + " µs";
    if (s < 1) return (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + " ms";
    return s.toFixed(2) + " s";
  }

  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
  }

  function duration(s) {
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
    const m = Math.floor(s / 60) % 60, sec = Math.floor(s) % 60;
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + m + " min";
    if (m) return m + " min " + sec + " s";
    return sec + " s";
  }

  // Rows of plain text cells; `numeric` right-aligns the columns after the first.
  function fill(tbody, rows, empty) {
    const trs = rows.map((cells) => {
      const tr = document.createElement("tr");
      cells.forEach((cell, i) => {
        const td = document.createElement("td");
        td.textContent = cell;
        if (i > 0) td.className = "num";
        tr.append(td);
      });
      return tr;
    });
    if (!trs.length && empty) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 3;
      td.className = "muted";
      td.textContent = empty;
      tr.append(td);
      trs.push(tr);
    }
    tbody.replaceChildren(...trs);
  }

  // --- the status and live figures ----------------------------------------------

  function renderServer(server) {
    set("version", server.version);
    const h = server.handler;
    set("handler", h.module ? h.module + "." + h.name : h.name);
    set("handler-kind", "(" + h.kind + ")");
    set("uptime", duration(server.uptime));
    set("started", server.started);
    set("workers", String(server.workers));
    set("pid", String(server.pid));
    const badge = $("state");
    badge.textContent = server.state;
    badge.className = "badge " + (server.state === "ready" ? "ready" : "not-ready");
    const items = server.listeners.map((l) => {
      const li = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = l.address;
      li.append(code, " ", l.transport);
      return li;
    });
    $("listeners").replaceChildren(...items);
    if (!state.server) {
      fill($("limits"), Object.entries(server.limits).map(([k, v]) => [k, String(v)]));
    }
    $("metrics-off").hidden = server.metrics;
    $("token-field").hidden = !server.token_required;
  }

  function renderFigures(s) {
    set("window", String(s.window));
    set("rps", rate(s.requests_per_second));
    set("p50", seconds(s.latency && s.latency.p50));
    set("p99", seconds(s.latency && s.latency.p99));
    set("requests", count(s.requests));
    set("errors", count(s.errors));
    set("bytes-in", bytes(s.bytes_in));
    set("bytes-out", bytes(s.bytes_out));
    set("connections", count(s.open_connections));
    const t = s.handler_threads;
    set("threads", t.busy + " / " + t.limit);
    set("queued", t.queued ? t.queued + " queued" : "");
    const f = s.in_flight;
    set("in-flight", f ? String(f.requests) : "–");
    set("stuck", f && f.stuck ? f.stuck + " stuck over " + f.stuck_after + " s" :
      f && f.requests ? "oldest " + seconds(f.oldest) : "");
    $("in-flight-card").classList.toggle("alert", Boolean(f && f.stuck));
    const resources = Object.entries(s.by_resource || {}).slice(0, 20);
    fill($("by-resource"), resources.map(([r, n]) => [r, String(n)]), "no requests yet");
    fill($("by-status"), Object.entries(s.by_status || {}).map(([c, n]) => [c, String(n)]),
      "no requests yet");
    const open = s.connections || {};
    const names = new Set([...Object.keys(s.by_transport || {}), ...Object.keys(open)]);
    fill($("by-transport"), [...names].sort().map((name) => [
      name, String((s.by_transport || {})[name] || 0), String(open[name] || 0),
    ]), "no requests yet");
    const resource = $("resource");
    if (!resource.value) {
      const first = resources.find(([r]) => r.startsWith("/"));
      if (first) resource.value = first[0];
    }
  }

  function addPoints(s) {
    for (const p of s.history) {
      if (state.since === null || p.t > state.since) state.points.push(p);
    }
    if (state.points.length) state.since = state.points[state.points.length - 1].t;
    const oldest = s.time - HISTORY_SECONDS;
    state.points = state.points.filter((p) => p.t >= oldest);
  }

  // A line chart of the last five minutes on a canvas (no library, no markup).
  function chart(canvas, now, lines, format) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, width, height);
    let max = 0;
    for (const line of lines) {
      for (const p of state.points) max = Math.max(max, line.value(p) || 0);
    }
    const top = max > 0 ? max * 1.15 : 1;
    const x = (t) => width - ((now - t) / HISTORY_SECONDS) * width;
    const y = (v) => height - 4 - (v / top) * (height - 8);
    ctx.strokeStyle = "rgba(128, 128, 128, 0.25)";
    ctx.lineWidth = 1;
    for (let i = 1; i < 5; i += 1) {
      ctx.beginPath();
      ctx.moveTo((width * i) / 5, 0);
      ctx.lineTo((width * i) / 5, height);
      ctx.stroke();
    }
    for (const line of lines) {
      ctx.strokeStyle = line.color;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      let drawing = false;
      for (const p of state.points) {
        const v = line.value(p);
        if (v === null || v === undefined) {
          drawing = false;
          continue;
        }
        if (drawing) ctx.lineTo(x(p.t), y(v));
        else ctx.moveTo(x(p.t), y(v));
        drawing = true;
      }
      ctx.stroke();
      // A dot per point: a second with requests between idle ones has no line.
      ctx.fillStyle = line.color;
      for (const p of state.points) {
        const v = line.value(p);
        if (v !== null && v !== undefined && v > 0) ctx.fillRect(x(p.t) - 1.5, y(v) - 1.5, 3, 3);
      }
    }
    return max > 0 ? format(max) : "–";
  }

  function draw(now) {
    set("rate-max", chart($("chart-rate"), now, [
      { color: "#2b6cb0", value: (p) => p.rps },
      { color: "#c53030", value: (p) => p.eps },
    ], (v) => rate(v) + "/s"));
    set("latency-max", chart($("chart-latency"), now, [
      { color: "#2f855a", value: (p) => p.p50 },
      { color: "#b7791f", value: (p) => p.p99 },
    ], seconds));
  }

  async function poll() {
    try {
      const query = state.since === null ? "" : "?since=" + encodeURIComponent(state.since);
      const reply = await fetch("stats" + query, { cache: "no-store" });
      if (!reply.ok) throw new Error(reply.status + " " + (await reply.text()).trim());
      const s = await reply.json();
      renderServer(s.server);
      state.server = s.server;
      renderFigures(s);
      addPoints(s);
      draw(s.time);
      set("link", "updated " + new Date(s.time * 1000).toLocaleTimeString());
      $("link").className = "muted";
    } catch (error) {
      set("link", "cannot reach the server: " + error.message);
      $("link").className = "status-error";
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  // --- the request console --------------------------------------------------------

  // A shell word in single quotes.
  function shell(text) {
    return "'" + text.replace(/'/g, "'\\''") + "'";
  }

  // A Python string literal.
  function pyString(text) {
    let out = "'";
    for (const ch of text) {
      const code = ch.codePointAt(0);
      if (ch === "\\") out += "\\\\";
      else if (ch === "'") out += "\\'";
      else if (ch === "\n") out += "\\n";
      else if (ch === "\r") out += "\\r";
      else if (ch === "\t") out += "\\t";
      else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
      else if (code >= 0xd800 && code <= 0xdfff) out += "\\u" + code.toString(16);
      else out += ch;
    }
    return out + "'";
  }

  // Valid JSON text as the Python literal of the same value: strings and
  // true/false/null are rewritten, numbers kept as written (exact).
  function pyFromJson(text) {
    return text.replace(/"(?:[^"\\]|\\.)*"|true|false|null/g, (token) => {
      if (token === "true") return "True";
      if (token === "false") return "False";
      if (token === "null") return "None";
      return pyString(JSON.parse(token));
    });
  }

  // The resource as a URL path: each segment percent-encoded, so that "?",
  // "#" and markup stay part of the resource and the page's origin stays put.
  function pathOf(resource) {
    return resource.split("/").map(encodeURIComponent).join("/");
  }

  function baseUrl() {
    const root = (state.server && state.server.root_path) || "";
    return window.location.origin + root;
  }

  function equivalents(resource, kind, body, fileName) {
    const url = baseUrl() + pathOf(resource);
    const token = state.server && state.server.token_required;
    const curl = ["curl -X PUT"];
    if (token) curl.push('-H "Authorization: Bearer $DATASERVE_TOKEN"');
    if (kind === "json") curl.push("-H 'Content-Type: application/json'", "--data-binary " + shell(body));
    if (kind === "text") curl.push("-H 'Content-Type: text/plain'", "--data-binary " + shell(body));
    if (kind === "file") {
      curl.push("-H 'Content-Type: application/octet-stream'", "--data-binary @" + shell(fileName));
    }
    curl.push(shell(url));
    const loc = window.location;
    const port = loc.port || (loc.protocol === "https:" ? "443" : "80");
    const root = (state.server && state.server.root_path) || "";
    const portArg = root ? pyString(port + root) : port;
    const address = pyString(loc.protocol + "//" + loc.hostname + ":");
    const args = [pyString(resource)];
    if (kind === "json") args.push(pyFromJson(body.trim()));
    if (kind === "text") args.push(pyString(body));
    if (kind === "file") args.push("open(" + pyString(fileName) + ", 'rb').read()");
    const python = [
      "from dataserve import HTTPDataClient",
      "",
      ...(token ? ["# the token is read from $DATASERVE_TOKEN"] : []),
      "with HTTPDataClient(" + portArg + ", " + address + ") as client:",
      "    print(client.send(" + args.join(", ") + "))",
    ];
    set("curl", curl.join(" "));
    set("python", python.join("\n"));
  }

  function hexdump(view) {
    const lines = [];
    const shown = Math.min(view.length, 256);
    for (let i = 0; i < shown; i += 16) {
      const row = Array.from(view.slice(i, Math.min(i + 16, shown)));
      lines.push(i.toString(16).padStart(6, "0") + "  " +
        row.map((b) => b.toString(16).padStart(2, "0")).join(" "));
    }
    if (view.length > shown) lines.push("… " + (view.length - shown) + " more bytes");
    return lines.join("\n");
  }

  function decoded(mediaType, buffer) {
    const view = new Uint8Array(buffer);
    if (!view.length) return "(no body)";
    if (mediaType === "application/json") {
      const text = new TextDecoder().decode(view);
      try {
        const value = JSON.parse(text);
        // Indented when nothing is lost (JSON numbers beyond 2^53 would be).
        if (JSON.stringify(value) === text) return JSON.stringify(value, null, 2);
      } catch (error) {
        // shown as it came
      }
      return text;
    }
    if (mediaType.startsWith("text/")) return new TextDecoder().decode(view);
    return hexdump(view);
  }

  function problem(message) {
    const p = $("console-error");
    p.textContent = message;
    p.hidden = !message;
  }

  async function send(event) {
    event.preventDefault();
    problem("");
    const resource = $("resource").value.trim();
    if (!resource.startsWith("/") || resource.startsWith("//")) {
      problem("A resource is a path: it starts with one /, as in /xdata.");
      return;
    }
    const kind = $("kind").value;
    const headers = {};
    let body, fileName;
    if (kind === "json") {
      body = $("payload").value;
      try {
        JSON.parse(body);
      } catch (error) {
        problem("The payload is not valid JSON: " + error.message);
        return;
      }
      headers["Content-Type"] = "application/json";
    } else if (kind === "text") {
      body = $("payload").value;
      headers["Content-Type"] = "text/plain";
    } else if (kind === "file") {
      const file = $("file").files[0];
      if (!file) {
        problem("Choose a file to send.");
        return;
      }
      body = file;
      fileName = file.name;
      headers["Content-Type"] = "application/octet-stream";
    }
    state.token = $("token").value;
    if (state.token) headers.Authorization = "Bearer " + state.token;
    const button = $("send");
    button.disabled = true;
    const started = performance.now();
    try {
      // Data requests carry the token as Bearer only: no ambient credentials.
      const reply = await fetch(baseUrl() + pathOf(resource), {
        method: "PUT", headers, body, credentials: "omit", cache: "no-store", redirect: "manual",
      });
      const buffer = await reply.arrayBuffer();
      const elapsed = performance.now() - started;
      const contentType = reply.headers.get("content-type") || "";
      const status = $("reply-status");
      status.textContent = (reply.status + " " + reply.statusText).trim();
      status.className = reply.ok ? "status-ok" : "status-error";
      set("reply-type", contentType || "(none)");
      set("reply-time", elapsed < 1000 ? elapsed.toFixed(1) + " ms" : (elapsed / 1000).toFixed(2) + " s");
      set("reply-size", bytes(buffer.byteLength));
      set("reply", decoded(contentType.split(";")[0].trim().toLowerCase(), buffer));
      equivalents(resource, kind, body, fileName);
      $("result").hidden = false;
    } catch (error) {
      problem("The request failed: " + error.message);
    } finally {
      button.disabled = false;
    }
  }

  function showPayloadInput() {
    const kind = $("kind").value;
    $("payload").hidden = kind !== "json" && kind !== "text";
    $("file").hidden = kind !== "file";
    $("payload").placeholder = kind === "json" ? "[4, 5, 6]" : "hello";
  }

  $("send-form").addEventListener("submit", send);
  $("kind").addEventListener("change", showPayloadInput);
  showPayloadInput();
  poll();
})();
