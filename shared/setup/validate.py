"""A "Validate Sync" checklist: each item passes or fails, and a failure says what to fix.

Items run in order and depend on each other only where they must (no Dataverse item can run without a token):
webhook secrets, Dataverse credentials, the application user, per table read access + columns + change tracking,
the webhook registration, Marketo credentials, Marketo fields for every mapped field, and the link fields.
Only ``--create-marketo-fields`` changes anything (it creates missing custom lead fields, which the sync rules
allow); Dynamics columns are never created.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from shared.core.access import column_access, writes_back
from shared.core.entities import MarketoObject
from shared.core.mapping import DELETED_FLAG_FIELD, SYNC_FILTER_COLUMN, EntityMapping, FieldState, SyncMapping
from shared.dataverse.client import AttributeInfo, ColumnPrivilege, DataverseClient
from shared.errors import SyncError
from shared.marketo.client import MarketoClient
from shared.marketo.models import ObjectDescription
from shared.settings import Settings
from shared.setup.marketo_setup import MarketoCheck, check_marketo, daily_usage, person_fields
from shared.setup.registration import Op, desired, plan
from shared.setup.registry import Registry

MIN_SECRET_LENGTH = 32
NEVER_CREATED = "create the column in Dynamics first — the sync never creates Dynamics columns"


class Status(StrEnum):
    PASS = "PASS"  # noqa: S105 - a check status, not a password
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fixes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail, "fixes": list(self.fixes)}


def _passed(name: str, detail: str) -> Check:
    return Check(name, Status.PASS, detail)


def _failed(name: str, detail: str, *fixes: str) -> Check:
    return Check(name, Status.FAIL, detail, tuple(fixes))


def _skipped(name: str, why: str) -> Check:
    return Check(name, Status.SKIP, why)


@dataclass
class Validator:
    settings: Settings
    mapping: SyncMapping
    dataverse: DataverseClient | None
    marketo: MarketoClient | None
    http: httpx.Client | None = None
    webhook_url: str | None = None
    create_marketo_fields: bool = False

    def run(self, report: Callable[[Check], None] | None = None) -> list[Check]:
        checks: list[Check] = []

        def add(items: Iterable[Check]) -> None:
            for item in items:
                checks.append(item)
                if report is not None:
                    report(item)

        add([self.secrets()])
        add(self.dataverse_checks())
        add(self.marketo_checks())
        return checks

    # --- settings -------------------------------------------------------------------------------------------

    def secrets(self) -> Check:
        name = "Webhook secrets"
        problems, fixes = [], []
        for setting, value in (
            ("DATAVERSE_WEBHOOK_SECRET", self.settings.dataverse_webhook_secret),
            ("MARKETO_WEBHOOK_SECRET", self.settings.marketo_webhook_secret),
        ):
            length = len(value.get_secret_value())
            if length < MIN_SECRET_LENGTH:
                problems.append(f"{setting} is {'empty' if not length else 'shorter than 32 characters'}")
                fixes.append(
                    f"azd env set {setting} \"$(python -c 'import secrets; print(secrets.token_urlsafe(48))')\", "
                    "then azd provision and re-run the registration"
                )
        if problems:
            return _failed(name, "; ".join(problems), *fixes)
        return _passed(name, "both set (values not shown)")

    # --- Dataverse ------------------------------------------------------------------------------------------

    def dataverse_items(self) -> list[str]:
        """The Dataverse items after the credentials, by name: each is SKIPped, with why, when they fail."""
        tables = [
            f"{item} {e.entity}"
            for e in self.mapping.entities
            for item in ("Read access to", "Columns of", "Change tracking on")
        ]
        return ["Application user", "Column security privileges", *tables, "Webhook registration"]

    def marketo_items(self) -> list[str]:
        """The Marketo items after the credentials, by name (as :meth:`marketo_checks` names them)."""
        persons = [e for e in self.mapping.entities if e.rule.marketo_object is MarketoObject.PERSON]
        objects = [_object_check_name(e) for e in self.mapping.entities if e not in persons]
        return ["Marketo person fields", *(["Marketo link fields"] if persons else []), *objects]

    def dataverse_checks(self) -> list[Check]:
        client = self.dataverse
        if client is None:
            return [
                _failed("Dataverse credentials", "no Dataverse client", "set DATAVERSE_URL and the app settings"),
                *(_skipped(n, "needs a Dataverse client") for n in self.dataverse_items()),
            ]
        try:
            me = client.whoami()
        except SyncError as exc:
            fix = (
                "the app registration has no enabled application user in this environment, or it is disabled: "
                "Power Platform admin center > Environment > Settings > Application users (docs/deploy.md section 2)"
                if "403" in str(exc) or exc.code in {"0x8004d24b"}
                else "check DATAVERSE_URL, DATAVERSE_TENANT_ID, DATAVERSE_CLIENT_ID and DATAVERSE_CLIENT_SECRET "
                "(Entra admin center > App registrations > the app > Certificates & secrets: expired?)"
            )
            why = f"needs Dataverse credentials (they failed: {exc.code or type(exc).__name__})"
            return [
                _failed("Dataverse credentials", f"no token or WhoAmI refused: {exc}", fix),
                *(_skipped(n, why) for n in self.dataverse_items()),
            ]
        checks = [_passed("Dataverse credentials", f"token issued; WhoAmI answers user {me.user_id}")]
        user_id = (self.settings.dataverse_sync_user_id or me.user_id).lower()
        checks.append(self._application_user(client, user_id, me.user_id))
        privileges: dict[str, ColumnPrivilege] | None = None
        try:
            privileges = client.column_privileges(user_id)
        except SyncError as exc:
            checks.append(
                _failed(
                    "Column security privileges",
                    f"cannot read the user's field security privileges: {exc}",
                    "give the sync's security role Read on Field Security Profile (or check the user id)",
                )
            )
        for entity in self.mapping.entities:
            checks.extend(self._table(client, entity, privileges))
        if "opportunity" in self.mapping.by_entity:  # the catch-up follows stakeholders through connections
            checks.append(self._change_tracking(client, "connection"))
        checks.append(self._registration(client))
        return checks

    def _application_user(self, client: DataverseClient, user_id: str, token_user: str) -> Check:
        name = "Application user"
        try:
            rows = list(
                client.query(
                    "systemuser",
                    select=["fullname", "applicationid", "isdisabled"],
                    filter=f"systemuserid eq {user_id}",
                )
            )
        except SyncError as exc:
            return _failed(name, f"cannot read the user: {exc}", "give the sync's security role Read on User")
        if not rows:
            return _failed(
                name,
                f"no user {user_id}",
                "DATAVERSE_SYNC_USER_ID must be the application user's systemuserid (or leave it empty)",
            )
        user = rows[0].values
        if user.get("isdisabled"):
            return _failed(name, "the application user is disabled", "enable it under Application users")
        if user_id != token_user:
            return _failed(
                name,
                f"DATAVERSE_SYNC_USER_ID ({user_id}) is not the user the sync signs in as ({token_user})",
                "clear DATAVERSE_SYNC_USER_ID or set it to the WhoAmI user id, or the sync's own writes echo back",
            )
        app_id = str(user.get("applicationid") or "").lower()
        configured = self.settings.dataverse_client_id.lower()
        if configured and app_id and app_id != configured:
            return _failed(name, "the user belongs to another app registration", "check DATAVERSE_CLIENT_ID")
        return _passed(name, f"'{user.get('fullname') or user_id}' exists and is enabled")

    def _table(
        self, client: DataverseClient, entity: EntityMapping, privileges: dict[str, ColumnPrivilege] | None
    ) -> list[Check]:
        table = entity.entity
        checks: list[Check] = []
        try:
            list(client.query(table, select=[entity.id_column], top=1))
            checks.append(_passed(f"Read access to {table}", "the application user can read the table"))
        except SyncError as exc:
            checks.append(
                _failed(
                    f"Read access to {table}",
                    f"reading {table} failed: {exc}",
                    f"give the sync's security role Read on the {table} table (Organization level)",
                )
            )
        try:
            attributes = {a.logical_name: a for a in client.attributes(table)}
        except SyncError as exc:
            checks.append(
                _failed(
                    f"Columns of {table}",
                    f"cannot read the table's metadata: {exc}",
                    "check the table's logical name in the mapping; give the role Read on Entity and Field",
                )
            )
            return checks
        checks.append(self._columns(entity, attributes, privileges))
        checks.append(self._change_tracking(client, table))
        return checks

    def _columns(
        self,
        entity: EntityMapping,
        attributes: dict[str, AttributeInfo],
        privileges: dict[str, ColumnPrivilege] | None,
    ) -> Check:
        table = entity.entity
        problems: list[str] = []
        fixes: list[str] = []
        for f in entity.fields:
            info = attributes.get(f.dynamics)
            if info is None:
                problems.append(f"column '{f.dynamics}' does not exist on {table}")
                fixes.append(f"{f.dynamics}: {NEVER_CREATED}; or remove it from the mapping")
                continue
            if f.state is FieldState.BROKEN:
                problems.append(f"column '{f.dynamics}' is marked broken in the mapping")
                fixes.append(f"{f.dynamics}: set its state back to active once the column is readable")
            privilege = (privileges or {}).get(info.metadata_id or "") if info.is_secured else None
            verdict = column_access(info, privilege, writes_back=writes_back(entity, f))
            if not verdict.granted:
                problems.append(verdict.reason)
                fixes.append(f"{f.dynamics}: {verdict.fix}")
        if entity.sync_filter and SYNC_FILTER_COLUMN not in attributes:
            problems.append(f"the mapping says {table} has '{SYNC_FILTER_COLUMN}', it does not")
            fixes.append(f"create the Two Options column {SYNC_FILTER_COLUMN} or set sync_filter: false")
        if problems:
            return _failed(f"Columns of {table}", "; ".join(problems), *fixes)
        detail = f"{len(entity.fields)} mapped columns exist; the sync user may read them (and update what it writes)"
        return _passed(f"Columns of {table}", detail)

    def _change_tracking(self, client: DataverseClient, table: str) -> Check:
        name = f"Change tracking on {table}"
        try:
            body = client.request(
                "GET", f"EntityDefinitions(LogicalName='{table}')", params={"$select": "ChangeTrackingEnabled"}
            ).json()
        except (SyncError, ValueError) as exc:
            return _failed(name, f"cannot read the table definition: {exc}", "give the role Read on Entity")
        if body.get("ChangeTrackingEnabled"):
            return _passed(name, "enabled: the catch-up timer can read changes")
        return _failed(
            name,
            "off: changes whose webhook was lost are never caught up",
            f"turn on 'Track changes' in the {table} table's properties (Power Apps > Tables > {table} > "
            "Properties > Advanced options)",
        )

    def _registration(self, client: DataverseClient) -> Check:
        name = "Webhook registration"
        fix = "python -m shared.setup register --url https://<app>.azurewebsites.net/api/dataverse/webhook"
        registry = Registry(client)
        try:
            existing = registry.existing()
        except SyncError as exc:
            return _failed(
                name,
                f"cannot read the registration tables: {exc}",
                "give the role Read on Service Endpoint, SDK Message, SDK Message Filter, SDK Message Processing "
                "Step and its images",
            )
        if not existing.endpoints:
            return _failed(name, "no webhook service endpoint registered", fix)
        url = self.webhook_url or str(existing.endpoints[0].values.get("url") or "")
        if not self.settings.dataverse_webhook_secret.get_secret_value():
            return _failed(name, "DATAVERSE_WEBHOOK_SECRET is not set: cannot compare", "set it, then " + fix)
        want = desired(
            self.mapping,
            url=url,
            header=self.settings.dataverse_webhook_header,
            secret=self.settings.dataverse_webhook_secret,
        )
        pending = [a for a in plan(want, existing) if a.op is not Op.UNCHANGED]
        if pending:
            listed = "; ".join(a.describe().replace("  ", " ") for a in pending[:8])
            more = f" (+{len(pending) - 8} more)" if len(pending) > 8 else ""
            return _failed(name, f"{len(pending)} registration(s) differ from the mapping: {listed}{more}", fix)
        steps = sum(1 for _ in want.steps)
        where = "" if self.webhook_url else " (URL not checked: pass --url)"
        return _passed(name, f"endpoint and {steps} steps match the mapping{where}")

    # --- Marketo --------------------------------------------------------------------------------------------

    def marketo_checks(self) -> list[Check]:
        if self.marketo is None:
            return [
                _failed("Marketo credentials", "no Marketo client", "set MARKETO_BASE_URL and the credentials"),
                *(_skipped(n, "needs a Marketo client") for n in self.marketo_items()),
            ]
        result = check_marketo(self.marketo)
        if not result.ok:
            return [
                _failed("Marketo credentials", result.detail, result.fix or ""),
                *(_skipped(n, "needs Marketo credentials (they failed)") for n in self.marketo_items()),
            ]
        detail = result.detail
        if self.http is not None:
            used = daily_usage(self.http, self.marketo, self.settings.marketo_base_url)
            quota = self.settings.marketo_daily_quota
            detail += (
                f"; {used} of {quota} daily calls used"
                if used is not None
                else f"; daily usage not reported (quota assumed {quota}/day)"
            )
        checks = [_passed("Marketo credentials", detail)]
        checks.append(self._person_fields(result))
        link = self._link_fields(result)
        if link is not None:
            checks.append(link)
        for entity in self.mapping.entities:
            if entity.rule.marketo_object is not MarketoObject.PERSON:
                checks.append(self._object_fields(entity))
        return checks

    def _create(self, specs: list[dict[str, str]]) -> tuple[list[str], list[str]]:
        assert self.marketo is not None
        created, failed = [], []
        try:
            outcomes = self.marketo.create_lead_fields(specs)
        except SyncError as exc:
            return [], [f"{s['name']} ({exc})" for s in specs]
        for spec, outcome in zip(specs, outcomes, strict=False):
            if outcome.ok:
                created.append(spec["name"])
            else:
                reasons = ", ".join(f"{r.code} {r.message}" for r in outcome.reasons)
                failed.append(f"{spec['name']} ({reasons})")
        return created, failed

    def _missing_person_check(self, name: str, missing: dict[str, str]) -> Check:
        if not missing:
            return _passed(name, "present")
        if self.create_marketo_fields:
            specs = [{"name": n, "displayName": n, "dataType": t} for n, t in missing.items()]
            created, failed = self._create(specs)
            if not failed:
                return _passed(name, f"created: {', '.join(created)}")
            return _failed(
                name,
                f"could not create: {'; '.join(failed)}",
                "create them in Marketo Admin > Field Management > New Custom Field",
            )
        return _failed(
            name,
            f"missing in Marketo: {', '.join(missing)}",
            "create them in Marketo Admin > Field Management > New Custom Field (API name as listed), or re-run "
            "with --create-marketo-fields",
        )

    def _person_fields(self, result: MarketoCheck) -> Check:
        wanted = person_fields(self.mapping)
        missing = {n: t for n, t in wanted.items() if n not in result.lead_fields}
        check = self._missing_person_check("Marketo person fields", missing)
        if check.status is Status.PASS and not missing:
            return _passed(check.name, f"all {len(wanted)} mapped person fields present")
        return check

    def _link_fields(self, result: MarketoCheck) -> Check | None:
        wanted: dict[str, str] = {}
        for entity in self.mapping.entities:
            if entity.rule.marketo_object is MarketoObject.PERSON:
                wanted[entity.marketo_link_field] = "string"
                wanted[DELETED_FLAG_FIELD] = "boolean"
        if not wanted:
            return None
        missing = {n: t for n, t in wanted.items() if n not in result.lead_fields}
        check = self._missing_person_check("Marketo link fields", missing)
        if check.status is Status.PASS and not missing:
            return _passed(check.name, f"{', '.join(wanted)} present")
        return check

    def _object_fields(self, entity: EntityMapping) -> Check:
        assert self.marketo is not None
        kind = entity.rule.marketo_object
        describe: dict[MarketoObject, Callable[[], ObjectDescription]] = {
            MarketoObject.COMPANY: self.marketo.describe_companies,
            MarketoObject.OPPORTUNITY: self.marketo.describe_opportunities,
            MarketoObject.SALES_PERSON: self.marketo.describe_sales_persons,
        }
        name = _object_check_name(entity)
        where = (
            f"Admin > Marketo Custom Objects > {entity.custom_object} > add the fields, then Approve"
            if kind is MarketoObject.CUSTOM_OBJECT
            else "Admin > Field Management (or ask Marketo support for fields of this object)"
        )
        try:
            if kind is MarketoObject.CUSTOM_OBJECT:
                description = self.marketo.describe_custom_object(str(entity.custom_object))
            else:
                description = describe[kind]()
        except SyncError as exc:
            return _failed(name, f"cannot describe it: {exc}", where)
        present = {f.name for f in description.fields}
        wanted = [f.marketo for f in entity.fields] + [entity.marketo_link_field]
        missing = [n for n in dict.fromkeys(wanted) if n not in present]
        if missing:
            return _failed(name, f"missing in Marketo: {', '.join(missing)}", where)
        return _passed(name, f"all {len(set(wanted))} fields present")


def _object_check_name(entity: EntityMapping) -> str:
    kind = entity.rule.marketo_object
    label = entity.custom_object if kind is MarketoObject.CUSTOM_OBJECT else kind.value
    return f"Marketo {label} fields (for {entity.entity})"
