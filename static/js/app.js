/* EmoCare live page: camera → downscaled JPEG → Socket.IO → boxes, scores and status.
 *
 * One frame is in flight at a time: the next frame is captured only when the result of the
 * previous one has arrived, aiming at TARGET_FPS. Frames travel as binary attachments, never
 * base64, and are never stored, on either side.
 */
(function () {
  "use strict";

  const EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
  const TARGET_FPS = 10;
  const FRAME_WIDTH = 320;
  const JPEG_QUALITY = 0.7;
  const REPLY_TIMEOUT_MS = 5000;
  const RETRY_AFTER_ERROR_MS = 500;

  const strings = JSON.parse(document.getElementById("strings").textContent);
  const $ = (id) => document.getElementById(id);
  const video = $("video");
  const overlay = $("overlay");
  const statusEl = $("status");
  const dominantEl = $("dominant");
  const startBtn = $("start");
  const stopBtn = $("stop");
  const consent = $("consent-check");
  const consentCard = $("consent");
  const capture = document.createElement("canvas");
  const backendSelect = $("backend-select");
  // the backend this page asked for; null: whatever the server's default is
  const offered = (name) => [...backendSelect.options].some((o) => o.value === name);
  let chosenBackend = localStorage.getItem("emocare.backend");
  if (!offered(chosenBackend)) {
    chosenBackend = null; // a stored choice this server does not offer (any more)
    localStorage.removeItem("emocare.backend");
  }
  if (chosenBackend) backendSelect.value = chosenBackend;
  let activeBackend = null; // the one the server confirmed ready for this page
  backendSelect.addEventListener("change", () => {
    chooseBackend(backendSelect.value);
    if (state.socket && state.socket.connected) {
      state.ready = false;
      state.socket.emit("configure", { backend: chosenBackend });
    }
  });

  function chooseBackend(name) {
    chosenBackend = name || null;
    if (chosenBackend) {
      backendSelect.value = chosenBackend;
      localStorage.setItem("emocare.backend", chosenBackend);
    } else {
      localStorage.removeItem("emocare.backend");
    }
  }

  function t(key, values) {
    let text = strings[key] || key;
    for (const [name, value] of Object.entries(values || {})) text = text.replace("{" + name + "}", value);
    return text;
  }

  function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusEl.textContent = text || t("status." + state);
  }

  const hooks = []; // other scripts (care.js) attach their handlers to the socket here

  const state = {
    running: false,
    ready: false,
    inFlight: false,
    seq: 0,
    sentAt: 0,
    timer: null,
    watchdog: null,
    rtts: [],
    stream: null,
    socket: null,
  };

  consent.addEventListener("change", () => {
    startBtn.disabled = !consent.checked || state.running;
  });
  startBtn.addEventListener("click", start);
  stopBtn.addEventListener("click", stop);

  function connect() {
    const socket = io({ transports: ["websocket", "polling"] });
    socket.on("connect", () => {
      if (!state.ready) setStatus("warming");
      if (chosenBackend) socket.emit("configure", { backend: chosenBackend });
    });
    socket.on("status", (msg) => {
      // a broadcast about the server's default model does not concern a page that chose another
      if (chosenBackend && msg.requested && msg.requested !== chosenBackend && msg.state !== "error") return;
      if (!chosenBackend && offered(msg.requested)) {
        backendSelect.value = msg.requested;
      }
      const line = t("footer.backend", { backend: msg.backend }) + (msg.notice ? " — " + msg.notice : "");
      $("backend").textContent = msg.state === "error" && msg.backend ? line + " — " + msg.message : line;
      $("backend").dataset.backend = msg.backend || "";
      if (msg.state === "error" && msg.backend && msg.requested === chosenBackend) {
        // the model asked for failed to load; the server kept the one this page had
        chooseBackend(activeBackend);
        backendSelect.value = msg.backend;
        markReady();
      } else if (msg.state === "ready") {
        activeBackend = chosenBackend;
        markReady();
      } else if (msg.state === "error") {
        setStatus("error", msg.message);
      } else {
        state.ready = false;
        setStatus("warming");
      }
    });
    socket.on("result", onResult);
    hooks.forEach((hook) => hook(socket));
    socket.on("error", onError);
    socket.on("disconnect", () => {
      state.inFlight = false;
      if (state.running) setStatus("disconnected");
    });
    return socket;
  }

  function markReady() {
    state.ready = true;
    if (state.running) {
      setStatus("live");
      schedule(0);
    }
  }

  async function start() {
    if (state.running || !consent.checked) return;
    startBtn.disabled = true;
    setStatus("starting");
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 } },
        audio: false,
      });
    } catch (err) {
      startBtn.disabled = false;
      setStatus("error", t("status.camera_denied", { error: err.message || err.name }));
      return;
    }
    video.srcObject = state.stream;
    await video.play().catch(() => {});
    state.running = true;
    stopBtn.disabled = false;
    consentCard.classList.add("collapsed"); // consent given: keep the buttons, fold the text
    if (!state.socket) state.socket = connect();
    else if (!state.socket.connected) state.socket.connect();
    setStatus(state.ready ? "live" : "connecting");
    if (state.ready) schedule(0);
  }

  function stop() {
    state.running = false;
    clearTimeout(state.timer);
    clearTimeout(state.watchdog);
    state.inFlight = false;
    if (state.stream) state.stream.getTracks().forEach((track) => track.stop());
    document.dispatchEvent(new CustomEvent("emocare:stopped"));
    state.stream = null;
    video.srcObject = null;
    clearOverlay();
    renderScores(null);
    stopBtn.disabled = true;
    startBtn.disabled = !consent.checked;
    consentCard.classList.remove("collapsed");
    setStatus("stopped");
  }

  function schedule(delay) {
    clearTimeout(state.timer);
    state.timer = setTimeout(sendFrame, Math.max(0, delay));
  }

  function sendFrame() {
    if (!state.running || !state.ready || state.inFlight || !state.socket || !state.socket.connected) return;
    if (!video.videoWidth) return schedule(100);
    const height = Math.round((FRAME_WIDTH * video.videoHeight) / video.videoWidth);
    capture.width = FRAME_WIDTH;
    capture.height = height;
    capture.getContext("2d").drawImage(video, 0, 0, FRAME_WIDTH, height);
    state.inFlight = true;
    capture.toBlob(async (blob) => {
      if (!blob || !state.running) {
        state.inFlight = false; // the canvas gave nothing (a busy tab): try the next frame
        if (state.running) schedule(RETRY_AFTER_ERROR_MS);
        return;
      }
      const image = await blob.arrayBuffer();
      state.seq += 1;
      state.sentAt = performance.now();
      state.socket.emit("frame", { seq: state.seq, image: image });
      clearTimeout(state.watchdog);
      state.watchdog = setTimeout(() => {
        // A reply that never comes (server restart, dropped packet) must not stall the loop.
        state.inFlight = false;
        schedule(0);
      }, REPLY_TIMEOUT_MS);
    }, "image/jpeg", JPEG_QUALITY);
  }

  function nextFrame() {
    const elapsed = performance.now() - state.sentAt;
    schedule(1000 / TARGET_FPS - elapsed);
  }

  function onResult(msg) {
    clearTimeout(state.watchdog);
    state.inFlight = false;
    const rtt = performance.now() - state.sentAt;
    state.rtts.push({ at: performance.now(), rtt: rtt });
    if (state.rtts.length > 30) state.rtts.shift();
    if (!state.running) return;
    const faces = msg.faces || [];
    drawFaces(faces, msg.frame);
    // the server marks the primary face (largest, most central) and smooths each face's scores
    renderScores(faces.find((f) => f.primary) || faces[0] || null);
    setStatus(faces.length ? "live" : "no_face");
    renderStats();
    nextFrame();
  }

  function errorText(msg) {
    const key = "error." + msg.code;
    return strings[key] ? t(key) : msg.message || msg.code;
  }

  function onError(msg) {
    msg = msg || {};
    if (msg.code === "bad_backend") {
      // the stored choice is not offered: go back to the server's default
      chooseBackend(null);
      if (state.socket) state.socket.emit("configure", { backend: null });
    }
    if (msg.seq === undefined || msg.seq !== state.seq) {
      // not the answer to the frame in flight (settings, feedback, backend): only say so
      if (msg.code !== "busy") $("backend").textContent = t("status.error") + ": " + errorText(msg);
      return;
    }
    clearTimeout(state.watchdog);
    state.inFlight = false;
    if (msg.code !== "busy") setStatus("error", t("status.error") + ": " + errorText(msg));
    if (state.running) schedule(RETRY_AFTER_ERROR_MS);
  }

  function renderStats() {
    const recent = state.rtts;
    if (recent.length < 2) return;
    const seconds = (recent[recent.length - 1].at - recent[0].at) / 1000;
    const sorted = recent.map((r) => r.rtt).sort((a, b) => a - b);
    $("stats").textContent = t("stats.fps", {
      fps: ((recent.length - 1) / seconds).toFixed(1),
      rtt: Math.round(sorted[Math.floor(sorted.length / 2)]),
    });
  }

  function renderScores(face) {
    document.querySelectorAll("#bars .bar").forEach((row) => {
      const score = face ? (face.smoothed || face.scores)[row.dataset.emotion] || 0 : 0;
      row.querySelector(".bar-fill").style.width = (score * 100).toFixed(1) + "%";
      row.querySelector(".bar-value").textContent = Math.round(score * 100) + "%";
      row.classList.toggle("top", !!face && row.dataset.emotion === labelOf(face));
    });
    dominantEl.dataset.emotion = face ? labelOf(face) : "";
    const label = face ? labelOf(face) : null;
    dominantEl.textContent = !face
      ? t("scores.none")
      : label === "neutral"
        ? t("scores.hint_neutral")
        : t("scores.hint", { emotion: t("emotion." + label) });
  }

  function labelOf(face) {
    return face.label || face.dominant;
  }

  function clearOverlay() {
    overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  }

  function drawFaces(faces, frame) {
    const width = video.clientWidth;
    const height = video.clientHeight;
    if (overlay.width !== width || overlay.height !== height) {
      overlay.width = width;
      overlay.height = height;
    }
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    if (!frame || !frame.width) return;
    const scale = width / frame.width;
    ctx.lineWidth = 3;
    ctx.font = "16px system-ui, sans-serif";
    for (const face of faces) {
      const [x, y, w, h] = face.box.map((v) => v * scale);
      const left = width - x - w; // the video is shown mirrored, like a mirror
      ctx.strokeStyle = face.primary ? "#4fc3a1" : "#c9d6d1";
      ctx.strokeRect(left, y, w, h);
      const name = labelOf(face);
      const score = (face.smoothed || face.scores)[name];
      const label = (faces.length > 1 ? "#" + face.track_id + " " : "") + t("emotion." + name) + " " + Math.round(score * 100) + "%";
      const labelWidth = ctx.measureText(label).width + 10;
      ctx.fillStyle = "rgba(20, 60, 50, 0.8)";
      ctx.fillRect(left, Math.max(0, y - 24), labelWidth, 22);
      ctx.fillStyle = "#fff";
      ctx.fillText(label, left + 5, Math.max(16, y - 8));
    }
  }

  window.emocare = {
    state: state,
    EMOTIONS: EMOTIONS,
    t: t,
    onSocket: (hook) => {
      hooks.push(hook);
      if (state.socket) hook(state.socket);
    },
  };
  setStatus("idle");
})();
