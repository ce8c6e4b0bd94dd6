"""ESPnet ASR on distilled students: frontend.py (the ``distilled`` frontend, the ``passthrough``
encoder), task.py (registers them in ESPnet's ASR task), prep.py (token lists, shapes, text
normalisation), decode.py (CTC greedy decoding), score.py (sclite and our counts)."""
