"""What the sync reads of each Dynamics entity, in the Web API's terms.

The reconcile and the catch-up timer read the same columns, so a record read by either can be decided the same
way: the mapping's own (:meth:`~shared.core.mapping.EntityMapping.columns`: the id, the mapped columns, a lookup
selected as ``_<column>_value``, and the sync filter column), and the lookups the person and opportunity rules
follow.
"""

from __future__ import annotations

from shared.core.mapping import SYNC_FILTER_COLUMN, EntityMapping
from shared.dataverse.records import Record


def dataverse_select(mapping: EntityMapping) -> list[str]:
    """``$select`` names for the entity's records."""
    names = mapping.columns()
    if mapping.entity == "contact":
        names.append("_originatingleadid_value")  # a contact qualified from a lead takes the lead's person
    if mapping.entity == "opportunity":
        names.append("_parentcontactid_value")  # its primary contact becomes a Marketo opportunity role
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
