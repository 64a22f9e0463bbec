"""The registration plan, table-driven: desired registrations vs what exists -> create/update/delete/unchanged."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from pydantic import SecretStr

from shared.core.mapping import SyncMapping, load_mapping
from shared.setup.registration import (
    ENDPOINT_NAME,
    Action,
    Desired,
    Existing,
    ExistingEndpoint,
    ExistingImage,
    ExistingStep,
    Kind,
    Op,
    desired,
    plan,
    teardown,
)

SECRET = SecretStr("s" * 40)
URL = "https://app.example/api/dataverse/webhook"


def _mapping(*entities: tuple[str, list[str]], sync_filter: bool = False) -> SyncMapping:
    return load_mapping(
        {
            "entities": [
                {
                    "entity": name,
                    "sync_filter": sync_filter,
                    "fields": [{"dynamics": c, "marketo": f"m_{c}", "type": "text"} for c in columns],
                }
                for name, columns in entities
            ]
        }
    )


def _want(
    mapping: SyncMapping, *, url: str = URL, secret: SecretStr = SECRET, header: str = "x-sync-secret"
) -> Desired:
    return desired(mapping, url=url, header=header, secret=secret)


def registered(want: Desired, endpoint_id: str = "e1") -> Existing:
    """What Dataverse would hold after a successful register of ``want`` (values as the Web API reads them)."""
    body = {k: v for k, v in want.endpoint.values().items() if k != "authvalue"}
    steps = []
    for n, spec in enumerate(want.steps):
        images = tuple(ExistingImage(f"i{n}-{i}", image.values()) for i, image in enumerate(spec.images))
        steps.append(ExistingStep(f"s{n}", spec.entity, spec.message, endpoint_id, spec.values(), images))
    return Existing((ExistingEndpoint(endpoint_id, body),), tuple(steps))


def ops(actions: list[Action]) -> dict[tuple[Op, Kind], int]:
    counts: dict[tuple[Op, Kind], int] = {}
    for a in actions:
        counts[(a.op, a.kind)] = counts.get((a.op, a.kind), 0) + 1
    return counts


LEAD = ("lead", ["firstname", "lastname"])
CONTACT = ("contact", ["firstname"])


@dataclass(frozen=True)
class Case:
    name: str
    before: SyncMapping | None  # None: nothing registered yet
    after: SyncMapping
    expected: dict[tuple[Op, Kind], int]
    url: str = URL
    secret: SecretStr = SECRET


CASES = [
    Case(
        "first run creates everything",
        None,
        _mapping(LEAD),
        {(Op.CREATE, Kind.ENDPOINT): 1, (Op.CREATE, Kind.STEP): 3, (Op.CREATE, Kind.IMAGE): 3},
    ),
    Case(
        "second run changes nothing",
        _mapping(LEAD, CONTACT),
        _mapping(LEAD, CONTACT),
        {(Op.UNCHANGED, Kind.ENDPOINT): 1, (Op.UNCHANGED, Kind.STEP): 6, (Op.UNCHANGED, Kind.IMAGE): 6},
    ),
    Case(
        "a column added updates the Update step's filter and every image",
        _mapping(LEAD),
        _mapping(("lead", ["firstname", "lastname", "jobtitle"])),
        {
            (Op.UNCHANGED, Kind.ENDPOINT): 1,
            (Op.UPDATE, Kind.STEP): 1,
            (Op.UNCHANGED, Kind.STEP): 2,
            (Op.UPDATE, Kind.IMAGE): 3,
        },
    ),
    Case(
        "the sync filter column joins the watched columns",
        _mapping(LEAD),
        _mapping(LEAD, sync_filter=True),
        {
            (Op.UNCHANGED, Kind.ENDPOINT): 1,
            (Op.UPDATE, Kind.STEP): 1,
            (Op.UNCHANGED, Kind.STEP): 2,
            (Op.UPDATE, Kind.IMAGE): 3,
        },
    ),
    Case(
        "an entity added gets its steps and images",
        _mapping(LEAD),
        _mapping(LEAD, CONTACT),
        {
            (Op.UNCHANGED, Kind.ENDPOINT): 1,
            (Op.UNCHANGED, Kind.STEP): 3,
            (Op.UNCHANGED, Kind.IMAGE): 3,
            (Op.CREATE, Kind.STEP): 3,
            (Op.CREATE, Kind.IMAGE): 3,
        },
    ),
    Case(
        "an entity removed loses its steps and images",
        _mapping(LEAD, CONTACT),
        _mapping(LEAD),
        {
            (Op.UNCHANGED, Kind.ENDPOINT): 1,
            (Op.UNCHANGED, Kind.STEP): 3,
            (Op.UNCHANGED, Kind.IMAGE): 3,
            (Op.DELETE, Kind.STEP): 3,
            (Op.DELETE, Kind.IMAGE): 3,
        },
    ),
    Case(
        "a new URL updates the endpoint only",
        _mapping(LEAD),
        _mapping(LEAD),
        {(Op.UPDATE, Kind.ENDPOINT): 1, (Op.UNCHANGED, Kind.STEP): 3, (Op.UNCHANGED, Kind.IMAGE): 3},
        url="https://other.example/api/dataverse/webhook",
    ),
    Case(
        "a rotated secret updates the endpoint only",
        _mapping(LEAD),
        _mapping(LEAD),
        {(Op.UPDATE, Kind.ENDPOINT): 1, (Op.UNCHANGED, Kind.STEP): 3, (Op.UNCHANGED, Kind.IMAGE): 3},
        secret=SecretStr("t" * 40),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan(case: Case) -> None:
    have = registered(_want(case.before)) if case.before is not None else Existing()
    actions = plan(_want(case.after, url=case.url, secret=case.secret), have)
    assert ops(actions) == case.expected


def test_deletes_come_last_images_before_steps() -> None:
    actions = plan(_want(_mapping(LEAD)), registered(_want(_mapping(LEAD, CONTACT))))
    kinds = [(a.op, a.kind) for a in actions]
    first_delete = next(i for i, (op, _) in enumerate(kinds) if op is Op.DELETE)
    assert all(op is Op.DELETE for op, _ in kinds[first_delete:])
    deleted = [k for op, k in kinds if op is Op.DELETE]
    assert deleted == sorted(deleted, key=[Kind.IMAGE, Kind.STEP, Kind.ENDPOINT].index)


def test_update_sends_only_what_changed_and_names_it() -> None:
    after = _mapping(("lead", ["firstname", "lastname", "jobtitle"]))
    actions = plan(_want(after), registered(_want(_mapping(LEAD))))
    step = next(a for a in actions if a.kind is Kind.STEP and a.op is Op.UPDATE)
    assert step.name == "d365-marketo-sync: Update of lead"
    assert step.changed == ("filteringattributes",)
    assert set(step.values) == {"filteringattributes"}
    assert set(str(step.values["filteringattributes"]).split(",")) == {"firstname", "lastname", "jobtitle"}


def test_column_order_and_case_do_not_count_as_a_change() -> None:
    want = _want(_mapping(LEAD))
    have = registered(want)
    shuffled = tuple(
        replace(
            s,
            values={
                **s.values,
                "filteringattributes": ",".join(reversed(str(s.values["filteringattributes"]).upper().split(","))),
            },
        )
        for s in have.steps
    )
    assert all(a.op is Op.UNCHANGED for a in plan(want, replace(have, steps=shuffled)))


def test_strays_are_removed_duplicates_other_endpoints_extra_images() -> None:
    want = _want(_mapping(LEAD))
    have = registered(want)
    update = next(s for s in have.steps if s.message == "Update")
    duplicate = replace(update, id="dup", images=())
    on_other = replace(update, id="other", endpoint_id="e2", images=())
    extra_image = ExistingImage("odd", {"entityalias": "Extra", "imagetype": 0, "attributes": "x"})
    with_extra = tuple(replace(s, images=(*s.images, extra_image)) if s.id == update.id else s for s in have.steps)
    second_endpoint = ExistingEndpoint("e2", {"name": ENDPOINT_NAME})
    have = Existing((*have.endpoints, second_endpoint), (*with_extra, duplicate, on_other))
    deleted = {(a.kind, a.id) for a in plan(want, have) if a.op is Op.DELETE}
    assert deleted == {(Kind.STEP, "dup"), (Kind.STEP, "other"), (Kind.IMAGE, "odd"), (Kind.ENDPOINT, "e2")}


def test_contact_watches_its_origin_lead() -> None:
    want = _want(_mapping(CONTACT))
    update = next(s for s in want.steps if s.message == "Update")
    assert update.filtering == {"firstname", "originatingleadid"}
    create = next(s for s in want.steps if s.message == "Create")
    assert create.filtering == frozenset()
    assert [(i.alias, i.image_type, i.message_property) for i in create.images] == [("PostImage", 1, "Id")]
    delete = next(s for s in want.steps if s.message == "Delete")
    assert [(i.alias, i.image_type, i.message_property) for i in delete.images] == [("PreImage", 0, "Target")]


def test_secret_never_shows_in_actions() -> None:
    secret = "very-secret-value-" + "x" * 30
    actions = plan(_want(_mapping(LEAD), secret=SecretStr(secret)), registered(_want(_mapping(LEAD))))
    endpoint = next(a for a in actions if a.kind is Kind.ENDPOINT)
    assert endpoint.changed == ("authvalue",)
    for action in actions:
        assert secret not in repr(action)
        assert secret not in action.describe()
    assert secret not in repr(_want(_mapping(LEAD), secret=SecretStr(secret)))


def test_teardown_removes_everything_found_in_order() -> None:
    have = registered(_want(_mapping(LEAD)))
    actions = teardown(have)
    assert [a.kind for a in actions] == [Kind.IMAGE] * 3 + [Kind.STEP] * 3 + [Kind.ENDPOINT]
    assert all(a.op is Op.DELETE for a in actions)


def test_opportunities_add_connection_steps_and_users_add_the_owner() -> None:
    opportunity = ("opportunity", ["name"])
    steps = {(s.entity, s.message): s for s in _want(_mapping(opportunity, LEAD)).steps}
    assert {m for e, m in steps if e == "connection"} == {"Create", "Update", "Delete"}
    assert steps[("connection", "Update")].filtering == {"record1id", "record2id", "record2roleid", "statecode"}
    assert steps[("opportunity", "Update")].filtering == {"name", "parentcontactid", "customerid"}
    assert "ownerid" not in steps[("lead", "Update")].filtering  # no sales persons: the owner is not followed
    with_users = {(s.entity, s.message): s for s in _want(_mapping(opportunity, LEAD, ("systemuser", ["title"]))).steps}
    assert "ownerid" in with_users[("lead", "Update")].filtering
    assert "ownerid" in with_users[("opportunity", "Update")].filtering
    assert "connection" not in {s.entity for s in _want(_mapping(LEAD)).steps}
