// connection.js - drives connection.html: one socket.io-client connection to the
// server that served the page, shown live. Everything the page displays
// comes from the client's own events, so what you see is what the
// standard client experienced (no server-side status API is involved).
"use strict";

(function () {
  const RTT_EVERY_MS = 2000;    // how often a round trip is measured
  const ACK_TIMEOUT_MS = 5000;  // an ack slower than this counts as lost
  const LOG_MAX = 60;           // events kept in the list
  const SPARK_POINTS = 30;      // round-trip samples drawn in the chart

  const $ = (id) => document.getElementById(id);
  const el = {
    state: $("state"), stateLabel: $("state-label"), stateDetail: $("state-detail"),
    socketId: $("socket-id"), socketHint: $("socket-hint"),
    transport: $("transport"), stepPolling: $("step-polling"), stepWs: $("step-websocket"),
    heartbeat: $("heartbeat"),
    rtt: $("rtt"), rttStats: $("rtt-stats"), sparkLine: $("spark-line"), spark: $("spark"),
    log: $("log"), logEmpty: $("log-empty"),
    btnConnect: $("btn-connect"), btnPolling: $("btn-polling"), btnClear: $("btn-clear"),
    loadError: $("load-error"), serverUrl: $("server-url"), protocol: $("client-protocol"),
  };

  el.serverUrl.textContent = location.host || "this server";

  if (typeof window.io !== "function") {
    el.loadError.hidden = false;
    el.loadError.textContent =
      "Could not load /vendor/socket.io.min.js. tabsyncd serves it from " +
      "node_modules/socket.io-client/dist: run `npm install` (make run does) " +
      "or start tabsyncd with --node-modules DIR.";
    setState("disconnected", "Client library missing", "See the message above.");
    el.btnConnect.disabled = true;
    el.btnPolling.disabled = true;
    return;
  }
  // The browser bundle does not export the parser's protocol number; the
  // client speaks Socket.IO v5 over Engine.IO v4 (what tabsyncd speaks).
  el.protocol.textContent = String(window.io.protocol ?? 5);

  // ---- state ---------------------------------------------------------------

  let socket = null;
  let pollingOnly = false;
  let wantConnected = true;   // false after the user pressed Disconnect
  let rttTimer = null;
  let heartbeatAt = 0;
  const samples = [];         // recent round-trip times, ms

  // ---- rendering -----------------------------------------------------------

  function setState(state, label, detail) {
    el.state.dataset.state = state;
    el.stateLabel.textContent = label;
    el.stateDetail.textContent = detail;
    document.title = "tabsync · " + label.toLowerCase();
  }

  function setTransport(name) {
    el.transport.textContent = name || "—";
    el.stepPolling.classList.toggle("done", name === "polling" || name === "websocket");
    el.stepPolling.classList.toggle("current", name === "polling");
    el.stepWs.classList.toggle("done", name === "websocket");
    el.stepWs.classList.toggle("current", name === "websocket");
    el.stepWs.classList.toggle("off", pollingOnly);
    if (name === "websocket") el.stepWs.removeAttribute("aria-disabled");
    else if (pollingOnly) el.stepWs.setAttribute("aria-disabled", "true");
    el.stepPolling.setAttribute("aria-current", name === "polling" ? "step" : "false");
    el.stepWs.setAttribute("aria-current", name === "websocket" ? "step" : "false");
  }

  function clock(d) {
    return d.toLocaleTimeString([], { hour12: false }) + "." +
      String(d.getMilliseconds()).padStart(3, "0");
  }

  // kind: ok | warn | error | info; shown as a coloured tag with a word,
  // so the meaning never depends on colour alone.
  function log(kind, text) {
    const li = document.createElement("li");
    li.className = "entry " + kind;
    const time = document.createElement("time");
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = clock(now);
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = kind;
    const msg = document.createElement("span");
    msg.className = "msg";
    msg.textContent = text;
    li.append(time, tag, msg);
    el.log.prepend(li);
    while (el.log.children.length > LOG_MAX) el.log.lastElementChild.remove();
    el.logEmpty.hidden = true;
  }

  function renderRtt(ms) {
    if (ms === null) {
      // a new connection starts a new series: old samples would mix
      // transports and connections
      el.rtt.textContent = "—";
      samples.length = 0;
      el.rttStats.textContent = "Measured every 2 s with message-with-ack";
      el.sparkLine.setAttribute("points", "");
      return;
    }
    el.rtt.textContent = ms < 10 ? ms.toFixed(1) : String(Math.round(ms));
    samples.push(ms);
    if (samples.length > SPARK_POINTS) samples.shift();
    const min = Math.min(...samples), max = Math.max(...samples);
    const avg = samples.reduce((a, b) => a + b, 0) / samples.length;
    const f = (v) => (v < 10 ? v.toFixed(1) : String(Math.round(v)));
    el.rttStats.textContent =
      `min ${f(min)} · avg ${f(avg)} · max ${f(max)} ms (last ${samples.length})`;
    // Sparkline: x spreads the samples, y is scaled to at least 0..10 ms.
    const top = Math.max(max, 10);
    // grows from the left edge until the window is full, then scrolls
    const step = 120 / Math.max(SPARK_POINTS - 1, 1);
    const x0 = 0;
    el.sparkLine.setAttribute("points", samples.map((v, i) =>
      `${(x0 + i * step).toFixed(1)},${(30 - (v / top) * 28).toFixed(1)}`).join(" "));
    el.spark.setAttribute("aria-label",
      `Recent round-trip times: min ${f(min)}, average ${f(avg)}, max ${f(max)} milliseconds`);
  }

  function renderButtons() {
    el.btnConnect.textContent = wantConnected ? "Disconnect" : "Connect";
    el.btnConnect.classList.toggle("primary", !wantConnected);
    el.btnPolling.setAttribute("aria-pressed", String(pollingOnly));
    el.btnPolling.textContent = pollingOnly ? "Allow WebSocket" : "Polling only";
    el.btnPolling.title = pollingOnly
      ? "Reconnect with the default transports: polling, then upgrade to WebSocket"
      : "Reconnect using HTTP long-polling only, without the WebSocket upgrade";
  }

  function renderHeartbeat() {
    if (!heartbeatAt) {
      el.heartbeat.textContent = "Server heartbeat: —";
      return;
    }
    const s = Math.round((Date.now() - heartbeatAt) / 1000);
    el.heartbeat.textContent = `Server heartbeat: ${s === 0 ? "just now" : s + " s ago"}`;
  }
  setInterval(renderHeartbeat, 1000);

  // ---- round-trip measurement --------------------------------------------

  // The server acknowledges `message-with-ack` with the arguments it got,
  // so the ack carries our own timestamp back and we can check it.
  function measure() {
    if (!socket || !socket.connected) return;
    const sentAt = performance.now();
    const stamp = Date.now();
    const current = socket;
    current.timeout(ACK_TIMEOUT_MS).emit("message-with-ack", stamp, (err, echoed) => {
      if (current !== socket) return; // a reconnect with other options happened
      if (err) {
        log("warn", `No ack for message-with-ack within ${ACK_TIMEOUT_MS / 1000} s`);
        renderRtt(null);
        return;
      }
      const rtt = performance.now() - sentAt;
      if (echoed !== stamp) log("warn", `Ack carried ${JSON.stringify(echoed)}, expected ${stamp}`);
      renderRtt(rtt);
    });
  }

  function startRtt() {
    stopRtt();
    measure();
    rttTimer = setInterval(measure, RTT_EVERY_MS);
  }

  function stopRtt() {
    if (rttTimer) clearInterval(rttTimer);
    rttTimer = null;
  }

  // ---- the connection ------------------------------------------------------

  function watchEngine(manager) {
    const engine = manager.engine;
    if (!engine) return;
    const first = engine.transport && engine.transport.name;
    setTransport(first);
    log("info", `Engine.IO session ${engine.id} open over ${first}`);
    engine.on("upgrade", (transport) => {
      setTransport(transport.name);
      log("ok", `Upgraded to ${transport.name}`);
    });
  }

  // Every (re)connection from the buttons builds a fresh client with its own
  // Manager, so the transports option always matches what the page shows.
  function open() {
    const opts = { forceNew: true };
    if (pollingOnly) opts.transports = ["polling"];
    const s = window.io(opts);
    socket = s;
    const m = s.io;
    setState("connecting", "Connecting…",
      pollingOnly ? "Opening a session over HTTP long-polling only." :
        "Opening a session; polling first, then an upgrade to WebSocket.");
    setTransport(null);
    log("info", pollingOnly ? "Connecting (polling only)" : "Connecting");

    m.on("open", () => watchEngine(m));
    m.on("ping", () => {
      heartbeatAt = Date.now();
      renderHeartbeat();
    });
    m.on("reconnect_attempt", (n) => {
      setState("connecting", `Reconnecting… (attempt ${n})`, "The client retries with a growing delay.");
      log("info", `Reconnect attempt ${n}`);
    });
    m.on("reconnect", (n) => log("ok", `Reconnected after ${n} attempt${n === 1 ? "" : "s"}`));
    m.on("reconnect_failed", () => {
      setState("disconnected", "Disconnected", "The client gave up reconnecting.");
      log("error", "Reconnection failed");
    });

    s.on("connect", () => {
      setState("connected", "Connected",
        s.recovered ? "Session recovered: missed packets were replayed." : "Session established.");
      el.socketId.textContent = s.id;
      el.socketHint.textContent = s.recovered ? "Recovered after a short disconnection"
        : "Assigned by the server on connect";
      if (m.engine && m.engine.transport) setTransport(m.engine.transport.name);
      log("ok", `Connected as ${s.id}${s.recovered ? " (state recovered)" : ""}`);
      startRtt();
    });

    s.on("disconnect", (reason, details) => {
      stopRtt();
      const again = s.active; // the client reconnects on its own
      setState(again ? "connecting" : "disconnected",
        again ? "Connection lost" : "Disconnected",
        `Reason: ${reason}${again ? " — reconnecting…" : ""}`);
      el.socketId.textContent = "—";
      setTransport(null);
      renderRtt(null);
      let extra = "";
      if (details && details.description) {
        const d = details.description;
        extra = ` (${d.message || d.type || d})`;
      }
      log(again ? "warn" : "info", `Disconnected: ${reason}${extra}`);
      if (!again) {
        // Nobody will reconnect (we or the server ended it): offer Connect.
        wantConnected = false;
        renderButtons();
      }
    });

    s.on("connect_error", (err) => {
      const why = err && err.message ? err.message : String(err);
      setState(s.active ? "connecting" : "disconnected",
        s.active ? "Cannot connect" : "Connection refused",
        `${why}${s.active ? " — retrying…" : ""}`);
      log("error", `Connect error: ${why}`);
      if (!s.active) {
        wantConnected = false;
        renderButtons();
      }
    });
  }

  function close() {
    stopRtt();
    if (!socket) return;
    const s = socket;
    socket = null;
    s.io.removeAllListeners();
    s.removeAllListeners();
    s.disconnect();
  }

  // ---- controls --------------------------------------------------------------

  el.btnConnect.addEventListener("click", () => {
    wantConnected = !wantConnected;
    if (wantConnected) {
      close(); // drop the old, disconnected socket and its listeners
      open();
    } else {
      // Keep the listeners: "io client disconnect" shows up as the reason.
      stopRtt();
      socket && socket.disconnect();
    }
    renderButtons();
  });

  el.btnPolling.addEventListener("click", () => {
    pollingOnly = !pollingOnly;
    log("info", pollingOnly ? "Switching to polling only" : "Allowing the WebSocket upgrade again");
    close();
    wantConnected = true;
    open();
    renderButtons();
  });

  el.btnClear.addEventListener("click", () => {
    el.log.replaceChildren();
    el.logEmpty.hidden = false;
  });

  window.addEventListener("pagehide", () => close());

  renderButtons();
  open();
})();
