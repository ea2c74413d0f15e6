"""Label many structures with pw.x in parallel through an executor, storing results as they finish."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ase import Atoms

from alml.compute import ExecutorConfig, TaskOutcome, make_executor, run_batch
from alml.data import Store
from alml.dft.errors import DFTError
from alml.dft.espresso import validate_structure
from alml.dft.settings import DFTSettings, PwProfile
from alml.dft.tasks import DFTResult, label, settings_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelOutcome:
    """One structure of a batch: status "done" (computed now), "reused" (found finished) or "failed"."""

    index: int
    formula: str
    n_atoms: int
    status: str
    free_energy: float | None = None
    wall_time: float | None = None
    error: str | None = None
    row_id: int | None = None


def _label_one(atoms: Atoms, settings: DFTSettings, profile: PwProfile, root: Path, sh: str) -> DFTResult:
    return label(atoms, settings, profile, root, settings_h=sh)


def label_structures(
    structures: list[Atoms],
    settings: DFTSettings | None = None,
    profile: PwProfile | None = None,
    root: str | Path = "runs/dft",
    store: Store | None = None,
    executor: ExecutorConfig | None = None,
    source: str = "dft",
    generation: int = 0,
    progress: bool = True,
    on_label: Callable[[LabelOutcome], None] | None = None,
) -> list[LabelOutcome]:
    """Run (or reuse) pw.x for every structure; add each result to ``store`` when given, as it finishes.

    Structures that cannot be computed (overlapping atoms, unknown elements, no cell) fail at once
    without a retry. Cores are split between concurrent pw.x runs and their MPI ranks by the
    executor's planner; ``profile.ranks`` is overridden by that plan; the runs start in the order given.
    ``on_label`` is called with each structure's outcome once it is final and stored (the ones that
    fail validation first, then the rest in the order they finish).
    """
    settings = settings or DFTSettings()
    profile = profile or PwProfile()
    executor = executor or ExecutorConfig()
    sh = settings_hash(settings)
    outcomes: dict[int, LabelOutcome] = {}
    runnable: list[int] = []
    for i, atoms in enumerate(structures):
        try:
            validate_structure(atoms, settings)
            runnable.append(i)
        except DFTError as err:
            outcomes[i] = LabelOutcome(i, atoms.get_chemical_formula(), len(atoms), "failed", error=str(err))
            if on_label is not None:
                on_label(outcomes[i])

    def record(res: TaskOutcome) -> None:
        i = runnable[res.index]
        atoms = structures[i]
        formula, n = atoms.get_chemical_formula(), len(atoms)
        if not res.ok:
            outcomes[i] = LabelOutcome(i, formula, n, "failed", error=res.error)
        else:
            r: DFTResult = res.value
            row_id = None
            if store is not None:
                src = str(atoms.info.get("source", source))
                row_id, _ = store.add(r.to_atoms(atoms), source=src, generation=generation, settings_hash=sh)
            outcomes[i] = LabelOutcome(
                i, formula, n, "reused" if r.reused else "done", r.free_energy, r.wall_time, row_id=row_id
            )
        if on_label is not None:
            on_label(outcomes[i])

    with make_executor(executor, n_tasks=max(1, len(runnable))) as ex:
        prof = profile.model_copy(update={"ranks": ex.ranks_per_task})
        fn = partial(_label_one, settings=settings, profile=prof, root=Path(root), sh=sh)
        run_batch(
            ex,
            fn,
            [structures[i] for i in runnable],
            retries=executor.retries,
            description=f"pw.x ({ex.workers} x {ex.ranks_per_task} ranks)",
            progress=progress,
            on_outcome=record,
        )
    return [outcomes[i] for i in range(len(structures))]
