"""One build from start to end, using every layer below."""
from dib.pipeline.prepare import Prepared, prepare, run_build

__all__ = ["Prepared", "prepare", "run_build"]
