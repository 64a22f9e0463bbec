"""Commands whose endpoints are shaped by the issue's API contracts, against a scripted app that answers as the
contracts say: the request the CLI sends, what it prints, and the progress of a job watched over (fake) time."""

from __future__ import annotations

from typing import Any

import httpx

from tests.admin.conftest import FakeTime, ScriptedApp

ROW = {
    "id": "e1", "entity": "lead", "record_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "marketo_id": "7",
    "label": "ada@example.com", "operation": "update", "direction": "marketo_to_dynamics", "field": "jobtitle",
    "code": "value-too-long", "message": "jobtitle holds 100 characters", "status": "open", "count": 3,
    "first_seen": "2026-12-01T11:00:00+00:00", "last_seen": "2026-12-01T11:58:00+00:00", "attempts": 0,
    "resolved_at": None, "resolved_by": None, "dynamics_url": "https://contoso.crm.dynamics.com/x", "marketo_url": None,
}  # fmt: skip


def job(done: int, total: int | None, state: str = "running", **extra: Any) -> dict[str, Any]:
    percent = None if total is None else round(100 * done / total, 1)
    return {"id": "7f3a", "kind": "quick_sync", "entity": "lead", "column": "jobtitle", "state": state,
            "records_done": done, "records_total": total, "percent": percent, "rate_per_s": None, "eta_s": None,
            "created_at": "2026-12-01T11:00:00+00:00", "started_at": None, "finished_at": None, "notice": None,
            **extra}  # fmt: skip


def polls(*answers: dict[str, Any]) -> Any:
    queue = list(answers)

    def answer(_request: httpx.Request) -> tuple[int, dict[str, Any]]:
        return 200, queue.pop(0) if len(queue) > 1 else queue[0]

    return answer


def test_errors_list_shows_the_label_and_direction(app: ScriptedApp) -> None:
    app.on("GET", "errors", {"count": 1, "errors": [ROW]})
    ran = app("errors", "list", "--direction", "marketo_to_dynamics", "--code", "value-too-long", "--since",
              "2026-12-01", "--q", "ada")  # fmt: skip
    assert ran.code == 0
    assert dict(app.seen[0].url.params) == {"direction": "marketo_to_dynamics", "error_code": "value-too-long",
                                            "since": "2026-12-01", "q": "ada", "limit": "100"}  # fmt: skip
    (line,) = [line for line in ran.out.splitlines() if line.startswith("e1 ")]
    assert "ada@example.com" in line
    assert "Marketo -> D365" in line
    assert "2026-12-01 11:58:00 UTC" in line


def test_errors_ignore_and_resolve(app: ScriptedApp) -> None:
    app.on("POST", "errors/e1/ignore", {**ROW, "status": "ignored"})
    app.on("POST", "errors/e1/resolve", {**ROW, "status": "resolved", "resolved_by": "admin"})
    assert app("errors", "ignore", "e1").out.strip() == "error e1: ignored"
    assert app("errors", "resolve", "e1").out.strip() == "error e1: resolved"
    missing = app("errors", "resolve", "e2")
    assert (missing.code, missing.err.strip()) == (1, "error 404 not-found: no function serves this path")


def test_an_error_id_stays_one_path_segment(app: ScriptedApp) -> None:
    app("errors", "ignore", "../status")
    assert app.seen[0].url.raw_path == b"/api/errors/..%2Fstatus/ignore"


def test_errors_retry_all_sends_the_filters(app: ScriptedApp) -> None:
    app.on("POST", "errors/retry", {"status": "queued", "records": 2, "errors": ["e1", "e3"]}, status=202)
    ran = app("errors", "retry", "--all", "--entity", "lead", "--code", "value-too-long")
    assert ran.out.strip() == "retry queued: 2 record(s), 2 error(s)"
    assert dict(app.seen[0].url.params) == {"entity": "lead", "error_code": "value-too-long"}


def test_quicksync_watch_draws_a_bar_on_a_terminal(app: ScriptedApp) -> None:
    app.on("GET", "jobs/7f3a", polls(job(0, 400), job(100, 400), job(300, 400), job(400, 400, "done")))
    time = FakeTime()
    ran = app("quicksync", "watch", "7f3a", "--interval", "5", tty=True, time=time)
    assert ran.code == 0
    frames = ran.out.split("\r")[1:]
    assert len(frames) == 4
    assert "[-----" in frames[0]
    assert "0/400  0%" in frames[0]
    assert "[########-" in frames[1]
    assert "100/400  25%  20.0/s  ETA 15s" in frames[1]
    assert "[##############################]" in frames[3]
    assert frames[3].rstrip().endswith("400/400  100%  26.7/s")
    assert ran.out.endswith("\n")
    assert time.slept == [5.0, 5.0, 5.0]


def test_quicksync_watch_prints_lines_when_not_a_terminal(app: ScriptedApp) -> None:
    answers = [job(0, None, "queued"), job(0, None, "queued"), job(50, 200, rate_per_s=10.0, eta_s=15.0),
               job(200, 200, "done", notice="12 records left to the live sync")]  # fmt: skip
    app.on("GET", "jobs/7f3a", polls(*answers))
    ran = app("quicksync", "watch", "7f3a")
    assert ran.code == 0
    assert "\r" not in ran.out
    assert ran.out.splitlines() == [
        "quick sync lead.jobtitle (job 7f3a): queued  0/?",
        "quick sync lead.jobtitle (job 7f3a): running  50/200  25%  10.0/s  ETA 15s",
        "quick sync lead.jobtitle (job 7f3a): done  200/200  100%  33.3/s",
        "  12 records left to the live sync",
    ]


def test_quicksync_watch_without_a_job_watches_the_active_ones(app: ScriptedApp) -> None:
    app.on("GET", "jobs", {"count": 2, "active": 1, "jobs": [job(5, 10), job(10, 10, "done", id="old")]})
    app.on("GET", "jobs/7f3a", polls(job(10, 10, "done")))
    ran = app("quicksync", "watch")
    assert ran.code == 0
    assert [r.url.path for r in app.seen] == ["/api/jobs", "/api/jobs/7f3a"]
    idle = ScriptedApp()
    idle.on("GET", "jobs", {"count": 0, "active": 0, "jobs": []})
    assert idle("quicksync", "watch").out.strip() == "no Quick Sync is queued or running"


def test_a_watch_gives_up_after_its_timeout(app: ScriptedApp) -> None:
    app.on("GET", "jobs/7f3a", polls(job(1, 10)))
    ran = app("--timeout", "10", "--interval", "4", "quicksync", "watch", "7f3a")
    assert ran.code == 1
    assert ran.err.strip() == "error: quick sync lead.jobtitle (job 7f3a) is still running after 10s"


def test_quicksync_start_posts_the_field_and_can_watch(app: ScriptedApp) -> None:
    app.on("POST", "quicksync", {"job": job(0, None, "queued")}, status=202)
    app.on("GET", "jobs/7f3a", polls(job(3, 3, "done")))
    ran = app("quicksync", "start", "lead", "jobtitle", "--watch")
    assert ran.code == 0
    assert app.body(0) == {"entity": "lead", "column": "jobtitle"}
    assert ran.out.splitlines()[0] == "quick sync lead.jobtitle (job 7f3a): queued"


def test_resync_of_a_date_range_and_of_records(app: ScriptedApp) -> None:
    resync_job = {**job(0, None, "queued"), "kind": "resync", "column": None, "mode": "refresh_marketo",
                  "scope": "modified"}  # fmt: skip
    app.on("POST", "resync", {"job": resync_job}, status=202)
    ran = app("resync", "lead", "--from", "2026-11-01", "--to", "2026-11-30", "--mode", "refresh_marketo")
    assert ran.code == 0
    assert app.body() == {"entity": "lead", "mode": "refresh_marketo", "modified_from": "2026-11-01",
                          "modified_to": "2026-11-30"}  # fmt: skip
    assert ran.out.strip() == "resync lead (job 7f3a): queued (scope modified, mode refresh_marketo)"
    app("resync", "lead", "--id", "a1", "--id", "b2")
    assert app.body() == {"entity": "lead", "mode": "both_ways", "ids": ["a1", "b2"]}
    both = app("resync", "lead", "--id", "a1", "--from", "2026-11-01")
    assert both.code == 2


def test_record_shows_the_history_field_by_field(app: ScriptedApp) -> None:
    found = {"entity": "contact", "dynamics_id": "c1", "marketo_id": "9", "label": "ada@example.com",
             "dynamics_url": "https://d/c1", "marketo_url": "https://m/9"}  # fmt: skip
    app.on("GET", "records", {"records": [found]})
    entry = {"at": "2026-12-01T11:59:30.123456+00:00", "trigger": {"source": "webhook", "side": "marketo"},
             "action": "sync", "reason": "collision", "fields": [
                 {"field": "jobtitle", "action": "to_marketo", "reason": "collision", "dynamics": "CTO",
                  "marketo": "Engineer", "baseline": "Dev", "value": "CTO", "winner": "dynamics"}]}  # fmt: skip
    history = {"record": {**found, "linked": True, "synced_at": "2026-12-01T11:59:31+00:00", "baseline": {}},
               "history": [entry], "errors": [ROW]}  # fmt: skip
    app.on("GET", "records/contact/c1", history)
    ran = app("record", "ada@example.com")
    assert ran.code == 0, ran.err
    assert dict(app.seen[0].url.params) == {"q": "ada@example.com"}
    assert dict(app.seen[1].url.params) == {"limit": "20"}
    out = ran.out
    assert out.splitlines()[0] == "contact ada@example.com"
    assert "2026-12-01 11:59:30 UTC  sync: collision  (triggered by webhook marketo)" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("jobtitle"))
    assert row.split()[:7] == ["jobtitle", "to_marketo", "CTO", "Engineer", "Dev", "CTO", "dynamics"]
    assert "Sync errors" in out
    assert "value-too-long" in out


def test_record_with_several_matches_asks_for_the_entity(app: ScriptedApp) -> None:
    two = [{"entity": "lead", "dynamics_id": "l1"}, {"entity": "contact", "dynamics_id": "c1"}]
    app.on("GET", "records", {"records": two})
    ran = app("record", "ada@example.com")
    assert ran.out.splitlines()[0] == "2 records match; pass --entity to choose:"
    app.on("GET", "records/contact/c1", {"record": {"entity": "contact"}, "history": [], "errors": []})
    assert app("record", "ada@example.com", "--entity", "contact").code == 0
    none = ScriptedApp()
    none.on("GET", "records", {"records": []})
    assert none("record", "nobody@example.com").code == 1


def test_status_shows_services_budgets_timers_and_jobs(app: ScriptedApp) -> None:
    status = {
        "generated_at": "2026-12-01T11:59:59.5+00:00", "paused_all": False, "paused_entities": ["account"],
        "entities": [{"entity": "lead", "direction": "both", "paused": False, "backlog_records": 5,
                      "oldest_pending": "2026-12-01T11:58:00+00:00", "synced_last_hour": 40, "failed_last_hour": 2,
                      "open_errors": 1, "collisions_last_hour": {"marketo_won": 3, "dynamics_won": 1}},
                     {"entity": "account", "direction": "dynamics_to_marketo", "paused": True}],
        "services": {"marketo": {"available": False, "notice": "Marketo unavailable since 11:40 UTC, 30 records waiting"},
                     "dataverse": {"available": True}},
        "budgets": {"marketo": {"calls_last_20s": 12, "limit_20s": 100, "daily_used": 1200, "daily_limit": 50000,
                                "daily_left": 48800}},
        "timers": {"marketo_feed": {"last_run": "2026-12-01T11:59:00+00:00", "next_run": "2026-12-01T12:00:00+00:00",
                                    "schedule": "0 * * * * *"}},
        "jobs": [job(10, 40)], "dead_letters": {"count": 2, "oldest": {"reason": "MaxDeliveryCountExceeded",
                                                                       "enqueued_at": "2026-12-01T10:00:00+00:00"}},
    }  # fmt: skip
    app.on("GET", "status", status)
    ran = app("status", "--entity", "lead")
    assert ran.code == 0
    assert dict(app.seen[0].url.params) == {"entity": "lead"}
    lines = ran.out.splitlines()
    assert lines[0] == "Sync status at 2026-12-01 11:59:59 UTC: paused: account"
    lead = next(line for line in lines if line.startswith("lead "))
    assert lead.split()[:10] == ["lead", "both", "ways", "-", "5", "2m", "00s", "ago", "40", "2"]
    assert "  marketo    UNAVAILABLE: Marketo unavailable since 11:40 UTC, 30 records waiting" in lines
    assert "  marketo    12/100 calls in the last 20 s, 1200/50000 today (48800 left)" in lines
    assert any("marketo_feed" in line and "2026-12-01 12:00:00 UTC" in line for line in lines)
    assert any(line.split()[:5] == ["7f3a", "quick_sync", "lead.jobtitle", "running", "10/40"] for line in lines)
    assert "Dead letters: 2 (oldest: MaxDeliveryCountExceeded, 2026-12-01 10:00:00 UTC)" in lines


def test_an_answer_that_is_not_the_products_json_still_reads(app: ScriptedApp) -> None:
    app.on("GET", "status", "", status=401)
    ran = app("status")
    assert ran.code == 1
    assert ran.err.strip() == "error 401 http-401: Unauthorized (is SYNC_FUNCTION_KEY the app's function key?)"
