"""MALA layout: export -> import round trip, import from a real pw.x output, training equivalence, bad layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from surrogate_data import LADDER, SETTINGS, SHAPE, T, true_ldos, write_snapshot

from alml.data.grids import LdosFile, QEReference, read_ldos_h5
from alml.descriptors import read_grid_h5
from alml.nn import LoopConfig, MLPConfig
from alml.surrogate.mala import (
    MalaFiles,
    MalaImportConfig,
    export_mala_snapshot,
    find_mala_snapshots,
    grid_coordinates,
    import_mala_dataset,
    import_mala_snapshot,
)
from alml.surrogate.model import LdosModelConfig, predict_members
from alml.surrogate.train import ValidationSnapshot, train_ldos_model
from alml.units import KB, RYDBERG

PW_OUT = Path(__file__).parent / "data" / "pw_al4_fd1000K.out"  # real pw.x 6.7 SCF: 4 Al, FD 1000 K, FFT 18^3
PW_SHAPE = (18, 18, 18)


def reference() -> QEReference:
    return QEReference(
        fermi_level=1.25, band_energy=-3.5, free_energy=-230.1, energy=-230.0, n_electrons=12.0,
        terms={"one_electron": 1.0, "hartree": 2.0, "xc": -3.0, "ewald": -4.0, "smearing_minus_ts": -0.1},
        eigenvalues=np.arange(6.0).reshape(2, 3), k_weights=np.array([1.0, 1.0]), occupations=np.full((2, 3), 0.5),
    )


def test_export_import_round_trip_is_exact(tmp_path: Path) -> None:
    native = write_snapshot(tmp_path / "native" / "s0", seed=1, reference=reference(), ecutrho=653.0)
    files = export_mala_snapshot(native, tmp_path / "mala", "Al_snapshot0", qe_output=PW_OUT)
    x = np.load(files.descriptors)
    assert x.shape == (*SHAPE, 3 + SETTINGS.n_components) and np.load(files.ldos).shape == (*SHAPE, LADDER.n)
    with LdosFile(native / "ldos.h5") as f:
        assert np.allclose(x[..., :3], grid_coordinates(f.atoms.cell[:], SHAPE, 0, SHAPE[2]), atol=1e-5)
    info = json.loads(files.info.read_text())
    assert info["mala_parameters"]["targets.ldos_gridsize"] == LADDER.n
    assert info["mala_parameters"]["targets.ldos_gridoffset_ev"] == pytest.approx(LADDER.emin)
    assert info["mala_parameters"]["descriptors.bispectrum_twojmax"] == 2
    assert files.qe_output is not None and files.qe_output.read_text() == PW_OUT.read_text()

    (out,) = import_mala_dataset(tmp_path / "mala", tmp_path / "imported")  # info.json wins over the pw.x output
    assert out == tmp_path / "imported" / "Al_snapshot0"
    a, ma = read_ldos_h5(native / "ldos.h5")
    b, mb = read_ldos_h5(out / "ldos.h5")
    assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(ma.ladder.energies, mb.ladder.energies)
    assert (ma.ladder.broadening, ma.ladder.kernel) == (mb.ladder.broadening, mb.ladder.kernel)
    assert np.array_equal(ma.atoms.positions, mb.atoms.positions) and np.array_equal(ma.atoms.cell[:], mb.atoms.cell[:])
    assert np.array_equal(ma.atoms.numbers, mb.atoms.numbers)
    assert (ma.temperature, ma.n_electrons, ma.ecutrho) == (mb.temperature, mb.n_electrons, mb.ecutrho)
    ra, rb = ma.reference, mb.reference
    assert ra is not None and rb is not None
    assert (ra.band_energy, ra.free_energy, ra.fermi_level, ra.terms) == (rb.band_energy, rb.free_energy,
                                                                          rb.fermi_level, rb.terms)
    assert np.array_equal(ra.eigenvalues, rb.eigenvalues) and np.array_equal(ra.k_weights, rb.k_weights)
    xa, sa, _ = read_grid_h5(native / "descriptors.h5")
    xb, sb, _ = read_grid_h5(out / "descriptors.h5")
    assert xa.dtype == xb.dtype and np.array_equal(xa, xb) and sa == sb


def _mala_dir(tmp_path: Path, seeds: list[int]) -> list[Path]:
    natives = [write_snapshot(tmp_path / "native" / f"s{s}", seed=s) for s in seeds]
    for n, s in zip(natives, seeds):
        export_mala_snapshot(n, tmp_path / "mala", f"Al_snapshot{s}")
    return natives


def test_model_trained_on_imported_snapshots_equals_native(tmp_path: Path) -> None:
    natives = _mala_dir(tmp_path, [2, 10, 3])  # natural order: 2, 3, 10
    assert [f.name for f in find_mala_snapshots(tmp_path / "mala")] == ["Al_snapshot2", "Al_snapshot3", "Al_snapshot10"]
    imported = import_mala_dataset(tmp_path / "mala", tmp_path / "imported")
    cfg = LdosModelConfig(
        network=MLPConfig(hidden=(16,), activation="tanh"), members=1, seed=5, batch_size=64,
        training=LoopConfig(epochs=4, lr=5e-3, patience=None, schedule="constant"),
    )
    native_model = train_ldos_model([natives[0], natives[2]], natives[1], cfg)
    imported_model = train_ldos_model(imported[:2], imported[2], cfg)
    v = ValidationSnapshot.read(natives[1])
    assert np.array_equal(predict_members(native_model, v.x, v.atoms), predict_members(imported_model, v.x, v.atoms))


def _pw_arrays(d: Path, name: str = "Al_snapshot0", shape: tuple[int, int, int] = PW_SHAPE) -> MalaFiles:
    """MALA-layout arrays for the real pw.x output's cell: x, y, z + 5 random descriptors, synthetic LDOS."""
    from ase.io import read

    atoms = read(PW_OUT, format="espresso-out")
    xd = np.random.default_rng(0).normal(size=(*shape, 5))
    x = np.concatenate([grid_coordinates(atoms.cell[:], shape, 0, shape[2]), xd], axis=-1)
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / f"{name}.in.npy", x)  # float64, as MALA writes them
    np.save(d / f"{name}.out.npy", true_ldos(xd).astype(np.float64))
    (d / f"{name}.out").write_text(PW_OUT.read_text())
    return MalaFiles.named(d, name)


def test_import_from_pw_output(tmp_path: Path) -> None:
    files = _pw_arrays(tmp_path / "mala")
    assert files.qe_output is not None and files.info is None
    cfg = MalaImportConfig(ldos_gridoffset_ev=-6.0, ldos_gridspacing_ev=0.25)
    out = import_mala_snapshot(files, tmp_path / "snap", cfg)
    y, meta = read_ldos_h5(out / "ldos.h5")
    assert np.array_equal(y, np.load(files.ldos).astype(np.float32))
    assert np.allclose(meta.ladder.energies, -6.0 + 0.25 * np.arange(LADDER.n))
    assert (meta.ladder.broadening, meta.ladder.kernel) == (0.5, "gaussian")  # MALADA: 2 x spacing, Gaussian
    assert meta.temperature == pytest.approx(0.0063 * RYDBERG / KB)  # pw.x prints the width with 4 decimals
    assert meta.ecutrho == pytest.approx(48.0 * RYDBERG) and meta.n_electrons == 12.0
    assert meta.atoms.positions[1] == pytest.approx([-0.0321890587, 2.0509622289, 1.9559538391], abs=1e-5)
    ref = meta.reference
    assert ref is not None and ref.fermi_level == pytest.approx(8.0418)
    assert ref.free_energy == pytest.approx(-21.74722890 * RYDBERG)
    assert ref.terms["smearing_minus_ts"] == pytest.approx(-0.00658257 * RYDBERG)
    assert ref.k_weights is not None and ref.k_weights.sum() == pytest.approx(2.0)
    assert ref.eigenvalues is not None and ref.eigenvalues.shape == (8, 10)
    # QE's own band energy of this run (Σ w f ε from its data-file-schema.xml): 43.28511812684863 eV; the printed
    # eigenvalues and width are rounded, so allow 0.1 meV/atom
    assert ref.band_energy == pytest.approx(43.28511812684863, abs=4 * 1e-4)
    xb, settings, _ = read_grid_h5(out / "descriptors.h5")
    assert settings.twojmax == 2 and np.array_equal(xb, np.load(files.descriptors)[..., 3:].astype(np.float32))
    # a second import of unchanged files keeps the folder; overwrite rewrites it
    stamp = (out / "ldos.h5").stat().st_mtime_ns
    import_mala_snapshot(files, out, cfg)
    assert (out / "ldos.h5").stat().st_mtime_ns == stamp
    import_mala_snapshot(files, out, cfg, overwrite=True)
    assert (out / "ldos.h5").stat().st_mtime_ns != stamp
    cfg_t = MalaImportConfig(ldos_gridoffset_ev=-6.0, ldos_gridspacing_ev=0.25, temperature=T)
    with LdosFile(import_mala_snapshot(files, tmp_path / "snap_t", cfg_t) / "ldos.h5") as f:
        assert f.temperature == T


CFG = {"ldos_gridoffset_ev": -6.0, "ldos_gridspacing_ev": 0.25}


def _swap_axes(f: MalaFiles) -> None:
    x = np.load(f.descriptors)
    np.save(f.descriptors, np.ascontiguousarray(np.swapaxes(x, 0, 2)))  # grid stored z-fastest: wrong order


def _flatten(f: MalaFiles) -> None:
    np.save(f.descriptors, np.load(f.descriptors).reshape(-1, 8))
    np.save(f.ldos, np.load(f.ldos).reshape(-1, LADDER.n))


@pytest.mark.parametrize(
    ("spoil", "cfg", "error", "match"),
    [
        (_swap_axes, CFG, ValueError, "not the grid points' x, y, z"),
        (lambda f: np.save(f.ldos, np.load(f.ldos)[:, :, :-1]), CFG, ValueError, "differs from LDOS grid"),
        (lambda f: f.ldos.unlink(), CFG, FileNotFoundError, "does not exist"),
        (lambda f: f.qe_output.unlink(), CFG, FileNotFoundError, "no metadata"),
        (_flatten, CFG, ValueError, r"MALA arrays are \(nx, ny, nz"),
        (lambda f: None, {**CFG, "ldos_gridsize": 250}, ValueError, "energies but ldos_gridsize is 250"),
        (lambda f: None, {}, ValueError, "set ldos_gridoffset_ev and ldos_gridspacing_ev"),
        (lambda f: np.save(f.descriptors, np.load(f.descriptors)[..., :7]), CFG, ValueError, "no bispectrum length"),
        (lambda f: None, {**CFG, "metadata": "info"}, FileNotFoundError, "no Al_snapshot0.info.json"),
    ],
)
def test_bad_layouts_give_clear_errors(tmp_path: Path, spoil, cfg, error, match) -> None:  # noqa: ANN001
    files = _pw_arrays(tmp_path / "mala", shape=(18, 18, 18))
    spoil(files)
    files = MalaFiles.named(files.descriptors.parent, files.name)  # as a dataset scan finds them
    with pytest.raises(error, match=match):
        import_mala_snapshot(files, tmp_path / "snap", MalaImportConfig(**cfg))
    assert not (tmp_path / "snap" / "ldos.h5").exists()


def test_grid_must_be_pw_fft_grid_and_config_is_strict(tmp_path: Path) -> None:
    files = _pw_arrays(tmp_path / "mala", shape=(6, 6, 6))
    with pytest.raises(ValueError, match=r"not pw.x's FFT grid \(18, 18, 18\)"):
        import_mala_snapshot(files, tmp_path / "snap", MalaImportConfig(**CFG))
    with pytest.raises(ValidationError, match="extra"):
        MalaImportConfig(ldos_gridoffset=-6.0)
    with pytest.raises(FileNotFoundError, match="no <name>.in.npy"):
        find_mala_snapshots(tmp_path)
