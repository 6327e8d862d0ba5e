"""Print the .ko files (relative to the modules dir) needed for the given
module names, dependencies first. The host has no kmod, so read each
module's .modinfo 'depends=' field directly."""
import os
import sys

moddir = sys.argv[1]
index = {}
for dirpath, _dirs, files in os.walk(moddir):
    for f in files:
        if f.endswith(".ko"):
            index[f[:-3].replace("-", "_")] = os.path.relpath(os.path.join(dirpath, f), moddir)


def depends(name):
    with open(os.path.join(moddir, index[name]), "rb") as fh:
        data = fh.read()
    for field in data.split(b"\0"):
        if field.startswith(b"depends="):
            return [d.replace("-", "_") for d in field[8:].decode().split(",") if d]
    return []


order = []


def visit(name):
    name = name.replace("-", "_")
    if name in order or name not in index:  # absent = built into the kernel
        return
    for dep in depends(name):
        visit(dep)
    order.append(name)


for wanted in sys.argv[2:]:
    visit(wanted)
for name in order:
    print(index[name])
