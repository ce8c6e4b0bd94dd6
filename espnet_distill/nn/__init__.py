"""Model building blocks (floor 1): hubert.py (HuBERT with fairseq parameter names, shared by
teachers and students), masking.py (span masks, SpecAugment on features)."""
