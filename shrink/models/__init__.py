"""Model registry, reference architectures and safe weight loading."""

from shrink.models.card import ModelCard, card_path_for, read_card, write_card
from shrink.models.code import ModelCode, user_model_code
from shrink.models.loading import UNTRAINED_NOTE, LoadedModel, warn_if_untrained
from shrink.models.registry import ModelRegistry, create_model, default_spec, list_models
from shrink.models.spec import ModelSpec
from shrink.models.weights import apply_state_dict, load_state_dict, save_state_dict

__all__ = [
    "LoadedModel",
    "ModelCard",
    "ModelCode",
    "ModelRegistry",
    "ModelSpec",
    "apply_state_dict",
    "card_path_for",
    "create_model",
    "default_spec",
    "list_models",
    "load_state_dict",
    "read_card",
    "save_state_dict",
    "UNTRAINED_NOTE",
    "warn_if_untrained",
    "user_model_code",
    "write_card",
]
