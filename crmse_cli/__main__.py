"""``python -m crmse_cli``: the same CLI as the ``crmse`` console script (also for ``torchrun -m``)."""

from crmse_cli.cli.app import main

if __name__ == "__main__":
    main()
