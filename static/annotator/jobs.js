// Keeps a page's jobs table current: polls each queued or running job's API row until it ends.
// A row fills the cells it has: the project page shows when a job finished, the export page the
// export's summary and its download link, the jobs page a training job's loss, log, metrics, the
// gate's verdict and a cancel button (gone once the job ends). Job text (step, log, note, error) is
// shown with textContent only: it can quote caption files.
const POLL_MS = 2000;
const ENDED = new Set(["succeeded", "failed", "cancelled"]);

function exportSummary(metrics) {
  const records = metrics.records ?? 0;
  const note = metrics.note ? `; ${metrics.note}` : "";
  return `${records} record${records === 1 ? "" : "s"}${note}`;
}

function render(row, job) {
  const status = row.querySelector("[data-job-status]");
  status.textContent = job.status;
  status.className = `badge badge--${job.status}`;
  row.querySelector("[data-job-progress]").value = job.progress;
  row.querySelector("[data-job-step]").textContent = job.step;
  const finished = row.querySelector("[data-job-finished]");
  if (finished && job.finished) finished.textContent = new Date(job.finished).toLocaleString();
  renderTraining(row, job);
  const summary = row.querySelector("[data-export-summary]");
  if (summary && job.status === "succeeded") {
    summary.textContent = exportSummary(job.metrics);
    row.querySelector("[data-export-download]").hidden = false;
  }
  if (job.status === "failed" && job.message) {
    const details = document.createElement("details");
    const title = document.createElement("summary");
    const log = document.createElement("pre");
    title.textContent = "error";
    log.className = "log";
    log.textContent = job.message;
    details.append(title, log);
    row.querySelector("[data-job-step]").after(details);
  }
}

function setText(row, selector, text) {
  const cell = row.querySelector(selector);
  if (cell) cell.textContent = text;
  return cell;
}

function reveal(row, selector, text) {
  const details = row.querySelector(`${selector}-details`);
  if (!details || !text) return;
  setText(row, selector, text);
  details.hidden = false;
}

function renderTraining(row, job) {
  if (job.loss !== null && job.loss !== undefined) setText(row, "[data-job-loss]", job.loss.toFixed(4));
  reveal(row, "[data-job-log]", job.log);
  if (job.metrics && Object.keys(job.metrics).length) {
    reveal(row, "[data-job-metrics]", JSON.stringify(job.metrics, null, 2));
  }
  setText(row, "[data-job-gate]", job.metrics?.gate?.reason ?? "");
  if (job.status !== "failed") setText(row, "[data-job-message]", job.message);
  const cancel = row.querySelector("[data-job-cancel]");
  if (cancel && ENDED.has(job.status)) cancel.hidden = true;
  else if (cancel && job.cancel_requested) cancel.querySelector("button").disabled = true;
}

async function poll(row) {
  let job;
  try {
    const response = await fetch(row.dataset.jobUrl, { headers: { Accept: "application/json" } });
    if (!response.ok) return; // signed out or the job was deleted: leave the row as it was rendered
    job = await response.json();
  } catch {
    setTimeout(() => poll(row), POLL_MS * 5); // the server is unreachable for now: try again later
    return;
  }
  render(row, job);
  if (!ENDED.has(job.status)) setTimeout(() => poll(row), POLL_MS);
}

for (const row of document.querySelectorAll("[data-job-active]")) {
  setTimeout(() => poll(row), POLL_MS);
}
