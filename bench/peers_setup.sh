#!/usr/bin/env bash
# The peer tools (diagnosis tools on PyPI that lossdoctor is compared with) in their own venv, bench/.peers.
# Pinned: the figures in bench/README.md were measured with these versions.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .peers
.peers/bin/pip install -q trainproof==0.22.0 losslint==0.4.1 trainspotter==0.2.6 runmedic==0.1.1 \
    finetune-doctor==0.2.2
