"""The command line: every command, its options and its help (``python -m shared.admin COMMAND --help``)."""

from __future__ import annotations

import argparse

from shared.admin import commands as run
from shared.admin import entities as entity_commands
from shared.admin.client import DEFAULT_URL, KEY_VARIABLE, URL_VARIABLE

DESCRIPTION = "Operate the Dynamics 365 <-> Marketo sync through its HTTP API: status, sync errors, fields, \
entities, Quick Sync, force resync, pause and resume, dead letters, a record's history."
EPILOG = f"""\
The app: --url, else ${URL_VARIABLE}, else {DEFAULT_URL} (the local host of `make run`).
Its function key: ${KEY_VARIABLE} (sent as the x-functions-key header, never printed).
Exit codes: 0 done, 1 the app refused (its error code and message are printed), 2 a command line
that cannot be acted on, 3 the app cannot be reached.

examples:
  python -m shared.admin status
  python -m shared.admin errors list --status open --entity contact
  python -m shared.admin fields add contact address1_line2 --marketo address --watch
  python -m shared.admin resync lead --from 2026-11-01 --to 2026-11-30 --watch
  python -m shared.admin entities add new_project --custom-object project_c --field new_name=projectName --watch
  python -m shared.admin record ada@example.com

Every command has its own --help. Docs: docs/cli.md."""

FORMATTER = argparse.RawDescriptionHelpFormatter
ENTITY_HELP = "a mapped entity (lead, contact, account, ...: `fields list` names them)"


def _error_filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters")
    g.add_argument("--entity", help="only this entity (lead, contact, account...)")
    g.add_argument("--direction", choices=["dynamics_to_marketo", "marketo_to_dynamics"], help="only this direction")
    g.add_argument("--code", help="only this error code (e.g. value-too-long)")
    g.add_argument("--status", choices=["open", "retrying", "resolved", "ignored"], help="only errors in this state")
    g.add_argument("--q", metavar="TEXT", help="search ids, record, label, field, code and message")
    g.add_argument("--since", metavar="WHEN", help="last seen at or after (ISO date or date-time)")
    g.add_argument("--until", metavar="WHEN", help="last seen at or before (ISO date or date-time)")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the API's JSON answer instead of a table")


def _watch(p: argparse.ArgumentParser, what: str | None) -> None:
    if what is not None:
        p.add_argument("--watch", action="store_true", help=f"then show {what}'s progress until it ends")
    g = p.add_argument_group("watching")
    g.add_argument("--interval", type=float, default=argparse.SUPPRESS, metavar="SECONDS",
                   help="how often to ask for progress (default 2)")  # fmt: skip
    g.add_argument("--timeout", type=float, default=argparse.SUPPRESS, metavar="SECONDS",
                   help="stop watching after this long, exit 1 (the job goes on); default: until it ends")  # fmt: skip


def _sub(parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, handler: object,
         description: str | None = None) -> argparse.ArgumentParser:  # fmt: skip
    p = parent.add_parser(name, help=summary, description=description or summary, formatter_class=FORMATTER)
    p.set_defaults(handler=handler)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shared.admin", description=DESCRIPTION, epilog=EPILOG, formatter_class=FORMATTER
    )
    parser.add_argument("--url", help=f"the app's base URL (default ${URL_VARIABLE} or {DEFAULT_URL})")
    parser.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                        help="how often --watch and `quicksync watch` ask for progress (default 2)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="stop watching after this long (exit 1); default: until the job ends")  # fmt: skip
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _sub(top, "status", "per entity backlog, throughput and errors; services, budgets, timers, jobs", run.status)
    p.add_argument("--entity", help="only this entity")
    _json(p)
    p = _sub(top, "pause", "pause the sync (of one entity with --entity); changes are held, not lost", run.pause)
    p.add_argument("--entity", help="only this entity")
    p = _sub(top, "resume", "resume the sync (of one entity with --entity); held changes go at once", run.resume)
    p.add_argument("--entity", help="only this entity (a plain resume leaves per-entity pauses alone)")

    errors = _sub(top, "errors", "sync errors: list, export, retry, ignore, resolve", None).add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = _sub(errors, "list", "the sync errors, newest first", run.errors_list)
    _error_filters(p)
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    _json(p)
    p = _sub(errors, "export", "the filtered errors as CSV", run.errors_export)
    _error_filters(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: standard output)")
    p = _sub(errors, "retry", "retry one error, or every open one the filters match (--all)", run.errors_retry)
    p.add_argument("id", nargs="?", metavar="ID", help="the error's id")
    p.add_argument("--all", action="store_true", help="every open error (narrowed by the filters)")
    _error_filters(p)
    p = _sub(errors, "ignore", "mark an error ignored (it stays out of the open list)", run.errors_ignore)
    p.add_argument("id", metavar="ID", help="the error's id (errors list shows it)")
    p = _sub(errors, "resolve", "mark an error resolved by hand", run.errors_resolve)
    p.add_argument("id", metavar="ID", help="the error's id (errors list shows it)")

    fields = _sub(top, "fields", "the synced fields of an entity: list, add, remove", None).add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = _sub(fields, "list", "the mapped fields of ENTITY (or, with --catalogue, every column)", run.fields_list)
    p.add_argument("entity", metavar="ENTITY", help=ENTITY_HELP)
    p.add_argument("--catalogue", action="store_true",
                   help="every Dynamics column: mapped or not, readable by the sync user, of a type the sync converts")  # fmt: skip
    _json(p)
    p = _sub(fields, "add", "map COLUMN of ENTITY to a Marketo field; its Quick Sync starts at once", run.fields_add,
             "Map a Dynamics column to a Marketo field. The column must exist in Dynamics (the sync never creates "
             "one); its Quick Sync then copies the column of every existing record.")  # fmt: skip
    p.add_argument("entity", metavar="ENTITY", help=ENTITY_HELP)
    p.add_argument("column", metavar="COLUMN", help="the Dynamics column's logical name")
    p.add_argument("--marketo", metavar="NAME", help="the Marketo field's API name (default: the column's name)")
    p.add_argument("--one-way", action="store_true", help="Dynamics -> Marketo only")
    p.add_argument(
        "--winner",
        choices=("dynamics", "marketo", "latest"),
        help="who wins this field's collisions (default: the entity's rule; two-way entities only)",
    )
    p.add_argument("--create-marketo-field", action="store_true", help="create the Marketo person field if missing")
    p.add_argument("--from", dest="modified_from", metavar="WHEN", help="Quick Sync only records modified from WHEN")
    p.add_argument("--to", dest="modified_to", metavar="WHEN", help="... and up to WHEN (a date covers the whole day)")
    p.add_argument("--no-quick-sync", action="store_true",
                   help="no backfill: only records changed from now on carry the field")  # fmt: skip
    _watch(p, "the Quick Sync")
    p = _sub(fields, "remove", "stop syncing COLUMN of ENTITY (refused while its Quick Sync runs)", run.fields_remove)
    p.add_argument("entity", metavar="ENTITY", help=ENTITY_HELP)
    p.add_argument("column", metavar="COLUMN", help="the Dynamics column's logical name")

    entities = _sub(top, "entities", "the synced entities: list, add one at runtime (with its initial sync), remove one",
                    None).add_subparsers(dest="action", required=True, metavar="ACTION")  # fmt: skip
    p = _sub(entities, "list", "every synced entity, its state and its Marketo object", entity_commands.entities_list)
    _json(p)
    p = _sub(entities, "add", "sync ENTITY (a custom entity or team) to a Marketo custom object; its initial sync "
             "starts at once", entity_commands.entities_add,
             "Sync a Dynamics table to a Marketo custom object from now on. The table and the custom object (with "
             "the link field as its dedupe field) must exist: the sync creates neither. Every existing record is "
             "synced by an initial sync job behind live traffic.")  # fmt: skip
    p.add_argument("entity", metavar="ENTITY", help="the Dataverse table's logical name (a custom entity, or team)")
    p.add_argument("--custom-object", required=True, metavar="NAME", help="the Marketo custom object's API name")
    p.add_argument("--link-field", metavar="NAME", help="its field holding the Dynamics id (default dynamicsId)")
    p.add_argument("--field", dest="fields", action="append", metavar="COLUMN[=MARKETO]",
                   help="a column to sync, to the Marketo field of that name (repeatable)")  # fmt: skip
    p.add_argument("--page-size", type=int, metavar="N", help="records per page of the initial sync (default 300)")
    _watch(p, "the initial sync")
    p = _sub(entities, "remove", "stop syncing ENTITY (its links stay; its jobs stop)", entity_commands.entities_remove)
    p.add_argument("entity", metavar="ENTITY", help="a custom entity or team in the sync mapping")

    quick = _sub(top, "quicksync", "Quick Sync of a field: start it again, watch its progress", None).add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = _sub(quick, "start", "run the Quick Sync of a mapped field now", run.quicksync_start)
    p.add_argument("entity", metavar="ENTITY", help=ENTITY_HELP)
    p.add_argument("column", metavar="COLUMN", help="the Dynamics column's logical name")
    _watch(p, "it")
    p = _sub(quick, "watch", "a progress bar (plain lines when not a terminal) until the job ends",
             run.quicksync_watch)  # fmt: skip
    p.add_argument("job", nargs="?", metavar="JOB", help="the job's id (default: every queued or running Quick Sync)")
    _watch(p, None)

    p = _sub(top, "resync", "force a resync of records of ENTITY, as a backfill behind live traffic", run.resync,
             "Force a resync: of the records named by --id, of those modified between --from and --to, or (with "
             "neither) of every record of ENTITY.")  # fmt: skip
    p.add_argument("entity", metavar="ENTITY", help=ENTITY_HELP)
    p.add_argument("--id", dest="ids", action="append", metavar="ID", help="a Dynamics record id (repeatable)")
    p.add_argument("--from", dest="modified_from", metavar="WHEN", help="records modified from WHEN (ISO date/time)")
    p.add_argument("--to", dest="modified_to", metavar="WHEN", help="... up to WHEN")
    p.add_argument("--mode", choices=["both_ways", "refresh_marketo"], default="both_ways",
                   help="both_ways: reconcile as a change would (default); refresh_marketo: Dynamics overwrites Marketo")  # fmt: skip
    _watch(p, "the resync")

    dead = _sub(top, "deadletters", "the changes queue's dead letters: list, replay, discard", None).add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = _sub(dead, "list", "one page of dead letters, oldest first", run.deadletters_list)
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--after", type=int, default=None, metavar="SEQ", help="after this sequence number (next page)")
    _json(p)
    p = _sub(dead, "replay", "send one dead letter (ID) or all of them (--all, --entity) to the queue again",
             run.deadletters_replay)  # fmt: skip
    p.add_argument("id", nargs="?", metavar="ID", help="the dead letter's id (deadletters list shows it)")
    p.add_argument("--all", action="store_true", help="every readable dead letter")
    p.add_argument("--entity", help="every readable dead letter of this entity")
    p = _sub(dead, "discard", "complete a dead letter without replaying it (recorded as a resolved error)",
             run.deadletters_discard)  # fmt: skip
    p.add_argument("id", metavar="ID", help="the dead letter's id (deadletters list shows it)")

    p = _sub(top, "record", "the history of one record, field by field: what each side held and who won", run.record)
    p.add_argument("query", metavar="QUERY", help="a Dynamics id, a Marketo id or an e-mail address")
    p.add_argument("--entity", help="which entity, when several records match")
    p.add_argument("--limit", type=int, default=20, help="at most this many decisions (default 20)")
    _json(p)
    return parser
