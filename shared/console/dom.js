// Building the page: every value goes in as text (a text node or textContent), never as markup.

const SVG = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "value" || key === "checked" || key === "disabled" || key === "selected") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** h("td", {class: "num"}, "12"): an element with attributes (on* are listeners) and children (text or nodes). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** The same for SVG elements (the trend chart). */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG, tag), attrs, children);
}

/** Replace what ``node`` holds. */
export function put(node, ...children) {
  node.replaceChildren();
  return fill(node, {}, children);
}

/** A table with a header row; ``rows`` are arrays of cells (a cell is text, a node or a <td>). */
export function table(headers, rows, attrs = {}) {
  const head = h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name))));
  const body = h(
    "tbody",
    {},
    rows.map((row) => (row instanceof Node ? row : h("tr", {}, row.map(cell)))),
  );
  return h("table", attrs, head, body);
}

export function cell(content) {
  return content instanceof Node && content.nodeName === "TD" ? content : h("td", {}, content);
}

/** A label around a form control, for people and for screen readers. */
export function field(text, control, hint) {
  return h("label", { class: "field" }, h("span", {}, text), control, hint ? h("small", { class: "muted" }, hint) : null);
}

export function select(name, options, chosen) {
  return h(
    "select",
    { name },
    options.map(([value, text]) => h("option", { value, selected: String(value) === String(chosen ?? "") }, text)),
  );
}

/** A button that asks to be clicked twice before it does something that cannot be undone. */
export function confirmButton(text, confirmText, action, attrs = {}) {
  const button = h("button", { type: "button", ...attrs }, text);
  let armed = false;
  button.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      button.textContent = confirmText;
      button.classList.add("armed");
      return;
    }
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
      armed = false;
      button.textContent = text;
      button.classList.remove("armed");
    }
  });
  return button;
}

/** The page's notice line: what just happened, or what went wrong ("bad"), in words. */
export function notify(text, level = "ok") {
  const notice = document.getElementById("notice");
  if (!notice) return;
  notice.className = `notice ${level}`;
  notice.textContent = text;
  notice.hidden = !text;
}

/** A titled section of a page. */
export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}
