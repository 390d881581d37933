"""Hypothesis strategies for hostile input: one mutation of a real file, or a whole hostile file.

The tokens are the ones issue 15 measured (each broke labcoat once) plus their relatives;
the mutations are the ones a careless or malicious author makes: a value replaced, a line
lost or doubled, indentation off, the file cut short, random bytes, a symlink or a FIFO
where a file was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

SECRET = "secret.txt"  # planted next to the content folder: reading it is a read outside the content root

# Values that each crashed, hung or fooled labcoat once (issue 15), and their relatives.
TOKENS = [
    "2020-13-45", "2020-02-30 25:61:61", "0x_", "0x", "0o", "0b102", "1_000", "1__0", "!foo 20", "!!float abc",
    "!!int 1.5", "!!python/object/apply:os.system [echo]", "!!binary '@@'", "!!timestamp x", "!!set {a}",
    "<<: 5", "{<<: [1]}", "1" + "0" * 400, "1" + "0" * 4400, "-" + "9" * 4301, "1e999999999", "-1e999999999",
    "1e-999999999", "1.5e308", "1.8e308", ".nan", ".inf", "-.inf", "0644", "-16:40", "190:20:30", "yes", "no",
    "on", "off", "y", "~", "null", "", "[]", "{}", "[[[[]]]]", "*undefined", "&a [*a]", "&b {x: *b}", "${nope}",
    "${", "$${x}", "-50", "0", "-1", "2147483648", "9223372036854775808", "=", "? [a]\n: b", '"\\ud800"',
    '"\\udfff x"', '"\\e[2J\\e]0;pwned\\a"', '"\\x9b31m"', '"\\0"', '"\\N\\L\\P"', '"[/]"', '"[bold red]x[/]"',
    "[link=http://x]y", '"\\u202e rtl"', "../../etc/passwd", "/etc/passwd", "../../" + SECRET, "../../../" + SECRET,
    "5.3/../../../" + SECRET, "/dev/zero", "..", ".", "./", "x/../../..", "a\\b", "%00", "'unterminated",
    '"unterminated', "- a\n- b", "|", ">", "|-\n  x", "!", "!!str", "&", "*", "@x", "`x`", "#", "key: value: x",
    "5m", "0m", "2048g", "1" + "0" * 30 + "m", "9999999999999999g", "0.0000001m", "64mb", "64 Mi",
]

BOMB = "".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n']
    + [f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)]
)

WHOLE_FILES = [
    "", "\n", "---\n---\n", "schema_version: 1\n---\nid: x\n", "- a\n- b\n", "just text", "schema_version: 1\n" + BOMB,
    "schema_version: 1\nx: " + "[" * 5000 + "]" * 5000 + "\n", "schema_version: 1\nx: " + "{a: " * 500 + "1" + "}" * 500,
    "schema_version: 1\n" + "".join(f"{' ' * i}k:\n" for i in range(0, 1200, 2)) + "v\n",
    "schema_version: 1\nx: &a\n  y: *a\n", "schema_version: !!python/name:os.system 1\n", "%YAML 1.1\n---\nx: 1\n",
    "%TAG ! tag:evil.com,2000:\n---\nx: !y 1\n", "\ufeffschema_version: 1\n", "schema_version: 99\n",
    "schema_version: 1\n" + "k: v\n" * 20000,
]

MARKDOWN = [
    "\x1b[2J\x1b]0;pwned\x07 title", "[/] [bold]x[/bold] [link=http://x]y[/link]", "*a" * 20000, "[" * 50000,
    "word " * 60000, "x" * 300_000, "`" * 10000, "<script>alert(1)</script>\n" * 100, "\u202e reversed",
    "[a](javascript:alert(1)) ![i](/etc/passwd) [b](../../" + SECRET + ")", "> " * 5000 + "deep",
    "| a |\n|---|\n" + "| x |\n" * 5000, "\x00\x01\x02\x7f\x9b", "&#27;[2J &#x1b;",
]
MARKDOWN_BYTES = [b"\xff\xfe bad", b"caf\xe9\n", b"\xed\xa0\x80 surrogate", b"\xc0\xaf", b"ok\x00nul"]

SPECIAL = ["secret", "dev-zero", "dangling", "loop", "fifo", "directory", "self-loop-dir"]


@dataclass(frozen=True)
class Mutation:
    """One change to one file of a content tree (or answers file, or import folder)."""

    file: str  # relative to the tree
    kind: str
    line: int = 0
    payload: str = ""
    raw: bytes = b""

    def apply(self, root: Path, secret: Path) -> None:
        path = root / self.file
        if self.kind == "special":
            _special(path, self.payload, secret)
            return
        if self.kind == "whole":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.payload, encoding="utf-8", errors="surrogatepass")
            return
        if self.kind == "bytes":
            data = path.read_bytes() if path.is_file() else b""
            at = self.line % (len(data) + 1)
            path.write_bytes(data[:at] + self.raw + data[at:])
            return
        if self.kind == "truncate":
            data = path.read_bytes()
            path.write_bytes(data[: self.line % (len(data) + 1)])
            return
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True) or [""]
        i = self.line % len(lines)
        line = lines[i]
        if self.kind == "value":
            key, sep, _ = line.partition(": ")
            lines[i] = (key + sep if sep else line.rstrip("\n") + " ") + self.payload + "\n"
        elif self.kind == "insert":
            indent = line[: len(line) - len(line.lstrip(" -"))]
            lines.insert(i, indent + self.payload + "\n")
        elif self.kind == "delete":
            del lines[i]
        elif self.kind == "duplicate":
            lines.insert(i, line)
        elif self.kind == "indent":
            lines[i] = (" " * (len(self.payload) % 5) + line) if len(self.payload) % 2 else line.lstrip(" ")
        elif self.kind == "swap":
            j = len(self.payload) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        elif self.kind == "append":
            lines.append(self.payload)
        path.write_text("".join(lines), encoding="utf-8", errors="surrogatepass")


def _special(path: Path, what: str, secret: Path) -> None:
    """Replace a file by something that is not a plain file inside the tree."""
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if what == "secret":
        os.symlink(secret, path)
    elif what == "dev-zero":
        os.symlink("/dev/zero", path)
    elif what == "dangling":
        os.symlink(path.parent / "nowhere-at-all", path)
    elif what == "loop":
        os.symlink(path.name, path)
    elif what == "fifo":
        os.mkfifo(path)
    elif what == "directory":
        path.mkdir()
    elif what == "self-loop-dir":
        path.mkdir()
        os.symlink("..", path / "up")


def text_payload() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(TOKENS), st.text(max_size=40),
                     st.text(alphabet=st.characters(codec="utf-8"), max_size=20))


def mutations(files: list[str], markdown: tuple[str, ...] = ()) -> st.SearchStrategy[Mutation]:
    """One mutation of one of `files` (text files) or `markdown` (Markdown files)."""
    line = st.integers(min_value=0, max_value=10_000)
    text_file = st.sampled_from(files)
    edits = st.builds(Mutation, file=text_file,
                      kind=st.sampled_from(["value", "value", "value", "insert", "delete", "duplicate", "indent",
                                            "swap", "append"]),
                      line=line, payload=text_payload())
    whole = st.builds(Mutation, file=text_file, kind=st.just("whole"), payload=st.sampled_from(WHOLE_FILES))
    raw = st.builds(Mutation, file=text_file, kind=st.just("bytes"), line=line,
                    raw=st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from(MARKDOWN_BYTES)))
    cut = st.builds(Mutation, file=text_file, kind=st.just("truncate"), line=line)
    special = st.builds(Mutation, file=text_file, kind=st.just("special"), payload=st.sampled_from(SPECIAL))
    options = [edits, edits, edits, whole, raw, cut, special]
    if markdown:
        md_file = st.sampled_from(list(markdown))
        options += [
            st.builds(Mutation, file=md_file, kind=st.just("whole"), payload=st.sampled_from(MARKDOWN)),
            st.builds(Mutation, file=md_file, kind=st.just("bytes"), line=line, raw=st.sampled_from(MARKDOWN_BYTES)),
            st.builds(Mutation, file=md_file, kind=st.just("special"), payload=st.sampled_from(SPECIAL)),
            st.builds(Mutation, file=md_file, kind=st.just("append"), line=line,
                      payload=st.one_of(st.sampled_from(MARKDOWN), st.text(max_size=200))),
        ]
    return st.one_of(*options)
