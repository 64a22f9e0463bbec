"""Credentials in request URLs are masked in log lines, whoever logged them."""

from __future__ import annotations

import logging

import pytest

from shared.http.redaction import guard, redact


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("GET https://m/identity/oauth/token?grant_type=client_credentials&client_id=a&client_secret=s3cr3t-XYZ",
         "GET https://m/identity/oauth/token?grant_type=client_credentials&client_id=a&client_secret=***"),
        ('HTTP Request: GET https://m/rest/v1/leads.json?access_token=tok.en:1&fields=email "HTTP/1.1 200 OK"',
         'HTTP Request: GET https://m/rest/v1/leads.json?access_token=***&fields=email "HTTP/1.1 200 OK"'),
        ("POST https://app/api/errors/retry?code=funckey", "POST https://app/api/errors/retry?code=***"),
        ("GET https://m/rest/v1/leads.json?fields=email,client_secret_note", "GET https://m/rest/v1/leads.json?fields=email,client_secret_note"),
    ],
)  # fmt: skip
def test_credential_query_parameters_are_masked_and_nothing_else(line: str, masked: str) -> None:
    assert redact(line) == masked


def test_a_guarded_logger_never_writes_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    guard("tests.redaction.probe")
    guard("tests.redaction.probe")  # attached once however often it is asked
    logger = logging.getLogger("tests.redaction.probe")
    assert len(logger.filters) == 1
    with caplog.at_level(logging.INFO, logger="tests.redaction.probe"):
        logger.info('HTTP Request: %s %s "%s"', "GET", "https://m/identity/oauth/token?client_secret=hunter2-42", "200")
    assert "hunter2-42" not in caplog.text
    assert "client_secret=***" in caplog.text
