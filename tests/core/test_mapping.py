"""Loading a mapping: good ones load, bad ones fail with entity, field and problem named."""

from __future__ import annotations

from typing import Any

import pytest

from shared.core.entities import Direction
from shared.core.mapping import FieldState, FieldType, MappingError, SyncMapping, load_mapping


def _doc(*entities: dict[str, Any]) -> dict[str, Any]:
    return {"entities": list(entities)}


def _lead(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"entity": "lead", "fields": list(fields), **extra}


EMAIL = {"dynamics": "emailaddress1", "marketo": "email", "type": "text", "max_length": 255}


def test_the_shipped_mapping_loads_with_every_entity_and_every_field_type(sample_mapping: SyncMapping) -> None:
    assert {e.entity for e in sample_mapping.entities} == {
        "lead",
        "contact",
        "account",
        "systemuser",
        "opportunity",
        "team",
        "new_project",
    }
    used = {f.type for e in sample_mapping.entities for f in e.fields}
    assert used == set(FieldType)


def test_entity_lookup_gives_direction_entity_set_and_columns(sample_mapping: SyncMapping) -> None:
    lead = sample_mapping.get("lead")
    assert lead.direction is Direction.BOTH
    assert lead.web_api_set == "leads"
    assert lead.columns()[0] == "leadid"
    assert lead.columns()[-1] == "new_synctomkto"
    assert "_ownerid_value" in lead.columns()  # a lookup is selected by the Web API's name for it
    assert "ownerid" not in lead.columns()
    project = sample_mapping.get("new_project")
    assert (project.web_api_set, project.id_column, project.custom_object) == (
        "new_projects",
        "new_projectid",
        "project_c",
    )


def test_an_unmapped_entity_is_a_clear_error(sample_mapping: SyncMapping) -> None:
    with pytest.raises(MappingError, match="entity 'campaign': not in the sync mapping"):
        sample_mapping.get("campaign")


def test_broken_fields_are_kept_but_not_read() -> None:
    mapping = load_mapping(
        _doc(_lead(EMAIL, {"dynamics": "jobtitle", "marketo": "title", "type": "text", "state": "broken"}))
    ).get("lead")
    assert [f.dynamics for f in mapping.live_fields] == ["emailaddress1"]
    assert "jobtitle" not in mapping.columns()
    assert mapping.by_column["jobtitle"].state is FieldState.BROKEN


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param(
            _doc(_lead({"dynamics": "emailaddress1", "marketo": "email", "type": "txt"})),
            "entity 'lead', field 'emailaddress1', type: Input should be",
            id="unknown-type",
        ),
        pytest.param(
            _doc(_lead({"dynamics": "leadqualitycode", "marketo": "leadRating", "type": "choice"})),
            "entity 'lead', field 'leadqualitycode': choice field needs its option metadata",
            id="choice-without-options",
        ),
        pytest.param(
            _doc(
                _lead(
                    {
                        "dynamics": "x_code",
                        "marketo": "code",
                        "type": "choice",
                        "options": [{"value": 1, "label": "A"}, {"value": 1, "label": "B"}],
                    }
                )
            ),
            "field 'x_code': option values must be unique",
            id="duplicate-option-values",
        ),
        pytest.param(
            _doc(_lead(EMAIL, {**EMAIL, "marketo": "email2"})),
            "entity 'lead': field 'emailaddress1': mapped more than once",
            id="column-mapped-twice",
        ),
        pytest.param(
            _doc(_lead(EMAIL, {"dynamics": "emailaddress2", "marketo": "Email", "type": "text"})),
            "Marketo field 'Email' is already mapped",
            id="marketo-field-mapped-twice",
        ),
        pytest.param(
            _doc(_lead({"dynamics": "EmailAddress1", "marketo": "email", "type": "text"})),
            "entity 'lead', field 'EmailAddress1', dynamics: String should match pattern",
            id="column-not-a-logical-name",
        ),
        pytest.param(
            _doc(_lead({"dynamics": "numberofemployees", "marketo": "n", "type": "integer", "max_length": 5})),
            "field 'numberofemployees': max_length is only for text fields, not integer",
            id="max-length-on-integer",
        ),
        pytest.param(
            _doc({"entity": "new_project", "custom_object": "project_c", "fields": []}),
            "entity 'new_project': custom entity: entity_set",
            id="custom-entity-without-entity-set",
        ),
        pytest.param(
            _doc({"entity": "team", "fields": []}),
            "entity 'team': syncs to a Marketo custom object: custom_object",
            id="team-without-custom-object",
        ),
        pytest.param(
            _doc(_lead({"dynamics": "new_synctomkto", "marketo": "syncToMarketo", "type": "boolean"})),
            "the sync filter column controls the sync",
            id="sync-filter-mapped",
        ),
        pytest.param(_doc(_lead(EMAIL), _lead(EMAIL)), "entity 'lead' is mapped more than once", id="entity-twice"),
        pytest.param(
            _doc(_lead({**EMAIL, "colour": "blue"})),
            "entity 'lead', field 'emailaddress1', colour: Extra inputs are not permitted",
            id="unknown-key",
        ),
    ],
)
def test_an_invalid_mapping_names_entity_field_and_problem(doc: dict[str, Any], expected: str) -> None:
    with pytest.raises(MappingError) as caught:
        load_mapping(doc)
    assert expected in str(caught.value)


def test_mapping_text_that_is_not_json_is_a_clear_error() -> None:
    with pytest.raises(MappingError, match=r"not valid JSON: .* line 1"):
        load_mapping('{"entities": [')
