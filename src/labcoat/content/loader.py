"""YAML → pydantic model, with every error mapped back to file:line:col.

PyYAML silently keeps the last of two duplicate keys and loses the node marks once a
document is constructed. So we compose the node tree ourselves, build plain Python data
from it, reject duplicate keys, and keep a mark for every path. Pydantic's error `loc`
is then looked up in those marks (the longest known prefix wins).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from labcoat.errors import ContentError

SCHEMA_VERSION = 1

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


@dataclass
class YamlDoc:
    """Plain data from one YAML file plus the (line, col) of every path in it."""

    path: Path
    data: Any
    marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    raw: dict[Loc, str] = field(default_factory=dict)  # scalars as written (5.10, not 5.1)
    written: dict[int, set[int]] = field(default_factory=dict, repr=False)  # mapping -> its own keys

    def where(self, loc: Iterable[str | int]) -> tuple[int | None, int | None]:
        """1-based line and column of the longest prefix of `loc` that has a mark."""
        key = tuple(loc)
        while key:
            if key in self.marks:
                return self.marks[key]
            key = key[:-1]
        return self.marks.get((), (None, None))  # type: ignore[return-value]


_scalar_constructor = yaml.SafeLoader(stream="")
# libyaml's composer is several times faster and gives the same nodes and marks.
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _build(node: yaml.Node, loc: Loc, doc: YamlDoc, display: str) -> Any:
    doc.marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        # Keys written in this mapping; flatten_mapping puts keys merged in with `<<: *anchor`
        # before them, and a written key may override a merged one (YAML merge semantics).
        # An anchored mapping is built once per alias, but flattened only the first time.
        written = doc.written.setdefault(
            id(node), {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        )
        _scalar_constructor.flatten_mapping(node)
        out: dict[Any, Any] = {}
        key_lines: dict[Any, int] = {}
        written_keys: set[Any] = set()
        for key_node, value_node in node.value:
            key = _build(key_node, loc + ("<key>",), doc, display)
            if not isinstance(key, str | int | float | bool):
                raise ContentError(
                    "a mapping key must be a plain value",
                    path=display,
                    line=key_node.start_mark.line + 1,
                    col=key_node.start_mark.column + 1,
                )
            key_mark = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in written_keys and id(key_node) in written:
                raise ContentError(
                    f"duplicate key {key!r} (first defined on line {key_lines[key]})",
                    path=display,
                    line=key_mark[0],
                    col=key_mark[1],
                    hint="YAML keeps only the last of two equal keys; remove or rename one of them",
                )
            key_lines[key] = key_mark[0]
            if id(key_node) in written:
                written_keys.add(key)
            out[key] = _build(value_node, loc + (key,), doc, display)  # later wins, as in PyYAML
            # A scalar's own mark is the most precise (type errors point at the value). A block
            # mapping or list starts on the line after its key, so point at the key instead:
            # an unknown key, a missing child or a wrong type is reported where the key is.
            if isinstance(value_node, yaml.MappingNode | yaml.SequenceNode):
                doc.marks[loc + (key,)] = key_mark
        doc.marks.pop(loc + ("<key>",), None)
        return out
    if isinstance(node, yaml.SequenceNode):
        # Tuples, not lists: the models are strict and frozen (sequence fields are tuples), and
        # strict pydantic refuses a list where a tuple is declared.
        return tuple(_build(item, loc + (i,), doc, display) for i, item in enumerate(node.value))
    if isinstance(node, yaml.ScalarNode):
        doc.raw[loc] = node.value
    return _scalar_constructor.construct_object(node, deep=True)


def read_yaml(path: Path, display: str | None = None) -> YamlDoc:
    """Parse one YAML file into plain data with marks; syntax errors become ContentError."""
    shown = display or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ContentError(f"cannot read: {exc.strerror}", path=shown) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(data, exc.start, b"\n")
        raise ContentError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x})", path=shown, line=line, col=col,
            hint="save the file as UTF-8",
        ) from None
    try:
        try:
            node = yaml.compose(text, Loader=_COMPOSER)
        except yaml.MarkedYAMLError:
            node = yaml.compose(text, Loader=yaml.SafeLoader)  # the same error, worded as PyYAML does
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context
        if exc.problem and exc.context:  # "while scanning a quoted scalar on line 3, found unexpected end of stream"
            began = exc.context_mark and mark and exc.context_mark.line != mark.line
            problem = f"{exc.context}{f' on line {exc.context_mark.line + 1}' if began else ''}, {exc.problem}"
        raise ContentError(
            f"YAML syntax error: {problem}",
            path=shown,
            line=mark.line + 1 if mark else None,
            col=mark.column + 1 if mark else None,
            hint="a content file holds one YAML document; remove the '---' line"
            if exc.problem == "but found another document"
            else "check the indentation and quoting around this line; a ':' inside a value needs quotes",
        ) from None
    except yaml.reader.ReaderError as exc:  # a control character, e.g. from a paste
        line, col = _position(text, exc.position, "\n")
        raise ContentError(
            f"YAML syntax error: character #x{exc.character:04x} is not allowed in YAML",
            path=shown, line=line, col=col, hint="delete the invisible control character on this line",
        ) from None
    doc = YamlDoc(path=path, data=None)
    if node is None:
        raise ContentError("the file is empty", path=shown, hint="start it with 'schema_version: 1'")
    doc.data = _build(node, (), doc, shown)
    return doc


def _position(text: Any, index: int, newline: Any) -> tuple[int, int]:
    """1-based line and column of `index` in `text` (str or bytes)."""
    return text.count(newline, 0, index) + 1, index - (text.rfind(newline, 0, index) + 1) + 1


_HINTS = {
    "extra_forbidden": "remove this key, or check its spelling against schemas/*.schema.json",
    "missing": "add this key",
    "string_type": "quote the value so YAML reads it as text, e.g. id: \"5.3\"",
    "literal_error": "use one of the values listed",
    "string_pattern_mismatch": "change the value so it matches the pattern",
}


def _loc_text(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _file_loc(data: Any, loc: tuple[Any, ...], err_type: str) -> Loc:
    """The part of pydantic's `loc` that names keys and indexes of the file.

    Pydantic puts union members and tags into `loc` (`constrained-int`, `SingleChoice`,
    `[key]`); they are dropped by walking the data: a part is kept when it is a key or an
    index of the data at that point, or when it is the last part of a `missing` error.
    """
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list | tuple) and isinstance(part, int) and 0 <= part < len(node)
        ):
            node = node[part]
        elif not (err_type == "missing" and i == len(loc) - 1 and isinstance(node, dict)):
            continue
        out.append(part)
    return tuple(out)


def validation_errors(doc: YamlDoc, exc: ValidationError, display: str) -> list[ContentError]:
    """Turn pydantic's errors into ContentErrors pointing at the offending line."""
    raw = exc.errors(include_url=False)
    errors = []
    for err in raw:
        if err["type"] == "too_short" and _items_failed(err, raw):
            continue  # pydantic adds "at least 1 item ... not 0" when an item fails; the item's error says it all
        loc = _file_loc(doc.data, err["loc"], err["type"])
        line, col = doc.where(loc)
        msg = err["msg"]
        hint = _HINTS.get(err["type"])
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}"
            loc_shown = _loc_text(loc[:-1]) if len(loc) > 1 else "(top level)"
        else:
            loc_shown = _loc_text(loc)
        value = err.get("input")
        if err["type"] == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
            written = doc.raw.get(loc, repr(value))  # as in the file: 5.10, which YAML reads as 5.1
            msg = f"must be text, found the number {written}"
            if written != repr(value):
                msg += f" (YAML reads it as {value!r})"
            if loc and isinstance(loc[-1], str):
                hint = f'quote the value so YAML reads it as text: {loc[-1]}: "{written}"'
        errors.append(ContentError(f"{loc_shown}: {msg}", path=display, line=line, col=col, hint=hint))
    return errors


def _items_failed(err: Any, raw: list[Any]) -> bool:
    """Whether a `too_short` error only repeats that items of a long enough sequence failed."""
    given = err.get("input")
    minimum = (err.get("ctx") or {}).get("min_length", 0)
    if not isinstance(given, list | tuple) or len(given) < minimum:
        return False
    n = len(err["loc"])
    return any(len(o["loc"]) > n and tuple(o["loc"][:n]) == tuple(err["loc"]) for o in raw)


def check_schema_version(doc: YamlDoc, display: str) -> None:
    """Refuse files written for another schema version, with what to do about it."""
    data = doc.data
    if not isinstance(data, dict):
        raise ContentError("the top level must be a mapping of keys to values", path=display, line=1, col=1)
    version = data.get("schema_version")
    line, col = doc.where(("schema_version",))
    if version is None:
        raise ContentError(
            "missing 'schema_version'", path=display, line=1, col=1, hint="add 'schema_version: 1' at the top"
        )
    if not isinstance(version, int) or isinstance(version, bool):
        raise ContentError("schema_version must be a whole number", path=display, line=line, col=col)
    if version > SCHEMA_VERSION:
        raise ContentError(
            f"written for schema_version {version}; this labcoat reads up to {SCHEMA_VERSION}",
            path=display,
            line=line,
            col=col,
            hint="upgrade labcoat (pip install -U labcoat)",
        )
    if version < 1:
        raise ContentError(f"schema_version {version} does not exist", path=display, line=line, col=col)


def load_model(model: type[M], path: Path, display: str | None = None) -> M:
    """Load one YAML file into `model`; raise the first ContentError found."""
    errors: list[ContentError] = []
    result = load_model_collecting(model, path, errors, display)
    if result is None:
        raise errors[0]
    return result


def load_model_collecting(
    model: type[M], path: Path, errors: list[ContentError], display: str | None = None
) -> M | None:
    """Load one YAML file into `model`; append every error to `errors` and return None on failure."""
    shown = display or str(path)
    try:
        doc = read_yaml(path, shown)
        check_schema_version(doc, shown)
    except ContentError as exc:
        errors.append(exc)
        return None
    try:
        return model.model_validate(doc.data, context={"path": path})
    except ValidationError as exc:
        errors.extend(validation_errors(doc, exc, shown))
        return None
