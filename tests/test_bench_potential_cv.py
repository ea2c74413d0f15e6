"""The fold assignment of bench/potential_cv.py: every frame in one fold, each category spread over the folds,
folds of equal size, the same folds for the same seed."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "bench" / "potential_cv.py"
_spec = importlib.util.spec_from_file_location("potential_cv", _PATH)
cv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cv)


def test_folds_are_stratified_and_balanced():
    cats = ["fcc"] * 9 + ["liquid"] * 7 + ["bcc"] * 3 + ["hcp"] * 2
    fold = cv.folds_by_category(cats, 5, seed=0)
    assert sorted(Counter(fold.tolist()).values()) == [4, 4, 4, 4, 5]  # 21 frames: sizes differ by at most 1
    for c in set(cats):
        per_fold = Counter(int(f) for f, ci in zip(fold, cats) if ci == c)
        assert max(per_fold.values()) - min(per_fold.get(k, 0) for k in range(5)) <= 1, c
    assert (cv.folds_by_category(cats, 5, seed=0) == fold).all()
    assert (cv.folds_by_category(cats, 5, seed=1) != fold).any()
