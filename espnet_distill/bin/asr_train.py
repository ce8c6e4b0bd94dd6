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


def main(cmd=None):
    register()  # the distilled frontend and the passthrough encoder
    ASRTask.main(cmd=cmd)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
