"""ESPnet ASR training (espnet2.bin.asr_train) with our frontend and encoder registered.

    python -m espnet_distill.bin.asr_train --config conf/asr/ctc.yaml \\
        --frontend distilled --frontend_conf checkpoint=exp/distill/dt_cnn/student.pt ...

Every option of espnet2's asr_train is accepted; --help lists them. Under torchrun (or srun),
pass --ngpu 1 --multiprocessing_distributed false: one process per GPU. At the end every
process waits for the others (rank 0 still averages and saves models) and leaves the process
group cleanly; a rank that simply exited first could abort the whole job.
"""
import sys

import torch.distributed as dist

from espnet_distill.asr.task import ASRTask, register
from espnet_distill.asr.train_cmd import check_specaug, with_upstream_architecture
from espnet_distill.checkpoint_io import CheckpointError
from espnet_distill.config import ConfigError


def main(cmd=None):
    cmd = sys.argv[1:] if cmd is None else cmd
    try:
        error = check_specaug(cmd)
    except ConfigError as e:  # a missing config, a YAML syntax error: one line
        sys.exit(f"asr_train: {e}")
    if error:
        sys.exit(f"asr_train: {error}")
    try:
        cmd = with_upstream_architecture(cmd)
    except (CheckpointError, OSError) as e:  # a missing or unreadable checkpoint: one line, not a traceback
        sys.exit(f"asr_train: {e}")
    register()  # the distilled frontend and the passthrough encoder
    ASRTask.main(cmd=cmd)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
