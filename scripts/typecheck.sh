#!/usr/bin/env bash
# mypy over every package of dyadic (settings in pyproject.toml, [tool.mypy]).
# The card's top-level folders are installed as `dyadic.engine`, `dyadic.models`, ... through
# setuptools' editable finder, which mypy cannot see; a tree of links under build/ gives mypy the
# same names (build/ is ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
LINKS=build/typecheck/dyadic
mkdir -p "$LINKS"
args=()
for pkg in engine models renderer datasets; do
  ln -sfn "../../../$pkg" "$LINKS/$pkg"
  args+=(-p "dyadic.$pkg")
done
MYPYPATH=build/typecheck "${PYTHON:-.venv/bin/python}" -m mypy "${args[@]}" 2>&1 | sed "s#^build/typecheck/dyadic/##"
