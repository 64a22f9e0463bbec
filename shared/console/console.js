// The console's entry point: keep the key on the navigation links, then draw the page this URL names.

import { PAGE, link } from "./api.js";
import { notify, put } from "./dom.js";
import * as deadletters from "./deadletters.js";
import * as errors from "./errors.js";
import * as fields from "./fields.js";
import * as jobs from "./jobs.js";
import * as record from "./record.js";
import * as status from "./status.js";

const PAGES = { status, errors, record, fields, jobs, deadletters };

for (const anchor of document.querySelectorAll("nav a[data-page]")) {
  anchor.href = link(anchor.dataset.page);
  if (anchor.dataset.page === PAGE) anchor.setAttribute("aria-current", "page");
}

const app = document.getElementById("app");
const page = PAGES[PAGE];
if (page) {
  page.render(app).catch((error) => {
    put(app);
    notify(`The page could not be drawn: ${error?.message || error}`, "bad");
  });
}
