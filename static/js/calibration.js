/* EmoCare relaxed-face calibration: "look at the camera with a relaxed face" for about 5 s.
 *
 * The server does the work (docs/protocol.md, `calibrate` and `calibration`): it keeps the
 * scores of this connection's next frames, never the frames, and answers `done` or `refused`
 * with a reason. This script offers the step once, after consent, when the camera is live and
 * `configured` says this person is not calibrated; it is never forced and the stream goes on
 * meanwhile. "Not now" and a finished calibration are remembered in this browser, so the
 * offer never comes back unasked; Care settings can start it again or forget it at any time.
 */
(function () {
  "use strict";

  const app = window.emocare;
  const t = app.t;
  const $ = (id) => document.getElementById(id);
  const OFFER_KEY = "emocare.calibration"; // "declined", "tried" or "done": not offered again unasked
  const THANKS_FOR_MS = 8000;
  const card = $("calib");
  const progress = $("calib-progress");
  const buttons = {
    start: $("calib-start"),
    retry: $("calib-retry"),
    later: $("calib-later"),
    cancel: $("calib-cancel"),
    close: $("calib-close"),
  };

  let socket = null;
  // what the server said in its last `configured`; calibrated null until then
  const known = { calibrated: null, backend: null, care: false };
  let step = ""; // "", "offer", "running", "done", "refused"
  let offered = false; // at most once a page, and only while nothing is remembered
  let live = false; // a result has arrived since the camera started: frames are flowing
  let duration = 5;
  let closeTimer = null;
  let messageTimer = null;

  // --- the card ------------------------------------------------------------------------------

  const SHOWN = {
    offer: ["start", "later"],
    running: ["cancel"],
    done: ["close"],
    refused: ["retry", "close"],
  };

  function show(next, message) {
    step = next;
    clearTimeout(closeTimer);
    clearTimeout(messageTimer);
    card.dataset.step = next;
    card.hidden = !next;
    $("calib-why").hidden = next !== "offer";
    $("calib-run").hidden = next !== "running";
    for (const [name, button] of Object.entries(buttons)) button.hidden = !(SHOWN[next] || []).includes(name);
    // the live region is written after the card is shown, so screen readers announce it
    $("calib-message").textContent = "";
    if (message) messageTimer = setTimeout(() => ($("calib-message").textContent = message), 50);
    renderSettings();
  }

  function setProgress(share) {
    const value = Math.max(0, Math.min(1, share || 0));
    progress.value = Math.round(value * 100);
    $("calib-left").textContent = t("calib.left", { seconds: Math.ceil(duration * (1 - value)) });
  }

  function offerable() {
    return (
      step === "" &&
      !offered &&
      live &&
      app.state.running &&
      known.calibrated === false &&
      known.care &&
      known.backend === "emocare" && // other models cannot be calibrated: do not offer a refusal
      !localStorage.getItem(OFFER_KEY)
    );
  }

  function maybeOffer() {
    if (!offerable()) return;
    offered = true;
    show("offer");
  }

  function begin() {
    if (!socket || !socket.connected || !app.state.running) return;
    // once the person has tried (or declined), the step is only ever offered in the settings
    if (!localStorage.getItem(OFFER_KEY)) localStorage.setItem(OFFER_KEY, "tried");
    duration = 5;
    setProgress(0);
    show("running", t("calib.look"));
    buttons.cancel.focus(); // the button pressed is gone: keep the focus in the card
    socket.emit("calibrate", { action: "start" });
  }

  function finish(next, message) {
    show(next, message);
    const target = next === "refused" ? buttons.retry : buttons.close;
    if (card.contains(document.activeElement) || document.activeElement === document.body) target.focus();
    if (next === "done") closeTimer = setTimeout(() => step === "done" && show(""), THANKS_FOR_MS);
  }

  buttons.start.addEventListener("click", begin);
  buttons.retry.addEventListener("click", begin);
  buttons.later.addEventListener("click", () => {
    localStorage.setItem(OFFER_KEY, "declined");
    show("");
  });
  buttons.cancel.addEventListener("click", () => {
    if (socket && socket.connected) socket.emit("calibrate", { action: "cancel" });
    show(""); // the server's "cancelled" follows; nothing more to show
  });
  buttons.close.addEventListener("click", () => show(""));

  // --- the settings panel --------------------------------------------------------------------

  function renderSettings() {
    const state = $("calib-state");
    const again = $("calib-again");
    const forget = $("calib-forget");
    const connected = !!(socket && socket.connected);
    if (known.calibrated === null) {
      if (state.dataset.calibrated !== "") {
        state.dataset.calibrated = "";
        state.textContent = t("calib.state_unknown");
      }
    } else if (state.dataset.calibrated !== String(known.calibrated)) {
      state.dataset.calibrated = String(known.calibrated);
      state.textContent = t(known.calibrated ? "calib.state_yes" : "calib.state_no");
    }
    const label = t(known.calibrated ? "calib.again" : "calib.start");
    if (again.textContent !== label) again.textContent = label;
    again.disabled = !(connected && live && app.state.running && known.care) || step === "running";
    forget.hidden = !known.calibrated;
    forget.disabled = !connected || step === "running";
  }

  $("calib-again").addEventListener("click", begin);
  $("calib-forget").addEventListener("click", () => {
    if (socket && socket.connected) socket.emit("calibrate", { action: "reset" });
  });

  // --- the server's answers ------------------------------------------------------------------

  function onCalibration(msg) {
    msg = msg || {};
    if (msg.state === "running") {
      if (step !== "running") return; // a frame in flight when the person pressed Cancel
      if (msg.duration_s) duration = msg.duration_s;
      setProgress(msg.progress);
    } else if (msg.state === "done") {
      // kept by the server, even when it crossed a Cancel on the way: say so
      setProgress(1);
      localStorage.setItem(OFFER_KEY, "done");
      known.calibrated = true;
      finish("done", t("calib.done"));
    } else if (msg.state === "refused") {
      if (step !== "running") return;
      const key = "calib.refused_" + msg.code;
      finish("refused", t(key) !== key ? t(key) : t("calib.refused_other"));
    } else if (msg.state === "cancelled") {
      if (step === "running") show("");
    } else if (msg.state === "reset") {
      known.calibrated = false;
      renderSettings();
      $("calib-state").textContent = t("calib.forgotten"); // until the next change of state
    }
  }

  function onConfigured(msg) {
    msg = msg || {};
    known.calibrated = !!msg.calibrated;
    known.backend = msg.backend || null;
    // without care on the server there are no care preferences to keep a baseline with
    known.care = !!(msg.settings && "sensitivity" in msg.settings);
    renderSettings();
    maybeOffer();
  }

  function onError(msg) {
    if (!msg || msg.code !== "bad_calibration") return;
    const key = "error." + msg.code;
    if (step === "running") finish("refused", t(key));
    else $("calib-state").textContent = t(key);
  }

  document.addEventListener("emocare:started", () => {
    live = false; // wait for the first answer: the model may still be warming up
    renderSettings();
  });
  document.addEventListener("emocare:stopped", () => {
    if (step === "running" && socket && socket.connected) socket.emit("calibrate", { action: "cancel" });
    live = false;
    show("");
  });

  app.onSocket((sock) => {
    socket = sock;
    sock.on("configured", onConfigured);
    sock.on("calibration", onCalibration);
    sock.on("error", onError);
    sock.on("result", () => {
      if (!app.state.running) return;
      if (!live) {
        live = true;
        maybeOffer();
      }
      renderSettings();
    });
    sock.on("disconnect", () => {
      if (step === "running") finish("refused", t("calib.interrupted")); // the server forgot it
      renderSettings();
    });
    sock.on("connect", renderSettings);
  });
  renderSettings();
})();
