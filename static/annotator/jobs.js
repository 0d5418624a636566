// Keeps the project page's jobs table current: polls each queued or running job's API row until it
// ends. Job text (step, error) is shown with textContent only: it can quote caption files.
const POLL_MS = 2000;
const ENDED = new Set(["succeeded", "failed", "cancelled"]);

function render(row, job) {
  const status = row.querySelector("[data-job-status]");
  status.textContent = job.status;
  status.className = `badge badge--${job.status}`;
  row.querySelector("[data-job-progress]").value = job.progress;
  row.querySelector("[data-job-step]").textContent = job.step;
  if (job.finished) {
    row.querySelector("[data-job-finished]").textContent = new Date(job.finished).toLocaleString();
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
