"""ESPnet ASR training (espnet2.bin.asr_train) with our frontend and encoder registered.

    python -m espnet_distill.bin.asr_train --config conf/asr/ctc.yaml \\
        --frontend distilled --frontend_conf checkpoint=exp/distill/dt_cnn/student.pt ...

Every option of espnet2's asr_train is accepted; --help lists them.
"""
import sys

from espnet_distill.asr.task import ASRTask, register


def main(cmd=None):
    register()  # the distilled frontend and the passthrough encoder
    ASRTask.main(cmd=cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
