// Status: each entity's health (green, amber, red, with the reasons in words), backlog, throughput and trend;
// the services, API budgets, timers, jobs and dead letters; pause and resume.

import { call, describe, link } from "./api.js";
import { h, notify, put, s, section, table } from "./dom.js";
import * as fmt from "./format.js";

const REFRESH_MS = 10000;
const RANK = { ok: 0, warn: 1, bad: 2 };
const WAITING_WARN_S = 120; // the oldest pending change is late
const WAITING_BAD_S = 900; // ... and very late

function ageSeconds(entity, generatedAt) {
  if (entity.oldest_pending_age_s !== undefined && entity.oldest_pending_age_s !== null) return entity.oldest_pending_age_s;
  if (!entity.oldest_pending) return null;
  const now = generatedAt ? new Date(generatedAt) : new Date();
  return (now.getTime() - new Date(entity.oldest_pending).getTime()) / 1000;
}

/** green / amber / red for one entity, and why, from what the status says. */
export function health(entity, data) {
  let level = "ok";
  const reasons = [];
  const raise = (to, why) => {
    reasons.push(why);
    if (RANK[to] > RANK[level]) level = to;
  };
  for (const [name, service] of Object.entries(data.services || {})) {
    if (service && service.available === false) raise("bad", `${fmt.word(name)} unavailable`);
  }
  const broken = entity.broken_fields || [];
  if (broken.length) raise("bad", `Broken fields: ${broken.join(", ")}`);
  const failed = entity.failed_last_hour ?? entity.errors_last_hour ?? 0;
  const synced = entity.synced_last_hour ?? 0;
  if (failed > 0 && synced === 0) raise("bad", `${fmt.number(failed)} failed and none synced in the last hour`);
  else if (failed > 0) raise("warn", `${fmt.number(failed)} failed in the last hour`);
  if (entity.open_errors > 0) raise("warn", `${fmt.number(entity.open_errors)} open sync errors`);
  const paused = entity.paused || data.paused_all || data.paused;
  if (paused) raise("warn", "Paused");
  const age = ageSeconds(entity, data.generated_at);
  if (age !== null && age >= WAITING_BAD_S) raise("bad", `Oldest change waiting ${fmt.duration(age)}`);
  else if (age !== null && age >= WAITING_WARN_S) raise("warn", `Oldest change waiting ${fmt.duration(age)}`);
  return { level, reasons: reasons.length ? reasons : ["Healthy"] };
}

const LEVEL_WORDS = { ok: "Healthy", warn: "Needs attention", bad: "Failing" };

function trendChart(trend) {
  if (!Array.isArray(trend) || !trend.length) return h("span", { class: "muted" }, "—");
  const width = 4;
  const height = 24;
  const top = Math.max(1, ...trend.map((slot) => (slot.synced || 0) + (slot.failed || 0)));
  const bars = trend.flatMap((slot, i) => {
    const ok = Math.round(((slot.synced || 0) / top) * height);
    const bad = Math.round(((slot.failed || 0) / top) * height);
    return [
      s("rect", { x: i * width, y: height - ok - bad, width: width - 1, height: ok, class: "bar-ok" }),
      s("rect", { x: i * width, y: height - bad, width: width - 1, height: bad, class: "bar-bad" }),
    ];
  });
  const synced = trend.reduce((sum, slot) => sum + (slot.synced || 0), 0);
  const failed = trend.reduce((sum, slot) => sum + (slot.failed || 0), 0);
  const words = `Last 24 hours: ${fmt.number(synced)} synced, ${fmt.number(failed)} failed`;
  return s(
    "svg",
    { class: "trend", viewBox: `0 0 ${trend.length * width} ${height}`, width: trend.length * width, height, role: "img", "aria-label": words },
    s("title", {}, words),
    bars,
  );
}

async function pause(entity, paused) {
  const answer = await call("POST", paused ? "sync/pause" : "sync/resume", { params: { entity } });
  const what = entity ? fmt.entity(entity) : "The whole sync";
  if (answer.ok) notify(`${what} ${paused ? "paused" : "resumed"}.`);
  else notify(describe(answer, paused ? "Pause" : "Resume"), "bad");
}

function entityRows(data, redraw) {
  return (data.entities || []).map((e) => {
    const { level, reasons } = health(e, data);
    const collisions = e.collisions_last_hour || {};
    const pausedHere = Boolean(e.paused);
    const openErrors = e.open_errors
      ? h("a", { href: link("errors", { entity: e.entity, status: "open" }) }, fmt.number(e.open_errors))
      : fmt.number(e.open_errors ?? 0);
    const toggle = h(
      "button",
      {
        type: "button",
        class: "small",
        onclick: async () => {
          await pause(e.entity, !pausedHere);
          redraw();
        },
      },
      pausedHere ? "Resume" : "Pause",
    );
    return h(
      "tr",
      { class: ["entity", `health-${level}`], dataset: { entity: e.entity, health: level } },
      h("th", { scope: "row" }, fmt.entity(e.entity)),
      h("td", {}, h("span", { class: ["badge", level], title: reasons.join("; ") }, LEVEL_WORDS[level]), level === "ok" ? null : h("div", { class: "reasons" }, reasons.join(" · "))),
      h("td", { class: "nowrap" }, fmt.direction(e.direction)),
      h("td", {}, fmt.yesNo(pausedHere)),
      h("td", { class: "num" }, fmt.number(e.backlog_records ?? e.backlog)),
      h("td", {}, e.oldest_pending ? fmt.when(e.oldest_pending, { relative: true }) : h("span", { class: "muted" }, "none")),
      h("td", { class: "num" }, fmt.number(e.synced_last_hour)),
      h("td", { class: "num" }, fmt.number(e.failed_last_hour ?? e.errors_last_hour)),
      h("td", { class: "num" }, openErrors),
      h("td", { class: "nowrap" }, `Marketo ${fmt.number(collisions.marketo_won ?? 0)}`, h("br"), `Dynamics ${fmt.number(collisions.dynamics_won ?? 0)}`),
      h("td", {}, trendChart(e.trend_24h)),
      h("td", {}, toggle),
    );
  });
}

function servicesPart(data) {
  const services = Object.entries(data.services || {});
  if (!services.length) return null;
  return h(
    "ul",
    { class: "services" },
    services.map(([name, svc]) =>
      h(
        "li",
        {},
        fmt.badge(svc.available === false ? "bad" : "ok", svc.available === false ? "Unavailable" : "Available"),
        ` ${fmt.word(name)}`,
        svc.notice ? h("strong", {}, ` — ${svc.notice}`) : null,
        svc.available === false && svc.next_probe_at ? h("span", { class: "muted" }, " · next try ", fmt.when(svc.next_probe_at)) : null,
      ),
    ),
  );
}

function ofLimit(used, limit) {
  if (used === null || used === undefined) return limit ? `not known (limit ${fmt.number(limit)})` : "not known";
  return limit ? `${fmt.number(used)} of ${fmt.number(limit)}` : fmt.number(used);
}

/** What each service's API budget says: calls in flight, in the rate window and today, whichever it reports. */
function budgetsPart(budgets) {
  const rows = Object.entries(budgets || {}).map(([name, b]) => {
    const flight = b.in_flight !== undefined ? ofLimit(b.in_flight, b.concurrency_limit) + (b.peak ? ` (peak ${fmt.number(b.peak)})` : "") : "—";
    const window = "calls_last_20s" in b ? `${ofLimit(b.calls_last_20s, b.limit_20s)} in 20 s` : "requests_last_5min" in b ? `${ofLimit(b.requests_last_5min, b.requests_limit_5min)} in 5 min` : "—";
    const today = "daily_limit" in b
      ? h("td", {}, ofLimit(b.daily_used, b.daily_limit), b.daily_left !== null && b.daily_left !== undefined ? ` · ${fmt.number(b.daily_left)} left` : "", " ", b.daily_limit && b.daily_used !== null ? h("meter", { min: 0, max: b.daily_limit, value: b.daily_used || 0, low: b.daily_limit * 0.6, high: b.daily_limit * 0.85, optimum: 0 }) : null)
      : "—";
    return [fmt.word(name), flight, window, today, h("td", { class: "small" }, b.daily_error || "")];
  });
  if (!rows.length) return null;
  return section("API budgets", table(["Service", "Calls in flight", "Rate window", "Today", "Note"], rows, { id: "budgets" }));
}

function timersPart(timers) {
  const rows = Object.entries(timers || {}).map(([name, timer]) => {
    const t = timer && typeof timer === "object" ? timer : { last_run: timer };
    return [fmt.word(name), fmt.when(t.last_run, { relative: true }), t.next_run ? fmt.when(t.next_run) : "—", t.schedule ? h("code", {}, t.schedule) : "—"];
  });
  return section("Timers", table(["Timer", "Last run", "Next run", "Schedule"], rows));
}

function jobsPart(data) {
  const jobs = data.jobs || data.quick_sync || [];
  const active = jobs.filter((j) => j.state === "queued" || j.state === "running");
  const summary = active.length
    ? `${active.length} job(s) queued or running.`
    : jobs.length
      ? "No job running."
      : "No Quick Sync or resync job yet.";
  return section("Jobs", h("p", {}, summary, " ", h("a", { href: link("jobs") }, "See every job")));
}

function queuePart(data) {
  const queue = data.queue || {};
  const pending = data.pending || {};
  const dead = data.dead_letters;
  const deadCount = dead ? dead.count : queue.dead_lettered;
  return section(
    "Queue",
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Changes waiting in the queue"),
      h("dd", {}, fmt.number(queue.pending)),
      h("dt", {}, "Records waiting for a retry"),
      h("dd", {}, `${fmt.number(pending.total ?? 0)} (${fmt.number(pending.due ?? 0)} due now, ${fmt.number(pending.parked ?? 0)} given up)`),
      h("dt", {}, "Dead letters"),
      h(
        "dd",
        {},
        fmt.badge(deadCount ? "warn" : "ok", fmt.number(deadCount ?? 0)),
        " ",
        h("a", { href: link("deadletters") }, "Dead letters page"),
        dead?.oldest ? h("span", { class: "muted" }, ` · oldest: ${dead.oldest.reason || "no reason given"}`) : null,
      ),
    ),
  );
}

function overall(data) {
  const levels = (data.entities || []).map((e) => health(e, data).level);
  const level = levels.includes("bad") ? "bad" : levels.includes("warn") ? "warn" : "ok";
  const pausedAll = data.paused_all ?? data.paused;
  const pausedSome = data.paused_entities || (data.entities || []).filter((e) => e.paused).map((e) => e.entity);
  return h(
    "div",
    { class: "overall" },
    h("span", { class: ["badge", "big", level], id: "overall-health" }, LEVEL_WORDS[level]),
    pausedAll ? h("strong", {}, " The whole sync is paused.") : pausedSome.length ? ` Paused: ${pausedSome.map(fmt.entity).join(", ")}.` : "",
    " Updated ",
    fmt.when(data.generated_at),
    ".",
  );
}

export async function render(app) {
  let timer = null;
  const draw = async () => {
    clearTimeout(timer);
    const answer = await call("GET", "status");
    if (!answer.ok) {
      notify(describe(answer, "The status could not be read"), "bad");
      put(app, h("p", { class: "muted" }, "No status to show."));
      return;
    }
    const data = answer.data;
    const pausedAll = data.paused_all ?? data.paused;
    const actions = h(
      "p",
      { class: "actions" },
      h("button", { type: "button", onclick: async () => { await pause(null, !pausedAll); draw(); } }, pausedAll ? "Resume the whole sync" : "Pause the whole sync"),
      h("button", { type: "button", onclick: () => draw() }, "Refresh"),
    );
    const headers = ["Entity", "Health", "Direction", "Paused", "Backlog (records)", "Oldest change waiting", "Synced (1 h)", "Failed (1 h)", "Open errors", "Collisions won (1 h)", "24 hours", ""];
    put(
      app,
      overall(data),
      servicesPart(data),
      actions,
      section("Entities", table(headers, entityRows(data, draw), { id: "entities" })),
      budgetsPart(data.budgets),
      h("div", { class: "columns" }, queuePart(data), jobsPart(data)),
      timersPart(data.timers),
    );
    timer = setTimeout(draw, REFRESH_MS);
  };
  await draw();
}
