"""YAML → pydantic model, with every error mapped back to file:line:col.

Over 500 lines on purpose: the one hardened YAML reader (events, marks, bounds) and the error mapping it needs.

This is the one YAML reader of labcoat: content files, quiz answers files, submissions'
answers and imported scenarios all come through `read_yaml`, and all of them may be
hostile. So PyYAML's constructor is not used at all. We parse the event stream (libyaml
where available) and build plain Python data ourselves, which lets us:

- keep a (line, col) mark for every path, so pydantic's error `loc` can be looked up
  (the longest known prefix wins), and reject duplicate keys (PyYAML keeps the last);
- bound everything before it is built: file size, nesting depth, the number of nodes
  (an alias bomb of 600 bytes would otherwise expand to gigabytes), and every number's
  length before it is converted (no 4,300-digit ints, no 10**999999999);
- refuse aliases where they are not needed (answers files) and alias loops everywhere;
- resolve plain scalars with a small, predictable rule set instead of YAML 1.1's (see
  `ScalarRules` and docs/authoring.md "How YAML values are read"): no timestamps, no
  sexagesimal `1:20`, no `yes`/`no`/`on`/`off` booleans, no octal `0644`, no explicit
  tags but `!!str`. What YAML 1.1 would have turned into a surprise stays text, so a
  strict model either takes it as text or says clearly that a number was expected.

Every failure is a ContentError with file:line:col and how to fix it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from labcoat.content.files import MAX_YAML, FileProblem, read_bytes_bounded
from labcoat.errors import ContentError

SCHEMA_VERSION = 1

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlRules:
    """How much one YAML file may hold, and how its plain (unquoted) scalars are read.

    Both kinds of file read `~`/`null`/empty as null, `true`/`false` (any case of the
    three spellings YAML 1.2 has) as booleans and a plain decimal integer of at most
    18 digits without a leading zero as an int. Everything YAML 1.1 would make a
    surprise of stays text: `yes`/`no`/`on`/`off`, `0644`, `1_000`, `1:20`,
    `2020-13-45`, `0x_`, `=`.

    `1.5` and `1e3` are floats (finite, at most 40 characters), `0x1f` and `0o17` ints.

    content: a longer number or `.inf`/`.nan` is an error. Anchors, aliases and `<<`
    merge keys work, with their expansion bounded by `max_nodes` and `max_depth`.
    answers: a number beyond those bounds stays text exactly as written (the quiz engine
    reads numeric answers with bounds of its own, and says what is wrong in its terms);
    anchors and aliases are refused (an answers file has no use for them), and `<<` is
    an ordinary key.
    """

    what: str
    max_bytes: int = MAX_YAML
    max_depth: int = 32
    max_nodes: int = 100_000
    aliases: bool = True
    strict_numbers: bool = True  # a number out of bounds is an error (content); else it stays text (answers)


CONTENT = YamlRules("content file")
ANSWERS = YamlRules("answers file", aliases=False, strict_numbers=False)

_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)\Z")
_BASED = re.compile(r"0(x[0-9a-fA-F]+|o[0-7]+)\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_SPECIAL = re.compile(r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)\Z")
MAX_INT_DIGITS = 18  # always below 2**63; a longer plain number is refused (content) or kept as text (answers)
MAX_FLOAT_CHARS = 40
_STR_TAGS = frozenset({"!", "tag:yaml.org,2002:str"})
_COLLECTION_TAGS = frozenset({"!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})
# C0 controls but tab, newline and carriage return; DEL; C1 controls: a title holding ESC could clear the
# screen of whoever lists the labs. YAML refuses them written raw; only a double-quoted escape makes them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass
class YamlDoc:
    """Plain data from one YAML file plus the (line, col) of every path in it."""

    path: Path
    data: Any
    marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    raw: dict[Loc, str] = field(default_factory=dict)  # scalars as written (5.10, not 5.1)
    key_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)  # where each key itself is written

    def where(self, loc: Iterable[str | int]) -> tuple[int | None, int | None]:
        """1-based line and column of the longest prefix of `loc` that has a mark."""
        key = tuple(loc)
        while key:
            if key in self.marks:
                return self.marks[key]
            key = key[:-1]
        return self.marks.get((), (None, None))  # type: ignore[return-value]


def _tag(tag: str) -> str:
    """A tag as it was most likely written: !!float for tag:yaml.org,2002:float."""
    shown = "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag
    return shown if len(shown) <= 60 else shown[:57] + "..."


class _Node:
    """One composed YAML node: a resolved scalar, a mapping (list of key/value pairs) or a sequence."""

    __slots__ = ("kind", "value", "raw", "line", "col", "merge")

    def __init__(self, kind: str, value: Any, line: int, col: int, raw: str = "", merge: bool = False) -> None:
        self.kind, self.value, self.raw, self.line, self.col, self.merge = kind, value, raw, line, col, merge


class _Reader:
    """Events → nodes → plain data, every limit checked before the work it bounds."""

    def __init__(self, shown: str, rules: YamlRules) -> None:
        self.shown, self.rules = shown, rules
        self.built = 0

    def error(self, message: str, line: int | None, col: int | None, hint: str | None = None) -> ContentError:
        return ContentError(message, path=self.shown, line=line, col=col, hint=hint)

    # ------------------------------------------------------------------ scalars

    def scalar(self, ev: yaml.ScalarEvent, line: int, col: int) -> _Node:
        text = ev.value
        bad = _SURROGATE.search(text)
        if bad:
            raise self.error(f"the text holds a lone surrogate (\\u{ord(bad.group()):04x}), which is not a character",
                             line, col, hint="remove that \\u escape; write the character itself")
        bad = _CONTROL.search(text)
        if bad:
            raise self.error(f"the text holds the control character \\x{ord(bad.group()):02x}", line, col,
                             hint="remove the escape sequence: text is shown in a terminal, where control "
                             "characters could clear the screen or change the window title")
        tag = ev.tag
        if tag is not None and tag not in _STR_TAGS:
            raise self.error(f"explicit tag {_tag(tag)} is not allowed", line, col,
                             hint="remove the tag; quote the value if it should be text (only !!str is accepted)")
        if tag is not None or not ev.implicit[0]:  # quoted, or tagged !!str
            return _Node("scalar", text, line, col, raw=text)
        return _Node("scalar", self.resolve(text, line, col), line, col, raw=text,
                     merge=self.rules.aliases and text == "<<")

    def resolve(self, text: str, line: int, col: int) -> Any:
        """A plain scalar's value under the rules (see YamlRules)."""
        if text in _NULL:
            return None
        if text in _BOOL:
            return _BOOL[text]
        if _INT.match(text):
            if len(text.lstrip("+-")) <= MAX_INT_DIGITS:
                return int(text)
            if not self.rules.strict_numbers:
                return text
            raise self.error(f"number too large ({len(text)} characters; at most {MAX_INT_DIGITS} digits)",
                             line, col, hint="write a smaller number, or quote it if it is text")
        lenient = not self.rules.strict_numbers
        if _BASED.match(text):
            if len(text) > MAX_INT_DIGITS:
                if lenient:
                    return text
                raise self.error("number too large", line, col, hint="write a smaller number")
            return int(text, 16 if text[1] == "x" else 8)
        if _FLOAT.match(text) and not text.lstrip("+-").isdigit():  # 0644 is no float: text (see above)
            if len(text) > MAX_FLOAT_CHARS:
                if lenient:
                    return text
                raise self.error(f"number too long ({len(text)} characters; at most {MAX_FLOAT_CHARS})", line, col,
                                 hint="write it with fewer digits, or quote it if it is text")
            value = float(text)
            if not math.isfinite(value):
                if lenient:
                    return text
                raise self.error(f"number out of range: {text}", line, col, hint="write a smaller number")
            return value
        if _SPECIAL.match(text):
            if lenient:
                return text
            raise self.error(f"{text} is not a finite number", line, col,
                             hint="write a number, or quote the value if it is text")
        return text

    # ------------------------------------------------------------------ composing

    def compose(self, events: Iterator[yaml.Event]) -> _Node | None:
        """The document's root node; aliases share their anchor's node (no copies yet)."""
        rules = self.rules
        stack: list[tuple[_Node, str | None]] = []
        anchors: dict[str, _Node] = {}
        root: _Node | None = None
        documents = 0
        count = 0

        def attach(node: _Node) -> None:
            nonlocal root
            if stack:
                stack[-1][0].value.append(node)
            else:
                root = node

        for ev in events:
            mark = ev.start_mark
            line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
            if isinstance(ev, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise self.error("YAML syntax error: expected a single document in the stream, but found "
                                     "another document", line, col,
                                     hint=f"a {rules.what} holds one YAML document; remove the '---' line")
                continue
            if not isinstance(ev, yaml.NodeEvent | yaml.CollectionEndEvent):
                continue
            count += 1
            if count > rules.max_nodes:
                raise self.error(f"too many values (more than {rules.max_nodes})", line, col,
                                 hint="split the file")
            anchor = getattr(ev, "anchor", None)
            if anchor is not None and not rules.aliases:
                raise self.error(f"anchors and aliases (&{anchor}, *{anchor}) are not allowed in an {rules.what}",
                                 line, col, hint="write the value out where it is needed")
            if isinstance(ev, yaml.AliasEvent):
                if any(name == anchor for _, name in stack):
                    raise self.error(f"alias *{anchor} refers to a value that contains it (a loop)", line, col,
                                     hint="an alias may only repeat a value written before it")
                if anchor not in anchors:
                    raise self.error(f"alias *{anchor} refers to no anchor &{anchor} written before it", line, col,
                                     hint=f"write &{anchor} on the value to repeat, above this line")
                attach(anchors[anchor])
            elif isinstance(ev, yaml.ScalarEvent):
                node = self.scalar(ev, line, col)
                if anchor is not None:
                    anchors[anchor] = node
                attach(node)
            elif isinstance(ev, yaml.CollectionStartEvent):
                kind = "map" if isinstance(ev, yaml.MappingStartEvent) else "seq"
                if ev.tag is not None and ev.tag not in _COLLECTION_TAGS:
                    raise self.error(f"explicit tag {_tag(ev.tag)} is not allowed", line, col, hint="remove the tag")
                if len(stack) >= rules.max_depth:
                    raise self.error(f"nested too deeply (more than {rules.max_depth} levels)", line, col,
                                     hint="flatten the structure")
                stack.append((_Node(kind, [], line, col), anchor))
            else:  # the end of a mapping or sequence
                node, name = stack.pop()
                if node.kind == "map":
                    items = node.value
                    node.value = list(zip(items[::2], items[1::2], strict=True))
                if name is not None:
                    anchors[name] = node
                attach(node)
        return root

    # ------------------------------------------------------------------ building

    def build(self, node: _Node, loc: Loc, doc: YamlDoc, depth: int = 0) -> Any:
        """Plain data from `node`, aliases expanded (bounded), duplicate keys refused."""
        self.built += 1
        if self.built > self.rules.max_nodes:
            raise self.error(f"the aliases expand to more than {self.rules.max_nodes} values", node.line, node.col,
                             hint="repeat less: an alias of an alias multiplies what is built")
        if depth > self.rules.max_depth:
            raise self.error(f"nested too deeply once aliases are expanded (more than {self.rules.max_depth} "
                             "levels)", node.line, node.col, hint="flatten the structure")
        doc.marks[loc] = (node.line, node.col)
        if node.kind == "scalar":
            doc.raw[loc] = node.raw
            return node.value
        if node.kind == "seq":
            # Tuples, not lists: the models are strict and frozen (sequence fields are tuples), and
            # strict pydantic refuses a list where a tuple is declared.
            return tuple(self.build(item, loc + (i,), doc, depth + 1) for i, item in enumerate(node.value))
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.merge:
                merged.update(self.merge(value_node, loc, doc, depth))
        doc.marks[loc] = (node.line, node.col)
        out: dict[Any, Any] = {}
        key_lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.merge:
                continue
            key = key_node.value if key_node.kind == "scalar" else None
            if not isinstance(key, str | int | float | bool):
                raise self.error("a mapping key must be a plain value", key_node.line, key_node.col)
            if key in key_lines:
                raise self.error(f"duplicate key {key!r} (first defined on line {key_lines[key]})",
                                 key_node.line, key_node.col,
                                 hint="YAML keeps only the last of two equal keys; remove or rename one of them")
            key_lines[key] = key_node.line
            doc.key_marks[loc + (key,)] = (key_node.line, key_node.col)
            out[key] = self.build(value_node, loc + (key,), doc, depth + 1)
            # A scalar's own mark is the most precise (type errors point at the value). A block
            # mapping or list starts on the line after its key, so point at the key instead:
            # an unknown key, a missing child or a wrong type is reported where the key is.
            if value_node.kind != "scalar":
                doc.marks[loc + (key,)] = (key_node.line, key_node.col)
        if not merged:
            return out
        merged.update(out)  # a key written here overrides one merged in (YAML merge semantics)
        return merged

    def merge(self, value: _Node, loc: Loc, doc: YamlDoc, depth: int) -> dict[Any, Any]:
        """What `<<: value` merges in: a mapping, or a list of them (the first one wins)."""
        sources = [value] if value.kind == "map" else value.value if value.kind == "seq" else None
        if sources is None or any(s.kind != "map" for s in sources):
            raise self.error("'<<' merges mappings into this one: its value must be a mapping (e.g. *defaults) "
                             "or a list of mappings", value.line, value.col,
                             hint="write `<<: *name` where `&name` marks a mapping, or quote '<<' for a plain key")
        out: dict[Any, Any] = {}
        for source in reversed(sources):
            out.update(self.build(source, loc, doc, depth))
        return out


# libyaml's parser is several times faster and gives the same events and marks.
_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_REWORD_LIMIT = 64 * 1024  # re-parse a failing file with PyYAML's own parser (for its wording) up to this size
_REWORD_DEPTH = 64  # ... and up to this many nested '[' / '{'


def _flow_depth(text: str) -> int:
    """The deepest run of unclosed brackets (quotes ignored: an over-estimate is only more careful)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest


def read_yaml(path: Path, display: str | None = None, rules: YamlRules = CONTENT) -> YamlDoc:
    """Parse one YAML file into plain data with marks; every problem becomes a ContentError."""
    shown = display or str(path)
    try:
        data = read_bytes_bounded(path, rules.max_bytes)
    except FileProblem as exc:
        raise ContentError(f"cannot read: the file {exc.message}", path=shown, hint=exc.hint) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(data, exc.start, b"\n")
        raise ContentError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x})", path=shown, line=line, col=col,
            hint="save the file as UTF-8",
        ) from None
    return parse_yaml(text, shown, rules, path)


def parse_yaml(text: str, shown: str, rules: YamlRules = CONTENT, path: Path | None = None) -> YamlDoc:
    """`read_yaml` for text already in memory (e.g. a file from an archive)."""
    reader = _Reader(shown, rules)
    if len(text) > rules.max_bytes:
        raise ContentError(f"the {rules.what} is too large (more than {rules.max_bytes} characters)", path=shown)
    try:
        try:
            node = reader.compose(yaml.parse(text, Loader=_PARSER))
        except yaml.YAMLError:
            if _PARSER is yaml.SafeLoader or len(text) > _REWORD_LIMIT or _flow_depth(text) > _REWORD_DEPTH:
                raise  # PyYAML's scanner is quadratic in flow depth: 5000 '[' took it 31 s
            list(yaml.parse(text, Loader=yaml.SafeLoader))  # the same error, worded and placed as PyYAML does
            raise
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, shown, rules) from None
    except yaml.reader.ReaderError as exc:  # a control character, e.g. from a paste
        line, col = _position(text, exc.position, "\n") if isinstance(exc.position, int) else (None, None)
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise ContentError(
            f"YAML syntax error: character {char} is not allowed in YAML",
            path=shown, line=line, col=col, hint="delete the invisible control character on this line",
        ) from None
    except yaml.YAMLError as exc:
        raise ContentError(f"YAML error: {exc}", path=shown) from None
    doc = YamlDoc(path=path or Path(shown), data=None)
    if node is None:
        raise ContentError("the file is empty", path=shown, hint="start it with 'schema_version: 1'")
    doc.data = reader.build(node, (), doc)
    return doc


def _syntax_error(exc: yaml.MarkedYAMLError, shown: str, rules: YamlRules) -> ContentError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context
    if exc.problem and exc.context:  # "while scanning a quoted scalar on line 3, found unexpected end of stream"
        began = exc.context_mark and mark and exc.context_mark.line != mark.line
        problem = f"{exc.context}{f' on line {exc.context_mark.line + 1}' if began else ''}, {exc.problem}"
    return ContentError(
        f"YAML syntax error: {problem}",
        path=shown,
        line=mark.line + 1 if mark else None,
        col=mark.column + 1 if mark else None,
        hint=f"a {rules.what} holds one YAML document; remove the '---' line"
        if exc.problem == "but found another document"
        else "check the indentation and quoting around this line; a ':' inside a value needs quotes",
    )


def _position(text: Any, index: int, newline: Any) -> tuple[int, int]:
    """1-based line and column of `index` in `text` (str or bytes)."""
    return text.count(newline, 0, index) + 1, index - (text.rfind(newline, 0, index) + 1) + 1


_HINTS = {
    "extra_forbidden": "remove this key, or check its spelling against schemas/*.schema.json",
    "missing": "add this key",
    "string_type": "quote the value so YAML reads it as text, e.g. id: \"5.3\"",
    "literal_error": "use one of the values listed",
    "string_pattern_mismatch": "change the value to the form described",
    "bool_type": "write true or false (yes/no/on/off are read as text here, not as YAML 1.1 booleans)",
    "int_type": "write a whole number such as 42 (0o644 for octal; 0644 is text here)",
    "finite_number": "write a finite number",
    "float_type": "write a number such as 0.5 (a date, a time like 1:20 or a word is text here)",
    "greater_than": "write a larger number",
    "greater_than_equal": "write a larger number",
    "less_than": "write a smaller number",
    "less_than_equal": "write a smaller number",
    "too_short": "add at least one item",
    "dict_type": "write a mapping of keys to values (key: value, indented under this key)",
    "tuple_type": "write a list ([a, b] or one '- item' per line)",
}
_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+\Z")


def _pattern_words(pattern: str) -> str:
    from labcoat.content.models import PATTERN_WORDS

    return PATTERN_WORDS.get(pattern, "does not have the form this key takes (see schemas/*.schema.json)")


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
        if err["type"] == "string_pattern_mismatch":
            words = _pattern_words(str((err.get("ctx") or {}).get("pattern", "")))
            msg = f"{_shown_value(value)} is not allowed here; write {words}"
        elif err["type"] == "int_type" and isinstance(value, str) and _LEADING_ZERO.match(value):
            msg = f"must be a whole number, found {value!r}: a leading zero is read as text, not as octal"
        if err["type"] == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
            written = doc.raw.get(loc, repr(value))  # as in the file: 5.10, which YAML reads as 5.1
            msg = f"must be text, found the number {written}"
            if written != repr(value):
                msg += f" (YAML reads it as {value!r})"
            if loc and isinstance(loc[-1], str):
                hint = f'quote the value so YAML reads it as text: {loc[-1]}: "{written}"'
        errors.append(ContentError(f"{loc_shown}: {msg}", path=display, line=line, col=col, hint=hint))
    return errors


def _shown_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
    return load_model_with_doc(model, path, errors, display)[0]


def load_model_with_doc(
    model: type[M], path: Path, errors: list[ContentError], display: str | None = None
) -> tuple[M | None, YamlDoc | None]:
    """`load_model_collecting`, also giving the YamlDoc (for file:line of cross-reference errors)."""
    shown = display or str(path)
    try:
        doc = read_yaml(path, shown)
        check_schema_version(doc, shown)
    except ContentError as exc:
        errors.append(exc)
        return None, None
    try:
        obj = model.model_validate(doc.data, context={"path": path})
    except ValidationError as exc:
        errors.extend(validation_errors(doc, exc, shown))
        return None, doc
    problems = getattr(obj, "problems", None)
    found = problems() if callable(problems) else []
    for loc, message, hint in found:
        line, col = doc.where(loc)
        errors.append(ContentError(message, path=shown, line=line, col=col, hint=hint))
    return (None if found else obj), doc
