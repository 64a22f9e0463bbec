"""What a partition's size costs Azurite: the evidence for spreading each entity's links over partitions.

    python -m bench._azurite_partitions [--rows 5000,20000,40000] [--partitions 1,32]

Fills one table per partition count with 100-row batch transactions (each batch in one partition, as the store
writes them) and prints Azurite's own CPU per batch while the table grows, and per point query once it holds
each size. Not part of ``make bench``: it measures the emulator, not the product. Real Table Storage does not
slow down as a partition grows, but serves one partition at up to 2,000 entities per second.
"""

from __future__ import annotations

import argparse
import uuid

from azure.data.tables import TableServiceClient

from local.azurite import azurite

BATCH = 100
QUERIES = 200


def counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=counts, default=[5000, 20000, 40000])
    parser.add_argument("--partitions", type=counts, default=[1, 32])
    args = parser.parse_args(argv)
    with azurite() as emulator:
        development = TableServiceClient.from_connection_string("UseDevelopmentStorage=true")  # no key in this repo
        service = TableServiceClient(endpoint=emulator.endpoint, credential=development.credential)
        print(f"{'partitions':>10} {'rows':>8} {'Azurite CPU per 100-row batch':>30} {'per point query':>16}")
        for partitions in args.partitions:
            table = service.create_table(f"partitions{partitions}")
            written = 0
            for size in args.rows:
                before, batches = emulator.cpu_seconds(), 0
                while written < size:
                    partition = f"p{(written // BATCH) % partitions}"
                    rows = [
                        {"PartitionKey": partition, "RowKey": str(uuid.uuid4()), "v": "x" * 200} for _ in range(BATCH)
                    ]
                    table.submit_transaction([("create", row) for row in rows])
                    written, batches = written + BATCH, batches + 1
                per_batch = (emulator.cpu_seconds() - before) / max(1, batches)
                before = emulator.cpu_seconds()
                for i in range(QUERIES):
                    flt = f"PartitionKey eq 'p{i % partitions}' and RowKey eq '{uuid.uuid4()}'"
                    list(table.query_entities(flt))
                per_query = (emulator.cpu_seconds() - before) / QUERIES
                print(f"{partitions:>10} {written:>8,} {per_batch * 1000:>27.1f} ms {per_query * 1000:>13.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
