"""crmse: train machine-learning interatomic potentials that sample the right distribution."""

__version__ = "0.1.0"
