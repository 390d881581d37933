"""Issue 15, terminal: text from outside is never markup and never an escape sequence."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from labcoat.content.files import FileProblem, confine, read_bytes_bounded
from labcoat.report import terminal
from labcoat.report.console import print_parts

HOSTILE = "\x1b[2J\x1b]0;pwned\x07 [/] [bold]x[/bold] \x9b31m \ud800 \x00 \x7f tab\tnew\nline\r\n"


def render(*objects: object, force_terminal: bool = True) -> str:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=force_terminal, highlight=False,
                      color_system="standard" if force_terminal else None)
    for obj in objects:
        console.print(obj)
    return out.getvalue()


def test_clean_makes_controls_visible_and_keeps_tabs_and_newlines() -> None:
    text = terminal.clean(HOSTILE)
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text and "\x00" not in text
    assert "\ud800" not in text and "\r" not in text and "\x7f" not in text
    assert "␛[2J␛]0;pwned␇" in text and "\ufffd31m" in text and "␀" in text and "␡" in text
    assert "tab\tnew\nline\n" in text
    text.encode("utf-8")  # a lone surrogate can no longer crash the output


def test_plain_is_shown_as_written_inside_markup() -> None:
    out = render(f"[green]ok[/] {terminal.plain(HOSTILE)}", force_terminal=False)
    assert "[/] [bold]x[/bold]" in out and "\x1b" not in out


def test_literal_is_never_markup() -> None:
    out = render(terminal.literal("[/]"), force_terminal=False)
    assert out == "[/]\n"


def test_markdown_of_hostile_text_emits_no_escape_from_the_text() -> None:
    """Rich styles Markdown with its own escapes; none of the text's own ESC/CSI reach the terminal."""
    out = render(terminal.markdown("# Title\n\n" + HOSTILE))
    assert "2J" not in out.replace("␛[2J", "") and "]0;pwned\x07" not in out and "\x9b" not in out


def test_markdown_is_cut_to_its_bound_quickly() -> None:
    text = "[" * (2 * terminal.MAX_SHOWN)
    start = time.monotonic()
    out = render(terminal.markdown(text), force_terminal=False)
    assert time.monotonic() - start < 30  # ~1.5 s here; unbounded, 20 MiB took 101 s
    assert f"cut: the text is longer than {terminal.MAX_SHOWN} characters" in out


def test_check_results_are_printed_safely() -> None:
    from types import SimpleNamespace as NS

    check = NS(check="test_x", status="failed", title=HOSTILE, expected=HOSTILE, found=HOSTILE, hint=HOSTILE,
               message=None)
    part = NS(part="part1", title=HOSTILE, status="failed", points=0, max_points=1, skipped_reason=None,
              checks=[check])
    out = io.StringIO()
    print_parts(Console(file=out, width=200, force_terminal=False), [part])
    assert "\x1b" not in out.getvalue() and "[/] [bold]x[/bold]" in out.getvalue()


def test_error_messages_are_cleaned(cli, tmp_path) -> None:
    """A file name holding ESC (content from an archive) is shown with the ESC made visible."""
    root = tmp_path / "content"
    (root / "labs").mkdir(parents=True)
    (root / "labs" / "\x1b[2Jx.yaml").write_text("schema_version: 1\nid: [\n")
    result = cli("--content", str(root), "list")
    assert result.exit_code == 3, result
    assert "\x1b" not in result.stderr and "␛[2Jx.yaml" in result.stderr
    result = cli("validate", str(root))
    assert result.exit_code == 3, result
    assert "\x1b" not in result.stderr and "␛[2Jx.yaml" in result.stderr


def test_show_cleans_markdown(cli, content_tree) -> None:
    content_tree.write("labs/1.1/intro.md", "# Intro\n\n\x1b]0;pwned\x07 [/] text\n")
    result = cli("--content", str(content_tree.root), "show", "intro", "--lab", "1.1")
    assert result.exit_code == 0, result
    assert "\x1b" not in result.stdout and "[/] text" in result.stdout and "␛]0;pwned␇" in result.stdout


# ----------------------------------------------------------------------------- files.py


def test_read_bounded_refuses_what_is_not_a_regular_file(tmp_path) -> None:
    import os

    os.mkfifo(tmp_path / "fifo")
    for path, words in ((tmp_path / "fifo", "named pipe"), ("/dev/zero", "character device"),
                        (tmp_path, "folder"), (tmp_path / "missing", "does not exist")):
        with pytest.raises(FileProblem) as info:
            read_bytes_bounded(path, 1024)
        assert words in info.value.message


def test_read_bounded_caps_the_size(tmp_path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 2048)
    with pytest.raises(FileProblem, match="too large"):
        read_bytes_bounded(path, 1024)
    assert read_bytes_bounded(path, 2048) == b"x" * 2048


def test_confine(tmp_path) -> None:
    import os

    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f.md").write_text("x")
    (tmp_path / "outside.md").write_text("secret")
    os.symlink(tmp_path / "outside.md", root / "a" / "out.md")
    assert confine(root, root / "a", "f.md") == root / "a" / "f.md"
    for rel, words in (("out.md", "outside the content folder"), ("../../outside.md", "outside the content folder"),
                       ("/etc/passwd", "absolute path"), ("x\0y", "NUL"), ("gone.md", "does not exist")):
        with pytest.raises(FileProblem) as info:
            confine(root, root / "a", rel)
        assert words in info.value.message, rel
