"""Measure how an engine scores the labelled free-text answers (docs/quiz.md, "Measured").

Not a test: run it against any labcoat source tree, e.g. the pre-issue-14 engine and this one:

    git archive <old-commit> src quizzes | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/src python tests/unit/quiz/measure_text_scoring.py /tmp/old/quizzes/5.3.yaml
    PYTHONPATH=src python tests/unit/quiz/measure_text_scoring.py quizzes/5.3.yaml

It prints, per label (fair / attack), the automatic points given and the points possible, and
the reference answers file's automatic score.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import yaml

from labcoat.content.loader import load_model
from labcoat.content.quiz import Quiz
from labcoat.quiz.engine import score_answer

HERE = Path(__file__).resolve().parent


def main(quiz_file: str) -> None:
    quiz = load_model(Quiz, Path(quiz_file))
    labelled = yaml.safe_load((HERE / "labelled" / "text-answers.yaml").read_text())["answers"]
    totals: dict[str, list[Fraction]] = {}
    rows = []
    for entry in labelled:
        q = quiz.question(entry["question"])
        result = score_answer(q, entry["text"])
        possible = Fraction(q.points)  # the points the answer competes for (manual points for explain)
        got, _ = totals.setdefault(entry["label"], [Fraction(0), Fraction(0)])
        totals[entry["label"]][0] += result.points
        totals[entry["label"]][1] += possible
        rows.append({"question": q.id, "label": entry["label"], "auto_points": float(result.points),
                     "points": q.points, "auto_full": result.points == q.points})
    out = {label: {"answers": sum(1 for r in rows if r["label"] == label), "auto_points": float(p),
                   "possible": float(m),
                   "answers_with_points": sum(1 for r in rows if r["label"] == label and r["auto_points"] > 0),
                   "answers_losing_points": sum(1 for r in rows if r["label"] == label and not r["auto_full"])}
           for label, (p, m) in totals.items()}
    sys.stdout.write(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
