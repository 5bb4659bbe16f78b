#!/bin/sh
# Prints the path of the Python that the Makefile builds .venv with: the first of python3.13,
# python3.12, python3.11 on PATH that runs and is that version (pyenv's shims exist for versions
# that are not selected, and fail when run). With arguments, only those are tried (`make
# PYTHON=/path/to/python3.12`). coremltools 9.0 publishes wheels for Python 3.11 to 3.13 only: a
# stock Mac's python3 is 3.9 and Homebrew's is 3.14, so plain python3 is not enough.
# Exit 1 with what to install when none fits; nothing is printed on stdout then.
set -u

if [ "$#" -gt 0 ]; then
    candidates="$*"
else
    candidates="python3.13 python3.12 python3.11"
fi

tried=""
for candidate in $candidates; do
    path=$(command -v "$candidate" 2>/dev/null) || { tried="$tried
  $candidate: not on PATH"; continue; }
    version=$("$path" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || {
        tried="$tried
  $candidate ($path): does not run"
        continue
    }
    case "$version" in
        3.11 | 3.12 | 3.13)
            echo "$path"
            exit 0
            ;;
    esac
    tried="$tried
  $candidate ($path): Python $version"
done

if command -v python3 >/dev/null 2>&1; then
    found=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo "?")
    tried="$tried
  (python3 on PATH is Python $found)"
fi
# printf, not cat: the message needs nothing from PATH.
printf '%s\n' \
    "error: coreml-chat needs Python 3.11, 3.12 or 3.13 (coremltools 9.0 has wheels for those only); found:$tried" \
    "Install one, then run make again:" \
    "  macOS:  brew install python@3.13   (or the python.org installer for 3.13)" \
    "  Debian/Ubuntu:  apt install python3.13-venv   (or python3.12-venv, python3.11-venv)" \
    "or name one: make PYTHON=/path/to/python3.12" >&2
exit 1
