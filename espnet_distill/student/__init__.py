"""Students (floor 2): frontend.py (waveform CNN, Fbank), heads.py (L_reg and L_disc heads),
model.py (the student and its typed config, init from a teacher), export.py (our format, s3prl,
Hugging Face, ONNX, int8)."""
