// Jobs: every Quick Sync and resync job with done/total, percent, rate and time left; start a resync.

import { call, describe, pageParams } from "./api.js";
import { field, h, notify, put, section, select, table } from "./dom.js";
import * as fmt from "./format.js";
import { isActive, progress } from "./progress.js";

const REFRESH_ACTIVE_MS = 1000;
const REFRESH_IDLE_MS = 15000;

async function listJobs() {
  const answer = await call("GET", "jobs");
  if (answer.ok) return { jobs: answer.data.jobs || [], complete: true };
  const quick = await call("GET", "quicksync"); // an app without the jobs endpoint: its Quick Sync jobs
  if (quick.ok) return { jobs: (quick.data.jobs || []).map((j) => ({ kind: "quick_sync", ...j })), complete: false };
  notify(describe(answer, "The jobs could not be read"), "bad");
  return { jobs: [], complete: false };
}

function what(job) {
  if ((job.kind || "quick_sync") === "quick_sync") return h("span", {}, "Field ", h("code", {}, job.column || "?"));
  const scope = fmt.word(job.scope);
  return h("span", {}, scope, job.mode ? h("div", { class: "muted small" }, fmt.direction(job.mode)) : null);
}

function jobRow(job, highlighted) {
  return h(
    "tr",
    { dataset: { job: job.id, state: job.state }, class: highlighted ? "highlight" : null },
    h("td", {}, fmt.word(job.kind || "quick_sync")),
    h("td", {}, fmt.entity(job.entity)),
    h("td", {}, what(job)),
    h("td", {}, fmt.stateBadge(job.state)),
    h("td", {}, progress(job)),
    h("td", { class: "num" }, job.rate_per_s ? `${fmt.number(Math.round(job.rate_per_s * 10) / 10)} records/s` : "—"),
    h("td", {}, isActive(job) && job.eta_s !== null && job.eta_s !== undefined ? fmt.duration(job.eta_s) : "—"),
    h("td", {}, fmt.when(job.created_at)),
    h("td", {}, job.started_at ? fmt.when(job.started_at) : "—"),
    h("td", {}, job.finished_at ? fmt.when(job.finished_at) : "—"),
    h("td", { class: "small" }, job.notice || job.last_error || ""),
  );
}

function toInstant(local) {
  const moment = local ? new Date(local) : null;
  return moment && !Number.isNaN(moment.getTime()) ? moment.toISOString().replace(/\.\d+Z$/, "Z") : undefined;
}

function resyncForm(entities, started) {
  const entity = select("entity", entities.map((e) => [e, fmt.entity(e)]), entities[0]);
  const scope = select("scope", [["entity", "Every record"], ["modified", "Records modified in a date range"], ["record", "These records"]], "entity");
  const from = h("input", { type: "datetime-local", name: "modified_from" });
  const to = h("input", { type: "datetime-local", name: "modified_to" });
  const ids = h("textarea", { name: "ids", rows: 2, cols: 40, placeholder: "Dynamics ids, one a line" });
  const mode = select("mode", [["both_ways", "Reconcile both ways"], ["refresh_marketo", "Refresh Marketo from Dynamics"]], "both_ways");
  const range = h("div", { class: "range" }, field("Modified from", from), field("Modified to", to));
  const list = h("div", { class: "range" }, field("Dynamics ids", ids));
  const shown = () => {
    range.hidden = scope.value !== "modified";
    list.hidden = scope.value !== "record";
  };
  scope.addEventListener("change", shown);
  shown();
  const form = h("form", { class: "filters", id: "resync" }, field("Entity", entity), field("Which records", scope), range, list, field("How", mode), h("button", { type: "submit" }, "Start the resync"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { entity: entity.value, mode: mode.value };
    if (scope.value === "modified") {
      body.modified_from = toInstant(from.value);
      body.modified_to = toInstant(to.value);
    }
    if (scope.value === "record") body.ids = ids.value.split(/[\s,;]+/).filter(Boolean);
    const answer = await call("POST", "resync", { body });
    if (answer.ok) {
      notify(`Resync of ${fmt.entity(body.entity)} queued (${fmt.direction(body.mode)}).`);
      started(answer.data.job?.id);
    } else if (answer.status === 404 && answer.problem?.message?.includes("no function")) {
      notify("Resync is not available on this version of the app.", "bad");
    } else {
      notify(describe(answer, "The resync could not start"), "bad");
    }
  });
  return form;
}

export async function render(app) {
  let highlight = pageParams().job || null;
  const mapping = await call("GET", "mapping");
  const entities = mapping.ok ? (mapping.data.entities || []).map((e) => e.entity) : [];
  const list = h("div", { id: "jobs" });
  let timer = null;
  const draw = async () => {
    clearTimeout(timer);
    const { jobs, complete } = await listJobs();
    const headers = ["Kind", "Entity", "What", "State", "Progress", "Rate", "Time left", "Created", "Started", "Finished", "Notice"];
    const active = jobs.filter(isActive).length;
    put(
      list,
      h("p", { id: "jobs-count" }, jobs.length ? `${fmt.number(jobs.length)} job(s), ${fmt.number(active)} queued or running.` : "No job yet."),
      complete ? null : h("p", { class: "muted" }, "This version of the app lists Quick Sync jobs only."),
      jobs.length ? table(headers, jobs.map((j) => jobRow(j, j.id === highlight)), { id: "job-table" }) : null,
    );
    timer = setTimeout(draw, active ? REFRESH_ACTIVE_MS : REFRESH_IDLE_MS);
  };
  const started = (id) => {
    highlight = id || highlight;
    draw();
  };
  put(app, section("Start a resync", h("p", { class: "muted" }, "A resync runs behind the live sync, as a backfill, and shows its progress below."), resyncForm(entities, started)), section("Jobs", list));
  await draw();
}
