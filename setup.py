"""espnet_distill: distil HuBERT-like teachers into small, fast ESPnet ASR models."""
from setuptools import find_packages, setup

setup(
    name="espnet_distill",
    version="0.1.0",
    description="ESPnet-style recipes that distill self-supervised speech models into compact ASR students",
    packages=find_packages(include=["espnet_distill", "espnet_distill.*"]),
    python_requires=">=3.12",
    install_requires=[
        "torch==2.11.0",
        "torchaudio==2.11.0",
        "espnet==202611",
        "espnet-s3prl==2026.5.14",
        "kaldiio",
        "soundfile",
        "tqdm",
        "PyYAML",
        "numpy",
    ],
)
