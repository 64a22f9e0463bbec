// Calls to the app's API and links between the console's pages, all keeping the function key.
//
// The key comes from the page's own ?code= (how a Function App's URLs carry it); every call sends it as the
// x-functions-key header, every link between pages keeps ?code=, and every path is absolute from the route
// prefix the app served this page under (never relative: a relative link would drop the key or the prefix).

const query = new URLSearchParams(location.search);
export const KEY = query.get("code") || "";
export const BASE = document.querySelector('meta[name="console-base"]')?.content || "/api";
export const PAGE = document.querySelector('meta[name="console-page"]')?.content || "status";

function search(params, withKey) {
  const out = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    out.set(name, String(value));
  }
  if (withKey && KEY) out.set("code", KEY);
  const text = out.toString();
  return text ? `?${text}` : "";
}

function encodePath(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}

/** A link to a console page (``link("errors", {entity: "lead"})``), keeping the key. */
export function link(page, params) {
  return `${BASE}/console/${encodePath(page)}${search(params, true)}`;
}

/** The page's own query (without the key), for filters kept in the URL. */
export function pageParams() {
  const params = Object.fromEntries(new URLSearchParams(location.search));
  delete params.code;
  return params;
}

/** Put ``params`` in the address bar (keeping the key), so a filtered view can be bookmarked and shared. */
export function keepInAddress(params) {
  history.replaceState(null, "", link(PAGE, params));
}

/**
 * Call the API: ``await call("POST", "errors/abc/retry")``. Never throws for an HTTP answer; resolves to
 * ``{ok, status, data, problem}`` where ``problem`` is the product's ``{code, message}`` for a refusal, and
 * ``missing`` is true for a 404 (an endpoint this version of the app does not have, or a thing that is not there).
 */
export async function call(method, path, { params, body } = {}) {
  const headers = { Accept: "application/json" };
  if (KEY) headers["x-functions-key"] = KEY;
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`${BASE}/${encodePath(path)}${search(params, false)}`, init);
  } catch (error) {
    return { ok: false, status: 0, data: null, missing: false, problem: { code: "network", message: "the app did not answer: is it running?" } };
  }
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  const problem = response.ok
    ? null
    : data?.error || { code: String(response.status), message: response.statusText || `HTTP ${response.status}` };
  return { ok: response.ok, status: response.status, data, missing: response.status === 404, problem };
}

/** A short sentence for a failed call, for the page's notice. */
export function describe(answer, what) {
  if (answer.status === 401) return `${what}: the function key is missing or wrong (open the console with ?code=<key>).`;
  const message = answer.problem?.message || `HTTP ${answer.status}`;
  return `${what}: ${message}`;
}
