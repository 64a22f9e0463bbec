"""Dataverse's error responses: ``{"error": {"code": "0x...", "message": "..."}}`` with the real codes and texts.

Every refusal the simulator makes is one of these, so a client sees what it would see from a real organisation.
Sources (Power Apps developer docs unless noted): ``compose-http-requests-handle-errors.md`` (body shape),
``perform-conditional-operations-using-web-api.md`` (412 texts), ``execute-batch-operations-using-web-api.md``
(0x80044331 text, with its two spaces), ``api-limits.md`` (429 codes), ``reference/web-service-error-codes``.
Texts marked "observed" are the ones real organisations answer with (seen in public issue threads), where the
docs give no example.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import httpx

JSON = "application/json; odata.metadata=minimal"
PAYLOAD_HELP = "https://go.microsoft.com/fwlink/?linkid=2195293"


class ApiError(Exception):
    """Raised anywhere in the simulator; the handler turns it into the Dataverse-shaped response."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> httpx.Response:
        return httpx.Response(
            self.status,
            headers={"Content-Type": JSON, "OData-Version": "4.0", **self.headers},
            json={"error": {"code": self.code, "message": self.message}},
        )


def not_found(entity: str, record_id: str) -> ApiError:
    """0x80040217 ObjectDoesNotExist, as the conditional-operations page shows it."""
    return ApiError(404, "0x80040217", f"{entity} With Id = {record_id} Does Not Exist")


def segment_not_found(segment: str) -> ApiError:
    return ApiError(404, "0x80060888", f"Resource not found for the segment '{segment}'.")


def unknown_property(entity: str, name: str) -> ApiError:
    """A ``$select``/``$filter``/``$orderby`` naming a property the entity type does not have."""
    return ApiError(
        400, "0x80060888", f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{entity}'."
    )


def query_syntax(detail: str) -> ApiError:
    return ApiError(400, "0x80060888", f"Syntax error: {detail}")


def payload_error(entity_set: str, inner: str) -> ApiError:
    """0x80048d19: the OData reader refused the body (unknown property, wrong JSON type). Observed text."""
    return ApiError(
        400,
        "0x80048d19",
        f"Error identified in Payload provided by the user for Entity :'{entity_set}', For more information on "
        f"this error please follow this help link {PAYLOAD_HELP}  ---->  InnerException : "
        f"Microsoft.OData.ODataException: {inner}",
    )


def undeclared_property(entity_set: str, entity: str, name: str) -> ApiError:
    return payload_error(
        entity_set,
        f"The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM.{entity}'. Make sure to only use "
        "property names that are defined by the type or mark the type as open type.",
    )


def annotation_only_property(entity_set: str, name: str) -> ApiError:
    return payload_error(
        entity_set,
        f"An undeclared property '{name}' which only has property annotations in the payload but no property value "
        "was found in the payload. In OData, only declared navigation properties and declared named streams can be "
        "represented as properties without values.",
    )


def cannot_convert(entity_set: str, value: object, edm_type: str) -> ApiError:
    return payload_error(entity_set, f"Cannot convert the literal '{value}' to the expected type '{edm_type}'.")


def too_long(entity: str, column: str, max_length: int) -> ApiError:
    """0x80044331, word for word from the batch page's example (two spaces after "occurred.")."""
    return ApiError(
        400,
        "0x80044331",
        f"A validation error occurred.  The length of the '{column}' attribute of the '{entity}' entity exceeded "
        f"the maximum allowed length of '{max_length}'.",
    )


def outside_range(entity: str, column: str, value: object, accepted: Iterable[int]) -> ApiError:
    """0x8004431a for a choice value the column does not have (observed text, with the accepted values)."""
    return ApiError(
        400,
        "0x8004431a",
        f"A validation error occurred. The value {value} of '{column}' on record of type '{entity}' is outside the "
        f"valid range. Accepted Values: {','.join(str(v) for v in accepted)}",
    )


def required(entity: str, column: str) -> ApiError:
    """A SystemRequired column left empty: the only requirement level the Web API enforces."""
    return ApiError(400, "0x80040203", f"Attribute '{column}' of entity '{entity}' is required and cannot be null.")


def version_mismatch() -> ApiError:
    return ApiError(
        412, "0x80060882", "The version of the existing record doesn't match the RowVersion property provided."
    )


def already_exists() -> ApiError:
    """0x80040237 DuplicateRecord: ``If-None-Match: *`` on an existing row, or a create with a used id."""
    return ApiError(412, "0x80040237", "A record with matching key values already exists.")


def not_allowed(method: str, what: str) -> ApiError:
    return ApiError(405, "0x80060888", f"The HTTP method '{method}' is not allowed for {what}.")


def not_implemented(feature: str) -> ApiError:
    """Something real Dataverse does that this simulator does not: say so instead of answering wrongly."""
    return ApiError(501, "0x80040216", f"The simulated organisation does not implement {feature}.")
