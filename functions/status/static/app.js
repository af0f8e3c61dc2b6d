// The thumbnails page: upload images to the upload function, watch jobs on status (this
// origin), show a job's timings. No framework, no build step; every server string goes in
// through textContent, never as HTML.
"use strict";

(() => {
  const app = document.getElementById("app");
  const settings = {
    uploadUrl: app.dataset.uploadUrl || "",
    keyRequired: app.dataset.keyRequired === "true",
    maxUploadBytes: Number(app.dataset.maxUploadBytes) || Infinity,
    maxDimension: Number(app.dataset.maxDimension) || 1024,
    // From the service (thumbnails.core.statuses, thumbnails.core.formats), not written here again.
    statuses: JSON.parse(app.dataset.statuses),  // in the order a job goes through them
    terminal: JSON.parse(app.dataset.terminalStatuses),
    extensions: JSON.parse(app.dataset.extensions),  // thumbnail Content-Type -> extension
  };
  const UPLOAD_ENDPOINT = settings.uploadUrl ? `${settings.uploadUrl}/jobs` : "jobs";
  const PAGE_LIMIT = 100;  // jobs per GET /jobs page; the pages are followed by X-Next-Cursor
  const LIST_LIMIT = 1000;  // the most jobs the page lists (and counts); newest first
  const RECONNECT_MS = 1000;  // after a keyed stream (fetch) ends or fails; EventSource's own
  const UPLOADS_AT_ONCE = 3;
  const TERMINAL = new Set(settings.terminal);
  const NAMES_KEY = "thumbnails.names";
  const API_KEY = "thumbnails.apiKey";

  const $ = (id) => document.getElementById(id);
  const el = {
    keyPanel: $("key-panel"), keyForm: $("key-form"), keyInput: $("api-key"),
    keyMessage: $("key-message"), form: $("upload-form"), files: $("files"),
    dropzone: $("dropzone"), width: $("opt-width"), height: $("opt-height"),
      format: $("opt-format"), fit: $("opt-fit"), gravity: $("opt-gravity"),
      quality: $("opt-quality"), renditions: $("opt-renditions"), uploads: $("uploads"),
    uploadsEmpty: $("uploads-empty"), jobs: $("jobs"), jobsEmpty: $("jobs-empty"),
    jobsError: $("jobs-error"), summary: $("jobs-summary"), refresh: $("refresh"),
    detail: $("detail"), detailBody: $("detail-body"), detailClose: $("detail-close"),
    announcer: $("announcer"),
  };

  // ---- small helpers -------------------------------------------------------------------

  /** An element with attributes (on* become listeners) and children (strings become text). */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function randomId() {
    if (crypto.randomUUID) return crypto.randomUUID();  // secure contexts only
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function formatBytes(n) {
    if (!Number.isFinite(n)) return "";
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  function formatTime(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const d = new Date(seconds * 1000);  // local time, as 2025-01-31 13:45:07.123
    const p = (n, width = 2) => String(n).padStart(width, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} `
      + `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  }

  function formatMs(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return "—";
    const value = Number(ms);
    if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
    return `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
  }

  function shortId(jobId) {
    return jobId.slice(0, 8);
  }

  function announce(text) {
    el.announcer.textContent = "";
    // A fresh text node after a tick makes screen readers speak repeated messages too.
    setTimeout(() => { el.announcer.textContent = text; }, 50);
  }

  // Names of the files this browser uploaded, by job id: kept in localStorage, so they
  // outlast a reload and the tab; the newest NAMES_KEPT only.
  const NAMES_KEPT = 500;
  const names = new Map(Object.entries(readStored(NAMES_KEY, {})));
  function readStored(key, fallback) {
    try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch { return fallback; }
  }
  function rememberName(jobId, name) {
    names.delete(jobId);  // re-added last: the newest
    names.set(jobId, name);
    while (names.size > NAMES_KEPT) names.delete(names.keys().next().value);  // the oldest
    try { localStorage.setItem(NAMES_KEY, JSON.stringify(Object.fromEntries(names))); }
    catch { /* storage full or disabled: names last until reload */ }
  }
  const jobLabel = (jobId) => names.get(jobId) || `Job ${shortId(jobId)}`;

  // ---- API key -------------------------------------------------------------------------

  let apiKey = sessionStorage.getItem(API_KEY) || "";

  function authHeaders() {
    return apiKey ? { "X-API-Key": apiKey } : {};
  }

  function askForKey(message) {
    el.keyPanel.hidden = false;
    el.keyMessage.textContent = message || "";
    el.keyInput.focus();
  }

  el.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = el.keyInput.value.trim();
    if (!apiKey) return askForKey("Enter a key.");
    sessionStorage.setItem(API_KEY, apiKey);
    el.keyMessage.textContent = "";
    el.keyInput.value = "";
    el.keyPanel.hidden = true;
    refreshNow();
  });

  class Unauthorized extends Error {}

  /** GET a JSON document from status; throws Unauthorized on 401, Error otherwise. */
  async function getJson(path) {
    const response = await fetch(path, { headers: { Accept: "application/json", ...authHeaders() } });
    const body = await readJson(response);
    if (response.status === 401) throw new Unauthorized(errorText(response.status, body));
    if (!response.ok) {
      const error = new Error(errorText(response.status, body));
      error.status = response.status;
      throw error;
    }
    return { body, headers: response.headers };
  }

  async function readJson(response) {
    try { return await response.json(); } catch { return null; }
  }

  /** "415 unsupported_type: the file is not an image ..." from an error document. */
  function errorText(status, body) {
    if (body && typeof body === "object" && body.error) {
      return `${status} ${body.error}: ${body.message || ""}`.trim();
    }
    return status ? `HTTP ${status}` : "no answer";
  }

  // ---- uploads -------------------------------------------------------------------------

  const queue = [];
  let uploading = 0;

  const MAX_RENDITIONS = 8;
  // NAME:WxH:FORMAT[:FIT], as the command line's --rendition; the service checks the rest.
  const RENDITION = /^([a-z0-9][a-z0-9_-]{0,31}):(\d+)x(\d+):([a-z]+)(?::([a-z]+))?$/i;

  /** The renditions textarea as the `renditions` list; null when empty; throws on a bad line. */
  function parseRenditions(text) {
    const lines = text.split("\n").map((line) => line.trim()).filter(Boolean);
    if (!lines.length) return null;
    if (lines.length > MAX_RENDITIONS) throw new Error(`At most ${MAX_RENDITIONS} renditions.`);
    return lines.map((line) => {
      const match = RENDITION.exec(line);
      if (!match) throw new Error(`Not NAME:WxH:FORMAT[:FIT]: ${line}`);
      const [, name, width, height, format, fit] = match;
      const item = { name: name.toLowerCase(), width: Number(width), height: Number(height), format };
      if (fit) item.fit = fit;
      return item;
    });
  }

  function describeOptions(options) {
    if (options.renditions) {
      return JSON.parse(options.renditions)
        .map((r) => `${r.name} ${r.width}×${r.height} ${r.format}`).join(", ");
    }
    return `${options.width}×${options.height} ${options.format}, ${options.fit}`;
  }

  function currentOptions() {
    let renditions = null;
    try {
      renditions = parseRenditions(el.renditions.value);
      el.renditions.setCustomValidity("");
    } catch (error) {
      el.renditions.setCustomValidity(error.message);
    }
    if (renditions) {
      if (!el.form.reportValidity()) return null;
      return { renditions: JSON.stringify(renditions) };
    }
    for (const input of [el.width, el.height]) {
      input.max = String(settings.maxDimension);
      const value = Number(input.value);
      const valid = Number.isInteger(value) && value >= 1 && value <= settings.maxDimension;
      input.setCustomValidity(valid ? "" : `A whole number from 1 to ${settings.maxDimension}.`);
    }
    const lossless = el.format.value === "png";
    el.quality.disabled = lossless;  // the service refuses a quality for PNG
    if (!el.form.reportValidity()) return null;
    const options = {
      width: el.width.value, height: el.height.value,
      format: el.format.value, fit: el.fit.value, gravity: el.gravity.value,
    };
    if (el.quality.value && !lossless) options.quality = el.quality.value;
    return options;
  }

  function addFiles(fileList) {
    const files = Array.from(fileList || []);
    if (!files.length) return;
    const options = currentOptions();
    if (!options) return;
    for (const file of files) {
      const entry = uploadEntry(file, options);
      if (file.size > settings.maxUploadBytes) {
        entry.refuse(`too large: ${formatBytes(file.size)}, the limit is ${formatBytes(settings.maxUploadBytes)}`);
        continue;
      }
      queue.push({ file, options, entry });
    }
    announce(`${files.length} file${files.length === 1 ? "" : "s"} added`);
    pump();
  }

  /** A line in "This session's uploads": the file, its state, the server's answer. */
  function uploadEntry(file, options) {
    el.uploadsEmpty.hidden = true;
    const state = h("span", { class: "upload-state" }, "waiting");
    const progress = h("progress", { max: "100", value: "0", "aria-label": `Upload of ${file.name}` });
    const item = h("li", { class: "upload", "data-state": "waiting" },
      h("span", { class: "upload-name", title: file.name }, file.name),
      h("span", { class: "upload-meta" },
        `${formatBytes(file.size)} → ${describeOptions(options)}`),
      progress, state);
    el.uploads.prepend(item);
    const set = (name, text) => { item.dataset.state = name; state.textContent = text; };
    return {
      progress(fraction) { set("uploading", "uploading"); progress.value = Math.round(fraction * 100); },
      accept(jobId) {
        progress.remove();
        set("accepted", `accepted as job ${shortId(jobId)}`);
      },
      refuse(text) {
        progress.remove();
        set("refused", `refused: ${text}`);
        item.setAttribute("role", "alert");
      },
    };
  }

  async function pump() {
    while (uploading < UPLOADS_AT_ONCE && queue.length) {
      const task = queue.shift();
      uploading += 1;
      send(task).finally(() => { uploading -= 1; pump(); });
    }
  }

  /** POST the file; retried on 503 or no answer with the same Idempotency-Key. */
  async function send({ file, options, entry }) {
    const idempotencyKey = randomId();
    for (let attempt = 1; ; attempt += 1) {
      const answer = await post(file, options, idempotencyKey, entry);
      if (answer.status === 202 && answer.body && answer.body.job_id) {
        const jobId = answer.body.job_id;
        rememberName(jobId, file.name);
        entry.accept(jobId);
        // The stream may have brought this job (and a newer status) before this answer.
        if (jobs.byId.has(jobId)) jobs.label(jobId);
        else jobs.upsert(jobId, answer.body.status || "queued");
        jobs.render();
        return;
      }
      const retryable = answer.status === 503 || answer.status === 0;
      if (retryable && attempt < 3) {
        const wait = Math.min(Number(answer.retryAfter) || attempt, 5) * 1000;
        entry.progress(0);
        await sleep(wait);
        continue;
      }
      if (answer.status === 401) askForKey("The upload was refused: a valid API key is required.");
      const text = answer.status === 0
        ? `could not reach ${UPLOAD_ENDPOINT} (network error, or CORS_ORIGINS on upload does not allow ${location.origin})`
        : errorText(answer.status, answer.body);
      entry.refuse(text);
      announce(`${file.name} refused: ${text}`);
      return;
    }
  }

  function post(file, options, idempotencyKey, entry) {
    return new Promise((resolve) => {
      const form = new FormData();
      for (const [name, value] of Object.entries(options)) form.append(name, value);
      form.append("file", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", UPLOAD_ENDPOINT);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("Idempotency-Key", idempotencyKey);
      for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) entry.progress(event.loaded / event.total);
      });
      xhr.addEventListener("load", () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
        resolve({ status: xhr.status, body, retryAfter: xhr.getResponseHeader("Retry-After") });
      });
      xhr.addEventListener("error", () => resolve({ status: 0, body: null }));
      xhr.addEventListener("timeout", () => resolve({ status: 0, body: null }));
      xhr.timeout = 120000;
      entry.progress(0);
      xhr.send(form);
    });
  }

  el.format.addEventListener("change", () => { el.quality.disabled = el.format.value === "png"; });
  el.quality.disabled = el.format.value === "png";

  el.files.addEventListener("change", () => {
    addFiles(el.files.files);
    el.files.value = "";  // choosing the same file again uploads it again
  });

  // Dropping anywhere on the page works; the drop zone shows where.
  let dragDepth = 0;
  const hasFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    dragDepth += 1;
    el.dropzone.classList.add("dragging");
  });
  document.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) el.dropzone.classList.remove("dragging");
  });
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dragDepth = 0;
    el.dropzone.classList.remove("dragging");
    addFiles(event.dataTransfer.files);
  });
  el.form.addEventListener("submit", (event) => event.preventDefault());

  // ---- the job list --------------------------------------------------------------------

  // A card's thumbnail is fetched when the card comes near the window: a list of up to
  // LIST_LIMIT jobs asks only for the thumbnails someone can see.
  const nearView = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      nearView.unobserve(entry.target);
      const jobId = entry.target.dataset.jobId;
      const job = jobs.byId.get(jobId);
      if (job && job.status === "succeeded" && job.thumbState === "none") jobs.loadThumb(jobId, job);
    }
  }, { rootMargin: "300px" });

  const jobs = {
    byId: new Map(),  // job id -> { status, item, badge, thumb, thumbState }

    upsert(jobId, status) {
      let job = this.byId.get(jobId);
      if (!job) {
        job = this.create(jobId);
        this.byId.set(jobId, job);
        el.jobs.prepend(job.item);
      }
      if (job.status !== status) {
        const before = job.status;
        job.status = status;
        job.item.dataset.status = status;
        job.badge.textContent = status;
        job.badge.className = `badge ${status}`;
        if (before && TERMINAL.has(status)) announce(`${jobLabel(jobId)}: ${status}`);
        if (detail.jobId === jobId && before) detail.show(jobId, { keepFocus: true });
      }
      if (status === "succeeded" && job.thumbState === "none") nearView.observe(job.item);
      if (status === "failed" && job.thumbState === "none") {
        job.thumbState = "failed";
        job.thumb.replaceChildren(h("span", { class: "thumb-icon failed", "aria-hidden": "true" }, "!"));
      }
      return job;
    },

    /** Keep the newest `limit` cards. */
    trim(limit) {
      while (el.jobs.children.length > limit) {
        const item = el.jobs.lastElementChild;
        const job = this.byId.get(item.dataset.jobId);
        if (job && job.blobUrl) URL.revokeObjectURL(job.blobUrl);
        this.byId.delete(item.dataset.jobId);
        nearView.unobserve(item);
        item.remove();
      }
    },

    /** Show the file name this browser now knows for a job already listed. */
    label(jobId) {
      const job = this.byId.get(jobId);
      const name = job.button.querySelector(".job-name");
      name.textContent = name.title = jobLabel(jobId);
      job.button.querySelector(".job-id").textContent = shortId(jobId);
    },

    create(jobId) {
      const badge = h("span", { class: "badge" });
      const thumb = h("span", { class: "thumb" }, h("span", { class: "spinner", "aria-hidden": "true" }));
      const label = jobLabel(jobId);
      // The button's name is what it shows: file name, id, status.
      const button = h("button", {
        type: "button", class: "job-open", "aria-controls": "detail",
        title: "Show details", onclick: () => detail.show(jobId),
      }, thumb, h("span", { class: "job-name", title: label }, label),
      h("span", { class: "job-id", title: jobId }, names.has(jobId) ? shortId(jobId) : ""), badge);
      const item = h("li", { class: "job", "data-job-id": jobId }, button);
      return { status: null, item, badge, thumb, button, thumbState: "none", listed: false };
    },

    async loadThumb(jobId, job) {
      job.thumbState = "loading";
      try {
        const response = await fetch(`jobs/${encodeURIComponent(jobId)}/thumbnail`, { headers: authHeaders() });
        if (!response.ok) throw new Error(errorText(response.status, await readJson(response)));
        const blob = await response.blob();
        job.blobUrl = URL.createObjectURL(blob);
        const img = h("img", { src: job.blobUrl, alt: "", decoding: "async" });  // named beside it
        job.thumb.replaceChildren(img);
        job.thumbState = "loaded";
        if (detail.jobId === jobId) detail.showThumb(job);
      } catch (error) {
        job.thumbState = "none";  // tried again on the next refresh
        job.thumb.title = String(error.message || error);
      }
    },

    /** Bring the list in line with GET /jobs (newest first). */
    sync(list) {
      const seen = new Set();
      for (const { job_id: jobId, status } of list) {
        seen.add(jobId);
        this.upsert(jobId, status).listed = true;
      }
      // Order as listed; a job just uploaded here may not be in a list asked for before.
      const ordered = list.map(({ job_id: jobId }) => this.byId.get(jobId).item);
      let previous = null;
      for (const item of ordered) {
        const expected = previous ? previous.nextElementSibling : el.jobs.firstElementChild;
        if (item !== expected) {
          if (previous) previous.after(item); else el.jobs.prepend(item);
        }
        previous = item;
      }
      for (const [jobId, job] of this.byId) {
        if (!seen.has(jobId) && job.listed) {
          nearView.unobserve(job.item);
          job.item.remove();
          if (job.blobUrl) URL.revokeObjectURL(job.blobUrl);
          this.byId.delete(jobId);
        }
      }
      this.render();
    },

    unfinished() {
      return Array.from(this.byId.values()).filter((job) => !TERMINAL.has(job.status)).length;
    },

    render() {
      const counts = {};
      for (const job of this.byId.values()) counts[job.status] = (counts[job.status] || 0) + 1;
      const parts = settings.statuses
        .filter((name) => counts[name]).map((name) => `${counts[name]} ${name}`);
      el.summary.textContent = parts.join(" · ");
      el.jobsEmpty.hidden = this.byId.size > 0;
    },
  };

  // ---- the list, then live changes (GET /events; no polling) ---------------------------

  let inFlight = null;

  /** Read the job list once (at start, on Refresh, after the stream was cut off). */
  async function refresh() {
    if (settings.keyRequired && !apiKey) {
      askForKey();
      return;
    }
    try {
      jobs.sync(await listAll());
      el.jobsError.hidden = true;
    } catch (error) {
      if (error instanceof Unauthorized) {
        apiKey = "";
        sessionStorage.removeItem(API_KEY);
        live.stop();
        askForKey(`The key was refused (${error.message}).`);
        return;
      }
      el.jobsError.hidden = false;
      el.jobsError.textContent = `Could not list jobs: ${error.message}. Retrying when the service is back…`;
    }
  }

  /** GET /jobs page after page (X-Next-Cursor), newest first, up to LIST_LIMIT jobs: the
   *  summary counts every job, not one page's. */
  async function listAll() {
    const all = [];
    let cursor = null;
    do {
      const query = `limit=${PAGE_LIMIT}` + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : "");
      const { body, headers } = await getJson(`jobs?${query}`);
      if (Array.isArray(body)) all.push(...body);
      cursor = headers.get("X-Next-Cursor");
    } while (cursor && all.length < LIST_LIMIT);
    return all.slice(0, LIST_LIMIT);
  }

  function refreshNow() {
    live.start();  // before the list: a change while the list loads is not missed
    if (!inFlight) inFlight = refresh().finally(() => { inFlight = null; });
    return inFlight;
  }

  /** One job's state change from the stream: {job_id, status, at}. */
  function onChange(data) {
    let change;
    try { change = JSON.parse(data); } catch { return; }
    if (typeof change.job_id !== "string" || typeof change.status !== "string") return;
    const known = jobs.byId.get(change.job_id);
    if (known && TERMINAL.has(known.status)) return;  // final already
    jobs.upsert(change.job_id, change.status);
    if (!known) jobs.trim(LIST_LIMIT);  // a new job on top: the oldest shown drops off
    jobs.render();
  }

  // EventSource reconnects by itself, sending Last-Event-ID, so no change is lost. It cannot
  // send a header, so with API keys the page reads the stream with fetch() instead.
  const live = {
    source: null,  // the EventSource
    reader: null,  // or the AbortController of the fetch() stream
    lastId: "",
    cutOff: false,  // the stream failed: read the list again when it is back

    start() {
      if (this.source || this.reader || (settings.keyRequired && !apiKey)) return;
      if (!settings.keyRequired) {
        this.source = new EventSource("events");
        this.source.addEventListener("job", (event) => onChange(event.data));
        this.source.addEventListener("reset", () => refresh());  // changes were lost: re-read
        this.source.addEventListener("open", () => this.opened());
        this.source.addEventListener("error", () => this.failed());
      } else {
        this.reader = new AbortController();
        this.readKeyed(this.reader.signal);
      }
    },

    stop() {
      if (this.source) this.source.close();
      if (this.reader) this.reader.abort();
      this.source = this.reader = null;
    },

    opened() {
      el.jobsError.hidden = true;
      if (this.cutOff) {
        this.cutOff = false;
        refresh();
      }
    },

    failed() {
      this.cutOff = true;
      el.jobsError.hidden = false;
      el.jobsError.textContent = "Lost the live updates from the service. Reconnecting…";
    },

    /** GET /events through fetch() with the key; reconnects with Last-Event-ID. */
    async readKeyed(signal) {
      while (!signal.aborted) {
        try {
          const headers = { Accept: "text/event-stream", ...authHeaders() };
          if (this.lastId) headers["Last-Event-ID"] = this.lastId;
          const response = await fetch("events", { headers, signal });
          if (response.status === 401) {
            this.stop();
            refreshNow();  // asks for the key again
            return;
          }
          if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
          this.opened();
          await this.parse(response.body.pipeThrough(new TextDecoderStream()));
        } catch (error) {
          if (signal.aborted) return;
          this.failed();
        }
        await sleep(RECONNECT_MS);
      }
    },

    /** The text/event-stream format (HTML Living Standard, 9.2.6): fields until a blank line. */
    async parse(stream) {
      let buffer = "";
      let fields = {};
      const reader = stream.getReader();
      for (;;) {
        const { value: chunk, done } = await reader.read();
        if (done) return;
        buffer += chunk;
        const lines = buffer.split(/\r\n|\r|\n/);
        buffer = lines.pop();
        for (const line of lines) {
          if (line === "") {
            if (fields.id !== undefined) this.lastId = fields.id;
            if (fields.event === "job" && fields.data !== undefined) onChange(fields.data);
            if (fields.event === "reset") refresh();  // changes were lost: re-read the list
            fields = {};
          } else if (!line.startsWith(":")) {
            const at = line.indexOf(":");
            const name = at < 0 ? line : line.slice(0, at);
            const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
            fields[name] = name === "data" && fields.data !== undefined ? `${fields.data}\n${value}` : value;
          }
        }
      }
    },
  };

  el.refresh.addEventListener("click", refreshNow);

  // ---- a job's detail ------------------------------------------------------------------

  const STAGES = [
    ["fetch", "Fetch original"], ["decode_resize", "Decode and resize"],
    ["encode", "Encode"], ["store", "Store thumbnail"],
  ];

  const detail = {
    jobId: null,
    generation: 0,
    blobUrls: [],  // the renditions shown now, revoked when the detail is redrawn or closed

    releaseRenditions() {
      for (const url of this.blobUrls.splice(0)) URL.revokeObjectURL(url);
    },

    async show(jobId, { keepFocus = false } = {}) {
      this.jobId = jobId;
      const generation = ++this.generation;
      for (const job of jobs.byId.values()) job.item.classList.toggle("selected", job === jobs.byId.get(jobId));
      el.detail.hidden = false;
      if (!keepFocus) {
        el.detailBody.replaceChildren(h("p", { class: "hint" }, "Loading…"));
        el.detail.focus({ preventScroll: true });
        el.detail.scrollIntoView({ block: "nearest" });  // pinned (sticky) if the list is long
      }
      let doc;
      let debug = null;
      let debugNote = null;
      try {
        doc = (await getJson(`jobs/${encodeURIComponent(jobId)}`)).body;
      } catch (error) {
        if (generation !== this.generation) return;
        el.detailBody.replaceChildren(h("p", { class: "message error", role: "alert" },
          `Could not load job ${shortId(jobId)}: ${error.message}`));
        return;
      }
      try {
        debug = (await getJson(`jobs/${encodeURIComponent(jobId)}/debug`)).body;
      } catch (error) {
        debugNote = error.status === 404
          ? "Stage timings need DEBUG_ENDPOINT=true on status."
          : `Timings unavailable: ${error.message}`;
      }
      if (generation !== this.generation) return;  // another job was chosen meanwhile
      this.releaseRenditions();
      el.detailBody.replaceChildren(this.render(jobId, doc, debug, debugNote));
      const job = jobs.byId.get(jobId);
      if (job && job.thumbState === "loaded") this.showThumb(job);
    },

    hide() {
      this.releaseRenditions();
      this.jobId = null;
      this.generation += 1;
      el.detail.hidden = true;
      for (const job of jobs.byId.values()) job.item.classList.remove("selected");
    },

    showThumb(job) {
      const slot = el.detailBody.querySelector(".detail-thumb");
      if (!slot || !job.blobUrl) return;
      const name = jobLabel(this.jobId).replace(/\.[^.]*$/, "");
      const extension = settings.extensions[slot.dataset.contentType] || "bin";
      slot.replaceChildren(
        h("img", { src: job.blobUrl, alt: `Thumbnail of ${jobLabel(this.jobId)}` }),
        h("a", { href: job.blobUrl, download: `${name}-thumbnail.${extension}`, class: "button secondary" }, "Download"));
    },

    render(jobId, doc, debug, debugNote) {
      const status = doc.status;
      const rows = [];
      const row = (term, ...value) => rows.push(h("dt", {}, term), h("dd", {}, ...value));
      row("Status", h("span", { class: `badge ${status}` }, status));
      row("Job id", h("code", {}, jobId));
      const created = doc.created_at;
      const started = debug ? debug.started_at : null;
      const finished = doc.finished_at ?? (debug ? debug.finished_at : null);
      row("Created", formatTime(created));
      if (debug) row("Started", formatTime(started));
      row("Finished", formatTime(finished));
      if (started && created) row("Waited in queue", formatMs((started - created) * 1000));
      if (finished && created) row("Total time", formatMs((finished - created) * 1000));
      if (debug) row("Processing time", h("span", { class: "processing-time" }, formatMs(debug.processing_time_ms)));
      if (debug && debug.attempts) row("Attempts", String(debug.attempts));
      const o = doc.options || {};
      if (o.width) {
        const extra = [o.gravity && `gravity ${o.gravity}`, o.quality && `quality ${o.quality}`];
        row("Options", [`${o.width}×${o.height} ${o.format}, ${o.fit}`, ...extra.filter(Boolean)].join(", "));
      }
      if (o.renditions) {
        row("Renditions", o.renditions.map((r) => `${r.name}: ${r.width}×${r.height} ${r.format}, ${r.fit}`).join("; "));
      }
      if (debug && debug.source && debug.source.format) {
        const s = debug.source;
        row("Original", `${s.format} ${s.width}×${s.height}, ${formatBytes(s.bytes)}`);
      }
      if (doc.thumbnail) {
        const t = doc.thumbnail;
        row("Thumbnail", `${t.content_type} ${t.width}×${t.height}, ${formatBytes(t.size)}`);
      }
      if (doc.error) {
        row("Error", h("span", { class: "message error" }, `${doc.error.code}: ${doc.error.message}`));
      }
      const parts = [
        h("div", { class: "detail-grid" },
          h("div", { class: "detail-thumb", "data-content-type": (doc.thumbnail && doc.thumbnail.content_type) || "" },
            status === "succeeded" ? h("span", { class: "spinner", "aria-hidden": "true" })
              : h("span", { class: "hint" }, TERMINAL.has(status) ? "No thumbnail" : "Not ready yet")),
          h("dl", { class: "facts" }, rows)),
      ];
      if (doc.renditions) parts.push(this.renditions(jobId, doc.renditions));
      if (debug) parts.push(this.stages(debug));
      else if (debugNote) parts.push(h("p", { class: "hint" }, debugNote));
      const heading = h("h3", { class: "detail-name" }, jobLabel(jobId));
      return h("div", { class: "detail-content", "data-job-id": jobId }, heading, parts);
    },

    /** Each rendition: its picture, facts and a download link (fetched with the API key). */
    renditions(jobId, list) {
      const stem = jobLabel(jobId).replace(/\.[^.]*$/, "");
      const items = list.map((r) => {
        const slot = h("span", { class: "rendition-image" }, h("span", { class: "spinner", "aria-hidden": "true" }));
        const item = h("li", { class: "rendition", "data-name": r.name },
          slot,
          h("span", { class: "rendition-name" }, r.name),
          h("span", { class: "rendition-meta" }, `${r.content_type} ${r.width}×${r.height}, ${formatBytes(r.size)}`));
        this.loadRendition(jobId, r, slot, stem);
        return item;
      });
      return h("section", { class: "renditions", "aria-label": "Renditions" },
        h("h4", {}, "Renditions"), h("ul", { class: "rendition-list" }, items));
    },

    async loadRendition(jobId, r, slot, stem) {
      const generation = this.generation;
      try {
        const path = `jobs/${encodeURIComponent(jobId)}/thumbnails/${encodeURIComponent(r.name)}`;
        const response = await fetch(path, { headers: authHeaders() });
        if (!response.ok) throw new Error(errorText(response.status, await readJson(response)));
        const url = URL.createObjectURL(await response.blob());
        if (generation !== this.generation || !slot.isConnected) { URL.revokeObjectURL(url); return; }
        this.blobUrls.push(url);
        const extension = settings.extensions[r.content_type] || "bin";
        slot.replaceChildren(
          h("img", { src: url, alt: `${r.name} rendition of ${jobLabel(jobId)}` }),
          h("a", { href: url, download: `${stem}-${r.name}.${extension}`, class: "button secondary" }, `Download ${r.name}`));
      } catch (error) {
        slot.replaceChildren(h("span", { class: "message error" }, String(error.message || error)));
      }
    },

    stages(debug) {
      const stages = debug.stages_ms || {};
      const values = STAGES.map(([key]) => Number(stages[key]) || 0);
      const longest = Math.max(...values, 0.001);
      const body = STAGES.map(([key, label], index) => {
        const raw = stages[key];
        const bar = h("span", { class: "bar" });
        bar.style.width = `${Math.max(1, (values[index] / longest) * 100)}%`;
        return h("tr", { "data-stage": key },
          h("th", { scope: "row" }, label),
          h("td", { class: "num" }, formatMs(raw)),
          h("td", { class: "bar-cell", "aria-hidden": "true" }, raw === null || raw === undefined ? "" : bar));
      });
      return h("table", { class: "stages" },
        h("caption", {}, "Stage timings"),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Stage"), h("th", { scope: "col", class: "num" }, "Time"),
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Share")))),
        h("tbody", {}, body));
    },
  };

  el.detailClose.addEventListener("click", () => {
    const jobId = detail.jobId;
    detail.hide();
    const job = jobId && jobs.byId.get(jobId);
    if (job) job.button.focus();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !el.detail.hidden) el.detailClose.click();
  });

  // ---- start ---------------------------------------------------------------------------

  el.renditions.addEventListener("input", () => {
    const given = el.renditions.value.trim() !== "";
    for (const input of [el.width, el.height, el.format, el.fit, el.gravity]) input.disabled = given;
    el.quality.disabled = given || el.format.value === "png";
    el.renditions.setCustomValidity("");
  });

  el.width.max = el.height.max = String(settings.maxDimension);
  jobs.render();
  refreshNow();
})();
