# Hugging Face Docker Space (or any container host) serving the LGG dashboard on port 8501.
# Build: docker build -t lgg-dashboard .    Run: docker run -p 8501:8501 lgg-dashboard
FROM python:3.11-slim

# Spaces run containers as uid 1000; a matching user owns the app, the HF cache and the exported ONNX files.
RUN useradd --create-home --uid 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONPATH=/home/user/app \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /home/user/app

# CPU-only torch/torchvision at the versions pinned in requirements.txt: the default Linux wheels pull ~3 GB of
# CUDA libraries a CPU Space never uses. "==2.14.1" in requirements.txt is satisfied by "2.14.1+cpu", so the
# next step keeps these. Installed first so dependency layers stay cached when only the code changes.
RUN pip install --user --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1
COPY --chown=user requirements.txt .
RUN pip install --user -r requirements.txt

COPY --chown=user . .
# Export each local catalog model to ONNX beside its weights: the export proves parity with PyTorch and fails the
# build otherwise; the .onnx files are derived, so git does not keep them. No timing here: the build machine's CPU is
# not the Space's, and a serving.json measured on it would not hold there (the app would warn and fall back). To
# serve the fastest path (e.g. int8), run `lgg export-onnx --catalog --data-dir <kaggle_3m>` on the serving host.
RUN python -m lgg_core.cli export-onnx --catalog --no-measure
# Check every catalog artifact once (PyTorch builds each model on the meta device) and keep the verdicts in the
# image's ~/.cache/lgg_core, so a fresh container lists the models, and renders the Leaderboard, without torch.
RUN python -c "from lgg_core.serving.records import resolve_models; resolve_models()"
# Decode the bundled demo set (and its failure-gallery slices) once into the same cache: the first visitor of a
# fresh container then reads it instead of decoding every slice.
RUN python -c "from lgg_core.data.cache import load_dataset; from lgg_core.data.gallery import with_gallery; \
from lgg_core.serving.records import default_data_dir; with_gallery(load_dataset(default_data_dir(), progress=False), progress=False)"
# Render each tab of the Leaderboard once, so its bootstraps and paired tests are stored in the same cache by the
# content they are computed from (lgg_core/app/stored.py) and the first visitor reads them.
RUN python -c "from lgg_core.app.stored import fill; print('stored the tables of', fill('pages/leaderboard.py'))"

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4)"
CMD ["streamlit", "run", "serve.py", "--server.port=8501", "--server.address=0.0.0.0"]
