"""What the sync reads of each Dynamics entity, in the Web API's terms.

The reconcile and the catch-up timer read the same columns, so a record read by either can be decided the same
way: the mapped ones (a lookup selected as ``_<column>_value``, the Web API's rule), the sync filter column, and
the lookups the person and opportunity rules follow.
"""

from __future__ import annotations

from shared.core.mapping import SYNC_FILTER_COLUMN, EntityMapping, FieldType
from shared.dataverse.records import Record


def dataverse_select(mapping: EntityMapping) -> list[str]:
    """``$select`` names for the entity's records."""
    names = [mapping.id_column]
    for f in mapping.live_fields:
        names.append(f"_{f.dynamics}_value" if f.type is FieldType.LOOKUP else f.dynamics)
    if mapping.sync_filter:
        names.append(SYNC_FILTER_COLUMN)
    if mapping.entity == "contact":
        names.append("_originatingleadid_value")  # a contact qualified from a lead takes the lead's person
    if mapping.entity == "opportunity":
        names.append("_parentcontactid_value")  # its primary contact becomes a Marketo opportunity role
    return list(dict.fromkeys(names))


def sync_filter_flag(record: Record | None, mapping: EntityMapping) -> bool | None:
    """The record's sync filter column (None: the entity has none, or the record leaves it empty)."""
    if record is None or not mapping.sync_filter:
        return None
    value = record.values.get(SYNC_FILTER_COLUMN)
    return value if isinstance(value, bool) else None
