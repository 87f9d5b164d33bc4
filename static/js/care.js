/* EmoCare care card: the text, its voice, music, a breathing or grounding guide, help lines,
 * feedback, and the care settings (kept in this browser, sent to the server on connect).
 *
 * Audio only ever starts after the person clicked "Start camera" (a user gesture); music
 * never starts by itself: the player is offered, the person presses play.
 */
(function () {
  "use strict";

  const app = window.emocare;
  const t = app.t;
  const $ = (id) => document.getElementById(id);
  const card = $("care");
  const speechAudio = $("speech-audio");
  const musicAudio = $("music-audio");
  let socket = null;
  let current = null;
  let exerciseTimer = null;

  // --- settings, remembered in this browser only -------------------------------------------
  // The profile id (the key to this person's history) is an HttpOnly cookie the server issues
  // (app.js asks for it before connecting): this script never sees it. Pages of an earlier
  // version kept a copy here; it is not needed any more.
  localStorage.removeItem("emocare.profile");

  // cooldown_s null: the server's configured cooldown
  const defaults = { voice: true, music: true, sensitivity: "medium", cooldown_s: null, history: true };
  function loadSettings() {
    try {
      return Object.assign({}, defaults, JSON.parse(localStorage.getItem("emocare.settings") || "{}"));
    } catch (err) {
      return Object.assign({}, defaults);
    }
  }
  let settings = loadSettings();

  function showSettings() {
    $("set-voice").checked = settings.voice;
    $("set-music").checked = settings.music;
    $("set-sensitivity").value = settings.sensitivity;
    $("set-cooldown").value = settings.cooldown_s ? String(settings.cooldown_s) : "";
    $("set-history").checked = settings.history;
    $("history-off").hidden = settings.history;
  }

  function readSettings() {
    const cooldown = $("set-cooldown").value;
    settings = {
      voice: $("set-voice").checked,
      music: $("set-music").checked,
      sensitivity: $("set-sensitivity").value,
      cooldown_s: cooldown ? Number(cooldown) : null,
      history: $("set-history").checked,
    };
    localStorage.setItem("emocare.settings", JSON.stringify(settings));
    $("history-off").hidden = settings.history;
    sendConfig();
  }

  function sendConfig() {
    if (socket && socket.connected) {
      socket.emit("configure", { locale: document.documentElement.lang, settings: settings });
    }
  }

  ["set-voice", "set-music", "set-sensitivity", "set-cooldown", "set-history"].forEach((id) =>
    $(id).addEventListener("change", readSettings)
  );
  showSettings();

  // --- the card ------------------------------------------------------------------------------

  function stopAudio() {
    speechAudio.pause();
    musicAudio.pause();
    if (window.speechSynthesis) window.speechSynthesis.cancel();
  }

  function hideCard() {
    stopAudio();
    stopExercise();
    card.hidden = true;
    current = null;
  }

  function speak(care) {
    const box = $("care-speech");
    box.hidden = !care.speech;
    $("speech-note").textContent = "";
    speechAudio.removeAttribute("src");
    if (!care.speech || care.speech.engine === "pending") return; // its voice follows (care_speech)
    if (care.speech.url) {
      speechAudio.src = care.speech.url;
      speechAudio.play().catch(() => {}); // allowed: the person clicked Start camera
    } else {
      $("speech-note").textContent = t("care.browser_voice");
      speakInBrowser(care.text, care.locale);
    }
  }

  function speakInBrowser(text, locale) {
    if (!window.speechSynthesis) return;
    const utterance = new SpeechSynthesisUtterance(text);
    utterance.lang = locale === "zh-CN" ? "zh-CN" : "en-US";
    utterance.rate = 0.9;
    window.speechSynthesis.cancel();
    window.speechSynthesis.speak(utterance);
  }

  function showMusic(music) {
    $("care-music").hidden = !music;
    musicAudio.pause();
    if (!music) return musicAudio.removeAttribute("src");
    $("music-title").textContent = music.title;
    musicAudio.src = music.url;
    musicAudio.volume = 0.6;
  }

  function showHelp(help) {
    $("care-help").hidden = !help;
    const list = $("help-lines");
    list.textContent = "";
    if (!help) return;
    $("help-disclaimer").textContent = help.disclaimer;
    help.lines.forEach((line) => {
      const item = document.createElement("li");
      item.textContent = line.name + (line.region ? " (" + line.region + ")" : "") + " ";
      if (line.phone) {
        const link = document.createElement("a");
        link.href = "tel:" + line.phone.replace(/\s/g, "");
        link.textContent = line.phone;
        item.appendChild(link);
      } else if (line.url) {
        const link = document.createElement("a");
        link.href = line.url;
        link.rel = "noopener";
        link.textContent = line.url;
        item.appendChild(link);
      }
      list.appendChild(item);
    });
  }

  let pending = null; // a card that arrived while the person was busy with the current one
  let speechHushed = false; // the person pressed Stop on this card's voice

  function busy() {
    return exerciseTimer !== null || (!musicAudio.paused && !musicAudio.ended);
  }

  function onCare(care) {
    if (current && busy()) {
      // never cut off a breathing exercise or a song the person chose to play
      pending = { care: care, at: Date.now() };
      return;
    }
    showCard(care);
  }

  function showPending() {
    if (!pending) return;
    if (Date.now() - pending.at > 120000) {
      pending = null; // the moment has passed
      return;
    }
    if (busy()) return; // still breathing or listening: wait for the next end
    const waiting = pending.care;
    pending = null;
    showCard(waiting);
  }

  function onSpeech(speech) {
    if (pending && pending.care.id === speech.id) pending.care.speech = speech;
    if (!current || current.id !== speech.id) return;
    current.speech = speech;
    // the voice comes a moment after the card: not if the person already answered or hushed it
    if (card.dataset.feedback || speechHushed) {
      $("care-speech").hidden = false;
      if (speech.url) speechAudio.src = speech.url; // still there for the Play button
      return;
    }
    speak(current);
  }

  function showCard(care) {
    stopAudio();
    stopExercise();
    speechHushed = false;
    current = care;
    card.dataset.kind = care.kind;
    card.dataset.emotion = care.emotion;
    card.dataset.feedback = "";
    $("care-feedback").hidden = false;
    $("care-felt").hidden = true;
    document.querySelectorAll("#care-feedback button").forEach((button) => (button.disabled = false));
    // show the card first, then write into its live region, so screen readers announce it
    card.hidden = false;
    $("care-text").textContent = "";
    setTimeout(() => {
      $("care-text").textContent = care.text;
    }, 50);
    speak(care);
    showMusic(settings.music ? care.music : null);
    showExercise(care.exercise);
    showHelp(care.help);
  }

  // --- breathing and grounding guide ---------------------------------------------------------

  function showExercise(exercise) {
    $("care-exercise").hidden = !exercise;
    if (!exercise) return;
    $("care-exercise").dataset.kind = exercise.kind;
    $("exercise-name").textContent = exercise.name;
    $("exercise-intro").textContent = exercise.intro;
    $("breath-text").textContent = "";
    $("breath-count").textContent = "";
    $("breath-circle").hidden = exercise.kind !== "breathing";
    $("exercise-start").hidden = false;
    $("exercise-stop").hidden = true;
  }

  function stopExercise() {
    const wasRunning = exerciseTimer !== null;
    clearTimeout(exerciseTimer);
    exerciseTimer = null;
    if (wasRunning) setTimeout(showPending, 3000); // a moment of quiet before anything new
    const circle = $("breath-circle");
    circle.style.transitionDuration = "0.6s";
    circle.dataset.phase = "";
    $("exercise-start").hidden = false;
    $("exercise-stop").hidden = true;
  }

  function countdown(seconds, label, then) {
    let left = seconds;
    const tick = () => {
      $("breath-count").textContent = left > 0 ? String(left) : "";
      if (left <= 0) return then();
      left -= 1;
      exerciseTimer = setTimeout(tick, 1000);
    };
    $("breath-text").textContent = label;
    tick();
  }

  function runBreathing(exercise) {
    const circle = $("breath-circle");
    const steps = [];
    for (let cycle = 1; cycle <= exercise.cycles; cycle++) {
      exercise.phases.forEach((phase) => steps.push({ phase: phase, cycle: cycle }));
    }
    const next = (i) => {
      if (i >= steps.length) {
        $("breath-count").textContent = "";
        stopExercise();
        $("breath-text").textContent = exercise.outro;
        return;
      }
      const { phase, cycle } = steps[i];
      circle.style.transitionDuration = phase.seconds + "s";
      // CSS grows the circle on inhale and shrinks it on exhale; a hold keeps it where it is
      if (phase.action !== "hold") circle.dataset.phase = phase.action;
      const label = phase.text + " · " + t("care.cycle", { n: cycle, total: exercise.cycles });
      countdown(phase.seconds, label, () => next(i + 1));
    };
    next(0);
  }

  function runGrounding(exercise) {
    const next = (i) => {
      if (i >= exercise.steps.length) {
        $("breath-count").textContent = "";
        stopExercise();
        $("breath-text").textContent = exercise.outro;
        return;
      }
      countdown(exercise.steps[i].seconds, exercise.steps[i].text, () => next(i + 1));
    };
    next(0);
  }

  $("exercise-start").addEventListener("click", () => {
    if (!current || !current.exercise) return;
    stopAudio();
    $("exercise-start").hidden = true;
    $("exercise-stop").hidden = false;
    if (current.exercise.kind === "breathing") runBreathing(current.exercise);
    else runGrounding(current.exercise);
  });
  $("exercise-stop").addEventListener("click", stopExercise);

  // --- controls and feedback -----------------------------------------------------------------

  $("speech-play").addEventListener("click", () => {
    if (!current || !current.speech) return;
    if (current.speech.url) {
      speechAudio.currentTime = 0;
      speechAudio.play().catch(() => {});
    } else {
      speakInBrowser(current.text, current.locale);
    }
  });
  $("speech-stop").addEventListener("click", () => {
    speechHushed = true;
    speechAudio.pause();
    if (window.speechSynthesis) window.speechSynthesis.cancel();
  });
  $("care-dismiss").addEventListener("click", () => {
    pending = null; // "go away" covers what was waiting, too
    hideCard();
  });

  function answer(verdict, felt) {
    if (!current || !socket || card.dataset.feedback === "sent") return;
    card.dataset.feedback = "sent"; // one answer per card
    document.querySelectorAll("#care-feedback button, #care-felt button").forEach((b) => (b.disabled = true));
    $("care-felt").hidden = true;
    const message = { id: current.id, verdict: verdict };
    if (felt) message.felt = felt;
    socket.emit("care_feedback", message);
    if (verdict !== "helpful") {
      pending = null; // "not now" means nothing else now, either
      stopAudio();
    }
  }

  document.querySelectorAll("#care-feedback button").forEach((button) =>
    button.addEventListener("click", () => {
      if (!current || !socket || card.dataset.feedback) return;
      if (button.dataset.verdict !== "not_me") return answer(button.dataset.verdict);
      // "that's not how I feel": an optional "I feel …" first (never the card's own mood)
      card.dataset.feedback = "choosing";
      document.querySelectorAll("#care-felt button").forEach((b) => {
        b.disabled = false;
        b.hidden = b.dataset.felt === current.emotion;
      });
      $("care-felt").hidden = false;
      $("care-felt").querySelector("button:not([hidden])").focus();
    })
  );
  document.querySelectorAll("#care-felt button").forEach((button) =>
    button.addEventListener("click", () => answer("not_me", button.dataset.felt))
  );

  // --- what "that's not how I feel" taught, in the settings ----------------------------------

  function showLearned(learned) {
    const list = $("learned-list");
    list.replaceChildren();
    const emotions = Object.keys(learned || {});
    emotions.forEach((emotion) => {
      const item = document.createElement("li");
      const key = learned[emotion] < 0.15 ? "learned.a_little" : "learned.more";
      item.textContent = t(key).replaceAll("{emotion}", t("emotion." + emotion));
      item.dataset.emotion = emotion;
      list.append(item);
    });
    $("learned-none").hidden = emotions.length > 0;
    $("learned-lasting").hidden = emotions.length === 0;
    $("learned-reset").hidden = emotions.length === 0;
  }
  $("learned-reset").addEventListener("click", () => {
    if (socket && socket.connected) socket.emit("configure", { forget_learned: true });
  });

  musicAudio.addEventListener("ended", showPending);
  musicAudio.addEventListener("pause", () => setTimeout(showPending, 3000));
  document.addEventListener("emocare:stopped", () => {
    pending = null;
    hideCard();
  });

  app.onSocket((sock) => {
    socket = sock;
    sock.on("connect", sendConfig);
    if (sock.connected) sendConfig();
    sock.on("care", onCare);
    sock.on("care_speech", onSpeech);
    sock.on("care_feedback", (ack) => {
      if (!current || ack.id !== current.id) return;
      $("care-text").textContent = t("care.thanks");
      $("care-feedback").hidden = true;
      card.dataset.feedback = ack.verdict;
      if (ack.verdict !== "helpful") setTimeout(hideCard, 1500);
      if (ack.verdict === "not_me") sendConfig(); // the settings show what it taught
    });
    sock.on("configured", (settings) => showLearned(settings.learned));
  });
})();
