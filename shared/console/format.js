// Values as people read them: labels instead of keys, local times (the browser's Intl), words for true/false.

import { h } from "./dom.js";

const NUMBER = new Intl.NumberFormat();
const PERCENT = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 0 });
const DATETIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

const ENTITIES = {
  lead: "Lead",
  contact: "Contact",
  account: "Account",
  systemuser: "User",
  opportunity: "Opportunity",
  team: "Team",
  person: "Person",
};

const DIRECTIONS = {
  dynamics_to_marketo: "Dynamics → Marketo",
  marketo_to_dynamics: "Marketo → Dynamics",
  both: "Dynamics ⇄ Marketo",
  both_ways: "Both ways",
  refresh_marketo: "Dynamics → Marketo (refresh Marketo)",
};

const WORDS = {
  // sync error statuses
  open: "Open",
  retrying: "Retrying",
  resolved: "Resolved",
  ignored: "Ignored",
  // job states
  queued: "Queued",
  running: "Running",
  done: "Done",
  cancelled: "Cancelled",
  failed: "Failed",
  // field states
  active: "Active",
  awaiting_quick_sync: "Waiting for Quick Sync",
  quick_sync_running: "Quick Sync running",
  broken: "Broken",
  // job kinds and scopes
  quick_sync: "Quick Sync",
  resync: "Resync",
  record: "Records",
  entity: "Every record",
  modified: "Modified in a date range",
  // timers
  marketo_feed: "Marketo activity feed",
  dataverse_catchup: "Dataverse catch-up",
  pending_sweep: "Pending sweep",
  verify_sweep: "Verification sweep",
  // services
  marketo: "Marketo",
  dataverse: "Dataverse",
};

const NAMES = { marketo: "Marketo", dynamics: "Dynamics", dataverse: "Dataverse" };

function humanise(key) {
  const text = String(key)
    .replace(/[_-]+/g, " ")
    .trim()
    .replace(/\b(marketo|dynamics|dataverse)\b/gi, (name) => NAMES[name.toLowerCase()]);
  return text ? text[0].toUpperCase() + text.slice(1) : "";
}

/** Who closed a sync error. */
export function resolvedBy(who) {
  return { sync: "the sync", admin: "an admin" }[who] || word(who);
}

/** A label for a key (an entity, a state, a timer...): ours when we have one, else the key made readable. */
export function word(key) {
  if (key === null || key === undefined || key === "") return "—";
  return WORDS[key] || humanise(key);
}

export function entity(name) {
  if (!name || name === "-") return "—";
  return ENTITIES[name] || name;
}

export function direction(value) {
  if (!value || value === "-") return "—";
  return DIRECTIONS[value] || humanise(value);
}

export function yesNo(value) {
  return h("span", { class: value ? "yes" : "no" }, value ? "✓ Yes" : "✗ No");
}

export function number(value) {
  return value === null || value === undefined || value === "" ? "—" : NUMBER.format(Number(value));
}

export function percent(fraction) {
  return fraction === null || fraction === undefined ? "—" : PERCENT.format(fraction);
}

function parse(value) {
  if (!value) return null;
  const moment = new Date(value);
  return Number.isNaN(moment.getTime()) ? null : moment;
}

/** ISO text to the second, without microseconds (for tooltips: the exact UTC instant). */
export function isoSeconds(value) {
  const moment = parse(value);
  return moment ? moment.toISOString().replace(/\.\d+Z$/, "Z") : "";
}

/** A <time> in the browser's time zone and language, the exact UTC instant on hover. */
export function when(value, { relative = false } = {}) {
  const moment = parse(value);
  if (!moment) return h("span", { class: "muted" }, value ? String(value) : "never");
  const text = DATETIME.format(moment) + (relative ? ` (${ago(moment)})` : "");
  return h("time", { datetime: isoSeconds(value), title: `${isoSeconds(value)} (UTC)` }, text);
}

export function ago(moment) {
  const seconds = Math.round((moment.getTime() - Date.now()) / 1000);
  const units = [
    ["day", 86400],
    ["hour", 3600],
    ["minute", 60],
  ];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return RELATIVE.format(Math.round(seconds / size), unit);
  }
  return RELATIVE.format(seconds, "second");
}

/** Seconds as "1 h 5 min", "2 min 30 s", "12 s". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "—";
  let left = Math.max(0, Math.round(Number(seconds)));
  const days = Math.floor(left / 86400);
  left -= days * 86400;
  const hours = Math.floor(left / 3600);
  left -= hours * 3600;
  const minutes = Math.floor(left / 60);
  const secs = left - minutes * 60;
  const parts = [];
  if (days) parts.push(`${days} d`);
  if (hours) parts.push(`${hours} h`);
  if (minutes && !days) parts.push(`${minutes} min`);
  if (!days && !hours && (secs || !parts.length)) parts.push(`${secs} s`);
  return parts.join(" ");
}

/** A value a system held (a record's field), as text: empty shown as a dash, true/false as words. */
export function value(held) {
  if (held === null || held === undefined || held === "") return h("span", { class: "muted" }, "(empty)");
  if (held === true || held === false) return held ? "Yes" : "No";
  if (typeof held === "object") return JSON.stringify(held);
  return String(held);
}

/** A coloured badge with words: level is "ok" (green), "warn" (amber), "bad" (red) or "idle" (grey). */
export function badge(level, text) {
  return h("span", { class: ["badge", level] }, text);
}

const STATUS_LEVELS = {
  open: "bad",
  retrying: "warn",
  resolved: "ok",
  ignored: "idle",
  queued: "idle",
  running: "warn",
  done: "ok",
  cancelled: "idle",
  failed: "bad",
  active: "ok",
  awaiting_quick_sync: "warn",
  quick_sync_running: "warn",
  broken: "bad",
};

export function stateBadge(state) {
  return badge(STATUS_LEVELS[state] || "idle", word(state));
}
