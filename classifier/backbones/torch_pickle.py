"""Read a legacy (non-zip) PyTorch ``state_dict`` file with pickle and numpy alone, so torch is not a dependency.

The legacy format is five pickles in a row (magic number, protocol, system info, the state dict whose tensors
point at storages by key, the list of storage keys) followed by each storage's raw bytes, in that list's order,
each preceded by its element count as a little-endian int64. The unpickler below allows only the handful of
names such a file needs, so a hostile file cannot run code.
"""

import collections
import pickle

import numpy as np

_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
    "IntStorage": "<i4", "ShortStorage": "<i2", "ByteStorage": "u1", "CharStorage": "i1", "BoolStorage": "?",
}


class _TensorRef:
    """A tensor seen in the pickle, materialised once the raw storages after it have been read."""

    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused):
    return _TensorRef(storage, storage_offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file)
        self.dtypes = {}  # storage key -> numpy dtype

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _DTYPES:
            return name
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        self.dtypes[key] = _DTYPES[storage_type]
        return key


def load_state_dict(path):
    """Return ``{name: numpy array}`` from a legacy PyTorch ``.pth`` state-dict file."""
    with open(path, "rb") as f:
        if pickle.load(f) != _MAGIC:
            raise ValueError(f"{path} is not a legacy PyTorch file (a zip-format file needs torch.load)")
        pickle.load(f), pickle.load(f)  # protocol version, system info
        unpickler = _RestrictedUnpickler(f)
        refs = unpickler.load()
        storages = {}
        for key in pickle.load(f):
            numel = int(np.frombuffer(f.read(8), "<i8")[0])
            dtype = np.dtype(unpickler.dtypes[key])
            storages[key] = np.frombuffer(f.read(numel * dtype.itemsize), dtype)
    return {name: _materialise(ref, storages) for name, ref in refs.items()}


def _materialise(ref, storages):
    data = storages[ref.storage]
    strides = tuple(s * data.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(data[ref.offset:], shape=ref.shape, strides=strides)
    return np.array(view, order="C")  # own, C-ordered copy
