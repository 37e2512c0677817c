"""Raw card numbers: recognised, refused and never echoed.

A raw card number (a PAN) must never reach raypay's stores or logs: payment methods are
tokens (``pm_card_visa``). Anything that looks like one, 13 to 19 digits (spaces or
dashes between them allowed) that pass the Luhn check, is refused; and any text raypay
echoes in a problem has such digits masked, so a refusal never repeats the number.
"""

from __future__ import annotations

import re

PAN_MIN, PAN_MAX = 13, 19
# Digits with at most one space or dash between neighbours: "4242 4242-4242 4242".
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d)*")
# No payment token has this many digits in a row: refused without looking further.
_LONG_RUN = 64


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check every card number passes."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _is_card_run(run: str) -> bool:
    digits = run.replace(" ", "").replace("-", "")
    if len(digits) < PAN_MIN:
        return False
    if len(digits) <= PAN_MAX:
        return luhn_ok(digits)
    if len(digits) > _LONG_RUN:
        return True
    # A card number hidden inside a longer run of digits counts too.
    return any(
        luhn_ok(digits[start : start + size])
        for size in range(PAN_MIN, PAN_MAX + 1)
        for start in range(len(digits) - size + 1)
    )


def looks_like_card_number(text: str) -> bool:
    """True if ``text`` contains what could be a raw card number."""
    return any(_is_card_run(match.group()) for match in _DIGIT_RUN.finditer(text))


def redact_card_numbers(text: str) -> str:
    """``text`` with every card-number-like run of digits masked (never echo a PAN back)."""
    if not any(char.isdigit() for char in text):
        return text
    return _DIGIT_RUN.sub(lambda m: "[redacted]" if _is_card_run(m.group()) else m.group(), text)
