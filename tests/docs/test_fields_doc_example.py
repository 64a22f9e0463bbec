"""docs/fields-and-quick-sync.md's add-a-field examples are accepted by the product on the simulated tenants."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from local.stack import IN_PROCESS_HOST, LocalStack

DOC = Path(__file__).resolve().parents[2] / "docs" / "fields-and-quick-sync.md"


def _examples() -> list[tuple[str, object]]:
    """(path, body) of the JSON example and of the curl command, as the document writes them."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"```json\nPOST /api/(\S+)\n(.*?)```", text, re.S)
    assert block is not None
    curl = re.search(r"-d '(\{.*?\})' \\\n\s+\$API/(\S+)", text)
    assert curl is not None
    return [(block.group(1), json.loads(block.group(2))), (curl.group(2), json.loads(curl.group(1)))]


@pytest.mark.parametrize("which", [0, 1], ids=["json-example", "curl-command"])
def test_the_documented_field_is_added_and_its_quick_sync_queued(stack: LocalStack, which: int) -> None:
    examples = _examples()
    assert examples[0][0] == examples[1][0]  # both add to the same entity
    path, body = examples[which]
    answer = stack.host.handle_http(httpx.Request("POST", f"{IN_PROCESS_HOST}/api/{path}", json=body))
    assert answer.status_code == 202, answer.text
    assert "middlename" in answer.text
