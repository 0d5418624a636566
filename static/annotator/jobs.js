// Keeps a page's jobs table current: polls each queued or running job's API row until it ends.
// A row fills the cells it has: the project page shows when a job finished, the export page the
// export's summary and its download link. Job text (step, note, error) is shown with textContent
// only: it can quote caption files.
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
