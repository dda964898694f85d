"""Names of batch fields, each with its shape and unit. Labels and predictions differ.

A batch holds ``B`` structures with ``A`` atoms in total and ``E`` directed edges.
"""

POSITIONS = "positions"  # (A, 3) float, Å
SPECIES = "species"  # (A,) int64, atomic numbers
BATCH = "batch"  # (A,) int64, index of the structure each atom belongs to
N_STRUCTURES = "n_structures"  # int, B
EDGE_INDEX = "edge_index"  # (2, E) int64, [receiver, sender]; pairs within one structure

ENERGY = "energy"  # (B,) float, DFT label, kcal/mol
FORCES = "forces"  # (A, 3) float, DFT label, kcal/mol/Å
PRED_ENERGY = "pred_energy"  # (B,) float, model prediction, kcal/mol
PRED_FORCES = "pred_forces"  # (A, 3) float, model prediction, kcal/mol/Å
