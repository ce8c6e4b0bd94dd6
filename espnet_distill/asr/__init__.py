"""ESPnet ASR on distilled students (floor 4): frontend.py (the ``distilled`` frontend, the
``passthrough`` encoder), task.py (registers them in ESPnet's ASR task), prep.py (token lists,
shapes), decode.py (CTC greedy decoding), score.py (sclite and our counts), significance.py
(sclite's sc_stats)."""
