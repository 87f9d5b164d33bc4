/* EmoCare live page: camera → downscaled JPEG → Socket.IO → boxes, scores and status.
 *
 * One frame is in flight at a time: the next frame is captured only when the result of the
 * previous one has arrived, at TARGET_FPS or slower when the round trip says the link or the
 * server cannot keep up (frameInterval). Frames travel as binary attachments, never base64,
 * as volatile emits (dropped, not queued, while the connection cannot take them), and are
 * never stored, on either side. Capture pauses while the tab is hidden; a camera that goes
 * away (unplugged, permission withdrawn) is said so, with a button to start it again.
 *
 * Analysis on this device (docs/device.md): the same loop, but each captured frame is
 * analysed here by analyzer.js (imported, with its runtime and models, only once this mode is
 * chosen) and only its faces' boxes and scores go to the server, as `scores` events of
 * FRAMES_PER_MESSAGE frames each: TARGET_FPS frames a second are analysed, one message awaits
 * its answer. The server's `result` then drives the page exactly as in server mode, so
 * tracking, smoothing, care, calibration and history are the server's in both modes (a frame
 * between two messages is drawn at once, with the last answer's labels). If the analysis
 * cannot load or fails, the page says so and sends frames instead: the person chose privacy,
 * so it is never silent.
 */
(function () {
  "use strict";

  const EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
  const TARGET_FPS = 10;
  // device mode: frames go four a message, two and a half messages a second (docs/device.md, The loop)
  const FRAMES_PER_MESSAGE = 4; // the most the server takes (live/scores.py: MAX_FRAMES)
  const MAX_FRAME_AGE_MS = 1000; // older analysed frames are not sent (the server takes 2000)
  const MIN_FPS = 2;
  const FRAME_WIDTH = 320;
  const JPEG_QUALITY = 0.7;
  const REPLY_TIMEOUT_MS = 3000;
  const RETRY_AFTER_ERROR_MS = 500;
  const NO_FACE_AFTER_MS = 1000; // "no face" is said only once the face has been gone a second

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
  // read back every frame in device mode: a canvas kept in memory rather than on the GPU
  const captureContext = capture.getContext("2d", { willReadFrequently: true });
  const backendSelect = $("backend-select");
  const cameraSelect = $("camera-select");
  const cameraLost = $("camera-lost");
  const analysisSelect = $("set-analysis");
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

  // --- where frames are analysed: "server" (frames are sent) or "device" (scores are sent) -----
  const MODES = ["server", "device"];
  const serverDefault = MODES.includes(analysisSelect.dataset.default) ? analysisSelect.dataset.default : "server";
  let chosenAnalysis = localStorage.getItem("emocare.analysis");
  if (!MODES.includes(chosenAnalysis)) chosenAnalysis = serverDefault;
  analysisSelect.value = chosenAnalysis;
  showConsentFor(chosenAnalysis);
  analysisSelect.addEventListener("change", () => {
    chosenAnalysis = MODES.includes(analysisSelect.value) ? analysisSelect.value : serverDefault;
    localStorage.setItem("emocare.analysis", chosenAnalysis);
    showConsentFor(chosenAnalysis);
    state.fallback = null; // a new choice: try it afresh
    // device mode loads its files when the camera starts; server mode applies at once
    if (state.running || chosenAnalysis === "server") prepareAnalysis();
  });

  function showConsentFor(mode) {
    $("consent-server").hidden = mode === "device";
    $("consent-device").hidden = mode !== "device";
  }

  function t(key, values) {
    let text = strings[key] || key;
    for (const [name, value] of Object.entries(values || {})) text = text.replace("{" + name + "}", value);
    return text;
  }

  // #status is a polite live region: it is written only when what it says changes, so a
  // screen reader hears "Live" once, not once a frame. "Live" says where the analysis runs:
  // here, on the server, or on the server because this device could not (data-analysis says
  // the same to scripts and tests)
  function setStatus(name, text) {
    const value = text || (name === "live" ? t(liveKey()) : t("status." + name));
    if (
      statusEl.dataset.state === name &&
      statusEl.textContent === value &&
      statusEl.dataset.analysis === state.analysis
    )
      return;
    statusEl.dataset.state = name;
    statusEl.dataset.analysis = state.analysis;
    statusEl.textContent = value;
  }

  function liveKey() {
    if (state.analysis === "device") return "status.live_device";
    return state.fallback ? "status.live_fallback" : "status.live_server";
  }

  // what the page says while the camera runs and nothing has gone wrong
  function runningStatus() {
    if (state.paused) return "paused";
    if (state.analysis === "loading") return "loading_device";
    if (state.ready) return "live";
    return state.fallback ? "device_failed" : "connecting";
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
    paused: false, // the tab is hidden
    lastFaceAt: 0,
    analysis: "server", // what runs now: "server", "device", or "loading" (the device's, not yet)
    epoch: 0, // changes when the loop stops, pauses or changes mode: late work is then dropped
    analysing: false, // this device is analysing a frame (one at a time)
    fallback: null, // why this device could not analyse, once it could not
    analyseMs: [], // this device's recent analysis times
    pending: [], // frames analysed here and not yet sent: {epoch, at, width, height, faces}
    sentFrames: 1, // frames in the message awaiting its answer
    shown: null, // the last result's {epoch, faces}: they label the frames between two messages
  };
  let analyzer = null; // analyzer.js's DeviceAnalyzer, once loaded
  let loading = null; // its loading, while under way
  let forcedModel = false; // device mode asked the server for EmoCare's model, not the chosen one

  consent.addEventListener("change", () => {
    startBtn.disabled = !consent.checked || state.running;
  });
  startBtn.addEventListener("click", start);
  stopBtn.addEventListener("click", stop);

  // A page that will analyse on its device says so in its handshake (asked again at every
  // reconnection): the server then counts it among the places that cost it no inference
  // (docs/protocol.md). After a fallback it asks for one of the server's places.
  function handshake(callback) {
    callback(chosenAnalysis === "device" && !state.fallback ? { analysis: "device" } : {});
  }

  function connect() {
    const socket = io({ transports: ["websocket", "polling"], auth: handshake });
    socket.on("connect", () => {
      if (!state.ready) setStatus("warming");
      if (wantedBackend()) socket.emit("configure", { backend: wantedBackend() });
    });
    socket.on("status", (msg) => {
      if (msg.state === "error") msg.message = errorText(msg);
      // a broadcast about the server's default model does not concern a page that chose another
      const wanted = wantedBackend();
      if (wanted && msg.requested && msg.requested !== wanted && msg.state !== "error") return;
      if (!chosenBackend && offered(msg.requested)) {
        backendSelect.value = msg.requested;
      }
      lastStatus = msg;
      renderBackend();
      if (msg.state === "error" && msg.backend && msg.requested === chosenBackend && !forcedModel) {
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
        setStatus("warming", msg.download ? downloadText(msg.download) : "");
      }
    });
    socket.on("connect_error", (err) => {
      // refused by the server (too many connections): say why; otherwise the client retries
      if (err && err.data && err.data.code) setStatus("error", t("status.error") + ": " + errorText(err.data));
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

  // DeepFace fetches its weights on first use: the server says how far it has come
  function downloadText(download) {
    const mb = (bytes) => (bytes / 1e6).toFixed(1);
    if (!download.total) return t("status.downloading_size", { received: mb(download.received) });
    return t("status.downloading", {
      percent: Math.floor((100 * download.received) / download.total),
      received: mb(download.received),
      total: mb(download.total),
    });
  }

  function markReady() {
    state.ready = true;
    if (state.running) {
      setStatus(runningStatus());
      schedule(0);
    }
  }

  // --- the model: the one chosen, or EmoCare's own while this device runs it ------------------

  let lastStatus = null; // the server's last status about this page's model

  // In device mode the page runs EmoCare's model, so the server's session uses it too: its
  // calibration and the person's relaxed-face baseline belong to that model.
  function wantedBackend() {
    return state.analysis === "device" ? "emocare" : chosenBackend;
  }

  function renderBackend() {
    const line = $("backend");
    backendSelect.disabled = state.analysis === "device";
    if (state.analysis === "device") {
      line.textContent = t("footer.backend_device");
      line.dataset.backend = "emocare";
      return;
    }
    const msg = lastStatus;
    let text = "";
    if (msg) {
      text = t("footer.backend", { backend: msg.backend }) + (msg.notice ? " — " + msg.notice : "");
      if (msg.state === "error" && msg.backend) text += " — " + msg.message;
    }
    if (state.fallback) text += (text ? " — " : "") + t("footer.device_failed", { error: state.fallback });
    line.textContent = text;
    line.dataset.backend = msg ? msg.backend || "" : "";
  }

  // entering device mode asks the server for EmoCare's model; leaving it, for the chosen one
  // (null: the server's default); the page waits for the server's "ready" as on any switch
  function configureModel() {
    const device = state.analysis === "device";
    if (device === forcedModel) return;
    forcedModel = device;
    if (!state.socket || !state.socket.connected) return; // "connect" asks for wantedBackend()
    state.ready = false;
    state.socket.emit("configure", { backend: wantedBackend() });
  }

  // --- analysis on this device ------------------------------------------------------------------

  // Load analyzer.js, its runtime and models (first time only) when device mode is chosen;
  // anything that fails falls back to the server, said on the status line and beside the model.
  async function prepareAnalysis() {
    if (chosenAnalysis !== "device" || state.fallback) {
      useAnalysis("server");
      return;
    }
    if (analyzer) {
      useAnalysis("device");
      return;
    }
    useAnalysis("loading");
    try {
      if (typeof WebAssembly !== "object") throw new Error("WebAssembly is not available in this browser");
      if (!loading) {
        loading = import(analysisSelect.dataset.analyzer).then((module) =>
          module.loadAnalyzer({ manifestUrl: analysisSelect.dataset.manifest })
        );
      }
      analyzer = await loading;
    } catch (err) {
      loading = null;
      fallBack(err);
      return;
    }
    // the choice may have changed while it loaded
    useAnalysis(chosenAnalysis === "device" && !state.fallback ? "device" : "server");
  }

  function fallBack(err) {
    const reason = (err && (err.message || err.name)) || String(err);
    console.warn("analysis on this device is unavailable; the server analyses instead:", err);
    state.fallback = reason;
    useAnalysis("server");
  }

  function useAnalysis(mode) {
    if (state.analysis !== mode) {
      state.epoch += 1; // what is under way belongs to the other mode: forget it
      clearTimeout(state.watchdog);
      state.inFlight = false;
      state.rtts = [];
    }
    state.analysis = mode;
    renderBackend();
    configureModel();
    if (!state.running) return;
    setStatus(runningStatus());
    if (mode !== "loading") schedule(0);
  }

  // --- the camera: which one, and what happens when it goes away -----------------------------

  async function openCamera() {
    const chosen = localStorage.getItem("emocare.camera");
    const video = { width: { ideal: 640 }, height: { ideal: 480 } };
    if (chosen) {
      try {
        return await navigator.mediaDevices.getUserMedia({ video: { ...video, deviceId: { exact: chosen } }, audio: false });
      } catch (err) {
        if (err.name !== "OverconstrainedError" && err.name !== "NotFoundError") throw err;
        localStorage.removeItem("emocare.camera"); // that camera is gone: use the default one
      }
    }
    return navigator.mediaDevices.getUserMedia({ video: video, audio: false });
  }

  async function listCameras() {
    if (!navigator.mediaDevices.enumerateDevices) return;
    const cameras = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
    const current = state.stream && state.stream.getVideoTracks()[0];
    const inUse = current && current.getSettings ? current.getSettings().deviceId : null;
    cameraSelect.replaceChildren(
      ...cameras.map((camera, i) => {
        const option = document.createElement("option");
        option.value = camera.deviceId;
        option.textContent = camera.label || t("camera.unnamed", { n: i + 1 });
        return option;
      })
    );
    const wanted = inUse || localStorage.getItem("emocare.camera");
    if (wanted && cameras.some((c) => c.deviceId === wanted)) cameraSelect.value = wanted;
    cameraSelect.disabled = cameras.length < 2 && !!state.stream;
  }

  cameraSelect.addEventListener("change", async () => {
    localStorage.setItem("emocare.camera", cameraSelect.value);
    if (!state.running) return;
    releaseCamera();
    try {
      await useStream(await openCamera());
    } catch (err) {
      cameraGone("camera_denied", err);
    }
  });

  async function useStream(stream) {
    state.stream = stream;
    for (const track of stream.getVideoTracks()) track.addEventListener("ended", () => cameraGone("camera_ended"));
    video.srcObject = stream;
    await video.play().catch(() => {});
    listCameras();
  }

  function releaseCamera() {
    if (state.stream) state.stream.getTracks().forEach((track) => track.stop());
    state.stream = null;
    video.srcObject = null;
  }

  // The track ended on its own (unplugged, taken by another app, permission withdrawn): say so
  // plainly, with a button that starts it again; nothing else of the page is lost.
  function cameraGone(reason, err) {
    if (!state.running) return;
    stop();
    const message = t("status." + reason, { error: err ? err.message || err.name : "" });
    setStatus("camera_lost", message);
    $("camera-lost-text").textContent = message;
    cameraLost.hidden = false;
  }

  $("camera-restart").addEventListener("click", () => {
    cameraLost.hidden = true;
    start();
  });

  // Withdrawing the permission ends the track too; whichever event comes first, the message
  // says the more precise reason.
  if (navigator.permissions && navigator.permissions.query) {
    navigator.permissions
      .query({ name: "camera" })
      .then((permission) => {
        permission.addEventListener("change", () => {
          if (permission.state !== "denied") return;
          if (state.running) cameraGone("camera_revoked");
          else if (!cameraLost.hidden) {
            $("camera-lost-text").textContent = t("status.camera_revoked");
            setStatus("camera_lost", t("status.camera_revoked"));
          }
        });
      })
      .catch(() => {}); // a browser that cannot tell: the track's "ended" event still says it
  }

  // --- a hidden tab sends nothing ---------------------------------------------------------------

  document.addEventListener("visibilitychange", () => {
    if (!state.running) return;
    if (document.hidden) {
      state.paused = true;
      state.epoch += 1;
      clearTimeout(state.timer);
      clearTimeout(state.watchdog);
      state.inFlight = false;
      setStatus("paused");
    } else if (state.paused) {
      state.paused = false;
      setStatus(runningStatus());
      if (state.ready) schedule(0);
    }
  });

  // The server issues (or renews) this browser's profile cookie, HttpOnly, before the first
  // connection: the Socket.IO handshake carries it, so the history knows whose it is. Without
  // it the page still works; nothing is recorded.
  async function ensureProfile() {
    try {
      await fetch("/profile", { method: "POST", credentials: "same-origin" });
    } catch (err) {
      console.warn("no profile cookie", err);
    }
  }

  async function start() {
    if (state.running || !consent.checked) return;
    startBtn.disabled = true;
    cameraLost.hidden = true;
    setStatus("starting");
    try {
      await useStream(await openCamera());
    } catch (err) {
      startBtn.disabled = false;
      setStatus("error", t("status.camera_denied", { error: err.message || err.name }));
      return;
    }
    await video.play().catch(() => {});
    state.running = true;
    stopBtn.disabled = false;
    consentCard.classList.add("collapsed"); // consent given: keep the buttons, fold the text
    document.dispatchEvent(new CustomEvent("emocare:started"));
    if (!state.socket) {
      await ensureProfile();
      state.socket = connect();
    } else if (!state.socket.connected) state.socket.connect();
    prepareAnalysis(); // device mode: load the analysis now, and send nothing until it runs
    setStatus(runningStatus());
    if (state.ready) schedule(0);
  }

  function stop() {
    state.running = false;
    state.epoch += 1;
    clearTimeout(state.timer);
    clearTimeout(state.watchdog);
    state.inFlight = false;
    releaseCamera();
    document.dispatchEvent(new CustomEvent("emocare:stopped"));
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
    if (!state.running || state.paused || !state.ready || state.inFlight) return;
    if (!state.socket || !state.socket.connected) return;
    if (state.analysis === "loading") return; // prepareAnalysis schedules the first frame
    if (state.analysis === "device" && state.analysing) return schedule(20); // a late one finishing
    if (!video.videoWidth) return schedule(100);
    const height = Math.round((FRAME_WIDTH * video.videoHeight) / video.videoWidth);
    capture.width = FRAME_WIDTH;
    capture.height = height;
    captureContext.drawImage(video, 0, 0, FRAME_WIDTH, height);
    state.inFlight = true;
    if (state.analysis === "device") {
      analyseHere(captureContext.getImageData(0, 0, FRAME_WIDTH, height));
      return;
    }
    capture.toBlob(async (blob) => {
      if (!blob || !state.running) {
        state.inFlight = false; // the canvas gave nothing (a busy tab): try the next frame
        if (state.running) schedule(RETRY_AFTER_ERROR_MS);
        return;
      }
      const image = await blob.arrayBuffer();
      state.seq += 1;
      state.sentAt = performance.now();
      // volatile: while the connection cannot take it, the frame is dropped, not queued
      state.socket.volatile.emit("frame", { seq: state.seq, image: image });
      clearTimeout(state.watchdog);
      state.watchdog = setTimeout(() => {
        // A reply that never comes (server restart, dropped packet) must not stall the loop.
        state.inFlight = false;
        schedule(0);
      }, REPLY_TIMEOUT_MS);
    }, "image/jpeg", JPEG_QUALITY);
  }

  // The frame analysed here; only its faces' boxes and scores are sent (docs/protocol.md,
  // `scores`), never the picture, FRAMES_PER_MESSAGE frames a message, each with its age.
  // Scores are rounded to 6 decimals (their sum stays within 1e-5 of 1): about 150 bytes a
  // face. Never two messages less than FRAMES_PER_MESSAGE / TARGET_FPS s apart.
  async function analyseHere(image) {
    const epoch = state.epoch;
    const began = performance.now();
    let faces;
    state.analysing = true;
    try {
      faces = await analyzer.analyze(image);
    } catch (err) {
      if (epoch === state.epoch) fallBack(err);
      return;
    } finally {
      state.analysing = false;
    }
    state.analyseMs.push(performance.now() - began);
    if (state.analyseMs.length > 30) state.analyseMs.shift();
    if (epoch !== state.epoch) return; // stopped, hidden or switched meanwhile
    // frames of another loop or camera size, or too old, are not sent
    const same = (frame) => frame.epoch === epoch && frame.width === image.width && frame.height === image.height;
    state.pending = state.pending.filter((frame) => same(frame) && began - frame.at < MAX_FRAME_AGE_MS);
    state.pending.push({ epoch: epoch, at: began, width: image.width, height: image.height, faces: faces });
    // wait for the next frame, unless this device analyses so slowly that the oldest would be
    // over half a second old by then: then the frames so far go at once
    const oldest = performance.now() - state.pending[0].at + 1000 / TARGET_FPS + median(state.analyseMs);
    if (state.pending.length < FRAMES_PER_MESSAGE && oldest <= MAX_FRAME_AGE_MS / 2) {
      state.inFlight = false;
      schedule(1000 / TARGET_FPS - (performance.now() - began));
      drawBetween(faces, image, epoch);
      return;
    }
    const batch = state.pending.splice(0); // this message's frames: a later capture starts anew
    // a timer may fire a little early by performance.now()'s clock: wait until it says so
    let wait;
    while ((wait = state.sentAt + (FRAMES_PER_MESSAGE * 1000) / TARGET_FPS - performance.now()) > 0) {
      await new Promise((resolve) => setTimeout(resolve, Math.ceil(wait)));
    }
    if (epoch !== state.epoch) return;
    const socket = state.socket;
    if (!socket || !socket.connected) {
      state.inFlight = false; // "connect" and "ready" start the loop again
      return;
    }
    state.seq += 1;
    state.sentAt = performance.now();
    state.sentFrames = batch.length;
    socket.volatile.emit("scores", {
      seq: state.seq,
      width: image.width,
      height: image.height,
      frames: batch.map((frame) => ({
        age_ms: Math.min(MAX_FRAME_AGE_MS, Math.round(state.sentAt - frame.at)),
        faces: frame.faces.map((face) => ({
          box: face.box,
          scores: EMOTIONS.map((name) => Math.round(face.scores[name] * 1e6) / 1e6),
        })),
      })),
    });
    clearTimeout(state.watchdog);
    state.watchdog = setTimeout(() => {
      state.inFlight = false;
      schedule(0);
    }, REPLY_TIMEOUT_MS);
  }

  // A frame analysed here that waits for the next message: its boxes are drawn at once, each
  // with the label of the last answer's nearest face (the server's smoothing names moods)
  function drawBetween(faces, image, epoch) {
    const shown = state.shown;
    if (!shown || shown.epoch !== epoch || !shown.faces.length) return;
    const centre = (box) => [box[0] + box[2] / 2, box[1] + box[3] / 2];
    const distance = (a, b) => Math.hypot(centre(a)[0] - centre(b)[0], centre(a)[1] - centre(b)[1]);
    const labelled = faces.map((face) => {
      const nearest = shown.faces.reduce((best, f) => (distance(f.box, face.box) < distance(best.box, face.box) ? f : best));
      return Object.assign({}, nearest, { box: face.box });
    });
    drawFaces(labelled, { width: image.width, height: image.height });
  }

  function median(values) {
    if (!values.length) return 0;
    const sorted = values.slice().sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  // The time between frames: TARGET_FPS while round trips are short; over a slow link or a
  // busy server, one frame every 1.5 median round trips (at least MIN_FPS), so the page does
  // not keep the connection full; it speeds up again as the round trips shorten.
  function frameInterval(rtts) {
    const recent = rtts.slice(-10).map((r) => r.rtt);
    if (recent.length < 3) return 1000 / TARGET_FPS;
    return Math.min(1000 / MIN_FPS, Math.max(1000 / TARGET_FPS, 1.5 * median(recent)));
  }

  // in device mode the next capture starts early by the usual analysis time, so that its
  // scores are ready to go one interval after the last were sent
  function nextFrame() {
    const elapsed = performance.now() - state.sentAt;
    const analysing = state.analysis === "device" ? median(state.analyseMs) : 0;
    schedule(frameInterval(state.rtts) - elapsed - analysing);
  }

  function onResult(msg) {
    // the answer to the other mode's last message, after a switch: not this loop's
    if ((msg.analysis === "device") !== (state.analysis === "device")) return;
    // on this device, only the answer to the message awaited: a late one (given up on) would
    // let a second message go while frames wait for this one
    if (msg.analysis === "device" && msg.seq !== state.seq) return;
    clearTimeout(state.watchdog);
    state.inFlight = false;
    const rtt = performance.now() - state.sentAt;
    state.rtts.push({ at: performance.now(), rtt: rtt, frames: msg.analysis === "device" ? state.sentFrames : 1 });
    if (state.rtts.length > 30) state.rtts.shift();
    if (!state.running) return;
    // the answer to the frame in flight when the tab was hidden: the page stays paused
    if (state.paused) return;
    const faces = msg.faces || [];
    state.shown = { epoch: state.epoch, faces: faces };
    drawFaces(faces, msg.frame);
    // the server marks the primary face (largest, most central) and smooths each face's scores
    renderScores(faces.find((f) => f.primary) || faces[0] || null);
    if (faces.length) state.lastFaceAt = performance.now();
    setStatus(faces.length || performance.now() - state.lastFaceAt < NO_FACE_AFTER_MS ? "live" : "no_face");
    renderStats();
    nextFrame();
  }

  // every code the server sends has its text in both languages (error.<code>); the server's
  // own English message is only a fallback for a code this page does not know yet
  function errorText(msg) {
    const key = "error." + msg.code;
    return strings[key] ? t(key, { backend: msg.requested || msg.backend || "" }) : msg.message || msg.code;
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
    const frames = recent.slice(1).reduce((sum, r) => sum + r.frames, 0); // analysed frames, not messages
    const values = {
      fps: (frames / seconds).toFixed(1),
      rtt: Math.round(median(recent.map((r) => r.rtt))),
      ms: Math.round(median(state.analyseMs)),
    };
    $("stats").textContent = t(state.analysis === "device" ? "stats.device" : "stats.fps", values);
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
    // the canvas has one pixel per device pixel, so boxes and labels are sharp on HiDPI screens
    const dpr = window.devicePixelRatio || 1;
    if (overlay.width !== Math.round(width * dpr) || overlay.height !== Math.round(height * dpr)) {
      overlay.width = Math.round(width * dpr);
      overlay.height = Math.round(height * dpr);
    }
    const ctx = overlay.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
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
    frameInterval: frameInterval,
    onSocket: (hook) => {
      hooks.push(hook);
      if (state.socket) hook(state.socket);
    },
  };
  setStatus("idle");
  listCameras().catch(() => {}); // labels appear once the camera has been allowed
})();
