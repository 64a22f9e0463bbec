"""What the sync reads of each Dynamics entity, in the Web API's terms.

The reconcile and the catch-up timer read the same columns, so a record read by either can be decided the same
way: the mapping's own (:meth:`~shared.core.mapping.EntityMapping.columns`: the id, the mapped columns, a lookup
selected as ``_<column>_value``, and the sync filter column), and the lookups the sync follows besides the mapped
fields (:func:`followed_lookups`): a contact's origin lead, an opportunity's primary contact and Potential Customer
(its roles), and the owner of a lead, contact, account or opportunity (its Marketo sales person). The same lookups
are in the plug-in steps' filtering attributes, so a change of one of them alone wakes the sync.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.core.mapping import SYNC_FILTER_COLUMN, EntityMapping, SyncMapping
from shared.core.values import Canonical
from shared.dataverse.records import Record

OWNER_COLUMN = "ownerid"
SALES_OWNER_ENTITIES = frozenset({"lead", "contact", "account", "opportunity"})
"""Entities whose Marketo record carries ``externalSalesPersonId``, the sales person of the record's owner."""
SALES_PERSON_ENTITY = "systemuser"
SALES_OWNER_KEY = "_sales_owner"
"""Kept in the baseline: the owner (a systemuser id, or None) whose sales person the Marketo record carries."""
PRIMARY_CONTACT_COLUMN = "parentcontactid"
CUSTOMER_COLUMN = "customerid"  # the Potential Customer: an account or a contact


def followed_lookups(entity: str, *, sales_owners: bool = True) -> list[str]:
    """Lookup columns (logical names) the sync follows on ``entity`` besides its mapped fields (the owner only
    while users sync as sales persons: :func:`sales_owners_synced`)."""
    columns: list[str] = []
    if entity == "contact":
        columns.append("originatingleadid")  # a contact qualified from a lead takes the lead's person
    if entity == "opportunity":
        columns += [PRIMARY_CONTACT_COLUMN, CUSTOMER_COLUMN]  # contacts that become Marketo opportunity roles
    if sales_owners and entity in SALES_OWNER_ENTITIES:
        columns.append(OWNER_COLUMN)  # its sales person in Marketo
    return columns


def dataverse_select(mapping: EntityMapping) -> list[str]:
    """``$select`` names for the entity's records."""
    names = mapping.columns()
    names += [f"_{column}_value" for column in followed_lookups(mapping.entity)]
    if mapping.entity == "lead":
        names.append("statecode")  # a qualified lead has handed its person over to its contact
    if mapping.wants_modified_times:
        names.append("modifiedon")  # a "latest" field's collisions go to the side modified last
    return list(dict.fromkeys(names))


LEAD_QUALIFIED = 1  # lead statecode: 0 Open, 1 Qualified, 2 Disqualified


def qualified_lead(record: Record, mapping: EntityMapping) -> bool:
    """A lead closed as qualified: its person follows the contact made from it, so the lead syncs no more (a
    Marketo change reaching it meanwhile is carried to the contact when the contact takes the person over)."""
    return mapping.entity == "lead" and record.values.get("statecode") == LEAD_QUALIFIED


def sync_filter_flag(record: Record | None, mapping: EntityMapping) -> bool | None:
    """The record's sync filter column (None: the entity has none, or the record leaves it empty)."""
    if record is None or not mapping.sync_filter:
        return None
    value = record.values.get(SYNC_FILTER_COLUMN)
    return value if isinstance(value, bool) else None


def lookup_to(record: Record | None, column: str, table: str, *, polymorphic: bool = False) -> str | None:
    """The id a lookup column points at, when it points at a row of ``table``. A polymorphic lookup (Customer,
    Owner) must name its table through the ``lookuplogicalname`` annotation; a single-table one may arrive
    without it."""
    ref = record.values.get(column) if record is not None else None
    ref_id = getattr(ref, "id", None)
    if not ref_id:
        return None
    kind = getattr(ref, "logical_name", "") or ""
    return str(ref_id).lower() if kind == table or (kind == "" and not polymorphic) else None


def primary_contact(record: Record | None) -> str | None:
    """An opportunity's primary contact (``parentcontactid``)."""
    return lookup_to(record, PRIMARY_CONTACT_COLUMN, "contact")


def customer_contact(record: Record | None) -> str | None:
    """An opportunity's Potential Customer (``customerid``) when it is a contact (an account is no role)."""
    return lookup_to(record, CUSTOMER_COLUMN, "contact", polymorphic=True)


def sales_owners_synced(mapping: SyncMapping) -> bool:
    """Records carry their owner's sales person only while Dynamics users sync as Marketo sales persons."""
    return SALES_PERSON_ENTITY in mapping.by_entity


def sales_owner(record: Record | None, mapping: EntityMapping) -> str | None:
    """The owner whose Marketo sales person the record carries: ``_ownerid_value`` when it is a user. A team (or
    no owner) has no sales person: None, which clears ``externalSalesPersonId`` in Marketo."""
    if mapping.entity not in SALES_OWNER_ENTITIES:
        return None
    return lookup_to(record, OWNER_COLUMN, SALES_PERSON_ENTITY, polymorphic=True)  # a team: None


PRIMARY_KEY = "_role_source:primary"
CUSTOMER_KEY = "_role_source:customer"
"""Kept in an opportunity's baseline: the primary contact and the customer contact its roles were sent for."""


def followed_values(record: Record | None, mapping: EntityMapping, *, sales_owners: bool) -> dict[str, Canonical]:
    """What the record's followed lookups put in its baseline once synced, so the catch-up can tell a change of
    one of them alone from an echo (as it does with mapped values): its sales owner, and an opportunity's role
    contacts. (Its stakeholders are rows of another table: the connection catch-up follows them.)"""
    values: dict[str, Canonical] = {}
    if sales_owners and mapping.entity in SALES_OWNER_ENTITIES:
        values[SALES_OWNER_KEY] = sales_owner(record, mapping)
    if mapping.entity == "opportunity":
        values[PRIMARY_KEY] = primary_contact(record)
        values[CUSTOMER_KEY] = customer_contact(record)
    return values


def owner_unchanged(baseline: Mapping[str, Canonical], owner: Canonical) -> bool:
    """The baseline says Marketo already carries this sales owner."""
    return SALES_OWNER_KEY in baseline and baseline[SALES_OWNER_KEY] == owner
