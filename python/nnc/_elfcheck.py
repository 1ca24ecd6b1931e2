"""Before a library is loaded: does the file hold every part its ELF header names?  dlopen maps
a library's segments from the file, and touching a part past the end of a truncated file
kills the process with SIGBUS (runtime/src/nnc.c does the same check for nnc_model_load)."""
import os
import struct


def truncation(path):
    """None when `path` holds its program headers, segments and section table (or is not
    64-bit ELF: dlopen refuses that itself); else a message naming what is missing."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            eh = f.read(64)
            if len(eh) < 64 or eh[:4] != b"\x7fELF" or eh[4] != 2:
                return None
            phoff, shoff = struct.unpack_from("<QQ", eh, 32)
            phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", eh, 54)
            end = max(phoff + phnum * phentsize, shoff + shnum * shentsize)
            if phentsize != 56 or end > size:
                return (f"the library is truncated or damaged: its ELF header names tables up to "
                        f"byte {end}, the file has {size} bytes")
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                _, _, offset, _, _, filesz = struct.unpack("<IIQQQQ", f.read(40))
                if offset + filesz > size:
                    return (f"the library is truncated: program header {i} needs bytes {offset} "
                            f"to {offset + filesz}, the file has {size} (rebuild it with nnc)")
    except OSError:
        return None  # dlopen says why
    return None
