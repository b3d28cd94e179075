"""Attribution maps: the engine that turns (model, images, labels) into one map per image."""
