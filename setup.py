"""espnet_distill: distil HuBERT-like teachers into small, fast ESPnet ASR models.

Version ranges here (what the code needs); the exact, tested pins are in tools/requirements.txt
and tools/constraints.txt, which tools/install.sh uses.
"""
from setuptools import find_packages, setup

setup(
    name="espnet_distill",
    version="0.1.0",
    description="ESPnet-style recipes that distill self-supervised speech models into compact ASR students",
    license="Apache-2.0",
    packages=find_packages(include=["espnet_distill", "espnet_distill.*"]),
    package_data={"espnet_distill": ["conf/paper/*.yaml"]},  # the paper-size configs (benchmark, recipes)
    python_requires=">=3.12",
    install_requires=[
        "torch>=2.6,<3",  # torch.load(weights_only=True) with safe_globals
        "torchaudio>=2.6,<3",  # must match torch exactly: install both from the same release
        "espnet>=202412",
        "espnet-s3prl>=2026.5",
        "kaldiio>=2.18",
        "soundfile>=0.12",
        "sentencepiece>=0.2",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "PyYAML>=6",
        "numpy>=1.26",
        "safetensors>=0.4",  # Hugging Face teachers (model.safetensors)
    ],
    extras_require={  # bin/export: Hugging Face, ONNX and sherpa-onnx targets
        "export": ["transformers>=4.40", "onnx>=1.16", "onnxruntime>=1.18", "sherpa-onnx>=1.12"],
    },
)
