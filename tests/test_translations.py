"""The Latvian catalogue: every message the code can produce is translated, and served as is."""

from __future__ import annotations

import gettext
import string
from pathlib import Path

import pytest
from babel.messages.catalog import Message as Entry
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import gql_service
from gql_service.languages import Language, negotiate
from gql_service.messages import DOMAIN, KEYWORDS, LOCALE_DIR, Message, catalogue, msg, plural_msg

PACKAGE = Path(gql_service.__file__).parent
PO = LOCALE_DIR / "lv" / "LC_MESSAGES" / f"{DOMAIN}.po"
MO = PO.with_suffix(".mo")


def extracted() -> dict[tuple[str | None, str], tuple[str, ...]]:
    """Every message id in the sources, as ``make messages`` extracts it: (context, id) ->
    the id and its plural."""
    found: dict[tuple[str | None, str], tuple[str, ...]] = {}
    for _file, _line, message, _comments, context in extract_from_dir(
        str(PACKAGE), method_map=[("**.py", "python")], keywords=KEYWORDS
    ):
        ids = (message,) if isinstance(message, str) else tuple(message)
        found[(context, ids[0])] = ids
    return found


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def lv_catalogue() -> dict[tuple[str | None, str], Entry]:
    with PO.open("rb") as po:
        return {
            (m.context, m.id if isinstance(m.id, str) else m.id[0]): m for m in read_po(po) if m.id
        }


def test_every_message_the_code_can_produce_has_a_latvian_translation() -> None:
    messages = extracted()
    assert len(messages) > 100  # the extraction itself works
    translations = lv_catalogue()
    untranslated, fuzzy, mismatched = [], [], []
    for key, ids in sorted(messages.items(), key=str):
        entry = translations.get(key)
        strings = () if entry is None else entry.string
        strings = (strings,) if isinstance(strings, str) else tuple(strings)
        if entry is None or not all(strings):
            untranslated.append(key)
            continue
        if entry.fuzzy:
            fuzzy.append(key)
        expected = set().union(*(placeholders(i) for i in ids))
        if any(placeholders(s) != expected for s in strings):
            mismatched.append((key, strings))
    assert untranslated == [], "run `make messages` and translate these in the .po"
    assert fuzzy == [], "check these fuzzy translations and remove their fuzzy flag"
    assert mismatched == [], "the translation's {placeholders} differ from the English ones"


def test_the_compiled_catalogue_serves_exactly_what_the_po_says() -> None:
    with MO.open("rb") as compiled:
        served = gettext.GNUTranslations(compiled)
    with PO.open("rb") as po:
        entries = [m for m in read_po(po) if m.id]
    assert entries
    for entry in entries:
        if isinstance(entry.id, str):
            text = (
                served.pgettext(entry.context, entry.id)
                if entry.context
                else served.gettext(entry.id)
            )
            assert text == entry.string, "the .mo lags behind the .po: run `make messages`"
        else:
            for form, n in zip(entry.string, (1, 2, 0), strict=True):
                assert served.ngettext(entry.id[0], entry.id[1], n) == form


def test_latvian_plurals_follow_the_number() -> None:
    quotes = ("Q-1 red. 0",)
    text = [
        plural_msg(
            "{count} open quote must be closed first: {quotes}.",
            "{count} open quotes must be closed first: {quotes}.",
            n,
            quotes=", ".join(quotes),
        ).translate(Language.LV)
        for n in (1, 2, 21, 11, 0)
    ]
    assert text == [
        "Vispirms jāslēdz 1 atvērts piedāvājums: Q-1 red. 0.",
        "Vispirms jāslēdz 2 atvērti piedāvājumi: Q-1 red. 0.",
        "Vispirms jāslēdz 21 atvērts piedāvājums: Q-1 red. 0.",
        "Vispirms jāslēdz 11 atvērti piedāvājumi: Q-1 red. 0.",
        "Vispirms jāslēdz 0 atvērtu piedāvājumu: Q-1 red. 0.",
    ]


def test_a_message_is_english_by_default_and_a_parameter_may_be_a_message() -> None:
    inner = msg("Must not be negative.")
    outer = msg("{path}: {message}", path="filter.name", message=inner)
    assert str(outer) == "filter.name: Must not be negative."
    assert outer.translate(Language.LV) == "filter.name: Nedrīkst būt negatīvs."


def test_a_translation_that_does_not_format_falls_back_to_english() -> None:
    # No catalogue has this id, so the source text is the template; a missing parameter is
    # the same failure as a translator's typo in a placeholder.
    assert Message("Unknown {thing}.").translate(Language.LV) == "Unknown {thing}."


def test_english_needs_no_catalogue() -> None:
    assert isinstance(catalogue(Language.EN), gettext.NullTranslations)
    assert not isinstance(catalogue(Language.EN), gettext.GNUTranslations)


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, Language.EN),
        ("", Language.EN),
        ("lv", Language.LV),
        ("LV-lv", Language.LV),
        ("lv-LV,lv;q=0.9,en;q=0.8", Language.LV),
        ("en;q=0.5, lv", Language.LV),
        ("en, lv", Language.EN),
        ("lv;q=0.5, en;q=0.5", Language.LV),
        ("en;q=0, lv;q=0.1", Language.LV),
        ("lv;q=0", Language.EN),
        ("fr, de;q=0.9", Language.EN),
        ("fr, lv;q=0.1", Language.LV),
        ("*", Language.EN),
        ("lv;q=abc, en;q=0.2", Language.EN),
        ("lv;q=2", Language.EN),
        (";;;,,,", Language.EN),
        ("en-GB;q=0.8, lv-LV;q=0.9", Language.LV),
    ],
)
def test_accept_language_quality_values_decide(header: str | None, language: Language) -> None:
    assert negotiate(header) is language
