# The runtime image of credit-risk: its steps run mlc in it.
# Build from the spec's project folder (copied to /project):
#   docker build -f <this file> -t ghcr.io/mlc-project/mlc-runtime:0.1.0 <project folder>
# MLC_PACKAGE may name a wheel by URL, or another release than mlc 0.1.0.
FROM python:3.11-slim

ARG MLC_PACKAGE="mlc[ml]==0.1.0"
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install "$MLC_PACKAGE"
COPY . /project
WORKDIR /project
