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

  // --- profile and settings, remembered in this browser only --------------------------------

  function profileId() {
    let id = localStorage.getItem("emocare.profile");
    if (!id) {
      id = "p-" + Math.random().toString(36).slice(2, 12);
      localStorage.setItem("emocare.profile", id);
    }
    // the history pages are rendered by the server: they learn whose history to show from this
    document.cookie = "emocare_profile=" + id + "; path=/; max-age=31536000; samesite=lax";
    return id;
  }

  const defaults = { voice: true, music: true, sensitivity: "medium", cooldown_s: 30 };
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
    $("set-cooldown").value = String(settings.cooldown_s);
  }

  function readSettings() {
    settings = {
      voice: $("set-voice").checked,
      music: $("set-music").checked,
      sensitivity: $("set-sensitivity").value,
      cooldown_s: Number($("set-cooldown").value),
    };
    localStorage.setItem("emocare.settings", JSON.stringify(settings));
    sendConfig();
  }

  function sendConfig() {
    if (socket && socket.connected) {
      socket.emit("configure", { locale: document.documentElement.lang, profile: profileId(), settings: settings });
    }
  }

  ["set-voice", "set-music", "set-sensitivity", "set-cooldown"].forEach((id) =>
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
    if (!care.speech) return;
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

  function onCare(care) {
    stopAudio();
    stopExercise();
    current = care;
    card.dataset.kind = care.kind;
    card.dataset.emotion = care.emotion;
    card.dataset.feedback = "";
    $("care-feedback").hidden = false;
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
    clearTimeout(exerciseTimer);
    exerciseTimer = null;
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
        $("breath-text").textContent = exercise.outro;
        $("breath-count").textContent = "";
        circle.dataset.phase = "";
        $("exercise-start").hidden = false;
        $("exercise-stop").hidden = true;
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
        $("breath-text").textContent = exercise.outro;
        $("breath-count").textContent = "";
        return stopExercise();
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
    speechAudio.pause();
    if (window.speechSynthesis) window.speechSynthesis.cancel();
  });
  $("care-dismiss").addEventListener("click", hideCard);

  document.querySelectorAll("#care-feedback button").forEach((button) =>
    button.addEventListener("click", () => {
      if (!current || !socket) return;
      socket.emit("care_feedback", { id: current.id, verdict: button.dataset.verdict });
      if (button.dataset.verdict !== "helpful") stopAudio();
    })
  );

  document.addEventListener("emocare:stopped", hideCard);

  app.onSocket((sock) => {
    socket = sock;
    sock.on("connect", sendConfig);
    if (sock.connected) sendConfig();
    sock.on("care", onCare);
    sock.on("care_feedback", (ack) => {
      if (!current || ack.id !== current.id) return;
      $("care-text").textContent = t("care.thanks");
      $("care-feedback").hidden = true;
      card.dataset.feedback = ack.verdict;
      if (ack.verdict !== "helpful") setTimeout(hideCard, 1500);
    });
  });
})();
