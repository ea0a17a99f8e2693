#!/usr/bin/env bash
# Install Fathom Studio and render the demo graph into out/demo.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

python -m pip install -q -e .
fathom render assets/graphs/depthfusion_demo.json --out out/demo
