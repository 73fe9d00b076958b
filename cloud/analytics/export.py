"""The ticket export at the hub (`GET /api/v1/reports/tickets.csv`): the CSV contract of `sync.kpi` (header version
1, RFC 4180, `sep=;` for Indonesian-locale Excel, times in the branch's zone, formula cells neutralised, no contact
data), streamed: facts are read in keyset-paged chunks and written a chunk at a time, so memory stays constant
whatever the number of rows."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.engine import Engine

from cloud.analytics.queries import Scope, fact_stream
from sync import kpi

LINES_PER_CHUNK = 2000


def csv_chunks(engine: Engine, scope: Scope, query: kpi.KpiQuery) -> Iterator[bytes]:
    """The export as UTF-8 chunks: the header, then the matching tickets (by tenant, branch, ticket id)."""
    yield kpi.csv_header_line(query.sep).encode()
    with engine.connect() as conn:
        lines: list[str] = []
        for fact in fact_stream(conn, scope, query):
            lines.append(kpi.csv_row(fact, query.sep))
            if len(lines) >= LINES_PER_CHUNK:
                yield "".join(lines).encode()
                lines.clear()
        if lines:
            yield "".join(lines).encode()
