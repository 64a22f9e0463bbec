"""Every console page in Chromium, a few clicks each, against the local host: what an admin sees and does."""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import Page, Request, expect

from local.simulators.dataverse.schema import Column
from tests.console.conftest import KEY, Console

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "console.png"
MICROSECONDS = re.compile(r"\d:\d\d[.,]\d")  # 12:00:00.123456 or 12:00:00,5
RAW_WORDS = ("dynamics_to_marketo", "marketo_to_dynamics", "True", "False", "None", "undefined", "NaN", "null")


def readable(page: Page) -> str:
    text = page.locator("main").inner_text()
    assert not MICROSECONDS.search(text), "a time with fractions of a second"
    for raw in RAW_WORDS:
        assert not re.search(rf"\b{raw}\b", text), f"raw value {raw!r} on the page"
    return text


def keep_the_key(page: Page) -> list[str]:
    """Every call the page makes to the API, each checked to carry the key (header, or ?code= on navigation)."""
    calls: list[str] = []

    def check(request: Request) -> None:
        path = request.url.split("://", 1)[1].split("/", 1)[1]
        if not path.startswith("api/") or path.startswith("api/console/assets/"):
            return
        carried = request.headers.get("x-functions-key") == KEY or f"code={KEY}" in request.url
        calls.append(("" if carried else "WITHOUT KEY ") + f"{request.method} /{path.split('?')[0]}")

    page.on("request", check)
    return calls


def test_status_shows_every_entity_with_its_health_in_colour_and_local_times(page: Page, console: Console) -> None:
    calls = keep_the_key(page)
    page.goto(console.url())
    rows = page.locator("#entities tbody tr")
    expect(rows.first).to_be_visible()
    entities = [e["entity"] for e in console.api("GET", "mapping").json()["entities"]]
    assert rows.count() == len(entities)
    lead = page.locator('#entities tr[data-entity="lead"]')
    assert lead.get_attribute("data-health") in ("warn", "bad")  # Bob's failed sync
    expect(lead.locator(".reasons")).to_contain_text("failed in the last hour")
    expect(page.locator('#entities tr[data-entity="account"]')).to_contain_text("Dynamics → Marketo")
    healthy = page.locator('#entities tr[data-entity="account"] .badge.ok')
    expect(healthy).to_have_text("Healthy")
    green = healthy.evaluate("e => getComputedStyle(e).color")
    amber_or_red = lead.locator(".badge").first.evaluate("e => getComputedStyle(e).color")
    assert green == "rgb(30, 123, 52)"
    assert amber_or_red in ("rgb(138, 90, 0)", "rgb(179, 38, 30)")
    updated = page.locator(".overall time")
    shown = updated.evaluate(
        "t => new Intl.DateTimeFormat(undefined, {dateStyle: 'medium', timeStyle: 'medium'})"
        ".format(new Date(t.getAttribute('datetime'))) === t.textContent"
    )
    assert shown, "times are the browser's local time, as its Intl formats them"
    readable(page)
    for anchor in page.locator("nav a").all():
        href = anchor.get_attribute("href") or ""
        assert href.startswith("/api/console/"), href
        assert href.endswith(f"?code={KEY}"), href
    if os.environ.get("CONSOLE_SCREENSHOT") == "1":  # docs/console.png, for the README and docs/console.md
        page.set_viewport_size({"width": 1500, "height": 900})
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.locator("nav a", has_text="Sync errors").click()
    expect(page.locator("h1")).to_have_text("Sync errors")
    assert page.url.endswith(f"/api/console/errors?code={KEY}")
    assert calls
    assert [c for c in calls if c.startswith("WITHOUT")] == []


def test_pause_and_resume_an_entity_from_the_status_page(page: Page, console: Console) -> None:
    page.goto(console.url("status"))
    contact = page.locator('#entities tr[data-entity="contact"]')
    contact.get_by_role("button", name="Pause").click()
    expect(page.locator("#notice")).to_have_text("Contact paused.")
    expect(contact).to_contain_text("Paused")
    assert console.api("GET", "status").json()["paused_entities"] == ["contact"]
    contact.get_by_role("button", name="Resume").click()
    expect(page.locator("#notice")).to_have_text("Contact resumed.")
    expect(contact.get_by_role("button", name="Pause")).to_be_visible()


def test_errors_are_filtered_retried_and_exported(page: Page, console: Console) -> None:
    page.goto(console.url("errors"))
    form = page.locator("#error-filters")
    form.get_by_label("Search").fill("bob@example.com")
    form.get_by_label("Direction").select_option("marketo_to_dynamics")
    form.get_by_role("button", name="Apply").click()
    row = page.locator("#errors tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Marketo → Dynamics")
    expect(row).to_contain_text("Bob")
    assert f"code={KEY}" in page.url
    assert "direction=marketo_to_dynamics" in page.url
    form.get_by_label("Code").fill("0x80044331")  # the code filter: "error_code" in the address, "code" is the key
    form.get_by_role("button", name="Apply").click()
    expect(row).to_have_count(1)
    assert "error_code=0x80044331" in page.url
    assert page.url.endswith(f"code={KEY}")
    page.reload()
    expect(page.locator("#error-filters").get_by_label("Code")).to_have_value("0x80044331")
    expect(row).to_have_count(1)
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV of what is filtered").click()
    assert download.value.suggested_filename == "sync-errors.csv"
    exported = Path(download.value.path()).read_text()
    assert exported.startswith("id,")
    assert console.bob in exported
    assert console.ada not in exported
    form.get_by_label("Code").fill("")
    form.get_by_label("Direction").select_option("dynamics_to_marketo")
    form.get_by_role("button", name="Apply").click()
    expect(page.locator("#error-count")).to_have_text("No sync error matches.")
    form.get_by_label("Direction").select_option("")
    form.get_by_role("button", name="Apply").click()
    row.get_by_role("button", name="Retry").click()
    expect(page.locator("#notice")).to_contain_text("Retry: done")
    console.settle()
    (error,) = console.api("GET", "errors", params={"q": "bob@example.com"}).json()["errors"]
    assert error["attempts"] >= 1
    readable(page)
    row.get_by_role("button", name="Resolve").click()
    expect(page.locator("#notice")).to_contain_text("Resolve: done")
    expect(row.locator(".badge")).to_have_text("Resolved")
    expect(row).to_contain_text("by an admin")
    expect(row.get_by_role("button", name="Retry")).to_be_disabled()


def test_a_record_is_found_by_e_mail_with_its_history_field_by_field(page: Page, console: Console) -> None:
    page.goto(console.url("record"))
    page.get_by_label("Find a record").fill("ada@example.com")
    page.get_by_role("button", name="Search").click()
    facts = page.locator("#record-facts")
    expect(facts).to_contain_text(console.ada)
    expect(facts).to_contain_text("Yes")  # linked
    history = page.locator("#history article")
    expect(history.first).to_be_visible()
    firstname = page.locator("#history table.fields tr", has_text="firstname").first
    expect(firstname).to_contain_text("<i>Ada</i>")  # a value with markup is shown as text...
    assert page.locator("#history i").count() == 0  # ...never made into markup
    assert f"id={console.ada}" in page.url
    page.get_by_role("button", name="Refresh Marketo from Dynamics").click()
    expect(page.locator("#notice")).to_have_text("Resync queued.")
    expect(page.locator("#resync-result a")).to_have_attribute(
        "href", re.compile(rf"^/api/console/jobs\?job=.+&code={KEY}$")
    )
    console.settle()
    readable(page)


def test_a_field_is_added_and_its_quick_sync_followed_to_the_end_then_removed(page: Page, console: Console) -> None:
    tables = console.stack.tenants.dataverse.tables  # type: ignore[union-attr]
    tables["lead"].columns["new_console"] = Column("new_console", "String", max_length=80)
    page.goto(console.url("fields", entity="lead"))
    expect(page.locator("#mapped-fields tr[data-column=firstname]")).to_contain_text("firstName")
    page.locator("#catalogue-details summary").click()
    page.locator("#catalogue tr[data-column=new_console]").get_by_role("button", name="Add…").click()
    form = page.locator("#add-field")
    expect(form.get_by_label("Dynamics column")).to_have_value("new_console")
    form.get_by_label("Marketo field", exact=True).fill("consoleField")
    form.get_by_label("Create the Marketo field").check()
    form.get_by_role("button", name="Add the field").click()
    expect(page.locator("#notice")).to_contain_text("new_console added to Lead")
    console.stack.host.fire("quick_sync")
    progress = page.locator("#add-progress")
    expect(progress).to_contain_text("Done", timeout=20_000)
    expect(progress).to_contain_text("100%")
    row = page.locator("#mapped-fields tr[data-column=new_console]")
    expect(row).to_contain_text("Active")
    readable(page)
    remove = row.get_by_role("button", name="Remove")
    remove.click()
    row.get_by_role("button", name="Click again to remove").click()
    expect(page.locator("#notice")).to_have_text("new_console removed from Lead.")
    expect(row).to_have_count(0)


def test_jobs_list_progress_and_a_resync_starts_from_the_form(page: Page, console: Console) -> None:
    page.goto(console.url("jobs"))
    form = page.locator("#resync")
    form.get_by_label("Entity").select_option("contact")
    form.get_by_label("Which records").select_option("modified")
    expect(form.get_by_label("Modified from")).to_be_visible()
    form.get_by_label("Modified from").fill("2020-01-01T00:00")
    form.get_by_label("How").select_option("refresh_marketo")
    form.get_by_role("button", name="Start the resync").click()
    expect(page.locator("#notice")).to_have_text("Resync of Contact queued (Dynamics → Marketo (refresh Marketo)).")
    console.stack.host.fire("quick_sync")  # the jobs' safety-net timer (a nudge through the queue starts it too)
    row = page.locator("#job-table tr.highlight")
    expect(row).to_contain_text("Resync")
    expect(row).to_contain_text("Modified in a date range")
    expect(row.locator(".badge")).to_have_text("Done", timeout=20_000)
    expect(row.locator("progress")).to_have_attribute("value", "100")
    console.settle()
    readable(page)


def test_dead_letters_page_lists_none_and_a_page_without_the_key_is_refused(page: Page, console: Console) -> None:
    page.goto(console.url("deadletters"))
    expect(page.locator("#dead-letter-count")).to_contain_text("No dead letters")
    refused = page.goto(console.url("deadletters", key=None))
    assert refused is not None
    assert refused.status == 401
    assert "unauthorized" in (page.locator("body").inner_text())
    wrong = page.goto(console.url("status", key="not-the-key"))
    assert wrong is not None
    assert wrong.status == 401


def test_a_service_down_turns_every_entity_red_and_shows_its_notice(page: Page, console: Console) -> None:
    """The status as the app answers it while Marketo is down (the outage itself: tests/e2e/test_outages.py)."""
    status = console.api("GET", "status").json()
    notice = "Marketo unavailable since 14:02 UTC, 30 records waiting"
    status["services"]["marketo"].update(available=False, notice=notice, unavailable_since=status["generated_at"])
    page.route("**/api/status", lambda route: route.fulfill(json=status))
    page.goto(console.url("status"))
    expect(page.locator(".services")).to_contain_text(notice)
    expect(page.locator("#overall-health")).to_have_text("Failing")
    rows = page.locator("#entities tbody tr")
    expect(rows.first).to_be_visible()
    assert {r.get_attribute("data-health") for r in rows.all()} == {"bad"}
    expect(rows.first).to_contain_text("Marketo unavailable")
