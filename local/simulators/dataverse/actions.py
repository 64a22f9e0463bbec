"""Functions and actions: ``WhoAmI``, ``RetrieveVersion``, ``RetrievePrincipalAttributePrivileges``, ``QualifyLead``.

Shapes from the Web API reference (``WhoAmIResponse``, ``RetrieveVersionResponse``, ``AttributePrivilege``) and
"Use Web API functions" / "Use Web API actions": a function is called with ``GET`` (its parentheses optional when
it takes no parameters), an action with ``POST``; a bound operation is addressed as
``<entityset>(<id>)/Microsoft.Dynamics.CRM.<Name>``.
"""

from __future__ import annotations

from typing import Any

import httpx

from local.simulators.dataverse import errors
from local.simulators.dataverse.rows import Caller, Organisation
from local.simulators.dataverse.wire import json_response, read_body, service_root

VERSION = "9.2.24112.00206"


def unbound(
    org: Organisation,
    request: httpx.Request,
    caller: Caller,
    name: str,
    *,
    business_unit_id: str,
    organization_id: str,
) -> httpx.Response | None:
    """An unbound function's response, or None when ``name`` is not one."""
    base = service_root(request)
    if name == "WhoAmI":
        if request.method != "GET":
            raise errors.not_allowed(request.method, "the function WhoAmI")
        return json_response(
            200,
            {
                "@odata.context": f"{base}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                "BusinessUnitId": business_unit_id,
                "UserId": caller.user_id,
                "OrganizationId": organization_id,
            },
        )
    if name == "RetrieveVersion":
        return json_response(
            200,
            {"@odata.context": f"{base}$metadata#Microsoft.Dynamics.CRM.RetrieveVersionResponse", "Version": VERSION},
        )
    return None


def principal_attribute_privileges(org: Organisation, request: httpx.Request, user_id: str) -> httpx.Response:
    systemuser = org.tables["systemuser"]
    if org.row(systemuser, user_id) is None:
        raise errors.not_found("systemuser", user_id)
    privileges = [
        {
            "AttributeId": attribute_id,
            "CanCreate": 4 if create else 0,
            "CanRead": 4 if read else 0,
            "CanReadUnMasked": 4 if read else 0,
            "CanUpdate": 4 if update else 0,
        }
        for attribute_id, (read, update, create) in org.grants.get(user_id, {}).items()
    ]
    context = f"{service_root(request)}$metadata#Microsoft.Dynamics.CRM.RetrievePrincipalAttributePrivilegesResponse"
    return json_response(200, {"@odata.context": context, "AttributePrivileges": privileges})


def qualify_lead(org: Organisation, request: httpx.Request, caller: Caller, lead_id: str) -> httpx.Response:
    """QualifyLead: optionally create account, contact, opportunity from the lead, then close it as qualified."""
    body = read_body(request, "leads")
    leads = org.tables["lead"]
    lead = org.row(leads, lead_id)
    if lead is None:
        raise errors.not_found("lead", lead_id)
    if lead.get("statecode") == 1:
        raise errors.ApiError(400, "0x80040225", "The lead is already closed (qualified).")
    created: list[dict[str, Any]] = []
    accounts, contacts = org.tables["account"], org.tables["contact"]
    # The platform writes the links back to the lead itself (originatingleadid is read-only to callers).
    origin = {"_originatingleadid_value": lead_id}
    account_id = None
    if body.get("CreateAccount") and lead.get("companyname"):
        values: dict[str, Any] = {"name": lead["companyname"]}
        if "originatingleadid" in accounts.columns:
            values |= origin
        account_id = org.create(accounts, values, caller, web_api=False)
        created.append({"@odata.type": "#Microsoft.Dynamics.CRM.account", "accountid": account_id})
    contact_id = None
    if body.get("CreateContact"):
        values = {
            k: lead[k]
            for k in ("firstname", "lastname", "emailaddress1", "jobtitle", "telephone1")
            if lead.get(k) and k in contacts.columns
        }
        values |= origin
        if account_id:
            values["_parentcustomerid_value"] = account_id
        contact_id = org.create(contacts, values, caller, web_api=False)
        created.append({"@odata.type": "#Microsoft.Dynamics.CRM.contact", "contactid": contact_id})
    if body.get("CreateOpportunity"):
        opportunities = org.tables["opportunity"]
        values = {"name": lead.get("subject") or lead.get("fullname") or "Opportunity", **origin}
        if account_id:
            values["_parentaccountid_value"] = account_id
        if contact_id:
            values["_parentcontactid_value"] = contact_id
        opportunity_id = org.create(opportunities, values, caller, web_api=False)
        created.append({"@odata.type": "#Microsoft.Dynamics.CRM.opportunity", "opportunityid": opportunity_id})
    org.update(leads, lead_id, {"statecode": 1, "statuscode": int(body.get("Status", 3))}, caller, "*")
    return json_response(
        200, {"@odata.context": f"{service_root(request)}$metadata#Collection(crmbaseentity)", "value": created}
    )
