/* EmoCare history page: share-of-time charts and a timeline per session (Chart.js, vendored). */
(function () {
  "use strict";

  const strings = JSON.parse(document.getElementById("strings").textContent);

  // asked here, not in an inline handler: the page's Content-Security-Policy runs no inline script
  const deleteForm = document.getElementById("delete-form");
  if (deleteForm) {
    deleteForm.addEventListener("submit", (event) => {
      if (!window.confirm(deleteForm.dataset.confirm)) event.preventDefault();
    });
  }
  // everything was deleted, the relaxed-face baseline too: the live page may offer the step
  // again, as to someone new (it remembered here that it had been declined or done)
  if (document.getElementById("deleted-notice")) localStorage.removeItem("emocare.calibration");
  const summaries = JSON.parse(document.getElementById("summaries").textContent);
  const lang = document.documentElement.lang;
  const EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
  const COLORS = {
    angry: "#d0583b",
    disgust: "#8a8f3a",
    fear: "#7d5ba6",
    happy: "#e8b339",
    sad: "#4a78b5",
    surprise: "#3fb3a6",
    neutral: "#9aa5a0",
  };
  const t = (key, values) => {
    let text = strings[key] || key;
    for (const [name, value] of Object.entries(values || {})) text = text.replace("{" + name + "}", value);
    return text;
  };
  const label = (name) => t("emotion." + name);

  document.querySelectorAll(".when[data-ts]").forEach((el) => {
    el.textContent = new Date(Number(el.dataset.ts) * 1000).toLocaleString(lang);
  });

  if (!window.Chart) return;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;

  ["today", "week"].forEach((key) => {
    const canvas = document.getElementById("chart-" + key);
    const summary = summaries[key];
    if (!canvas || !summary.seconds) return;
    new Chart(canvas, {
      type: "doughnut",
      data: {
        labels: EMOTIONS.map(label),
        datasets: [{ data: EMOTIONS.map((e) => summary.share[e] * 100), backgroundColor: EMOTIONS.map((e) => COLORS[e]) }],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        plugins: {
          legend: { position: "right" },
          tooltip: { callbacks: { label: (ctx) => ctx.label + ": " + ctx.parsed.toFixed(1) + "%" } },
        },
      },
    });
  });

  let timeline = null;
  async function showSession(button) {
    document.querySelectorAll(".session-button").forEach((b) => b.removeAttribute("aria-current"));
    button.setAttribute("aria-current", "true");
    const response = await fetch("sessions/" + button.dataset.session + ".json");
    if (!response.ok) return;
    const data = await response.json();
    const start = data.session.started_at;
    const minutes = (ts) => (ts - start) / 60;
    const datasets = EMOTIONS.map((e) => ({
      label: label(e),
      data: data.samples.map((s) => ({ x: minutes(s.ts), y: s[e] })),
      borderColor: COLORS[e],
      backgroundColor: COLORS[e],
      pointRadius: 0,
      borderWidth: 2,
      tension: 0.2,
    }));
    datasets.push({
      type: "scatter",
      label: t("history.care_marker"),
      data: data.care.map((c) => ({ x: minutes(c.ts), y: 1.05, kind: c.kind, feedback: c.feedback })),
      pointStyle: "triangle",
      pointRadius: 8,
      borderColor: "#22302c",
      backgroundColor: "#22302c",
    });
    document.getElementById("timeline-title").textContent =
      "· " + new Date(start * 1000).toLocaleString(lang) + " · " + data.samples.length + " s";
    const canvas = document.getElementById("timeline");
    canvas.dataset.samples = String(data.samples.length);
    canvas.dataset.care = String(data.care.length);
    if (timeline) timeline.destroy();
    timeline = new Chart(canvas, {
      type: "line",
      data: { datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: true,
        scales: {
          x: { type: "linear", title: { display: true, text: "min" } },
          y: { min: 0, max: 1.1, ticks: { callback: (v) => (v <= 1 ? Math.round(v * 100) + "%" : "") } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (ctx) =>
                ctx.raw.kind
                  ? t("kind." + ctx.raw.kind) + (ctx.raw.feedback ? " (" + ctx.raw.feedback + ")" : "")
                  : ctx.dataset.label + ": " + Math.round(ctx.parsed.y * 100) + "%",
            },
          },
        },
      },
    });
  }

  const buttons = document.querySelectorAll(".session-button");
  buttons.forEach((b) => b.addEventListener("click", () => showSession(b)));
  if (buttons.length) showSession(buttons[0]);
})();
