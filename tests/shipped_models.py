"""Paths of the reference models shipped in models/ (imported by tests; not a conftest)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE_RESNET18 = REPO / "models" / "fmnist_resnet18.safetensors"
REFERENCE_MOBILENETV2 = REPO / "models" / "fmnist_mobilenetv2.safetensors"
