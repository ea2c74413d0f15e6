"""Real pw.x on 1–4 atom cells: units, forces vs finite differences, failures, reuse, bad inputs."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from ase.build import bulk

from alml.config import ConfigError, parse_config
from alml.dft.errors import DFTInputError, DFTNotConvergedError, DFTTimeoutError
from alml.dft.espresso import kpoint_grid
from alml.dft.pseudo import PseudoError
from alml.dft.settings import DFTSettings, PwProfile
from alml.dft.tasks import RESULT_FILE, label
from alml.units import RYDBERG

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_kpoint_grid_gives_consistent_density():
    # The default spacing matches the meshes measured for Al: 21^3 primitive, 12^3 cube, 6^3 2x2x2 cube.
    assert kpoint_grid(bulk("Al", "fcc", a=4.04), 0.13) == (21, 21, 21)
    assert kpoint_grid(bulk("Al", "fcc", a=4.04, cubic=True), 0.13) == (12, 12, 12)
    assert kpoint_grid(bulk("Al", "fcc", a=4.04, cubic=True).repeat(2), 0.13) == (6, 6, 6)
    slab = bulk("Al", "fcc", a=4.04, cubic=True)
    slab.cell[2, 2] = 30.0
    assert kpoint_grid(slab, 0.13)[2] == 2  # long axis: few k-points


def test_energy_terms_units_and_reuse(fast_dft, dft_root):
    atoms = bulk("Al", "fcc", a=4.04)
    t0 = time.perf_counter()
    r = label(atoms, fast_dft, PwProfile(), dft_root)
    assert not r.reused
    text = (dft_root / r.job / "pw.out").read_text()
    ry = float([ln for ln in text.splitlines() if ln.startswith("!")][-1].split()[-2])
    assert r.free_energy == pytest.approx(ry * RYDBERG, abs=1e-6)
    # pw.x's identity: F = one-electron + Hartree + xc + Ewald + (-TS), all converted to eV.
    t = r.terms
    total = t["one_electron"] + t["hartree"] + t["xc"] + t["ewald"] + t["smearing_minus_ts"]
    assert total == pytest.approx(r.free_energy, abs=2e-5)
    assert r.energy == pytest.approx(r.free_energy - t["smearing_minus_ts"], abs=2e-5)
    assert -80 < r.free_energy < -70  # Al with a 3-electron pseudopotential: about -74.5 eV/atom
    assert 5.0 < r.fermi_level < 12.0
    assert np.allclose(r.forces, 0.0, atol=1e-6)  # every atom sits at an inversion centre
    first = time.perf_counter() - t0

    out = dft_root / r.job / "pw.out"
    mtime = out.stat().st_mtime
    t0 = time.perf_counter()
    again = label(atoms, fast_dft, PwProfile(), dft_root)
    assert again.reused and again.free_energy == r.free_energy
    assert out.stat().st_mtime == mtime  # pw.x did not run again
    assert time.perf_counter() - t0 < first


def test_force_matches_finite_difference_of_energy(fast_dft, dft_root):
    base = bulk("Al", "fcc", a=4.04, cubic=True)
    base.positions[0] += [0.08, 0.03, -0.05]
    r = label(base, fast_dft, PwProfile(), dft_root)
    h = 0.01
    e = []
    for sign in (+1, -1):
        a = base.copy()
        a.positions[0, 0] += sign * h
        e.append(label(a, fast_dft, PwProfile(), dft_root).free_energy)
    fd = -(e[0] - e[1]) / (2 * h)
    assert abs(r.forces[0, 0]) > 0.05  # the check is not trivially zero
    assert r.forces[0, 0] == pytest.approx(fd, abs=5e-3)  # eV/Å; FD error ~h² and SCF noise
    assert np.abs(r.forces.sum(axis=0)).max() < 1e-3  # Newton's third law


def test_stress_matches_finite_difference_of_energy(fast_dft, dft_root):
    s = fast_dft.model_copy(update={"stress": True})
    atoms = bulk("Al", "fcc", a=3.95)
    r = label(atoms, s, PwProfile(), dft_root)
    # Hydrostatic: dF/dV = -P; ASE's stress sign: sigma = (1/V) dE/d(strain); trace/3 = -P.
    eps = 0.004
    e = []
    for sign in (+1, -1):
        a = atoms.copy()
        a.set_cell(atoms.cell * (1 + sign * eps), scale_atoms=True)
        e.append(label(a, s, PwProfile(), dft_root).free_energy)
    v = atoms.get_volume()
    dEdV = (e[0] - e[1]) / (v * ((1 + eps) ** 3 - (1 - eps) ** 3))
    assert r.stress[:3].mean() == pytest.approx(dEdV, rel=0.05, abs=2e-4)
    assert r.stress[:3].mean() < 0  # compressed below a0: the cell pushes outwards


def test_non_convergence_is_a_failure_not_a_label(fast_dft, dft_root):
    s = fast_dft.model_copy(update={"electron_maxstep": 1})
    atoms = bulk("Al", "fcc", a=4.10)
    with pytest.raises(DFTNotConvergedError, match="did not converge"):
        label(atoms, s, PwProfile(), dft_root)
    assert not list(dft_root.glob(f"*/{RESULT_FILE}.tmp"))
    from alml.dft.tasks import job_hash, settings_hash

    assert not (dft_root / job_hash(atoms, settings_hash(s)) / RESULT_FILE).exists()


def test_timeout_is_reported(fast_dft, tmp_path):
    with pytest.raises(DFTTimeoutError, match="timeout"):
        label(bulk("Al", "fcc", a=4.0), fast_dft.model_copy(update={"kspacing": 0.1}),
              PwProfile(timeout=0.2), tmp_path)


def test_builtin_pseudopotential_identity_survives_regeneration(tmp_path, monkeypatch):
    """A regenerated built-in UPF (other day, other machine: new date stamp, different last digits) keeps its
    identity, so finished DFT jobs keep their names; a new ld1.x version or a user's edited file does not."""
    from alml.dft.pseudo import BUILTIN, checksum, pseudopotential
    from alml.dft.tasks import settings_hash

    text = pseudopotential("Al").read_text()  # the shared test home's generated file
    before = settings_hash(DFTSettings())
    monkeypatch.setenv("ALML_HOME", str(tmp_path / "home"))
    upf = tmp_path / "home" / "pseudo" / BUILTIN["Al"][1]
    upf.parent.mkdir(parents=True)
    upf.write_text(text)
    assert settings_hash(DFTSettings()) == before
    date = re.search(r'date="([^"]*)"', text).group(1)
    digits = re.search(r"\d\.\d{10,}E[+-]\d\d", text.split("<PP_MESH")[1]).group(0)
    regenerated = text.replace(date, "01Jan1999").replace(digits, digits[:-5] + "9" + digits[-4:], 1)
    assert regenerated != text
    upf.write_text(regenerated)
    assert settings_hash(DFTSettings()) == before
    upf.write_text(text.replace("v.6.7", "v.7.9"))  # another ld1.x: another pseudopotential
    assert settings_hash(DFTSettings()) != before
    mine = tmp_path / "mine.UPF"
    mine.write_text(text)
    s = DFTSettings(pseudopotentials={"Al": str(mine)})
    h = settings_hash(s)
    mine.write_text(regenerated)  # a user's file is hashed as bytes
    assert settings_hash(s) != h and checksum(mine) != checksum(upf)


def test_bad_inputs_give_clear_errors(fast_dft, tmp_path):
    with pytest.raises(PseudoError, match="no pseudopotential for element 'Cu'"):
        label(bulk("Cu", "fcc", a=3.6), fast_dft, PwProfile(), tmp_path)
    missing = fast_dft.model_copy(update={"pseudopotentials": {"Al": str(tmp_path / "nope.UPF")}})
    with pytest.raises(PseudoError, match="not found at"):
        label(bulk("Al", "fcc", a=4.04), missing, PwProfile(), tmp_path)
    crowded = bulk("Al", "fcc", a=4.04, cubic=True)
    crowded.positions[1] = crowded.positions[0] + [0.3, 0, 0]
    with pytest.raises(DFTInputError, match="0.300 Å apart"):
        label(crowded, fast_dft, PwProfile(), tmp_path)
    with pytest.raises(ConfigError, match="ecutwfcc: unknown key"):
        parse_config(DFTSettings, {"ecutwfcc": 30})
    with pytest.raises(ConfigError, match="kspacing"):
        parse_config(DFTSettings, {"kspacing": -1})
    with pytest.raises(ConfigError, match="electronic_temperature implies Fermi-Dirac"):
        parse_config(DFTSettings, {"smearing": "gaussian", "electronic_temperature": 300})
    assert not any(tmp_path.glob(f"*/{RESULT_FILE}"))


def test_electronic_temperature_sets_fermi_dirac():
    s = DFTSettings(electronic_temperature=933.0)
    assert s.smearing_kind == "fermi-dirac"
    assert s.degauss_ry == pytest.approx(8.617333e-5 * 933.0 / 13.605693, rel=1e-5)


def test_settings_hash_ignores_unused_smearing_at_a_temperature():
    from alml.dft.tasks import settings_hash

    hot = settings_hash(DFTSettings(electronic_temperature=933.0))
    assert settings_hash(DFTSettings(electronic_temperature=933.0, degauss=0.02)) == hot
    assert settings_hash(DFTSettings(electronic_temperature=298.0)) != hot
    assert settings_hash(DFTSettings(degauss=0.02)) != settings_hash(DFTSettings())  # used without a temperature


def test_stopped_scf_resumes_to_the_same_energy(fast_dft, tmp_path):
    """QE's exit file stops pw.x cleanly once an SCF iteration has finished; the next run resumes instead of
    starting over and lands on the uninterrupted run's energy (same conv_thr; tolerance 1e-5 eV, ~100x conv_thr)."""
    import threading

    from alml.dft.errors import DFTStoppedError
    from alml.dft.espresso import request_stop

    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.08, seed=3)
    s = fast_dft.model_copy(update={"kspacing": 0.35})
    ref = label(atoms, s, PwProfile(), tmp_path / "ref")

    root = tmp_path / "stopped"
    from alml.dft.tasks import job_hash, settings_hash

    workdir = root / job_hash(atoms, settings_hash(s))
    fired = threading.Event()

    def stop_after_first_iteration() -> None:
        out = workdir / "pw.out"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.is_file() and "estimated scf accuracy" in out.read_text(errors="replace"):
                request_stop(workdir)
                fired.set()
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=stop_after_first_iteration)
    watcher.start()
    with pytest.raises(DFTStoppedError, match="run the same job again to resume"):
        label(atoms, s, PwProfile(), root)
    watcher.join()
    assert fired.is_set()
    assert not (workdir / RESULT_FILE).exists()

    resumed = label(atoms, s, PwProfile(), root)
    text = (workdir / "pw.out").read_text()
    assert "Calculation restarted from" in text  # scf iteration # or k-point #
    assert (workdir / "pw.out.stopped1").is_file()
    assert "restart_mode" in (workdir / "pw.in").read_text()
    assert resumed.free_energy == pytest.approx(ref.free_energy, abs=1e-5)
    assert np.abs(resumed.forces - ref.forces).max() < 1e-4
    assert resumed.n_iterations >= ref.n_iterations - 1


def test_scf_stopped_inside_its_first_iteration_starts_over(tmp_path):
    """pw.x 6.7 saves a poor density when stopped before its first SCF iteration finished (module docstring), so
    that run is not resumed; one that finished an iteration, or was itself resumed, is."""
    from alml.dft.espresso import pw_input_text, write_pw_input

    atoms = bulk("Al", "fcc", a=4.05)
    s = DFTSettings()
    text = pw_input_text(atoms, s)
    stopped = "     Program stopped by user request\n"
    accuracy = "     estimated scf accuracy    <       0.08526370 Ry\n"

    def state(name: str, out_text: str, resumed_before: bool = False):
        d = tmp_path / name
        (d / "out").mkdir(parents=True)
        (d / "out" / "pw.restart_scf").touch()
        (d / "pw.in").write_text(text.replace("&CONTROL\n", "&CONTROL\n   restart_mode = 'restart'\n")
                                 if resumed_before else text)
        (d / "pw.out").write_text(out_text)
        _, resume = write_pw_input(atoms, s, d)
        return resume, ("restart_mode" in (d / "pw.in").read_text()), (d / "pw.out.stopped1").is_file()

    assert state("first", "     iteration #  1\n" + stopped) == (False, False, False)
    assert state("finished-one", "     iteration #  2\n" + accuracy + stopped) == (True, True, True)
    assert state("resumed-part", "     iteration #  1\n" + stopped, resumed_before=True) == (True, True, True)
    assert state("crashed", "     iteration #  2\n" + accuracy) == (False, False, False)


def test_nbnd_reaches_pw_but_not_the_hash(tmp_path):
    from alml.dft.espresso import pw_input_text
    from alml.dft.tasks import settings_hash

    atoms = bulk("Al", "fcc", a=4.05)
    assert settings_hash(DFTSettings(nbnd=40)) == settings_hash(DFTSettings())
    assert "nbnd" in pw_input_text(atoms, DFTSettings(nbnd=40)) and "nbnd" not in pw_input_text(atoms, DFTSettings())


def test_pw_timing_lines_parse_to_seconds():
    """pw.x's closing PWSCF line in its three formats (seconds; minutes and seconds; hours and minutes)."""
    from alml.dft.parse import parse_cpu_time, parse_wall_time

    assert parse_cpu_time("     PWSCF        :   5m50.95s CPU     58m21.92s WALL\n") == pytest.approx(350.95)
    assert parse_wall_time("     PWSCF        :   5m50.95s CPU     58m21.92s WALL\n") == pytest.approx(3501.92)
    assert parse_cpu_time("     PWSCF        :     15.32s CPU     20.10s WALL\n") == pytest.approx(15.32)
    assert parse_wall_time("     PWSCF        :   7m34.32s CPU   1h17m WALL\n") == pytest.approx(4620.0)
    assert parse_cpu_time("no timing line") is None and parse_wall_time("") is None
    from alml.dft.parse import qe_times

    resumed = "PWSCF        :   1m 2.00s CPU   1m 5.00s WALL\n...\nPWSCF        :   2m 0.50s CPU   2m 3.00s WALL\n"
    assert qe_times(resumed) == pytest.approx((120.5, 123.0))  # the closing line: the last one
    assert qe_times("     POST-PROC :   4m59.69s CPU   5m11.56s WALL\n", "POST-PROC") == pytest.approx((299.69, 311.56))
