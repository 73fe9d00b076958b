"""The branch form's parser (pure) under Hypothesis: any submitted text gives a profile and field errors, never an
exception; what it accepts round-trips through the form's own rendering (areas as `id: name` lines, hours per day)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud.admin.branches import parse_form
from sync.contract_config import WEEKDAYS

FIELDS = (
    "branch_id",
    "name",
    "timezone",
    "address",
    "areas",
    *(f"{k}_{d}" for d in WEEKDAYS for k in ("open", "close")),
)
clock = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
ident = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
label = st.text(st.characters(categories=("L", "N", "Zs")), min_size=1, max_size=40).map(str.strip).filter(bool)


@given(st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=80)))
def test_any_input_gives_errors_not_exceptions(form: dict[str, str]) -> None:
    profile, errors = parse_form("acme", form, new=True)
    assert set(errors) <= {"branch_id", "name", "timezone", "address", "areas", *(f"hours_{d}" for d in WEEKDAYS)}
    assert all(day in WEEKDAYS for day in profile.hours)


@given(
    branch_id=st.from_regex(r"[a-z0-9][a-z0-9-]{0,30}", fullmatch=True),
    name=label,
    areas=st.lists(st.tuples(ident, label), max_size=4, unique_by=lambda a: a[0]),
    hours=st.dictionaries(st.sampled_from(WEEKDAYS), st.tuples(clock, clock).filter(lambda s: s[0] < s[1])),
)
def test_a_valid_form_round_trips(
    branch_id: str, name: str, areas: list[tuple[str, str]], hours: dict[str, tuple[str, str]]
) -> None:
    form = {
        "branch_id": branch_id,
        "name": name,
        "timezone": "Asia/Makassar",
        "areas": "\n".join(f"{i}: {n}" for i, n in areas),
    }
    for day, (opens, closes) in hours.items():
        form[f"open_{day}"], form[f"close_{day}"] = opens, closes
    profile, errors = parse_form("acme", form, new=True)
    assert errors == {}
    assert profile.hours == {day: [[o, c]] for day, (o, c) in hours.items()}
    again, errors = parse_form("acme", {**form, "areas": profile.areas_text()}, new=True)
    assert errors == {}
    assert again.areas == profile.areas == [{"id": i, "name": n} for i, n in areas]
