"""Translatable messages: a message id with named parameters, put into words per language.

Code that a client's message comes from builds it with ``msg`` (or ``plural_msg``, or
``label`` for a display label); ``pybabel extract`` finds those calls (``make messages``). The
text is chosen only when the response is written, in the request's language: the rules and
services stay free of HTTP and of GraphQL. English is the source text; Latvian comes from
``locale/lv/LC_MESSAGES/gql_service.mo``, compiled from the ``.po`` next to it.
"""

from __future__ import annotations

import gettext
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from gql_service.languages import Language

log = logging.getLogger(__name__)

DOMAIN = "gql_service"
LOCALE_DIR = Path(__file__).parent / "locale"
# pybabel's keywords for the constructors below (the Makefile's ``messages`` target uses them).
KEYWORDS = {"msg": None, "plural_msg": (1, 2), "label": ((1, "c"), 2)}


@dataclass(frozen=True, slots=True)
class Message:
    """A message id, its plural and context if any, and its named parameters.

    Parameters are formatted into the text as ``{name}``; a parameter may itself be a Message
    (or a tuple of them, listed with commas), translated first. ``str()`` is the English text.
    """

    text: str
    params: Mapping[str, object] = field(default_factory=dict)
    plural: str | None = None
    count: int = 1
    context: str | None = None

    def __str__(self) -> str:
        return self.translate(Language.EN)

    def translate(self, language: Language) -> str:
        """The text in ``language``; the English one if the translation cannot be formatted,
        and the bare English template if even that cannot (a defect, never a failed response)."""
        try:
            return _format(self._template(catalogue(language)), self.params, language)
        except (KeyError, IndexError, ValueError):
            log.error("message %r does not format in %s; English is used", self.text, language)
        english = self._template(gettext.NullTranslations())
        try:
            return _format(english, self.params, language)
        except (KeyError, IndexError, ValueError):
            return english

    def _template(self, translations: gettext.NullTranslations) -> str:
        if self.plural is None:
            if self.context is None:
                return translations.gettext(self.text)
            return translations.pgettext(self.context, self.text)
        if self.context is None:
            return translations.ngettext(self.text, self.plural, self.count)
        return translations.npgettext(self.context, self.text, self.plural, self.count)


def _format(template: str, params: Mapping[str, object], language: Language) -> str:
    return template.format_map({name: _value(value, language) for name, value in params.items()})


def _value(value: object, language: Language) -> object:
    """A parameter as text: a Message translated, a tuple of Messages as a list."""
    if isinstance(value, Message):
        return value.translate(language)
    if isinstance(value, tuple) and all(isinstance(item, Message) for item in value):
        return ", ".join(item.translate(language) for item in value)
    return value


def msg(text: str, **params: object) -> Message:
    """A message to translate; ``{name}`` placeholders take the keyword arguments."""
    return Message(text, params)


def plural_msg(singular: str, plural: str, count: int, **params: object) -> Message:
    """A message whose words depend on ``count`` (Latvian has three plural forms)."""
    return Message(singular, {"count": count, **params}, plural=plural, count=count)


def label(context: str, text: str) -> Message:
    """A display label; the context (e.g. the enum's name) tells apart words spelt alike."""
    return Message(text, context=context)


@cache
def catalogue(language: Language) -> gettext.NullTranslations:
    """The compiled translations of ``language``; English needs none (the source text)."""
    if language is Language.EN:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language.value])


class TranslatableError(Exception):
    """An exception whose message a client reads, in its own language."""

    def __init__(self, message: Message) -> None:
        super().__init__(str(message))
        self.message = message
