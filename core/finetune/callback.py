"""Fine-tuning as a training callback, in the style of Lightning's ``BaseFinetuning``.

``FineTuning`` applies a config's ``finetune`` section to a trainer: at ``setup`` it loads
the adapted starting weights (the run's ``init.pt``, else built again from the source),
takes the weights' normalisation, and builds an optimizer with one param group per layer
group and its learning-rate multiplier; at every epoch start it freezes the groups the
schedule says (no gradients, BatchNorm statistics kept) and unfreezes them all after
``unfreeze_after`` epochs. While every group but the head is frozen, the whole model runs
in eval mode and the head trains on cached body features where it can
(``core.finetune.feature_cache``; ``finetune.feature_cache: false`` turns that off).
For a config without a ``finetune`` section it does nothing,
so entry points can always pass it. The engine knows only callbacks; whoever builds a
trainer for a fine-tuning config passes ``FineTuning()`` in (one instance per trainer).
"""

from __future__ import annotations

from core.errors import ImageLabError
from core.finetune.feature_cache import FrozenBody
from core.finetune.groups import FreezeSchedule, layer_groups, param_groups, resolve_freeze, resolve_lr_mults
from core.finetune.setup import FinetuneConfig, prepare_finetune
from core.training.augment import BatchAugment
from core.training.checkpoint import load_checkpoint
from core.training.optim import optimizer_for
from core.training.trainer import Callback, Trainer


class FineTuning(Callback):
    """Pretrained start, per-group learning rates and the freeze schedule of a
    fine-tuning config; a no-op for other configs. Runs on every DDP rank."""

    rank_zero_only = False
    config_sections = ("finetune",)

    def __init__(self):
        self.schedule: FreezeSchedule | None = None
        self.frozen_body: FrozenBody | None = None

    @property
    def frozen(self) -> list[str]:
        """The groups frozen at the start (before any unfreezing)."""
        return list(self.schedule.frozen) if self.schedule is not None else []

    def setup(self, trainer: Trainer) -> None:
        """Starting weights and normalisation, per-group optimizer, freeze schedule."""
        ft = trainer.cfg.finetune
        if not ft:
            return
        init = self._initial_weights(trainer)
        model = trainer.bare_model
        model.load_state_dict(init["model"])
        if init.get("mean") and init.get("std"):
            data = trainer.data
            data.mean, data.std = list(init["mean"]), list(init["std"])
            trainer.augment = BatchAugment(trainer.cfg, data.mean, data.std, data.channels)
        groups = layer_groups(model)
        names = [g.name for g in groups]
        mults = resolve_lr_mults(ft.get("lr_mults") or "", names)
        frozen = ft.get("frozen")
        if frozen is None:
            frozen = resolve_freeze(ft.get("freeze", "none"), names)
        trainer.optimizer = optimizer_for(
            param_groups(model, groups, mults, trainer.cfg.weight_decay), trainer.cfg)
        self.schedule = FreezeSchedule(groups, frozen, int(ft.get("unfreeze_after") or 0))
        self.frozen_body = FrozenBody(model, groups)

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        """Freeze the groups frozen at this epoch (after ``model.train()``); with only the
        head trainable, eval mode and the feature cache (``FrozenBody``)."""
        if self.schedule is not None:
            self.schedule(trainer)
            self.frozen_body.epoch_start(trainer, self.schedule.frozen_at(trainer.epoch))

    @staticmethod
    def _initial_weights(trainer: Trainer) -> dict:
        ft = trainer.cfg.finetune
        path = trainer.paths.init if trainer.paths is not None else None
        if path is not None and path.exists():
            return load_checkpoint(path, map_location="cpu")
        if trainer.ws is None:
            raise ImageLabError("a fine-tuning run needs its init.pt or a workspace to load from")
        return prepare_finetune(trainer.ws, trainer.cfg, FinetuneConfig(
            ft["source"], ft.get("freeze", "none"), ft.get("unfreeze_after", 0),
            ft.get("lr_mults") or "")).init
