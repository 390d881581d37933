"""The quiz engine: pure scoring (`engine`), answers files (`answers`), the terminal quiz
(`interactive`) and attempts on disk (`progress`). The schema is `labcoat.content.quiz`."""
