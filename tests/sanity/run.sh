#!/usr/bin/env bash
# ansible-test sanity over a copy of the collection laid out as ansible-test requires
# (.../ansible_collections/prechange/snapshots), using the get-pip stand-in (see its header).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-python3}
work="$repo/build/sanity/ansible_collections/prechange/snapshots"

# The pip version ansible-test bootstraps is pinned in its source (get_venv_packages).
pip_version=$("$python" - <<'PY'
import inspect, re
from ansible_test._internal import python_requirements
match = re.search(r"pip='([0-9.]+)'", inspect.getsource(python_requirements.get_venv_packages))
print(match.group(1) if match else "24.2")
PY
)
mkdir -p ~/.ansible/test/cache
cp "$repo/tests/sanity/get_pip_standin.py" ~/.ansible/test/cache/"get_pip_${pip_version//./_}.py"

rm -rf "$work" && mkdir -p "$work"
# Only what git tracks (or would track): the copy is what a user would get.
(cd "$repo" && git ls-files -co --exclude-standard -z) | (cd "$repo" && xargs -0 cp --parents -t "$work")
cd "$work"
# ansible-test lists the files to test from git.
git init -q .
git add -A >/dev/null 2>&1
ansible-test sanity --venv --python "$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" "$@"
