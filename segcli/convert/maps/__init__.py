"""Key maps from other projects' checkpoints to segcli's layouts: the registry and helpers are in
:mod:`.registry`; each source's maps are one module here, imported below so its maps register.
"""

from segcli.convert.maps import smp, torchvision  # noqa: F401 - importing a module registers its maps
from segcli.convert.maps.registry import (  # noqa: F401 - the public names of the key maps
    MAPS,
    KeyMap,
    State,
    chain,
    detect,
    fold_bn,
    get_map,
    identity_conv_bn,
    register,
    zero_bias,
)
