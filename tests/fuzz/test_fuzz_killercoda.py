"""Fuzz: `lab import killercoda DIR OUT` on a mutated copy of a Killercoda scenario folder.

The folders come from tests/fixtures/killercoda; one mutation of index.json, a step's
Markdown or a script (or a symlink / FIFO where a file was). The import must end with
a documented exit code, no traceback, within the deadline, and open nothing outside
the scenario folder, the output folder and labcoat's own images (a secret planted next
to the scenario folder is the bait).
"""

from __future__ import annotations

import shutil

from fuzz_harness import ROOT, fuzz_settings, leaked, plant_secret, run_forked
from hostile_inputs import SECRET, Mutation, mutations
from hypothesis import assume, example, given
from hypothesis import strategies as st

FIXTURES = ROOT / "tests" / "fixtures" / "killercoda"
SCENARIOS = sorted(p.name for p in FIXTURES.iterdir() if (p / "index.json").is_file())
FILES = sorted({str(p.relative_to(FIXTURES / name)) for name in SCENARIOS
                for p in (FIXTURES / name).rglob("*") if p.is_file()})
TEXT_FILES = sorted(f for f in FILES if not f.endswith(".md")) + ["index.json"]
MARKDOWN = tuple(f for f in FILES if f.endswith(".md"))


@fuzz_settings(default=30)
@given(scenario=st.sampled_from(SCENARIOS), mutation=mutations(TEXT_FILES, MARKDOWN))
@example(scenario="runaway-process", mutation=Mutation("step1/text.md", "special", payload="secret"))
@example(scenario="runaway-process", mutation=Mutation("index.json", "value", 6, '"../../' + SECRET + '",'))
@example(scenario="runaway-process", mutation=Mutation("index.json", "special", payload="fifo"))
@example(scenario="runaway-process", mutation=Mutation("index.json", "whole", payload="[" * 100_000))
def test_killercoda_import(cli, scratch, warm, scenario: str, mutation: Mutation) -> None:
    warm(["import", "killercoda", str(FIXTURES / scenario), str(scratch() / "warm")])
    base = scratch()
    secret = plant_secret(base, SECRET)
    src = base / "scenario" / scenario
    shutil.copytree(FIXTURES / scenario, src, symlinks=True)
    # Not every scenario has every file: such a draw is not a case (hypothesis draws another instead).
    assume((src / mutation.file).exists() or mutation.kind in ("special", "whole"))
    mutation.apply(src, secret)
    out = base / "out"

    def case() -> list[tuple[int, str, str]]:
        result = cli("import", "killercoda", str(src), str(out))
        return [(result.exit_code, result.stdout, result.stderr)]

    outcome = run_forked(case, allowed=[src, out, ROOT / "images"])
    outcome.check(f"{scenario}: {mutation}", extra=leaked(out))
