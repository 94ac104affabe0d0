"""The paper's recipe: every number of Krizhevsky, Sutskever and Hinton (2012) and of its 2012 code
(cuda-convnet) that the library uses, written once, beside the section it comes from.

Every other module reads these (``from . import recipe``, then ``recipe.LRN_K``), as defaults of the
layers, the model builders, the optimiser and :class:`alexlib.train.RunSettings`. What a scale
changes (fewer epochs, a smaller net, CIFAR-10's 32-pixel images) lives in the presets of
:mod:`alexlib.config`, not here.

May import: nothing (it is the bottom of the package).

    >>> LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K
    (5, 0.0001, 0.75, 2.0)
"""

from __future__ import annotations

# Section 2: the images, rescaled so that the shorter side is 256, then centre-cropped to 256x256.
IMAGE_SIZE = 256

# Section 3.3: local response normalisation, b = a / (k + alpha * sum of a^2 over n maps)^beta.
# The 2012 code divides alpha by n (PyTorch's convention too): alexlib.layers says which is which.
LRN_SIZE = 5  # n, the adjacent maps summed
LRN_ALPHA = 1e-4
LRN_BETA = 0.75
LRN_K = 2.0

# Section 3.4: overlapping pooling, 3x3 windows two pixels apart.
POOL_SIZE = 3
POOL_STRIDE = 2

# Section 3.5 and Figure 2: the layers. Conv2, conv4 and conv5 see only their own tower's maps
# (groups of 2); conv3 and the fc layers see both towers.
CONV_WIDTHS = (96, 256, 384, 384, 256)
CONV_GROUPS = (1, 2, 1, 2, 2)
FC_WIDTH = 4096

# Section 4.1: random 224x224 patches and their reflections for training, ten of them for testing
# (227 makes conv1's arithmetic exact: alexlib.model.EdgePad); PCA colour noise a_i ~ N(0, 0.1).
CROP = 224
PCA_STD = 0.1

# Section 4.2: dropout on the outputs of fc6 and fc7.
DROPOUT = 0.5

# Section 5: stochastic gradient descent.
BATCH_SIZE = 128
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4  # on the weights only
LR = 0.01  # the same for every layer
LR_DIVISOR = 10  # when the validation error stopped improving ...
MAX_LR_DROPS = 3  # ... three times in all
EPOCHS = 90  # "roughly 90 cycles through the training set"
INIT_STD = 0.01  # weights ~ N(0, 0.01)
BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")  # biases 1 here, 0 in the other layers

# The 2012 code's schedule for the paper's net: the rate divided by 10 at these epochs of 90.
CODE_LR_DROP_EPOCHS = (25, 51, 79)
