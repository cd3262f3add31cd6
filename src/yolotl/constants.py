"""Values every layer shares (the ground floor, beside ``errors``): nothing here imports from yolotl."""

# A semantic class-map value that is no class: it trains nothing and is scored nowhere. VOC's object
# boundaries use it; yolotl gives it to letterbox padding, augmentation fill and crowd regions.
IGNORE_INDEX = 255
