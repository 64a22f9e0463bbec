"""How people recognise a record: its label (name or e-mail) and a link to it in each system's own UI.

Pure: the addresses are built from the configured bases (``DATAVERSE_URL``, ``MARKETO_UI_URL``), the label from
values the sync read anyway (never an extra call).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from shared.core.pending import PERSON

PERSON_ENTITIES = frozenset({"lead", "contact", PERSON})
"""What a Marketo person is linked to (``person``: a Marketo person known by its id only)."""
_NAME_COLUMNS = ("fullname", "name", "new_name")
_EMAIL_COLUMNS = ("emailaddress1", "internalemailaddress", "email")


@dataclass(frozen=True, slots=True)
class RecordLinks:
    """The bases of both systems' record pages."""

    dataverse_url: str
    marketo_ui_url: str = "https://app.marketo.com"

    def dynamics(self, entity: str, record_id: str) -> str | None:
        """``{DATAVERSE_URL}/main.aspx?etn=<entity>&id=<id>&pagetype=entityrecord``; None for what is no record."""
        if not record_id or not entity or entity in ("-", PERSON):
            return None
        query = urlencode({"etn": entity, "id": record_id, "pagetype": "entityrecord"})
        return f"{self.dataverse_url.rstrip('/')}/main.aspx?{query}"

    def marketo(self, entity: str, marketo_id: str | None) -> str | None:
        """A person's page in Marketo's lead database; None for other objects or an unknown id."""
        if not marketo_id or entity not in PERSON_ENTITIES:
            return None
        return f"{self.marketo_ui_url.rstrip('/')}/leadDatabase/loadLeadDetail?leadId={quote(str(marketo_id))}"


def record_label(values: Mapping[str, object]) -> str:
    """A record's name and e-mail as far as ``values`` (Dynamics columns or Marketo fields) hold them:
    "Ada Lovelace <ada@example.com>", "Contoso", "ada@example.com", or "" when none is there."""
    name = next((str(values[c]).strip() for c in _NAME_COLUMNS if _text(values.get(c))), "")
    if not name:
        parts = [values.get(c) for c in ("firstname", "lastname", "firstName", "lastName")]
        name = " ".join(str(p).strip() for p in parts if _text(p))
    email = next((str(values[c]).strip() for c in _EMAIL_COLUMNS if _text(values.get(c))), "")
    if name and email:
        return f"{name} <{email}>"
    return name or email


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
