"""AlbertConfig: the original `albert_config.json`, read and written unchanged, and validated."""

from __future__ import annotations

import dataclasses
import json

from bioalbert_tf import fileio

ACTIVATIONS = ("gelu", "gelu_new", "relu", "tanh", "linear")


class ConfigError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class AlbertConfig:
    """Keys and defaults of google-research/albert's AlbertConfig (base v2 sizes)."""

    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_hidden_groups: int = 1
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    inner_group_num: int = 1
    down_scale_factor: int = 1
    hidden_act: str = "gelu"  # ALBERT's "gelu" is the tanh approximation
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    # Unused by ALBERT's released models; kept so files round-trip unchanged.
    net_structure_type: int = 0
    gap_size: int = 0
    num_memory_blocks: int = 0
    # Keys of the file, in file order, and unknown keys with their values.
    key_order: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)
    extra: tuple[tuple[str, object], ...] = dataclasses.field(default=(), compare=False, repr=False)

    def __post_init__(self):
        self.validate()

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def group_of_layer(self, layer: int) -> int:
        """ALBERT: layer i uses group int(i / num_hidden_layers * num_hidden_groups)."""
        return int(layer / self.num_hidden_layers * self.num_hidden_groups)

    def validate(self) -> None:
        positive = [
            "vocab_size",
            "embedding_size",
            "hidden_size",
            "num_hidden_layers",
            "num_hidden_groups",
            "num_attention_heads",
            "intermediate_size",
            "inner_group_num",
            "max_position_embeddings",
            "type_vocab_size",
            "down_scale_factor",
        ]
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"albert config: {name} must be a positive integer, got {value!r}"
                )
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"albert config: hidden_size ({self.hidden_size}) must be a multiple of "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if self.num_hidden_groups > self.num_hidden_layers:
            raise ConfigError(
                f"albert config: num_hidden_groups ({self.num_hidden_groups}) exceeds "
                f"num_hidden_layers ({self.num_hidden_layers}): some groups would never be used"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(
                f"albert config: hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value < 1.0:
                raise ConfigError(f"albert config: {name} must be in [0, 1), got {value!r}")
        if not isinstance(self.initializer_range, int | float) or self.initializer_range <= 0:
            raise ConfigError(
                f"albert config: initializer_range must be > 0, got {self.initializer_range!r}"
            )
        if self.down_scale_factor != 1 or self.net_structure_type != 0:
            raise ConfigError(
                "albert config: only the released ALBERT structure is supported "
                "(down_scale_factor 1, net_structure_type 0), "
                f"got {self.down_scale_factor}, {self.net_structure_type}"
            )

    @classmethod
    def from_dict(cls, values: dict, source: str = "albert config") -> AlbertConfig:
        known = {f.name for f in dataclasses.fields(cls)} - {"key_order", "extra"}
        kwargs = {k: v for k, v in values.items() if k in known}
        extra = tuple((k, v) for k, v in values.items() if k not in known)
        try:
            return cls(**kwargs, key_order=tuple(values), extra=extra)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_json_file(cls, path: str) -> AlbertConfig:
        if not fileio.exists(path):
            raise FileNotFoundError(f"albert config file not found: {path}")
        with fileio.open_file(path, "r") as f:
            try:
                values = json.load(f)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a JSON object of ALBERT config keys")
        return cls.from_dict(values, source=path)

    def to_dict(self) -> dict:
        values = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("key_order", "extra")
        }
        values.update(dict(self.extra))
        order = [k for k in self.key_order if k in values] + sorted(
            k for k in values if k not in self.key_order
        )
        return {k: values[k] for k in order}

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_json_file(self, path: str) -> None:
        with fileio.open_file(path, "w") as f:
            f.write(self.to_json_string())
