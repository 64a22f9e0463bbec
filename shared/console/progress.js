// A job's progress as people read it: a bar, "120 of 500 records (24 %)", the rate and the time left.

import { call } from "./api.js";
import { h } from "./dom.js";
import * as fmt from "./format.js";

export function isActive(job) {
  return job && (job.state === "queued" || job.state === "running");
}

function fraction(job) {
  if (job.percent !== undefined && job.percent !== null) return Number(job.percent) / 100;
  if (job.state === "done") return 1;
  if (job.records_total) return Math.min(1, (job.records_done || 0) / job.records_total);
  return null;
}

/** A <progress> bar and its words. */
export function progress(job) {
  const part = fraction(job);
  const bar = h("progress", { max: 100, value: part === null ? undefined : Math.round(part * 100), "aria-label": "progress" });
  if (part === null && isActive(job)) bar.removeAttribute("value"); // an indeterminate bar while the total is unknown
  const done = fmt.number(job.records_done ?? 0);
  const words = job.records_total !== undefined && job.records_total !== null
    ? `${done} of ${fmt.number(job.records_total)} records`
    : `${done} records`;
  const extra = [];
  if (part !== null) extra.push(fmt.percent(part));
  if (job.rate_per_s) extra.push(`${fmt.number(Math.round(job.rate_per_s * 10) / 10)}/s`);
  if (isActive(job) && job.eta_s !== undefined && job.eta_s !== null) extra.push(`about ${fmt.duration(job.eta_s)} left`);
  return h("div", { class: "progress" }, bar, h("span", { class: "progress-words" }, words, extra.length ? ` (${extra.join(", ")})` : ""));
}

/** The job by id: GET /api/jobs/{id}, or (an app without it) the Quick Sync job list. */
export async function fetchJob(id) {
  const answer = await call("GET", `jobs/${id}`);
  if (answer.ok) return answer.data.job || answer.data;
  const quick = await call("GET", "quicksync");
  if (!quick.ok) return null;
  return (quick.data.jobs || []).find((j) => j.id === id) || null;
}
