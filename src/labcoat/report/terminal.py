"""Untrusted text on the terminal: never markup, never an escape sequence.

Titles, instructions, answers and submissions come from outside. Printed as they are,
`[/]` in a title is read as Rich markup (and crashes `lab list`), ESC sequences clear
the screen or set the window title, and a lone surrogate cannot be encoded at all.
Everything from content, answers or submissions that reaches a console goes through
one of these:

- `clean(text)`: C0/C1 control characters (ESC included) shown as visible symbols
  (ESC as `␛`), lone surrogates as `�`; tab and newline kept.
- `plain(text)`: `clean` and escaped for Rich markup, for use inside an f-string that
  `console.print` interprets.
- `literal(text)`: a Rich `Text` (never parsed as markup), e.g. for table cells.
- `markdown(text)`: a Rich `Markdown` of cleaned text, its size bounded.
"""

from __future__ import annotations

import re
from typing import Any

# C0 but tab and newline, DEL, C1: each becomes a visible stand-in (U+2400 + code for C0, ␡ for DEL, � for C1).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
MAX_SHOWN = 64 * 1024  # characters of one Markdown document rendered (hostile Markdown renders at ~20 s per MiB)


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return "\ufffd"


def clean(text: Any) -> str:
    """`text` (any value, made a string) with control characters and lone surrogates made visible."""
    text = str(text).replace("\r\n", "\n")
    return _CONTROLS.sub(_picture, text)


def plain(text: Any) -> str:
    """`clean(text)` escaped for Rich markup: prints exactly as written inside a markup string."""
    from rich.markup import escape

    return escape(clean(text))


def literal(text: Any, style: str = "") -> Any:
    """A Rich Text holding `clean(text)`: never parsed as markup, e.g. a table cell."""
    from rich.text import Text

    return Text(clean(text), style=style)


def markdown(text: str, limit: int = MAX_SHOWN) -> Any:
    """A Rich Markdown renderable of `text`, cleaned and cut to `limit` characters (saying so)."""
    from rich.markdown import Markdown

    text = clean(text)
    if len(text) > limit:
        text = text[:limit] + f"\n\n*[cut: the text is longer than {limit} characters]*\n"
    return Markdown(text)


def print_markdown_file(console: Any, path: Any, shown: str | None = None) -> None:
    """Render a Markdown file (a regular UTF-8 file of bounded size) on `console`; ContentError otherwise."""
    from labcoat.content.files import MAX_MARKDOWN, FileProblem, read_text_bounded
    from labcoat.errors import ContentError

    try:
        text = read_text_bounded(path, MAX_MARKDOWN)
    except FileProblem as exc:
        raise ContentError(f"{shown or path} {exc.message}", hint=exc.hint or "run `lab validate`") from None
    console.print(markdown(text))
