"""Fuzz: one mutation of the real course content, then `lab validate`, `lab list` and `lab show`.

Whatever the mutation, each command ends with a documented exit code (never 70), prints
no traceback and no escape sequence, finishes within the deadline and opens no file
outside the content folder (a secret planted next to it is the bait). When `validate`
accepts the content, `list` and `show` must work on it too.
"""

from __future__ import annotations

from fuzz_harness import ROOT, copy_content, fuzz_settings, plant_secret, run_forked
from hostile_inputs import SECRET, Mutation, mutations
from hypothesis import example, given

YAML_FILES = sorted(str(p.relative_to(ROOT)) for d in ("labs", "scenarios", "quizzes", "images")
                    for p in (ROOT / d).rglob("*.yaml"))
MARKDOWN_FILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "labs").rglob("*.md"))
OTHER_FILES = sorted(str(p.relative_to(ROOT)) for d in ("labs", "checks", "images")
                     for p in (ROOT / d).rglob("*") if p.is_file() and p.suffix in (".sh", ".py", ".c", ""))

COMMANDS = (["validate"], ["list"], ["list", "--json"], ["show", "intro", "--lab", "5.3"],
            ["show", "part1", "--lab", "5.3"])
INTRO_LAB = (ROOT / "labs" / "5.3.yaml").read_text().replace('id: "5.3"', 'id: "intro"').replace(
    'title: "Linux', 'title: "[/] \\e[2J Linux')


@fuzz_settings(default=40)
@given(mutation=mutations(YAML_FILES + OTHER_FILES, tuple(MARKDOWN_FILES)))
@example(mutation=Mutation("labs/5.3.yaml", "value", 13, "../../" + SECRET))  # intro: ../../secret.txt
@example(mutation=Mutation("labs/5.3.yaml", "special", payload="fifo"))
@example(mutation=Mutation("labs/5.3/intro.md", "special", payload="secret"))
@example(mutation=Mutation("labs/intro.yaml", "whole", payload=INTRO_LAB))
def test_mutated_content(cli, scratch, warm, mutation: Mutation) -> None:
    warm(*(["--content", str(ROOT), *args] for args in COMMANDS))
    base = scratch()
    secret = plant_secret(base, SECRET)
    root = copy_content(base)
    mutation.apply(root, secret)

    def case() -> list[tuple[int, str, str]]:
        runs = []
        for args in COMMANDS:
            result = cli("--content", str(root), *args)
            runs.append((result.exit_code, result.stdout, result.stderr))
        return runs

    outcome = run_forked(case, allowed=[root])
    outcome.check(f"{mutation}", extra=consistency(outcome.exit_codes))


def consistency(codes: list[int]) -> list[str]:
    """What validate accepts every command can use; what it refuses, list refuses too."""
    if len(codes) != len(COMMANDS):
        return []  # the case crashed or hung: reported already
    valid, listed, listed_json, intro, part1 = codes
    if valid not in (0, 3) or listed not in (0, 3) or listed_json not in (0, 3):
        return [f"validate/list exits {codes[:3]}: only 0 or 3 are expected"]
    if valid == 0 and ((listed, listed_json) != (0, 0) or intro not in (0, 2) or part1 not in (0, 2)):
        return [f"validate accepted the content but list/show exit {codes[1:]}"]  # 2: a renamed lab or part
    if valid == 3 and listed != 3:
        return ["list accepted content that validate refuses"]
    return []

