#!/usr/bin/env bash
# The docs stage of the test command (tests/run.sh calls it; SKIP_DOCS=1 skips it there):
#   1. antsibull-docs lint-collection-docs: the modules', plugins' and roles' documentation (schema,
#      markup, the RST it renders to, checked with rstcheck) and the user guide's references
#      (docs/docsite/extra-docs.yml, links.yml, rst/*.rst);
#   2. the docs site: antsibull-docs sphinx-init, then the collection's pages and a Sphinx build that
#      fails on any warning, except those that only say this machine cannot fetch the intersphinx
#      inventories of docs.ansible.com, Python and Jinja (no network beyond the package registries),
#      and the links into those sites that therefore stay unresolved.
# Its tools live in their own virtualenv, cached under $PRECHANGE_CACHE by tests/docs/requirements.txt's
# hash (not in the test venv). The site ends up in build/docsite/build/html; the list of its pages is
# printed at the end.
#
#   bash tests/docs/run.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
cache=${PRECHANGE_CACHE:-$HOME/.cache/prechange-snapshots}
requirements=tests/docs/requirements.txt
venv="$cache/docs-venv-$(sha256sum < "$requirements" | cut -c1-16)"
start=$(date +%s)

if [ ! -e "$venv/.complete" ]; then
  echo "docs: installing antsibull-docs and Sphinx into $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >/dev/null
  "$venv/bin/pip" install -q -r "$requirements" || { rm -rf "$venv"; exit 1; }
  touch "$venv/.complete"
fi
export PATH="$venv/bin:$PATH"

# This checkout, and nothing else, as the collection (not a copy in ~/.ansible/collections).
collections="$repo/build/docs-collections"
mkdir -p "$collections/ansible_collections/prechange"
ln -sfn "$repo" "$collections/ansible_collections/prechange/snapshots"
export ANSIBLE_COLLECTIONS_PATH="$collections"
export ANSIBLE_NOCOLOR=1

# 1. The linter, in the background (it mostly waits on ansible-doc and rstcheck) while the site builds.
lint_log=$(mktemp)
antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs --validate-collection-refs self \
  "$repo" >"$lint_log" 2>&1 &
lint_pid=$!

# 2. The site.
site="$repo/build/docsite"
rm -rf "$site" && mkdir -p "$site"
antsibull-docs sphinx-init --use-current --dest-dir "$site" --fail-on-error --no-add-antsibull-docs-version \
  --project prechange.snapshots --title "prechange.snapshots" --html-short-title "prechange.snapshots" \
  prechange.snapshots >/dev/null
# What the generated build.sh does, with the warnings written to a file instead of -W.
mkdir -p "$site/rst" && chmod og-w "$site/rst"
(cd "$site" && antsibull-docs --config-file antsibull-docs.cfg collection --cleanup everything --fail-on-error \
  --use-current --dest-dir rst prechange.snapshots >/dev/null)
site_rc=0
(cd "$site" && sphinx-build -M html rst build -c . -q --keep-going -w warnings.txt) >/dev/null 2>&1 || site_rc=$?
# Offline, the intersphinx inventories cannot be fetched; drop exactly those warnings and the labels
# that live in those sites. Anything else (this collection's own references, RST errors, a code block
# that does not lex) fails the stage.
python3 - "$site/warnings.txt" <<'PY' || site_rc=1
import re, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
bad = []
for line in lines:
    if "failed to reach any of the inventories" in line or line.startswith("intersphinx inventory "):
        continue
    label = re.search(r"WARNING: undefined label: '([^']+)'", line)
    if label and not label.group(1).startswith("ansible_collections.prechange.snapshots."):
        continue
    # ansible-core's own configuration variables (the callback's options inherited from the default
    # callback) are documented on docs.ansible.com, reached through intersphinx too.
    if re.search(r"'envvar' reference target not found: ANSIBLE_", line):
        continue
    if line.strip():
        bad.append(line)
for line in bad:
    print(line)
sys.exit(1 if bad else 0)
PY

lint_rc=0
wait "$lint_pid" || lint_rc=$?
cat "$lint_log"
rm -f "$lint_log"
if [ "$lint_rc" -ne 0 ]; then echo "docs: antsibull-docs lint-collection-docs failed (exit $lint_rc)"; fi
if [ "$site_rc" -ne 0 ]; then echo "docs: the site build failed or warned (see above and $site/warnings.txt)"; fi

echo "docs: site in $site/build/html, pages:"
(cd "$site/build/html" 2>/dev/null && find . -name '*.html' ! -name search.html ! -name genindex.html | sed 's|^\./||' | sort \
  | sed 's/^/  /') || true
echo "docs: $(( $(date +%s) - start ))s"
[ "$lint_rc" -eq 0 ] && [ "$site_rc" -eq 0 ]
