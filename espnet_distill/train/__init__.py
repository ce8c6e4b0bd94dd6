"""Training (floor 3): trainer.py (phases, AMP, one global batch over any number of processes,
checkpoints, exact resume), distill.py (the distillation task, its typed config, build_student),
pretrain.py (the HuBERT pretraining task and its typed config)."""
