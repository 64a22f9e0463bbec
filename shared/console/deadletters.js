// Dead letters: the changes the queue gave up on, what each carried, replay one or all, or discard one.

import { call, describe, link } from "./api.js";
import { confirmButton, h, notify, put, section, table } from "./dom.js";
import * as fmt from "./format.js";

function carried(note) {
  if (!note) return "—";
  if (!note.readable) return h("span", { class: "muted" }, `Unreadable: ${note.problem || "not a change the sync knows"}`);
  const id = note.record_id || note.marketo_id;
  const record = id && note.entity ? h("a", { href: link("record", { entity: note.entity, id: note.record_id || "", q: note.record_id ? "" : id }) }, id) : id || "—";
  return h("span", {}, fmt.entity(note.entity), " ", record, note.source ? h("div", { class: "muted small" }, fmt.word(note.source)) : null);
}

export async function render(app) {
  const list = h("div", { id: "dead-letters" });
  let after = 0;
  const draw = async () => {
    const answer = await call("GET", "deadletters", { params: { after: after || undefined, limit: 100 } });
    if (!answer.ok) {
      put(list, h("p", { class: "muted" }, "No dead letters to show."));
      notify(describe(answer, "The dead letters could not be read"), "bad");
      return;
    }
    const items = answer.data.items || [];
    const act = async (item, verb) => {
      const done = await call("POST", `deadletters/${item.id}/${verb}`);
      if (done.ok) notify(verb === "replay" ? "Queued again." : "Discarded (a sync error keeps the record of it).");
      else notify(describe(done, verb === "replay" ? "Replay" : "Discard"), "bad");
      await draw();
    };
    const rows = items.map((item) => [
      fmt.when(item.enqueued_at),
      carried(item.notification),
      item.reason || "—",
      h("td", { class: "message" }, item.description || ""),
      h("td", { class: "num" }, fmt.number(item.delivery_count)),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", class: "small", onclick: () => act(item, "replay") }, "Replay"),
        confirmButton("Discard", "Click again to discard", () => act(item, "discard"), { class: "small danger" }),
      ),
    ]);
    const next = answer.data.next_after;
    put(
      list,
      h("p", { id: "dead-letter-count" }, items.length ? `${fmt.number(items.length)} dead letter(s) on this page (queue ${answer.data.queue}).` : "No dead letters: the queue gave up on nothing."),
      items.length ? table(["Dead-lettered", "Change of", "Reason", "Description", "Deliveries", ""], rows, { id: "dead-letter-table" }) : null,
      h(
        "p",
        { class: "actions" },
        after ? h("button", { type: "button", onclick: () => { after = 0; draw(); } }, "First page") : null,
        next ? h("button", { type: "button", onclick: () => { after = next; draw(); } }, "Next page") : null,
      ),
    );
  };
  const replayAll = h(
    "button",
    {
      type: "button",
      id: "replay-all",
      onclick: async () => {
        const done = await call("POST", "deadletters/replay");
        if (done.ok) notify(`Queued again: ${fmt.number(done.data.count)} (unreadable, kept to discard: ${fmt.number((done.data.skipped_unreadable || []).length)}).`);
        else notify(describe(done, "Replay"), "bad");
        after = 0;
        await draw();
      },
    },
    "Replay every readable dead letter",
  );
  put(app, section("Dead letters", h("p", { class: "actions" }, replayAll), list));
  await draw();
}
