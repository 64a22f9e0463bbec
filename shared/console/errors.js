// Sync errors: search and filter (entity, direction, code, status, time), retry / ignore / resolve one or every
// open one of the filter, and export what is filtered as CSV. The filter lives in the address, so it can be shared.

import { BASE, KEY, call, describe, keepInAddress, link, pageParams } from "./api.js";
import { field, h, notify, put, section, select, table } from "./dom.js";
import * as fmt from "./format.js";

// The error-code filter is "error_code" (in the API and in this page's address): "code" is the function key.
const FILTERS = ["q", "entity", "direction", "error_code", "status", "since", "until"];

function fromAddress() {
  const params = pageParams();
  const filters = {};
  for (const name of FILTERS) {
    const value = params[name];
    if (value) filters[name] = value;
  }
  return filters;
}


/**
 * The CSV of what is filtered, fetched with the key in its header and handed to the browser as a download.
 * (A plain link would need the key in its address, where a browser's history and any proxy's log keep it.)
 */
async function download(filters) {
  const headers = KEY ? { "x-functions-key": KEY } : {};
  const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
  let response;
  try {
    response = await fetch(`${BASE}/errors.csv${query ? `?${query}` : ""}`, { headers, cache: "no-store" });
  } catch {
    notify("Export: the app did not answer.", "bad");
    return;
  }
  if (!response.ok) {
    notify(`Export: HTTP ${response.status}`, "bad");
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const anchor = h("a", { href: url, download: "sync-errors.csv", hidden: true });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  notify("Exported what is filtered as sync-errors.csv.");
}
const LIMIT = 500;

async function entityNames() {
  const answer = await call("GET", "mapping");
  return answer.ok ? (answer.data.entities || []).map((e) => e.entity) : [];
}

/** datetime-local (the browser's local time) to an ISO instant, and back. */
function toInstant(local) {
  if (!local) return "";
  const moment = new Date(local);
  return Number.isNaN(moment.getTime()) ? "" : moment.toISOString().replace(/\.\d+Z$/, "Z");
}

function toLocalInput(instant) {
  const moment = instant ? new Date(instant) : null;
  if (!moment || Number.isNaN(moment.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${moment.getFullYear()}-${pad(moment.getMonth() + 1)}-${pad(moment.getDate())}T${pad(moment.getHours())}:${pad(moment.getMinutes())}`;
}

function filterForm(filters, entities, apply) {
  const form = h(
    "form",
    { class: "filters", id: "error-filters", role: "search" },
    field("Search", h("input", { type: "search", name: "q", value: filters.q || "", placeholder: "id, record, name or e-mail, field, code, message" })),
    field("Entity", select("entity", [["", "Any"], ...entities.map((e) => [e, fmt.entity(e)])], filters.entity)),
    field(
      "Direction",
      select("direction", [["", "Any"], ["dynamics_to_marketo", fmt.direction("dynamics_to_marketo")], ["marketo_to_dynamics", fmt.direction("marketo_to_dynamics")]], filters.direction),
    ),
    field("Code", h("input", { type: "text", name: "error_code", value: filters.error_code || "", size: 14 })),
    field("Status", select("status", [["", "Any"], ...["open", "retrying", "resolved", "ignored"].map((st) => [st, fmt.word(st)])], filters.status)),
    field("Seen since", h("input", { type: "datetime-local", name: "since", value: toLocalInput(filters.since) })),
    field("Seen until", h("input", { type: "datetime-local", name: "until", value: toLocalInput(filters.until) })),
    h("button", { type: "submit" }, "Apply"),
    h("button", { type: "reset" }, "Clear"),
  );
  const read = () => {
    const data = new FormData(form);
    const chosen = {};
    for (const name of FILTERS) {
      const text = String(data.get(name) || "").trim();
      if (text) chosen[name] = name === "since" || name === "until" ? toInstant(text) : text;
    }
    return chosen;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply(read());
  });
  form.addEventListener("reset", () => setTimeout(() => apply({}), 0));
  return form;
}

function recordCell(row) {
  const name = row.label || row.record_id || "—";
  const parts = [
    row.record_id && row.entity && row.entity !== "-"
      ? h("a", { href: link("record", { entity: row.entity, id: row.record_id }), title: row.record_id }, name)
      : h("span", { title: row.record_id || "" }, name),
  ];
  if (row.label && row.record_id) parts.push(h("div", { class: "muted small" }, row.record_id));
  const outside = [];
  if (row.dynamics_url) outside.push(h("a", { href: row.dynamics_url, target: "_blank", rel: "noopener noreferrer" }, "Dynamics"));
  if (row.marketo_url) outside.push(h("a", { href: row.marketo_url, target: "_blank", rel: "noopener noreferrer" }, "Marketo"));
  if (outside.length) parts.push(h("div", { class: "small" }, "Open in ", outside.flatMap((a, i) => (i ? [" · ", a] : [a]))));
  return h("td", {}, parts);
}

function actionCell(row, act) {
  const closed = row.status === "resolved" || row.status === "ignored";
  const button = (verb, text, enabled) =>
    h("button", { type: "button", class: "small", disabled: !enabled, dataset: { action: verb }, onclick: () => act(row, verb) }, text);
  return h(
    "td",
    { class: "actions" },
    button("retry", "Retry", row.status !== "resolved" && row.status !== "ignored"),
    button("ignore", "Ignore", !closed),
    button("resolve", "Resolve", row.status !== "resolved"),
  );
}

function errorRow(row, act) {
  return h(
    "tr",
    { dataset: { error: row.id, status: row.status } },
    h("td", {}, fmt.when(row.last_seen || row.occurred_at), row.first_seen && row.first_seen !== row.last_seen ? h("div", { class: "muted small" }, "first ", fmt.when(row.first_seen)) : null),
    h("td", {}, fmt.entity(row.entity)),
    recordCell(row),
    h("td", {}, fmt.direction(row.direction)),
    h("td", {}, row.field || "—"),
    h("td", {}, h("code", {}, row.code || "—")),
    h("td", { class: "message" }, row.message || ""),
    h("td", {}, fmt.stateBadge(row.status), row.resolved_at ? h("div", { class: "muted small" }, `by ${fmt.resolvedBy(row.resolved_by)} `, fmt.when(row.resolved_at)) : null),
    h("td", { class: "num" }, fmt.number(row.count ?? 1)),
    h("td", { class: "num" }, fmt.number(row.attempts ?? 0)),
    actionCell(row, act),
  );
}

const VERBS = { retry: "Retry", ignore: "Ignore", resolve: "Resolve" };

export async function render(app) {
  let filters = fromAddress();
  const entities = await entityNames();
  const results = h("div", { id: "error-results" });
  const exportButton = h("button", { type: "button", id: "export-csv", onclick: () => download(filters) }, "Export CSV of what is filtered");
  const retryAll = h("button", { type: "button", id: "retry-all" }, "Retry every open error shown");

  const load = async () => {
    const answer = await call("GET", "errors", { params: { ...filters, limit: LIMIT } });
    if (!answer.ok) {
      notify(describe(answer, "The sync errors could not be read"), "bad");
      put(results);
      return;
    }
    const rows = answer.data.errors || [];
    const headers = ["Last seen", "Entity", "Record", "Direction", "Field", "Code", "Message", "Status", "Times", "Retries", ""];
    put(
      results,
      h("p", { id: "error-count" }, rows.length ? `${fmt.number(answer.data.count ?? rows.length)} sync error(s)${rows.length >= LIMIT ? ` (the newest ${LIMIT} shown; export for all)` : ""}.` : "No sync error matches."),
      rows.length ? table(headers, rows.map((row) => errorRow(row, act)), { id: "errors" }) : null,
    );
  };

  const act = async (row, verb) => {
    const answer = await call("POST", `errors/${row.id}/${verb}`);
    if (answer.ok) notify(`${VERBS[verb]}: done for ${row.label || row.record_id || row.id}.`);
    else if (answer.status === 404 && verb !== "retry" && answer.problem?.message?.includes("no function")) notify(`${VERBS[verb]} is not available on this version of the app.`, "bad");
    else notify(describe(answer, VERBS[verb]), "bad");
    await load();
  };

  retryAll.addEventListener("click", async () => {
    const answer = await call("POST", "errors/retry", { params: filters });
    if (answer.ok) notify(`Queued again: ${fmt.number(answer.data.records)} record(s), ${fmt.number((answer.data.errors || []).length)} error(s).`);
    else notify(describe(answer, "Retry"), "bad");
    await load();
  });

  const apply = (chosen) => {
    filters = chosen;
    keepInAddress(filters);
    load();
  };

  put(app, section("Find sync errors", filterForm(filters, entities, apply), h("p", { class: "actions" }, retryAll, exportButton)), results);
  await load();
}
