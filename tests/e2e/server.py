"""How the browser test (and the Space's Dockerfile) start the dashboard."""
from __future__ import annotations


def streamlit_command(port: int) -> list[str]:
    """The ``streamlit run`` command line for ``port`` (run it as ``[sys.executable, "-m", *cmd]``)."""
    return ["streamlit", "run", "serve.py", f"--server.port={port}", "--server.address=0.0.0.0"]
