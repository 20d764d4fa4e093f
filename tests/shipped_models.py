"""Paths of the reference models shipped as package data in shrink/references/ (imported by tests;
not a conftest)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO / "shrink" / "references"
REFERENCE_RESNET18 = REFERENCE_DIR / "fmnist_resnet18.safetensors"
REFERENCE_MOBILENETV2 = REFERENCE_DIR / "fmnist_mobilenetv2.safetensors"
REFERENCE_LRASPP = REFERENCE_DIR / "fmnist_lraspp.safetensors"  # tvseg:, trained on fmnist-seg
REFERENCE_SSDLITE = REFERENCE_DIR / "fmnist_ssdlite.safetensors"  # tvdet:, trained on fmnist-det
