"""Teachers (floor 2): teacher.py (one API over the local and s3prl backends, typed configs),
checkpoints.py (every HuBERT checkpoint format -> ours), kmeans.py (the frame labels a teacher
is pretrained on)."""
