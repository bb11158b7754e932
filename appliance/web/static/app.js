// The only script: sends forms to the JSON API with the CSRF header, plays
// audio after a ground is given, draws the levels picture. No build step.
"use strict";

function csrfToken(form) {
  return (form && form.dataset.csrf) || document.querySelector('meta[name="csrf"]').content;
}

function showMessage(text, ok) {
  const box = document.getElementById("msg");
  box.textContent = text;
  box.className = ok ? "ok" : "error";
  box.hidden = false;
}

async function callApi(method, url, body, token) {
  const res = await fetch(url, {
    method: method,
    headers: {"Content-Type": "application/json", "X-CSRF-Token": token},
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = {};
  try { data = await res.json(); } catch (e) { /* not JSON */ }
  if (res.status === 401 && data.error !== "auth") {
    window.location.href = "/login";
  }
  if (!res.ok) throw new Error(data.message || ("HTTP " + res.status));
  return data;
}

function formBody(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    const v = el.value.trim();
    if (el.dataset.list) {
      const items = v.split(/[\s,、#]+/).filter(Boolean);
      if (items.length) body[el.name] = items;        // an empty optional list is left out
    }
    else if (v !== "") body[el.name] = el.type === "password" ? el.value : v;
  }
  return body;
}

function drawLevels(levels) {
  const fig = document.getElementById("levels-figure");
  const canvas = document.getElementById("levels");
  if (!fig || !canvas) return;
  fig.hidden = false;
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, half = h / 2;
  const floor = levels.floor_dbm0, top = 0;
  g.clearRect(0, 0, w, h);
  const legs = [["far", "#1f5fa8", 0], ["near", "#b5512a", half]];
  for (const [name, colour, y0] of legs) {
    const values = levels[name];
    const n = Math.max(values.length, 1);
    g.fillStyle = colour;
    values.forEach((v, i) => {
      const frac = Math.max(0, Math.min(1, (v - floor) / (top - floor)));
      const bar = frac * (half - 4);
      g.fillRect(i * w / n, y0 + half - 2 - bar, Math.max(1, w / n), bar);
    });
  }
  g.strokeStyle = "#999";
  g.beginPath(); g.moveTo(0, half); g.lineTo(w, half); g.stroke();
}

function play(data) {
  const audio = document.getElementById("audio");
  audio.hidden = false;
  audio.src = data.audio_url;
  const info = document.getElementById("listen-info");
  info.textContent = data.ground.label_ja + "（" + data.ground.article + "） " + data.reference
    + " — " + data.duration_s.toFixed(1) + " s";
  drawLevels(data.levels);
  audio.play().catch(() => { /* the user can press play */ });
}

function next(form, data) {
  const target = form.dataset.next;
  if (target === "player") return play(data);
  if (target === "reload") return window.location.reload();
  if (target) window.location.href = target.replace(/\{(\w+)\}/g, (m, k) => encodeURIComponent(data[k]));
}

document.addEventListener("DOMContentLoaded", () => {
  // search forms: leave empty filters out of the address (the API reads absent as "any")
  for (const form of document.querySelectorAll("form[method=get]")) {
    form.addEventListener("submit", () => {
      for (const el of form.elements) if (el.name && el.value === "") el.disabled = true;
    });
  }
  for (const form of document.querySelectorAll("form[data-api]")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = form.querySelector("button[type=submit]");
      if (button) button.disabled = true;
      try {
        const data = await callApi(form.dataset.method || "POST", form.dataset.api,
                                   formBody(form), csrfToken(form));
        for (const el of form.querySelectorAll("input[type=password]")) el.value = "";
        showMessage("OK", true);
        next(form, data);
      } catch (err) {
        showMessage(err.message, false);
      } finally {
        if (button) button.disabled = false;
      }
    });
  }
  const logout = document.getElementById("logout");
  if (logout) logout.addEventListener("click", async () => {
    try { await callApi("DELETE", "/api/session", undefined, csrfToken(null)); } catch (e) { /* gone */ }
    window.location.href = "/login";
  });
});
