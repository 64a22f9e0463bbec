// Record: find a record by its Dynamics id, Marketo id or e-mail; what the sync decided about it, field by field
// (each side's value, the baseline, the action, the reason and who won); its sync errors; resync it.

import { call, describe, keepInAddress, link, pageParams } from "./api.js";
import { field, h, notify, put, section, table } from "./dom.js";
import * as fmt from "./format.js";

const TRIGGERS = {
  dataverse_webhook: "Dynamics webhook",
  dataverse_queue: "Dynamics (queue)",
  dataverse_catchup: "Dynamics catch-up",
  marketo_webhook: "Marketo webhook",
  marketo_feed: "Marketo activity feed",
  quick_sync: "Quick Sync",
  resync: "Resync",
  retry: "Retry",
  pending_sweep: "Pending sweep",
  verify_sweep: "Verification sweep",
};

/** What woke the decision: its sources in words, the side whose change it was, and whether the sync made it. */
function trigger(t) {
  if (!t) return "—";
  if (typeof t === "string") return TRIGGERS[t] || fmt.word(t);
  const sources = String(t.source || "")
    .split(",")
    .filter(Boolean)
    .map((name) => TRIGGERS[name] || fmt.word(name));
  const text = sources.length ? sources.join(", ") : "Unknown trigger";
  const side = t.side ? fmt.word(t.side) : "";
  const parts = [text];
  if (side && !text.includes(side)) parts.push(`a ${side} change`);
  if (t.by_sync) parts.push("the sync's own write");
  return parts.join(" · ");
}

function outsideLinks(rec) {
  const links = [];
  if (rec.dynamics_url) links.push(h("a", { href: rec.dynamics_url, target: "_blank", rel: "noopener noreferrer" }, "Open in Dynamics"));
  if (rec.marketo_url) links.push(h("a", { href: rec.marketo_url, target: "_blank", rel: "noopener noreferrer" }, "Open in Marketo"));
  return links.length ? h("p", {}, links.flatMap((a, i) => (i ? [" · ", a] : [a]))) : null;
}

function winner(name) {
  if (!name) return "—";
  return { marketo: "Marketo", dynamics: "Dynamics", dataverse: "Dynamics" }[name] || fmt.word(name);
}

function historyEntry(entry) {
  const fields = entry.fields || [];
  return h(
    "article",
    { class: "entry" },
    h(
      "header",
      {},
      h("strong", {}, fmt.word(entry.action)),
      " · ",
      fmt.when(entry.at),
      " · ",
      trigger(entry.trigger),
      entry.reason ? h("span", { class: "muted" }, ` · ${fmt.word(entry.reason)}`) : null,
    ),
    fields.length
      ? table(
          ["Field", "Dynamics held", "Marketo held", "Baseline", "Written", "Action", "Reason", "Won"],
          fields.map((f) => [
            h("td", {}, h("code", {}, f.field)),
            h("td", {}, fmt.value(f.dynamics)),
            h("td", {}, fmt.value(f.marketo)),
            h("td", {}, fmt.value(f.baseline)),
            h("td", {}, fmt.value(f.value)),
            fmt.word(f.action),
            f.reason && f.reason === entry.reason ? h("td", { class: "muted" }, "as above") : fmt.word(f.reason),
            winner(f.winner),
          ]),
          { class: "fields" },
        )
      : h("p", { class: "muted" }, "No field changed."),
  );
}

function errorsPart(errors) {
  if (!errors || !errors.length) return section("Sync errors", h("p", { class: "muted" }, "No sync error for this record."));
  return section(
    "Sync errors",
    table(
      ["Last seen", "Direction", "Field", "Code", "Message", "Status"],
      errors.map((e) => [
        fmt.when(e.last_seen || e.occurred_at),
        fmt.direction(e.direction),
        e.field || "—",
        h("td", {}, h("code", {}, e.code)),
        e.message,
        h("td", {}, fmt.stateBadge(e.status)),
      ]),
    ),
  );
}

function resyncPart(rec) {
  const out = h("p", { class: "muted", id: "resync-result" });
  const start = async (mode) => {
    const answer = await call("POST", "resync", { body: { entity: rec.entity, ids: [rec.dynamics_id], mode } });
    if (answer.ok) {
      const job = answer.data.job || {};
      put(out, `Resync queued (${fmt.direction(mode)}). `, h("a", { href: link("jobs", { job: job.id }) }, "Follow it on the Jobs page"));
      notify("Resync queued.");
    } else if (answer.status === 404 && answer.problem?.message?.includes("no function")) {
      notify("Resync is not available on this version of the app.", "bad");
    } else {
      notify(describe(answer, "Resync"), "bad");
    }
  };
  return section(
    "Resync",
    h(
      "p",
      { class: "actions" },
      h("button", { type: "button", id: "resync-both", onclick: () => start("both_ways") }, "Resync both ways"),
      h("button", { type: "button", id: "resync-refresh", onclick: () => start("refresh_marketo") }, "Refresh Marketo from Dynamics"),
    ),
    out,
  );
}

async function showRecord(target, entity, id) {
  const answer = await call("GET", `records/${entity}/${id}`, { params: { limit: 50 } });
  if (!answer.ok) {
    put(target, h("p", { class: "muted" }, answer.missing ? "The sync has never seen this record." : ""));
    notify(describe(answer, "The record could not be read"), "bad");
    return;
  }
  const { record: rec, history = [], errors = [] } = answer.data;
  put(
    target,
    section(
      `${fmt.entity(rec.entity)}: ${rec.label || rec.dynamics_id}`,
      h(
        "dl",
        { class: "facts", id: "record-facts" },
        h("dt", {}, "Dynamics id"),
        h("dd", {}, h("code", {}, rec.dynamics_id || "—")),
        h("dt", {}, "Marketo id"),
        h("dd", {}, h("code", {}, rec.marketo_id ?? "—")),
        h("dt", {}, "Linked"),
        h("dd", {}, fmt.yesNo(rec.linked ?? Boolean(rec.marketo_id))),
        h("dt", {}, "Last synced"),
        h("dd", {}, fmt.when(rec.synced_at, { relative: true })),
      ),
      outsideLinks(rec),
    ),
    resyncPart(rec),
    section(`History (${history.length}, newest first)`, history.length ? h("div", { id: "history" }, history.map(historyEntry)) : h("p", { class: "muted" }, "No decision recorded yet.")),
    errorsPart(errors),
  );
}

async function search(target, q) {
  const answer = await call("GET", "records", { params: { q } });
  if (!answer.ok) {
    put(target);
    if (answer.status === 404 && answer.problem?.message?.includes("no function")) notify("Record search is not available on this version of the app.", "bad");
    else notify(describe(answer, "Search"), "bad");
    return;
  }
  const found = answer.data.records || [];
  if (found.length === 1) {
    keepInAddress({ q, entity: found[0].entity, id: found[0].dynamics_id });
    await showRecord(target, found[0].entity, found[0].dynamics_id);
    return;
  }
  put(
    target,
    found.length
      ? section(
          `${found.length} records match`,
          table(
            ["Entity", "Record", "Dynamics id", "Marketo id", ""],
            found.map((r) => [
              fmt.entity(r.entity),
              r.label || "—",
              h("td", {}, h("code", {}, r.dynamics_id)),
              h("td", {}, h("code", {}, r.marketo_id ?? "—")),
              h("td", {}, h("button", { type: "button", class: "small", onclick: () => { keepInAddress({ q, entity: r.entity, id: r.dynamics_id }); showRecord(target, r.entity, r.dynamics_id); } }, "Show")),
            ]),
          ),
        )
      : h("p", { id: "no-match" }, "No record matches."),
  );
}

export async function render(app) {
  const params = pageParams();
  const target = h("div", { id: "record" });
  const input = h("input", { type: "search", name: "q", required: true, value: params.q || params.id || "", placeholder: "Dynamics id, Marketo id or e-mail", size: 40 });
  const form = h("form", { class: "filters", role: "search", id: "record-search" }, field("Find a record", input), h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    keepInAddress({ q });
    notify("");
    search(target, q);
  });
  put(app, section("Find a record", form), target);
  if (params.entity && params.id) await showRecord(target, params.entity, params.id);
  else if (params.q) await search(target, params.q);
}
