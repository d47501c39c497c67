"""Fine-tuning: pretrained starts, new heads, layer groups and freezing, the LR finder.

- ``sources``: where pretrained weights come from (a run, torchvision ImageNet, a file).
- ``heads``: fit source weights to the new model; keep head rows of shared class names.
- ``groups``: layer groups per architecture, freeze presets, per-group learning rates.
- ``setup``: ``FinetuneConfig``, ``create_finetune_run``/``start_finetune`` (ordinary runs,
  kind ``finetune``).
- ``callback``: ``FineTuning``, the training callback that applies a fine-tuning config
  (starting weights, per-group rates, freezing and unfreezing).
- ``lr_finder``: Smith's learning-rate range test.
- ``compare``: the same budget from scratch and from the pretrained start.
"""
