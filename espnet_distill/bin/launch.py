"""Job launcher entry point: python -m espnet_distill.bin.launch {local,slurm} --help.

utils/run.sh and utils/slurm.sh call it; see espnet_distill/jobs.py.
"""
import sys

from espnet_distill.jobs import main

if __name__ == "__main__":
    sys.exit(main())
