"""Fuzz: quiz answers files (also what a submission's answers file goes through in `lab grade`).

Answers come from students. Each case writes one answers file, built from the quiz's own
question and choice ids with hostile values, or a hostile file outright, and runs
`lab quiz 5.3 --answers FILE --json` in-process (the `cli` fixture) in a forked child:
exit 0, 1 or 2 (README, `lab quiz --help`), no traceback, within the deadline, no file
opened outside the content and the answers file's folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from fuzz_harness import ROOT, fuzz_settings, run_forked
from hostile_inputs import BOMB, SPECIAL, TOKENS, WHOLE_FILES, Mutation, text_payload
from hypothesis import example, given
from hypothesis import strategies as st

QUIZ = yaml.safe_load((ROOT / "quizzes" / "5.3.yaml").read_text())
IDS = [q["id"] for q in QUIZ["questions"]]
OPTION_IDS = sorted({c["id"] for q in QUIZ["questions"] for c in q.get("choices", []) + q.get("items", [])})
QUIZ_CODES = {0, 1, 2}
CONTENT = [ROOT / d for d in ("labs", "checks", "scenarios", "quizzes", "images")]

leaf = st.one_of(st.sampled_from(OPTION_IDS), st.sampled_from(TOKENS), text_payload(), st.integers(),
                 st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
                 st.sampled_from(["100Mi", "-997", "1e999999999", "1" + "0" * 5000, "0x1p-1074", "½", "١٢٣"]),
                 st.builds(lambda w, n: " ".join([w] * n), st.sampled_from(["not", "no", "never", "memory", "x"]),
                           st.integers(0, 12_000)))
value = st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                   st.dictionaries(st.sampled_from(OPTION_IDS + IDS), inner,
                                                                   max_size=4)), max_leaves=12)
structured = st.builds(
    lambda answers, extra: yaml.safe_dump({"schema_version": 1, "quiz": "5.3", "answers": answers, **extra},
                                          allow_unicode=True, width=1 << 20),
    st.dictionaries(st.one_of(st.sampled_from(IDS), st.text(max_size=10)), value, max_size=len(IDS)),
    st.dictionaries(st.sampled_from(["schema_version", "quiz", "extra"]), leaf, max_size=2),
)
# A structured file with one raw token written into a line (tags, aliases, bad numbers that safe_dump would quote).
raw_line = st.builds(lambda doc, i, token: "\n".join(
    line.split(": ", 1)[0] + ": " + token if n == i % max(1, doc.count("\n")) and ": " in line else line
    for n, line in enumerate(doc.splitlines())) + "\n", structured, st.integers(0, 100), st.sampled_from(TOKENS))
whole = st.sampled_from(WHOLE_FILES + ["schema_version: 1\nanswers:\n" + BOMB.replace("\n", "\n  ")])


@fuzz_settings(default=60)
@given(text=st.one_of(structured, raw_line, raw_line, whole), special=st.sampled_from([None] * 12 + SPECIAL))
@example(text="schema_version: 1\nanswers:\n  oom-score-adj-never: !!python/object/apply:os.system [echo]\n",
         special=None)
@example(text="schema_version: 1\nanswers: &a\n  x: *a\n", special=None)
@example(text="schema_version: 1\nanswers:\n  oom-score-adj-never: " + "1" * 4400 + "\n", special=None)
@example(text="schema_version: 1\nanswers:\n  oom-score-adj-never: 1" + "0" * 400 + "\n", special=None)
@example(text='schema_version: 1\nanswers:\n  oom-score-adj-never: "1e999999999"\n', special=None)
@example(text="schema_version: 1\nanswers:\n  java-pod-explain: " + "not " * 50_000 + "\n", special=None)
@example(text="", special="fifo")
@example(text="", special="dev-zero")
def test_answers_files(cli, scratch, warm, text: str, special: str | None) -> None:
    warm(["quiz", "5.3", "--answers", str(ROOT / "tests" / "fuzz" / "answers-ok.yaml"), "--json", "--no-save"])
    folder = scratch()
    path = folder / "answers.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    if special is not None and special != "secret":  # the learner names the file: following its symlink is fine
        Mutation("answers.yaml", "special", payload=special).apply(folder, folder / "elsewhere.txt")

    def case() -> list[tuple[int, str, str]]:
        result = cli("quiz", "5.3", "--answers", str(path), "--json", "--no-save")
        return [(result.exit_code, result.stdout, result.stderr)]

    named = Path(os.path.realpath(path))  # the file the learner named, wherever its symlink points
    outcome = run_forked(case, allowed=[folder, named, *CONTENT])
    outcome.check(f"answers file ({special}) {text[:5000]!r}", QUIZ_CODES)


def test_the_warm_up_answers_file_is_valid() -> None:
    data = yaml.safe_load((Path(__file__).parent / "answers-ok.yaml").read_text())
    assert set(data["answers"]) <= set(IDS)
