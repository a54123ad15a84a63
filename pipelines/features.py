"""Feature names and image geometry shared by Transform, the Trainer and serving."""

IMAGE_KEY = "image"
LABEL_KEY = "label"
IMAGE_XF = "image_xf"  # float32 [H, W, C] in [0, 1]
LABEL_XF = "label_xf"
COPY_INDEX_KEY = "aug_copy_index"  # provenance written by ImageAugment; 0 is the original
# A mixing policy's copies (mixup, cutmix): the copy's own share and its partner's label.
MIX_WEIGHT_KEY = "aug_mix_weight"
MIX_PARTNER_LABEL_KEY = "aug_mix_partner_label"

DEFAULT_IMAGE_SIZE = 32
DEFAULT_CHANNELS = 3
NUM_CLASSES = 10
