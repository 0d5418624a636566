// Keeps the export page's jobs table current: polls each queued or running export's API row until it
// ends, then offers its file. Job text (step, note, error) is shown with textContent only.
const POLL_MS = 2000;
const ENDED = new Set(["succeeded", "failed", "cancelled"]);

function render(row, job) {
  const status = row.querySelector("[data-job-status]");
  status.textContent = job.status;
  status.className = `badge badge--${job.status}`;
  row.querySelector("[data-job-progress]").value = job.progress;
  row.querySelector("[data-job-step]").textContent = job.step;
  if (job.status === "succeeded") {
    const records = job.metrics.records ?? 0;
    const note = job.metrics.note ? `; ${job.metrics.note}` : "";
    row.querySelector("[data-export-summary]").textContent = `${records} record${records === 1 ? "" : "s"}${note}`;
    row.querySelector("[data-export-download]").hidden = false;
  }
  if (job.status === "failed" && job.message) {
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    const log = document.createElement("pre");
    summary.textContent = "error";
    log.className = "log";
    log.textContent = job.message;
    details.append(summary, log);
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
