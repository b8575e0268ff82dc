"""The dlsym case of bench/capture_side.py: 40 blocks of about 1.2 MB through
ctypes' libc.malloc, whose address ctypes got from dlsym (no GOT slot)."""
import ctypes

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]


def grab():
    out = []
    for i in range(40):
        out.append(libc.malloc(1_200_000 + i))
    return out


for p in grab():
    libc.free(p)
