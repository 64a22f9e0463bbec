"""Reconcile decisions per second on one core, for a realistic lead: 30 mapped fields of mixed types.

The record is in sync except for three fields changed in Dynamics, one in Marketo and one collision, the shape
of an ordinary update. Two figures: the decision alone (canonical values in, decision out), and the decision
with both sides' raw values read into canonical form first, as the pipeline does.

    python -m bench.reconcile [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.core.mapping import EntityMapping, load_mapping
from shared.core.policy import RecordState, decide
from shared.core.values import read_dynamics_record, read_marketo_record

FLOOR = 50_000  # decisions per second per core (issue #2)
MAPPING = Path(__file__).resolve().parent.parent / "config" / "mapping.json"


def realistic_lead() -> tuple[EntityMapping, dict[str, Any], dict[str, Any]]:
    """A lead as the Dataverse Web API returns it, and the same person as Marketo returns it."""
    mapping = load_mapping(MAPPING.read_text()).get("lead")
    dynamics: dict[str, Any] = {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "emailaddress1": "ada@example.com",
        "companyname": "Analytical Engines Ltd",
        "jobtitle": "Head of Computing",
        "telephone1": "+44 20 7946 0000",
        "mobilephone": "+44 7700 900000",
        "address1_line1": "12 St James's Square",
        "address1_city": "London",
        "address1_stateorprovince": "Greater London",
        "address1_postalcode": "SW1Y 4JH",
        "address1_country": "United Kingdom",
        "websiteurl": "https://engines.example.com",
        "description": "Met at the Difference Engine demo; interested in automation.",
        "numberofemployees": 240,
        "revenue": 2154000.5,
        "budgetamount": 50000,
        "exchangerate": 1.0,
        "new_engagementscore": 87.25,
        "new_externalref": 9007199254740993,
        "donotemail": False,
        "donotphone": True,
        "estimatedclosedate": "2026-12-15",
        "new_lastwebinar": "2026-11-20T16:30:00Z",
        "leadqualitycode": 1,
        "leadsourcecode": 8,
        "industrycode": 7,
        "preferredcontactmethodcode": 2,
        "new_interests": "100000001,100000002",
        "ownerid": "5f4e5d3c-2b1a-4c9d-8e7f-6a5b4c3d2e1f",
    }
    marketo: dict[str, Any] = {
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": "ada@example.com",
        "company": "Analytical Engines Ltd",
        "title": "Head of Computing",
        "phone": "+44 20 7946 0000",
        "mobilePhone": "+44 7700 900000",
        "address": "12 St James's Square",
        "city": "London",
        "state": "Greater London",
        "postalCode": "SW1Y 4JH",
        "country": "United Kingdom",
        "website": "https://engines.example.com",
        "leadDescription": "Met at the Difference Engine demo; interested in automation.",
        "numberOfEmployees": 240,
        "annualRevenue": 2154000.5,
        "budgetAmount": 50000.0,
        "exchangeRate": 1.0,
        "engagementScore": 87.25,
        "externalRef": 9007199254740993,
        "unsubscribed": False,
        "doNotCall": True,
        "estimatedCloseDate": "2026-12-15",
        "lastWebinarAttended": "2026-11-20T16:30:00Z",
        "leadRating": "Hot",
        "leadSource": "Web",
        "industry": "Consulting",
        "preferredContactMethod": "Email",
        "productInterests": "Automation;Email",
        "dynamicsOwnerId": "5f4e5d3c-2b1a-4c9d-8e7f-6a5b4c3d2e1f",
    }
    return mapping, dynamics, marketo


def scenario() -> tuple[EntityMapping, dict[str, Any], dict[str, Any], dict[str, Any]]:
    mapping, dynamics, marketo = realistic_lead()
    baseline = dict(read_dynamics_record(mapping.fields, dynamics))
    dynamics = {**dynamics, "jobtitle": "CTO", "numberofemployees": 260, "leadqualitycode": 2, "address1_city": "Leeds"}
    marketo = {**marketo, "phone": "+44 20 7946 0999", "city": "York"}
    return mapping, dynamics, marketo, baseline


def rate(work: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``work`` over about ``seconds`` of wall time, after a warm-up."""
    for _ in range(2000):
        work()
    count, batch = 0, 2000
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(batch):
            work()
        count += batch
    return count / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)

    mapping, dynamics, marketo, baseline = scenario()
    canonical = RecordState(
        dynamics=read_dynamics_record(mapping.fields, dynamics),
        marketo=read_marketo_record(mapping.fields, marketo),
        baseline=baseline,
    )
    sample = decide(mapping, canonical)
    assert sample.marketo_writes.keys() == {"jobtitle", "numberofemployees", "leadqualitycode"}, sample.summary()
    assert sample.dynamics_writes.keys() == {"telephone1", "address1_city"}, sample.summary()

    def decision_only() -> object:
        return decide(mapping, canonical)

    def read_and_decide() -> object:
        state = RecordState(
            dynamics=read_dynamics_record(mapping.fields, dynamics),
            marketo=read_marketo_record(mapping.fields, marketo),
            baseline=baseline,
        )
        return decide(mapping, state)

    rows = [
        ("decide (canonical in)", rate(decision_only, args.seconds), FLOOR),
        ("read both sides + decide", rate(read_and_decide, args.seconds), None),
    ]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; measured on 1 core")
    print(f"record: lead, {len(mapping.fields)} mapped fields (5 changed: 3 Dynamics, 1 Marketo, 1 collision)")
    print()
    print(f"{'measure':<28}{'decisions/s':>14}{'floor':>10}{'vs floor':>10}")
    for name, value, floor in rows:
        if floor is None:  # for context: the floor is set for the decision, reading is the pipeline's cost
            print(f"{name:<28}{value:>14,.0f}{'-':>10}{'-':>10}")
        else:
            print(f"{name:<28}{value:>14,.0f}{floor:>10,}{value / floor:>9.2f}x")


if __name__ == "__main__":
    main()
