/* hanlab dashboard: polls the control API (/api/v1) once a second and renders the lab.
 *
 * Plain JavaScript, no build step, no network access beyond the daemon's own origin.
 * Data shapes: hanlab/runtime/service.py. Charts: vendor/uPlot (MIT).
 *
 * Stable hooks for tests and users: data-testid="rig-<name>", "job-progress" (with
 * data-state, data-steps-done, data-steps-total, data-job-id), "timing-plot-<band>" (with
 * data-points: the number of points plotted), "ota" (its rows "ota-<device short address>"
 * with data-progress 0-100 and data-status: in-flight or the Upgrade End status name),
 * "exchanges", "events", "gaps", "login".
 */
"use strict";

(function () {
  const API = new URL("../api/v1/", window.location.href);
  const POLL_MS = 1000;
  const POLL_HIDDEN_MS = 5000;
  const TOKEN_KEY = "hanlab.token";
  const MAX_SAMPLES_PER_BAND = 5000;
  const EXCHANGE_ROWS = 20;
  const EVENT_ROWS = 30;
  const STEP_ROWS = 10;
  const SPARK_POINTS = 60;

  // Okabe–Ito palette (colour-blind safe); status is also shown by glyph, never colour alone.
  const SEGMENTS = [
    { key: "downstream", label: "downstream (DUIS → CH)", colour: "#0072B2" },
    { key: "han_command", label: "HAN command", colour: "#E69F00" },
    { key: "turnaround", label: "device turnaround", colour: "#CC79A7" },
    { key: "han_response", label: "HAN response", colour: "#009E73" },
    { key: "upstream", label: "upstream (CH → DUIS)", colour: "#56B4E9" },
  ];
  const ECDF_SERIES = [
    { key: "end_to_end", label: "end-to-end", colour: "#0072B2", width: 2 },
    { key: "han_command", label: "HAN command", colour: "#E69F00", width: 2 },
  ];
  // ZCL status names of an Upgrade End Request (ZCL 07-5123 §11.13.9; hanlab/zigbee/ota.py).
  const OTA_STATUS = { 0: "SUCCESS", 0x95: "ABORT", 0x96: "INVALID_IMAGE", 0x99: "REQUIRE_MORE_IMAGE" };
  const OTA_ROWS = 32;
  const STATUS_GLYPH = { passed: "✓", failed: "✗", skipped: "–", pending: "·", running: "▸" };

  const state = {
    token: null,
    polling: false,
    timer: null,
    tick: 0,
    lab: null,
    rigs: [],
    selectedRig: null,
    userSelected: false,
    scenarios: null,
    samples: new Map(), // rig -> Map(band -> {seen:Set, end_to_end:[], han_command:[]})
    plots: new Map(), // band -> {uplot, el, points}
    fps: new Map(), // "rig/sniffer" -> [frames_per_s, ...]
    lastJobList: [],
    shownJob: null,
  };
  window.hanlabDashboard = state; // for debugging in the browser console

  class AuthError extends Error {}
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // ---------------------------------------------------------------- small helpers

  /** Build a DOM element: h("td", {class: "num", title: "x"}, "text", childNode, ...). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "style") Object.assign(el.style, value);
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const $ = (id) => document.getElementById(id);

  function fill(el, ...children) {
    el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  }

  function tbody(tableId, rows, emptyText, columns) {
    const body = $(tableId).tBodies[0];
    if (!rows.length) {
      fill(body, h("tr", {}, h("td", { class: "empty", colspan: columns }, emptyText)));
    } else {
      fill(body, rows);
    }
  }

  function utcTime(tsNs) {
    if (tsNs === null || tsNs === undefined) return "–";
    const d = new Date(Number(tsNs) / 1e6);
    return d.toISOString().slice(11, 23);
  }

  function utcDateTime(tsNs) {
    if (tsNs === null || tsNs === undefined) return "–";
    const d = new Date(Number(tsNs) / 1e6);
    return d.toISOString().slice(0, 19).replace("T", " ");
  }

  const nsToMs = (ns) => (ns === null || ns === undefined ? null : Number(ns) / 1e6);
  const usToMs = (us) => (us === null || us === undefined ? null : Number(us) / 1e3);

  function fmtMs(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
    if (ms >= 10000) return ms.toFixed(0);
    if (ms >= 100) return ms.toFixed(1);
    return ms.toFixed(2);
  }

  function fmtNumber(n) {
    return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-GB");
  }

  function bandLabel(band) {
    if (band === "2.4GHz") return "2.4 GHz";
    if (band === "subGHz") return "sub-GHz";
    return band || "–";
  }

  function badge(text, kind) {
    return h("span", { class: `badge badge-${kind || text}` }, text);
  }

  function percentile(sorted, p) {
    if (!sorted.length) return null;
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[rank];
  }

  function durationText(startNs, endNs) {
    if (!startNs) return "";
    const end = endNs || Date.now() * 1e6;
    const s = Math.max(0, (Number(end) - Number(startNs)) / 1e9);
    if (s < 60) return `${s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    return `${m} min ${Math.round(s - m * 60)} s`;
  }

  // ---------------------------------------------------------------- API access

  async function api(path, options) {
    const init = Object.assign({ cache: "no-store" }, options || {});
    init.headers = Object.assign(
      { Accept: "application/json", Authorization: `Bearer ${state.token}` },
      init.headers || {},
    );
    let response;
    try {
      response = await fetch(new URL(path, API), init);
    } catch (error) {
      throw new ApiError(0, `cannot reach the daemon (${error.message})`);
    }
    if (response.status === 401) throw new AuthError("the token was refused");
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_ignored) {
      body = null;
    }
    if (!response.ok) {
      // The API answers {"error": {"status", "message", "field"}}.
      const error = body && body.error;
      const detail =
        (error && typeof error === "object" ? error.message : error) ||
        text.slice(0, 200) ||
        response.statusText;
      const hint = response.status === 403 ? " (use the operator token to queue or cancel jobs)" : "";
      throw new ApiError(response.status, `${response.status}: ${detail}${hint}`);
    }
    return body;
  }

  /** Like api(), but a failure other than 401 gives {error} instead of throwing. */
  async function apiSoft(path) {
    try {
      return { data: await api(path) };
    } catch (error) {
      if (error instanceof AuthError) throw error;
      return { error: error.message };
    }
  }

  const rigPath = (rig, tail) => `rigs/${encodeURIComponent(rig)}${tail}`;

  // ---------------------------------------------------------------- token and login

  function tokenFromFragment() {
    if (!window.location.hash) return null;
    const params = new URLSearchParams(window.location.hash.slice(1));
    const token = params.get("token");
    if (token !== null) {
      // Remove the token from the address bar (and so from history and screenshots).
      params.delete("token");
      const rest = params.toString();
      const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : "");
      window.history.replaceState(null, "", url);
    }
    return token;
  }

  function showLogin(reason) {
    stopPolling();
    setConnection("auth", "sign-in needed");
    $("logout").hidden = true;
    if (reason) $("login-reason").textContent = reason;
    const dialog = $("login");
    if (!dialog.open) dialog.showModal();
    $("login-token").focus();
  }

  function onLogin(event) {
    event.preventDefault();
    const token = $("login-token").value.trim();
    if (!token) return;
    setToken(token);
    $("login-token").value = "";
    $("login").close();
    startPolling();
  }

  function setToken(token) {
    state.token = token;
    try {
      window.sessionStorage.setItem(TOKEN_KEY, token);
    } catch (_ignored) {
      /* storage disabled: the token lives in memory only */
    }
  }

  function signOut() {
    state.token = null;
    try {
      window.sessionStorage.removeItem(TOKEN_KEY);
    } catch (_ignored) {
      /* nothing stored */
    }
    showLogin("Signed out. Enter a token to continue.");
  }

  // ---------------------------------------------------------------- polling

  function startPolling() {
    if (state.polling) return;
    state.polling = true;
    $("logout").hidden = false;
    poll();
  }

  function stopPolling() {
    state.polling = false;
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
  }

  /** Poll now (after a click or a submitted job) without starting a second loop. */
  function pollNow() {
    if (!state.polling) return;
    if (state.busy) {
      state.again = true;
      return;
    }
    clearTimeout(state.timer);
    poll();
  }

  async function poll() {
    if (!state.polling || state.busy) return;
    state.busy = true;
    try {
      await refresh();
      setConnection("live", `live · updated ${new Date().toISOString().slice(11, 19)} UTC`);
    } catch (error) {
      if (error instanceof AuthError) {
        state.token = null;
        try {
          window.sessionStorage.removeItem(TOKEN_KEY);
        } catch (_ignored) {
          /* nothing stored */
        }
        showLogin("The daemon refused the token (401). Enter a valid API token.");
        return;
      }
      setConnection("error", error.message);
      console.error(error);
    } finally {
      state.busy = false;
    }
    if (!state.polling) return;
    const delay = state.again ? 0 : document.hidden ? POLL_HIDDEN_MS : POLL_MS;
    state.again = false;
    state.timer = setTimeout(poll, delay);
  }

  function setConnection(kind, text) {
    const el = $("connection");
    el.dataset.state = kind;
    $("connection-text").textContent = text;
  }

  async function refresh() {
    state.tick += 1;
    if (!state.lab || state.tick % 30 === 1) {
      // The lab's name and host are decoration: a failure here must not blank the page.
      const lab = await apiSoft("lab");
      if (lab.data) {
        state.lab = lab.data;
        renderLab(state.lab);
      } else {
        $("lab-meta").textContent = `lab information unavailable (${lab.error})`;
      }
    }
    if (!state.scenarios || state.tick % 60 === 1) {
      const result = await apiSoft("scenarios");
      if (result.data) {
        state.scenarios = result.data;
        renderScenarioForm();
      }
    }
    state.rigs = await api("rigs");
    chooseRig();
    renderRigs();
    const rig = state.rigs.find((r) => r.name === state.selectedRig);
    if (!rig) return;
    $("selected-rig").textContent = rig.name;

    const [exchanges, timings, events, captures, job, ota] = await Promise.all([
      apiSoft(rigPath(rig.name, "/exchanges?limit=100")),
      apiSoft(rigPath(rig.name, "/timings")),
      apiSoft(rigPath(rig.name, "/events?limit=100")),
      state.tick % 5 === 1 || !state.captures ? apiSoft(rigPath(rig.name, "/captures")) : null,
      loadJob(rig),
      apiSoft(rigPath(rig.name, "/ota")),
    ]);
    if (captures) state.captures = captures;
    if (exchanges.data) addSamples(rig.name, exchanges.data);
    renderJob(job, rig);
    renderTimings(rig, timings);
    renderOta(rig, ota);
    renderExchanges(exchanges);
    renderEvents(rig, events, state.captures);
  }

  /** The job to show for the rig: the running one, else the newest one. */
  async function loadJob(rig) {
    if (rig.job && rig.job.id) return apiSoft(`jobs/${encodeURIComponent(rig.job.id)}`);
    const needList = state.tick % 3 === 1 || state.lastJobRig !== rig.name;
    if (needList) {
      const list = await apiSoft(`jobs?rig=${encodeURIComponent(rig.name)}&limit=10`);
      if (list.data) {
        state.lastJobList = list.data;
        state.lastJobRig = rig.name;
      }
    }
    const newest = state.lastJobList[0];
    if (!newest) return { data: null };
    const shown = state.shownJob;
    if (shown && shown.id === newest.id && shown.state === newest.state && shown.steps) {
      return { data: shown }; // ended jobs do not change
    }
    return apiSoft(`jobs/${encodeURIComponent(newest.id)}`);
  }

  function chooseRig() {
    const names = state.rigs.map((r) => r.name);
    if (state.selectedRig && names.includes(state.selectedRig)) {
      if (state.userSelected) return;
      // Follow the action until the user picks a rig: prefer a rig running a job.
      const current = state.rigs.find((r) => r.name === state.selectedRig);
      if (current.job) return;
    }
    const busy = state.rigs.find((r) => r.job);
    const preferred = busy || state.rigs.find((r) => r.duis) || state.rigs[0];
    selectRig(preferred ? preferred.name : null, false);
  }

  function selectRig(name, byUser) {
    if (name === state.selectedRig) {
      if (byUser) state.userSelected = true;
      return;
    }
    state.selectedRig = name;
    state.userSelected = state.userSelected || byUser;
    state.captures = null;
    state.shownJob = null;
    state.lastJobList = [];
    for (const plot of state.plots.values()) plot.uplot.destroy();
    state.plots.clear();
    fill($("timing-plots"));
    for (const card of document.querySelectorAll(".rig-card")) {
      card.setAttribute("aria-pressed", String(card.dataset.rig === name));
    }
  }

  // ---------------------------------------------------------------- lab and rigs

  function renderLab(lab) {
    $("lab-name").textContent = lab.name;
    document.title = `hanlab · ${lab.name}`;
    const bits = [];
    if (lab.host) bits.push(`host ${lab.host}`);
    if (lab.pid) bits.push(`pid ${lab.pid}`);
    if (lab.started_ns) bits.push(`up since ${utcDateTime(lab.started_ns)} UTC`);
    $("lab-meta").textContent = bits.join(" · ");
  }

  function renderRigs() {
    const grid = $("rigs");
    if (!state.rigs.length) {
      fill(grid, h("p", { class: "empty" }, "This lab has no rigs."));
      return;
    }
    const existing = new Map([...grid.querySelectorAll(".rig-card")].map((c) => [c.dataset.rig, c]));
    const cards = state.rigs.map((rig) => {
      let card = existing.get(rig.name);
      if (!card) {
        card = h("article", {
          class: "rig-card",
          "data-rig": rig.name,
          "data-testid": `rig-${rig.name}`,
          id: `rig-${rig.name}`,
          tabindex: 0,
          role: "button",
          onclick: () => {
            selectRig(rig.name, true);
            pollNow();
          },
          onkeydown: (event) => {
            if (event.key === "Enter" || event.key === " ") {
              event.preventDefault();
              selectRig(rig.name, true);
              pollNow();
            }
          },
        });
      }
      card.dataset.state = rig.state;
      card.setAttribute("aria-pressed", String(rig.name === state.selectedRig));
      fill(card, rigCardContent(rig));
      return card;
    });
    fill(grid, cards);
  }

  function rigCardContent(rig) {
    const tags = [
      badge(rig.state, rig.state),
      h("span", { class: "tag" }, (rig.ch_variant || "").replace("_", " ") || "CH"),
      rig.emulated ? h("span", { class: "tag" }, "emulated") : h("span", { class: "tag" }, "hardware"),
      rig.duis ? h("span", { class: "tag" }, "DUIS") : null,
      h("span", { class: "tag" }, `${(rig.devices || []).length} devices`),
    ];
    const job = rig.job
      ? h(
          "div",
          { class: "rig-job" },
          "job ",
          h("code", {}, rig.job.id),
          " ",
          badge(rig.job.state),
          rig.job.progress
            ? ` ${rig.job.progress.steps_done}/${rig.job.progress.steps_total} steps`
            : "",
        )
      : h("div", { class: "rig-job muted" }, "no job running");
    const queued = rig.queued ? h("span", { class: "muted" }, ` · ${rig.queued} queued`) : null;
    const rows = (rig.sniffers || []).map((s) => snifferRow(rig, s));
    return [
      h("header", {}, h("h3", {}, rig.name), h("div", { class: "tags" }, tags)),
      rig.description ? h("p", { class: "muted desc" }, rig.description) : null,
      rig.duis_error ? h("p", { class: "error" }, `DUIS side: ${rig.duis_error}`) : null,
      h("div", { class: "rig-job-line" }, job, queued),
      h(
        "table",
        { class: "data sniffers" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", {}, "sniffer"),
            h("th", {}, "band"),
            h("th", {}, "page/ch"),
            h("th", {}, "state"),
            h("th", { class: "num" }, "frames/s"),
            h("th", {}, "last 60 s"),
            h("th", { class: "num" }, "frames"),
            h("th", { class: "num", title: "FCS errors / drops" }, "FCS err / drops"),
            h("th", { class: "num" }, "gaps"),
          ),
        ),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 9, class: "empty" }, "no sniffers"))),
      ),
    ];
  }

  function snifferRow(rig, s) {
    const key = `${rig.name}/${s.id}`;
    const history = state.fps.get(key) || [];
    if (state.tick !== history.tick) {
      history.push(Number(s.frames_per_s) || 0);
      if (history.length > SPARK_POINTS) history.shift();
      history.tick = state.tick;
      state.fps.set(key, history);
    }
    return h(
      "tr",
      { "data-testid": `sniffer-${rig.name}-${s.id}`, title: s.last_error || null },
      h("td", {}, h("code", {}, s.id), h("span", { class: "muted" }, ` ${s.driver || ""}`)),
      h("td", {}, bandLabel(s.band)),
      h("td", {}, `${s.page}/${s.channel}`),
      h("td", {}, badge(s.state, s.state), s.last_error ? h("span", { class: "warn" }, " ⚠") : null),
      h("td", { class: "num strong", "data-testid": "frames-per-s" }, (Number(s.frames_per_s) || 0).toFixed(1)),
      h("td", {}, sparkline(history)),
      h("td", { class: "num" }, fmtNumber(s.frames)),
      h("td", { class: "num" }, `${fmtNumber(s.fcs_errors)} / ${fmtNumber(s.drops)}`),
      h("td", { class: "num" }, fmtNumber((s.gaps || []).length)),
    );
  }

  function sparkline(values) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    const width = 90;
    const height = 18;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("class", "spark");
    svg.setAttribute("aria-hidden", "true");
    if (values.length > 1) {
      const max = Math.max(1, ...values);
      const step = width / (SPARK_POINTS - 1);
      const offset = width - step * (values.length - 1);
      const points = values
        .map((v, i) => `${(offset + i * step).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`)
        .join(" ");
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", points);
      svg.append(line);
    }
    return svg;
  }

  // ---------------------------------------------------------------- job

  function renderJob(result, rig) {
    const el = $("job-progress");
    const job = result && result.data;
    if (result && result.error) {
      fill(el, h("p", { class: "error" }, `Cannot load the job: ${result.error}`));
      return;
    }
    if (!job) {
      el.dataset.state = "none";
      delete el.dataset.jobId;
      fill(el, h("p", { class: "empty" }, rig.duis ? "No job on this rig yet. Queue one below." : "This rig has no DUIS side: jobs cannot run on it."));
      renderRecentJobs();
      return;
    }
    state.shownJob = job;
    const p = job.progress || {};
    const stepsDone = Number(p.steps_done) || 0;
    const stepsTotal = Math.max(Number(p.steps_total) || 0, (job.steps || []).length);
    el.dataset.state = job.state;
    el.dataset.jobId = job.id;
    el.dataset.stepsDone = String(stepsDone);
    el.dataset.stepsTotal = String(stepsTotal);
    const active = job.state === "running" || job.state === "queued";
    const pct = stepsTotal ? Math.round((100 * stepsDone) / stepsTotal) : job.state === "passed" ? 100 : 0;
    const steps = job.steps || [];
    const passed = steps.filter((s) => s.status === "passed").length;
    const failed = steps.filter((s) => s.status === "failed").length;
    const skipped = steps.filter((s) => s.status === "skipped").length;
    const runs = job.variant_runs || [];

    const head = h(
      "div",
      { class: "job-head" },
      h("div", {}, h("code", { class: "job-id" }, job.id), " ", badge(job.state)),
      h(
        "div",
        { class: "job-what" },
        h("strong", {}, job.scenario),
        (job.variants || []).length ? ` · ${job.variants.join(", ")}` : " · all variants",
        job.repeat > 1 ? ` · ×${job.repeat}` : "",
        job.label ? ` · “${job.label}”` : "",
      ),
      h(
        "div",
        { class: "muted" },
        job.started_ns ? `started ${utcTime(job.started_ns)} UTC · ${durationText(job.started_ns, job.ended_ns)}` : `queued ${utcTime(job.submitted_ns)} UTC`,
      ),
      active
        ? h("button", { type: "button", class: "btn-danger", "data-testid": "job-cancel", onclick: () => cancelJob(job.id) }, "Cancel job")
        : null,
    );
    const bar = h(
      "div",
      { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": stepsTotal, "aria-valuenow": stepsDone },
      h("div", { class: `progress-fill progress-${job.state}`, style: { width: `${pct}%` } }),
    );
    const counts = h(
      "div",
      { class: "job-counts" },
      h("span", { class: "strong" }, `${stepsDone} / ${stepsTotal} steps`),
      ` · variant runs ${p.variant_runs_done ?? runs.length} / ${p.variant_runs_total ?? "–"}`,
      h("span", { class: "ok" }, ` · ${STATUS_GLYPH.passed} ${passed} passed`),
      h("span", { class: failed ? "bad" : "muted" }, ` · ${STATUS_GLYPH.failed} ${failed} failed`),
      skipped ? h("span", { class: "muted" }, ` · ${STATUS_GLYPH.skipped} ${skipped} skipped`) : null,
      p.current && active ? h("span", { class: "muted" }, ` · now: ${p.current}`) : null,
    );
    const strip = h("div", { class: "step-strip", "data-testid": "step-strip" });
    for (const step of steps) {
      strip.append(
        h(
          "span",
          {
            class: `step step-${step.status}`,
            title: `${step.variant || ""} #${step.repetition ?? ""} step ${step.index}: ${stepTitle(step)} → ${step.outcome || step.status}`,
          },
          STATUS_GLYPH[step.status] || "?",
        ),
      );
    }
    for (let i = steps.length; i < stepsTotal; i += 1) {
      const isNext = i === steps.length && job.state === "running";
      strip.append(h("span", { class: `step step-${isNext ? "running" : "pending"}`, title: isNext ? "running" : "to do" }, isNext ? STATUS_GLYPH.running : STATUS_GLYPH.pending));
    }
    const last = steps.slice(-STEP_ROWS);
    const table = h(
      "table",
      { class: "data steps", "data-testid": "job-steps" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["variant", "#", "step", "target", "ack → outcome", "band"].map((t) => h("th", {}, t)),
          h("th", { class: "num" }, "end-to-end (ms)"),
          h("th", {}, "result"),
        ),
      ),
      h(
        "tbody",
        {},
        last.length
          ? last.map((s) =>
              h(
                "tr",
                { class: `row-${s.status}` },
                h("td", {}, s.variant || "–", s.repetition > 1 ? h("span", { class: "muted" }, ` #${s.repetition}`) : null),
                h("td", { class: "num" }, s.index),
                h("td", { class: "step-name", title: stepTitle(s) }, stepTitle(s, true)),
                h("td", {}, s.target_role || "–"),
                h("td", { title: s.match_level ? `match: ${s.match_level}` : null }, `${s.ack_code || "–"} → ${s.outcome || "–"}`),
                h("td", {}, bandLabel(s.band)),
                h("td", { class: "num" }, fmtMs(nsToMs(s.segments_ns && s.segments_ns.end_to_end))),
                h("td", {}, h("span", { class: `status status-${s.status}` }, `${STATUS_GLYPH[s.status] || ""} ${s.status}`)),
              ),
            )
          : h("tr", {}, h("td", { colspan: 8, class: "empty" }, "no step has finished yet")),
      ),
    );
    fill(
      el,
      head,
      bar,
      counts,
      strip,
      job.detail ? h("p", { class: job.state === "passed" ? "muted" : "error" }, job.detail) : null,
      runs.length ? variantRunList(runs) : null,
      h("div", { class: "table-wrap" }, table),
    );
    renderRecentJobs();
  }

  function stepTitle(step, short) {
    if (step.kind === "sr") return `SR ${step.sr_variant || "?"}${step.sr_name && !short ? ` ${step.sr_name}` : ""}`;
    if (step.kind === "wait") return `wait${step.alert_code ? ` for ${step.alert_code}` : ""}`;
    return step.kind;
  }

  function variantRunList(runs) {
    return h(
      "div",
      { class: "variant-runs" },
      runs.map((r) =>
        h(
          "span",
          {
            class: `run run-${r.passed ? "passed" : "failed"}`,
            title: `${r.title || r.variant}: ${r.srs_answered}/${r.srs_sent} SRs answered, ${fmtMs((r.duration_s || 0) * 1000)} ms`,
          },
          `${r.passed ? STATUS_GLYPH.passed : STATUS_GLYPH.failed} ${r.variant}${r.repetition > 1 ? ` #${r.repetition}` : ""}`,
        ),
      ),
    );
  }

  function renderRecentJobs() {
    const rows = state.lastJobList.map((j) =>
      h(
        "tr",
        {},
        h("td", {}, h("code", {}, j.id)),
        h("td", {}, j.scenario),
        h("td", {}, badge(j.state)),
        h("td", {}, j.progress ? `${j.progress.steps_done}/${j.progress.steps_total} steps` : ""),
        h("td", { class: "muted" }, utcDateTime(j.submitted_ns)),
      ),
    );
    tbody("recent-jobs", rows, "none yet", 5);
  }

  async function cancelJob(id) {
    try {
      await api(`jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
      $("job-form-message").textContent = `Cancel requested for ${id}.`;
    } catch (error) {
      if (error instanceof AuthError) return showLogin("The daemon refused the token (401).");
      $("job-form-message").textContent = `Cannot cancel: ${error.message}`;
    }
  }

  function renderScenarioForm() {
    const select = $("job-scenario");
    const current = select.value;
    fill(
      select,
      state.scenarios.map((s) => h("option", { value: s.name, title: s.title || "" }, `${s.name}${s.seed ? ` (seed ${s.seed})` : ""}`)),
    );
    if (current) select.value = current;
    else if (state.scenarios.some((s) => s.name === "meter-reading")) select.value = "meter-reading";
    renderVariantOptions();
  }

  function renderVariantOptions() {
    const scenario = (state.scenarios || []).find((s) => s.name === $("job-scenario").value);
    const select = $("job-variant");
    fill(
      select,
      h("option", { value: "" }, "all variants"),
      ((scenario && scenario.variants) || []).map((v) => h("option", { value: v.id, title: v.title || "" }, v.id)),
    );
  }

  async function onSubmitJob(event) {
    event.preventDefault();
    const message = $("job-form-message");
    if (!state.selectedRig) return;
    const spec = {
      rig: state.selectedRig,
      scenario: $("job-scenario").value,
      repeat: Number($("job-repeat").value) || 1,
    };
    if ($("job-variant").value) spec.variants = [$("job-variant").value];
    message.textContent = "Queueing…";
    try {
      const job = await api("jobs", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(spec),
      });
      message.textContent = `Queued ${job.id}.`;
      state.lastJobList = [job, ...state.lastJobList];
      pollNow();
    } catch (error) {
      if (error instanceof AuthError) return showLogin("The daemon refused the token (401).");
      message.textContent = `Refused: ${error.message}`;
    }
  }

  // ---------------------------------------------------------------- timings

  function addSamples(rigName, exchanges) {
    let perRig = state.samples.get(rigName);
    if (!perRig) {
      perRig = new Map();
      state.samples.set(rigName, perRig);
    }
    for (const x of exchanges) {
      const seg = x.segments_ns;
      if (!seg || !x.band) continue;
      const key = x.request_id || `${x.kind}/${x.target}/${x.submitted_ts_ns}/${x.response_ts_ns}`;
      let band = perRig.get(x.band);
      if (!band) {
        band = { seen: new Set(), order: [], end_to_end: [], han_command: [] };
        perRig.set(x.band, band);
      }
      if (band.seen.has(key)) continue;
      band.seen.add(key);
      band.order.push(key);
      for (const series of ECDF_SERIES) {
        const ms = nsToMs(seg[series.key]);
        if (ms !== null && ms > 0) band[series.key].push(ms);
      }
      while (band.order.length > MAX_SAMPLES_PER_BAND) {
        band.seen.delete(band.order.shift());
        band.end_to_end.shift();
        band.han_command.shift();
      }
    }
  }

  function rigBands(rig) {
    const bands = new Set((rig.sniffers || []).map((s) => s.band).filter(Boolean));
    const perRig = state.samples.get(rig.name);
    if (perRig) for (const band of perRig.keys()) bands.add(band);
    return [...bands].sort();
  }

  function ecdf(values) {
    const xs = [...values].sort((a, b) => a - b);
    const ys = xs.map((_, i) => (i + 1) / xs.length);
    return [xs, ys];
  }

  function renderTimings(rig, timings) {
    const container = $("timing-plots");
    const bands = rigBands(rig);
    if (!bands.length) {
      fill(container, h("p", { class: "empty" }, "This rig has no sniffer."));
      return;
    }
    container.querySelector(".empty")?.remove();
    const perRig = state.samples.get(rig.name) || new Map();
    for (const band of bands) {
      const samples = perRig.get(band) || { end_to_end: [], han_command: [] };
      let plot = state.plots.get(band);
      if (!plot) plot = createPlot(container, band);
      updatePlot(plot, samples);
    }
    renderTimingTable(timings);
  }

  function createPlot(container, band) {
    const stats = h("div", { class: "plot-stats" });
    const chart = h("div", { class: "plot-canvas" });
    const el = h(
      "figure",
      { class: "plot", "data-testid": `timing-plot-${band}`, id: `timing-plot-${band}`, "data-band": band, "data-points": 0 },
      h("figcaption", {}, h("strong", {}, bandLabel(band)), stats),
      chart,
    );
    container.append(el);
    const width = Math.max(260, chart.clientWidth || 420);
    const opts = {
      width,
      height: 220,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      // Log time axis: HAN segments (ms) and end-to-end (s) both stay readable.
      scales: { x: { time: false, distr: 3, log: 10 }, y: { range: [0, 1] } },
      axes: [
        { label: "time (ms, log scale)", labelSize: 18, size: 34, stroke: "#444", grid: { stroke: "#ececec", width: 1 }, ticks: { stroke: "#ccc" } },
        {
          label: "fraction ≤ x",
          labelSize: 18,
          size: 44,
          stroke: "#444",
          grid: { stroke: "#ececec", width: 1 },
          ticks: { stroke: "#ccc" },
          values: (u, splits) => splits.map((v) => `${Math.round(v * 100)}%`),
        },
      ],
      series: [
        { label: "ms", value: (u, v) => (v === null || v === undefined ? "–" : `${fmtMs(v)} ms`) },
        ...ECDF_SERIES.map((s) => ({
          label: s.label,
          stroke: s.colour,
          width: s.width,
          spanGaps: true,
          points: { show: false },
          paths: uPlot.paths.stepped({ align: 1 }),
          value: (u, v) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`),
        })),
      ],
    };
    const uplot = new uPlot(opts, [[], [], []], chart);
    const plot = { uplot, el, chart, stats, points: 0 };
    state.plots.set(band, plot);
    return plot;
  }

  function updatePlot(plot, samples) {
    const tables = ECDF_SERIES.map((s) => ecdf(samples[s.key] || []));
    const points = tables.reduce((n, [xs]) => n + xs.length, 0);
    const e2e = tables[0][0];
    const han = tables[1][0];
    fill(
      plot.stats,
      h("span", {}, `n = ${e2e.length}`),
      h("span", {}, `end-to-end p50 ${fmtMs(percentile(e2e, 50))} · p90 ${fmtMs(percentile(e2e, 90))} ms`),
      h("span", {}, `HAN command p50 ${fmtMs(percentile(han, 50))} ms`),
    );
    plot.el.dataset.points = String(points);
    if (points === plot.points && plot.sized) return;
    plot.points = points;
    const width = Math.max(260, plot.chart.clientWidth);
    if (width !== plot.uplot.width) plot.uplot.setSize({ width, height: 220 });
    plot.sized = true;
    if (!points) {
      plot.uplot.setData([[], [], []]);
      return;
    }
    const nonEmpty = tables.map(([xs, ys]) => (xs.length ? [xs, ys] : [[e2e[0] ?? han[0]], [null]]));
    plot.uplot.setData(uPlot.join(nonEmpty));
  }

  function renderTimingTable(result) {
    if (!result || result.error) {
      tbody("timing-table", [], result ? `cannot load timings: ${result.error}` : "no timings", 11);
      return;
    }
    const rows = (result.data && result.data.rows) || [];
    const hanP50 = new Map();
    for (const r of rows) {
      if (r.segment === "han_command") hanP50.set(`${r.band}|${r.sr_variant}|${r.device_role}`, r.p50_us);
    }
    const e2e = rows
      .filter((r) => r.segment === "end_to_end")
      .sort((a, b) => (a.band + a.sr_variant + a.device_role).localeCompare(b.band + b.sr_variant + b.device_role));
    const trs = e2e.map((r) => {
      const overTarget = r.over_target > 0;
      return h(
        "tr",
        { class: overTarget ? "row-failed" : null },
        h("td", {}, bandLabel(r.band)),
        h("td", {}, r.sr_variant),
        h("td", {}, r.device_role),
        h("td", { class: "num" }, fmtNumber(r.count)),
        ["min_us", "p50_us", "p90_us", "p99_us", "max_us"].map((k) => h("td", { class: "num" }, fmtMs(usToMs(r[k])))),
        h("td", { class: "num" }, fmtMs(usToMs(hanP50.get(`${r.band}|${r.sr_variant}|${r.device_role}`)))),
        h(
          "td",
          {},
          r.target_s === null || r.target_s === undefined
            ? h("span", { class: "muted" }, "none set")
            : h("span", { class: overTarget ? "bad" : "ok" }, `${r.within_target}/${r.count} ≤ ${r.target_s} s${overTarget ? ` · ${STATUS_GLYPH.failed} ${r.over_target} over` : ` ${STATUS_GLYPH.passed}`}`),
        ),
      );
    });
    tbody("timing-table", trs, "no exchange timed yet", 11);
  }

  // ---------------------------------------------------------------- OTA transfers

  /** The rig's OTA transfers (GET /rigs/{rig}/ota, hanlab/firmware/live.py): in flight
   * first, then the newest; one row per device and image. */
  function renderOta(rig, result) {
    if (result.error) {
      tbody("ota", [], `cannot load OTA transfers: ${result.error}`, 9);
      return;
    }
    const roles = new Map((rig.devices || []).map((d) => [d.eui64, d.role]));
    const transfers = [...result.data].sort(
      (a, b) => (a.event === "ended") - (b.event === "ended") || Number(b.start_ns) - Number(a.start_ns),
    );
    const rows = transfers.slice(0, OTA_ROWS).map((t) => {
      const ended = t.event === "ended";
      const status = t.upgrade_end_status;
      const statusName = status === null || status === undefined ? null : OTA_STATUS[status] || `0x${Number(status).toString(16).padStart(2, "0")}`;
      const ok = status === 0;
      const pct = t.progress === null || t.progress === undefined ? null : Math.round(Number(t.progress) * 1000) / 10;
      const fillClass = ended ? (ok ? "ota-ended-ok" : "ota-ended-bad") : "";
      const sizeText = t.image_size_octets ? `${fmtNumber(t.offset_octets)} / ${fmtNumber(t.image_size_octets)} octets` : "image size not seen yet";
      const role = t.device_eui64 ? roles.get(t.device_eui64) : null;
      return h(
        "tr",
        {
          "data-testid": `ota-${t.device_short}`,
          "data-progress": pct === null ? "" : String(pct),
          "data-status": statusName || "in-flight",
          class: ended && !ok ? "row-failed" : null,
        },
        h("td", {}, role ? h("strong", {}, `${role} `) : null, h("code", {}, t.device_eui64 || t.device_short), t.device_eui64 ? h("span", { class: "muted" }, ` ${t.device_short}`) : null),
        h("td", {}, bandLabel(t.band)),
        h("td", { class: "mono" }, `${t.manufacturer_code} · ${t.image_type} · ${t.file_version}`),
        h(
          "td",
          { class: "otacol", title: sizeText },
          h(
            "div",
            { class: "ota-bar" },
            h(
              "div",
              { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct ?? 0, "aria-label": sizeText },
              h("div", { class: `progress-fill ${fillClass}`, style: { width: `${pct ?? 0}%` } }),
            ),
            h("span", { class: "ota-pct" }, pct === null ? "–" : `${pct.toFixed(pct === 100 ? 0 : 1)} %`),
          ),
        ),
        h("td", { class: "num" }, fmtNumber(t.blocks)),
        h("td", { class: t.retries ? "num warn" : "num" }, fmtNumber(t.retries)),
        h("td", { class: "num" }, fmtNumber(t.waits)),
        h("td", { class: "num" }, t.duration_s === null || t.duration_s === undefined ? "–" : Number(t.duration_s).toFixed(1)),
        h(
          "td",
          {},
          statusName
            ? h("span", { class: ok ? "ok" : "bad" }, `${ok ? STATUS_GLYPH.passed : STATUS_GLYPH.failed} ${statusName}`)
            : h("span", { class: "muted" }, `${STATUS_GLYPH.running} in flight`),
        ),
      );
    });
    tbody("ota", rows, "no OTA transfer seen on this rig", 9);
  }

  // ---------------------------------------------------------------- exchanges

  function renderLegend() {
    fill(
      $("segment-legend"),
      SEGMENTS.map((s) => h("span", { class: "legend-item" }, h("span", { class: "swatch", style: { background: s.colour } }), s.label)),
      h("span", { class: "legend-item" }, h("span", { class: "swatch swatch-unknown" }), "not seen on the HAN"),
    );
  }

  function renderExchanges(result) {
    if (result.error) {
      tbody("exchanges", [], `cannot load exchanges: ${result.error}`, 8);
      return;
    }
    const latest = result.data.slice(-EXCHANGE_ROWS).reverse();
    const scaleNs = Math.max(1, ...latest.map((x) => Number((x.segments_ns && x.segments_ns.end_to_end) || segmentSum(x.segments_ns))));
    $("segment-scale").textContent = `(bar: 0 – ${fmtMs(scaleNs / 1e6)} ms)`;
    const rows = latest.map((x) => {
      const seg = x.segments_ns || {};
      const what = x.kind === "alert" ? `alert ${x.alert_code || ""}` : x.sr_variant || "–";
      return h(
        "tr",
        { class: x.outcome === "no_response" || x.outcome === "rejected" ? "row-failed" : null, "data-request-id": x.request_id || "" },
        h("td", { class: "mono" }, utcTime(x.submitted_ts_ns ?? x.response_ts_ns)),
        h("td", { title: x.request_id || "" }, what),
        h("td", {}, x.device_role || "–"),
        h("td", {}, bandLabel(x.band)),
        h("td", {}, h("span", { class: `match match-${x.match_level}` }, x.match_level || "–")),
        h("td", {}, x.outcome || "–", x.response_code ? h("span", { class: "muted" }, ` ${x.response_code}`) : null),
        h("td", { class: "num" }, fmtMs(nsToMs(seg.end_to_end))),
        h("td", { class: "segcol" }, segmentBar(seg, scaleNs)),
      );
    });
    tbody("exchanges", rows, "no exchange yet", 8);
  }

  function segmentSum(seg) {
    if (!seg) return 0;
    return SEGMENTS.reduce((n, s) => n + (Number(seg[s.key]) || 0), 0);
  }

  function segmentBar(seg, scaleNs) {
    const bar = h("div", { class: "segbar", role: "img" });
    const parts = [];
    let known = 0;
    for (const s of SEGMENTS) {
      const ns = seg[s.key];
      if (ns === null || ns === undefined || ns < 0) continue;
      known += Number(ns);
      parts.push(`${s.label} ${fmtMs(nsToMs(ns))} ms`);
      bar.append(h("span", { class: "seg", title: `${s.label}: ${fmtMs(nsToMs(ns))} ms`, style: { width: `${(100 * Number(ns)) / scaleNs}%`, background: s.colour } }));
    }
    const total = Number(seg.end_to_end) || 0;
    if (total > known) {
      bar.append(h("span", { class: "seg seg-unknown", title: `not resolved on the HAN: ${fmtMs(nsToMs(total - known))} ms`, style: { width: `${(100 * (total - known)) / scaleNs}%` } }));
    }
    bar.setAttribute("aria-label", parts.join(", ") || "no segments");
    return bar;
  }

  // ---------------------------------------------------------------- events, gaps, captures

  function renderEvents(rig, events, captures) {
    const gaps = [];
    for (const s of rig.sniffers || []) for (const g of s.gaps || []) gaps.push({ sniffer: s.id, ...g });
    gaps.sort((a, b) => Number(b.gap_start_ns) - Number(a.gap_start_ns));
    tbody(
      "gaps",
      gaps.slice(0, 20).map((g) =>
        h(
          "tr",
          {},
          h("td", {}, h("code", {}, g.sniffer)),
          h("td", { class: "mono" }, utcTime(g.gap_start_ns)),
          h("td", { class: "num" }, fmtMs(nsToMs(Number(g.gap_end_ns) - Number(g.gap_start_ns)))),
          h("td", {}, g.reason || "–"),
        ),
      ),
      "no capture gap",
      4,
    );

    if (events.error) {
      tbody("events", [], `cannot load events: ${events.error}`, 4);
    } else {
      const rows = events.data.slice(-EVENT_ROWS).reverse().map((e) =>
        h(
          "tr",
          { class: e.kind === "failed" || e.kind === "damaged" ? "row-failed" : null },
          h("td", { class: "mono" }, utcTime(e.ts_ns)),
          h("td", {}, h("code", {}, e.sniffer_id || "–")),
          h("td", {}, badge(e.kind)),
          h("td", { class: "detail" }, detailText(e.detail)),
        ),
      );
      tbody("events", rows, "no source event", 4);
    }

    if (!captures || captures.error) {
      tbody("captures", [], captures ? `cannot list captures: ${captures.error}` : "…", 4);
    } else {
      const files = [...captures.data].sort((a, b) => Number(b.modified_ns) - Number(a.modified_ns)).slice(0, 10);
      tbody(
        "captures",
        files.map((c) =>
          h(
            "tr",
            {},
            h("td", { class: "mono file" }, c.name),
            h("td", {}, bandLabel(c.band)),
            h("td", { class: "num" }, fmtNumber(Math.round(c.size_bytes / 1024))),
            h("td", {}, c.open ? badge("writing", "running") : h("span", { class: "muted" }, "closed")),
          ),
        ),
        "no capture file",
        4,
      );
    }
  }

  function detailText(detail) {
    if (!detail || (typeof detail === "object" && !Object.keys(detail).length)) return "";
    const text = typeof detail === "string" ? detail : Object.entries(detail).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
    return text.length > 140 ? `${text.slice(0, 139)}…` : text;
  }

  // ---------------------------------------------------------------- start

  function onResize() {
    for (const plot of state.plots.values()) {
      const width = Math.max(260, plot.chart.clientWidth);
      if (width !== plot.uplot.width) plot.uplot.setSize({ width, height: 220 });
    }
  }

  function start() {
    renderLegend();
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", signOut);
    $("job-form").addEventListener("submit", onSubmitJob);
    $("job-scenario").addEventListener("change", renderVariantOptions);
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(onResize, 150);
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && state.polling) {
        pollNow();
      }
    });
    const fromFragment = tokenFromFragment();
    if (fromFragment) setToken(fromFragment);
    else {
      try {
        state.token = window.sessionStorage.getItem(TOKEN_KEY);
      } catch (_ignored) {
        state.token = null;
      }
    }
    if (state.token) startPolling();
    else showLogin();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
