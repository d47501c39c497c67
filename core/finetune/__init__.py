"""Fine-tuning: pretrained starts, new heads, layer groups and freezing, the LR finder.

- ``sources``: where pretrained weights come from (a run, ImageNet weights, a file);
  ``imagenet``: the offline EfficientNet-Lite0, torchvision's and timm's hub weights;
  ``weights_files``: ``SourceWeights`` and the file readers; ``weights_map``: a file of
  another naming scheme mapped onto the model by name, else by order.
- ``heads``: fit source weights to the new model; keep head rows of shared class names.
- ``groups``: layer groups per architecture, freeze presets, per-group learning rates.
- ``setup``: ``FinetuneConfig``, ``create_finetune_run``/``start_finetune`` (ordinary runs,
  kind ``finetune``); ``resolution``: the image size (the weights' own, or measured on a CPU).
- ``callback``: ``FineTuning``, the training callback that applies a fine-tuning config
  (starting weights, per-group rates, freezing and unfreezing).
- ``lr_finder``: Smith's learning-rate range test.
- ``compare``: the same budget from scratch and from the pretrained start.
"""
