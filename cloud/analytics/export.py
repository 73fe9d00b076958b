"""The ticket export at the hub (`GET /api/v1/reports/tickets.csv`): the CSV contract of `sync.kpi` (header version
1, RFC 4180, `sep=;` for Indonesian-locale Excel, times in the branch's zone, formula cells neutralised, no contact
data), streamed: each fact's record is rendered when the fact is written (`cloud.analytics.facts.write`), and the
export reads them in keyset-paged chunks and writes a chunk at a time, so memory stays constant whatever the number of
rows."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.engine import Engine

from cloud.analytics.queries import Scope, csv_records
from sync import kpi


def csv_chunks(engine: Engine, scope: Scope, query: kpi.KpiQuery) -> Iterator[bytes]:
    """The export as UTF-8 chunks: the header, then the matching tickets' stored records (by tenant, local date,
    branch, ticket id), a page at a time."""
    yield kpi.csv_header_line(query.sep).encode()
    with engine.connect() as conn:
        for records in csv_records(conn, scope, query):
            yield "".join(records).encode()
