"""Per-epoch training checkpoints: written atomically, loaded with weights_only=True, and refused
when they come from another run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from shrink.errors import ShrinkError
from shrink.fileio import atomic_path

CHECKPOINT_NAME = "last.pt"


@dataclass
class TrainingState:
    model: dict
    optimizer: dict
    scheduler: dict
    epoch: int  # epochs completed
    run_id: str  # fingerprint of config + model + data; a resume must match it
    history: list[dict]
    best_model: dict | None = None  # weights of the best validation epoch, kept for early stopping
    average: dict | None = None  # WeightAverage.state_dict(), when the run averages its weights


def save_checkpoint(directory: str | Path, state: TrainingState) -> Path:
    path = Path(directory) / CHECKPOINT_NAME
    payload = {
        "model": state.model,
        "optimizer": state.optimizer,
        "scheduler": state.scheduler,
        "epoch": state.epoch,
        "run_id": state.run_id,
        "history": json.dumps(state.history),
        "best_model": state.best_model if state.best_model is not None else {},
        "average": state.average if state.average is not None else {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(directory: str | Path, run_id: str) -> TrainingState | None:
    """The last checkpoint in `directory`, or None if there is none yet."""
    path = Path(directory) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        state = TrainingState(
            model=payload["model"],
            optimizer=payload["optimizer"],
            scheduler=payload["scheduler"],
            epoch=int(payload["epoch"]),
            run_id=str(payload["run_id"]),
            history=json.loads(payload["history"]),
            best_model=payload.get("best_model") or None,
            average=payload.get("average") or None,
        )
    except Exception as exc:  # pickle, zip and key errors all mean the same to the user
        raise ShrinkError(f"checkpoint {path} is unreadable ({type(exc).__name__}); move it away to start afresh") from exc
    if state.run_id != run_id:
        raise ShrinkError(
            f"checkpoint {path} belongs to another run (its id {state.run_id}, this run {run_id}); "
            "use another output directory, or remove the checkpoint to start afresh"
        )
    return state
