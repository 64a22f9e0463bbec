// Fields: an entity's mapped fields (and its catalogue of Dynamics columns when the app has one), add a field and
// follow its Quick Sync, run a field's Quick Sync again, remove a field.

import { call, describe, keepInAddress, pageParams } from "./api.js";
import { confirmButton, field, h, notify, put, section, select, table } from "./dom.js";
import * as fmt from "./format.js";
import { fetchJob, isActive, progress } from "./progress.js";

const POLL_MS = 1000;

function follow(jobId, target, onDone) {
  const tick = async () => {
    if (!target.isConnected) return; // redrawn meanwhile: the new page follows the job itself
    const job = await fetchJob(jobId);
    if (!job) {
      put(target, h("span", { class: "muted" }, "Quick Sync job not found."));
      return;
    }
    put(target, fmt.stateBadge(job.state), " ", progress(job), job.notice ? h("div", { class: "muted small" }, job.notice) : null);
    if (isActive(job)) setTimeout(tick, POLL_MS);
    else if (onDone) onDone(job);
  };
  setTimeout(tick, 0); // once the caller has put the target on the page
}

function mappedTable(entity, catalogueByColumn, reload) {
  const rows = (entity.fields || []).map((f) => {
    const quick = h("div", { class: "quick-sync" });
    if (f.quick_sync?.job) follow(f.quick_sync.job, quick);
    const label = catalogueByColumn.get(f.dynamics)?.label;
    const rerun = h(
      "button",
      {
        type: "button",
        class: "small",
        onclick: async () => {
          const answer = await call("POST", "quicksync", { body: { entity: entity.entity, column: f.dynamics } });
          if (answer.ok) {
            notify(`Quick Sync of ${f.dynamics} queued.`);
            if (answer.data.job?.id) follow(answer.data.job.id, quick, () => reload());
          } else if (answer.status === 404 && answer.problem?.message?.includes("no function")) {
            notify("Running a Quick Sync again is not available on this version of the app.", "bad");
          } else {
            notify(describe(answer, "Quick Sync"), "bad");
          }
        },
      },
      "Run Quick Sync",
    );
    const remove = confirmButton("Remove", "Click again to remove", async () => {
      const answer = await call("DELETE", `mapping/${entity.entity}/fields/${f.dynamics}`);
      if (answer.ok) notify(`${f.dynamics} removed from ${fmt.entity(entity.entity)}.`);
      else notify(describe(answer, "Remove"), "bad");
      await reload();
    }, { class: "small danger" });
    return h(
      "tr",
      { dataset: { column: f.dynamics } },
      h("td", {}, h("code", {}, f.dynamics), label && label !== f.dynamics ? h("div", { class: "muted small" }, label) : null),
      h("td", {}, h("code", {}, f.marketo)),
      h("td", {}, fmt.word(f.type)),
      h("td", {}, fmt.yesNo(Boolean(f.one_way))),
      h("td", {}, fmt.stateBadge(f.state || "active")),
      h("td", {}, quick),
      h("td", { class: "actions" }, rerun, remove),
    );
  });
  return table(["Dynamics column", "Marketo field", "Type", "One way", "State", "Quick Sync", ""], rows, { id: "mapped-fields" });
}

function addForm(entityName, added) {
  const dynamics = h("input", { name: "dynamics", required: true, list: "catalogue-columns", autocomplete: "off", placeholder: "new_region" });
  const marketo = h("input", { name: "marketo", required: true, placeholder: "region" });
  const oneWay = h("input", { type: "checkbox", name: "one_way" });
  const create = h("input", { type: "checkbox", name: "create_marketo_field" });
  const display = h("input", { name: "marketo_display_name", placeholder: "Region" });
  const since = h("input", { type: "date", name: "modified_from" });
  const list = h("datalist", { id: "catalogue-columns" });
  const offer = (columns) =>
    put(list, columns.filter((c) => !c.mapped && c.valid_for_sync).map((c) => h("option", { value: c.column }, c.label)));
  const result = h("div", { id: "add-result" });
  const form = h(
    "form",
    { class: "filters", id: "add-field" },
    field("Dynamics column", dynamics),
    field("Marketo field", marketo),
    field("One way (Dynamics → Marketo only)", oneWay),
    field("Create the Marketo field", create),
    field("Its display name", display),
    field("Quick Sync only records modified since", since, "empty: every linked record"),
    h("button", { type: "submit" }, "Add the field"),
    list,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { dynamics: dynamics.value.trim(), marketo: marketo.value.trim(), one_way: oneWay.checked, create_marketo_field: create.checked };
    if (display.value.trim()) body.marketo_display_name = display.value.trim();
    if (since.value) body.quick_sync = { modified_from: since.value };
    const answer = await call("POST", `mapping/${entityName}/fields`, { body });
    if (!answer.ok) {
      notify(describe(answer, `${body.dynamics} could not be added`), "bad");
      return;
    }
    notify(`${body.dynamics} added to ${fmt.entity(entityName)}; its Quick Sync has started.`);
    const job = answer.data.job;
    const follower = h("div", { class: "quick-sync", id: "add-progress" });
    put(result, h("p", {}, `Quick Sync of ${body.dynamics} → ${body.marketo}: `), follower);
    if (job?.id) follow(job.id, follower, () => added());
    form.reset();
    added();
  });
  const fill = (c) => {
    dynamics.value = c.column;
    marketo.focus();
  };
  return { form, result, offer, fill };
}

function catalogueTable(columns, pick) {
  const filter = h("input", { type: "search", placeholder: "Filter columns", "aria-label": "Filter columns" });
  const rows = columns.map((c) =>
    h(
      "tr",
      { dataset: { column: c.column } },
      h("td", {}, h("code", {}, c.column), c.label && c.label !== c.column ? h("div", { class: "muted small" }, c.label) : null),
      h("td", {}, c.type || "—"),
      h("td", {}, c.sync_type ? fmt.word(c.sync_type) : "—"),
      h("td", {}, c.mapped ? h("span", {}, "→ ", h("code", {}, c.marketo || "?"), " ", fmt.stateBadge(c.state || "active")) : fmt.yesNo(false)),
      h("td", {}, fmt.yesNo(c.readable !== false)),
      h("td", { class: "small" }, c.reason || ""),
      h("td", {}, !c.mapped && c.valid_for_sync ? h("button", { type: "button", class: "small", onclick: () => pick(c) }, "Add…") : null),
    ),
  );
  filter.addEventListener("input", () => {
    const text = filter.value.trim().toLowerCase();
    for (const row of rows) row.hidden = Boolean(text) && !row.textContent.toLowerCase().includes(text);
  });
  return h("div", {}, filter, table(["Column", "Dataverse type", "Syncs as", "Mapped", "Readable", "Note", ""], rows, { id: "catalogue" }));
}

export async function render(app) {
  const mapping = await call("GET", "mapping");
  if (!mapping.ok) {
    notify(describe(mapping, "The mapping could not be read"), "bad");
    put(app);
    return;
  }
  const entities = mapping.data.entities || [];
  let chosen = pageParams().entity || entities[0]?.entity;
  const body = h("div", { id: "fields" });
  const mappedBox = h("div");
  const catalogueBox = h("div");
  const picker = select("entity", entities.map((e) => [e.entity, fmt.entity(e.entity)]), chosen);
  let adding = null;

  const refresh = async () => {
    const [current, catalogue] = await Promise.all([call("GET", "mapping"), call("GET", `mapping/${chosen}/catalogue`)]);
    const entity = (current.data?.entities || []).find((e) => e.entity === chosen);
    if (!entity) {
      put(mappedBox, h("p", {}, "This entity is not in the mapping."));
      return;
    }
    const columns = catalogue.ok ? catalogue.data.columns || [] : [];
    adding.offer(columns);
    put(
      mappedBox,
      section(
        `${fmt.entity(chosen)}: ${fmt.number((entity.fields || []).length)} mapped fields`,
        h("p", { class: "muted" }, fmt.direction(entity.direction)),
        mappedTable(entity, new Map(columns.map((c) => [c.column, c])), refresh),
      ),
    );
    put(
      catalogueBox,
      catalogue.ok
        ? section(
            `Dynamics columns of ${fmt.entity(chosen)}`,
            h(
              "details",
              { id: "catalogue-details" },
              h("summary", {}, `${fmt.number(columns.length)} columns, ${fmt.number(columns.filter((c) => c.mapped).length)} mapped: show them`),
              catalogueTable(columns, (c) => adding.fill(c)),
            ),
          )
        : catalogue.missing && catalogue.problem?.message?.includes("no function")
          ? null
          : section("Dynamics columns", h("p", { class: "muted" }, describe(catalogue, "The catalogue could not be read"))),
    );
  };
  const show = async () => {
    adding = addForm(chosen, refresh);
    put(body, mappedBox, section("Add a field", adding.form, adding.result), catalogueBox);
    await refresh();
  };
  picker.addEventListener("change", () => {
    chosen = picker.value;
    keepInAddress({ entity: chosen });
    show();
  });
  put(app, h("form", { class: "filters", onsubmit: (e) => e.preventDefault() }, field("Entity", picker)), body);
  await show();
}
