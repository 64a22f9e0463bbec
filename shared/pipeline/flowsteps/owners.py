"""A flow step's owner, found in Dynamics: an enabled user (``systemuser``) by id, e-mail, user name, or the
Marketo person's sales owner.

The sales owner is the person's ``externalSalesPersonId``: this sync keeps Dynamics users as Marketo sales persons
keyed by their ``systemuserid``, so a person whose sales owner is one of them names the Dynamics user directly.
Every refusal is a :class:`NotPossible` with its own code, recorded as the run's sync error.
"""

from __future__ import annotations

import uuid

from shared.dataverse.client import DataverseClient
from shared.dataverse.session import odata_literal
from shared.errors import NotPossible
from shared.marketo.client import MarketoClient
from shared.pipeline.flowsteps.request import Owner

SALES_OWNER_FIELD = "externalSalesPersonId"
USER_COLUMNS = ["isdisabled", "internalemailaddress"]


def owner_bind(user_id: str) -> dict[str, str]:
    """The write that makes a user the owner of a lead, contact or task."""
    return {"ownerid@odata.bind": f"/systemusers({user_id})"}


def resolve_owner(owner: Owner, *, dataverse: DataverseClient, marketo: MarketoClient, person_id: str) -> str:
    """The owner's ``systemuserid``; NotPossible when no enabled Dynamics user fits."""
    if owner.salesOwner:
        return _by_id(dataverse, _sales_owner(marketo, person_id), "the person's sales owner")
    if owner.id is not None:
        return _by_id(dataverse, owner.id.strip("{}").lower(), "the owner id")
    column, what = ("internalemailaddress", "e-mail") if owner.email is not None else ("domainname", "user name")
    value = owner.email if owner.email is not None else owner.username
    assert value is not None
    flt = f"{column} eq {odata_literal(value.strip())}"
    found = list(dataverse.query("systemuser", select=USER_COLUMNS, filter=flt, top=2))
    if not found:
        raise NotPossible(f"no Dynamics user has the owner's {what}", code="owner-not-found")
    if len(found) > 1:
        raise NotPossible(f"more than one Dynamics user has the owner's {what}: name it by id", code="owner-ambiguous")
    return _enabled(found[0].id.lower(), found[0].values.get("isdisabled"))


def _sales_owner(marketo: MarketoClient, person_id: str) -> str:
    leads = marketo.get_leads("id", [person_id], fields=["id", SALES_OWNER_FIELD])
    value = str(leads[0].get(SALES_OWNER_FIELD) or "").strip() if leads else ""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotPossible(
            "the Marketo person has no sales owner that is a Dynamics user (its externalSalesPersonId is empty or "
            "not a Dynamics user id)",
            code="no-sales-owner",
        ) from None


def _by_id(dataverse: DataverseClient, user_id: str, what: str) -> str:
    found = dataverse.read_by_ids("systemuser", [user_id], USER_COLUMNS).get(user_id)
    if found is None:
        raise NotPossible(f"{what} is not a Dynamics user", code="owner-not-found")
    return _enabled(user_id, found.values.get("isdisabled"))


def _enabled(user_id: str, disabled: object) -> str:
    if disabled is True:
        raise NotPossible("the owner is a disabled Dynamics user", code="owner-disabled")
    return user_id
