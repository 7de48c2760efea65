#!/usr/bin/env bash
# Installs the peer libraries that Candor's cross-check tests and benchmarks compare against
# (same pinned versions as the workspace's shared peers script), into a virtualenv.
# Usage: bash bench/peers-install.sh [VENV_DIR]   (default ./.peers-venv)
set -euo pipefail
venv=${1:-.peers-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  numpy==2.4.6 pandas==3.1.1 pyarrow==26.0.1 scipy==1.17.1 \
  scikit-learn==1.9.1 lightgbm==4.7.0 xgboost==3.2.0 shap==0.51.0 \
  fairlearn==0.15.0 implicit==0.7.3 aiosmtpd
echo "peers installed in $venv"
