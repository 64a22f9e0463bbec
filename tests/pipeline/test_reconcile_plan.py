"""Planning a batch is a value: which records it reconciles, what waits for a pause, what is left alone and why."""

from __future__ import annotations

from shared.core.mapping import SyncMapping, load_mapping
from shared.pipeline.notification import Kind, Notification, Source
from shared.pipeline.reconcile.batch import plan_batch
from shared.services import ROOT
from shared.store.model import Link, PauseState

MAPPING: SyncMapping = load_mapping((ROOT / "config" / "mapping.json").read_text())
LEAD = "7d1a0f52-9a43-4e1c-9d2b-000000000001"
ACCOUNT = "7d1a0f52-9a43-4e1c-9d2b-000000000002"


def _dataverse(entity: str, rid: str, **extra: object) -> Notification:
    return Notification(source=Source.DATAVERSE_WEBHOOK, entity=entity, dynamics_id=rid, **extra)


def test_notifications_for_one_record_merge_into_one_target_that_remembers_each() -> None:
    upper = _dataverse("lead", LEAD.upper())
    deleted = _dataverse("lead", LEAD, kind=Kind.DELETE)
    from_marketo = Notification(source=Source.MARKETO_WEBHOOK, marketo_id="42")
    persons = {"42": Link("lead", LEAD, "42")}

    plan = plan_batch([upper, deleted, from_marketo], MAPPING, PauseState(), persons)

    ((entity, (target,)),) = plan.targets.items()
    assert (entity, target.dynamics_id, target.notes) == ("lead", LEAD, [upper, deleted, from_marketo])
    assert target.deleted
    assert target.trigger.side.value == "dynamics"  # any Dynamics notice makes it a Dynamics-side change


def test_paused_entities_wait_and_what_cannot_be_acted_on_is_ignored_with_the_reason() -> None:
    account = _dataverse("account", ACCOUNT)
    unknown = _dataverse("invoice", LEAD)
    stranger = Notification(source=Source.MARKETO_WEBHOOK, marketo_id="7")
    lead = _dataverse("lead", LEAD)

    plan = plan_batch([account, unknown, stranger, lead], MAPPING, PauseState(entities=frozenset({"account"})), {})

    assert list(plan.targets) == ["lead"]
    assert plan.deferred == (account,)
    assert [(n, why.split(":")[0]) for n, why in plan.ignored] == [
        (unknown, "entity 'invoice' is no longer in the mapping"),
        (stranger, "Marketo person not linked to Dynamics"),
    ]
