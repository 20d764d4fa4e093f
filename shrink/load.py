"""`load_model`: whatever model source a user types, a pruned model directory included. It sits above
shrink.models (dense sources) and shrink.prune (pruned directories), so neither imports the other."""

from __future__ import annotations

from pathlib import Path

from shrink.models.code import ModelCode
from shrink.models.loading import LoadedModel, check_overrides, load_dense_model
from shrink.models.source import ModelSource, SourceKind
from shrink.pruned_files import PLAN_FILE


def load_model(name_or_path: str, weights: str | None = None, *, code: ModelCode | None = None,
               **spec_overrides) -> LoadedModel:
    """Resolve `name_or_path`:

    - a directory with plan.json: a pruned model (architecture rebuilt, plan replayed, weights loaded)
    - a weights file (.safetensors/.pt) or its .json card, or a folder with a card: the architecture
      comes from the card
    - a registry name (with optional `weights`): see `shrink models`

    `code` is the model code the user trusts (shrink.models.code.user_model_code); a model that
    needs code is refused without it, whatever a plan or card says.
    """
    source = ModelSource.parse(str(name_or_path))
    if source.kind is SourceKind.DIRECTORY and (Path(name_or_path) / PLAN_FILE).is_file():
        from shrink.prune.saving import load_pruned  # the prune stage owns its format

        return check_overrides(load_pruned(name_or_path, code=code), spec_overrides)
    return load_dense_model(name_or_path, weights, code=code, **spec_overrides)
