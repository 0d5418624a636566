// The annotator's page: one caption at a time, fixed with the keyboard, submitted, next.
//
// Talks to the task API only (next, heartbeat, events, submit, skip). The caption is untrusted
// text: it reaches the DOM through textContent and attributes, never as HTML. The edit itself is
// the pure model of caption_edit.js; this file is the screen, the keys and the network around it.

import {
  canRedo,
  canUndo,
  captionRender,
  captionRewrite,
  editStart,
  isChanged,
  redo,
  undo,
  wordDelete,
  wordInsert,
  wordPBad,
  wordReplace,
} from "./caption_edit.js";

const HEARTBEAT_MS = 30_000;
const EVENTS_FLUSH_MS = 10_000;
// Matches the server's rule: a gap over 30 s without events is a person away, not work.
const IDLE_AFTER_MS = 30_000;
// While someone reads or moves around without editing, say so now and then, so the time counts.
const ACTIVE_EVENT_EVERY_MS = 10_000;
const EMPTY_RETRY_MS = 20_000;
const CONFIRM_WINDOW_MS = 4_000;
const THRESHOLD_STEP = 0.05;
const ZOOM_MIN = 1;
const ZOOM_MAX = 12;
const PAN_STEP_PX = 60;
const DRAFT_PREFIX = "tldr-annotator:draft";
const MAX_EVENTS_PER_REQUEST = 1000; // the API's limit per request

/** Every shortcut of the page, in the order the help overlay lists them. */
export const SHORTCUTS = [
  { group: "Move", keys: ["j", "Tab"], action: "Next suspect word (every word when none is suspect)" },
  { group: "Move", keys: ["k", "Shift+Tab"], action: "Previous suspect word" },
  { group: "Move", keys: ["→", "←"], action: "Next / previous word" },
  { group: "Move", keys: ["Home", "End"], action: "First / last word" },
  { group: "Edit", keys: ["Enter", "e"], action: "Edit the selected word (Enter keeps it, Esc cancels)" },
  { group: "Edit", keys: ["d", "Delete", "Backspace"], action: "Delete the selected word" },
  { group: "Edit", keys: ["i"], action: "Insert a word after the selected one" },
  { group: "Edit", keys: ["Shift+I"], action: "Insert a word before the selected one" },
  { group: "Edit", keys: ["r", "F2"], action: "Rewrite the whole caption as free text (Esc returns to words)" },
  { group: "Edit", keys: ["Ctrl+Z", "u"], action: "Undo" },
  { group: "Edit", keys: ["Ctrl+Shift+Z", "Ctrl+Y", "Shift+U"], action: "Redo" },
  { group: "Finish", keys: ["Ctrl+Enter"], action: "Submit the caption as it is now" },
  { group: "Finish", keys: ["a"], action: "Accept the caption unchanged (twice if you have edits)" },
  { group: "Finish", keys: ["s"], action: "Skip this task (twice if you have edits)" },
  { group: "View", keys: ["[", "]"], action: "Lower / raise the highlight threshold" },
  { group: "View", keys: ["+", "−"], action: "Zoom the image in / out (or the mouse wheel)" },
  { group: "View", keys: ["0"], action: "Reset the zoom" },
  { group: "View", keys: ["Shift+Arrows"], action: "Pan the zoomed image (or drag it)" },
  { group: "Help", keys: ["?"], action: "Show or hide this list" },
];

/**
 * Mount the annotation page into `root` and start serving tasks.
 * @param {HTMLElement} root
 * @param {{apiBase: string, projectId: number|string, csrfToken?: string, projectName?: string,
 *          fetch?: typeof fetch, storage?: Storage}} options
 * @returns {{ready: Promise<void>, destroy: () => void, snapshot: () => object, loadNext: () => Promise<void>}}
 */
export function mountAnnotator(root, options) {
  const doc = root.ownerDocument;
  const win = doc.defaultView;
  const apiBase = String(options.apiBase || "/api").replace(/\/$/, "");
  const projectId = options.projectId;
  const fetchApi = options.fetch || win.fetch.bind(win);
  const storage = options.storage === undefined ? safeSessionStorage(win) : options.storage;
  const uid = `ann${Math.random().toString(36).slice(2, 8)}`;

  // t_ms of every event: epoch milliseconds on a monotonic clock (performance.now() from an
  // anchor taken once), so a wall-clock jump mid-task cannot reorder or stretch the timeline.
  const epochAnchor = Date.now();
  const perfAnchor = win.performance.now();
  const clock = () => Math.round(epochAnchor + (win.performance.now() - perfAnchor));

  const page = {
    view: "loading", // loading | task | empty | error | expired
    task: null,
    edit: null,
    selected: 0,
    threshold: 0.5,
    editing: null, // {mode: "replace"|"insert", index, input}
    rewriting: false,
    rendering: false, // while the words are rebuilt, the inline editor's blur is not a commit
    submitting: false,
    pending: [], // events not yet accepted by the server
    firstInteraction: false,
    lastActivity: 0,
    lastEventAt: 0,
    idle: false,
    confirm: null, // {key, until}
    serverOffsetMs: 0,
    online: true,
    saveNote: "",
    submittedCount: 0,
    zoom: { scale: 1, x: 0, y: 0 },
    timers: [],
    emptyRetry: null,
    destroyed: false,
  };

  // ---------------------------------------------------------------- the screen
  const ui = buildScreen(doc, uid, options.projectName);
  root.replaceChildren(ui.shell);

  function render() {
    ui.shell.dataset.view = page.view;
    ui.workspace.hidden = !(page.view === "task" || page.view === "loading");
    ui.message.hidden = page.view === "task" || page.view === "loading";
    ui.workspace.setAttribute("aria-busy", String(page.view === "loading"));
    if (page.task && page.edit) renderTask();
    else if (page.view === "loading") {
      const loading = doc.createElement("span");
      loading.className = "ann-words__empty";
      loading.textContent = "Loading the next task…";
      ui.words.replaceChildren(loading);
      ui.preview.textContent = "—";
      ui.original.textContent = "—";
      ui.banner.hidden = true;
      ui.thresholdRow.hidden = true;
    }
    renderStatus();
  }

  function renderTask() {
    page.rendering = true;
    try {
      renderTaskParts();
    } finally {
      page.rendering = false;
    }
    if (page.editing && doc.activeElement !== page.editing.input) page.editing.input.focus({ preventScroll: true });
  }

  function renderTaskParts() {
    const { task, edit } = page;
    const tokens = task.arm === "tokens";
    ui.banner.hidden = !(task.arm === "binary" && task.binary_flag === true);
    ui.thresholdRow.hidden = !tokens;
    ui.threshold.value = String(page.threshold);
    ui.thresholdValue.textContent = page.threshold.toFixed(2);
    const suspects = suspectIndices();
    ui.suspectCount.textContent = tokens ? `${suspects.length} suspect ${suspects.length === 1 ? "word" : "words"}` : "";
    ui.hint.textContent = tokens
      ? "Highlighted words are the ones the detector suspects; darker means more likely wrong."
      : "Read the caption against the image and fix whatever is wrong.";

    ui.words.replaceChildren();
    if (edit.words.length === 0 && !page.editing) {
      const empty = doc.createElement("span");
      empty.className = "ann-words__empty";
      empty.textContent = "No words left. Press i to type one, or Ctrl+Z to undo.";
      ui.words.append(empty);
    }
    edit.words.forEach((word, index) => {
      if (page.editing && page.editing.mode === "insert" && page.editing.index === index) ui.words.append(page.editing.input);
      if (page.editing && page.editing.mode === "replace" && page.editing.index === index) {
        ui.words.append(page.editing.input);
        return;
      }
      ui.words.append(wordChip(word, index, tokens));
    });
    if (page.editing && page.editing.mode === "insert" && page.editing.index === edit.words.length) {
      ui.words.append(page.editing.input);
    }
    const selectedChip = edit.words[page.selected] && doc.getElementById(chipId(edit.words[page.selected]));
    if (selectedChip) {
      ui.words.setAttribute("aria-activedescendant", selectedChip.id);
      selectedChip.scrollIntoView({ block: "nearest", inline: "nearest" });
    } else {
      ui.words.removeAttribute("aria-activedescendant");
    }

    ui.words.hidden = page.rewriting;
    ui.rewriteBox.hidden = !page.rewriting;
    ui.rewriteHint.hidden = !page.rewriting;
    ui.rewriteButton.querySelector(".ann-btn__label").textContent = page.rewriting ? "Back to words" : "Rewrite";
    ui.preview.textContent = (page.rewriting ? ui.rewriteBox.value.trim() : captionRender(edit)) || "—";
    ui.original.textContent = task.caption.text;
    ui.changedMark.hidden = !isChanged(edit);
    ui.undoButton.disabled = !canUndo(edit) || page.submitting;
    ui.redoButton.disabled = !canRedo(edit) || page.submitting;
    for (const button of [ui.submitButton, ui.acceptButton, ui.skipButton, ui.rewriteButton]) {
      button.disabled = page.submitting;
    }
    ui.submitButton.querySelector(".ann-btn__label").textContent = page.submitting ? "Submitting…" : "Submit";
  }

  function wordChip(word, index, tokens) {
    const chip = doc.createElement("span");
    chip.className = "ann-word";
    chip.id = chipId(word);
    chip.setAttribute("role", "option");
    chip.dataset.index = String(index);
    chip.textContent = word.text;
    const selected = index === page.selected;
    chip.setAttribute("aria-selected", String(selected));
    if (selected) chip.classList.add("is-selected");
    if (/^[.,;:!?]$/.test(word.text)) chip.classList.add("is-punct");
    const labels = [];
    const pBad = tokens ? wordPBad(page.edit, index) : null;
    if (pBad !== null && pBad !== undefined) {
      chip.title = `Suspect score ${Math.round(pBad * 100)}%`;
      if (pBad >= page.threshold) {
        chip.classList.add("is-suspect");
        chip.style.setProperty("--p", String(Math.max(0, Math.min(1, pBad))));
        labels.push(`suspect ${Math.round(pBad * 100)}%`);
      }
    }
    if (word.origin === null) {
      chip.classList.add("is-changed");
      labels.push("edited");
    }
    if (labels.length) chip.setAttribute("aria-description", labels.join(", "));
    return chip;
  }

  function chipId(word) {
    return `${uid}-w${word.key}`;
  }

  function renderStatus() {
    const parts = [];
    ui.statusTask.textContent = page.task ? `Task ${page.task.id}` : "No task";
    ui.statusArm.textContent = page.task ? armLabel(page.task.arm) : "";
    ui.statusArm.hidden = !page.task;
    renderLease();
    if (!page.online) parts.push("Offline — your work is kept on this device");
    else if (page.submitting) parts.push("Submitting…");
    else if (page.saveNote) parts.push(page.saveNote);
    ui.statusSave.textContent = parts.join(" · ");
    ui.statusSave.dataset.state = !page.online ? "offline" : page.submitting ? "busy" : "ok";
    ui.statusDone.textContent = page.submittedCount ? `${page.submittedCount} done` : "";
  }

  function renderLease() {
    if (!page.task || page.view !== "task") {
      ui.statusLease.textContent = "";
      ui.statusLease.dataset.state = "none";
      return;
    }
    const leftMs = Date.parse(page.task.lease_expires_at) - (Date.now() + page.serverOffsetMs);
    if (Number.isNaN(leftMs)) {
      ui.statusLease.textContent = "";
      return;
    }
    if (leftMs <= 0) {
      ui.statusLease.textContent = "Lease ended — submit to keep your text";
      ui.statusLease.dataset.state = "expired";
      return;
    }
    const seconds = Math.ceil(leftMs / 1000);
    ui.statusLease.textContent = `Lease ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    ui.statusLease.dataset.state = seconds <= 60 ? "warn" : "ok";
  }

  function announce(text) {
    // Clear first so the same message twice is read twice.
    ui.live.textContent = "";
    win.setTimeout(() => {
      ui.live.textContent = text;
    }, 30);
    ui.toast.textContent = text;
    ui.toast.hidden = !text;
    win.clearTimeout(ui.toastTimer);
    ui.toastTimer = win.setTimeout(() => {
      ui.toast.hidden = true;
    }, 3500);
  }

  function showMessage({ title, detail, tone = "info", actions = [], text = null }) {
    ui.messageTitle.textContent = title;
    ui.messageDetail.textContent = detail || "";
    ui.message.dataset.tone = tone;
    ui.message.setAttribute("role", tone === "danger" ? "alert" : "status");
    ui.messageText.hidden = text === null;
    ui.messageTextLabel.hidden = text === null;
    ui.messageText.value = text ?? "";
    ui.messageActions.replaceChildren(
      ...actions.map((action, index) => button(doc, action.label, action.run, index === 0 ? "primary" : "secondary", action.kbd)),
    );
    render();
    const first = ui.messageActions.querySelector("button");
    if (first) first.focus();
  }

  // ---------------------------------------------------------------- network
  // The cookie first: signing in again (in any tab) rotates the token, and the one this page was
  // served with would then fail every request. The served one is for sites whose cookie is HttpOnly.
  function csrfToken() {
    const match = doc.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : options.csrfToken || "";
  }

  async function post(path, body, { keepalive = false } = {}) {
    let response;
    try {
      response = await fetchApi(`${apiBase}${path}`, {
        method: "POST",
        credentials: "same-origin",
        keepalive,
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      setOnline(false);
      throw new NetworkError(error);
    }
    setOnline(true);
    const date = response.headers && response.headers.get && response.headers.get("Date");
    if (date && !Number.isNaN(Date.parse(date))) page.serverOffsetMs = Date.parse(date) - Date.now();
    return response;
  }

  function setOnline(online) {
    if (page.online !== online) {
      page.online = online;
      renderStatus();
      if (!online) announce("Offline: your work is kept on this device and sent when the server is back.");
    }
  }

  // ---------------------------------------------------------------- events and timing
  function record(type, data = {}, tMs = clock()) {
    if (!page.task) return;
    page.pending.push({ type, t_ms: tMs, data });
    page.lastEventAt = tMs;
    saveDraft();
  }

  function noteActivity() {
    const now = clock();
    if (page.task && page.view === "task") {
      if (page.idle) {
        page.idle = false;
        record("idle_end", {}, now);
      } else if (now - page.lastEventAt >= ACTIVE_EVENT_EVERY_MS) {
        record("active", {}, now);
      }
    }
    page.lastActivity = now;
  }

  function noteInteraction(kind) {
    noteActivity();
    if (!page.firstInteraction && page.task) {
      page.firstInteraction = true;
      record("first_interaction", { kind });
    }
  }

  async function flushEvents({ keepalive = false } = {}) {
    if (!page.task || page.pending.length === 0 || page.submitting) return;
    const task = page.task;
    const batch = page.pending.splice(0, MAX_EVENTS_PER_REQUEST);
    try {
      const response = await post(`/tasks/${task.id}/events/`, { events: batch }, { keepalive });
      if (!response.ok && response.status >= 500) throw new Error(`events: ${response.status}`);
      // 4xx: the task is gone or the batch is malformed; resending it would fail the same way.
    } catch {
      if (page.task === task) page.pending = batch.concat(page.pending);
    }
    if (page.task === task) saveDraft();
  }

  function tick() {
    renderLease();
    const now = clock();
    if (page.task && page.view === "task" && !page.idle && !doc.hidden && now - page.lastActivity > IDLE_AFTER_MS) {
      page.idle = true;
      // Dated at the last sign of life, so the silent 30 s before it do not count as work.
      record("idle", { after_ms: IDLE_AFTER_MS }, page.lastActivity + 1);
    }
    if (page.confirm && now > page.confirm.until) page.confirm = null;
  }

  async function heartbeat() {
    if (!page.task || page.view !== "task" || doc.hidden) return;
    const task = page.task;
    let response;
    try {
      response = await post(`/tasks/${task.id}/heartbeat/`);
    } catch {
      return;
    }
    if (page.task !== task) return;
    if (response.ok) {
      const body = await readJson(response);
      if (body.lease_expires_at) task.lease_expires_at = body.lease_expires_at;
      renderLease();
    } else if (response.status === 409 || response.status === 404) {
      const body = await readJson(response);
      leaseLost(body.detail || "This task is no longer yours.");
    }
  }

  // ---------------------------------------------------------------- drafts
  function draftKey(task) {
    return `${DRAFT_PREFIX}:${task.id}:${task.client_submission_id}`;
  }

  function saveDraft() {
    if (!storage || !page.task || !page.edit) return;
    const draft = {
      version: 1,
      caption: page.task.caption.text,
      edit: page.edit,
      selected: page.selected,
      threshold: page.threshold,
      pending: page.pending,
      firstInteraction: page.firstInteraction,
      rewriteText: page.rewriting ? ui.rewriteBox.value : null,
    };
    try {
      storage.setItem(draftKey(page.task), JSON.stringify(draft));
      page.saveNote = isChanged(page.edit) ? "Draft saved" : "";
    } catch {
      page.saveNote = "Draft not saved (browser storage is full or off)";
    }
    renderStatus();
  }

  function loadDraft(task) {
    if (!storage) return null;
    try {
      const draft = JSON.parse(storage.getItem(draftKey(task)) || "null");
      return draft && draft.version === 1 && draft.caption === task.caption.text ? draft : null;
    } catch {
      return null;
    }
  }

  function dropDraft(task) {
    try {
      if (storage) storage.removeItem(draftKey(task));
    } catch {
      /* storage off: nothing was kept */
    }
  }

  // ---------------------------------------------------------------- task lifecycle
  async function loadNext() {
    win.clearTimeout(page.emptyRetry);
    closeEditor(false);
    page.rewriting = false;
    // Checking again for work keeps the "no tasks" message up rather than flashing an empty page.
    const quiet = page.view === "empty";
    page.task = null;
    page.edit = null;
    if (!quiet) {
      page.view = "loading";
      ui.image.removeAttribute("src");
      render();
    }
    let response;
    try {
      response = await post(`/projects/${projectId}/tasks/next/`);
    } catch {
      return showMessage({
        title: "Can't reach the server",
        detail: "Check your connection; nothing you submitted is lost.",
        tone: "danger",
        actions: [{ label: "Try again", run: loadNext }],
      });
    }
    if (page.destroyed) return;
    if (response.status === 204) {
      page.view = "empty";
      page.emptyRetry = win.setTimeout(loadNext, EMPTY_RETRY_MS);
      return showMessage({
        title: "No tasks ready — check back soon",
        detail: "New captions appear here as soon as they are scored. This page checks again every 20 seconds.",
        actions: [{ label: "Check now", run: loadNext }],
      });
    }
    if (response.status === 401 || response.status === 403) {
      const body = await readJson(response);
      page.view = "error";
      return showMessage({
        title: "You are signed out, or this project is not yours",
        detail: body.detail || "Sign in again to carry on.",
        tone: "danger",
        actions: [{ label: "Reload the page", run: () => win.location.reload() }],
      });
    }
    if (!response.ok) {
      page.view = "error";
      return showMessage({
        title: "The server could not hand out a task",
        detail: `It answered ${response.status}. Try again in a moment.`,
        tone: "danger",
        actions: [{ label: "Try again", run: loadNext }],
      });
    }
    const body = await readJson(response);
    if (!body.task) {
      page.view = "error";
      return showMessage({ title: "The server sent no task", tone: "danger", actions: [{ label: "Try again", run: loadNext }] });
    }
    showTask(body.task);
  }

  function showTask(task) {
    page.task = task;
    page.view = "task";
    page.idle = false;
    page.confirm = null;
    page.submitting = false;
    const draft = loadDraft(task);
    let restored = null;
    if (draft) {
      page.edit = draft.edit;
      page.pending = draft.pending || [];
      page.firstInteraction = Boolean(draft.firstInteraction);
      page.threshold = clampThreshold(draft.threshold ?? task.threshold ?? 0.5);
      page.selected = draft.selected || 0;
      restored = "Restored your draft of this task.";
    } else {
      page.edit = editStart({ text: task.caption.text, words: task.words });
      page.pending = [];
      page.firstInteraction = false;
      page.threshold = clampThreshold(task.threshold ?? 0.5);
      if (typeof task.draft === "string" && task.draft.trim()) {
        // The text of a submit that arrived after the lease ended: as an edit, so Ctrl+Z shows the original.
        page.edit = captionRewrite(page.edit, task.draft);
        restored = "Restored the text you submitted after your lease ended.";
      }
      const suspects = suspectIndices();
      page.selected = suspects.length ? suspects[0] : 0;
    }
    page.selected = clampIndex(page.selected, page.edit.words.length);
    const now = clock();
    page.lastActivity = now;
    record(
      "shown",
      {
        epoch_ms: epochAnchor,
        perf_ms: Math.round(win.performance.now()),
        arm: task.arm,
        words: page.edit.words.length,
        restored: Boolean(restored),
      },
      now,
    );
    zoomReset();
    ui.image.alt = `Image of task ${task.id}`;
    ui.image.src = task.image_url;
    render();
    if (draft && typeof draft.rewriteText === "string") rewriteOpen(draft.rewriteText);
    else ui.words.focus({ preventScroll: true });
    const suspects = task.arm === "tokens" ? suspectIndices().length : 0;
    announce(
      restored ||
        `Task ${task.id} ready${task.arm === "tokens" ? `: ${suspects} suspect ${suspects === 1 ? "word" : "words"}` : ""}.`,
    );
  }

  async function submit(text, how) {
    if (!page.task || page.submitting || page.view !== "task") return;
    const corrected = text.trim();
    if (!corrected) {
      announce("The caption is empty: type at least one word, or press Ctrl+Z to undo.");
      return;
    }
    const task = page.task;
    page.submitting = true;
    page.confirm = null;
    const now = clock();
    const events = page.pending.splice(0, MAX_EVENTS_PER_REQUEST - 1);
    events.push({ type: "submit", t_ms: now, data: { how, changed: corrected !== task.caption.text.trim() } });
    render();
    let response;
    try {
      response = await post(`/tasks/${task.id}/submit/`, {
        corrected_text: corrected,
        client_submission_id: task.client_submission_id,
        events,
      });
    } catch {
      page.pending = events.concat(page.pending);
      page.submitting = false;
      saveDraft();
      render();
      announce("Couldn't reach the server. Your text is kept — press Ctrl+Enter to try again.");
      return;
    }
    if (page.task !== task) return;
    if (response.ok) {
      dropDraft(task);
      page.submittedCount += 1;
      page.submitting = false;
      page.saveNote = "Submitted";
      announce(`Submitted task ${task.id}.`);
      await loadNext();
      return;
    }
    page.submitting = false;
    const body = await readJson(response);
    if (response.status === 409) {
      page.pending = [];
      leaseLost(body.detail || "Your lease on this task ended.", body.corrected_text || corrected);
      return;
    }
    page.pending = events.concat(page.pending);
    saveDraft();
    render();
    announce(`Not submitted: ${errorText(body) || `the server answered ${response.status}`}. Your text is kept.`);
  }

  function leaseLost(detail, text) {
    if (!page.task) return;
    // A word being typed or a rewrite in progress is part of the text to keep, so both are applied first.
    closeEditor(true);
    if (page.rewriting) rewriteClose();
    const corrected = text ?? captionRender(page.edit);
    saveDraft(); // kept: if this caption comes back to this tab, the edit is still there
    page.view = "expired";
    showMessage({
      title: "Your lease on this task ended",
      detail,
      tone: "danger",
      text: corrected,
      actions: [
        { label: "Get a new task", run: loadNext },
        { label: "Copy my text", run: () => copyText(corrected) },
      ],
    });
  }

  async function skip() {
    if (!page.task || page.submitting) return;
    const task = page.task;
    record("skip");
    await flushEvents();
    if (page.task !== task || page.submitting) return;
    page.submitting = true;
    render();
    let response;
    try {
      response = await post(`/tasks/${task.id}/skip/`);
    } catch {
      page.submitting = false;
      render();
      announce("Couldn't reach the server to skip. Try again.");
      return;
    }
    page.submitting = false;
    if (response.ok) {
      dropDraft(task);
      announce(`Skipped task ${task.id}.`);
      await loadNext();
    } else {
      render();
      announce(`Could not skip: the server answered ${response.status}.`);
    }
  }

  async function copyText(text) {
    try {
      await win.navigator.clipboard.writeText(text);
      announce("Copied your text.");
    } catch {
      ui.messageText.hidden = false;
      ui.messageText.focus();
      ui.messageText.select();
      announce("Your text is selected: press Ctrl+C to copy it.");
    }
  }

  // ---------------------------------------------------------------- editing
  function change(next, type, data) {
    if (next === page.edit) return false;
    page.edit = next;
    page.selected = clampIndex(next.at, next.words.length);
    record(type, data);
    render();
    return true;
  }

  function suspectIndices() {
    if (!page.task || page.task.arm !== "tokens" || !page.edit) return [];
    const indices = [];
    page.edit.words.forEach((_, index) => {
      const pBad = wordPBad(page.edit, index);
      if (pBad !== null && pBad !== undefined && pBad >= page.threshold) indices.push(index);
    });
    return indices;
  }

  function select(index) {
    if (!page.edit.words.length) return;
    page.selected = clampIndex(index, page.edit.words.length);
    render();
  }

  /** Next (+1) or previous (-1) suspect; every word counts when none is suspect. Null past the end. */
  function neighbourSuspect(direction, wrap) {
    const count = page.edit.words.length;
    if (!count) return null;
    const suspects = suspectIndices();
    const pool = suspects.length ? suspects : [...Array(count).keys()];
    const after = direction > 0 ? pool.filter((i) => i > page.selected) : pool.filter((i) => i < page.selected).reverse();
    if (after.length) return after[0];
    if (!wrap) return null;
    return direction > 0 ? pool[0] : pool[pool.length - 1];
  }

  function openEditor(mode, index) {
    if (!page.edit) return;
    closeEditor(false);
    const input = doc.createElement("input");
    input.type = "text";
    input.className = "ann-word-input";
    input.autocomplete = "off";
    input.spellcheck = false;
    const current = mode === "replace" ? page.edit.words[index].text : "";
    input.value = current;
    input.setAttribute("aria-label", mode === "replace" ? `Edit the word “${current}”` : "Type the word to insert");
    const fit = () => {
      input.size = Math.max(4, Array.from(input.value).length + 1);
    };
    fit();
    input.addEventListener("input", fit);
    input.addEventListener("keydown", (event) => {
      event.stopPropagation();
      if (event.key === "Enter" && !event.isComposing) {
        event.preventDefault();
        commitEditor();
        if (event.ctrlKey || event.metaKey) submitCurrent();
      } else if (event.key === "Escape") {
        event.preventDefault();
        closeEditor(false);
        announce("Edit cancelled.");
      } else if (event.key === "Tab") {
        event.preventDefault();
        commitEditor();
        const target = neighbourSuspect(event.shiftKey ? -1 : 1, true);
        if (target !== null) select(target);
      }
    });
    input.addEventListener("blur", () => {
      // Clicking elsewhere keeps what was typed rather than losing it.
      if (!page.rendering && page.editing && page.editing.input === input) commitEditor({ focus: false });
    });
    page.editing = { mode, index, input };
    noteInteraction(mode === "replace" ? "edit" : "insert");
    render();
    input.focus();
    input.select();
  }

  function commitEditor({ focus = true } = {}) {
    const editing = page.editing;
    if (!editing) return;
    page.editing = null;
    const text = editing.input.value;
    if (editing.mode === "replace") {
      const before = page.edit.words[editing.index].text;
      const changed = change(wordReplace(page.edit, editing.index, text), text.trim() ? "edit" : "delete", {
        index: editing.index,
        from: before,
        to: text.trim(),
      });
      if (changed) announce(text.trim() ? `Changed “${before}” to “${text.trim()}”.` : `Deleted “${before}”.`);
      else render();
    } else {
      const changed = change(wordInsert(page.edit, editing.index, text), "insert", { index: editing.index, text: text.trim() });
      if (changed) announce(`Inserted “${text.trim()}”.`);
      else render();
    }
    if (focus) ui.words.focus({ preventScroll: true });
  }

  function closeEditor(keep) {
    if (!page.editing) return;
    if (keep) return commitEditor({ focus: false });
    page.editing = null;
    render();
    ui.words.focus({ preventScroll: true });
  }

  function deleteSelected() {
    if (!page.edit.words.length) return;
    const word = page.edit.words[page.selected];
    if (change(wordDelete(page.edit, page.selected), "delete", { index: page.selected, from: word.text })) {
      announce(`Deleted “${word.text}”.`);
    }
  }

  function undoEdit() {
    if (change(undo(page.edit), "undo", {})) announce("Undone.");
  }

  function redoEdit() {
    if (change(redo(page.edit), "redo", {})) announce("Redone.");
  }

  function rewriteOpen(text) {
    closeEditor(true);
    page.rewriting = true;
    ui.rewriteBox.value = text ?? captionRender(page.edit);
    noteInteraction("rewrite");
    render();
    ui.rewriteBox.focus();
    saveDraft();
  }

  function rewriteClose() {
    const text = ui.rewriteBox.value;
    page.rewriting = false;
    if (!change(captionRewrite(page.edit, text), "rewrite", { chars: text.length })) render();
    saveDraft();
    ui.words.focus({ preventScroll: true });
  }

  function submitCurrent() {
    if (page.rewriting) {
      const text = ui.rewriteBox.value;
      page.rewriting = false;
      change(captionRewrite(page.edit, text), "rewrite", { chars: text.length });
      return submit(text, "rewrite");
    }
    closeEditor(true);
    return submit(captionRender(page.edit), "edit");
  }

  /** a and s drop edits, so with edits they ask for a second press. */
  function confirmed(key, message) {
    if (!isChanged(page.edit)) return true;
    if (page.confirm && page.confirm.key === key && clock() <= page.confirm.until) {
      page.confirm = null;
      return true;
    }
    page.confirm = { key, until: clock() + CONFIRM_WINDOW_MS };
    announce(message);
    return false;
  }

  function accept() {
    if (confirmed("a", "You have edits. Press a again to drop them and accept the original caption.")) {
      submit(page.task.caption.text, "accept");
    }
  }

  function skipAsked() {
    if (confirmed("s", "You have edits. Press s again to drop them and skip this task.")) skip();
  }

  function setThreshold(value) {
    page.threshold = clampThreshold(value);
    const suspects = suspectIndices();
    saveDraft();
    render();
    announce(`Threshold ${page.threshold.toFixed(2)}: ${suspects.length} suspect ${suspects.length === 1 ? "word" : "words"}.`);
  }

  // ---------------------------------------------------------------- image zoom
  function zoomApply() {
    const { scale, x, y } = page.zoom;
    ui.image.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
    ui.zoomLevel.textContent = `${Math.round(scale * 100)}%`;
    ui.viewport.classList.toggle("is-zoomed", scale > 1);
  }

  function zoomTo(scale, originX, originY) {
    const rect = ui.viewport.getBoundingClientRect();
    const next = Math.max(ZOOM_MIN, Math.min(ZOOM_MAX, scale));
    const ox = originX ?? rect.width / 2;
    const oy = originY ?? rect.height / 2;
    const { scale: current, x, y } = page.zoom;
    // Keep the image point under (ox, oy) where it is.
    page.zoom = { scale: next, x: ox - ((ox - x) / current) * next, y: oy - ((oy - y) / current) * next };
    panClamp();
    zoomApply();
  }

  function panBy(dx, dy) {
    page.zoom = { ...page.zoom, x: page.zoom.x + dx, y: page.zoom.y + dy };
    panClamp();
    zoomApply();
  }

  function panClamp() {
    const rect = ui.viewport.getBoundingClientRect();
    const { scale } = page.zoom;
    page.zoom.x = Math.min(0, Math.max(rect.width * (1 - scale), page.zoom.x));
    page.zoom.y = Math.min(0, Math.max(rect.height * (1 - scale), page.zoom.y));
  }

  function zoomReset() {
    page.zoom = { scale: 1, x: 0, y: 0 };
    zoomApply();
  }

  // ---------------------------------------------------------------- help
  function helpToggle(open = ui.help.hidden) {
    ui.help.hidden = !open;
    if (open) {
      ui.helpReturn = doc.activeElement;
      ui.helpClose.focus();
    } else if (ui.helpReturn && ui.helpReturn.focus) {
      ui.helpReturn.focus();
    }
  }

  // ---------------------------------------------------------------- keys
  function onKeydown(event) {
    if (page.destroyed || event.defaultPrevented) return;
    noteActivity();
    const key = event.key;
    const ctrl = event.ctrlKey || event.metaKey;

    if (!ui.help.hidden) {
      if (key === "Escape" || key === "?") {
        event.preventDefault();
        helpToggle(false);
      } else if (key === "Tab") {
        event.preventDefault(); // the dialog has one control: keep focus in it
        ui.helpClose.focus();
      }
      return;
    }

    const target = event.target;
    if (target === ui.rewriteBox) {
      if (key === "Enter" && ctrl) {
        event.preventDefault();
        noteInteraction("key");
        submitCurrent();
      } else if (key === "Escape") {
        event.preventDefault();
        rewriteClose();
      }
      return;
    }
    if (isTextEntry(target)) return;
    if (event.altKey) return;

    if (key === "?" || (key === "/" && event.shiftKey)) {
      event.preventDefault();
      helpToggle(true);
      return;
    }
    if (page.view !== "task" || !page.edit) return;

    const onWords = target === ui.words || target === doc.body || target === root || target === ui.shell;
    const plain = !ctrl;
    let handled = true;
    if (ctrl && key === "Enter") submitCurrent();
    else if (ctrl && (key === "z" || key === "Z") && event.shiftKey) redoEdit();
    else if (ctrl && (key === "z" || key === "Z")) undoEdit();
    else if (ctrl && (key === "y" || key === "Y")) redoEdit();
    else if (ctrl) handled = false; // Ctrl+C and friends keep working
    else if (key === "Tab" && onWords) {
      const nextIndex = neighbourSuspect(event.shiftKey ? -1 : 1, false);
      if (nextIndex === null) handled = false; // the end: let focus leave the caption (no trap)
      else select(nextIndex);
    } else if (key === "j" || key === "J") select(neighbourSuspect(1, true) ?? page.selected);
    else if (key === "k" || key === "K") select(neighbourSuspect(-1, true) ?? page.selected);
    else if (key === "ArrowRight" && event.shiftKey) panBy(-PAN_STEP_PX, 0);
    else if (key === "ArrowLeft" && event.shiftKey) panBy(PAN_STEP_PX, 0);
    else if (key === "ArrowUp" && event.shiftKey) panBy(0, PAN_STEP_PX);
    else if (key === "ArrowDown" && event.shiftKey) panBy(0, -PAN_STEP_PX);
    else if (key === "ArrowRight" && onWords) select(page.selected + 1);
    else if (key === "ArrowLeft" && onWords) select(page.selected - 1);
    else if (key === "Home" && onWords) select(0);
    else if (key === "End" && onWords) select(page.edit.words.length - 1);
    else if ((key === "Enter" && onWords) || key === "e") {
      if (page.edit.words.length) openEditor("replace", page.selected);
      else openEditor("insert", 0);
    } else if (key === "d" || key === "Delete" || (key === "Backspace" && onWords)) deleteSelected();
    else if (key === "i") openEditor("insert", page.edit.words.length ? page.selected + 1 : 0);
    else if (key === "I") openEditor("insert", page.selected);
    else if (key === "u") undoEdit();
    else if (key === "U") redoEdit();
    else if (key === "a" && plain) accept();
    else if (key === "s" && plain) skipAsked();
    else if (key === "r" || key === "F2") rewriteOpen();
    else if (key === "[") setThreshold(page.threshold - THRESHOLD_STEP);
    else if (key === "]") setThreshold(page.threshold + THRESHOLD_STEP);
    else if (key === "+" || key === "=") zoomTo(page.zoom.scale * 1.25);
    else if (key === "-" || key === "_") zoomTo(page.zoom.scale / 1.25);
    else if (key === "0") zoomReset();
    else if (key === "Escape" && page.confirm) {
      page.confirm = null;
      announce("Cancelled.");
    } else handled = false;

    if (handled) {
      event.preventDefault();
      noteInteraction("key");
      // Keys pressed with nothing focused still land on the caption, where the next ones are read.
      if (doc.activeElement === doc.body && !page.editing && !page.rewriting) ui.words.focus({ preventScroll: true });
    }
  }

  // ---------------------------------------------------------------- wiring
  ui.words.addEventListener("click", (event) => {
    const chip = event.target.closest && event.target.closest(".ann-word");
    if (!chip) return;
    noteInteraction("pointer");
    select(Number(chip.dataset.index));
    ui.words.focus({ preventScroll: true });
  });
  ui.words.addEventListener("dblclick", (event) => {
    const chip = event.target.closest && event.target.closest(".ann-word");
    if (chip) openEditor("replace", Number(chip.dataset.index));
  });
  ui.threshold.addEventListener("input", () => setThreshold(Number(ui.threshold.value)));
  ui.rewriteBox.addEventListener("input", () => {
    ui.preview.textContent = ui.rewriteBox.value.trim() || "—";
    saveDraft();
  });
  ui.undoButton.addEventListener("click", () => {
    noteInteraction("pointer");
    undoEdit();
  });
  ui.redoButton.addEventListener("click", () => {
    noteInteraction("pointer");
    redoEdit();
  });
  ui.rewriteButton.addEventListener("click", () => (page.rewriting ? rewriteClose() : rewriteOpen()));
  ui.skipButton.addEventListener("click", () => skipAsked());
  ui.acceptButton.addEventListener("click", () => accept());
  ui.submitButton.addEventListener("click", () => {
    noteInteraction("pointer");
    submitCurrent();
  });
  ui.helpButton.addEventListener("click", () => helpToggle(true));
  ui.helpClose.addEventListener("click", () => helpToggle(false));
  ui.help.addEventListener("click", (event) => {
    if (event.target === ui.help) helpToggle(false);
  });
  ui.zoomIn.addEventListener("click", () => zoomTo(page.zoom.scale * 1.25));
  ui.zoomOut.addEventListener("click", () => zoomTo(page.zoom.scale / 1.25));
  ui.zoomResetButton.addEventListener("click", zoomReset);
  ui.viewport.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      noteActivity();
      const rect = ui.viewport.getBoundingClientRect();
      zoomTo(page.zoom.scale * Math.exp(-event.deltaY * 0.0015), event.clientX - rect.left, event.clientY - rect.top);
    },
    { passive: false },
  );
  let drag = null;
  ui.viewport.addEventListener("pointerdown", (event) => {
    if (page.zoom.scale <= 1 || event.button !== 0) return;
    drag = { id: event.pointerId, x: event.clientX, y: event.clientY };
    ui.viewport.setPointerCapture(event.pointerId);
    ui.viewport.classList.add("is-dragging");
  });
  ui.viewport.addEventListener("pointermove", (event) => {
    if (!drag || drag.id !== event.pointerId) return;
    panBy(event.clientX - drag.x, event.clientY - drag.y);
    drag.x = event.clientX;
    drag.y = event.clientY;
  });
  const dragEnd = (event) => {
    if (drag && drag.id === event.pointerId) {
      drag = null;
      ui.viewport.classList.remove("is-dragging");
    }
  };
  ui.viewport.addEventListener("pointerup", dragEnd);
  ui.viewport.addEventListener("pointercancel", dragEnd);
  ui.image.addEventListener("load", () => {
    // Small images (the built-in world's) stay crisp when scaled up.
    const rect = ui.viewport.getBoundingClientRect();
    ui.viewport.classList.toggle("is-pixelated", ui.image.naturalWidth * 2 <= rect.width);
  });
  ui.image.addEventListener("error", () => {
    if (ui.image.getAttribute("src")) announce("The image did not load. You can still skip this task (s).");
  });

  const onVisibility = () => {
    if (!page.task || page.view !== "task") return;
    if (doc.hidden) {
      record("hidden");
      flushEvents({ keepalive: true });
    } else {
      page.idle = false;
      record("visible");
      page.lastActivity = clock();
      heartbeat();
    }
  };
  const onPageHide = () => {
    saveDraft();
    flushEvents({ keepalive: true });
  };
  let lastPointerNote = 0;
  const onPointerActivity = () => {
    const now = clock();
    if (now - lastPointerNote > 1000) {
      lastPointerNote = now;
      noteActivity();
    }
  };
  doc.addEventListener("keydown", onKeydown);
  doc.addEventListener("visibilitychange", onVisibility);
  win.addEventListener("pagehide", onPageHide);
  doc.addEventListener("pointermove", onPointerActivity, { passive: true });
  doc.addEventListener("pointerdown", onPointerActivity, { passive: true });

  page.timers.push(win.setInterval(tick, 1000));
  page.timers.push(win.setInterval(heartbeat, HEARTBEAT_MS));
  page.timers.push(win.setInterval(() => flushEvents(), EVENTS_FLUSH_MS));

  render();
  const ready = loadNext();

  return {
    ready,
    loadNext,
    /** What the page shows now, for tests: view, task id, words, selection, the text it would submit. */
    snapshot() {
      return {
        view: page.view,
        taskId: page.task ? page.task.id : null,
        arm: page.task ? page.task.arm : null,
        words: page.edit ? page.edit.words.map((word) => word.text) : [],
        selected: page.selected,
        suspects: suspectIndices(),
        threshold: page.threshold,
        text: page.edit ? captionRender(page.edit) : null,
        changed: page.edit ? isChanged(page.edit) : false,
        submitting: page.submitting,
        pendingEvents: page.pending.map((event) => event.type),
        online: page.online,
      };
    },
    destroy() {
      page.destroyed = true;
      page.timers.forEach((timer) => win.clearInterval(timer));
      win.clearTimeout(page.emptyRetry);
      doc.removeEventListener("keydown", onKeydown);
      doc.removeEventListener("visibilitychange", onVisibility);
      doc.removeEventListener("pointermove", onPointerActivity);
      doc.removeEventListener("pointerdown", onPointerActivity);
      win.removeEventListener("pagehide", onPageHide);
      root.replaceChildren();
    },
  };
}

// -------------------------------------------------------------------- building the screen

function buildScreen(doc, uid, projectName) {
  const el = (tag, attributes = {}, ...children) => {
    const node = doc.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === false || value === null || value === undefined) continue;
      if (name === "className") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name === "hidden") node.hidden = Boolean(value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    node.append(...children);
    return node;
  };

  const ui = {};
  ui.statusTask = el("span", { className: "ann-status__task" });
  ui.statusArm = el("span", { className: "ann-status__arm", hidden: true });
  ui.statusLease = el("span", { className: "ann-status__lease" });
  ui.statusSave = el("span", { className: "ann-status__save" });
  ui.statusDone = el("span", { className: "ann-status__done" });
  ui.helpButton = el(
    "button",
    { type: "button", className: "ann-btn ann-btn--ghost ann-help-button", "aria-keyshortcuts": "?", "aria-haspopup": "dialog" },
    el("span", { className: "ann-btn__label", text: "Shortcuts" }),
    el("kbd", { text: "?" }),
  );
  ui.live = el("div", { className: "ann-sr-only", "aria-live": "polite", "aria-atomic": "true" });
  ui.toast = el("div", { className: "ann-toast", hidden: true, "aria-hidden": "true" });
  const statusBar = el(
    "div",
    { className: "ann-status", role: "region", "aria-label": "Task status" },
    projectName ? el("span", { className: "ann-status__project", text: projectName }) : "",
    ui.statusTask,
    ui.statusArm,
    ui.statusLease,
    ui.statusSave,
    el("span", { className: "ann-status__spacer" }),
    ui.statusDone,
    ui.helpButton,
  );

  // Image
  ui.image = el("img", { className: "ann-image__img", alt: "", draggable: "false" });
  ui.viewport = el("div", { className: "ann-image__viewport" }, ui.image);
  ui.zoomOut = el("button", { type: "button", className: "ann-icon-btn", "aria-label": "Zoom out", title: "Zoom out (−)", text: "−" });
  ui.zoomIn = el("button", { type: "button", className: "ann-icon-btn", "aria-label": "Zoom in", title: "Zoom in (+)", text: "+" });
  ui.zoomLevel = el("span", { className: "ann-image__level", "aria-live": "off", text: "100%" });
  ui.zoomResetButton = el("button", { type: "button", className: "ann-icon-btn ann-icon-btn--text", title: "Reset zoom (0)", text: "Fit" });
  const imagePanel = el(
    "section",
    { className: "ann-panel ann-image", "aria-label": "Image" },
    ui.viewport,
    el(
      "div",
      { className: "ann-image__tools" },
      el("span", { className: "ann-muted", text: "Scroll or + / − to zoom, drag to pan" }),
      el("span", { className: "ann-image__zoom" }, ui.zoomOut, ui.zoomLevel, ui.zoomIn, ui.zoomResetButton),
    ),
  );

  // Caption
  ui.banner = el(
    "div",
    { className: "ann-banner", role: "note", hidden: true },
    el("span", { className: "ann-banner__icon", "aria-hidden": "true", text: "!" }),
    el("span", { text: "This caption probably has an error." }),
  );
  ui.hint = el("p", { className: "ann-muted ann-caption__hint", id: `${uid}-hint` });
  ui.words = el("div", {
    className: "ann-words",
    role: "listbox",
    tabindex: "0",
    "aria-label": "Caption words",
    "aria-describedby": `${uid}-hint`,
    "aria-orientation": "horizontal",
  });
  ui.rewriteBox = el("textarea", {
    className: "ann-rewrite",
    rows: "4",
    hidden: true,
    "aria-label": "Rewrite the caption (Ctrl+Enter submits, Esc returns to words)",
    spellcheck: "true",
  });
  ui.rewriteHint = el(
    "p",
    { className: "ann-muted ann-rewrite-hint", hidden: true },
    el("kbd", { text: "Ctrl ↵" }),
    " submits this text · ",
    el("kbd", { text: "Esc" }),
    " goes back to the words (keeping it; Ctrl+Z undoes)",
  );
  ui.threshold = el("input", {
    type: "range",
    min: "0",
    max: "1",
    step: String(THRESHOLD_STEP),
    id: `${uid}-threshold`,
    "aria-keyshortcuts": "[ ]",
  });
  ui.thresholdValue = el("output", { className: "ann-threshold__value", for: `${uid}-threshold` });
  ui.suspectCount = el("span", { className: "ann-muted" });
  ui.thresholdRow = el(
    "div",
    { className: "ann-threshold", hidden: true },
    el("label", { for: `${uid}-threshold`, text: "Highlight threshold" }),
    ui.threshold,
    ui.thresholdValue,
    ui.suspectCount,
    el("span", { className: "ann-muted ann-threshold__keys" }, el("kbd", { text: "[" }), " ", el("kbd", { text: "]" })),
  );
  ui.preview = el("p", { className: "ann-compare__text", id: `${uid}-preview` });
  ui.original = el("p", { className: "ann-compare__text ann-compare__text--original" });
  ui.changedMark = el("span", { className: "ann-badge", hidden: true, text: "edited" });
  const compare = el(
    "div",
    { className: "ann-compare" },
    el("div", { className: "ann-compare__row" }, el("h3", { text: "Will submit" }, " ", ui.changedMark), ui.preview),
    el("div", { className: "ann-compare__row" }, el("h3", { text: "Original" }), ui.original),
  );

  const actionButton = (label, kbd, variant, shortcut) => {
    // Ghost buttons carry their key in a tooltip, to keep the row on one line.
    const node = button(doc, label, null, variant, variant === "ghost" ? null : kbd);
    if (variant === "ghost") node.title = `${label} (${kbd})`;
    node.setAttribute("aria-keyshortcuts", shortcut);
    return node;
  };
  ui.undoButton = actionButton("Undo", "Ctrl Z", "ghost", "Control+Z");
  ui.redoButton = actionButton("Redo", "Ctrl Y", "ghost", "Control+Y");
  ui.rewriteButton = actionButton("Rewrite", "R", "ghost", "R");
  ui.skipButton = actionButton("Skip", "S", "secondary", "S");
  ui.acceptButton = actionButton("Accept as is", "A", "secondary", "A");
  ui.submitButton = actionButton("Submit", "Ctrl ↵", "primary", "Control+Enter");
  const actions = el(
    "div",
    { className: "ann-actions", role: "group", "aria-label": "Actions" },
    el("div", { className: "ann-actions__group" }, ui.undoButton, ui.redoButton, ui.rewriteButton),
    el("div", { className: "ann-actions__group" }, ui.skipButton, ui.acceptButton, ui.submitButton),
  );

  const captionPanel = el(
    "section",
    { className: "ann-panel ann-caption", "aria-label": "Caption" },
    el(
      "div",
      { className: "ann-caption__head" },
      el("h2", { text: "Caption" }),
      el("span", { className: "ann-muted ann-caption__keys" }, "Press ", el("kbd", { text: "?" }), " for every shortcut"),
    ),
    ui.banner,
    ui.hint,
    ui.words,
    ui.rewriteBox,
    ui.rewriteHint,
    ui.thresholdRow,
    compare,
    actions,
  );
  ui.workspace = el("div", { className: "ann-workspace" }, imagePanel, captionPanel);

  // Messages: no task, errors, lease lost
  ui.messageTitle = el("h2", { className: "ann-message__title" });
  ui.messageDetail = el("p", { className: "ann-message__detail" });
  ui.messageTextLabel = el("label", { for: `${uid}-kept`, className: "ann-message__label", text: "Your text (kept, copy it if you need it)" });
  ui.messageText = el("textarea", { id: `${uid}-kept`, className: "ann-message__text", rows: "3", readonly: true });
  ui.messageActions = el("div", { className: "ann-message__actions" });
  ui.message = el(
    "section",
    { className: "ann-message ann-panel", hidden: true },
    ui.messageTitle,
    ui.messageDetail,
    ui.messageTextLabel,
    ui.messageText,
    ui.messageActions,
  );

  // Help
  ui.helpClose = el("button", { type: "button", className: "ann-btn ann-btn--secondary", text: "Close" });
  const groups = [...new Set(SHORTCUTS.map((shortcut) => shortcut.group))];
  const helpBody = el(
    "div",
    { className: "ann-help__groups" },
    ...groups.map((group) =>
      el(
        "section",
        { className: "ann-help__group" },
        el("h3", { text: group }),
        el(
          "dl",
          {},
          ...SHORTCUTS.filter((shortcut) => shortcut.group === group).flatMap((shortcut) => [
            el("dt", {}, ...shortcut.keys.flatMap((key, index) => [index ? " " : "", el("kbd", { text: key })])),
            el("dd", { text: shortcut.action }),
          ]),
        ),
      ),
    ),
  );
  ui.help = el(
    "div",
    { className: "ann-help", hidden: true },
    el(
      "div",
      { className: "ann-help__dialog", role: "dialog", "aria-modal": "true", "aria-labelledby": `${uid}-help-title` },
      el(
        "div",
        { className: "ann-help__head" },
        el("h2", { id: `${uid}-help-title`, text: "Keyboard shortcuts" }),
        ui.helpClose,
      ),
      helpBody,
      el("p", { className: "ann-muted", text: "Everything works without the mouse. Esc closes this list." }),
    ),
  );

  ui.shell = el("div", { className: "ann-shell" }, statusBar, ui.workspace, ui.message, ui.help, ui.toast, ui.live);
  return ui;
}

function button(doc, label, run, variant = "secondary", kbd = null) {
  const node = doc.createElement("button");
  node.type = "button";
  node.className = `ann-btn ann-btn--${variant}`;
  const text = doc.createElement("span");
  text.className = "ann-btn__label";
  text.textContent = label;
  node.append(text);
  if (kbd) {
    const hint = doc.createElement("kbd");
    hint.textContent = kbd;
    node.append(hint);
  }
  if (run) node.addEventListener("click", run);
  return node;
}

// -------------------------------------------------------------------- small pieces

class NetworkError extends Error {
  constructor(cause) {
    super("network error", { cause });
    this.name = "NetworkError";
  }
}

async function readJson(response) {
  try {
    return (await response.json()) || {};
  } catch {
    return {};
  }
}

function errorText(body) {
  if (!body || typeof body !== "object") return "";
  if (typeof body.detail === "string") return body.detail;
  const first = Object.entries(body)[0];
  if (!first) return "";
  const [field, messages] = first;
  return `${field}: ${Array.isArray(messages) ? messages.join(" ") : String(messages)}`;
}

function isTextEntry(node) {
  if (!node || !node.tagName) return false;
  if (node.isContentEditable) return true;
  if (node.tagName === "TEXTAREA" || node.tagName === "SELECT") return true;
  if (node.tagName !== "INPUT") return false;
  return !["range", "checkbox", "radio", "button", "submit"].includes(node.type);
}

function armLabel(arm) {
  return { tokens: "word highlights", binary: "caption flag", none: "no hints" }[arm] || arm;
}

function clampThreshold(value) {
  const rounded = Math.round(Number(value) / THRESHOLD_STEP) * THRESHOLD_STEP;
  return Math.max(0, Math.min(1, Number(rounded.toFixed(2))));
}

function clampIndex(index, length) {
  return Math.max(0, Math.min(index, Math.max(length - 1, 0)));
}

function safeSessionStorage(win) {
  try {
    const storage = win.sessionStorage;
    const probe = `${DRAFT_PREFIX}:probe`;
    storage.setItem(probe, "1");
    storage.removeItem(probe);
    return storage;
  } catch {
    return null;
  }
}

// The page itself: annotate.html marks its root with data-autostart.
if (typeof document !== "undefined") {
  const root = document.querySelector("[data-annotator-autostart]");
  if (root) {
    mountAnnotator(root, {
      apiBase: root.dataset.apiBase,
      projectId: root.dataset.projectId,
      projectName: root.dataset.projectName,
      csrfToken: root.dataset.csrfToken,
    });
  }
}
