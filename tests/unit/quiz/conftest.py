"""Quizzes for the quiz tests: the real 5.3 quiz, a hand-sized mini quiz and a content root holding both."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labcoat.content.loader import load_model
from labcoat.content.quiz import Quiz

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
ANSWERS = HERE / "answers"
QUIZ_53 = ROOT / "quizzes" / "5.3.yaml"
MINI = HERE / "mini-quiz.yaml"


@pytest.fixture(scope="session")
def quiz53() -> Quiz:
    return load_model(Quiz, QUIZ_53)


@pytest.fixture(scope="session")
def mini() -> Quiz:
    return load_model(Quiz, MINI)


@pytest.fixture
def answers_dir() -> Path:
    return ANSWERS


@pytest.fixture
def quiz_content(tmp_path: Path) -> Path:
    """A content root with only quizzes/ (5.3 and mini), so CLI tests do not depend on other content."""
    root = tmp_path / "content"
    (root / "quizzes").mkdir(parents=True)
    shutil.copy(QUIZ_53, root / "quizzes" / "5.3.yaml")
    shutil.copy(MINI, root / "quizzes" / "mini.yaml")
    return root
