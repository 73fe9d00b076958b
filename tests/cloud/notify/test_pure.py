"""The pure parts: SMS segments (GSM-7 160/153, UCS-2 70/67), contact normalisation and masking, template rendering
in the sandbox with a safe default for a missing variable, backoff and the superseded rule."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.notify import templates
from cloud.notify.contacts import mask_email, mask_phone, normalise_email, normalise_phone
from cloud.notify.outbox import superseded_reason
from cloud.notify.segments import GSM7_BASIC, GSM7_EXTENSION, segment_count

gsm_basic = st.text(alphabet=sorted(GSM7_BASIC), max_size=800)
gsm_any = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=800)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", ("gsm7", 0, 0)), ("a" * 160, ("gsm7", 160, 1)), ("a" * 161, ("gsm7", 161, 2)),
     ("a" * 306, ("gsm7", 306, 2)),
     ("a" * 307, ("gsm7", 307, 3)), ("€" * 80, ("gsm7", 160, 1)), ("é" * 70, ("gsm7", 70, 1)),
     ("ĉ" * 70, ("ucs2", 70, 1)), ("ĉ" * 71, ("ucs2", 71, 2)), ("“quoted”", ("ucs2", 8, 1)),
     ("😀" * 35, ("ucs2", 70, 1)), ("😀" * 36, ("ucs2", 72, 2))],
)  # fmt: skip
def test_segment_examples(text: str, expected: tuple[str, int, int]) -> None:
    count = segment_count(text)
    assert (count.encoding, count.units, count.segments) == expected


@given(gsm_basic)
def test_gsm7_segments(text: str) -> None:
    count = segment_count(text)
    assert count.encoding == "gsm7"
    assert count.units == len(text)
    if len(text) <= 160:
        assert count.segments == (1 if text else 0)
    else:
        assert (count.segments - 1) * 153 < len(text) <= count.segments * 153


@given(gsm_any)
def test_extension_characters_take_two_septets(text: str) -> None:
    assert segment_count(text).units == len(text) + sum(ch in GSM7_EXTENSION for ch in text)


@given(gsm_basic, st.text(min_size=1).filter(lambda t: any(ch not in GSM7_BASIC | GSM7_EXTENSION for ch in t)))
def test_one_foreign_character_makes_it_ucs2(prefix: str, foreign: str) -> None:
    count = segment_count(prefix + foreign)
    assert count.encoding == "ucs2"
    per = 70 if count.units <= 70 else 67
    assert count.segments == -(-count.units // per)


@given(st.text(alphabet="0123456789", min_size=9, max_size=11))
def test_indonesian_mobile_numbers_normalise_alike(rest: str) -> None:
    forms = {normalise_phone(f"08{rest}"), normalise_phone(f"628{rest}"), normalise_phone(f"+628{rest}"),
             normalise_phone(f"+62 8{rest[:2]}-{rest[2:]}")}  # fmt: skip
    assert len(forms) == 1
    (found,) = forms
    assert found is None or found == f"+628{rest}"


def test_phone_and_email_examples() -> None:
    assert normalise_phone("0812-3456-7890") == "+6281234567890"
    assert normalise_phone("6281234567890") == "+6281234567890"
    assert normalise_phone("12") is None
    assert normalise_phone("hello") is None
    assert mask_phone("+6281212345678") == "+62812****5678"
    assert mask_email("andi@example.com") == "a***@example.com"
    assert normalise_email(" Andi@Example.COM ") == "Andi@example.com"
    assert normalise_email("not-an-address") is None


@given(st.text(alphabet="0123456789", min_size=10, max_size=13))
def test_a_masked_phone_never_shows_the_middle(digits: str) -> None:
    masked = mask_phone("+" + digits)
    assert masked is not None
    assert len(masked) == len(digits) + 1
    assert "*" in masked


def test_missing_variable_renders_empty_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="qms.notify.templates"):
        text = templates.render_text("Halo {{ nama }}, nomor {{ ticket_number }}", templates.SAMPLE)
    assert text == "Halo , nomor A012"
    assert "nama" in caplog.text


@given(st.text(max_size=200))
def test_any_template_renders_or_is_refused_never_crashes(source: str) -> None:
    try:
        templates.check(source)
    except templates.TemplateInvalid:
        return
    assert isinstance(templates.render_text(source, templates.SAMPLE), str)


def test_the_sandbox_refuses_internals() -> None:
    assert templates.render_text("{{ ''.__class__.__mro__ }}", {}) == ""


def test_default_wording_both_languages_and_fallback_to_english() -> None:
    for trigger in ("ticket.created", "ticket.to_go", "ticket.called", "ticket.recalled"):
        for lang in ("id", "en"):
            rendered = templates.render(
                templates.default_wording(trigger, "email", lang), "email", lang, templates.SAMPLE
            )
            assert "A012" in rendered.text
            assert rendered.subject
            assert rendered.html is not None
    assert templates.default_wording("ticket.called", "sms", "fr") == templates.default_wording(
        "ticket.called", "sms", "en"
    )


def test_superseded_rule() -> None:
    assert superseded_reason("ticket.to_go", "waiting") is None
    assert superseded_reason("ticket.to_go", "called") == "ticket is called"
    assert superseded_reason("ticket.called", "called") is None
    assert superseded_reason("ticket.called", "serving") == "ticket is serving"
    assert superseded_reason("ticket.created", "done") == "ticket is done"
    assert superseded_reason("ticket.created", None) is None
